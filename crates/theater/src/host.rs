//! Host capabilities as plug-ins: the API a handler family implements, and the one wrapper
//! that records its host calls.
//!
//! A handler family is one module that implements [`Handler`]: its settings (parsed strictly
//! from its `[[handler]]` table), the interfaces it provides, how it links them, and how a
//! child's settings are held within its parent's ([`Handler::attenuate`]). The runtime core
//! names no handler: it knows them through a [`Registry`]. The actor model's own families are
//! in `crate::handlers`, a layer above this one, and the I/O families in the
//! `theater-handlers` crate; an embedding program adds its own with [`Registry::with`].
//!
//! Every host function is registered through [`InterfaceBuilder::func`], the one place that
//! records host calls in the chain. A handler never records by hand.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use theater_chain::{EventKind, HostCall, HostResult};
use wasmtime::component::{ComponentNamedList, Lift, Linker, LinkerInstance, Lower};
use wasmtime::{AsContextMut, StoreContextMut};

use crate::actor::ActorCtx;
use crate::component::ExportDecl;
use crate::family::{
    AnySettings, ExitKind, Families, Family, Grant, Recovery, Refusal, SettingKey, SettingsInput,
    StateScope, typed,
};
use crate::recordable::Recordable;
use crate::replay_log::{Rebuild, ReplayLog};

/// The WIT package every built-in interface lives in.
pub const PACKAGE: &str = "theater:simple";

/// Interfaces that hold only types. Linked (empty) for every actor; they need no grant.
pub const TYPE_ONLY_INTERFACES: &[&str] = &[
    "theater:simple/types",
    "theater:simple/http-types",
    "theater:simple/websocket-types",
];

/// One handler family. Implement it in one module, add it to a [`Registry`], and actors whose
/// manifest has `[[handler]] type = NAME` are linked with its interfaces.
pub trait Handler: Send + Sync + 'static {
    /// Its settings, parsed from its `[[handler]]` table.
    type Settings: Clone + Debug + Send + Sync + 'static;
    /// Per-actor state the host functions keep (`()` for none).
    type State: Send + 'static;

    /// The manifest's `type`.
    fn name(&self) -> &'static str;
    /// The imported interfaces it provides.
    fn interfaces(&self) -> &'static [&'static str];
    /// The keys its table may have besides `type`, each with its attenuation rule.
    fn keys(&self) -> &'static [SettingKey] {
        &[]
    }
    /// Parses its table. Unknown keys were refused already; an error names the key.
    fn parse(&self, input: &SettingsInput<'_>) -> Result<Self::Settings, String>;
    /// A child's settings held within its parent's: the child's, narrowed where it left
    /// something unset, or a refusal naming the key it asked too much of.
    fn attenuate(
        &self,
        parent: &Self::Settings,
        child: Self::Settings,
    ) -> Result<Self::Settings, Refusal>;
    /// Registers its host functions, each through [`InterfaceBuilder::func`].
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()>;
    /// The guest exports it calls (through [`crate::plugin::OutsideInput`]), each declared as a
    /// [`HandlerExport`](crate::plugin::HandlerExport) `static`: linking finds them in the
    /// component, and a replay drives their recorded calls.
    fn exports(&self) -> &'static [&'static ExportDecl] {
        &[]
    }

    /// Whether this build implements it (a type the API names but this build does not
    /// provide yet is refused at spawn, naming it).
    fn implemented(&self) -> bool {
        true
    }
    /// Whether every actor has it, listed in its manifest or not (with default settings).
    fn always_granted(&self) -> bool {
        false
    }
    /// What the grant lets others rely on.
    fn grants(&self, _settings: &Self::Settings) -> Vec<Grant> {
        Vec::new()
    }
    /// The actor's state for this handler, made when the actor starts (and again per
    /// [`Handler::state_scope`]). It also runs in replays, where host functions do not: it
    /// must not touch the world.
    fn new_state(&self, settings: &Self::Settings) -> Self::State;
    fn state_scope(&self) -> StateScope {
        StateScope::Actor
    }
    /// Called once when the actor's run ends (stop, shutdown, trap, failed start): release what
    /// the state holds.
    fn on_exit(&self, _state: &mut Self::State, _how: ExitKind) {}
    /// Called when a runtime brings the actor back after a crash, before its first call, with
    /// what its chain recorded of this family's host calls: rebuild what the state held
    /// outside the actor (a server's listening socket, say). An error fails the actor, with it
    /// as the reason.
    fn on_recover(
        &self,
        _settings: &Self::Settings,
        _state: &mut Self::State,
        _recovery: &Recovery<'_>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Whether an actor with this grant keeps the run going while idle (a server waiting for
    /// connections, a process): the runtime is not quiescent while such an actor lives.
    fn keeps_run_alive(&self, _settings: &Self::Settings) -> bool {
        false
    }
    /// Whether the world has what the settings name (a directory, a program), checked when a
    /// live actor spawns: an error refuses the spawn with this reason. Replays do not call it
    /// (they touch nothing), so settings must parse without the world: keep what is missing
    /// in the settings and report it here.
    fn check(&self, _settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }
    /// Called when a runtime takes a data dir (holding the dir's lock, before any actor of it
    /// runs): clean up what a runtime that died left behind there (the process handler kills
    /// the process groups it recorded). Not called for a runtime without a data dir.
    fn on_data_dir_locked(&self, _data_dir: &Path) {}
}

