//! What a runtime's actors share ([`Shared`]): the state the scheduler (`cell`), the services
//! (`lifecycle`, `messaging`) and the handlers reach, below the [`crate::runtime::Runtime`]
//! that composes it. Also the types the runtime reports through (log lines, lifecycle events,
//! how an actor ended).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use theater_chain::{ChainWriter, Durability};
use tokio::sync::{Notify, oneshot};

use crate::actor::{ActorCtx, State};
use crate::cell::{Cell, Slot};
use crate::component::ComponentCache;
use crate::deadlock::WaitGraph;
use crate::engine::{EngineSettings, EpochTicker};
use crate::host::Registry;
use crate::messaging::Channels;
use crate::sync::{LockExt, RwLockExt};

pub use crate::services::{LogLine, LogSink};

/// An actor started, stopped, failed or restarted.
pub struct Lifecycle<'a> {
    pub actor_id: &'a str,
    pub name: &'a str,
    pub parent: Option<&'a str>,
    /// 0 for a root actor, 1 for its children, and so on.
    pub depth: u32,
    pub event: LifecycleEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    Started,
    /// Brought back after a crash of the runtime (`Runtime::recover`).
    Recovered,
    Restarted,
    /// It called `runtime.shutdown`.
    Exited,
    /// Its parent, the operator or the runtime stopped it.
    Stopped,
    /// It trapped, failed to restart, or gave up restarting its children.
    Failed(String),
}

