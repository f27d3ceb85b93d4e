//! Helpers the benchmarks share.

use theater::{Manifest, ManifestOrigin};

/// `n` times `THEATER_BENCH_SCALE` (default 1), at least 1.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("THEATER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
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
