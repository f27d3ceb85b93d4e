//! Starting, stopping and restarting actors, and applying their supervisors' decisions.
//!
//! Who does what:
//! - [`spawn`] creates the cell, records the spawn, runs `init` and parks the actor;
//! - [`exit`] ends a run (shutdown, trap or stop): children first (newest first), then open
//!   channels and deferred requests, then the chain's last word; a supervised child then waits
//!   in [`Slot::Exited`] for [`supervise`], which asks [`Supervision`] what to do and does it;
//! - [`stop`] asks an actor to stop after its current call, and kills that call if it outlives
//!   the shutdown timeout.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use theater_chain::{EventKind, Hash, InstanceReason, RecordedManifest, ShutdownReason, Spawn};
use theater_files::Root;

use crate::actor::{Actor, ActorCtx, Delivery, Outcome, State, now_ms};
use crate::bindings::theater::simple::types::{WitActorError, WitErrorType};
use crate::cell::{
    Cell, ChildTable, ExitHow, Exited, Inner, Message, Slot, Start, StopCause, StopRequest,
};
use crate::component::Export;
use crate::error::SpawnError;
use crate::error::one_line;
use crate::family::{ExitKind, Grant};
use crate::manifest::{MAX_INIT_STATE_BYTES, Manifest};
use crate::messaging::OutsideInput;
use crate::recording::{ChainRecorder, ChainSource};
use crate::services::Services;
use crate::shared::{ActorExit, Lifecycle, LifecycleEvent, Shared};
use crate::supervision::{ChildExit, RestartFrom, Supervision, SupervisorSpec};
use crate::sync::LockExt;

/// How long a root actor may take to finish its call when stopped.
pub(crate) const ROOT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`stop`] keeps killing a call that outlived its shutdown timeout before it gives
/// up waiting: a stop returns within the shutdown timeout plus this.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct SpawnRequest {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) parent: Option<Arc<str>>,
    /// `Init(None)` uses the manifest's `init_state`.
    pub(crate) start: Start,
    /// The id to use; a fresh UUID if none.
    pub(crate) id: Option<Arc<str>>,
    /// Bring back an actor whose chain a crashed runtime left, instead of a new one.
    pub(crate) recover: Option<Recover>,
    /// For a child: its parent's supervisor root, which its component and `init_state` files
    /// are opened beneath. `None` for the operator's root actor, whose files are read as named.
    pub(crate) root: Option<Root>,
}

/// What recovery knows about an actor it brings back.
pub(crate) struct Recover {
    /// The persisted chain, which continues from here.
    pub(crate) head: theater_chain::ChainHead,
    /// The state after its last completed call.
    pub(crate) state: State,
    pub(crate) event: theater_chain::Recovery,
    /// `init` never returned before the crash: run it again.
    pub(crate) run_init: bool,
    /// The host calls whose effects its handlers' states still hold (those of completed calls
    /// since its last fresh start), for the handlers to rebuild what they held.
    pub(crate) host_calls: Vec<theater_chain::HostCall>,
}

