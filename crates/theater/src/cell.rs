//! An actor's place in the runtime: its mailbox, where its [`Actor`] is between calls, and the
//! task that runs it while it has messages.
//!
//! Delivery pushes an [`Envelope`] into the receiver's mailbox. A task handles envelopes one at
//! a time, in mailbox order, and parks the actor again when the mailbox is empty; one mailbox
//! per receiver keeps every sender's messages in the order they were sent.
//!
//! A task that parks its actor stays, warm, waiting for the next message: waking it is a
//! waker call, not a task spawn. It ends when its actor leaves the slot for any other reason
//! (it hibernates, is stopped, or the runtime is dropped), so tasks stay bounded by the live
//! instances, and a hibernated actor has none: its next message starts one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use theater_chain::ShutdownReason;
use tokio::sync::{Notify, oneshot};

use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};

use wasmtime::component::{ComponentNamedList, Lower};

use crate::actor::{Actor, ActorCtx, Deferred, Delivery, Outcome, Reply, Returns, State, Trap};
use crate::bindings::theater::simple::types::{ChannelAccept, WitActorError};
use crate::component::{Callee, Export, ExportDecl, HandlerExport, Prepared};
use crate::manifest::{Manifest, MessagingSettings};
use crate::recordable::Recordable;
use crate::shared::{ActorExit, Shared, Work, short_id};
use crate::supervision::Supervision;
use crate::sync::LockExt;

/// How an actor was started, kept so that a restart from `init` can start it the same way.
#[derive(Clone)]
pub(crate) enum Start {
    /// `init` with this state.
    Init(State),
    /// No `init`: this state as is (`supervisor.resume`).
    Resume(State),
}

/// A message on its way to an actor.
pub(crate) struct Envelope {
    /// The id the sender's chain recorded; none for the runtime's own notices.
    pub(crate) id: Option<Arc<str>>,
    pub(crate) sender: Option<Arc<str>>,
    pub(crate) message: Message,
}

#[allow(clippy::enum_variant_names)] // `ChannelMessage` is the WIT's name.
pub(crate) enum Message {
    Send(Vec<u8>),
    Request(Vec<u8>, Reply),
    ChannelOpen {
        channel: Arc<str>,
        msg: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    ChannelMessage {
        channel: Arc<str>,
        msg: Vec<u8>,
    },
    ChannelClose {
        channel: Arc<str>,
    },
    ChildError {
        child: Arc<str>,
        error: WitActorError,
    },
    ChildExit {
        child: Arc<str>,
        data: Option<Vec<u8>>,
    },
    ChildExternalStop {
        child: Arc<str>,
    },
    /// A call of one of a handler's exports (an HTTP request, a process's output), made in
    /// order with the actor's other messages. The handler supplies the typed call, so the core
    /// knows none of its types.
    HandlerCall(Box<dyn HandlerCall>),
}

/// A call of one of a handler's exports, made from the actor's mailbox in order with its other
/// messages, that answers whoever is waiting for it (see [`ExportCall`]).
pub(crate) trait HandlerCall: Send {
    fn export(&self) -> &'static ExportDecl;
    /// The bytes it carries, as mailboxes count them.
    fn payload_len(&self) -> usize;
    /// Calls the export and answers; a trap ends the actor.
    fn call<'a>(
        self: Box<Self>,
        actor: &'a mut Actor,
        delivery: Delivery<'a>,
        kill: &'a Notify,
        max_instances: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Trap>> + Send + 'a>>;
    /// Answers that the call will not be made.
    fn refuse(self: Box<Self>, why: String);
}

/// A [`HandlerCall`] with params `P` and results `O`, answering on `reply` (if anyone waits)
/// with the results after the state, or why there are none.
struct ExportCall<P, O: Returns> {
    export: &'static ExportDecl,
    params: P,
    len: usize,
    reply: Option<oneshot::Sender<Result<O::Rest, CallFailure>>>,
}

/// Why a handler's export call has no results (the reason itself is in the actor's chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// The call was not made: the actor stopped or is stopping.
    NotMade,
    /// The guest returned an error, or trapped.
    Failed,
}

