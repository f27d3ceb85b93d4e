//! Host capabilities. Each handler module implements one interface family and knows nothing of
//! the others; the runtime knows them only through [`HandlerKind`] and [`link`].
//!
//! Every host function is registered through [`InterfaceBuilder::func`], the one place that
//! records host calls in the chain. A handler never records by hand.

mod environment;
mod message_server;
mod random;
mod runtime;
mod supervisor;
mod timing;

pub use random::MAX_RANDOM_BYTES;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use theater_chain::{Event, EventKind, HostCall, HostResult, StoredEvent};
use wasmtime::component::{ComponentNamedList, Lift, Linker, LinkerInstance, Lower};
use wasmtime::{AsContextMut, StoreContextMut};

use crate::actor::ActorCtx;
use crate::replay::ReplayLog;

/// The WIT package every interface lives in.
pub const PACKAGE: &str = "theater:simple";

/// Interfaces that hold only types. Linked (empty) for every actor; they need no grant.
pub const TYPE_ONLY_INTERFACES: &[&str] = &[
    "theater:simple/types",
    "theater:simple/http-types",
    "theater:simple/websocket-types",
];

/// A manifest `[[handler]] type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandlerKind {
    Runtime,
    MessageServer,
    Supervisor,
    Store,
    Timing,
    Random,
    Environment,
    Filesystem,
    Process,
    HttpClient,
    HttpFramework,
}

impl HandlerKind {
    pub const ALL: &'static [HandlerKind] = &[
        HandlerKind::Runtime,
        HandlerKind::MessageServer,
        HandlerKind::Supervisor,
        HandlerKind::Store,
        HandlerKind::Timing,
        HandlerKind::Random,
        HandlerKind::Environment,
        HandlerKind::Filesystem,
        HandlerKind::Process,
        HandlerKind::HttpClient,
        HandlerKind::HttpFramework,
    ];

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            HandlerKind::Runtime => "runtime",
            HandlerKind::MessageServer => "message-server",
            HandlerKind::Supervisor => "supervisor",
            HandlerKind::Store => "store",
            HandlerKind::Timing => "timing",
            HandlerKind::Random => "random",
            HandlerKind::Environment => "environment",
            HandlerKind::Filesystem => "filesystem",
            HandlerKind::Process => "process",
            HandlerKind::HttpClient => "http-client",
            HandlerKind::HttpFramework => "http-framework",
        }
    }

    pub fn parse(name: &str) -> Option<HandlerKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The imported interfaces this handler grants.
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            HandlerKind::Runtime => &["theater:simple/runtime"],
            HandlerKind::MessageServer => &["theater:simple/message-server-host"],
            HandlerKind::Supervisor => &["theater:simple/supervisor"],
            HandlerKind::Store => &["theater:simple/store"],
            HandlerKind::Timing => &["theater:simple/timing"],
            HandlerKind::Random => &["theater:simple/random"],
            HandlerKind::Environment => &["theater:simple/environment"],
            HandlerKind::Filesystem => &["theater:simple/filesystem"],
            HandlerKind::Process => &["theater:simple/process"],
            HandlerKind::HttpClient => &["theater:simple/http-client"],
            HandlerKind::HttpFramework => &["theater:simple/http-framework"],
        }
    }

    /// The handler that grants `interface`, if any.
    pub fn granting(interface: &str) -> Option<HandlerKind> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.interfaces().contains(&interface))
    }

    /// The keys a `[[handler]]` table of this type may have besides `type`.
    pub fn setting_keys(self) -> &'static [&'static str] {
        match self {
            HandlerKind::Supervisor => &["root"],
            HandlerKind::Environment => &["allow"],
            _ => &[],
        }
    }

    /// Whether this build implements the handler's host functions.
    pub fn is_implemented(self) -> bool {
        matches!(
            self,
            HandlerKind::Runtime
                | HandlerKind::MessageServer
                | HandlerKind::Supervisor
                | HandlerKind::Timing
                | HandlerKind::Random
                | HandlerKind::Environment
        )
    }
}

/// Adds the interfaces of `kind` to `linker`; returns the `(interface, function)` pairs added.
pub(crate) fn link(
    kind: HandlerKind,
    linker: &mut Linker<ActorCtx>,
) -> wasmtime::Result<Vec<(&'static str, &'static str)>> {
    let mut registered = Vec::new();
    match kind {
        HandlerKind::Runtime => runtime::add_to_linker(linker, &mut registered)?,
        HandlerKind::MessageServer => message_server::add_to_linker(linker, &mut registered)?,
        HandlerKind::Supervisor => supervisor::add_to_linker(linker, &mut registered)?,
        HandlerKind::Timing => timing::add_to_linker(linker, &mut registered)?,
        HandlerKind::Random => random::add_to_linker(linker, &mut registered)?,
        HandlerKind::Environment => environment::add_to_linker(linker, &mut registered)?,
        other => wasmtime::bail!(
            "handler type {:?} is part of the API but this build does not implement it yet",
            other.name()
        ),
    }
    Ok(registered)
}

