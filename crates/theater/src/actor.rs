//! One actor's instance and how the runtime calls into it.
//!
//! An [`Actor`] is the actor's state (owned by the runtime, passed into every export call) and
//! its wasmtime store, or only the store's data once it hibernates. Between calls it sits in
//! its cell in the runtime's table; it is not a task or a thread. Every export call goes
//! through [`Actor::call`], which records `call-start`/`call-end` (or `trap`) around it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use theater_chain::{CallEnd, CallStart, EventKind, Hash, InstanceReason, TrapKind};
use tokio::sync::oneshot;
use wasmtime::component::TypedFunc;
use wasmtime::component::{ComponentNamedList, ComponentType, Func, Instance, Lift, Lower};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use crate::component::{Callee, Export, ExportDecl, Prepared};
use crate::engine::EPOCH_TICK;
use crate::error::one_line;
use crate::family::{ExitKind, StateScope};
use crate::manifest::Manifest;
use crate::recordable::Recordable;
use crate::recording::ChainRecorder;
use crate::services::{LogLine, LogSink, Services};

/// An actor's state between calls: bytes only the actor reads, or none.
pub type State = Option<Vec<u8>>;

/// Where a request's answer goes, and the largest answer the requester takes: an answer is a
/// message to the requester, held to its `[messaging] max_message_bytes` like any other.
pub(crate) struct Reply {
    tx: oneshot::Sender<Result<Vec<u8>, String>>,
    max_bytes: u64,
}

/// The requester's side of a [`Reply`].
pub(crate) type Answer = oneshot::Receiver<Result<Vec<u8>, String>>;

impl Reply {
    pub(crate) fn new(max_bytes: u64) -> (Reply, Answer) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx, max_bytes }, rx)
    }

    /// Answers, unless the answer is over the requester's limit: then the reply is handed
    /// back with the reason, so the answerer can fail it or answer again.
    pub(crate) fn answer(self, answer: Vec<u8>) -> Result<(), (Reply, String)> {
        if answer.len() as u64 > self.max_bytes {
            let why = format!(
                "an answer of {} bytes is over the requester's limit of {} bytes ([messaging] max_message_bytes)",
                answer.len(),
                self.max_bytes
            );
            return Err((self, why));
        }
        // The requester may have given up; the answer was given all the same.
        let _ = self.tx.send(Ok(answer));
        Ok(())
    }

    /// Tells the requester its request failed.
    pub(crate) fn fail(self, why: String) {
        let _ = self.tx.send(Err(why));
    }

    /// Whether the requester stopped waiting (its timeout passed, or it is gone).
    pub(crate) fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A request this actor deferred (its `handle-request` returned `none`). The requester's own
/// wait keeps the runtime from counting as quiescent; once it gives up, the entry is dropped.
pub(crate) struct Deferred {
    pub(crate) reply: Reply,
}

/// What a host function leaves for the recording wrapper besides its result.
#[derive(Default)]
pub(crate) struct HostNote {
    /// The id given to the message this call sent.
    pub(crate) message_id: Option<Arc<str>>,
    /// Record this instead of the result (a reference to another actor's chain).
    pub(crate) result: Option<theater_chain::HostResult>,
}

