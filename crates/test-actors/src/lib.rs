//! Paths of the guest actors under `actors/`, built to components from source by this crate's
//! build script, so tests always run against fresh binaries.

include!(concat!(env!("OUT_DIR"), "/actors.rs"));
