//! A test actor driven by its messages, so one component exercises `http-client`. A request is
//! a command; it answers `ok STATUS BODY` or `err MESSAGE`.
//!
//! `get URL`, `send METHOD URL BODY` (`-` for no body), `header NAME VALUE URL` (a GET with one
//! header).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/http-client-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::http_client;
use bindings::theater::simple::http_types::HttpRequest;
use bindings::theater::simple::types::ChannelAccept;

type State = Option<Vec<u8>>;

struct Keeper;

fn request(method: &str, uri: &str, headers: Vec<(String, String)>, body: Option<Vec<u8>>) -> String {
    let sent = http_client::send_http(&HttpRequest {
        method: method.into(),
        uri: uri.into(),
        headers,
        body,
    });
    match sent {
        Ok(r) => format!("ok {} {}", r.status, String::from_utf8_lossy(&r.body.unwrap_or_default())),
        Err(e) => format!("err {e}"),
    }
}

fn run(command: &str) -> Result<String, String> {
    let args: Vec<&str> = command.splitn(4, ' ').collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    Ok(match arg(0) {
        "get" => request("GET", arg(1), Vec::new(), None),
        "send" => {
            let body = match arg(3) {
                "-" => None,
                b => Some(b.as_bytes().to_vec()),
            };
            request(arg(1), arg(2), Vec::new(), body)
        }
        "header" => request("GET", arg(3), vec![(arg(1).into(), arg(2).into())], None),
        other => return Err(format!("http-keeper: unknown command {other:?}")),
    })
}

impl Actor for Keeper {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Client for Keeper {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        run(&String::from_utf8_lossy(&m))?;
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let answer = run(&String::from_utf8_lossy(&m))?;
        Ok((state, (Some(answer.into_bytes()),)))
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

bindings::export!(Keeper with_types_in bindings);