/// Spawns an actor. Returns once `init` has returned; a failed or trapping `init` leaves no
/// actor behind.
pub(crate) async fn spawn(
    shared: &Arc<Shared>,
    request: SpawnRequest,
) -> Result<Arc<Cell>, SpawnError> {
    let _work = shared.busy.begin();
    let manifest = request.manifest;
    // A child's files are read beneath its parent's root, never by path.
    if request.parent.is_some() && request.root.is_none() && request.recover.is_none() {
        return Err(SpawnError::Runtime {
            actor: manifest.name.clone(),
            message: "a child needs its parent's supervisor root".into(),
        });
    }
    let content = shared.content.as_deref();
    let prepared = match (&request.parent, &request.root) {
        (Some(_), Some(root)) => {
            shared
                .components
                .prepare_child(&manifest, content, root)
                .await?
        }
        _ => {
            shared
                .components
                .prepare(&manifest, content, request.root.as_ref())
                .await?
        }
    };
    let fail = |message: String| SpawnError::Runtime {
        actor: manifest.name.clone(),
        message,
    };
    if request.recover.is_none() {
        for grant in &manifest.handlers {
            grant
                .family
                .check(&grant.settings)
                .map_err(|why| fail(format!("handler {:?}: {why}", grant.name())))?;
        }
    }
    if manifest.limits.memory_mb > shared.settings.max_memory_mb {
        return Err(fail(format!(
            "[limits] memory_mb = {} is more than this runtime's largest memory ({} MiB; see --max-memory-mb)",
            manifest.limits.memory_mb, shared.settings.max_memory_mb
        )));
    }
    let start = match request.start {
        Start::Init(None) if request.recover.is_none() => match &manifest.init_state {
            Some(path) => {
                let (root, path) = (request.root.clone(), path.clone());
                // Off the async workers: a slow disk must not stall other actors.
                let read = tokio::task::spawn_blocking(move || {
                    match &root {
                        Some(root) => theater_files::read_beneath(
                            root,
                            &path,
                            MAX_INIT_STATE_BYTES,
                            "init_state",
                        ),
                        None => theater_files::read_file(&path, MAX_INIT_STATE_BYTES, "init_state"),
                    }
                    .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                Start::Init(Some(read.map_err(|message| SpawnError::InitState {
                    actor: manifest.name.clone(),
                    message,
                })?))
            }
            None => Start::Init(None),
        },
        other => other,
    };
    let initial = match &start {
        Start::Init(s) | Start::Resume(s) => s.clone(),
    };

    let id: Arc<str> = request
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
    let source = shared
        .chain_source(&id, &manifest, request.parent.as_deref())
        .map_err(fail)?;
    let durability = manifest.chain.durability.unwrap_or(shared.durability);
    let mut chain = ChainRecorder::new(source.clone(), durability);
    let first_event = match &request.recover {
        Some(recover) => {
            chain.continue_from(recover.head);
            EventKind::Recovery(recover.event.clone())
        }
        None => {
            // Keep what replay needs: the component's bytes, the manifest and the initial
            // state, by hash. Without a content store the manifest is recorded whole.
            let mut recorded = RecordedManifest::Text(manifest.text.clone());
            if let Some(content) = &shared.content {
                let hash = content
                    .put(manifest.text.as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                recorded = RecordedManifest::Hash(Hash(hash));
                if let Some(bytes) = prepared.loaded.bytes_to_store() {
                    content.put(&bytes).map_err(|e| fail(e.to_string()))?;
                }
                if let Some(state) = &initial {
                    content.put(state).map_err(|e| fail(e.to_string()))?;
                }
            }
            EventKind::Spawn(Spawn {
                actor_id: id.to_string(),
                name: manifest.name.clone(),
                component: prepared.loaded.hash,
                manifest: recorded,
                parent: request.parent.as_deref().map(str::to_owned),
                initial_state: initial.as_deref().map(Hash::of),
            })
        }
    };
    chain
        .record(first_event)
        .await
        .map_err(|e| fail(format!("recording its chain: {}", one_line(&e))))?;

    let supervises = manifest.grants().contains(&Grant::Children);
    let cell = Arc::new(Cell {
        id: id.clone(),
        name: manifest.name.as_str().into(),
        parent: request.parent.clone(),
        depth: request
            .parent
            .as_deref()
            .and_then(|p| shared.cell(p))
            .map_or(0, |p| p.depth + 1),
        manifest: manifest.clone(),
        prepared: prepared.clone(),
        // Only a child can be restarted; a root need not keep its initial state.
        start: if request.parent.is_some() {
            start.clone()
        } else {
            Start::Init(None)
        },
        messaging: manifest.messaging,
        chain: source,
        inner: std::sync::Mutex::new(Inner {
            mailbox: VecDeque::new(),
            mailbox_bytes: 0,
            slot: Slot::Busy,
            stop: None,
            state_waiters: Vec::new(),
            child_work: None,
            idle_queued: false,
            wake: crate::cell::Wake::Cold,
        }),
        space: Default::default(),
        kill: Default::default(),
        settled: Default::default(),
        exit: Default::default(),
        supervises,
        supervision: ChildTable::default(),
        starting: Default::default(),
        restarting: Default::default(),
        exiting: Default::default(),
    });
    // Registered before `init`, so that whoever `init` talks to can answer it.
    shared.insert(cell.clone());

    let ctx = ActorCtx::new(
        id.clone(),
        manifest.clone(),
        Arc::downgrade(shared) as Weak<dyn Services>,
        chain,
    );
    let max = shared.settings.max_instances;
    let (reason, state, run_init, recovered_calls) = match request.recover {
        Some(recover) => (
            InstanceReason::Recovery,
            recover.state,
            recover.run_init,
            // An actor that starts over from `init` rebuilds everything itself.
            Some(if recover.run_init {
                Vec::new()
            } else {
                recover.host_calls
            }),
        ),
        None => (InstanceReason::Spawn, initial, true, None),
    };
    let mut actor = match Actor::instantiate(prepared, ctx, reason, state, max).await {
        Ok(actor) => actor,
        Err((mut ctx, message)) => {
            ctx.handlers_exit(ExitKind::Failed);
            record_end(&mut ctx, ShutdownReason::Failed, None).await;
            remove(shared, &cell, ActorExit::Failed(message.clone()), false);
            return Err(fail(message));
        }
    };
    if let Some(host_calls) = recovered_calls
        && let Err(message) = actor
            .ctx_mut()
            .handlers_recover(&host_calls, &OutsideInput::of(shared, id.clone()))
    {
        let (mut ctx, _) = actor.into_parts();
        ctx.handlers_exit(ExitKind::Failed);
        record_end(&mut ctx, ShutdownReason::Failed, None).await;
        remove(shared, &cell, ActorExit::Failed(message.clone()), false);
        return Err(fail(message));
    }
    if let Start::Init(_) = start
        && run_init
    {
        let outcome = actor
            .call::<_, (State,)>(
                Export::Init,
                (id.to_string(),),
                Delivery::default(),
                &cell.kill,
                max,
            )
            .await;
        let error = match outcome {
            Outcome::Returned(()) => None,
            Outcome::GuestError(message) => Some(SpawnError::InitFailed {
                actor: manifest.name.clone(),
                id: id.to_string(),
                message,
            }),
            Outcome::Trapped(trap) => Some(SpawnError::InitTrapped {
                actor: manifest.name.clone(),
                id: id.to_string(),
                kind: trap.kind,
                message: trap.message,
                backtrace: trap.backtrace,
            }),
        };
        if let Some(error) = error {
            let (mut ctx, _) = actor.into_parts();
            ctx.handlers_exit(ExitKind::Failed);
            record_end(&mut ctx, ShutdownReason::Failed, None).await;
            remove(shared, &cell, ActorExit::Failed(error.to_string()), false);
            return Err(error);
        }
    }
    let keeps_run_alive = manifest
        .handlers
        .iter()
        .any(|g| g.family.keeps_run_alive(&g.settings));
    if request.parent.is_some() || keeps_run_alive {
        cell.inner.locked().child_work = Some(shared.busy.begin());
    }
    let event = if reason == InstanceReason::Recovery {
        LifecycleEvent::Recovered
    } else {
        LifecycleEvent::Started
    };
    shared.lifecycle(&cell, event);
    shared.park_or_run(&cell, actor);
    Ok(cell)
}

async fn record_end(ctx: &mut ActorCtx, reason: ShutdownReason, data: Option<Vec<u8>>) {
    if let Err(e) = ctx.chain.record(EventKind::Shutdown { reason, data }).await {
        ctx.log(&format!("could not record its shutdown: {}", one_line(&e)));
    }
}

/// Takes the cell out of the runtime for good and tells everyone waiting on it.
fn remove(shared: &Arc<Shared>, cell: &Arc<Cell>, exit: ActorExit, announce: bool) {
    let (mailbox, work) = {
        let mut inner = cell.inner.locked();
        inner.slot = Slot::Gone;
        inner.stop = None;
        inner.state_waiters.clear();
        shared
            .mailboxes
            .release(std::mem::take(&mut inner.mailbox_bytes));
        (std::mem::take(&mut inner.mailbox), inner.child_work.take())
    };
    let label = cell.label();
    for envelope in mailbox {
        envelope
            .message
            .refuse(format!("actor {label} stopped before handling the message"));
        shared.busy.done();
    }
    shared.forget(&cell.id);
    let event = match &exit {
        ActorExit::Failed(message) => LifecycleEvent::Failed(message.clone()),
        ActorExit::Shutdown(_) => LifecycleEvent::Exited,
        ActorExit::Stopped => LifecycleEvent::Stopped,
    };
    if announce {
        shared.lifecycle(cell, event);
    }
    // Removal happens once: the first exit is the one that stands.
    let _ = cell.exit.set(exit);
    cell.space.notify_waiters();
    cell.settled.notify_waiters();
    drop(work);
}

/// Removes an actor that exited, recording `shutdown` if its chain does not end with one.
async fn finish(shared: &Arc<Shared>, cell: &Arc<Cell>, mut exited: Exited) {
    if !exited.shutdown_recorded {
        record_end(&mut exited.ctx, ShutdownReason::Failed, None).await;
    }
    drop(exited.ctx);
    remove(shared, cell, exited.exit, true);
}

/// Removes `cell` if it is waiting in [`Slot::Exited`].
async fn finish_exited(shared: &Arc<Shared>, cell: &Arc<Cell>) {
    let exited = take_exited(cell);
    if let Some(exited) = exited {
        finish(shared, cell, exited).await;
    }
}

fn take_exited(cell: &Cell) -> Option<Exited> {
    let mut inner = cell.inner.locked();
    match std::mem::replace(&mut inner.slot, Slot::Busy) {
        Slot::Exited(exited) => Some(exited),
        other => {
            inner.slot = other;
            None
        }
    }
}

/// Ends an actor's run; see the module docs for the order of things.
pub(crate) fn exit<'a>(
    shared: &'a Arc<Shared>,
    cell: &'a Arc<Cell>,
    actor: Actor,
    how: ExitHow,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        // An actor on its way out is work in progress: quiescence waits for its end.
        let _work = shared.busy.begin();
        // Its instance is not called again: its slot is free before anything below waits.
        let (mut ctx, state) = actor.into_parts();
        cell.exiting
            .store(true, std::sync::atomic::Ordering::SeqCst);
        stop_children(shared, cell).await;
        shared.channels.close_all_of(shared, &cell.id);
        let label = cell.label();
        for (id, deferred) in ctx.deferred.drain() {
            deferred.reply.fail(format!(
                "actor {label} stopped before answering request {id}"
            ));
        }
        let exit_kind = match &how {
            ExitHow::Trapped(_) => ExitKind::Failed,
            ExitHow::Stopped(r) if r.cause == StopCause::Escalation => ExitKind::Failed,
            _ => ExitKind::Stopped,
        };
        ctx.handlers_exit(exit_kind);

        let child = cell.id.clone();
        let (record, exit, child_exit, notice, keep) = match how {
            ExitHow::Shutdown(data) => (
                Some((ShutdownReason::Requested, data.clone())),
                ActorExit::Shutdown(data.clone()),
                Some(ChildExit::Normal),
                Some(Message::ChildExit { child, data }),
                false,
            ),
            ExitHow::Trapped(trap) => (
                None,
                ActorExit::Failed(format!("trapped: {}", trap.message)),
                Some(ChildExit::Failed),
                Some(Message::ChildError {
                    child,
                    error: WitActorError {
                        error_type: WitErrorType::Internal,
                        data: Some(trap.message.into_bytes()),
                    },
                }),
                false,
            ),
            ExitHow::Stopped(request) => {
                let reason = request.reason();
                match request.cause {
                    StopCause::Parent { keep } => {
                        (Some((reason, None)), ActorExit::Stopped, None, None, keep)
                    }
                    StopCause::External => (
                        Some((reason, None)),
                        ActorExit::Stopped,
                        None,
                        Some(Message::ChildExternalStop { child }),
                        false,
                    ),
                    StopCause::RuntimeExit => {
                        (Some((reason, None)), ActorExit::Stopped, None, None, false)
                    }
                    StopCause::Escalation => {
                        let message = request.message.unwrap_or_default();
                        (
                            Some((reason, Some(message.clone().into_bytes()))),
                            ActorExit::Failed(message.clone()),
                            Some(ChildExit::Failed),
                            Some(Message::ChildError {
                                child,
                                error: WitActorError {
                                    error_type: WitErrorType::Internal,
                                    data: Some(message.into_bytes()),
                                },
                            }),
                            false,
                        )
                    }
                }
            }
        };
        let shutdown_recorded = record.is_some();
        if let Some((reason, data)) = record {
            record_end(&mut ctx, reason, data).await;
        }
        let exited = Exited {
            ctx,
            state,
            exit,
            shutdown_recorded,
        };

        let Some(parent) = cell.parent.clone() else {
            return finish(shared, cell, exited).await;
        };
        if let Some(child_exit) = child_exit {
            if let ActorExit::Failed(message) = &exited.exit {
                shared.lifecycle(cell, LifecycleEvent::Failed(message.clone()));
            }
            park_exited(cell, exited);
            return supervise(shared, &parent, cell, child_exit, notice).await;
        }
        if keep {
            shared.lifecycle(cell, LifecycleEvent::Stopped);
            return park_exited(cell, exited);
        }
        // Stopped for good. If someone other than the parent stopped it, the parent hears.
        // (A stop by the parent leaves the parent's bookkeeping to the parent, which may hold
        // its supervision lock right now.)
        if let Some(notice) = notice
            && let Some(parent) = shared.cell(&parent)
        {
            // Not awaited here: the parent may be applying a decision that waits on this very
            // actor to settle, holding the lock meanwhile.
            if let Some(supervision) = parent.children_table() {
                match supervision.try_lock() {
                    Ok(mut guard) => {
                        guard.remove(&cell.id);
                    }
                    Err(_) => {
                        let (id, owner) = (cell.id.clone(), parent.clone());
                        tokio::spawn(async move {
                            if let Some(supervision) = owner.children_table() {
                                supervision.lock().await.remove(&id);
                            }
                        });
                    }
                }
            }
            shared.notify(&parent, None, notice, None);
        }
        finish(shared, cell, exited).await
    })
}

