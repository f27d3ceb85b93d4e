//! Example: a chat room on channels. The root (manifest.toml) spawns a room (room.toml) and
//! three members (member.toml). Each member opens a channel to the room; when all are in, the
//! room says so, each member says hello, and the room relays every line to the others. A
//! member leaves (closes its channel) once it has heard both others; when the room is empty
//! it tells the root, which shuts down.
//!
//! Run it: `theater build actors/chat && theater run actors/chat/manifest.toml`

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/message-supervisor-actor",
    });
}

use std::cell::RefCell;
use std::collections::BTreeMap;

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::exports::theater::simple::supervisor_handlers::Guest as Handlers;
use bindings::theater::simple::types::{ChannelAccept, WitActorError};
use bindings::theater::simple::{message_server_host as msg, runtime, supervisor};

type State = Option<Vec<u8>>;

const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

/// Kept in the actor's own memory (the runtime replays it exactly, see docs/architecture.md).
#[derive(Default)]
struct Room {
    root: String,
    members: BTreeMap<String, String>,
    joined: usize,
    /// For a member: its name, its channel and how many hellos it heard.
    name: String,
    channel: String,
    heard: usize,
}

thread_local! {
    static ME: RefCell<Room> = RefCell::new(Room::default());
}

struct Chat;

impl Actor for Chat {
    fn init(state: State, (me,): (String,)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned();
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["room", root] => ME.with_borrow_mut(|r| r.root = root.to_string()),
            ["member", name, room] => {
                let channel = msg::open_channel(room, name.as_bytes())?;
                ME.with_borrow_mut(|r| {
                    r.name = name.to_string();
                    r.channel = channel;
                });
            }
            _ => {
                let room = supervisor::spawn("room.toml", Some(format!("room {me}").as_bytes()))?;
                for name in MEMBERS {
                    let init = format!("member {name} {room}");
                    supervisor::spawn("member.toml", Some(init.as_bytes()))?;
                }
            }
        }
        Ok((state,))
    }
}

fn broadcast(from: &str, line: &str) {
    let others: Vec<String> = ME.with_borrow(|r| {
        r.members.keys().filter(|c| c.as_str() != from).cloned().collect()
    });
    for channel in others {
        // A member may have left meanwhile; the others still get the line.
        let _ = msg::send_on_channel(&channel, line.as_bytes());
    }
}

impl Client for Chat {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        if m == b"empty" {
            runtime::log("the room is empty; closing the chat");
            runtime::shutdown(None)?;
        }
        Ok((state,))
    }

    fn handle_request(state: State, _: (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        Ok((state, (None,)))
    }

    fn handle_channel_open(state: State, (channel, m): (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {
        let name = String::from_utf8_lossy(&m).into_owned();
        runtime::log(&format!("{name} joined"));
        let all_here = ME.with_borrow_mut(|r| {
            r.members.insert(channel.clone(), name.clone());
            r.joined += 1;
            r.joined == MEMBERS.len()
        });
        if all_here {
            // The last member's channel opens when this call returns: tell it by its greeting.
            broadcast(&channel, "everyone is here");
        }
        let greeting = if all_here { "everyone is here" } else { "welcome" };
        let accept = ChannelAccept { accepted: true, message: Some(greeting.as_bytes().to_vec()) };
        Ok((state, (accept,)))
    }

    fn handle_channel_message(state: State, (channel, m): (String, Vec<u8>)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(&m).into_owned();
        let is_room = ME.with_borrow(|r| r.name.is_empty());
        if is_room {
            let name = ME.with_borrow(|r| r.members.get(&channel).cloned().unwrap_or_default());
            broadcast(&channel, &format!("{name}: {text}"));
            return Ok((state,));
        }
        runtime::log(&format!("heard {text:?}"));
        if text == "everyone is here" {
            let name = ME.with_borrow(|r| r.name.clone());
            msg::send_on_channel(&channel, format!("hello from {name}").as_bytes())?;
        } else if text.contains(": hello from ") {
            let done = ME.with_borrow_mut(|r| {
                r.heard += 1;
                r.heard == MEMBERS.len() - 1
            });
            if done {
                msg::close_channel(&channel)?;
            }
        }
        Ok((state,))
    }

    fn handle_channel_close(state: State, (channel,): (String,)) -> Result<(State,), String> {
        let (name, empty, root) = ME.with_borrow_mut(|r| {
            let name = r.members.remove(&channel).unwrap_or_default();
            (name, r.members.is_empty(), r.root.clone())
        });
        runtime::log(&format!("{name} left"));
        if empty {
            msg::send(&root, b"empty")?;
        }
        Ok((state,))
    }
}

impl Handlers for Chat {
    fn handle_child_error(state: State, (child, _): (String, WitActorError)) -> Result<(State,), String> {
        runtime::log(&format!("{child} failed"));
        Ok((state,))
    }

    fn handle_child_exit(state: State, _: (String, Option<Vec<u8>>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_child_external_stop(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

bindings::export!(Chat with_types_in bindings);
