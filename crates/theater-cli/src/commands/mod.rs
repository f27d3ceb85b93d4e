pub mod bench;
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
