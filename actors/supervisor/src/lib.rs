//! Example: a supervisor and a worker that crashes on demand. The supervisor (the root,
//! manifest.toml) spawns the worker (worker.toml), gives it two jobs, then tells it to crash.
//! The runtime restarts the worker (one-for-one, permanent, from `init`), and the supervisor's
//! `handle-child-error` hears of it, gives the fresh worker one more job and shuts down.
//!
//! Run it: `theater build actors/supervisor && theater run actors/supervisor/manifest.toml`

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

struct Example;

fn jobs(state: &State) -> u32 {
    state
        .as_deref()
        .and_then(|s| std::str::from_utf8(s).ok()?.strip_prefix("worker ")?.parse().ok())
        .unwrap_or(0)
}

fn ask(worker: &str, what: &str) {
    match msg::request(worker, what.as_bytes()) {
        Ok(answer) => runtime::log(&format!("{what}: {}", String::from_utf8_lossy(&answer))),
        Err(e) => runtime::log(&format!("{what}: failed: {e}")),
    }
}

impl Actor for Example {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        if state.as_deref().is_some_and(|s| s.starts_with(b"worker")) {
            runtime::log("worker starting");
            return Ok((Some(b"worker 0".to_vec()),));
        }
        let worker = supervisor::spawn("worker.toml", None)?;
        ask(&worker, "job");
        ask(&worker, "job");
        ask(&worker, "crash");
        Ok((Some(worker.into_bytes()),))
    }
}

impl Client for Example {
    fn handle_send(state: State, _: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        match m.as_slice() {
            b"crash" => panic!("told to crash"),
            b"job" => {
                let done = jobs(&state) + 1;
                let answer = format!("done, {done} jobs since this worker started");
                Ok((Some(format!("worker {done}").into_bytes()), (Some(answer.into_bytes()),)))
            }
            _ => Err("unknown request".into()),
        }
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

impl Handlers for Example {
    fn handle_child_error(state: State, (child, error): (String, WitActorError)) -> Result<(State,), String> {
        let why = String::from_utf8_lossy(&error.data.unwrap_or_default()).into_owned();
        runtime::log(&format!("worker crashed ({why}); the runtime restarted it"));
        ask(&child, "job");
        runtime::shutdown(None)?;
        Ok((state,))
    }

    fn handle_child_exit(state: State, _: (String, Option<Vec<u8>>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_child_external_stop(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

bindings::export!(Example with_types_in bindings);
