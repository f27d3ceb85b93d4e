//! One actor: its store context, its spawn (instantiate + `init`), and what is left of it
//! between calls.
//!
//! An actor between calls is not a task or a thread: it is a [`ParkedActor`] in the runtime's
//! table, so an idle actor costs no scheduler work. Its instance stays live until the runtime's
//! sweeper finds it idle for the hibernation delay; then the instance is dropped (its pool slot
//! freed) and only its state and chain head remain. A fresh instance is created, and recorded
//! as an `instance` event, when it next runs.

use std::sync::Arc;
use std::time::Instant;

use theater_chain::{
    CallEnd, CallStart, ChainInfo, EventKind, Hash, InstanceReason, ShutdownReason, Spawn, TrapKind,
};
use tokio::sync::watch;
use wasmtime::component::{Instance, TypedFunc};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use crate::component::{ACTOR_INTERFACE, INIT, Prepared, one_line};
use crate::engine::EPOCH_TICK;
use crate::error::SpawnError;
use crate::manifest::Manifest;
use crate::recording::ChainRecorder;
use crate::runtime::{ActorExit, ActorHandle, LogLine, LogSink, Shared};

type State = Option<Vec<u8>>;
type InitFunc = TypedFunc<(State, (String,)), (Result<(State,), String>,)>;

/// The data a wasmtime `Store` holds for one actor.
pub struct ActorCtx {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) chain: ChainRecorder,
    /// Set by `runtime.shutdown`; acted on when the current call returns.
    pub(crate) shutdown_requested: Option<Option<Vec<u8>>>,
    on_log: LogSink,
    limits: StoreLimits,
    /// Epoch ticks the current call has run for, and how many it may.
    ticks: u64,
    max_ticks: u64,
}

impl ActorCtx {
    pub(crate) fn log(&self, message: &str) {
        (self.on_log)(&LogLine {
            actor_id: &self.id,
            actor_name: &self.name,
            message,
        });
    }
}

/// The guest used more CPU in one call than its manifest allows.
#[derive(Debug, thiserror::Error)]
#[error("the call used more than its CPU budget of {0} ms (manifest [limits] max_call_cpu_ms)")]
struct CpuBudgetExceeded(u64);

pub(crate) struct SpawnRequest {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) parent: Option<String>,
    pub(crate) init_state: Option<Vec<u8>>,
}

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

/// Spawns an actor: records its spawn, instantiates it and runs `init`. Returns once `init` has
/// returned; a failed or trapping `init` leaves no actor behind.
pub(crate) async fn spawn(
    shared: &Arc<Shared>,
    request: SpawnRequest,
) -> Result<ActorHandle, SpawnError> {
    let manifest = request.manifest;
    let prepared = shared
        .components
        .prepare(&manifest, shared.content.as_ref())
        .await?;
    let fail = |message: String| SpawnError::Runtime {
        actor: manifest.name.clone(),
        message,
    };
    if manifest.limits.memory_mb > shared.settings.max_memory_mb {
        return Err(fail(format!(
            "[limits] memory_mb = {} is more than this runtime's largest memory ({} MiB; see --max-memory-mb)",
            manifest.limits.memory_mb, shared.settings.max_memory_mb
        )));
    }
    let init_state = match (request.init_state, &manifest.init_state) {
        (Some(state), _) => Some(state),
        (None, Some(path)) => Some(std::fs::read(path).map_err(|e| SpawnError::InitState {
            actor: manifest.name.clone(),
            path: path.display().to_string(),
            message: e.to_string(),
        })?),
        (None, None) => None,
    };

    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let name: Arc<str> = manifest.name.as_str().into();
    let mut chain = match (&shared.writer, manifest.save_chain) {
        (Some(writer), true) => {
            writer
                .register(ChainInfo {
                    actor_id: id.to_string(),
                    name: manifest.name.clone(),
                    parent: request.parent.clone(),
                    created_ms: now_ms(),
                    head: Default::default(),
                })
                .map_err(|e| fail(e.to_string()))?;
            ChainRecorder::persisted(
                id.clone(),
                writer.clone(),
                shared.data_dir.clone().expect("a writer has a data dir"),
                manifest.chain.durability.unwrap_or(shared.durability),
            )
        }
        _ => ChainRecorder::in_memory(id.clone()),
    };
    // Keep what replay needs: the component's bytes and the initial state, by hash.
    let initial_state_hash = init_state.as_deref().map(Hash::of);
    if let Some(content) = &shared.content {
        if let Some(bytes) = prepared.loaded.bytes_to_store() {
            content.put(&bytes).map_err(|e| fail(e.to_string()))?;
        }
        if let Some(state) = &init_state {
            content.put(state).map_err(|e| fail(e.to_string()))?;
        }
    }

    let record_err = |e: wasmtime::Error| fail(format!("recording its chain: {}", one_line(&e)));
    let component = prepared.loaded.hash;
    chain
        .record(EventKind::Spawn(Spawn {
            actor_id: id.to_string(),
            name: manifest.name.clone(),
            component,
            manifest: manifest.text.clone(),
            parent: request.parent.clone(),
            initial_state: initial_state_hash,
        }))
        .await
        .map_err(record_err)?;
    chain
        .record(EventKind::Instance {
            component,
            reason: InstanceReason::Spawn,
        })
        .await
        .map_err(record_err)?;

    let ctx = ActorCtx {
        id: id.clone(),
        name: name.clone(),
        chain,
        shutdown_requested: None,
        on_log: shared.on_log.clone(),
        limits: StoreLimitsBuilder::new()
            .memory_size((manifest.limits.memory_mb as usize) << 20)
            .trap_on_grow_failure(true)
            .build(),
        ticks: 0,
        max_ticks: manifest
            .limits
            .max_call_cpu_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1),
    };
    let mut store = new_store(&prepared, ctx);
    let instance = prepared
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| {
            let message = one_line(&e);
            if message.contains("maximum concurrent") {
                fail(format!(
                    "no free instance slot: {} instances are live (raise `theater run --max-instances`)",
                    shared.settings.max_instances
                ))
            } else {
                fail(format!("instantiating: {message}"))
            }
        })?;
    let init: InitFunc = instance
        .get_typed_func(&mut store, &prepared.init)
        .map_err(|e| {
            fail(format!(
                "`{ACTOR_INTERFACE}.{INIT}` has the wrong signature: {}",
                one_line(&e)
            ))
        })?;

    let export = format!("{ACTOR_INTERFACE}.{INIT}");
    store
        .data_mut()
        .chain
        .record(EventKind::CallStart(CallStart {
            export: export.clone(),
            state: initial_state_hash,
            params: crate::payload::encode(&(id.to_string(),)).map_err(record_err)?,
            message_id: None,
            sender: None,
        }))
        .await
        .map_err(record_err)?;
    store.data_mut().ticks = 0;
    let outcome = init
        .call_async(&mut store, (init_state, (id.to_string(),)))
        .await;

    match outcome {
        Ok((Ok((state,)),)) => {
            store
                .data_mut()
                .chain
                .record(EventKind::CallEnd(CallEnd {
                    export,
                    outcome: Ok(Vec::new()),
                    state: state.as_deref().map(Hash::of),
                }))
                .await
                .map_err(record_err)?;
            let requested = store.data_mut().shutdown_requested.take();
            let (exit, exit_rx) = watch::channel(None);
            let actor = ParkedActor {
                body: Body::Live { store, instance },
                state,
                exit,
                idle_since: Instant::now(),
            };
            let handle = ActorHandle::new(id.clone(), name, shared.clone(), exit_rx);
            match requested {
                Some(data) => actor.end(ShutdownReason::Requested, data).await,
                None => shared.park(id, actor),
            }
            Ok(handle)
        }
        Ok((Err(message),)) => {
            let end = EventKind::CallEnd(CallEnd {
                export,
                outcome: Err(message.clone()),
                state: initial_state_hash,
            });
            record_failure(&mut store.data_mut().chain, end)
                .await
                .map_err(record_err)?;
            Err(SpawnError::InitFailed {
                actor: manifest.name.clone(),
                id: id.to_string(),
                message,
            })
        }
        Err(error) => {
            let trap = Trap::from_error(&error);
            let event = EventKind::Trap {
                kind: trap.kind,
                message: trap.message.clone(),
            };
            // The store may be unusable after a trap; the chain recorder is not part of it.
            record_failure(&mut store.data_mut().chain, event)
                .await
                .map_err(record_err)?;
            Err(SpawnError::InitTrapped {
                actor: manifest.name.clone(),
                id: id.to_string(),
                kind: trap.kind,
                message: trap.message,
                backtrace: trap.backtrace,
            })
        }
    }
}

