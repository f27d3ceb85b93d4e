//! A test actor driven by its messages, so one component exercises every function of `store`.
//! A request is a command, `VERB ARGS` (split at spaces); it answers `ok VALUE` or `err MESSAGE`.
//!
//! `new`, `put ID TEXT`, `put-big ID BYTES`, `get ID HASH`, `has ID HASH`, `label ID LABEL HASH`,
//! `by-label ID LABEL`, `unlabel ID LABEL`, `unlabel-from ID LABEL HASH`, `put-at ID LABEL TEXT`,
//! `replace-content ID LABEL TEXT`, `replace-at ID LABEL HASH`, `labels ID`, `contents ID`,
//! `size ID`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/store-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::types::ChannelAccept;
use bindings::theater::simple::store::{self, ContentRef};

type State = Option<Vec<u8>>;

struct Keeper;

fn shown<T: core::fmt::Display>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => format!("ok {v}").trim_end().to_string(),
        Err(e) => format!("err {e}"),
    }
}

fn joined(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(" ")
}

fn number(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("keeper: {text:?} is not a number"))
}

fn reference(hash: &str) -> ContentRef {
    ContentRef { hash: hash.to_string() }
}

/// Runs one command; returns the answer.
fn run(state: &State, command: &str) -> Result<String, String> {
    let args: Vec<&str> = command.split(' ').collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    // Everything from argument `i` on, spaces kept.
    let rest = |i: usize| args.get(i..).map(|a| a.join(" ")).unwrap_or_default();
    let text = |r: Result<Vec<u8>, String>| shown(r.map(|b| String::from_utf8_lossy(&b).into_owned()));
    let unit = |r: Result<(), String>| shown(r.map(|()| ""));
    let _ = (&text, &unit, &rest, state);
    Ok(match arg(0) {
        // Store.
        "new" => shown(store::new()),
        "put" => shown(store::store(arg(1), rest(2).as_bytes()).map(|r| r.hash)),
        "put-big" => shown(store::store(arg(1), &vec![b'x'; number(arg(2))? as usize]).map(|r| r.hash)),
        "get" => text(store::get(arg(1), &reference(arg(2)))),
        "has" => shown(store::exists(arg(1), &reference(arg(2)))),
        "label" => unit(store::label(arg(1), arg(2), &reference(arg(3)))),
        "by-label" => shown(store::get_by_label(arg(1), arg(2)).map(|r| r.map_or("none".into(), |r| r.hash))),
        "unlabel" => unit(store::remove_label(arg(1), arg(2))),
        "unlabel-from" => unit(store::remove_from_label(arg(1), arg(2), &reference(arg(3)))),
        "put-at" => shown(store::store_at_label(arg(1), arg(2), rest(3).as_bytes()).map(|r| r.hash)),
        "replace-content" => {
            shown(store::replace_content_at_label(arg(1), arg(2), rest(3).as_bytes()).map(|r| r.hash))
        }
        "replace-at" => unit(store::replace_at_label(arg(1), arg(2), &reference(arg(3)))),
        "labels" => shown(store::list_labels(arg(1)).map(joined)),
        "contents" => shown(store::list_all_content(arg(1)).map(|c| joined(c.into_iter().map(|r| r.hash)))),
        "size" => shown(store::calculate_total_size(arg(1))),
        other => return Err(format!("keeper: unknown command {other:?}")),
    })
}

impl Actor for Keeper {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Client for Keeper {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        run(&state, &String::from_utf8_lossy(&m))?;
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let answer = run(&state, &String::from_utf8_lossy(&m))?;
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
