//! A test actor driven by its messages, so one component exercises every function of
//! `message-server-host` and `supervisor`. A message is a command, `VERB ARGS`; a request
//! answers with the command's output, a send discards it. The state is a journal of what the
//! actor saw (`note` texts, channel and child events), which tests read back.
//!
//! Commands: `echo TEXT`, `note TEXT`, `state`, `log TEXT`, `fail TEXT` (returns `Err`),
//! `panic`, `loop`, `shutdown`, `defer`, `outstanding`, `respond RID TEXT`, `cancel RID`,
//! `send ID TEXT`, `request ID TEXT`, `open ID TEXT`, `chan CID TEXT`, `close CID`,
//! `spawn MANIFEST` (path or TOML), `spawn-with INIT|MANIFEST`, `resume STATE|MANIFEST`,
//! `children`, `stop ID`, `restart ID`, `child-state ID`, `child-events ID`; and hostile ones:
//! `log-flood N BYTES`, `alloc MIB`, `recurse DEPTH`, `big-send ID BYTES`, `big-answer BYTES`,
//! `spawn-flood N MANIFEST`, `send-flood ID N`, `spin N`, `chain-loop N`; and ranged chain
//! reads: `chain-range own|CHILD START MAX` (answers `COUNT FIRST-TYPE LINKED HAS-PARENT`).
//! An initial state `init:COMMAND` runs COMMAND in `init` (its output is logged); `init-fail`
//! makes `init` return `Err`.

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
use bindings::theater::simple::{chain, message_server_host as msg, runtime, supervisor};

type State = Option<Vec<u8>>;

struct Puppet;

fn journal(state: State, entry: &str) -> State {
    let mut s = state.unwrap_or_default();
    s.extend_from_slice(entry.as_bytes());
    s.push(b',');
    Some(s)
}

fn shown<T: core::fmt::Display>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => format!("ok {v}").trim_end().to_string(),
        Err(e) => format!("err {e}"),
    }
}

/// Runs one command. Returns the new state and the answer (`None`: defer the request).
fn run(state: State, command: &str) -> Result<(State, Option<String>), String> {
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let answer = match verb {
        "echo" => rest.to_string(),
        "note" => return Ok((journal(state, rest), Some("ok".into()))),
        "state" => String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned(),
        "log" => {
            runtime::log(rest);
            "ok".into()
        }
        "fail" => return Err(rest.to_string()),
        "panic" => panic!("puppet told to panic"),
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = core::hint::black_box(x.wrapping_add(1));
            }
        }
        "shutdown" => shown(runtime::shutdown(Some(rest.as_bytes())).map(|()| "")),
        "defer" => return Ok((state, None)),
        "outstanding" => msg::list_outstanding_requests().join(" "),
        "respond" => shown(msg::respond_to_request(first, tail.as_bytes()).map(|()| "")),
        "cancel" => shown(msg::cancel_request(first).map(|()| "")),
        "send" => shown(msg::send(first, tail.as_bytes()).map(|()| "")),
        "request" => shown(
            msg::request(first, tail.as_bytes()).map(|r| String::from_utf8_lossy(&r).into_owned()),
        ),
        "open" => shown(msg::open_channel(first, tail.as_bytes())),
        "chan" => shown(msg::send_on_channel(first, tail.as_bytes()).map(|()| "")),
        "close" => shown(msg::close_channel(first).map(|()| "")),
        "spawn" => shown(supervisor::spawn(rest, None)),
        "spawn-with" | "resume" => {
            let (init, manifest) = rest.split_once('|').unwrap_or((rest, ""));
            let init = Some(init.as_bytes());
            shown(if verb == "resume" {
                supervisor::resume(manifest, init)
            } else {
                supervisor::spawn(manifest, init)
            })
        }
        "children" => supervisor::list_children().join(" "),
        "stop" => shown(supervisor::stop_child(first).map(|()| "")),
        "restart" => shown(supervisor::restart_child(first).map(|()| "")),
        "child-state" => shown(supervisor::get_child_state(first).map(|s| {
            String::from_utf8_lossy(&s.unwrap_or_default()).into_owned()
        })),
        "child-events" => shown(supervisor::get_child_events(first).map(|events| {
            let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
            format!("{} {}", events.len(), types.join(" "))
        })),
        // Hostile behaviour, for the runtime's bounds (crates/theater/tests/hostile.rs).
        "log-flood" => {
            let (n, size) = (number(first)?, number(tail)? as usize);
            let line = "x".repeat(size);
            for _ in 0..n {
                runtime::log(&line);
            }
            "ok".into()
        }
        "alloc" => {
            // Touches every page, so the memory is really used.
            let mut blocks = Vec::new();
            for _ in 0..number(first)? {
                blocks.push(core::hint::black_box(vec![1u8; 1 << 20]));
            }
            format!("ok {}", blocks.len())
        }
        "recurse" => format!("ok {}", recurse(number(first)?)),
        "big-send" => {
            let bytes = vec![b'x'; number(tail)? as usize];
            shown(msg::send(first, &bytes).map(|()| ""))
        }
        "big-answer" => {
            let bytes = vec![b'x'; number(first)? as usize];
            return Ok((state, Some(String::from_utf8(bytes).unwrap())));
        }
        "spawn-flood" => {
            let (mut spawned, mut last_error) = (0, String::new());
            for _ in 0..number(first)? {
                match supervisor::spawn(tail, None) {
                    Ok(_) => spawned += 1,
                    Err(e) => last_error = e,
                }
            }
            format!("ok {spawned} {last_error}")
        }
        "send-flood" => {
            // Until the first refusal (a full mailbox, once the sender's timeout passed).
            let (mut sent, mut refused) = (0, String::new());
            for i in 0..number(tail)? {
                match msg::send(first, format!("note {i}").as_bytes()) {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        refused = e;
                        break;
                    }
                }
            }
            format!("ok {sent} {refused}")
        }
        "spin" => {
            let mut x: u64 = 0;
            for _ in 0..number(first)? {
                x = core::hint::black_box(x.wrapping_add(1));
            }
            format!("ok {x}")
        }
        "chain-loop" => {
            let mut len = 0;
            for _ in 0..number(first)? {
                len = runtime::get_chain().events.len();
            }
            format!("ok {len}")
        }
        "chain-range" => {
            let (start, max) = tail.split_once(' ').unwrap_or((tail, ""));
            let read = if first == "own" {
                chain::read_own(number(start)?, number(max)? as u32)
            } else {
                chain::read_child(first, number(start)?, number(max)? as u32)
            };
            shown(read.map(|events| {
                // The count, the first event's type, and whether each links to the one before.
                let linked = events.windows(2).all(|w| w[1].parent_hash.as_ref() == Some(&w[0].hash));
                let first_type = events.first().map(|e| e.event_type.clone()).unwrap_or_default();
                let first_has_parent = events.first().is_some_and(|e| e.parent_hash.is_some());
                format!("{} {first_type} {linked} {first_has_parent}", events.len())
            }))
        }
        other => return Err(format!("puppet: unknown command {other:?}")),
    };
    Ok((state, Some(answer)))
}

