//! Any bytes as a chain export file: reading and verifying must return, never panic, and a
//! file that reads must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use theater_chain::ChainFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = ChainFile::decode(data) {
        assert_eq!(file.encode(), data, "an accepted file is not canonical");
        let _ = file.verify();
        let _ = file.referenced_blobs();
    }
});