/// A handler family with its types erased, as the registry holds it: a [`Family`] that can
/// also link its host functions.
pub(crate) trait Linked: Family {
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()>;
    fn exports(&self) -> &'static [&'static ExportDecl];
    fn on_data_dir_locked(&self, data_dir: &Path);
}

impl<H: Handler> Linked for H {
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        Handler::link(self, linker)
    }
    fn exports(&self) -> &'static [&'static ExportDecl] {
        Handler::exports(self)
    }
    fn on_data_dir_locked(&self, data_dir: &Path) {
        Handler::on_data_dir_locked(self, data_dir)
    }
}

impl<H: Handler> Family for H {
    fn name(&self) -> &'static str {
        Handler::name(self)
    }
    fn interfaces(&self) -> &'static [&'static str] {
        Handler::interfaces(self)
    }
    fn keys(&self) -> &'static [SettingKey] {
        Handler::keys(self)
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<AnySettings, String> {
        Ok(Arc::new(Handler::parse(self, input)?))
    }
    fn attenuate(&self, parent: &AnySettings, child: &AnySettings) -> Result<AnySettings, Refusal> {
        let child = typed::<H::Settings>(child).clone();
        Ok(Arc::new(Handler::attenuate(
            self,
            typed::<H::Settings>(parent),
            child,
        )?))
    }
    fn implemented(&self) -> bool {
        Handler::implemented(self)
    }
    fn always_granted(&self) -> bool {
        Handler::always_granted(self)
    }
    fn grants(&self, settings: &AnySettings) -> Vec<Grant> {
        Handler::grants(self, typed(settings))
    }
    fn new_state(&self, settings: &AnySettings) -> Box<dyn Any + Send> {
        Box::new(Handler::new_state(self, typed(settings)))
    }
    fn state_scope(&self) -> StateScope {
        Handler::state_scope(self)
    }
    fn on_exit(&self, state: &mut (dyn Any + Send), how: ExitKind) {
        if let Some(state) = state.downcast_mut::<H::State>() {
            Handler::on_exit(self, state, how);
        }
    }
    fn on_recover(
        &self,
        settings: &AnySettings,
        state: &mut (dyn Any + Send),
        recovery: &Recovery<'_>,
    ) -> Result<(), String> {
        match state.downcast_mut::<H::State>() {
            Some(state) => Handler::on_recover(self, typed(settings), state, recovery),
            None => Ok(()),
        }
    }
    fn keeps_run_alive(&self, settings: &AnySettings) -> bool {
        Handler::keeps_run_alive(self, typed(settings))
    }
    fn check(&self, settings: &AnySettings) -> Result<(), String> {
        Handler::check(self, typed(settings))
    }
}

/// A handler family with no settings and no per-actor state: its name, its interfaces and how
/// to link them. A child that has it has it as its parent does.
pub struct Plain {
    pub name: &'static str,
    pub interfaces: &'static [&'static str],
    /// `None`: a type the API names whose host functions this build does not provide yet. Its
    /// manifest entry parses (so manifests written for it are valid) and spawning refuses it
    /// by name.
    pub link: Option<fn(&mut HostLinker<'_>) -> wasmtime::Result<()>>,
    /// Whether every actor has it, listed in its manifest or not.
    pub always_granted: bool,
}