fn park_exited(cell: &Cell, exited: Exited) {
    let mut inner = cell.inner.locked();
    inner.slot = Slot::Exited(exited);
    inner.stop = None;
    inner.state_waiters.clear();
    drop(inner);
    cell.settled.notify_waiters();
}

/// Stops every child of `cell`, newest first, and forgets them.
async fn stop_children(shared: &Arc<Shared>, cell: &Arc<Cell>) {
    // No table: no child was ever spawned (a spawn makes it before the child starts).
    let Some(supervision) = cell.children_table() else {
        return;
    };
    let children: Vec<Arc<str>> = {
        let mut guard = supervision.lock().await;
        let mut ids: Vec<Arc<str>> = cell.starting.locked().iter().rev().cloned().collect();
        ids.extend(guard.children().rev().cloned());
        for id in &ids {
            guard.remove(id);
        }
        ids
    };
    for id in children {
        if let Some(child) = shared.cell(&id) {
            stop(
                shared,
                &child,
                StopRequest {
                    cause: StopCause::Parent { keep: false },
                    message: None,
                },
            )
            .await;
        }
    }
}

/// The shutdown timeout that applies to `cell`: its parent's setting, or the root default.
fn shutdown_timeout(shared: &Shared, cell: &Cell) -> Duration {
    cell.parent
        .as_deref()
        .and_then(|p| shared.cell(p))
        .map(|p| Duration::from_millis(p.manifest.supervision.shutdown_timeout_ms))
        .unwrap_or(ROOT_SHUTDOWN_TIMEOUT)
}