impl<P, O> HandlerCall for ExportCall<P, O>
where
    P: ComponentNamedList + Lower + Recordable,
    O: Returns,
    O::Rest: Send,
{
    fn export(&self) -> &'static ExportDecl {
        self.export
    }
    fn payload_len(&self) -> usize {
        self.len
    }
    fn call<'a>(
        self: Box<Self>,
        actor: &'a mut Actor,
        delivery: Delivery<'a>,
        kill: &'a Notify,
        max_instances: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Trap>> + Send + 'a>> {
        Box::pin(async move {
            let this = *self;
            // Whoever asked gave up (a request past its timeout was answered already): the
            // call is not made, rather than made for no one.
            if this.reply.as_ref().is_some_and(|r| r.is_closed()) {
                return Ok(());
            }
            let outcome = actor
                .call::<P, O>(this.export, this.params, delivery, kill, max_instances)
                .await;
            let (answer, trap) = match outcome {
                Outcome::Returned(rest) => (Ok(rest), None),
                Outcome::GuestError(_) => (Err(CallFailure::Failed), None),
                Outcome::Trapped(trap) => (Err(CallFailure::Failed), Some(trap)),
            };
            if let Some(reply) = this.reply {
                let _ = reply.send(answer);
            }
            trap.map_or(Ok(()), Err)
        })
    }
    fn refuse(self: Box<Self>, _why: String) {
        if let Some(reply) = self.reply {
            let _ = reply.send(Err(CallFailure::NotMade));
        }
    }
}

/// A call of a handler's export on its way to the actor's mailbox: made by
/// [`HandlerExport::call`] or [`HandlerExport::notice`], delivered by
/// [`crate::messaging::OutsideInput`].
pub struct Call(pub(crate) Box<dyn HandlerCall>);

/// The results of a [`HandlerExport::call`] after the state, once the actor has made it.
pub type CallAnswer<R> = oneshot::Receiver<Result<R, CallFailure>>;

impl<P, O> HandlerExport<P, O>
where
    P: ComponentNamedList + Lower + Recordable,
    O: Returns,
    O::Rest: Send,
{
    /// A call of this export with `params` (`len`: the bytes it carries, as mailboxes count
    /// them), whose results come back on the answer.
    pub fn call(&'static self, params: P, len: usize) -> (Call, CallAnswer<O::Rest>) {
        let (reply, answer) = oneshot::channel();
        let call = ExportCall::<P, O> {
            export: self.decl(),
            params,
            len,
            reply: Some(reply),
        };
        (Call(Box::new(call)), answer)
    }

    /// A call of this export whose results nobody waits for (a process's output, say).
    pub fn notice(&'static self, params: P, len: usize) -> Call {
        let call = ExportCall::<P, O> {
            export: self.decl(),
            params,
            len,
            reply: None,
        };
        Call(Box::new(call))
    }
}

impl Message {
    /// The export that handles it.
    pub(crate) fn export(&self) -> Callee {
        Callee::Core(match self {
            Message::Send(_) => Export::HandleSend,
            Message::Request(..) => Export::HandleRequest,
            Message::ChannelOpen { .. } => Export::HandleChannelOpen,
            Message::ChannelMessage { .. } => Export::HandleChannelMessage,
            Message::ChannelClose { .. } => Export::HandleChannelClose,
            Message::ChildError { .. } => Export::HandleChildError,
            Message::ChildExit { .. } => Export::HandleChildExit,
            Message::ChildExternalStop { .. } => Export::HandleChildExternalStop,
            Message::HandlerCall(call) => return Callee::Handler(call.export()),
        })
    }

    /// The bytes it carries, as mailboxes count them.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Message::Send(m) | Message::Request(m, _) => m.len(),
            Message::ChannelOpen { msg, .. } | Message::ChannelMessage { msg, .. } => msg.len(),
            Message::ChildExit { data, .. } => data.as_ref().map_or(0, Vec::len),
            Message::ChildError { error, .. } => error.data.as_ref().map_or(0, Vec::len),
            Message::HandlerCall(call) => call.payload_len(),
            Message::ChannelClose { .. } | Message::ChildExternalStop { .. } => 0,
        }
    }

    /// Tells a waiting sender that the message will not be handled.
    pub(crate) fn refuse(self, why: String) {
        match self {
            Message::Request(_, reply) => reply.fail(why),
            Message::ChannelOpen { reply, .. } => {
                let _ = reply.send(Err(why));
            }
            Message::HandlerCall(call) => call.refuse(why),
            _ => {}
        }
    }
}

