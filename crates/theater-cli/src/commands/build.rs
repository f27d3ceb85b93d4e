//! `theater build`: compile an actor crate to a component and point its manifest at it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use theater_toolchain::{BuildOptions, Progress, Toolchain};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The actor's crate [default: .]
    dir: Option<PathBuf>,
    /// Build without optimisations
    #[arg(long)]
    debug: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    if !dir.join("Cargo.toml").exists() {
        bail!(
            "{} has no Cargo.toml: `theater build` builds a Rust actor crate (create one with `theater new NAME`)",
            dir.display()
        );
    }
    let toolchain = Toolchain::detect_or_install(&mut |msg| output::status(msg))?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner:.green} {elapsed:>4} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!(
        "building {} with {}",
        dir.display(),
        toolchain.describe()
    ));
    let mut crates = 0;
    let built = toolchain.build(
        &dir,
        &BuildOptions {
            debug: args.debug,
            ..Default::default()
        },
        &mut |p| match p {
            Progress::Compiled(name) => {
                crates += 1;
                bar.set_message(format!("compiled {name} ({crates} crates)"));
            }
            Progress::Componentizing(name) => bar.set_message(format!("componentizing {name}")),
        },
    );
    bar.finish_and_clear();
    let built = built?;
    let package = package_name(&dir)?.replace('-', "_");
    let component = built
        .iter()
        .find(|b| b.name == package)
        .or_else(|| built.first())
        .expect("build returns at least one component");
    let size = std::fs::metadata(&component.component)
        .map(|m| m.len())
        .unwrap_or(0);
    output::status(&format!(
        "built {} ({} KiB)",
        component.component.display(),
        size.div_ceil(1024)
    ));
    let manifest = dir.join("manifest.toml");
    if manifest.exists() {
        point_manifest_at(&manifest, &component.component)?;
        output::status(&format!("{} now points at it", manifest.display()));
    }
    Ok(ExitCode::SUCCESS)
}

fn package_name(dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", dir.join("Cargo.toml").display()))?;
    Ok(doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned())
}

/// Sets `component` in the manifest to `component`'s path relative to the manifest, keeping the
/// rest of the file as it was.
fn point_manifest_at(manifest: &Path, component: &Path) -> Result<()> {
    let text = std::fs::read_to_string(manifest)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", manifest.display()))?;
    let base = std::fs::canonicalize(manifest.parent().unwrap_or(Path::new(".")))?;
    let component = std::fs::canonicalize(component)?;
    let relative = relative_path(&base, &component);
    let value = relative.to_string_lossy().into_owned();
    match doc.get_mut("component").and_then(|c| c.as_value_mut()) {
        Some(existing) => {
            let decor = existing.decor().clone();
            *existing = value.into();
            *existing.decor_mut() = decor;
        }
        None => doc["component"] = toml_edit::value(value),
    }
    std::fs::write(manifest, doc.to_string())?;
    Ok(())
}

fn relative_path(base: &Path, target: &Path) -> PathBuf {
    let base: Vec<_> = base.components().collect();
    let target: Vec<_> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for c in &target[common..] {
        out.push(c);
    }
    out
}
