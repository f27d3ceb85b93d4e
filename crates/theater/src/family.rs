//! What the configuration layer knows of a handler family: its settings, what a grant lets
//! others rely on, how a child's settings are held within its parent's, and its per-actor
//! state. Not how it links its host functions: that needs the actor's store, which lives
//! layers above (`crate::host`). Keeping this half here lets `manifest` and `attenuation`
//! parse and narrow grants without naming the runtime.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One key of a handler's `[[handler]]` table and how a child's value is held within its
/// parent's. `docs/manifest.md` lists these; a test checks that every key has a rule.
#[derive(Debug, Clone, Copy)]
pub struct SettingKey {
    pub key: &'static str,
    /// The attenuation rule, in words.
    pub rule: &'static str,
}

/// What a handler's settings parser is given.
pub struct SettingsInput<'a> {
    /// The `[[handler]]` table, without `type`. Keys other than the handler's
    /// `Handler::keys` were refused already.
    pub table: &'a toml::Table,
    /// The directory the manifest's relative paths resolve against.
    pub base_dir: &'a Path,
}

/// A child's grant that is not within its parent's: a `spawn` error naming the handler and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{key}`: {message}")]
pub struct Refusal {
    /// `handler "environment"`, `[limits]`, and so on.
    pub what: String,
    pub key: String,
    pub message: String,
}

impl Refusal {
    /// A refusal of `key` in the `[[handler]]` table of `handler`.
    pub fn handler(handler: &str, key: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            what: format!("handler {handler:?}"),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// What a grant lets other parts of the runtime (and other handlers) rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The actor may spawn and supervise children.
    Children,
    /// Files beneath this directory.
    Directory(PathBuf),
    /// These network hosts.
    Hosts(Vec<String>),
}

/// How long a handler's per-actor state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateScope {
    /// As long as the actor: kept while it hibernates, made anew on a restart.
    Actor,
    /// As long as one instance: made anew at every fresh instance (wake, restart, recovery),
    /// like the guest's own memory.
    Instance,
}

/// What [`crate::handlers::Handler::on_recover`] gets: the actor, and the host calls of the
/// family's interfaces its chain recorded, in order (none when the actor starts over from
/// `init`).
pub struct Recovery<'a> {
    pub actor: &'a str,
    pub host_calls: Vec<&'a theater_chain::HostCall>,
    /// The actor's `OutsideInput` (see `Recovery::outside_input`); typed as `Any` so that this
    /// module stays below the core.
    pub(crate) runtime: &'a (dyn Any + Send + Sync),
}

/// How an actor's run ended, for `Handler::on_exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It asked to stop, or was stopped.
    Stopped,
    /// It trapped or failed to start.
    Failed,
}

/// A handler family with its types erased, as manifests hold it: everything but its linking
/// (see `crate::host::Linked`), which needs the actor's store.
pub(crate) trait Family: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn interfaces(&self) -> &'static [&'static str];
    fn keys(&self) -> &'static [SettingKey];
    fn parse(&self, input: &SettingsInput<'_>) -> Result<AnySettings, String>;
    fn attenuate(&self, parent: &AnySettings, child: &AnySettings) -> Result<AnySettings, Refusal>;
    fn implemented(&self) -> bool;
    fn always_granted(&self) -> bool;
    fn grants(&self, settings: &AnySettings) -> Vec<Grant>;
    fn new_state(&self, settings: &AnySettings) -> Box<dyn Any + Send>;
    fn state_scope(&self) -> StateScope;
    fn on_exit(&self, state: &mut (dyn Any + Send), how: ExitKind);
    fn on_recover(
        &self,
        settings: &AnySettings,
        state: &mut (dyn Any + Send),
        recovery: &Recovery<'_>,
    ) -> Result<(), String>;
    fn keeps_run_alive(&self, settings: &AnySettings) -> bool;
    fn check(&self, settings: &AnySettings) -> Result<(), String>;
}

pub(crate) type AnySettings = Arc<dyn Any + Send + Sync>;

pub(crate) fn typed<S: 'static>(settings: &AnySettings) -> &S {
    settings
        .downcast_ref::<S>()
        .expect("a family is only given the settings it parsed")
}

/// The handler families a manifest may name, as parsing sees them (implemented by
/// `crate::host::Registry`).
pub(crate) trait Families {
    /// Every manifest `type`, in registry order.
    fn names(&self) -> Vec<&'static str>;
    fn family(&self, name: &str) -> Option<Arc<dyn Family>>;
    /// The families every actor has, in registry order.
    fn always_granted(&self) -> Vec<Arc<dyn Family>>;
}
