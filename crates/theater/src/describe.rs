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

/// The parameters of a call, as `theater events` shows them between parentheses.
pub fn params(function: &str, payload: &[u8]) -> String {
    match function {
        "theater:simple/actor.init" => show(payload, |(id,): (String,)| format!("{id:?}")),
        "theater:simple/runtime.log" => show(payload, |(msg,): (String,)| format!("{msg:?}")),
        "theater:simple/runtime.get-chain" => String::new(),
        "theater:simple/runtime.shutdown" => show(payload, |(data,): (Option<Vec<u8>>,)| {
            data.as_deref().map(bytes).unwrap_or_else(|| "none".into())
        }),
        _ => opaque(payload),
    }
}

/// The result of a host call; empty for functions that return nothing.
pub fn result(function: &str, payload: &[u8]) -> String {
    match function {
        "theater:simple/runtime.log" => String::new(),
        "theater:simple/runtime.shutdown" => show(payload, |(r,): (Result<(), String>,)| match r {
            Ok(()) => "ok".into(),
            Err(e) => format!("err {e:?}"),
        }),
        _ => opaque(payload),
    }
}