/// Records how a call failed, then that the actor is gone.
async fn record_failure(chain: &mut ChainRecorder, how: EventKind) -> wasmtime::Result<()> {
    chain.record(how).await?;
    chain
        .record(EventKind::Shutdown {
            reason: ShutdownReason::Failed,
            data: None,
        })
        .await?;
    Ok(())
}

/// A trap, classified for the chain and described for people.
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
        } else if error.is::<CpuBudgetExceeded>() {
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

enum Body {
    Live {
        store: Store<ActorCtx>,
        #[allow(dead_code)] // Export calls beyond `init` come with messaging.
        instance: Instance,
    },
    /// The instance is gone; the context (chain head and all) is kept for the next one.
    Hibernated(Box<ActorCtx>),
    /// Only while [`Actor::hibernate`] moves the context out of the store.
    Moving,
}

/// An actor between calls.
pub(crate) struct ParkedActor {
    body: Body,
    /// Owned by the runtime, passed into every export call.
    #[allow(dead_code)] // Read by export calls beyond `init`, which come with messaging.
    state: Option<Vec<u8>>,
    exit: watch::Sender<Option<ActorExit>>,
    /// When it last finished a call.
    idle_since: Instant,
}

impl ParkedActor {
    fn ctx_mut(&mut self) -> &mut ActorCtx {
        match &mut self.body {
            Body::Live { store, .. } => store.data_mut(),
            Body::Hibernated(ctx) => ctx,
            Body::Moving => unreachable!("an actor is never observed mid-hibernation"),
        }
    }

    pub(crate) fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// Drops the instance, freeing its pool slot, and keeps the context.
    pub(crate) fn hibernate(&mut self) {
        if let Body::Live { store, .. } = std::mem::replace(&mut self.body, Body::Moving) {
            self.body = Body::Hibernated(Box::new(store.into_data()));
        }
    }

    /// Records the actor's end, drops it, and tells whoever waits on its exit.
    pub(crate) async fn end(mut self, reason: ShutdownReason, data: Option<Vec<u8>>) {
        let result = self
            .ctx_mut()
            .chain
            .record(EventKind::Shutdown {
                reason,
                data: data.clone(),
            })
            .await;
        drop(self.body);
        let exit = match (result, reason) {
            (Err(e), _) => ActorExit::Failed(one_line(&e)),
            (Ok(_), ShutdownReason::Requested) => ActorExit::Shutdown(data),
            (Ok(_), _) => ActorExit::Stopped,
        };
        let _ = self.exit.send(Some(exit));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
