//! What `theater events` prints, for arbitrary events and payloads: a line without control
//! characters, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use theater::chain::Event;
use theater::describe;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        let line = describe::event(&event.kind);
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    // The first bytes up to a zero as a function name, the rest as its payload.
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    if let Ok(function) = std::str::from_utf8(&data[..split]) {
        let payload = data.get(split + 1..).unwrap_or_default();
        let _ = describe::params(function, payload);
        let _ = describe::result(function, payload);
    }
});
