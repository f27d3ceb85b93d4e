//! Theater's I/O handler families: what lets an actor touch the world beyond the actor model.
//!
//! | `[[handler]] type` | module | what it grants |
//! | --- | --- | --- |
//! | `store` | `store` | content-addressed stores with labels, in the data dir's database |
//! | `timing` | `timing` | the clock and sleeps |
//! | `random` | `random` | random numbers and UUIDs |
//! | `environment` | `environment` | the environment variables its patterns allow |
//! | `filesystem` | `filesystem` | files beneath a kernel-confined root, allow-listed commands |
//! | `process` | `process` | allow-listed programs, their output and exit as mailbox calls |
//! | `http-client` | `http_client` | requests to allow-listed hosts |
//! | `http-framework` | `http_framework` | HTTP servers whose requests are mailbox calls |
//!
//! Each family is written against the runtime's public plug-in API ([`theater::plugin`]) and
//! nothing else of the runtime, as an embedding program's own family would be. The actor
//! model's own families (`runtime`, `message-server`, `supervisor`) are in the runtime.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use theater::{Manifest, Runtime, RuntimeConfig};
//!
//! let handlers = theater_handlers::builtin();
//! let runtime = Runtime::new(RuntimeConfig {
//!     handlers: handlers.clone(),
//!     ..Default::default()
//! })?;
//! let manifest = Manifest::from_file_with("actors/dice/manifest.toml".as_ref(), &handlers)?;
//! runtime.spawn(manifest).await?;
//! # Ok(())
//! # }
//! ```

mod environment;
mod filesystem;
mod http_client;
mod http_framework;
mod process;
mod programs;
mod random;
mod store;
mod timing;

use std::sync::OnceLock;

use theater::plugin::Registry;

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
pub use store::{
    DEFAULT_MAX_STORES, DEFAULT_STORE_MAX_BYTES, MAX_LABEL_BYTES, MAX_STORE_NAME_BYTES,
    StoreSettings,
};

/// Every family this build ships: the runtime's actor-model families
/// ([`Registry::actor_model`]) and these, in the order manifests list them in errors. Compose
/// a runtime with it (`RuntimeConfig::handlers`) and parse manifests with it
/// (`Manifest::from_file_with`). Adding a family is a module here and a line below.
pub fn builtin() -> Registry {
    static BUILTIN: OnceLock<Registry> = OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            Registry::actor_model()
                .with(store::StoreHandler)
                .and_then(|r| r.with(timing::HANDLER))
                .and_then(|r| r.with(random::HANDLER))
                .and_then(|r| r.with(environment::EnvironmentHandler))
                .and_then(|r| r.with(filesystem::FilesystemHandler))
                .and_then(|r| r.with(process::ProcessHandler))
                .and_then(|r| r.with(http_client::HttpClientHandler::new()))
                .and_then(|r| r.with(http_framework::HttpFrameworkHandler))
                .expect("the built-in families have distinct names and interfaces")
        })
        .clone()
}