impl Handler for Plain {
    type Settings = ();
    type State = ();
    fn name(&self) -> &'static str {
        self.name
    }
    fn interfaces(&self) -> &'static [&'static str] {
        self.interfaces
    }
    fn parse(&self, _: &SettingsInput<'_>) -> Result<(), String> {
        Ok(())
    }
    fn attenuate(&self, _: &(), (): ()) -> Result<(), Refusal> {
        Ok(())
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        match self.link {
            Some(link) => link(linker),
            None => wasmtime::bail!(
                "handler type {:?} is part of the API but this build does not implement it yet",
                self.name
            ),
        }
    }
    fn implemented(&self) -> bool {
        self.link.is_some()
    }
    fn always_granted(&self) -> bool {
        self.always_granted
    }
    fn new_state(&self, (): &()) {}
}

/// The handler families a runtime knows, by manifest `type`.
#[derive(Clone)]
pub struct Registry {
    families: Arc<Vec<Arc<dyn Linked>>>,
}

impl Registry {
    /// A registry of exactly these families (`crate::handlers` builds the built-in one).
    pub(crate) fn of(families: Vec<Arc<dyn Linked>>) -> Registry {
        Registry {
            families: Arc::new(families),
        }
    }

    /// This registry and `handler`. Refuses a name or an interface another family has.
    pub fn with<H: Handler>(self, handler: H) -> Result<Registry, String> {
        let name = Handler::name(&handler);
        if self.family(name).is_some() {
            return Err(format!("a handler type {name:?} is registered already"));
        }
        if let Some(taken) = Handler::interfaces(&handler)
            .iter()
            .find(|i| self.granting(i).is_some() || TYPE_ONLY_INTERFACES.contains(i))
        {
            return Err(format!(
                "handler type {name:?}: interface {taken} is provided already"
            ));
        }
        // A replay finds an export by the path its call-start records: one path, one meaning.
        if let Some(taken) = Handler::exports(&handler).iter().find(|decl| {
            crate::component::Export::from_path(decl.path()).is_some()
                || self
                    .families
                    .iter()
                    .any(|f| f.exports().iter().any(|d| d.path() == decl.path()))
        }) {
            return Err(format!(
                "handler type {name:?}: export {} is the runtime's or another family's",
                taken.path()
            ));
        }
        let mut families = (*self.families).clone();
        families.push(Arc::new(handler));
        Ok(Registry {
            families: Arc::new(families),
        })
    }

    /// This registry with `handler` in place of the family of the same name: a built-in family
    /// configured otherwise (an HTTP client with its own name resolver, say). Manifests must be
    /// parsed with the registry that results, as with [`Registry::with`].
    pub fn replacing<H: Handler>(self, handler: H) -> Result<Registry, String> {
        let name = Handler::name(&handler);
        let at = self
            .families
            .iter()
            .position(|f| f.name() == name)
            .ok_or_else(|| format!("no handler type {name:?} to replace"))?;
        if self.families[at].interfaces() != Handler::interfaces(&handler) {
            return Err(format!(
                "handler type {name:?}: the replacement must provide the same interfaces"
            ));
        }
        let mut families = (*self.families).clone();
        families[at] = Arc::new(handler);
        Ok(Registry {
            families: Arc::new(families),
        })
    }

    /// This registry without the family `name`: manifests parsed with the result refuse it as
    /// an unknown handler type. A family every actor has (`runtime`) cannot be left out.
    pub fn without(self, name: &str) -> Result<Registry, String> {
        if self.family(name).is_some_and(|f| f.always_granted()) {
            return Err(format!(
                "handler type {name:?} is granted to every actor and cannot be left out"
            ));
        }
        let mut families = (*self.families).clone();
        let before = families.len();
        families.retain(|f| f.name() != name);
        if families.len() == before {
            return Err(format!("no handler type {name:?} to leave out"));
        }
        Ok(Registry {
            families: Arc::new(families),
        })
    }

    pub(crate) fn family(&self, name: &str) -> Option<&Arc<dyn Linked>> {
        self.families.iter().find(|f| f.name() == name)
    }

    /// The family that provides `interface`, if any.
    pub(crate) fn granting(&self, interface: &str) -> Option<&Arc<dyn Linked>> {
        self.families
            .iter()
            .find(|f| f.interfaces().contains(&interface))
    }

    /// Tells every family that a runtime took `data_dir` (see
    /// [`Handler::on_data_dir_locked`]).
    pub(crate) fn data_dir_locked(&self, data_dir: &Path) {
        for family in self.families.iter() {
            family.on_data_dir_locked(data_dir);
        }
    }

