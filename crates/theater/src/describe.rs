//! Human-readable renderings of recorded payloads, for `theater events`. Functions are named
//! `interface.function`, as in chain events. A payload this build cannot decode is shown as its
//! size and first bytes.

use serde::de::DeserializeOwned;
use theater_chain::{EventKind, Hash, HostResult};

use crate::payload::decode;

/// Bytes as text when they are printable UTF-8, else as hex.
pub fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ if b.len() <= 32 => format!("0x{}", hex::encode(b)),
        _ => format!("0x{}… ({} bytes)", hex::encode(&b[..32]), b.len()),
    }
}

fn opaque(b: &[u8]) -> String {
    if b.is_empty() {
        String::new()
    } else {
        format!("<{} bytes: {}>", b.len(), bytes(b))
    }
}

fn show<T: DeserializeOwned>(b: &[u8], f: impl FnOnce(T) -> String) -> String {
    decode::<T>(b).map(f).unwrap_or_else(|_| opaque(b))
}

fn text_and_bytes(b: &[u8]) -> String {
    show(b, |(a, m): (String, Vec<u8>)| {
        format!("{a:?}, {}", bytes(&m))
    })
}

fn text(b: &[u8]) -> String {
    show(b, |(a,): (String,)| format!("{a:?}"))
}

fn text_and_maybe_bytes(b: &[u8]) -> String {
    show(b, |(a, m): (String, Option<Vec<u8>>)| {
        format!(
            "{a:?}, {}",
            m.as_deref().map(bytes).unwrap_or_else(|| "none".into())
        )
    })
}

fn ok_or_err<T: DeserializeOwned>(b: &[u8], f: impl FnOnce(T) -> String) -> String {
    show(b, |(r,): (Result<T, String>,)| match r {
        Ok(v) => format!("ok {}", f(v)).trim_end().to_owned(),
        Err(e) => format!("err {e:?}"),
    })
}

const HOST: &str = "theater:simple/message-server-host";
const CLIENT: &str = "theater:simple/message-server-client";
const SUPERVISOR: &str = "theater:simple/supervisor";
const HANDLERS: &str = "theater:simple/supervisor-handlers";
const TIMING: &str = "theater:simple/timing";
const RANDOM: &str = "theater:simple/random";
const ENV: &str = "theater:simple/environment";
const RUNTIME: &str = "theater:simple/runtime";

/// `interface.function` split at its last dot; a name without one is all function.
fn split(function: &str) -> (&str, &str) {
    function.rsplit_once('.').unwrap_or(("", function))
}

/// `s` with control and bidirectional-formatting characters escaped, so that text from a guest
/// or a chain file cannot move the cursor, recolour or rewrite a terminal.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The parameters of a call, as `theater events` shows them between parentheses.
pub fn params(function: &str, payload: &[u8]) -> String {
    match split(function) {
        ("theater:simple/actor", "init") => text(payload),
        (RUNTIME, "log") => text(payload),
        (RUNTIME, "get-chain") => String::new(),
        (RUNTIME, "shutdown") => show(payload, |(data,): (Option<Vec<u8>>,)| {
            data.as_deref().map(bytes).unwrap_or_else(|| "none".into())
        }),
        (HOST, "send" | "request" | "open-channel" | "send-on-channel" | "respond-to-request") => {
            text_and_bytes(payload)
        }
        (HOST, "close-channel" | "cancel-request") => text(payload),
        (HOST, "list-outstanding-requests") => String::new(),
        (CLIENT, "handle-send") => show(payload, |(m,): (Vec<u8>,)| bytes(&m)),
        (CLIENT, "handle-request" | "handle-channel-open" | "handle-channel-message") => {
            text_and_bytes(payload)
        }
        (CLIENT, "handle-channel-close") | (HANDLERS, "handle-child-external-stop") => {
            text(payload)
        }
        (HANDLERS, "handle-child-exit") => text_and_maybe_bytes(payload),
        (HANDLERS, "handle-child-error") => show(
            payload,
            |(child, e): (
                String,
                crate::bindings::theater::simple::types::WitActorError,
            )| {
                format!(
                    "{child:?}, {:?} {}",
                    e.error_type,
                    e.data.as_deref().map(bytes).unwrap_or_default()
                )
            },
        ),
        (SUPERVISOR, "spawn" | "resume") => show(payload, |(m, s): (String, Option<Vec<u8>>)| {
            let m = if m.contains('\n') {
                "<inline manifest>".into()
            } else {
                format!("{m:?}")
            };
            format!(
                "{m}, {}",
                s.as_deref().map(bytes).unwrap_or_else(|| "none".into())
            )
        }),
        (SUPERVISOR, "list-children") => String::new(),
        (SUPERVISOR, _) => text(payload),
        (TIMING, "now") | (RANDOM, "random-float" | "generate-uuid") | (ENV, "list-vars") => {
            String::new()
        }
        (TIMING, "sleep" | "deadline") => show(payload, |(n,): (u64,)| n.to_string()),
        (RANDOM, "random-bytes") => show(payload, |(n,): (u32,)| n.to_string()),
        (RANDOM, "random-range") => show(payload, |(a, b): (u64, u64)| format!("{a}, {b}")),
        (ENV, _) => text(payload),
        _ => opaque(payload),
    }
}