/// Stops `cell` after its current call (killing the call if it outlives the shutdown timeout)
/// and returns once it has stopped: `true`. `false`: it was still busy [`KILL_GRACE`] after
/// the kill (stuck outside guest code); a stop for good stays pending, a stop to restart it
/// is withdrawn so it does not end up exited with no one to restart it.
pub(crate) fn stop<'a>(
    shared: &'a Arc<Shared>,
    cell: &'a Arc<Cell>,
    request: StopRequest,
) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
    Box::pin(async move {
        let timeout = shutdown_timeout(shared, cell);
        let mut deadline = tokio::time::Instant::now() + timeout;
        let give_up = deadline + KILL_GRACE;
        let mut asked = false;
        loop {
            let settled = cell.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let now = {
                let mut inner = cell.inner.locked();
                match std::mem::replace(&mut inner.slot, Slot::Busy) {
                    Slot::Parked(actor) => {
                        inner.dismiss_warm();
                        StopNow::Exit(actor)
                    }
                    Slot::Exited(exited) => {
                        if request.cause == (StopCause::Parent { keep: true }) {
                            inner.slot = Slot::Exited(exited);
                            return true;
                        }
                        StopNow::Finish(exited)
                    }
                    Slot::Gone => {
                        inner.slot = Slot::Gone;
                        return true;
                    }
                    Slot::Busy => {
                        if !asked {
                            inner.stop = Some(request.clone());
                            asked = true;
                        }
                        StopNow::Wait
                    }
                }
            };
            match now {
                StopNow::Exit(actor) => {
                    exit(shared, cell, actor, ExitHow::Stopped(request)).await;
                    return true;
                }
                StopNow::Finish(exited) => {
                    finish(shared, cell, exited).await;
                    return true;
                }
                StopNow::Wait => {}
            }
            if tokio::time::timeout_at(deadline, &mut settled)
                .await
                .is_err()
            {
                if tokio::time::Instant::now() >= give_up {
                    // Not in a guest call a kill can end (waiting for a disk that stays
                    // full, say): say so and let the caller go on, within the bound.
                    tracing::error!(
                        "actor {} did not stop within {} ms of being killed; left to end its call",
                        cell.label(),
                        KILL_GRACE.as_millis()
                    );
                    if request.cause == (StopCause::Parent { keep: true }) {
                        let mut inner = cell.inner.locked();
                        if inner
                            .stop
                            .as_ref()
                            .is_some_and(|s| s.cause == request.cause)
                        {
                            inner.stop = None;
                        }
                    }
                    return false;
                }
                // Still in its call: end it. Repeated, in case the call had not begun.
                cell.kill.notify_waiters();
                deadline = tokio::time::Instant::now() + Duration::from_millis(10);
            }
        }
    })
}