    /// Every manifest `type`, in registry order.
    pub fn names(&self) -> Vec<&'static str> {
        self.families.iter().map(|f| f.name()).collect()
    }

    /// The interfaces of `name`, if it is registered.
    pub fn interfaces(&self, name: &str) -> Option<&'static [&'static str]> {
        self.family(name).map(|f| f.interfaces())
    }

    /// Whether this build provides `name`'s host functions.
    pub fn is_implemented(&self, name: &str) -> bool {
        self.family(name).is_some_and(|f| f.implemented())
    }

    /// The settings keys of `name`, with their attenuation rules.
    pub fn keys(&self, name: &str) -> &'static [SettingKey] {
        self.family(name).map_or(&[], |f| f.keys())
    }

    /// The `(interface, function)` pairs `name` registers, for checking them against the WIT.
    pub fn registered_functions(
        &self,
        name: &str,
    ) -> wasmtime::Result<Vec<(&'static str, &'static str)>> {
        let family = self
            .family(name)
            .ok_or_else(|| wasmtime::format_err!("no handler type {name:?}"))?;
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        let mut host = HostLinker {
            linker: &mut linker,
            registered: Vec::new(),
        };
        family.link(&mut host)?;
        Ok(host.registered)
    }
}

impl Families for Registry {
    fn names(&self) -> Vec<&'static str> {
        Registry::names(self)
    }
    fn family(&self, name: &str) -> Option<Arc<dyn Family>> {
        Registry::family(self, name).map(|f| f.clone() as Arc<dyn Family>)
    }
    fn always_granted(&self) -> Vec<Arc<dyn Family>> {
        self.families
            .iter()
            .filter(|f| f.always_granted())
            .map(|f| f.clone() as Arc<dyn Family>)
            .collect()
    }
}

impl Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Where a handler registers its interfaces.
pub struct HostLinker<'l> {
    pub(crate) linker: &'l mut Linker<ActorCtx>,
    pub(crate) registered: Vec<(&'static str, &'static str)>,
}

impl<'l> HostLinker<'l> {
    /// The functions of `interface`, each registered through the recording wrapper.
    pub fn interface(&mut self, interface: &'static str) -> wasmtime::Result<InterfaceBuilder<'_>> {
        Ok(InterfaceBuilder {
            interface,
            instance: self.linker.instance(interface)?,
            registered: &mut self.registered,
        })
    }
}

/// What a host function returns to the wrapper: a future borrowing the store.
pub type HostFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// How a host call's result is recorded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RecordAs {
    /// The result itself, in the payload encoding.
    Value,
    /// A reference to the chain as it was before the call (length and head), for results that
    /// are derived from the chain and would otherwise copy it into itself.
    ChainRef,
}

// A host function may also leave a different record in `ActorCtx::note` (a reference to
// another actor's chain) and the id of the message it sent.

/// Registers the functions of one interface.
pub struct InterfaceBuilder<'a> {
    interface: &'static str,
    instance: LinkerInstance<'a, ActorCtx>,
    registered: &'a mut Vec<(&'static str, &'static str)>,
}

