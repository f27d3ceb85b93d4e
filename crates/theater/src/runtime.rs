//! The [`Runtime`] owns the engine, the chain writer and the actors; an [`ActorHandle`] is what
//! callers hold.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use theater_chain::{ChainWriter, Durability};

use crate::cell::{Cell, Slot, Start, StopCause, StopRequest};
use crate::component::ComponentCache;
use crate::deadlock::WaitGraph;
use crate::engine::{EngineSettings, EpochTicker, build_engine};
use crate::error::{RuntimeError, SpawnError};
use crate::host::Registry;
use crate::lifecycle::{self, SpawnRequest};
use crate::manifest::{DEFAULT_REQUEST_TIMEOUT_MS, Manifest};
use crate::messaging::Channels;
pub use crate::shared::{
    ActorExit, Lifecycle, LifecycleEvent, LifecycleSink, LogLine, LogSink, short_id,
};
use crate::shared::{MailboxBudget, Shared, call_places, sweep_idle};
use crate::sync::{LockExt, RwLockExt};

/// How a runtime is set up.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where chains, the content store and compiled components live. `None` keeps chains in
    /// memory and persists nothing.
    pub data_dir: Option<PathBuf>,
    /// The durability of chains whose manifest does not set `[chain] durability`.
    pub durability: Durability,
    /// Record chains at all. Off only to measure the runtime without recording.
    pub record: bool,
    pub engine: EngineSettings,
    /// An actor idle this long drops its instance (its state and chain head stay). `None`:
    /// never hibernate.
    pub hibernate_after: Option<Duration>,
    pub on_log: LogSink,
    pub on_lifecycle: Option<LifecycleSink>,
    /// The handler types actors may be granted: the actor model's own
    /// ([`Registry::actor_model`]) unless the embedding program composes others (the
    /// `theater-handlers` crate's `builtin()` has every family this project ships).
    pub handlers: Registry,
    /// Bytes of messages all mailboxes together may hold; past it a send fails at once
    /// ("the runtime's mailboxes hold its whole budget"). Default [`DEFAULT_MAILBOX_BUDGET`].
    pub mailbox_budget_bytes: u64,
}

/// How long [`Runtime::shutdown`] lets actors stop (each within its own shutdown timeout, one
/// after another down each tree) before it kills every call still running.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
/// How long [`Runtime::shutdown`] waits for the last events to commit on a failing disk.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// The default runtime-wide budget of mailbox bytes (`theater run --mailbox-budget-mb`).
pub const DEFAULT_MAILBOX_BUDGET: u64 = 1 << 30;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            data_dir: None,
            durability: Durability::default(),
            record: true,
            engine: EngineSettings::default(),
            hibernate_after: Some(Duration::from_secs(1)),
            on_log: Arc::new(|line| {
                println!(
                    "[{} {}] {}",
                    crate::describe::escape(line.actor_name),
                    short_id(line.actor_id),
                    crate::describe::escape(line.message)
                )
            }),
            on_lifecycle: None,
            handlers: Registry::actor_model(),
            mailbox_budget_bytes: DEFAULT_MAILBOX_BUDGET,
        }
    }
}

/// The lock file every runtime on a data dir holds shared.
pub(crate) const LOCK_FILE: &str = "runtime.lock";

fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, RuntimeError> {
    let path = dir.join(LOCK_FILE);
    let fail = |e: std::io::Error| RuntimeError::Lock {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(fail)?;
    file.lock_shared().map_err(fail)?;
    Ok(file)
}

/// Runs actors. Dropping it without [`Runtime::shutdown`] stops them without recording why.
pub struct Runtime {
    shared: Arc<Shared>,
}

/// A cheap, clonable reference to a running (or finished) actor.
#[derive(Clone)]
pub struct ActorHandle {
    cell: Arc<Cell>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHandle")
            .field("id", &self.cell.id)
            .field("name", &self.cell.name)
            .finish()
    }
}

impl ActorHandle {
    pub(crate) fn new(cell: Arc<Cell>, shared: Arc<Shared>) -> Self {
        ActorHandle { cell, shared }
    }

    pub fn id(&self) -> &str {
        &self.cell.id
    }

    pub fn name(&self) -> &str {
        &self.cell.name
    }

    /// How the actor ended, if it has.
    pub fn exit(&self) -> Option<ActorExit> {
        self.cell.exit.get().cloned()
    }

    /// Waits until the actor has ended.
    pub async fn exited(&self) -> ActorExit {
        loop {
            // Registered before looking, so that a removal in between still wakes this.
            let settled = self.cell.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if let Some(exit) = self.cell.exit.get() {
                return exit.clone();
            }
            settled.await;
        }
    }

