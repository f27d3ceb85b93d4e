//! The actor model's own handler families (`runtime`, `message-server`, `supervisor`), the
//! `root` setting they share with the I/O families, and the manifest as the runtime reads it by
//! default (with these families).
//!
//! The I/O families live in the `theater-handlers` crate, on the public plug-in API
//! (`crate::plugin`). An embedding program adds its own with [`Registry::with`].

mod message_server;
pub(crate) mod root;
mod runtime;
mod supervisor;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::family::Refusal;
use crate::host::Registry;
use crate::manifest::{Manifest, ManifestError, ManifestOrigin};
pub use supervisor::SupervisorSettings;

/// Reads a positive integer setting of a handler's table (`None`: not set), with the error
/// that names the key.
pub fn positive(table: &toml::Table, key: &str) -> Result<Option<u64>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_integer()
            .filter(|n| *n > 0)
            .map(|n| Some(n as u64))
            .ok_or_else(|| format!("`{key}` must be a positive integer")),
    }
}

/// A child's limit: at most the parent's; unset, the parent's. The refusal names the handler
/// and the key.
pub fn at_most(
    handler: &str,
    key: &str,
    child: Option<u64>,
    parent: u64,
) -> Result<Option<u64>, Refusal> {
    match child {
        Some(n) if n > parent => Err(Refusal::handler(
            handler,
            key,
            format!("{n} is more than the parent's {parent}"),
        )),
        _ => Ok(Some(child.unwrap_or(parent))),
    }
}

impl Registry {
    /// The families that are the actor model itself: `runtime` (every actor has it),
    /// `message-server` and `supervisor`. A runtime's default. The I/O families (store,
    /// filesystem, HTTP...) are in the `theater-handlers` crate, whose `builtin()` adds them.
    pub fn actor_model() -> Registry {
        static ACTOR_MODEL: OnceLock<Registry> = OnceLock::new();
        ACTOR_MODEL
            .get_or_init(|| {
                Registry::of(vec![
                    Arc::new(runtime::HANDLER),
                    Arc::new(message_server::HANDLER),
                    Arc::new(supervisor::SupervisorHandler),
                ])
            })
            .clone()
    }
}

impl Default for Registry {
    /// [`Registry::actor_model`].
    fn default() -> Registry {
        Registry::actor_model()
    }
}

// Not derived in `replay.rs`: that would reach `Registry::actor_model`, in this layer, from the
// one below it.
#[allow(clippy::derivable_impls)]
impl Default for crate::replay::ReplayOptions {
    fn default() -> Self {
        crate::replay::ReplayOptions {
            component: None,
            compiled_cache: None,
            from_snapshot: false,
            on_progress: None,
            handlers: Registry::actor_model(),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest file at `path`, with the actor model's handler types
    /// ([`Registry::actor_model`]; see [`Manifest::from_file_with`] for others).
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::read(path, &Registry::actor_model())
    }

    /// Reads and validates the manifest file at `path`, with the handler types of `registry`.
    /// The file must be a regular file of at most [`crate::manifest::MAX_MANIFEST_BYTES`].
    pub fn from_file_with(path: &Path, registry: &Registry) -> Result<Manifest, ManifestError> {
        Manifest::read(path, registry)
    }

    /// Parses manifest text with the actor model's handler types ([`Registry::actor_model`];
    /// see [`Manifest::parse_with`] for others).
    pub fn parse(text: &str, origin: ManifestOrigin) -> Result<Manifest, ManifestError> {
        Manifest::parse_in(text, origin, &Registry::actor_model())
    }

    /// Parses manifest text with the handler types of `registry`; relative paths resolve
    /// against `origin`'s directory.
    pub fn parse_with(
        text: &str,
        origin: ManifestOrigin,
        registry: &Registry,
    ) -> Result<Manifest, ManifestError> {
        Manifest::parse_in(text, origin, registry)
    }
}
