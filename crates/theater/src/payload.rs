//! The payload encoding of parameters and results inside chain events: postcard (a compact,
//! deterministic serde format with a published wire spec), applied to the WIT values as the
//! `bindgen!`-generated Rust types hold them. See `docs/chain-format.md`, "Payloads".

use serde::de::DeserializeOwned;

#[allow(dead_code)] // Used by replay and by `theater events` to show payloads.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> wasmtime::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| wasmtime::format_err!("decoding a chain payload: {e}"))
}
