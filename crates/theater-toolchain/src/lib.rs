//! Builds Rust guest actors into WebAssembly components, on any machine.
//!
//! Two ways to compile for `wasm32-unknown-unknown` are supported, and [`Toolchain::detect`]
//! picks the one this machine has:
//! - rustup's `wasm32-unknown-unknown` target (the normal case);
//! - Debian's `rustc-web` + `rust-web-src` packages with `-Z build-std`, linked by rustup's
//!   `rust-lld`, for machines whose rustup cannot download targets.
//!
//! The nested cargo build never inherits the outer build's `RUSTC`, `RUSTFLAGS` or `CARGO_*`
//! settings, so it works the same from a terminal, from `theater build` and from a `build.rs`.
//! Cargo's core module is turned into a component with `wit-component` and written as a new
//! file beside it (`NAME.component.wasm`), never over cargo's output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

pub const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_LIBRARY_SRC: &str = "/usr/lib/rustlib/src/rust/library";
const DEBIAN_PACKAGES: &str = "rustc-web rust-web-src";

/// How this machine compiles Rust for wasm32.
#[derive(Debug, Clone)]
pub enum Toolchain {
    /// rustup's toolchain with the wasm32 target installed.
    Rustup,
    /// Debian's rustc compiling std from source, linking with `lld`.
    DebianBuildStd { rustc: PathBuf, lld: PathBuf },
}

/// A component produced by [`Toolchain::build`].
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// The cargo target's name (`my_actor`).
    pub name: String,
    /// Cargo's core module.
    pub module: PathBuf,
    /// The component, written beside it.
    pub component: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Cargo's target dir; the crate's own `target/` if unset.
    pub target_dir: Option<PathBuf>,
    /// Build in debug mode instead of release.
    pub debug: bool,
    /// Extra arguments for `cargo build` (`-p NAME`, `--workspace`).
    pub cargo_args: Vec<String>,
}