enum StopNow {
    Exit(Actor),
    Finish(Exited),
    Wait,
}

/// A supervised child exited: apply its parent's strategy, then tell the parent.
fn supervise<'a>(
    shared: &'a Arc<Shared>,
    parent_id: &'a str,
    child: &'a Arc<Cell>,
    exit: ChildExit,
    notice: Option<Message>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let Some(parent) = shared.cell(parent_id) else {
            return finish_exited(shared, child).await;
        };
        // No table: no child was ever added, so this one is not its child.
        let Some(supervision) = parent.children_table() else {
            return finish_exited(shared, child).await;
        };
        let mut guard = supervision.lock().await;
        // Already restarted, or removed, while this waited for the lock.
        let still_exited = matches!(child.inner.locked().slot, Slot::Exited(_));
        if !still_exited || !guard.contains(&child.id) {
            drop(guard);
            return finish_exited(shared, child).await;
        }
        let decision = guard.on_exit(&child.id, exit, now_ms());
        if let Some(notice) = notice {
            shared.notify(&parent, None, notice, None);
        }
        let spec = guard.spec;
        let escalation = apply(shared, &parent, &mut guard, spec, decision).await;
        drop(guard);
        if let Some(message) = escalation {
            parent_log(shared, &parent, &message);
            stop(
                shared,
                &parent,
                StopRequest {
                    cause: StopCause::Escalation,
                    message: Some(message),
                },
            )
            .await;
        }
    })
}

