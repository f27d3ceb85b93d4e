//! Builds every actor under `actors/` to a component (one shared guest target dir, so std is
//! compiled once) and exposes their paths as constants.

use std::fmt::Write;
use std::path::PathBuf;

use theater_toolchain::{BuildOptions, Progress, Toolchain};

/// The actors `theater bench` runs (see crates/theater-bench).
const EMBEDDED: &[&str] = &[
    "minimal",
    "bench-actor",
    "skynet",
    "io-bench",
    "http-server",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap().parent().unwrap();
    let actors = repo.join("actors");
    for watched in ["actors", "wit"] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let toolchain = match Toolchain::detect_or_install(&mut |msg| {
        println!("cargo:warning={msg}");
    }) {
        Ok(t) => t,
        Err(e) => panic!("{e:#}"),
    };
    let options = BuildOptions {
        target_dir: Some(actors.join("target")),
        cargo_args: vec!["--workspace".into()],
        ..Default::default()
    };
    let built = toolchain
        .build(&actors, &options, &mut |_: Progress<'_>| {})
        .unwrap_or_else(|e| panic!("building the test actors: {e:#}"));

    let mut out = String::new();
    for b in &built {
        let name = b.name.to_uppercase().replace('-', "_");
        writeln!(
            out,
            "/// The `{}` actor's component.\npub const {name}: &str = {:?};",
            b.name,
            b.component.display().to_string()
        )
        .unwrap();
        writeln!(
            out,
            "/// The `{}` actor's core module (before componentizing).\npub const {name}_MODULE: &str = {:?};",
            b.name,
            b.module.display().to_string()
        )
        .unwrap();
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("actors.rs"), out).unwrap();

    // The benchmark actors' bytes, so that `theater bench` runs outside this repository.
    let mut embedded = String::new();
    for b in built
        .iter()
        .filter(|b| EMBEDDED.contains(&b.name.replace('_', "-").as_str()))
    {
        writeln!(
            embedded,
            "/// The `{}` actor's component.\npub const {}: &[u8] = include_bytes!({:?});",
            b.name,
            b.name.to_uppercase().replace('-', "_"),
            b.component.display().to_string()
        )
        .unwrap();
    }
    std::fs::write(out_dir.join("embedded.rs"), embedded).unwrap();
}
