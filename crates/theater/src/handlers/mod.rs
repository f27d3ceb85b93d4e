//! The handler families this build ships, each one module on the plug-in API of
//! `crate::plugin`, and the manifest as this build reads it (with these families).
//!
//! Adding a family is a module here and a line in [`Registry::builtin`]. An embedding program
//! adds its own with [`Registry::with`].

mod environment;
mod filesystem;
mod http_client;
mod http_framework;
mod message_server;
mod process;
mod programs;
mod random;
mod root;
mod runtime;
mod store;
mod supervisor;
mod timing;

use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use crate::family::{
    ExitKind, Grant, Recovery, Refusal, SettingKey, SettingsInput, StateScope,
};
pub use crate::log_rate::{LOG_BURST, LOG_LINES_PER_SECOND, MAX_LOG_LINE_BYTES};
use crate::manifest::{Manifest, ManifestError, ManifestOrigin};
use crate::plugin::Plain;
pub use crate::plugin::{
    Handler, HostFuture, HostLinker, InterfaceBuilder, PACKAGE, RecordAs, Registry,
    TYPE_ONLY_INTERFACES,
};
pub use environment::EnvironmentSettings;
pub use filesystem::{
    DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_READ_BYTES,
    DEFAULT_MAX_WRITE_BYTES, FilesystemSettings, MAX_LIST_ENTRIES,
};
pub use http_client::{
    AllowedHost, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUT_MS, DEFAULT_MAX_RESPONSE_BYTES,
    HttpClientHandler, HttpClientSettings, MAX_REDIRECTS, NameResolver, SystemResolver, is_public,
};
pub use http_framework::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING, DEFAULT_MAX_SERVERS,
    DEFAULT_REQUEST_TIMEOUT_MS, HttpFrameworkSettings, ListenRule, MAX_ROUTES, PARAM_HEADER_PREFIX,
    WEBSOCKET_QUEUE,
};
pub use process::{
    DEFAULT_MAX_PROCESSES, DEFAULT_PROCESS_OUTPUT_BYTES, MAX_PROCESS_BUFFER, PROCESSES_DIR,
    ProcessSettings, ProcessState, kill_leftovers,
};
pub use programs::Program;
pub use random::MAX_RANDOM_BYTES;
pub use root::RootSetting;
pub use store::{
    DEFAULT_MAX_STORES, DEFAULT_STORE_MAX_BYTES, MAX_LABEL_BYTES, MAX_STORE_NAME_BYTES,
    StoreSettings,
};
pub use supervisor::SupervisorSettings;

/// Reads a positive integer setting.
pub(crate) fn positive(table: &toml::Table, key: &str) -> Result<Option<u64>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_integer()
            .filter(|n| *n > 0)
            .map(|n| Some(n as u64))
            .ok_or_else(|| format!("`{key}` must be a positive integer")),
    }
}

/// A child's limit: at most the parent's; unset, the parent's.
pub(crate) fn at_most(
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
    /// The families this build ships. Adding one is a module and a line here.
    pub fn builtin() -> Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Registry::of(vec![
                    Arc::new(runtime::HANDLER),
                    Arc::new(message_server::HANDLER),
                    Arc::new(supervisor::SupervisorHandler),
                    Arc::new(store::StoreHandler),
                    Arc::new(timing::HANDLER),
                    Arc::new(random::HANDLER),
                    Arc::new(environment::EnvironmentHandler),
                    Arc::new(filesystem::FilesystemHandler),
                    Arc::new(process::ProcessHandler),
                    Arc::new(http_client::HttpClientHandler::new()),
                    Arc::new(http_framework::HttpFrameworkHandler),
                ])
            })
            .clone()
    }
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::builtin()
    }
}

// Not derived in `replay.rs`: that would reach `Registry::builtin`, in this layer, from the
// one below it.
#[allow(clippy::derivable_impls)]
impl Default for crate::replay::ReplayOptions {
    fn default() -> Self {
        crate::replay::ReplayOptions {
            component: None,
            compiled_cache: None,
            from_snapshot: false,
            on_progress: None,
            handlers: Registry::builtin(),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest file at `path`, with the built-in handler types.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::read(path, &Registry::builtin())
    }

    /// Reads and validates the manifest file at `path`, with the handler types of `registry`.
    /// The file must be a regular file of at most [`crate::manifest::MAX_MANIFEST_BYTES`].
    pub fn from_file_with(path: &Path, registry: &Registry) -> Result<Manifest, ManifestError> {
        Manifest::read(path, registry)
    }

    /// Parses manifest text with the built-in handler types.
    pub fn parse(text: &str, origin: ManifestOrigin) -> Result<Manifest, ManifestError> {
        Manifest::parse_in(text, origin, &Registry::builtin())
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
