//! Paths of the guest actors under `actors/`, built to components from source by this crate's
//! build script, so tests always run against fresh binaries; and the benchmark actors' bytes.

include!(concat!(env!("OUT_DIR"), "/actors.rs"));

/// The components of the actors the benchmarks run, embedded.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}