/// Who asked an actor to stop, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// Its supervisor: `stop-child`, a strategy stopping siblings, or the parent stopping.
    /// `keep` leaves it exited for a restart instead of removing it.
    Parent { keep: bool },
    /// The operator or the embedding program (not the parent): the parent is told.
    External,
    /// The runtime is exiting.
    RuntimeExit,
    /// Its own restart intensity was exceeded: it fails, and its parent decides.
    Escalation,
}

#[derive(Debug, Clone)]
pub(crate) struct StopRequest {
    pub(crate) cause: StopCause,
    /// For an escalation: why.
    pub(crate) message: Option<String>,
}

impl StopRequest {
    pub(crate) fn reason(&self) -> ShutdownReason {
        match self.cause {
            StopCause::Parent { .. } | StopCause::External => ShutdownReason::Stopped,
            StopCause::RuntimeExit => ShutdownReason::RuntimeExit,
            StopCause::Escalation => ShutdownReason::Failed,
        }
    }
}

/// What is left of an actor that exited, until its supervisor restarts or removes it.
pub(crate) struct Exited {
    pub(crate) ctx: Box<ActorCtx>,
    /// Its state after its last successful call.
    pub(crate) state: State,
    /// How it ended, as its handle will report if it is removed.
    pub(crate) exit: ActorExit,
    /// Whether its chain already ends with a `shutdown` event.
    pub(crate) shutdown_recorded: bool,
}

pub(crate) enum Slot {
    /// Between calls; no task holds it.
    Parked(Actor),
    /// A task holds it: running calls, starting, restarting or stopping it.
    Busy,
    /// It exited and waits for its supervisor's decision.
    Exited(Exited),
    Gone,
}

pub(crate) struct Inner {
    pub(crate) mailbox: VecDeque<Envelope>,
    /// The payload bytes of the envelopes in `mailbox`.
    pub(crate) mailbox_bytes: u64,
    pub(crate) slot: Slot,
    /// A stop asked for while the actor was busy; handled when its call returns.
    pub(crate) stop: Option<StopRequest>,
    /// Parents waiting for the state between calls (`get-child-state`).
    pub(crate) state_waiters: Vec<oneshot::Sender<State>>,
    /// A child, or an actor with a handler that keeps the run alive, keeps the runtime from
    /// being quiescent while it lives.
    pub(crate) child_work: Option<Work>,
    /// Whether the hibernation sweeper has an entry for it.
    pub(crate) idle_queued: bool,
    /// Whether a task is on its way to run it, or waits warm for its next message. The actor
    /// stays parked (and can hibernate to make room) until that task runs, not from the moment
    /// a message arrives.
    pub(crate) wake: Wake,
}

/// A parked actor's task, if it has one.
pub(crate) enum Wake {
    /// None: the next message starts one.
    Cold,
    /// Its last task waits warm for the next message, which wakes it.
    Waiting(Waker),
    /// A task was started or woken, and takes the actor when it runs.
    Woken,
}

impl Inner {
    /// Ends the warm wait of the actor's last task, if it waits: the actor is leaving its slot
    /// or its instance (a stop, a hibernation, the runtime dropped), and its next message
    /// starts a task afresh. A task already woken stays so: it finds the slot as it is.
    pub(crate) fn dismiss_warm(&mut self) {
        if matches!(self.wake, Wake::Waiting(_))
            && let Wake::Waiting(waker) = std::mem::replace(&mut self.wake, Wake::Cold)
        {
            waker.wake();
        }
    }
}

