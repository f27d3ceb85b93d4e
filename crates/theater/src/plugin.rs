//! The plug-in API: everything a handler family is written with, in one place.
//!
//! A handler family is one module (or crate) that implements [`Handler`]:
//!
//! - **settings**: the keys of its `[[handler]]` table ([`Handler::keys`], [`SettingKey`]),
//!   parsed strictly ([`Handler::parse`], with [`positive`] for limits);
//! - **attenuation**: how a child's settings are held within its parent's
//!   ([`Handler::attenuate`], [`Refusal`], [`at_most`]);
//! - **linking**: its host functions, each registered through [`InterfaceBuilder::func`],
//!   the one wrapper that records every host call in the actor's chain (and in a replay
//!   returns the recorded result instead of running the function). Params and results are
//!   [`Recordable`];
//! - **exports**: the guest exports it calls ([`HandlerExport`], listed by
//!   [`Handler::exports`]), delivered to the actor's mailbox through [`OutsideInput`] and
//!   recorded, and replayed, like any message;
//! - **state**: per actor ([`Handler::new_state`], reached with [`ActorCtx::handler_state`]),
//!   released at exit ([`Handler::on_exit`]) and rebuilt after a crash
//!   ([`Handler::on_recover`]).
//!
//! An embedding program adds its family to a [`Registry`] with [`Registry::with`] and hands
//! the registry to `RuntimeConfig::handlers`. `docs/handlers.md` walks through a real family.

pub use crate::actor::{ActorCtx, Returns, State, now_ms};
/// The Rust types of every WIT type of `theater:simple`.
pub use crate::bindings;
pub use crate::cell::{Call, CallAnswer, CallFailure};
pub use crate::component::{ExportDecl, HandlerExport};
pub use crate::family::{
    ExitKind, Grant, Recovery, Refusal, SettingKey, SettingsInput, StateScope,
};
pub use crate::handlers::root::RootSetting;
pub use crate::handlers::{at_most, positive};
pub use crate::host::{
    Handler, HostFuture, HostLinker, InterfaceBuilder, PACKAGE, Plain, RecordAs, Registry,
    TYPE_ONLY_INTERFACES,
};
pub use crate::log_rate::{LOG_BURST, LOG_LINES_PER_SECOND, MAX_LOG_LINE_BYTES};
pub use crate::messaging::{KeepAlive, OutsideInput};
pub use crate::recordable::{RecordWithSerde, Recordable, decode, encode};
pub use crate::sync::LockExt;
/// The chain's types (a handler that commits its own tables uses its writer).
pub use theater_chain as chain;
/// The content store's types.
pub use theater_store as store;
/// The wasmtime the runtime is built on.
pub use wasmtime;