fn parent_log(shared: &Shared, parent: &Cell, message: &str) {
    (shared.on_log)(&crate::shared::LogLine {
        actor_id: &parent.id,
        actor_name: &parent.name,
        message,
    });
}

/// Carries out a decision (and those that follow from failed restarts). Returns the
/// escalation message if the supervisor must fail.
async fn apply(
    shared: &Arc<Shared>,
    parent: &Cell,
    supervision: &mut Supervision<Arc<str>>,
    spec: SupervisorSpec,
    decision: crate::supervision::Decision<Arc<str>>,
) -> Option<String> {
    let mut decisions = VecDeque::from([decision]);
    while let Some(decision) = decisions.pop_front() {
        for id in &decision.stop {
            if let Some(cell) = shared.cell(id) {
                let keep = !decision.remove.contains(id);
                stop(
                    shared,
                    &cell,
                    StopRequest {
                        cause: StopCause::Parent { keep },
                        message: None,
                    },
                )
                .await;
            }
        }
        for id in &decision.remove {
            if let Some(cell) = shared.cell(id) {
                finish_exited(shared, &cell).await;
            }
        }
        if decision.escalate {
            return Some(format!(
                "restart intensity exceeded: more than {} restarts in {} ms ([supervision] max_restarts, period_ms); stopping",
                spec.max_restarts, spec.period_ms
            ));
        }
        for id in &decision.restart {
            let Some(cell) = shared.cell(id) else {
                continue;
            };
            let restarted = restart_holding(shared, parent, &cell, spec.restart_from).await;
            if let Err(message) = restarted {
                shared.lifecycle(&cell, LifecycleEvent::Failed(message));
                decisions.push_back(supervision.on_exit(id, ChildExit::Failed, now_ms()));
            }
        }
    }
    None
}