/// One actor's entry in the runtime.
pub(crate) struct Cell {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) parent: Option<Arc<str>>,
    /// 0 for a root, its parent's depth + 1 for a child.
    pub(crate) depth: u32,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) prepared: Arc<Prepared>,
    pub(crate) start: Start,
    pub(crate) messaging: MessagingSettings,
    pub(crate) chain: crate::recording::ChainSource,
    pub(crate) inner: Mutex<Inner>,
    /// Signalled when a full mailbox gets room.
    pub(crate) space: Notify,
    /// Signalled to end a call that outlived its shutdown timeout.
    pub(crate) kill: Notify,
    /// Signalled whenever the actor stops being busy.
    pub(crate) settled: Notify,
    /// How it ended, once it is removed; `settled` is signalled then. (Not a `watch`
    /// channel: that is some 370 bytes per actor, alive or not.)
    pub(crate) exit: std::sync::OnceLock<ActorExit>,
    /// Whether it may have children (the `supervisor` handler is granted).
    pub(crate) supervises: bool,
    /// Its children, once it has had one (see [`ChildTable`]).
    pub(crate) supervision: ChildTable,
    /// Children whose `spawn` is under way (their `init` runs): stopped with the others if
    /// this actor exits meanwhile.
    pub(crate) starting: Mutex<Vec<Arc<str>>>,
    /// The child whose `init` a supervision decision or `restart-child` runs while holding
    /// the supervision lock: whoever waits for the lock waits on that child.
    pub(crate) restarting: Mutex<Option<Arc<str>>>,
    /// Set once its run is ending: a spawn that finishes after this stops its child.
    pub(crate) exiting: std::sync::atomic::AtomicBool,
}

impl Cell {
    /// `name (1234abcd)`, as messages name an actor.
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", self.name, short_id(&self.id))
    }

    pub(crate) fn exports(&self, export: impl Into<Callee>) -> bool {
        self.prepared.export_index(export.into()).is_some()
    }

    /// Its children's table if it supervises and has made it; `None` means no child was ever
    /// added (for those that only look, or remove).
    pub(crate) fn children_table(&self) -> Option<&tokio::sync::Mutex<Supervision<Arc<str>>>> {
        self.supervision.0.get().map(|b| &**b)
    }

    /// Its children's table, made now if this is the first use that needs it.
    pub(crate) fn children_table_or_make(
        &self,
    ) -> Option<&tokio::sync::Mutex<Supervision<Arc<str>>>> {
        if !self.supervises {
            return None;
        }
        let spec = self.manifest.supervision;
        Some(
            self.supervision
                .0
                .get_or_init(|| Box::new(tokio::sync::Mutex::new(Supervision::new(spec)))),
        )
    }

    /// Its supervision, locked. The lock may be held by a restart running a child's `init`:
    /// waiting for it is waiting on that child, so the wait takes part in cycle checks (a
    /// child whose `init` requests this actor is refused at once instead of timing out).
    pub(crate) async fn supervision(
        &self,
        shared: &Shared,
    ) -> Result<tokio::sync::MutexGuard<'_, Supervision<Arc<str>>>, String> {
        let supervision = self
            .children_table_or_make()
            .ok_or("this actor's manifest does not grant the supervisor handler")?;
        if let Ok(guard) = supervision.try_lock() {
            return Ok(guard);
        }
        let holder = self.restarting.locked().clone();
        // An actor waits on one other at a time: one already waiting (on the very child
        // whose restart holds the lock, in `restart-child`) keeps that edge.
        let holder = holder.filter(|_| !shared.waits.is_waiting(&self.id));
        let _waiting = match holder {
            Some(child) => Some(
                shared
                    .waits
                    .wait(&self.id, &child)
                    .map_err(|c| shared.describe_cycle("waiting for a child's restart", &c))?,
            ),
            None => None,
        };
        Ok(supervision.lock().await)
    }
}

/// An actor's children, made at the first use that needs the table: most actors granted the
/// supervisor handler spawn no child, and an empty table (boxed, with its lock) is some 170
/// bytes a hibernated actor would keep.
#[derive(Default)]
pub(crate) struct ChildTable(std::sync::OnceLock<Box<tokio::sync::Mutex<Supervision<Arc<str>>>>>);

/// Why a delivery did not happen.
pub(crate) enum Refused {
    /// The mailbox is full (by count or by bytes); the envelope is handed back so the sender
    /// can wait and retry.
    Full(Envelope),
    /// Every mailbox together holds the runtime's budget of bytes already.
    OverBudget,
    Gone,
}

