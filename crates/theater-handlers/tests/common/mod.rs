//! The runtime's test harness (`crates/theater/tests/common`), shared rather than copied.

#[path = "../../../theater/tests/common/mod.rs"]
mod harness;

pub use harness::*;