/// The data a wasmtime `Store` holds for one actor.
pub struct ActorCtx {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) manifest: Arc<Manifest>,
    /// The runtime it runs in; none in a replay.
    pub(crate) services: Weak<dyn Services>,
    pub(crate) chain: ChainRecorder,
    /// Set by `runtime.shutdown`; acted on when the current call returns.
    pub(crate) shutdown_requested: Option<Option<Vec<u8>>>,
    /// The request the current `handle-request` call is answering, until it returns.
    pub(crate) current_request: Option<(Arc<str>, Reply)>,
    /// Requests deferred with `none`, by request id.
    pub(crate) deferred: HashMap<Arc<str>, Deferred>,
    pub(crate) note: HostNote,
    /// Each granted handler's state, in the order of `manifest.handlers`.
    handler_states: HandlerStates,
    on_log: LogSink,
    /// How many log lines it may still print now (`theater:simple/runtime.log`).
    pub(crate) log_budget: crate::log_rate::LogBudget,
    limits: StoreLimits,
    /// Epoch ticks the current call has run for, and how many it may.
    ticks: u64,
    max_ticks: u64,
    /// Its place among the actors running (`call_places`), while its mailbox is being
    /// handled; lent back while a call waits on another actor (see [`ActorCtx::lend_place`]).
    pub(crate) place: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ActorCtx {
    pub(crate) fn new(
        id: Arc<str>,
        manifest: Arc<Manifest>,
        services: Weak<dyn Services>,
        chain: ChainRecorder,
    ) -> ActorCtx {
        let on_log = log_sink(&services);
        Self::with(id, manifest, services, chain, on_log)
    }

    /// A context for replaying the actor's chain: no runtime behind it (host functions do not
    /// run in a replay) and no log output.
    pub(crate) fn for_replay(id: Arc<str>, manifest: Arc<Manifest>, chain: ChainRecorder) -> Self {
        Self::with(
            id,
            manifest,
            Weak::<NoServices>::new(),
            chain,
            Arc::new(|_| {}),
        )
    }

    fn with(
        id: Arc<str>,
        manifest: Arc<Manifest>,
        services: Weak<dyn Services>,
        chain: ChainRecorder,
        on_log: LogSink,
    ) -> ActorCtx {
        ActorCtx {
            // Made with each new instance (see `reset_for_new_instance`).
            handler_states: HandlerStates::default(),
            name: manifest.name.as_str().into(),
            id,
            services,
            chain,
            shutdown_requested: None,
            current_request: None,
            deferred: HashMap::new(),
            note: HostNote::default(),
            on_log,
            log_budget: Default::default(),
            limits: StoreLimitsBuilder::new()
                .memory_size((manifest.limits.memory_mb as usize) << 20)
                .trap_on_grow_failure(true)
                .build(),
            ticks: 0,
            place: None,
            max_ticks: manifest
                .limits
                .max_call_cpu_ms
                .div_ceil(EPOCH_TICK.as_millis() as u64)
                .max(1),
            manifest,
        }
    }

    pub(crate) fn log(&self, message: &str) {
        (self.on_log)(&LogLine {
            actor_id: &self.id,
            actor_name: &self.name,
            message,
        });
    }

    /// Gives its place among the running actors back while its call waits on another actor
    /// (a request, a channel being opened): the one it waits on may need a place to answer,
    /// and every place could be held by actors waiting so. Returns whether it had one.
    pub(crate) fn lend_place(&mut self) -> bool {
        self.place.take().is_some()
    }

    /// After [`ActorCtx::lend_place`]: takes a place again if one is free at once. Otherwise
    /// the call goes on without (it holds its instance and must not wait for a place in the
    /// middle of a call), and its run waits for one before its next message.
    pub(crate) fn reclaim_place(&mut self, lent: bool) {
        if !lent {
            return;
        }
        if let Some(places) = self
            .services
            .upgrade()
            .and_then(|s| s.call_places().cloned())
        {
            self.place = places.try_acquire_owned().ok();
        }
    }

    /// The runtime's services, while it runs (never in a replay).
    fn services(&self) -> Result<Arc<dyn Services>, String> {
        self.services
            .upgrade()
            .ok_or_else(|| "the runtime is shutting down".to_owned())
    }

    /// Forgets what belonged to the previous instance before a restart.
    fn reset_for_new_instance(&mut self) {
        self.shutdown_requested = None;
        self.current_request = None;
        self.deferred.clear();
        self.note = HostNote::default();
        self.ticks = 0;
        self.renew_handler_states(|_| true);
    }

    /// A woken actor keeps its handlers' actor-scoped state; instance-scoped state starts over.
    fn reset_for_wake(&mut self) {
        self.ticks = 0;
        self.renew_handler_states(|s| s == StateScope::Instance);
    }

    /// Makes each granted handler's state anew where `renew` says so for its scope (all of
    /// them the first time, and after `handlers_exit` took them).
    fn renew_handler_states(&mut self, renew: impl Fn(StateScope) -> bool) {
        let handlers = &self.manifest.handlers;
        if self.handler_states.len() != handlers.len() {
            self.handler_states = handlers
                .iter()
                .map(|g| g.family.new_state(&g.settings))
                .collect();
            return;
        }
        for (grant, state) in handlers.iter().zip(&mut self.handler_states) {
            if renew(grant.family.state_scope()) {
                *state = grant.family.new_state(&grant.settings);
            }
        }
    }

    /// The actor's id.
    pub fn actor_id(&self) -> &str {
        &self.id
    }

    /// The settings of the granted handler whose settings type is `S`.
    pub fn settings<S: 'static>(&self) -> Option<&S> {
        self.manifest.settings::<S>()
    }

    /// The per-actor state of the granted handler whose state type is `T`.
    pub fn handler_state<T: 'static>(&mut self) -> Option<&mut T> {
        self.handler_states
            .iter_mut()
            .find_map(|s| s.downcast_mut::<T>())
    }

    /// Prints `message` as this actor's log line (held to no rate: the `runtime` handler's
    /// `log` is what the guest's lines go through).
    pub fn log_line(&self, message: &str) {
        self.log(message);
    }

    /// The data dir's chain writer, for a handler that commits its own tables with the
    /// chains (`ChainWriter::transact`). None without a data dir, or once the runtime stops.
    pub fn chain_writer(&self) -> Option<Arc<theater_chain::ChainWriter>> {
        self.services().ok()?.chain_writer().cloned()
    }

    /// The data dir's content store (blobs by BLAKE3 hash). None without a data dir.
    pub fn content_store(&self) -> Option<Arc<theater_store::ContentStore>> {
        self.services().ok()?.content_store().cloned()
    }

    /// The runtime's data dir, if it has one.
    pub fn data_dir(&self) -> Option<std::path::PathBuf> {
        self.services().ok()?.data_dir().map(Into::into)
    }

    /// Tells every handler the actor's run ended, once; says how many log lines the rate
    /// held back since the last printed one, so that a flood's tail is not lost silently.
    pub(crate) fn handlers_exit(&mut self, how: ExitKind) {
        let held_back = self.log_budget.held_back();
        if held_back > 0 {
            self.log(&crate::log_rate::held_back_notice(held_back));
        }
        let states = std::mem::take(&mut self.handler_states);
        for (grant, mut state) in self.manifest.handlers.iter().zip(states.into_vec()) {
            grant.family.on_exit(state.as_mut(), how);
        }
    }

    /// Tells every handler the actor was brought back after a crash, with its recorded host
    /// calls; the first refusal is the reason the actor fails.
    pub(crate) fn handlers_recover(
        &mut self,
        host_calls: &[theater_chain::HostCall],
        runtime: &(dyn Any + Send + Sync),
    ) -> Result<(), String> {
        for (grant, state) in self.manifest.handlers.iter().zip(&mut self.handler_states) {
            let interfaces = grant.family.interfaces();
            let recovery = crate::family::Recovery {
                actor: &self.id,
                host_calls: host_calls
                    .iter()
                    .filter(|c| interfaces.contains(&&*c.interface))
                    .collect(),
                runtime,
            };
            grant
                .family
                .on_recover(&grant.settings, state.as_mut(), &recovery)
                .map_err(|why| format!("handler {:?} could not recover: {why}", grant.name()))?;
        }
        Ok(())
    }
}