impl Shared {
    /// Puts `envelope` in `cell`'s mailbox and makes sure a task will handle it. A `notice`
    /// (the runtime's own: child events, channel greetings and closes) is taken even by a full
    /// mailbox: it cannot wait for room, and dropping it would lose it silently. Notices are
    /// few, at most a handful per child and per channel.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        envelope: Envelope,
        notice: bool,
    ) -> Result<(), Refused> {
        let mut inner = cell.inner.locked();
        if matches!(inner.slot, Slot::Gone) {
            return Err(Refused::Gone);
        }
        let bytes = envelope.message.payload_len() as u64;
        if !notice {
            let m = &cell.messaging;
            let full = inner.mailbox.len() >= m.mailbox_capacity as usize
                || (!inner.mailbox.is_empty() && inner.mailbox_bytes + bytes > m.mailbox_bytes);
            if full {
                return Err(Refused::Full(envelope));
            }
            if !self.mailboxes.reserve(bytes) {
                return Err(Refused::OverBudget);
            }
        } else {
            // A notice is taken even over the budget (see above); it still counts.
            self.mailboxes.force(bytes);
        }
        inner.mailbox_bytes += bytes;
        inner.mailbox.push_back(envelope);
        self.busy.add();
        if matches!(inner.slot, Slot::Parked(_)) {
            match std::mem::replace(&mut inner.wake, Wake::Woken) {
                Wake::Cold => {
                    drop(inner);
                    tokio::spawn(start(self.clone(), cell.clone()));
                }
                Wake::Waiting(waker) => {
                    drop(inner);
                    waker.wake();
                }
                Wake::Woken => {}
            }
        }
        Ok(())
    }

    /// After a start or a restart: parks the actor, or runs it if something already waits.
    pub(crate) fn park_or_run(self: &Arc<Self>, cell: &Arc<Cell>, actor: Actor) {
        let Some(actor) = self.park(cell, actor, None) else {
            return;
        };
        // A shutdown or stop request holds no work of its own: count the task, or the
        // runtime could look quiescent before the actor has exited.
        let work = self.busy.begin();
        let (shared, cell) = (self.clone(), cell.clone());
        tokio::spawn(async move {
            if run(&shared, &cell, actor, None).await == Ran::Parked {
                drop(work);
                keep_warm(shared, cell).await;
            }
        });
    }

    /// Parks the actor if nothing waits for it (its task, if `warm` is its waker, waiting warm
    /// for the next message); otherwise hands it back to be run.
    fn park(&self, cell: &Arc<Cell>, mut actor: Actor, warm: Option<Waker>) -> Option<Actor> {
        let mut inner = cell.inner.locked();
        if !inner.mailbox.is_empty()
            || inner.stop.is_some()
            || !inner.state_waiters.is_empty()
            || actor.shutdown_requested()
        {
            // Whoever runs it holds it (a restart's slot may still read as exited).
            inner.slot = Slot::Busy;
            return Some(actor);
        }
        actor.idle_since = Instant::now();
        let queue = self.hibernate_after.is_some() && !inner.idle_queued;
        inner.idle_queued |= queue;
        // A task waits warm only beside a live instance (a snapshot may have just dropped
        // it): a hibernated actor holds no task.
        if let Some(waker) = warm.filter(|_| actor.is_live()) {
            inner.wake = Wake::Waiting(waker);
        }
        inner.slot = Slot::Parked(actor);
        drop(inner);
        if queue {
            self.queue_idle(cell);
        }
        cell.settled.notify_waiters();
        None
    }
}

/// A task scheduled by [`Shared::enqueue`]: takes the actor out of its cell now that it runs,
/// unless someone else (a stop) took it meanwhile, who then sees the mailbox; then keeps the
/// actor's task warm.
async fn start(shared: Arc<Shared>, cell: Arc<Cell>) {
    if run_when_woken(&shared, &cell).await == Ran::Parked {
        keep_warm(shared, cell).await;
    }
}

/// The rest of a task that parked its actor: waits for the next message and runs the actor
/// again, until the actor leaves its slot for another reason (see [`Inner::dismiss_warm`]).
async fn keep_warm(shared: Arc<Shared>, cell: Arc<Cell>) {
    while woken(&cell).await {
        if run_when_woken(&shared, &cell).await == Ran::Exited {
            return;
        }
    }
}

/// Waits for the wake of a task that parked its actor warm: `true` for a message, `false`
/// once dismissed (the task ends).
fn woken(cell: &Cell) -> impl Future<Output = bool> + '_ {
    std::future::poll_fn(move |cx| {
        let mut inner = cell.inner.locked();
        match &mut inner.wake {
            Wake::Waiting(waker) => {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                Poll::Pending
            }
            Wake::Woken => Poll::Ready(true),
            Wake::Cold => Poll::Ready(false),
        }
    })
}

