//! The messaging benchmarks' actor (crates/theater-bench/src/messaging.rs). One message per
//! export call; the state is 64 bytes whose first 8 count the messages counted.
//!
//! Requests: `rr N ID` (N request/response round trips to ID), `ss N ID` (N send/send round
//! trips, answered when the last pong arrives), `count N ID` (N sends, then asks ID for its
//! count), `?` (this actor's count), `next ID` (ring successor), `ring HOPS` (pass a token
//! HOPS times round the ring), `fork N MANIFEST` (spawn and stop N children); anything else is
//! echoed. Sends: `p` + id (ping: answer `q`), `q` (pong), `c` (count one), `t` + hops + id
//! (ring token), `f` (ring finished).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/message-supervisor-actor",
    });
}

use std::cell::RefCell;

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::exports::theater::simple::supervisor_handlers::Guest as Handlers;
use bindings::theater::simple::types::{ChannelAccept, WitActorError};
use bindings::theater::simple::{message_server_host as msg, supervisor};

type State = Option<Vec<u8>>;

/// What this actor keeps between calls in its own memory (replayed exactly, as any guest
/// memory is, because the runtime records every instance creation).
#[derive(Default)]
struct Role {
    me: String,
    target: String,
    remaining: u64,
    request: String,
    next: String,
    ping: Vec<u8>,
}

thread_local! {
    static ROLE: RefCell<Role> = RefCell::new(Role::default());
}

struct Bench;

fn count(state: &State) -> u64 {
    let s = state.as_deref().unwrap_or(&[0; 8]);
    u64::from_le_bytes(s[..8].try_into().unwrap())
}

fn args(m: &[u8]) -> (u64, String) {
    let text = String::from_utf8_lossy(m);
    let mut parts = text.splitn(3, ' ').skip(1);
    let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (n, parts.next().unwrap_or("").to_string())
}

impl Actor for Bench {
    fn init(state: State, (id,): (String,)) -> Result<(State,), String> {
        ROLE.with_borrow_mut(|r| {
            r.ping = [b"p".as_slice(), id.as_bytes()].concat();
            r.me = id;
        });
        Ok((Some(state.unwrap_or_else(|| vec![0; 64])),))
    }
}

impl Client for Bench {
    fn handle_send(mut state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        match m.first() {
            Some(b'p') => msg::send(&String::from_utf8_lossy(&m[1..]), b"q")?,
            Some(b'q') => {
                let (done, target, ping, request) = ROLE.with_borrow_mut(|r| {
                    r.remaining -= 1;
                    (r.remaining == 0, r.target.clone(), r.ping.clone(), r.request.clone())
                });
                if done {
                    msg::respond_to_request(&request, b"done")?;
                } else {
                    msg::send(&target, &ping)?;
                }
            }
            Some(b'c') => {
                let s = state.get_or_insert_with(|| vec![0; 64]);
                let n = u64::from_le_bytes(s[..8].try_into().unwrap()) + 1;
                s[..8].copy_from_slice(&n.to_le_bytes());
            }
            Some(b't') => {
                let hops = u64::from_le_bytes(m[1..9].try_into().unwrap());
                let origin = String::from_utf8_lossy(&m[9..]).into_owned();
                if hops == 0 {
                    msg::send(&origin, b"f")?;
                } else {
                    let mut token = m.clone();
                    token[1..9].copy_from_slice(&(hops - 1).to_le_bytes());
                    let next = ROLE.with_borrow(|r| r.next.clone());
                    msg::send(&next, &token)?;
                }
            }
            Some(b'f') => {
                let request = ROLE.with_borrow(|r| r.request.clone());
                msg::respond_to_request(&request, b"done")?;
            }
            _ => return Err("bench-actor: unknown send".into()),
        }
        Ok((state,))
    }

    fn handle_request(state: State, (id, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let answer: Option<Vec<u8>> = if m.starts_with(b"rr ") {
            let (n, target) = args(&m);
            let ping = [0u8; 8];
            for _ in 0..n {
                msg::request(&target, &ping)?;
            }
            Some(b"done".to_vec())
        } else if m.starts_with(b"ss ") {
            let (n, target) = args(&m);
            let ping = ROLE.with_borrow_mut(|r| {
                r.remaining = n;
                r.target = target.clone();
                r.request = id;
                r.ping.clone()
            });
            msg::send(&target, &ping)?;
            None
        } else if m.starts_with(b"count ") {
            let (n, target) = args(&m);
            for _ in 0..n {
                msg::send(&target, b"c")?;
            }
            Some(msg::request(&target, b"?")?)
        } else if m == b"?" {
            Some(count(&state).to_string().into_bytes())
        } else if let Some(next) = m.strip_prefix(b"next ") {
            ROLE.with_borrow_mut(|r| r.next = String::from_utf8_lossy(next).into_owned());
            Some(b"ok".to_vec())
        } else if m.starts_with(b"ring ") {
            let (hops, _) = args(&[m.as_slice(), b" x"].concat());
            let (next, me) = ROLE.with_borrow_mut(|r| {
                r.request = id;
                (r.next.clone(), r.me.clone())
            });
            let token = [b"t".as_slice(), &hops.to_le_bytes(), me.as_bytes()].concat();
            msg::send(&next, &token)?;
            None
        } else if m.starts_with(b"fork ") {
            let text = String::from_utf8_lossy(&m).into_owned();
            let (n, manifest) = text[5..].split_once(' ').unwrap_or(("0", ""));
            for _ in 0..n.parse::<u64>().unwrap_or(0) {
                let child = supervisor::spawn(manifest, None)?;
                supervisor::stop_child(&child)?;
            }
            Some(b"done".to_vec())
        } else {
            Some(m)
        };
        Ok((state, (answer,)))
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

impl Handlers for Bench {
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

bindings::export!(Bench with_types_in bindings);
