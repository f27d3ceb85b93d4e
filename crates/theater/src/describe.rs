//! Human-readable renderings of recorded payloads, for `theater events`. Functions are named
//! `interface.function`, as in chain events. A payload this build cannot decode is shown as its
//! size and first bytes.

use serde::de::DeserializeOwned;

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

const HOST: &str = "theater:simple/message-server-host.";
const CLIENT: &str = "theater:simple/message-server-client.";
const SUPERVISOR: &str = "theater:simple/supervisor.";
const HANDLERS: &str = "theater:simple/supervisor-handlers.";

/// The parameters of a call, as `theater events` shows them between parentheses.
pub fn params(function: &str, payload: &[u8]) -> String {
    let (interface, name) = function.rsplit_once('.').unwrap_or(("", function));
    let interface = &function[..interface.len() + 1];
    match (interface, name) {
        ("theater:simple/actor.", "init") => text(payload),
        ("theater:simple/runtime.", "log") => text(payload),
        ("theater:simple/runtime.", "get-chain") => String::new(),
        ("theater:simple/runtime.", "shutdown") => show(payload, |(data,): (Option<Vec<u8>>,)| {
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
        _ => opaque(payload),
    }
}

/// The result of a host call; empty for functions that return nothing.
pub fn result(function: &str, payload: &[u8]) -> String {
    let (interface, name) = function.rsplit_once('.').unwrap_or(("", function));
    let interface = &function[..interface.len() + 1];
    match (interface, name) {
        ("theater:simple/runtime.", "log") => String::new(),
        ("theater:simple/runtime.", "shutdown")
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
        _ => opaque(payload),
    }
}