/// Takes the actor, once this task has a place to run it, and runs it; a task that finds its
/// wake taken by another (which runs the actor) has nothing to do.
async fn run_when_woken(shared: &Arc<Shared>, cell: &Arc<Cell>) -> Ran {
    // A place first, while the actor is still parked: waiting, it holds no instance it could
    // not give up (see `call_places`).
    let place = match &shared.call_places {
        Some(places) => Some(take_place(places, || {}).await),
        None => None,
    };
    let actor = {
        let mut inner = cell.inner.locked();
        if !matches!(inner.wake, Wake::Woken) {
            return Ran::Exited;
        }
        inner.wake = Wake::Cold;
        if !matches!(inner.slot, Slot::Parked(_)) {
            return Ran::Exited;
        }
        let Slot::Parked(actor) = std::mem::replace(&mut inner.slot, Slot::Busy) else {
            unreachable!()
        };
        actor
    };
    run(shared, cell, actor, place).await
}

/// A place among the running actors (see `call_places`): at once if one is free, else once
/// one frees up, after `before_waiting` (which gives up what waiting must not hold).
async fn take_place(
    places: &Arc<tokio::sync::Semaphore>,
    before_waiting: impl FnOnce(),
) -> tokio::sync::OwnedSemaphorePermit {
    if let Ok(place) = places.clone().try_acquire_owned() {
        return place;
    }
    before_waiting();
    places
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
}

/// How many envelopes a task handles before letting other tasks run.
const YIELD_EVERY: u32 = 32;

/// Handles `cell`'s envelopes one at a time until its mailbox is empty, then parks the actor,
/// its wake registered to this task.
/// Holds a place among the actors running (see `call_places`) throughout, in its context:
/// `place`, or one it waits for (giving its instance up first) before each message.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    cell: &Arc<Cell>,
    mut actor: Actor,
    place: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Ran {
    actor.set_place(place);
    let mut handled = 0u32;
    loop {
        if let Some(data) = actor.take_shutdown_request() {
            // An exit waits on children, which may need places to finish their calls.
            actor.set_place(None);
            crate::lifecycle::exit(shared, cell, actor, ExitHow::Shutdown(data)).await;
            return Ran::Exited;
        }
        if let Some(places) = &shared.call_places
            && !actor.has_place()
        {
            let place = take_place(places, || {
                if actor.is_live() {
                    actor.hibernate();
                }
            })
            .await;
            actor.set_place(Some(place));
        }
        let next = {
            let mut inner = cell.inner.locked();
            for waiter in inner.state_waiters.drain(..) {
                let _ = waiter.send(actor.state.clone());
            }
            if let Some(stop) = inner.stop.take() {
                Next::Stop(stop)
            } else if let Some(envelope) = inner.mailbox.pop_front() {
                let bytes = envelope.message.payload_len() as u64;
                // Someone may wait for room: by count, by bytes or in the runtime's budget.
                let m = &cell.messaging;
                let was_full = inner.mailbox.len() + 1 == m.mailbox_capacity as usize
                    || inner.mailbox_bytes
                        > m.mailbox_bytes.saturating_sub(m.max_message_bytes.into());
                inner.mailbox_bytes -= bytes;
                shared.mailboxes.release(bytes);
                Next::Deliver(envelope, was_full)
            } else {
                Next::Park
            }
        };
        let envelope = match next {
            Next::Stop(stop) => {
                actor.set_place(None);
                crate::lifecycle::exit(shared, cell, actor, ExitHow::Stopped(stop)).await;
                return Ran::Exited;
            }
            Next::Park => {
                actor.set_place(None);
                let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                match shared.park(cell, actor, Some(waker)) {
                    None => return Ran::Parked,
                    // A message (or a stop) came meanwhile.
                    Some(back) => {
                        actor = back;
                        continue;
                    }
                }
            }
            Next::Deliver(envelope, was_full) => {
                if was_full {
                    cell.space.notify_waiters();
                }
                envelope
            }
        };
        // Boxed: the call's future is large, and this keeps `run`'s own future (moved into
        // every spawned task) small.
        let result = Box::pin(deliver(shared, cell, &mut actor, envelope)).await;
        shared.busy.done();
        if let Err(trap) = result {
            // A call killed (or trapping) while a stop was pending ends as that stop.
            let stop = cell.inner.locked().stop.take();
            let how = match stop {
                Some(stop) => ExitHow::Stopped(stop),
                None => ExitHow::Trapped(trap),
            };
            actor.set_place(None);
            crate::lifecycle::exit(shared, cell, actor, how).await;
            return Ran::Exited;
        }
        // A snapshot drops the instance as hibernation does; a runtime that promises never to
        // drop instances (no hibernation) takes none.
        if shared.hibernate_after.is_some() {
            actor.snapshot_if_due(shared.content.as_deref()).await;
        }
        handled += 1;
        if handled.is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
    }
}

