#[cfg(feature = "bench")]
pub mod bench;
#[cfg(not(feature = "bench"))]
pub mod bench {
    //! `theater bench` in a build without its workloads.

    use std::process::ExitCode;

    #[derive(clap::Args)]
    pub struct Args {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _rest: Vec<String>,
    }

    pub fn run(_: Args) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "this theater was built without its benchmarks: build it with `cargo build --release -p theater-cli` (the `bench` feature is on by default)"
        )
    }
}
pub mod build;
pub mod chains;
pub mod new;
pub mod replay;
pub mod run;

use std::path::PathBuf;

use anyhow::{Result, bail};

/// `--data-dir`, else `$THEATER_HOME`, else `~/.theater`.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os("THEATER_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".theater")),
        None => bail!("no data dir: pass --data-dir DIR or set THEATER_HOME (HOME is not set)"),
    }
}