impl InterfaceBuilder<'_> {
    /// Registers `f` as `function`, wrapped so that every call is recorded as a host-call event
    /// (interface, function, params, result) after it returns. A host error is recorded too
    /// (the guest traps on it). In a replay `f` does not run: the wrapper returns the result,
    /// or the error, the chain recorded.
    pub fn func<P, R>(
        &mut self,
        function: &'static str,
        record_as: RecordAs,
        f: for<'s> fn(StoreContextMut<'s, ActorCtx>, P) -> HostFuture<'s, R>,
    ) -> wasmtime::Result<()>
    where
        P: ComponentNamedList + Lift + Recordable,
        R: ComponentNamedList + Lower + Recordable,
    {
        self.register(function, record_as, f, None)
    }

    /// Like [`InterfaceBuilder::func`], for a function whose result may be recorded as a
    /// reference to a chain (`get-chain`, `get-child-events`): `rebuild` turns that chain's
    /// events back into the result during a replay.
    pub(crate) fn func_from_chain<P, R>(
        &mut self,
        function: &'static str,
        record_as: RecordAs,
        f: for<'s> fn(StoreContextMut<'s, ActorCtx>, P) -> HostFuture<'s, R>,
        rebuild: Rebuild<R>,
    ) -> wasmtime::Result<()>
    where
        P: ComponentNamedList + Lift + Recordable,
        R: ComponentNamedList + Lower + Recordable,
    {
        self.register(function, record_as, f, Some(rebuild))
    }

    fn register<P, R>(
        &mut self,
        function: &'static str,
        record_as: RecordAs,
        f: for<'s> fn(StoreContextMut<'s, ActorCtx>, P) -> HostFuture<'s, R>,
        rebuild: Option<Rebuild<R>>,
    ) -> wasmtime::Result<()>
    where
        P: ComponentNamedList + Lift + Recordable,
        R: ComponentNamedList + Lower + Recordable,
    {
        let interface = self.interface;
        self.instance.func_wrap_async(
            function,
            move |mut store: StoreContextMut<'_, ActorCtx>, params: P| {
                Box::new(async move {
                    if !store.data().chain.is_on() {
                        let result = catch_panic(function, f(store.as_context_mut(), params)).await;
                        store.data_mut().note = Default::default();
                        return result;
                    }
                    let encoded_params = crate::recordable::encode(&params)
                        .map_err(|e| wasmtime::format_err!("encoding a chain payload: {e}"))?;
                    let mut call = HostCall {
                        interface: interface.into(),
                        function: function.into(),
                        params: encoded_params,
                        result: HostResult::Value(Vec::new()),
                        message_id: None,
                    };
                    if let Some(log) = store.data().chain.replaying().cloned() {
                        // Boxed: a replay is the cold path, and every live call's future
                        // would otherwise carry its size.
                        return Box::pin(replay_host_call(store, &log, call, rebuild)).await;
                    }
                    let before = store.data().chain.head();
                    let outcome = catch_panic(function, f(store.as_context_mut(), params)).await;
                    let note = std::mem::take(&mut store.data_mut().note);
                    call.message_id = note.message_id.map(|id| id.to_string());
                    call.result = match (&outcome, note.result, record_as) {
                        // Recorded, so that a replay traps at the same point.
                        (Err(e), _, _) => HostResult::Error(crate::error::one_line(e)),
                        (Ok(_), Some(result), _) => result,
                        (Ok(result), None, RecordAs::Value) => {
                            HostResult::Value(crate::recordable::encode(result).map_err(|e| {
                                wasmtime::format_err!("encoding a chain payload: {e}")
                            })?)
                        }
                        (Ok(_), None, RecordAs::ChainRef) => HostResult::ChainRef {
                            len: before.len,
                            head: before.head,
                        },
                    };
                    store
                        .data_mut()
                        .chain
                        .record(EventKind::HostCall(call))
                        .await?;
                    outcome
                })
            },
        )?;
        self.registered.push((interface, function));
        Ok(())
    }
}

/// Runs a host function's future; a panic in it fails this call (the guest traps, with the
/// panic's message recorded) instead of unwinding through the runtime.
async fn catch_panic<R>(function: &str, mut call: HostFuture<'_, R>) -> wasmtime::Result<R> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::Poll;
    // Unwind-safe in practice: after a panic the future is dropped, never polled again, and
    // the runtime's own locks tolerate poisoning (`crate::sync`).
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Poll::Ready(Err(wasmtime::format_err!(
                    "host function `{function}` panicked: {message}"
                )))
            }
        },
    )
    .await
}

/// A host call in a replay: the recorded result (or error), if the chain's next event is this
/// same call (function and params); otherwise the divergence, recorded in the log.
async fn replay_host_call<R: Recordable>(
    mut store: StoreContextMut<'_, ActorCtx>,
    log: &ReplayLog,
    mut call: HostCall,
    rebuild: Option<Rebuild<R>>,
) -> wasmtime::Result<R> {
    let Some(recorded) = log.next_host_call(&call) else {
        // Recording what the guest did instead reports the divergence, with both sides.
        store
            .data_mut()
            .chain
            .record(EventKind::HostCall(call))
            .await?;
        wasmtime::bail!("replay diverged");
    };
    let result = match &recorded.result {
        HostResult::Error(message) => Err(wasmtime::Error::msg(message.clone())),
        _ => Ok(log.rebuild_result(&recorded, rebuild)?),
    };
    call.result = recorded.result;
    call.message_id = recorded.message_id;
    store
        .data_mut()
        .chain
        .record(EventKind::HostCall(call))
        .await?;
    result
}