/// The `(interface, function)` pairs a handler registers, for checking them against the WIT.
pub fn registered_functions(
    kind: HandlerKind,
) -> wasmtime::Result<Vec<(&'static str, &'static str)>> {
    let engine = wasmtime::Engine::default();
    let mut linker = Linker::new(&engine);
    link(kind, &mut linker)
}

/// What a host function returns to the wrapper: a future borrowing the store.
pub(crate) type HostFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Turns a chain's events back into a host function's result (replay of a chain reference).
pub(crate) type Rebuild<R> = fn(Vec<(StoredEvent, Event)>) -> R;

/// How a host call's result is recorded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordAs {
    /// The result itself, in the payload encoding.
    Value,
    /// A reference to the chain as it was before the call (length and head), for results that
    /// are derived from the chain and would otherwise copy it into itself.
    ChainRef,
}

// A host function may also leave a different record in `ActorCtx::note` (a reference to
// another actor's chain) and the id of the message it sent.

/// Registers the functions of one interface.
pub(crate) struct InterfaceBuilder<'a, 'l> {
    interface: &'static str,
    instance: LinkerInstance<'l, ActorCtx>,
    registered: &'a mut Vec<(&'static str, &'static str)>,
}

impl<'a, 'l> InterfaceBuilder<'a, 'l> {
    pub(crate) fn new(
        linker: &'l mut Linker<ActorCtx>,
        interface: &'static str,
        registered: &'a mut Vec<(&'static str, &'static str)>,
    ) -> wasmtime::Result<Self> {
        Ok(InterfaceBuilder {
            interface,
            instance: linker.instance(interface)?,
            registered,
        })
    }

    /// Registers `f` as `function`, wrapped so that every call is recorded as a host-call event
    /// (interface, function, params, result) after it returns. In a replay `f` does not run:
    /// the wrapper returns the result the chain recorded.
    pub(crate) fn func<P, R>(
        &mut self,
        function: &'static str,
        record_as: RecordAs,
        f: for<'s> fn(StoreContextMut<'s, ActorCtx>, P) -> HostFuture<'s, R>,
    ) -> wasmtime::Result<()>
    where
        P: ComponentNamedList + Lift + Serialize + Send + Sync + 'static,
        R: ComponentNamedList + Lower + Serialize + DeserializeOwned + Send + Sync + 'static,
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
        P: ComponentNamedList + Lift + Serialize + Send + Sync + 'static,
        R: ComponentNamedList + Lower + Serialize + DeserializeOwned + Send + Sync + 'static,
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
        P: ComponentNamedList + Lift + Serialize + Send + Sync + 'static,
        R: ComponentNamedList + Lower + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let interface = self.interface;
        self.instance.func_wrap_async(
            function,
            move |mut store: StoreContextMut<'_, ActorCtx>, params: P| {
                Box::new(async move {
                    if !store.data().chain.is_on() {
                        let result = f(store.as_context_mut(), params).await?;
                        store.data_mut().note = Default::default();
                        return Ok(result);
                    }
                    let encoded_params = crate::payload::encode(&params)?;
                    if let Some(log) = store.data().chain.replaying().cloned() {
                        let call = HostCall {
                            interface: interface.to_owned(),
                            function: function.to_owned(),
                            params: encoded_params,
                            result: HostResult::Value(Vec::new()),
                            message_id: None,
                        };
                        return replay_host_call(store, &log, call, rebuild).await;
                    }
                    let before = store.data().chain.head();
                    let result = f(store.as_context_mut(), params).await?;
                    let note = std::mem::take(&mut store.data_mut().note);
                    let recorded = match (note.result, record_as) {
                        (Some(result), _) => result,
                        (None, RecordAs::Value) => {
                            HostResult::Value(crate::payload::encode(&result)?)
                        }
                        (None, RecordAs::ChainRef) => HostResult::ChainRef {
                            len: before.len,
                            head: before.head,
                        },
                    };
                    store
                        .data_mut()
                        .chain
                        .record(EventKind::HostCall(HostCall {
                            interface: interface.to_owned(),
                            function: function.to_owned(),
                            params: encoded_params,
                            result: recorded,
                            message_id: note.message_id.map(|id| id.to_string()),
                        }))
                        .await?;
                    Ok(result)
                })
            },
        )?;
        self.registered.push((interface, function));
        Ok(())
    }
}

/// A host call in a replay: the recorded result, if the chain's next event is this same call
/// (function and params); otherwise the divergence, recorded in the log.
async fn replay_host_call<R: DeserializeOwned>(
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
    let result = log.rebuild_result(&recorded, rebuild)?;
    call.result = recorded.result;
    call.message_id = recorded.message_id;
    store
        .data_mut()
        .chain
        .record(EventKind::HostCall(call))
        .await?;
    Ok(result)
}
