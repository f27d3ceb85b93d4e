//! Example: a ping-pong pair. `ping` (the root, manifest.toml) spawns `pong` (pong.toml),
//! plays three request/response rounds with it, then asks for a pong by plain `send`;
//! when that arrives it shuts down. The same component plays both parts: `pong`'s manifest
//! gives it the initial state `pong`.
//!
//! Run it: `theater build actors/ping-pong && theater run actors/ping-pong/manifest.toml`

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/message-supervisor-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::exports::theater::simple::supervisor_handlers::Guest as Handlers;
use bindings::theater::simple::types::{ChannelAccept, WitActorError};
use bindings::theater::simple::{message_server_host as msg, runtime, supervisor};

type State = Option<Vec<u8>>;

struct PingPong;

impl Actor for PingPong {
    fn init(state: State, (me,): (String,)) -> Result<(State,), String> {
        if state.as_deref() == Some(b"pong") {
            runtime::log("pong ready");
            return Ok((state,));
        }
        let pong = supervisor::spawn("pong.toml", None)?;
        for round in 1..=3 {
            let answer = msg::request(&pong, format!("ping {round}").as_bytes())?;
            runtime::log(&format!("asked ping {round}, got {:?}", String::from_utf8_lossy(&answer)));
        }
        // A send has no answer; pong sends one back to the id in the message.
        msg::send(&pong, format!("ping-back {me}").as_bytes())?;
        Ok((Some(b"ping".to_vec()),))
    }
}

impl Client for PingPong {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(&m).into_owned();
        if let Some(sender) = text.strip_prefix("ping-back ") {
            runtime::log("got a ping by send; sending pong back");
            msg::send(sender, b"pong")?;
        } else if text == "pong" {
            runtime::log("got pong by send; done");
            runtime::shutdown(None)?;
        }
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let text = String::from_utf8_lossy(&m).replace("ping", "pong");
        Ok((state, (Some(text.into_bytes()),)))
    }

    fn handle_channel_open(state: State, _: (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {
        Ok((state, (ChannelAccept { accepted: false, message: None },)))
    }

    fn handle_channel_message(state: State, _: (String, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Handlers for PingPong {
    fn handle_child_error(state: State, _: (String, WitActorError)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_child_exit(state: State, _: (String, Option<Vec<u8>>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_child_external_stop(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

bindings::export!(PingPong with_types_in bindings);
