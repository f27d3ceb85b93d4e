//! A handler's `root` setting: the directory everything the handler opens for an actor lies
//! beneath (the supervisor's child files, the filesystem's paths, a process's working
//! directory). One rule for all of them: the operator's root is opened by path, a child's
//! beneath its parent's opened root (kernel-confined), and unset, a child's is its parent's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use theater_files::Root;

use crate::family::{Refusal, SettingsInput};

#[derive(Debug, Clone)]
pub struct RootSetting {
    /// `root`, resolved against the manifest's directory; `None`: not set.
    pub requested: Option<PathBuf>,
    /// The manifest's directory: the root of an operator's actor that names none.
    base_dir: PathBuf,
    /// Opened once, at its first use (never in a replay, which opens nothing): by path for
    /// the operator's actor, beneath the parent's root for a child (see
    /// [`RootSetting::within`]).
    opened: Arc<OnceLock<Result<Root, String>>>,
}

impl RootSetting {
    /// The `root` key of a handler's table; `required` is the error when it is missing, or
    /// `None` when the manifest's directory stands in.
    pub fn parse(input: &SettingsInput<'_>, required: Option<&str>) -> Result<RootSetting, String> {
        let requested = match input.table.get("root") {
            None => match required {
                Some(why) => return Err(why.to_owned()),
                None => None,
            },
            Some(root) => Some(
                input.base_dir.join(
                    root.as_str()
                        .ok_or("`root` must be a string (a directory)")?,
                ),
            ),
        };
        Ok(RootSetting {
            requested,
            base_dir: input.base_dir.to_owned(),
            opened: Arc::default(),
        })
    }

    /// The directory, opened; an error names `handler` and the directory.
    pub fn open(&self, handler: &str) -> Result<&Root, String> {
        self.opened
            .get_or_init(|| Root::open(self.named()).map_err(|e| format!("{handler} {e}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The directory `root` names, or the manifest's directory when it names none.
    pub fn named(&self) -> &Path {
        self.requested.as_deref().unwrap_or(&self.base_dir)
    }

    /// The directory as opened (a child's is its parent's when it names none), else as named.
    pub fn granted(&self) -> PathBuf {
        match self.opened.get() {
            Some(Ok(root)) => root.path().to_owned(),
            _ => self.named().to_owned(),
        }
    }

    /// This child's root held within `parent`'s: opened beneath it, or the parent's when it
    /// names none. A refusal names `handler`'s `root` key.
    pub fn within(self, parent: &RootSetting, handler: &str) -> Result<RootSetting, Refusal> {
        let refuse = |message: String| Refusal::handler(handler, "root", message);
        let parent_root = parent.open(handler).map_err(refuse)?;
        let root = match &self.requested {
            None => parent_root.clone(),
            Some(path) => parent_root.subdir(path, "root").map_err(|e| {
                refuse(format!(
                    "{e} (a child's {handler} root must be beneath its parent's {})",
                    parent_root.path().display()
                ))
            })?,
        };
        Ok(RootSetting {
            opened: Arc::new(OnceLock::from(Ok(root))),
            ..self
        })
    }
}