    /// Stops the actor (its children first), recording why, and returns once it has stopped.
    /// A supervised actor's parent hears of it through `handle-child-external-stop`.
    pub async fn stop(&self) {
        lifecycle::stop(
            &self.shared,
            &self.cell,
            StopRequest {
                cause: StopCause::External,
                message: None,
            },
        )
        .await;
    }

    /// Delivers `msg` to the actor's `handle-send`.
    pub async fn send(&self, msg: Vec<u8>) -> Result<(), String> {
        let id = self.shared.next_message_id();
        self.shared
            .deliver(
                None,
                &self.cell.id,
                crate::cell::Message::Send(msg),
                Some(id),
                Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            )
            .await
    }

    /// Sends `msg` to the actor's `handle-request` and waits for the answer (default timeout).
    pub async fn request(&self, msg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.request_within(msg, Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS))
            .await
    }

    pub async fn request_within(&self, msg: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, String> {
        let id = self.shared.next_message_id();
        // The program's own limit on answers is the actor's limit on messages.
        let max_answer = self.cell.messaging.max_message_bytes;
        self.shared
            .request(None, &self.cell.id, msg, id, timeout, max_answer.into())
            .await
    }

    /// The actor's state between calls.
    pub async fn state(&self) -> Result<Option<Vec<u8>>, String> {
        self.shared
            .state_of(
                &self.cell,
                Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            )
            .await
    }

    /// The ids of its children, oldest first.
    pub async fn children(&self) -> Vec<String> {
        match self.cell.children_table() {
            Some(s) => s.lock().await.children().map(|c| c.to_string()).collect(),
            None => Vec::new(),
        }
    }
}

impl Runtime {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts a runtime. Must be called within a tokio runtime.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine =
            build_engine(&config.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let (writer, content) = match &config.data_dir {
            Some(dir) => {
                let writer = Arc::new(ChainWriter::open(dir)?);
                // Blobs commit through the chain writer: a spawn never waits for the lock.
                let content =
                    theater_store::ContentStore::open(dir)?.writing_through(writer.clone());
                (Some(writer), Some(Arc::new(content)))
            }
            None => (None, None),
        };
        let dir_lock = match &config.data_dir {
            Some(dir) => {
                let lock = lock_data_dir(dir)?;
                // Holding the lock, whatever a family recorded outside (process groups, say)
                // belongs to a runtime that died without stopping its actors.
                config.handlers.data_dir_locked(dir);
                Some(lock)
            }
            None => None,
        };
        let shared = Shared {
            components: ComponentCache::new(
                engine.clone(),
                config.data_dir.as_ref().map(|d| d.join("compiled")),
                config.handlers.clone(),
            ),
            writer,
            content,
            data_dir: config.data_dir.clone().map(Arc::new),
            readers: config
                .data_dir
                .clone()
                .map(|d| Arc::new(crate::recording::Readers::new(Arc::new(d)))),
            dir_lock,
            durability: config.durability,
            record: config.record,
            settings: config.engine,
            hibernate_after: config.hibernate_after,
            on_log: config.on_log,
            on_lifecycle: config.on_lifecycle,
            handlers: config.handlers,
            cells: RwLock::default(),
            idle: Mutex::default(),
            busy: Arc::default(),
            mailboxes: MailboxBudget::new(config.mailbox_budget_bytes),
            waits: WaitGraph::default(),
            channels: Channels::default(),
            message_prefix: uuid::Uuid::new_v4().as_u128() as u32,
            message_counter: AtomicU64::new(0),
            call_places: config.hibernate_after.map(|_| {
                Arc::new(tokio::sync::Semaphore::new(call_places(
                    config.engine.max_instances,
                )))
            }),
            _ticker: EpochTicker::start(engine),
        };
        let shared = Arc::new(shared);
        if let Some(delay) = config.hibernate_after {
            tokio::spawn(sweep_idle(Arc::downgrade(&shared), delay));
        }
        Ok(Runtime { shared })
    }

    /// Spawns a root actor and returns once its `init` has returned. To spawn many actors from
    /// one manifest, pass an `Arc<Manifest>`: they share it instead of holding a copy each.
    pub async fn spawn(
        &self,
        manifest: impl Into<Arc<Manifest>>,
    ) -> Result<ActorHandle, SpawnError> {
        self.spawn_with(manifest, None).await
    }