/// [`restart`] by `parent`, which holds its supervision lock meanwhile: whoever waits for the
/// lock waits on this child (see [`Cell::supervision`]).
pub(crate) async fn restart_holding(
    shared: &Arc<Shared>,
    parent: &Cell,
    child: &Arc<Cell>,
    from: RestartFrom,
) -> Result<(), String> {
    *parent.restarting.locked() = Some(child.id.clone());
    let result = restart(shared, child, from).await;
    *parent.restarting.locked() = None;
    result
}

/// Starts an exited child again with a fresh instance, keeping its id, chain and mailbox.
pub(crate) async fn restart(
    shared: &Arc<Shared>,
    cell: &Arc<Cell>,
    from: RestartFrom,
) -> Result<(), String> {
    let Some(exited) = take_exited(cell) else {
        return Ok(());
    };
    // A new run: spawns that finish from now on belong to it.
    cell.exiting
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let Exited {
        ctx,
        state: last_state,
        ..
    } = exited;
    let (state, call_init) = match (from, &cell.start) {
        (RestartFrom::LastState, _) => (last_state.clone(), false),
        (RestartFrom::Init, Start::Init(s)) => (s.clone(), true),
        (RestartFrom::Init, Start::Resume(s)) => (s.clone(), false),
    };
    let max = shared.settings.max_instances;
    let put_back = |ctx: Box<ActorCtx>, message: &str| {
        park_exited(
            cell,
            Exited {
                ctx,
                state: last_state.clone(),
                exit: ActorExit::Failed(message.to_owned()),
                shutdown_recorded: false,
            },
        );
    };
    let mut actor = match Actor::instantiate(
        cell.prepared.clone(),
        *ctx,
        InstanceReason::Restart,
        state,
        max,
    )
    .await
    {
        Ok(actor) => actor,
        Err((ctx, message)) => {
            put_back(ctx, &message);
            return Err(message);
        }
    };
    if call_init {
        let outcome = actor
            .call::<_, (State,)>(
                Export::Init,
                (cell.id.to_string(),),
                Delivery::default(),
                &cell.kill,
                max,
            )
            .await;
        let failure = match outcome {
            Outcome::Returned(()) => None,
            Outcome::GuestError(e) => Some(format!("init returned an error on restart: {e}")),
            Outcome::Trapped(t) => Some(format!("init trapped on restart: {}", t.message)),
        };
        if let Some(message) = failure {
            let (ctx, _) = actor.into_parts();
            put_back(ctx, &message);
            return Err(message);
        }
    }
    shared.lifecycle(cell, LifecycleEvent::Restarted);
    shared.park_or_run(cell, actor);
    Ok(())
}