/// Where lifecycle events go (`theater run` draws the actor tree from them).
pub type LifecycleSink = Arc<dyn Fn(&Lifecycle<'_>) + Send + Sync>;

/// The first 8 characters of an actor id, as logs show it.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Counts work in progress; zero means quiescent.
#[derive(Default)]
pub(crate) struct Busy {
    pub(crate) count: AtomicUsize,
    pub(crate) quiet: Notify,
}

/// One unit of work in progress until dropped.
pub(crate) struct Work(Arc<Busy>);

impl Drop for Work {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl Busy {
    pub(crate) fn begin(self: &Arc<Self>) -> Work {
        self.add();
        Work(self.clone())
    }

    pub(crate) fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn done(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.quiet.notify_waiters();
        }
    }
}

/// The bytes waiting in every mailbox together, against the runtime's budget.
pub(crate) struct MailboxBudget {
    used: AtomicU64,
    pub(crate) limit: u64,
}

impl MailboxBudget {
    pub(crate) fn new(limit: u64) -> MailboxBudget {
        MailboxBudget {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Counts `bytes` in if they fit.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Counts `bytes` in even over the budget (the runtime's own notices).
    pub(crate) fn force(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What a runtime's actors share: the cell table, the component cache, the chain writer and
/// content store, the mailboxes' budget, the wait graph and the channels.
pub(crate) struct Shared {
    pub(crate) components: ComponentCache,
    pub(crate) writer: Option<Arc<ChainWriter>>,
    pub(crate) content: Option<Arc<theater_store::ContentStore>>,
    pub(crate) data_dir: Option<Arc<PathBuf>>,
    /// Reads of persisted chains (`get-chain`, `get-child-events`, ranged reads).
    pub(crate) readers: Option<Arc<crate::recording::Readers>>,
    /// `DATA_DIR/runtime.lock`, held shared while this runtime lives, so that a recovery can
    /// tell whether another runtime still runs actors of this data dir.
    pub(crate) dir_lock: Option<std::fs::File>,
    pub(crate) durability: Durability,
    pub(crate) record: bool,
    pub(crate) settings: EngineSettings,
    pub(crate) hibernate_after: Option<Duration>,
    pub(crate) on_log: LogSink,
    pub(crate) on_lifecycle: Option<LifecycleSink>,
    pub(crate) handlers: Registry,
    pub(crate) cells: RwLock<HashMap<Arc<str>, Arc<Cell>>>,
    /// Parked actors with live instances, by when they went idle, for the sweeper.
    pub(crate) idle: Mutex<VecDeque<(Instant, Weak<Cell>)>>,
    /// Spawns, queued messages, deferred requests, open channels and live children.
    pub(crate) busy: Arc<Busy>,
    pub(crate) mailboxes: MailboxBudget,
    pub(crate) waits: WaitGraph,
    pub(crate) channels: Channels,
    pub(crate) message_prefix: u32,
    pub(crate) message_counter: AtomicU64,
    /// Places for actors running, with hibernation on (see [`call_places`]).
    pub(crate) call_places: Option<Arc<tokio::sync::Semaphore>>,
    pub(crate) _ticker: EpochTicker,
}

/// How many actors may be running (handling their mailboxes) at once: half the pool, so that
/// each can have one more instance for what its call starts (a child's `init` runs inside its
/// parent's call, and takes no place). A call that yields (its time slice ended, or it waits)
/// keeps its instance; if every slot were held by calls that yielded, each waiting for the
/// instance its child needs, nothing could go on, and a wait for a slot that others keep
/// taking first can outlast its bound. Capping the actors running keeps a slot for each; an
/// actor waiting for a place stays parked, or hibernates, and holds no instance.
pub(crate) fn call_places(max_instances: u32) -> usize {
    (max_instances as usize / 2).max(1)
}

impl Shared {
    pub(crate) fn cell(&self, id: &str) -> Option<Arc<Cell>> {
        self.cells.reading().get(id).cloned()
    }

    pub(crate) fn insert(&self, cell: Arc<Cell>) {
        self.cells.writing().insert(cell.id.clone(), cell);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.cells.writing().remove(id);
    }

    pub(crate) fn queue_idle(&self, cell: &Arc<Cell>) {
        self.idle
            .locked()
            .push_back((Instant::now(), Arc::downgrade(cell)));
    }

    /// Hibernates every actor idle since before `cutoff`; requeues those that ran since.
    fn hibernate_idle(&self, cutoff: Instant) {
        let mut requeue = Vec::new();
        {
            let mut idle = self.idle.locked();
            while let Some((since, _)) = idle.front()
                && *since <= cutoff
            {
                let (_, cell) = idle.pop_front().expect("front exists");
                let Some(cell) = cell.upgrade() else { continue };
                let mut inner = cell.inner.locked();
                match &mut inner.slot {
                    Slot::Parked(actor) if actor.is_live() => {
                        if actor.idle_since <= cutoff {
                            actor.hibernate();
                            inner.idle_queued = false;
                            inner.dismiss_warm();
                        } else {
                            requeue.push((actor.idle_since, Arc::downgrade(&cell)));
                        }
                    }
                    // Running now: it is queued again when it next parks live.
                    _ => inner.idle_queued = false,
                }
            }
            idle.extend(requeue);
        }
    }

    /// Hibernates a live, parked actor to free its pool slot for an actor that must wake now:
    /// the one queued for hibernation the longest. That approximates the least recently used
    /// (an actor used again since it was queued keeps its place). Returns whether it found one.
    pub(crate) fn hibernate_least_recently_used(&self) -> bool {
        let mut idle = self.idle.locked();
        while let Some((_, cell)) = idle.pop_front() {
            let Some(cell) = cell.upgrade() else { continue };
            let mut inner = cell.inner.locked();
            inner.idle_queued = false;
            if let Slot::Parked(actor) = &mut inner.slot
                && actor.is_live()
            {
                actor.hibernate();
                inner.dismiss_warm();
                return true;
            }
        }
        false
    }

    /// The state of `cell` between calls, waiting for its current call to end if it is busy.
    pub(crate) async fn state_of(&self, cell: &Cell, timeout: Duration) -> Result<State, String> {
        let rx = {
            let mut inner = cell.inner.locked();
            match &inner.slot {
                Slot::Parked(actor) => return Ok(actor.state.clone()),
                Slot::Exited(exited) => return Ok(exited.state.clone()),
                Slot::Gone => return Err(format!("actor {} has stopped", cell.label())),
                Slot::Busy => {
                    let (tx, rx) = oneshot::channel();
                    inner.state_waiters.push(tx);
                    rx
                }
            }
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(_)) => Err(format!("actor {} stopped", cell.label())),
            Err(_) => Err(format!(
                "actor {} did not finish its call within {} ms",
                cell.label(),
                timeout.as_millis()
            )),
        }
    }
}

/// How an actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorExit {
    /// It called `runtime.shutdown` with this data.
    Shutdown(Option<Vec<u8>>),
    /// It was stopped by its parent, the operator or the runtime's exit.
    Stopped,
    /// It failed after starting.
    Failed(String),
}

/// Hibernates idle actors until the runtime is gone. One task for all actors: an idle actor
/// needs no timer of its own.
pub(crate) async fn sweep_idle(shared: Weak<Shared>, delay: Duration) {
    let period = (delay / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(cutoff) = Instant::now().checked_sub(delay) {
            shared.hibernate_idle(cutoff);
        }
    }
}

impl crate::services::Services for Shared {
    fn log_sink(&self) -> &LogSink {
        &self.on_log
    }
    fn call_places(&self) -> Option<&Arc<tokio::sync::Semaphore>> {
        self.call_places.as_ref()
    }
    fn hibernating(&self) -> bool {
        self.hibernate_after.is_some()
    }
    fn hibernate_least_recently_used(&self) -> bool {
        Shared::hibernate_least_recently_used(self)
    }
    fn chain_writer(&self) -> Option<&Arc<ChainWriter>> {
        self.writer.as_ref()
    }
    fn content_store(&self) -> Option<&Arc<theater_store::ContentStore>> {
        self.content.as_ref()
    }
    fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref().map(|d| d.as_path())
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl ActorCtx {
    /// The runtime, while it exists.
    pub(crate) fn shared(&self) -> wasmtime::Result<Arc<Shared>> {
        self.services
            .upgrade()
            .and_then(|s| s.as_any().downcast::<Shared>().ok())
            .ok_or_else(|| wasmtime::format_err!("the runtime is shutting down"))
    }
}