fn number(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("puppet: {text:?} is not a number"))
}

/// Recurses `depth` times, each frame keeping 1 KiB live.
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return frame[0] as u64;
    }
    recurse(depth - 1) + frame[1023] as u64
}

impl Actor for Puppet {
    fn init(state: State, (id,): (String,)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned();
        if text == "init-fail" {
            return Err("told to fail in init".into());
        }
        if let Some(command) = text.strip_prefix("init:") {
            let (state, answer) = run(None, command)?;
            runtime::log(&format!("init {id}: {}", answer.unwrap_or_default()));
            return Ok((state,));
        }
        Ok((state,))
    }
}

impl Client for Puppet {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        let (state, _) = run(state, &String::from_utf8_lossy(&m))?;
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let (state, answer) = run(state, &String::from_utf8_lossy(&m))?;
        Ok((state, (answer.map(String::into_bytes),)))
    }

    fn handle_channel_open(state: State, (id, m): (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {
        let text = String::from_utf8_lossy(&m).into_owned();
        let accepted = text != "reject";
        let accept = ChannelAccept {
            accepted,
            message: Some(if accepted { b"welcome".to_vec() } else { b"go away".to_vec() }),
        };
        Ok((journal(state, &format!("open:{id}:{text}")), (accept,)))
    }

    fn handle_channel_message(state: State, (id, m): (String, Vec<u8>)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(&m).into_owned();
        if let Some(rest) = text.strip_prefix("echo ") {
            msg::send_on_channel(&id, format!("re:{rest}").as_bytes())?;
        }
        Ok((journal(state, &format!("chan:{text}")),))
    }

    fn handle_channel_close(state: State, (id,): (String,)) -> Result<(State,), String> {
        Ok((journal(state, &format!("closed:{id}")),))
    }
}

impl Handlers for Puppet {
    fn handle_child_error(state: State, (id, e): (String, WitActorError)) -> Result<(State,), String> {
        let why = String::from_utf8_lossy(&e.data.unwrap_or_default()).into_owned();
        runtime::log(&format!("child {id} failed: {why}"));
        Ok((journal(state, &format!("child-error:{id}")),))
    }

    fn handle_child_exit(state: State, (id, _): (String, Option<Vec<u8>>)) -> Result<(State,), String> {
        Ok((journal(state, &format!("child-exit:{id}")),))
    }

    fn handle_child_external_stop(state: State, (id,): (String,)) -> Result<(State,), String> {
        Ok((journal(state, &format!("child-stop:{id}")),))
    }
}

bindings::export!(Puppet with_types_in bindings);