/// Runs `work` to its end even if the returned future is dropped half-way (a call killed after
/// its shutdown timeout): the rest then runs as a task of its own. Until then it runs in the
/// caller's task, so the common case costs no task switch.
pub(crate) fn uncancellable<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> impl Future<Output = T> + Send {
    struct Finish<T: 'static>(Option<Pin<Box<dyn Future<Output = T> + Send>>>);
    impl<T> Future for Finish<T> {
        type Output = T;
        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
            let work = self.0.as_mut().expect("not polled after it finished");
            let done = work.as_mut().poll(cx);
            if done.is_ready() {
                self.0 = None;
            }
            done
        }
    }
    impl<T: 'static> Drop for Finish<T> {
        fn drop(&mut self) {
            if let Some(work) = self.0.take() {
                let finish = async move {
                    work.await;
                };
                // The result has no one to go to: dropped. (No runtime: it is going away,
                // and the work with it.)
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(finish);
                }
            }
        }
    }
    Finish(Some(Box::pin(work)))
}

/// Spawns a child of `parent` and adds it to the parent's supervision, [`uncancellable`]: a
/// parent killed while it waits (its shutdown timeout passed) does not cut the spawn in half,
/// and a child that outlives its parent's run is stopped.
pub(crate) async fn spawn_child(
    shared: &Arc<Shared>,
    parent: &Arc<Cell>,
    manifest: Arc<Manifest>,
    root: Root,
    start: Start,
) -> Result<Arc<str>, String> {
    {
        let supervision = parent.supervision(shared).await?;
        let max = supervision.spec.max_children;
        if supervision.children().count() + parent.starting.locked().len() >= max as usize {
            return Err(format!(
                "this supervisor has {max} children already, its [supervision] max_children"
            ));
        }
    }
    let restart = manifest
        .restart
        .unwrap_or(parent.manifest.supervision.restart);
    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let (shared, parent) = (shared.clone(), parent.clone());
    let task = uncancellable(async move {
        // The child's `init` may request its parent, which is blocked in this call.
        let _wait = shared
            .waits
            .wait(&parent.id, &id)
            .map_err(|cycle| shared.describe_cycle("spawn", &cycle))?;
        parent.starting.locked().push(id.clone());
        let spawned = spawn(
            &shared,
            SpawnRequest {
                manifest,
                parent: Some(parent.id.clone()),
                start,
                id: Some(id.clone()),
                recover: None,
                root: Some(root),
            },
        )
        .await
        .map_err(|e| e.to_string());
        // Without the cycle check: the child exists now and must be adopted or stopped.
        let mut supervision = parent
            .children_table_or_make()
            .expect("checked before the spawn")
            .lock()
            .await;
        parent.starting.locked().retain(|s| *s != id);
        let child = spawned?;
        if parent.exiting.load(std::sync::atomic::Ordering::SeqCst) {
            drop(supervision);
            let request = StopRequest {
                cause: StopCause::Parent { keep: false },
                message: None,
            };
            stop(&shared, &child, request).await;
            return Err("the parent stopped while its child started".into());
        }
        supervision.add(child.id.clone(), restart);
        Ok(child.id.clone())
    });
    task.await
}

impl Shared {
    /// Where a new actor's events go.
    fn chain_source(
        &self,
        id: &Arc<str>,
        manifest: &Manifest,
        parent: Option<&str>,
    ) -> Result<ChainSource, String> {
        if !self.record {
            return Ok(ChainSource::Off);
        }
        match (&self.writer, manifest.save_chain) {
            (Some(writer), true) => {
                let appender = writer.appender(
                    id.clone(),
                    Some(theater_chain::ChainInfo {
                        actor_id: id.to_string(),
                        name: manifest.name.clone(),
                        parent: parent.map(str::to_owned),
                        created_ms: now_ms(),
                        head: Default::default(),
                        signature: None,
                        manifest_dir: std::path::absolute(manifest.origin.base_dir())
                            .ok()
                            .map(|d| d.display().to_string()),
                    }),
                );
                Ok(ChainSource::Persisted {
                    actor_id: id.clone(),
                    writer: writer.clone(),
                    appender: Arc::new(appender),
                    readers: self.readers.clone().expect("a writer has a data dir"),
                })
            }
            _ => Ok(ChainSource::Memory(Default::default())),
        }
    }

    fn lifecycle(&self, cell: &Cell, event: LifecycleEvent) {
        if let Some(sink) = &self.on_lifecycle {
            sink(&Lifecycle {
                actor_id: &cell.id,
                name: &cell.name,
                parent: cell.parent.as_deref(),
                depth: cell.depth,
                event,
            });
        }
    }
}
