//! The manifest parser on arbitrary text, with every handler family this project ships (each
//! parses its own table): a manifest or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use theater::{Manifest, ManifestOrigin};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let origin = ManifestOrigin::Inline {
            base_dir: ".".into(),
        };
        let _ = Manifest::parse_with(text, origin, &theater_handlers::builtin());
    }
});