/// What the build reports while it runs.
pub enum Progress<'a> {
    /// Cargo finished compiling this crate.
    Compiled(&'a str),
    /// Turning a core module into a component.
    Componentizing(&'a str),
}

/// A command with the outer build's compiler settings removed.
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited_build_setting = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTFLAGS")
            || key.starts_with("RUSTDOCFLAGS")
            || key == "RUSTUP_TOOLCHAIN"
            || key.starts_with("DEP_")
            || key == "TARGET"
            || key == "HOST"
            || key == "OUT_DIR"
            || key == "OPT_LEVEL"
            || key == "PROFILE"
            || key == "DEBUG";
        if inherited_build_setting {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `cargo` to run: the one that runs us if we're inside cargo, else the one on PATH.
fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// rustup's (or the PATH's) rustc, never an outer build's `RUSTC` override.
fn rustc_on_path() -> PathBuf {
    // Cargo puts its toolchain's bin dir first on PATH for build scripts, so this is the same
    // rustc the outer build uses.
    which::which("rustc").unwrap_or_else(|_| PathBuf::from("rustc"))
}

fn rustup_has_target() -> bool {
    let libdir = output_of(clean_command(rustc_on_path()).args([
        "--print",
        "target-libdir",
        "--target",
        TARGET,
    ]));
    match libdir {
        Some(dir) => std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
            .unwrap_or(false),
        None => false,
    }
}

/// `rust-lld` from rustup's toolchain, or an `lld`/`wasm-ld` on PATH.
fn find_lld() -> Option<PathBuf> {
    let rustc = rustc_on_path();
    let sysroot = output_of(clean_command(&rustc).args(["--print", "sysroot"]))?;
    let host = output_of(clean_command(&rustc).arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))?;
    let lld = Path::new(&sysroot).join(format!("lib/rustlib/{host}/bin/rust-lld"));
    if lld.exists() {
        return Some(lld);
    }
    ["rust-lld", "wasm-ld"]
        .iter()
        .find_map(|name| which::which(name).ok())
}

fn debian_fallback() -> Option<Toolchain> {
    let rustc = PathBuf::from(DEBIAN_RUSTC);
    if !rustc.exists() || !Path::new(DEBIAN_LIBRARY_SRC).exists() {
        return None;
    }
    Some(Toolchain::DebianBuildStd {
        rustc,
        lld: find_lld()?,
    })
}

impl Toolchain {
    /// Finds a way to compile for wasm32 without installing anything.
    pub fn detect() -> Option<Toolchain> {
        if rustup_has_target() {
            return Some(Toolchain::Rustup);
        }
        debian_fallback()
    }

    /// Finds a toolchain, installing one if there is none: first `rustup target add`, then
    /// (as root on Debian) `apt-get install rustc-web rust-web-src`. `say` reports each step.
    pub fn detect_or_install(say: &mut dyn FnMut(&str)) -> Result<Toolchain> {
        if let Some(t) = Self::detect() {
            return Ok(t);
        }
        if which::which("rustup").is_ok() {
            say(&format!("installing the {TARGET} target with rustup"));
            let ok = clean_command("rustup")
                .args(["target", "add", TARGET])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok && let Some(t) = Self::detect() {
                return Ok(t);
            }
        }
        let is_root = output_of(Command::new("id").arg("-u")).as_deref() == Some("0");
        if which::which("apt-get").is_ok() && is_root {
            say(&format!(
                "rustup has no {TARGET} target here; installing Debian's {DEBIAN_PACKAGES}"
            ));
            for args in [
                &["update", "-qq"][..],
                &[
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "rustc-web",
                    "rust-web-src",
                ],
            ] {
                let status = Command::new("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .status()
                    .context("running apt-get")?;
                if !status.success() {
                    bail!("`apt-get {}` failed", args.join(" "));
                }
            }
            if let Some(t) = Self::detect() {
                return Ok(t);
            }
        }
        bail!(
            "no way to compile Rust for {TARGET} on this machine: run `rustup target add {TARGET}`, \
             or on Debian `apt-get install {DEBIAN_PACKAGES}` (rustup's rust-lld is used to link)"
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Toolchain::Rustup => format!("rustup's {TARGET} target"),
            Toolchain::DebianBuildStd { rustc, lld } => format!(
                "{} with -Z build-std, linked by {}",
                rustc.display(),
                lld.display()
            ),
        }
    }

    /// The `cargo build` command for `crate_dir`, environment included.
    fn cargo_command(&self, crate_dir: &Path, options: &BuildOptions) -> Command {
        let mut cmd = clean_command(cargo_program());
        cmd.current_dir(crate_dir)
            .args([
                "build",
                "--target",
                TARGET,
                "--message-format=json-render-diagnostics",
            ])
            .args(&options.cargo_args);
        if !options.debug {
            cmd.arg("--release");
        }
        if let Some(dir) = &options.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        if let Toolchain::DebianBuildStd { rustc, lld } = self {
            cmd.env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", lld);
        }
        cmd
    }

    /// Builds every `cdylib` of the crate (or workspace) in `crate_dir` and writes a component
    /// beside each core module.
    pub fn build(
        &self,
        crate_dir: &Path,
        options: &BuildOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Vec<BuiltComponent>> {
        let mut child = self
            .cargo_command(crate_dir, options)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running cargo (is it on PATH?)")?;
        // Cargo's diagnostics go to stderr; keep them for the error message.
        let stderr = child.stderr.take().expect("piped");
        let stderr_thread = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.push(line);
            }
            lines
        });
        let mut modules = Vec::new();
        for line in BufReader::new(child.stdout.take().expect("piped"))
            .lines()
            .map_while(Result::ok)
        {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let name = msg["target"]["name"].as_str().unwrap_or("?").to_owned();
            progress(Progress::Compiled(&name));
            let is_cdylib = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if !is_cdylib {
                continue;
            }
            let wasm = msg["filenames"].as_array().and_then(|files| {
                files
                    .iter()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from)
            });
            if let Some(wasm) = wasm {
                modules.push((name, wasm));
            }
        }
        let status = child.wait().context("waiting for cargo")?;
        let stderr_lines = stderr_thread.join().unwrap_or_default();
        if !status.success() {
            // Show cargo's first error and what follows it, not the progress lines before it.
            let first_error = stderr_lines
                .iter()
                .position(|l| l.starts_with("error"))
                .unwrap_or(stderr_lines.len().saturating_sub(40));
            let tail: Vec<_> = stderr_lines[first_error..]
                .iter()
                .take(60)
                .map(String::as_str)
                .collect();
            bail!(
                "cargo build for {TARGET} failed in {} (using {}):\n{}",
                crate_dir.display(),
                self.describe(),
                tail.join("\n")
            );
        }
        if modules.is_empty() {
            bail!(
                "{} built no cdylib: an actor crate needs `[lib] crate-type = [\"cdylib\"]` in its Cargo.toml",
                crate_dir.display()
            );
        }
        modules
            .into_iter()
            .map(|(name, module)| {
                progress(Progress::Componentizing(&name));
                let component = module.with_extension("component.wasm");
                componentize_file(&module, &component)?;
                Ok(BuiltComponent {
                    name,
                    module,
                    component,
                })
            })
            .collect()
    }
}

/// Turns a core module built with `wit-bindgen` into a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .context("reading the module's component-type section (was it built with wit-bindgen?)")?
        .validate(true)
        .encode()
        .context("encoding the component")
}

fn componentize_file(module: &Path, component: &Path) -> Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let encoded =
        componentize(&bytes).with_context(|| format!("componentizing {}", module.display()))?;
    // Write then rename, so a reader never sees half a component.
    let tmp = component.with_extension("wasm.tmp");
    std::fs::write(&tmp, encoded).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, component).with_context(|| format!("writing {}", component.display()))
}