/// How a task's run of its actor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ran {
    /// The actor is parked, its wake registered to the task: the task can wait warm.
    Parked,
    /// It exited, or another task has it: the task ends.
    Exited,
}

enum Next {
    Stop(StopRequest),
    Deliver(Envelope, bool),
    Park,
}

/// How an actor's run ended.
pub(crate) enum ExitHow {
    /// It called `runtime.shutdown`.
    Shutdown(Option<Vec<u8>>),
    Trapped(Trap),
    Stopped(StopRequest),
}

/// Calls the export that handles `envelope`. `Err` means the instance trapped.
async fn deliver(
    shared: &Arc<Shared>,
    cell: &Arc<Cell>,
    actor: &mut Actor,
    envelope: Envelope,
) -> Result<(), Trap> {
    let delivery = Delivery {
        message_id: envelope.id.as_deref(),
        sender: envelope.sender.as_deref(),
    };
    let max = shared.settings.max_instances;
    let kill = &cell.kill;
    // An export whose only result is the new state.
    macro_rules! state_only {
        ($export:expr, $params:expr) => {
            trapped(
                actor
                    .call::<_, (State,)>($export, $params, delivery, kill, max)
                    .await,
            )
        };
    }
    match envelope.message {
        Message::Send(msg) => state_only!(Export::HandleSend, (msg,)),
        Message::Request(msg, reply) => {
            let request_id = envelope.id.clone().unwrap_or_else(|| "".into());
            actor.ctx_mut().current_request = Some((request_id.clone(), reply));
            let outcome = actor
                .call::<_, (State, (Option<Vec<u8>>,))>(
                    Export::HandleRequest,
                    (request_id.to_string(), msg),
                    delivery,
                    kill,
                    max,
                )
                .await;
            // Still here unless the guest answered it already with `respond-to-request`.
            let pending = actor.ctx_mut().current_request.take();
            let Some((_, reply)) = pending else {
                return trapped(outcome);
            };
            match outcome {
                Outcome::Returned(Some(answer)) => {
                    if let Err((reply, why)) = reply.answer(answer) {
                        reply.fail(format!("actor {}: {why}", cell.label()));
                    }
                }
                Outcome::Returned(None) => defer(cell, actor, request_id, reply),
                Outcome::GuestError(e) => reply.fail(format!(
                    "actor {} returned an error for request {request_id}: {e}",
                    cell.label()
                )),
                Outcome::Trapped(trap) => {
                    reply.fail(format!(
                        "actor {} trapped handling request {request_id}: {}",
                        cell.label(),
                        trap.message
                    ));
                    return Err(trap);
                }
            }
            Ok(())
        }
        Message::ChannelOpen {
            channel,
            msg,
            reply,
        } => {
            let outcome = actor
                .call::<_, (State, (ChannelAccept,))>(
                    Export::HandleChannelOpen,
                    (channel.to_string(), msg),
                    delivery,
                    kill,
                    max,
                )
                .await;
            let opener = envelope.sender.clone();
            let answer = match &outcome {
                Outcome::Returned(accept)
                    if accept.accepted
                        && greeting_too_big(shared, envelope.sender.as_deref(), accept) =>
                {
                    Err(format!(
                        "actor {} accepted the channel with a greeting over the opener's [messaging] max_message_bytes",
                        cell.label()
                    ))
                }
                Outcome::Returned(accept) if accept.accepted => {
                    shared.channels.accept(&channel, shared);
                    if let (Some(opener), Some(msg)) = (&opener, accept.message.clone()) {
                        // The acceptor's greeting reaches the opener as the first message.
                        shared.notify_id(
                            opener,
                            Some(&cell.id),
                            Message::ChannelMessage {
                                channel: channel.clone(),
                                msg,
                            },
                            None,
                        );
                    }
                    Ok(())
                }
                Outcome::Returned(accept) => Err(format!(
                    "actor {} refused the channel{}",
                    cell.label(),
                    accept
                        .message
                        .as_deref()
                        .map(|m| format!(": {}", String::from_utf8_lossy(m)))
                        .unwrap_or_default()
                )),
                Outcome::GuestError(e) => Err(format!(
                    "actor {} returned an error opening the channel: {e}",
                    cell.label()
                )),
                Outcome::Trapped(trap) => Err(format!(
                    "actor {} trapped opening the channel: {}",
                    cell.label(),
                    trap.message
                )),
            };
            if answer.is_err() {
                shared.channels.forget(&channel);
            }
            let _ = reply.send(answer);
            trapped(outcome)
        }
        Message::ChannelMessage { channel, msg } => {
            state_only!(Export::HandleChannelMessage, (channel.to_string(), msg))
        }
        Message::ChannelClose { channel } => {
            state_only!(Export::HandleChannelClose, (channel.to_string(),))
        }
        Message::ChildError { child, error } => {
            state_only!(Export::HandleChildError, (child.to_string(), error))
        }
        Message::ChildExit { child, data } => {
            state_only!(Export::HandleChildExit, (child.to_string(), data))
        }
        Message::ChildExternalStop { child } => {
            state_only!(Export::HandleChildExternalStop, (child.to_string(),))
        }
        Message::HandlerCall(call) => call.call(actor, delivery, kill, max).await,
    }
}

