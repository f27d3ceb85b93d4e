//! Helpers the benchmarks share.

#![allow(dead_code)] // Each benchmark uses a different part.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use theater::{Manifest, ManifestOrigin, RuntimeConfig};

/// `n` times `THEATER_BENCH_SCALE` (default 1), at least 1.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("THEATER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}

/// The environment variable `name`, parsed, or `default` when it is unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An inline manifest for `component` with these extra lines.
pub fn manifest(name: &str, component: &str, extra: &str) -> Manifest {
    let text = format!("name = {name:?}\nversion = \"0.1.0\"\ncomponent = {component:?}\n{extra}");
    Manifest::parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap()
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The runtime configuration of a `recorded` mode (chains persisted in `data_dir`, `batched`)
/// or an `unrecorded` one (no chain), with log lines on stderr.
pub fn config(mode: &str, data_dir: &Path) -> RuntimeConfig {
    let recorded = mode == "recorded";
    RuntimeConfig {
        data_dir: recorded.then(|| data_dir.to_owned()),
        record: recorded,
        durability: theater::chain::Durability::Batched,
        on_log: Arc::new(|line| eprintln!("{}: {}", line.actor_name, line.message)),
        ..Default::default()
    }
}

/// Runs `bench` on a multi-threaded tokio runtime (`workers` threads, or one per core), from a
/// worker task, as an actor would be driven, not from the `block_on` thread.
pub fn on_worker(workers: Option<usize>, bench: impl Future<Output = ()> + Send + 'static) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let tokio = builder.enable_all().build().unwrap();
    let bench = tokio.spawn(bench);
    tokio.block_on(bench).unwrap();
}

/// Runs the mode named on the command line, or, with none, every mode in a fresh process of
/// its own, so that one mode's memory and threads do not blur the next.
pub fn run_modes(modes: &[&str], run_mode: fn(&str)) {
    let mode = std::env::args()
        .skip(1)
        .find(|a| modes.contains(&a.as_str()));
    match mode {
        Some(mode) => run_mode(&mode),
        None => {
            for mode in modes {
                let status = std::process::Command::new(std::env::current_exe().unwrap())
                    .arg(mode)
                    .status()
                    .expect("running a benchmark mode");
                assert!(status.success(), "mode {mode} failed");
            }
        }
    }
}