    /// Spawns a root actor with an initial state that overrides the manifest's `init_state`.
    pub async fn spawn_with(
        &self,
        manifest: impl Into<Arc<Manifest>>,
        init_state: Option<Vec<u8>>,
    ) -> Result<ActorHandle, SpawnError> {
        let cell = lifecycle::spawn(
            &self.shared,
            SpawnRequest {
                manifest: manifest.into(),
                parent: None,
                start: Start::Init(init_state),
                id: None,
                recover: None,
                root: None,
            },
        )
        .await?;
        Ok(ActorHandle::new(cell, self.shared.clone()))
    }

    /// A handle to a running actor, by id.
    pub fn actor(&self, id: &str) -> Option<ActorHandle> {
        self.shared
            .cell(id)
            .map(|cell| ActorHandle::new(cell, self.shared.clone()))
    }

    /// Actors currently running.
    pub fn actor_count(&self) -> usize {
        self.shared.cells.reading().len()
    }

    /// Waits until nothing is in progress or can deliver input: no spawn running, no message
    /// waiting, no deferred request, no open channel and no running child.
    pub async fn quiescent(&self) {
        loop {
            let notified = self.shared.busy.quiet.notified();
            if self.shared.busy.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Stops every actor (children first, recording why), then commits every chain.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        let roots: Vec<Arc<Cell>> = self
            .shared
            .cells
            .reading()
            .values()
            .filter(|c| c.parent.is_none())
            .cloned()
            .collect();
        // Each root stops in a task of its own: giving up at the limit below must not cut an
        // actor's exit in half (its children stopped, its chain left open). Roots stop one
        // after another, as before.
        let shared = self.shared.clone();
        let stopping = tokio::spawn(async move {
            for cell in roots {
                let request = StopRequest {
                    cause: StopCause::RuntimeExit,
                    message: None,
                };
                lifecycle::stop(&shared, &cell, request).await;
            }
        });
        if tokio::time::timeout(SHUTDOWN_LIMIT, stopping)
            .await
            .is_err()
        {
            // Deep trees of slow actors: end every call still running, and go.
            let left: Vec<Arc<Cell>> = self.shared.cells.reading().values().cloned().collect();
            for cell in &left {
                cell.kill.notify_waiters();
            }
            tracing::error!(
                "shutdown: {} actors were still stopping after {} s; their calls were killed",
                left.len(),
                SHUTDOWN_LIMIT.as_secs()
            );
        }
        self.flush_within(Some(FLUSH_LIMIT)).await
    }

    /// Commits every chain event recorded so far. While commits fail (a full disk), this
    /// waits for the disk; [`Runtime::shutdown`] waits at most [`FLUSH_LIMIT`].
    pub async fn flush(&self) -> Result<(), RuntimeError> {
        self.flush_within(None).await
    }

    async fn flush_within(&self, limit: Option<Duration>) -> Result<(), RuntimeError> {
        if let Some(writer) = &self.shared.writer {
            let writer = writer.clone();
            tokio::task::spawn_blocking(move || writer.flush_within(limit))
                .await
                .map_err(|e| RuntimeError::Engine(e.to_string()))??;
        }
        Ok(())
    }

    /// The chain writer's health (a failing disk, its queue), if chains persist.
    pub fn writer_status(&self) -> Option<theater_chain::WriterStatus> {
        self.shared.writer.as_ref().map(|w| w.status())
    }

    /// Caps the chain database at about `bytes` (`None`: no cap). Past it commits fail as on
    /// a full disk: reported once, retried, and recording continues once the cap is raised.
    pub fn set_chain_quota(&self, bytes: Option<u64>) -> Result<(), RuntimeError> {
        if let Some(writer) = &self.shared.writer {
            writer.set_quota(bytes)?;
        }
        Ok(())
    }

    /// Stops as a crash would, for testing recovery in one process: commits what was
    /// recorded, releases the data dir, and leaves every actor's chain open, with no shutdown
    /// recorded. The actors stay in memory, unreachable, until the process exits.
    pub async fn abandon(self) -> Result<(), RuntimeError> {
        self.flush().await?;
        if let Some(lock) = &self.shared.dir_lock {
            let _ = lock.unlock();
        }
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for Runtime {
    /// Drops the actors still parked, without recording why (use [`Runtime::shutdown`] for
    /// that), even if some [`ActorHandle`]s outlive the runtime.
    fn drop(&mut self) {
        let cells = std::mem::take(&mut *self.shared.cells.writing());
        for cell in cells.values() {
            let mut inner = cell.inner.locked();
            inner.slot = Slot::Gone;
            inner.mailbox.clear();
            inner.dismiss_warm();
        }
    }
}
