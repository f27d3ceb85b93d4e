//! Any bytes as one chain event: decoding must return, never panic, and what it accepts must
//! re-encode to the same bytes (as the current encoding version).
#![no_main]

use libfuzzer_sys::fuzz_target;
use theater_chain::{EVENT_ENCODING_VERSION, Event};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        let mut current = data.to_vec();
        current[0] = EVENT_ENCODING_VERSION;
        assert_eq!(
            event.encode(),
            current,
            "an accepted event is not canonical"
        );
    }
});
