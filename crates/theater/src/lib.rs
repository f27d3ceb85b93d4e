//! The Theater runtime: WebAssembly components run as actors, each in its own sandbox, with
//! every crossing of the sandbox boundary recorded in the actor's hash-linked event chain.
//!
//! A [`Runtime`] owns a wasmtime engine (pooling allocator, epoch interruption), the data dir's
//! chain writer and content store, and its actors. Spawning reads a [`Manifest`], links only the
//! interfaces it grants (deny by default), instantiates the component and calls
//! `theater:simple/actor.init`. See `docs/architecture.md` for how a call flows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use theater::{Manifest, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig {
//!     data_dir: Some("/tmp/theater-demo".into()),
//!     ..Default::default()
//! })?;
//! let manifest = Manifest::from_file("actors/hello/manifest.toml".as_ref())?;
//! let actor = runtime.spawn(manifest).await?;
//! println!("spawned {}", actor.id());
//! runtime.quiescent().await;
//! runtime.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod actor;
pub mod attenuation;
pub mod bindings;
mod cell;
mod component;
mod deadlock;
pub mod describe;
mod engine;
mod error;
mod family;
pub mod handlers;
mod host;
mod lifecycle;
mod log_rate;
pub mod manifest;
mod memo;
mod messaging;
mod payload;
pub mod plugin;
mod recordable;
mod recording;
mod recovery;
pub mod replay;
mod replay_log;
mod runtime;
mod services;
mod shared;
pub mod supervision;
mod sync;
pub mod wit;

pub use actor::ActorCtx;
pub use component::{ACTOR_INTERFACE, INIT};
pub use engine::{EPOCH_TICK, EngineSettings};
pub use error::{RuntimeError, SpawnError};
pub use host::Registry;
pub use manifest::{Manifest, ManifestError, ManifestOrigin};
pub use recording::{
    MAX_CHAIN_READ_BYTES, MAX_EVENT_BYTES, MAX_MEMORY_CHAIN_BYTES, MAX_RANGE_EVENTS,
    MAX_WHOLE_CHAIN_EVENTS,
};
pub use recovery::Recovered;
pub use runtime::{
    ActorExit, ActorHandle, DEFAULT_MAILBOX_BUDGET, FLUSH_LIMIT, Lifecycle, LifecycleEvent,
    LifecycleSink, LogLine, LogSink, Runtime, RuntimeConfig, SHUTDOWN_LIMIT, short_id,
};
pub use theater_chain as chain;
/// The wasmtime this runtime is built on, for handlers defined outside it.
pub use wasmtime;