/// Whether an acceptor's greeting is larger than its opener takes (a greeting is a message).
fn greeting_too_big(shared: &Shared, opener: Option<&str>, accept: &ChannelAccept) -> bool {
    let len = accept.message.as_ref().map_or(0, Vec::len);
    let max = opener
        .and_then(|o| shared.cell(o))
        .map_or(crate::manifest::DEFAULT_MAX_MESSAGE_BYTES, |o| {
            o.messaging.max_message_bytes
        });
    len > max as usize
}

/// Keeps a request the actor deferred, after forgetting those whose requesters gave up. At
/// most a mailbox's worth wait at once: past that the request fails at once.
fn defer(cell: &Cell, actor: &mut Actor, request_id: Arc<str>, reply: Reply) {
    let deferred = &mut actor.ctx_mut().deferred;
    deferred.retain(|_, d| !d.reply.abandoned());
    if deferred.len() >= cell.messaging.mailbox_capacity as usize {
        reply.fail(format!(
            "actor {} deferred request {request_id}, but already has {} deferred requests waiting (its [messaging] mailbox_capacity)",
            cell.label(),
            deferred.len()
        ));
        return;
    }
    deferred.insert(request_id, Deferred { reply });
}

/// A guest error is recorded and the actor goes on; only a trap ends it.
fn trapped<R>(outcome: Outcome<R>) -> Result<(), Trap> {
    match outcome {
        Outcome::Trapped(trap) => Err(trap),
        _ => Ok(()),
    }
}
#[cfg(test)]
mod tests {
    /// Every actor, hibernated or not, holds a cell: a field that makes it bigger costs a
    /// million-actor runtime that many times over. Raise these bounds only on purpose.
    /// (616: the lazy child table's `Once` costs 8 bytes and saves some 170 on the heap of
    /// every supervisor that has no child. 640 and 248: the waker of a warm task, 24 bytes, saves a
    /// task spawn, and its allocation, per wake of a parked actor.)
    #[test]
    fn an_actors_fixed_record_stays_small() {
        use std::mem::size_of;
        assert!(
            size_of::<super::Cell>() <= 640,
            "Cell: {}",
            size_of::<super::Cell>()
        );
        assert!(
            size_of::<super::Inner>() <= 248,
            "Inner: {}",
            size_of::<super::Inner>()
        );
        let ctx = size_of::<crate::actor::ActorCtx>();
        assert!(ctx <= 520, "ActorCtx: {ctx}");
    }
}