/// Each granted handler's state, in the order of the manifest's handlers: a boxed slice, not a
/// `Vec`, since every actor (a million hibernated ones too) holds one and never grows it.
type HandlerStates = Box<[Box<dyn Any + Send>]>;

/// The log sink of `services`, or none (a replay, or a runtime being dropped).
fn log_sink(services: &Weak<dyn Services>) -> LogSink {
    match services.upgrade() {
        Some(services) => services.log_sink().clone(),
        None => Arc::new(|_: &LogLine<'_>| {}),
    }
}

/// The services of a context with no runtime behind it (a replay): never made, only named so
/// that an empty `Weak<dyn Services>` has a type to come from.
struct NoServices;

impl Services for NoServices {
    fn log_sink(&self) -> &LogSink {
        unreachable!("a NoServices is never made")
    }
    fn call_places(&self) -> Option<&Arc<tokio::sync::Semaphore>> {
        None
    }
    fn hibernating(&self) -> bool {
        false
    }
    fn hibernate_least_recently_used(&self) -> bool {
        false
    }
    fn chain_writer(&self) -> Option<&Arc<theater_chain::ChainWriter>> {
        None
    }
    fn content_store(&self) -> Option<&Arc<theater_store::ContentStore>> {
        None
    }
    fn data_dir(&self) -> Option<&std::path::Path> {
        None
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The guest used more CPU in one call than its manifest allows.
#[derive(Debug, thiserror::Error)]
#[error("the call used more than its CPU budget of {0} ms (manifest [limits] max_call_cpu_ms)")]
struct CpuBudgetExceeded(u64);

fn new_store(prepared: &Prepared, ctx: ActorCtx) -> Store<ActorCtx> {
    let mut store = Store::new(prepared.pre.engine(), ctx);
    store.limiter(|ctx| &mut ctx.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let ctx = ctx.data_mut();
        ctx.ticks += 1;
        if ctx.ticks > ctx.max_ticks {
            let ms = ctx.max_ticks * EPOCH_TICK.as_millis() as u64;
            return Err(wasmtime::Error::new(CpuBudgetExceeded(ms)));
        }
        // Let other actors run, then continue.
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// A live instance and the export functions looked up on it so far.
struct Live {
    store: Store<ActorCtx>,
    instance: Instance,
    funcs: [Option<Func>; Export::COUNT],
    /// Its handlers' exports looked up so far.
    handler_funcs: Vec<(&'static ExportDecl, Func)>,
}

enum Body {
    Live(Box<Live>),
    /// The instance is gone; the context (chain head and all) is kept for the next one: it
    /// holds something a fresh context would not (a deferred request, a pending shutdown).
    Hibernated(Box<ActorCtx>),
    /// The instance is gone, and so is the context, which held nothing [`Dormant`] does not
    /// keep: it is made again at the wake. A hibernated actor's usual shape.
    Dormant(Box<Dormant>),
    /// Only while the body changes shape.
    Moving,
}

/// What a hibernated actor keeps of its context when the rest can be made again: a third of
/// an [`ActorCtx`], held by each of a million hibernated actors.
struct Dormant {
    id: Arc<str>,
    manifest: Arc<Manifest>,
    services: Weak<dyn Services>,
    chain: ChainRecorder,
    handler_states: HandlerStates,
    log_budget: crate::log_rate::LogBudget,
}

impl ActorCtx {
    /// What is left of it while it hibernates: only what a fresh context lacks, if that is
    /// all it holds; else the whole context.
    fn into_hibernated(mut self: Box<Self>) -> Body {
        self.chain.release_buffers();
        let plain = self.shutdown_requested.is_none()
            && self.current_request.is_none()
            && self.deferred.is_empty()
            && self.note.message_id.is_none()
            && self.note.result.is_none()
            && self.place.is_none();
        if !plain {
            return Body::Hibernated(self);
        }
        let ActorCtx {
            id,
            manifest,
            services,
            chain,
            handler_states,
            log_budget,
            ..
        } = *self;
        Body::Dormant(Box::new(Dormant {
            id,
            manifest,
            services,
            chain,
            handler_states,
            log_budget,
        }))
    }
}

impl Dormant {
    /// The context again, as it was when the actor went dormant.
    fn wake_context(self) -> Box<ActorCtx> {
        let on_log = log_sink(&self.services);
        let mut ctx = ActorCtx::with(self.id, self.manifest, self.services, self.chain, on_log);
        ctx.handler_states = self.handler_states;
        ctx.log_budget = self.log_budget;
        Box::new(ctx)
    }
}

/// An actor: its state and its instance (or what remains of one while it hibernates).
pub(crate) struct Actor {
    body: Body,
    prepared: Arc<Prepared>,
    /// Owned by the runtime, passed into every export call.
    pub(crate) state: State,
    state_hash: Option<Hash>,
    /// When it last finished a call.
    pub(crate) idle_since: Instant,
    /// Calls completed since the last snapshot (or the instance's start).
    calls_since_snapshot: u64,
}

/// An export taking the state by reference (see the SAFETY note in [`Actor::call`]).
type BorrowedStateFunc<'s, P, O> = TypedFunc<(Option<&'s [u8]>, P), (Result<O, String>,)>;

/// How an export call ended.
pub(crate) enum Outcome<R> {
    Returned(R),
    /// The guest returned `Err`: recorded, the state is unchanged, the actor goes on.
    GuestError(String),
    /// The instance is gone (trap, or killed after its shutdown timeout); recorded.
    Trapped(Trap),
}

/// An export's results: the actor's new state, then the rest (nothing, or one value). A
/// handler's export is typed `(State,)` or `(State, (T,))`.
pub trait Returns: ComponentNamedList + Lift + Send + Sync + 'static {
    /// What the export returns besides the state.
    type Rest: Recordable;
    /// The state and the rest.
    fn split(self) -> (State, Self::Rest);
}

impl Returns for (State,) {
    type Rest = ();
    fn split(self) -> (State, ()) {
        (self.0, ())
    }
}

impl<T> Returns for (State, (T,))
where
    T: ComponentType + Lift + Recordable,
{
    type Rest = T;
    fn split(self) -> (State, T) {
        (self.0, self.1.0)
    }
}

/// Who sent the message a call delivers, for the chain.
#[derive(Default, Clone, Copy)]
pub(crate) struct Delivery<'a> {
    pub(crate) message_id: Option<&'a str>,
    pub(crate) sender: Option<&'a str>,
}

impl Actor {
    /// Creates an instance for a new or restarted actor, recording an `instance` event first.
    pub(crate) async fn instantiate(
        prepared: Arc<Prepared>,
        mut ctx: ActorCtx,
        reason: InstanceReason,
        state: State,
        max_instances: u32,
    ) -> Result<Actor, (Box<ActorCtx>, String)> {
        // A woken actor is the same actor: its deferred requests and the request it is about
        // to handle stay. Any other new instance starts over.
        if reason != InstanceReason::Wake {
            ctx.reset_for_new_instance();
        } else {
            ctx.reset_for_wake();
        }
        let event = EventKind::Instance {
            component: prepared.loaded.hash,
            reason,
        };
        // A wake is recorded once it has an instance: a wake that waits for a free slot tries
        // many times, and only the one that succeeds happened. Any other new instance is
        // recorded first, so that its chain says why, whatever instantiation does.
        let wake = reason == InstanceReason::Wake;
        if !wake && let Err(e) = ctx.chain.record(event.clone()).await {
            return Err((
                Box::new(ctx),
                format!("recording its chain: {}", one_line(&e)),
            ));
        }
        let mut store = new_store(&prepared, ctx);
        let deadline = tokio::time::Instant::now() + WAKE_WAIT;
        let mut pause = std::time::Duration::from_millis(1);
        let instance = loop {
            let error = match prepared.pre.instantiate_async(&mut store).await {
                Ok(instance) => break instance,
                Err(e) => instantiate_error(&e, max_instances),
            };
            let ctx = store.into_data();
            if !error.starts_with(NO_FREE_SLOT) {
                return Err((Box::new(ctx), error));
            }
            // Every slot is taken. With hibernation on, the actor idle the longest gives its
            // slot up, so that a runtime holds many more actors than live instances; with none
            // idle, every live instance is in a call, and one ends soon (each call has a CPU
            // budget): wait, up to a bound. With hibernation off only an exit frees a slot:
            // say so at once.
            let services = ctx.services.upgrade();
            let hibernating = services.as_ref().is_some_and(|s| s.hibernating());
            if !hibernating || tokio::time::Instant::now() >= deadline {
                return Err((Box::new(ctx), error));
            }
            if !services.is_some_and(|s| s.hibernate_least_recently_used()) {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            store = new_store(&prepared, ctx);
        };
        if wake && let Err(e) = store.data_mut().chain.record(event).await {
            return Err((
                Box::new(store.into_data()),
                format!("recording its chain: {}", one_line(&e)),
            ));
        }
        Ok(Actor {
            state_hash: state.as_deref().map(Hash::of),
            state,
            body: Body::Live(Box::new(Live {
                store,
                instance,
                funcs: [None; Export::COUNT],
                handler_funcs: Vec::new(),
            })),
            prepared,
            idle_since: Instant::now(),
            calls_since_snapshot: 0,
        })
    }

    /// Its context. Not for a dormant actor, which has none until it wakes or
    /// [`Actor::ctx_mut`] makes it again: see [`Actor::shutdown_requested`] and
    /// [`Actor::has_place`] for what a parked actor is asked.
    pub(crate) fn ctx(&self) -> &ActorCtx {
        match &self.body {
            Body::Live(live) => live.store.data(),
            Body::Hibernated(ctx) => ctx,
            Body::Dormant(_) => unreachable!("a dormant actor's context is made before use"),
            Body::Moving => unreachable!("an actor is never observed changing shape"),
        }
    }

    /// Its context, made again first if it is dormant.
    pub(crate) fn ctx_mut(&mut self) -> &mut ActorCtx {
        if matches!(self.body, Body::Dormant(_)) {
            let Body::Dormant(dormant) = std::mem::replace(&mut self.body, Body::Moving) else {
                unreachable!()
            };
            self.body = Body::Hibernated(dormant.wake_context());
        }
        match &mut self.body {
            Body::Live(live) => live.store.data_mut(),
            Body::Hibernated(ctx) => ctx,
            Body::Dormant(_) | Body::Moving => {
                unreachable!("an actor is never observed changing shape")
            }
        }
    }

    /// Whether `runtime.shutdown` asked it to stop after its current call.
    pub(crate) fn shutdown_requested(&self) -> bool {
        match &self.body {
            // Only a context that asked nothing goes dormant.
            Body::Dormant(_) => false,
            _ => self.ctx().shutdown_requested.is_some(),
        }
    }

    /// Takes the data of a `runtime.shutdown` its last call asked for, if any.
    pub(crate) fn take_shutdown_request(&mut self) -> Option<Option<Vec<u8>>> {
        match &self.body {
            Body::Dormant(_) => None,
            _ => self.ctx_mut().shutdown_requested.take(),
        }
    }

    /// Gives it `place` among the running actors (or takes its place back with `None`),
    /// leaving a dormant actor dormant when there is nothing to hold.
    pub(crate) fn set_place(&mut self, place: Option<tokio::sync::OwnedSemaphorePermit>) {
        if place.is_none() && matches!(self.body, Body::Dormant(_)) {
            return;
        }
        self.ctx_mut().place = place;
    }

    /// Whether it holds a place among the running actors.
    pub(crate) fn has_place(&self) -> bool {
        match &self.body {
            Body::Dormant(_) => false,
            _ => self.ctx().place.is_some(),
        }
    }

    /// Replaces the state (replay: the state a recorded call was given).
    pub(crate) fn set_state(&mut self, state: State) {
        self.state_hash = state.as_deref().map(Hash::of);
        self.state = state;
    }

    pub(crate) fn state_hash(&self) -> Option<Hash> {
        self.state_hash
    }

    pub(crate) fn is_live(&self) -> bool {
        matches!(self.body, Body::Live(_))
    }

    /// Drops the instance, freeing its pool slot, and keeps the context.
    pub(crate) fn hibernate(&mut self) {
        if let Body::Live(live) = std::mem::replace(&mut self.body, Body::Moving) {
            self.body = Box::new(live.store.into_data()).into_hibernated();
        } else {
            unreachable!("only a live actor hibernates");
        }
    }

    /// Gives up the instance and returns the context and the last good state.
    pub(crate) fn into_parts(self) -> (Box<ActorCtx>, State) {
        let ctx = match self.body {
            Body::Live(live) => Box::new(live.store.into_data()),
            Body::Hibernated(ctx) => ctx,
            Body::Dormant(dormant) => dormant.wake_context(),
            Body::Moving => unreachable!("an actor is never observed changing shape"),
        };
        (ctx, self.state)
    }

    /// Makes sure there is an instance, creating one (recorded as a wake) after hibernation.
    /// With every pool slot taken it makes room or waits for it (see [`Actor::instantiate`]).
    async fn wake(&mut self, max_instances: u32) -> Result<(), String> {
        let ctx = match std::mem::replace(&mut self.body, Body::Moving) {
            Body::Hibernated(ctx) => ctx,
            Body::Dormant(dormant) => dormant.wake_context(),
            live => {
                self.body = live;
                return Ok(());
            }
        };
        let woken = Actor::instantiate(
            self.prepared.clone(),
            *ctx,
            InstanceReason::Wake,
            None,
            max_instances,
        )
        .await;
        match woken {
            Ok(fresh) => {
                self.body = fresh.body;
                Ok(())
            }
            Err((ctx, message)) => {
                self.body = Body::Hibernated(ctx);
                Err(message)
            }
        }
    }

    /// Calls `export` with the current state and `params`; records the call and keeps the new
    /// state if it returns `Ok`. `kill` ends the call early (the instance is lost).
    pub(crate) async fn call<P, O>(
        &mut self,
        export: impl Into<Callee>,
        params: P,
        delivery: Delivery<'_>,
        kill: &tokio::sync::Notify,
        max_instances: u32,
    ) -> Outcome<O::Rest>
    where
        P: ComponentNamedList + Lower + Recordable,
        O: Returns,
    {
        let export = export.into();
        // Boxed: a wake instantiates, and its future is most of a call's; a live actor (the
        // usual case) neither allocates it nor carries its size in every call's future.
        if !self.is_live()
            && let Err(message) = Box::pin(self.wake(max_instances)).await
        {
            // Not handled, and said so: a requester gets the error, and it is logged for a
            // send, whose sender was told it was delivered.
            self.ctx().log(&format!(
                "could not handle a message (`{}`): {message}",
                export.path()
            ));
            return Outcome::GuestError(message);
        }
        let func = match self.func::<P, O>(export) {
            Ok(func) => func,
            Err(message) => return Outcome::GuestError(message),
        };
        let recording = self.ctx().chain.is_on();
        if recording {
            let start = match crate::recordable::encode(&params) {
                Ok(params) => EventKind::CallStart(CallStart {
                    export: export.path().into(),
                    state: self.state_hash,
                    params,
                    message_id: delivery.message_id.map(str::to_owned),
                    sender: delivery.sender.map(str::to_owned),
                }),
                Err(e) => return Outcome::GuestError(format!("encoding a chain payload: {e}")),
            };
            if let Err(e) = self.ctx_mut().chain.record(start).await {
                // The chain cannot go on (a chain kept in memory is full): the actor stops.
                return Outcome::Trapped(Trap {
                    kind: TrapKind::Other,
                    message: format!("recording its chain: {}", one_line(&e)),
                    backtrace: None,
                });
            }
        }
        let outcome = self.invoke::<P, O>(func, params, kill).await;
        if !recording {
            return outcome;
        }
        if !matches!(outcome, Outcome::Trapped(_)) {
            self.calls_since_snapshot += 1;
        }
        let end = match &outcome {
            Outcome::Returned(rest) => {
                self.state_hash = self.state.as_deref().map(Hash::of);
                EventKind::CallEnd(CallEnd {
                    export: export.path().into(),
                    outcome: Ok(crate::recordable::encode(rest).unwrap_or_default()),
                    state: self.state_hash,
                })
            }
            Outcome::GuestError(message) => EventKind::CallEnd(CallEnd {
                export: export.path().into(),
                outcome: Err(message.clone()),
                state: self.state_hash,
            }),
            Outcome::Trapped(trap) => EventKind::Trap {
                kind: trap.kind,
                message: trap.message.clone(),
            },
        };
        // A call that ended with a trap leaves the instance unusable; the context is intact.
        if let Err(e) = self.ctx_mut().chain.record(end).await {
            return Outcome::Trapped(Trap {
                kind: TrapKind::Other,
                message: format!("recording its chain: {}", one_line(&e)),
                backtrace: None,
            });
        }
        outcome
    }

    /// Records a snapshot if the manifest's `[chain] snapshot_every` calls have passed since
    /// the last: the state goes into the content store and a `snapshot` event names its hash.
    /// The instance is dropped, so the next call starts on a fresh one, where a replay or a
    /// recovery from this snapshot starts too.
    pub(crate) async fn snapshot_if_due(&mut self, content: Option<&theater_store::ContentStore>) {
        if !self.is_live() {
            return;
        }
        let every = self.ctx().manifest.chain.snapshot_every;
        if every == 0 || self.calls_since_snapshot < every {
            return;
        }
        let Some(content) = content else { return };
        if !matches!(
            self.ctx().chain.source(),
            crate::recording::ChainSource::Persisted { .. }
        ) {
            return;
        }
        self.calls_since_snapshot = 0;
        if let Some(state) = &self.state
            && let Err(e) = content.put(state)
        {
            tracing::warn!(
                "actor {}: no snapshot, storing its state failed: {e}",
                self.ctx().id
            );
            return;
        }
        let state = self.state_hash;
        if let Err(e) = self
            .ctx_mut()
            .chain
            .record(EventKind::Snapshot { state })
            .await
        {
            tracing::warn!(
                "actor {}: recording a snapshot: {}",
                self.ctx().id,
                one_line(&e)
            );
            return;
        }
        self.hibernate();
    }

    /// The live instance's `export`, its signature checked once per instance.
    fn func<P, O>(&mut self, export: Callee) -> Result<Func, String>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        O: Returns,
    {
        let Body::Live(live) = &mut self.body else {
            unreachable!("woken by the caller")
        };
        let cached = match export {
            Callee::Core(export) => live.funcs[export as usize],
            Callee::Handler(decl) => live
                .handler_funcs
                .iter()
                .find(|(d, _)| std::ptr::eq(*d, decl))
                .map(|(_, func)| *func),
        };
        if let Some(func) = cached {
            return Ok(func);
        }
        let Some(index) = self.prepared.export_index(export) else {
            return Err(format!(
                "actor {} does not export `{}`",
                live.store.data().name,
                export.path()
            ));
        };
        let func = live
            .instance
            .get_func(&mut live.store, index)
            .ok_or_else(|| format!("`{}` is not a function", export.path()))?;
        // Checked with owned types; `invoke` calls it with the state borrowed.
        func.typed::<(State, P), (Result<O, String>,)>(&live.store)
            .map_err(|e| {
                format!(
                    "`{}` has the wrong signature: {}",
                    export.path(),
                    one_line(&e)
                )
            })?;
        match export {
            Callee::Core(export) => live.funcs[export as usize] = Some(func),
            Callee::Handler(decl) => live.handler_funcs.push((decl, func)),
        }
        Ok(func)
    }

    /// Runs one call of `func` (from [`Actor::func`]) with the current state; keeps the new
    /// state if it returns `Ok`. `kill` ends the call early (the instance is lost).
    async fn invoke<P, O>(
        &mut self,
        func: Func,
        params: P,
        kill: &tokio::sync::Notify,
    ) -> Outcome<O::Rest>
    where
        P: ComponentNamedList + Lower + Recordable,
        O: Returns,
    {
        let Body::Live(live) = &mut self.body else {
            unreachable!("woken by the caller")
        };
        // SAFETY: `func` was checked with `State` in place of `Option<&[u8]>`; both lower to
        // the same component type (`option<list<u8>>`). Borrowing saves copying the state.
        let typed: BorrowedStateFunc<'_, P, O> = unsafe { TypedFunc::new_unchecked(func) };
        live.store.data_mut().ticks = 0;
        // The deadline is relative to the current epoch: one set by an earlier call is long
        // past and would make this call yield at its first check.
        live.store.set_epoch_deadline(1);
        let result = tokio::select! {
            biased;
            r = typed.call_async(&mut live.store, (self.state.as_deref(), params)) => r,
            () = kill.notified() => Err(wasmtime::Error::new(Killed)),
        };
        self.idle_since = Instant::now();
        match result {
            Ok((Ok(returned),)) => {
                let (state, rest) = returned.split();
                self.state = state;
                Outcome::Returned(rest)
            }
            Ok((Err(message),)) => Outcome::GuestError(message),
            Err(error) => Outcome::Trapped(Trap::from_error(&error)),
        }
    }
}

/// How long a new instance (a spawn, a wake, a restart) waits for a free pool slot before it
/// gives up.
pub(crate) const WAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const NO_FREE_SLOT: &str = "no free instance slot";

fn instantiate_error(e: &wasmtime::Error, max_instances: u32) -> String {
    let message = one_line(e);
    if message.contains("maximum concurrent") {
        format!(
            "{NO_FREE_SLOT}: {max_instances} instances are live (raise `theater run --max-instances`)"
        )
    } else {
        format!("instantiating: {message}")
    }
}

/// The call was ended because the actor did not stop within its shutdown timeout.
#[derive(Debug, thiserror::Error)]
#[error("killed: it did not finish its call within its shutdown timeout")]
struct Killed;

/// A trap, classified for the chain and described for people.
#[derive(Debug, Clone)]
pub(crate) struct Trap {
    pub(crate) kind: TrapKind,
    pub(crate) message: String,
    pub(crate) backtrace: Option<String>,
}

impl Trap {
    pub(crate) fn from_error(error: &wasmtime::Error) -> Trap {
        let kind = if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            use wasmtime::Trap as T;
            match trap {
                T::UnreachableCodeReached => TrapKind::Unreachable,
                T::MemoryOutOfBounds | T::TableOutOfBounds | T::HeapMisaligned => {
                    TrapKind::MemoryOutOfBounds
                }
                T::StackOverflow => TrapKind::StackOverflow,
                T::IntegerOverflow | T::IntegerDivisionByZero | T::BadConversionToInteger => {
                    TrapKind::Arithmetic
                }
                T::OutOfFuel => TrapKind::OutOfFuel,
                T::Interrupt => TrapKind::Deadline,
                _ => TrapKind::Other,
            }
        } else if error.is::<CpuBudgetExceeded>() || error.is::<Killed>() {
            TrapKind::Deadline
        } else if one_line(error).contains("forcing trap when growing memory") {
            TrapKind::ResourceLimit
        } else {
            TrapKind::Other
        };
        let message = match kind {
            TrapKind::ResourceLimit => {
                "the guest tried to grow its memory past its limit (manifest [limits] memory_mb)"
                    .to_owned()
            }
            _ => error.root_cause().to_string(),
        };
        let backtrace = error
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(|bt| {
                // Drop wasmtime's "error while executing at wasm backtrace:" header.
                let text = bt.to_string();
                let frames: Vec<&str> = text.lines().filter(|l| !l.ends_with(':')).collect();
                frames.join("\n")
            })
            .filter(|bt| !bt.trim().is_empty());
        Trap {
            kind,
            message,
            backtrace,
        }
    }
}

/// Milliseconds since the Unix epoch, as the chain and the timing handler count time.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Instances a replay needs at once: one, and one more while it is replaced.
pub(crate) const REPLAY_MAX_INSTANCES: u32 = 2;

/// Calls `export` with params decoded from the chain as `P`; returns whether the instance
/// trapped.
pub(crate) async fn call_decoded<P, O>(
    actor: &mut Actor,
    export: impl Into<Callee>,
    params: &[u8],
    delivery: Delivery<'_>,
    kill: &tokio::sync::Notify,
) -> Result<bool, String>
where
    P: ComponentNamedList + Lower + Recordable,
    O: Returns,
{
    let export = export.into();
    let params: P = crate::recordable::decode(params).map_err(|e| {
        format!(
            "the params of `{}` do not decode as this build's types: {e}",
            export.path()
        )
    })?;
    let outcome = actor
        .call::<P, O>(export, params, delivery, kill, REPLAY_MAX_INSTANCES)
        .await;
    Ok(matches!(outcome, Outcome::Trapped(_)))
}

/// The replay driver of a handler's export (see [`crate::component::ExportDecl`]), made for
/// its types when the handler declares it.
pub(crate) fn drive<'a, P, O>(
    export: &'static ExportDecl,
    actor: &'a mut Actor,
    params: &'a [u8],
    delivery: Delivery<'a>,
    kill: &'a tokio::sync::Notify,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>>
where
    P: ComponentNamedList + Lower + Recordable,
    O: Returns,
{
    Box::pin(call_decoded::<P, O>(actor, export, params, delivery, kill))
}

#[cfg(test)]
mod tests {
    /// What each dormant actor keeps of its context, a million times over in a big runtime.
    /// Raise it only on purpose.
    #[test]
    fn a_dormant_actor_keeps_a_small_record() {
        let dormant = std::mem::size_of::<super::Dormant>();
        let ctx = std::mem::size_of::<super::ActorCtx>();
        assert!(dormant <= 208, "Dormant: {dormant}");
        assert!(
            dormant * 2 < ctx,
            "Dormant {dormant} against ActorCtx {ctx}"
        );
    }
}