/// The result of a host call; empty for functions that return nothing.
pub fn result(function: &str, payload: &[u8]) -> String {
    match split(function) {
        (RUNTIME, "log") => String::new(),
        (RUNTIME, "shutdown")
        | (HOST, "send" | "send-on-channel" | "close-channel" | "respond-to-request")
        | (HOST, "cancel-request")
        | (SUPERVISOR, "stop-child" | "restart-child") => ok_or_err(payload, |()| String::new()),
        (HOST, "request") => ok_or_err(payload, |r: Vec<u8>| bytes(&r)),
        (HOST, "open-channel") | (SUPERVISOR, "spawn" | "resume") => {
            ok_or_err(payload, |id: String| format!("{id:?}"))
        }
        (HOST, "list-outstanding-requests") | (SUPERVISOR, "list-children") => {
            show(payload, |(ids,): (Vec<String>,)| format!("{ids:?}"))
        }
        (SUPERVISOR, "get-child-state") => ok_or_err(payload, |s: Option<Vec<u8>>| {
            s.as_deref().map(bytes).unwrap_or_else(|| "none".into())
        }),
        (TIMING, "now") => show(payload, |(n,): (u64,)| n.to_string()),
        (TIMING, _) => ok_or_err(payload, |()| String::new()),
        (RANDOM, "random-bytes") => ok_or_err(payload, |b: Vec<u8>| bytes(&b)),
        (RANDOM, "random-range") => ok_or_err(payload, |n: u64| n.to_string()),
        (RANDOM, "random-float") => ok_or_err(payload, |x: f64| x.to_string()),
        (RANDOM, "generate-uuid") => ok_or_err(payload, |s: String| s),
        (ENV, "get-var") => show(payload, |(v,): (Option<String>,)| {
            v.map(|v| format!("{v:?}")).unwrap_or_else(|| "none".into())
        }),
        (ENV, "exists") => show(payload, |(b,): (bool,)| b.to_string()),
        (ENV, "list-vars") => show(payload, |(vars,): (Vec<(String, String)>,)| {
            let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
            format!("{} variables {names:?}", names.len())
        }),
        _ => opaque(payload),
    }
}

fn short(hash: &Hash) -> String {
    hash.to_hex()[..12].to_owned()
}

fn opt_short(hash: &Option<Hash>) -> String {
    hash.as_ref().map(short).unwrap_or_else(|| "none".into())
}

/// One event's fields on one line (without its index, time or hash), as `theater events` and
/// replay divergences show it. Text from the chain is escaped ([`escape`]).
pub fn event(kind: &EventKind) -> String {
    escape(&event_line(kind)).into_owned()
}

fn event_line(kind: &EventKind) -> String {
    match kind {
        EventKind::Spawn(s) => format!(
            "{} component {} parent {} initial state {}",
            s.name,
            short(&s.component),
            s.parent.as_deref().unwrap_or("none"),
            opt_short(&s.initial_state)
        ),
        EventKind::Instance { component, reason } => {
            format!("{} of component {}", reason.name(), short(component))
        }
        EventKind::CallStart(c) => {
            let mut line = format!(
                "{}({}) state {}",
                c.export,
                params(&c.export, &c.params),
                opt_short(&c.state)
            );
            if let Some(id) = &c.message_id {
                line.push_str(&format!(" msg={id}"));
            }
            if let Some(sender) = &c.sender {
                line.push_str(&format!(" from {sender}"));
            }
            line
        }
        EventKind::CallEnd(c) => match &c.outcome {
            Ok(_) => format!("{} -> ok, state {}", c.export, opt_short(&c.state)),
            Err(e) => format!(
                "{} -> err {e:?}, state kept {}",
                c.export,
                opt_short(&c.state)
            ),
        },
        EventKind::HostCall(h) => {
            let name = format!("{}.{}", h.interface, h.function);
            let shown = match &h.result {
                HostResult::Value(v) => result(&name, v),
                HostResult::ChainRef { len, head } => {
                    format!("the chain's first {len} events (head {})", short(head))
                }
                HostResult::ActorChainRef {
                    actor_id,
                    len,
                    head,
                } => format!(
                    "the first {len} events of {actor_id}'s chain (head {})",
                    short(head)
                ),
                HostResult::Error(message) => format!("host error {message:?} (the guest trapped)"),
            };
            let shown = if shown.is_empty() {
                String::new()
            } else {
                format!(" -> {shown}")
            };
            let message = h
                .message_id
                .as_deref()
                .map(|id| format!(" msg={id}"))
                .unwrap_or_default();
            format!("{name}({}){shown}{message}", params(&name, &h.params))
        }
        EventKind::Trap { kind, message } => format!("{}: {message}", kind.name()),
        EventKind::Shutdown { reason, data } => format!(
            "{}{}",
            reason.name(),
            data.as_deref()
                .map(|d| format!(" data {}", bytes(d)))
                .unwrap_or_default()
        ),
        EventKind::Snapshot { state } => format!("state {}", opt_short(state)),
        EventKind::Recovery(r) => format!(
            "goes on with state {}{}",
            opt_short(&r.state),
            match (&r.interrupted, &r.message_id) {
                (Some(call), Some(id)) => format!("; interrupted {call} msg={id}, not finished"),
                (Some(call), None) => format!("; interrupted {call}, not finished"),
                _ => String::new(),
            }
        ),
    }
}
