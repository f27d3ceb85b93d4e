//! The [`Runtime`] owns the engine, the chain writer and the actors; an [`ActorHandle`] is what
//! callers hold.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use theater_chain::{ChainWriter, Durability, ShutdownReason};
use tokio::sync::{Notify, watch};

use crate::actor::{self, ParkedActor, SpawnRequest};
use crate::component::ComponentCache;
use crate::engine::{EngineSettings, EpochTicker, build_engine};
use crate::error::{RuntimeError, SpawnError};
use crate::manifest::Manifest;

/// One line an actor logged.
pub struct LogLine<'a> {
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub message: &'a str,
}

/// Where actors' log lines go.
pub type LogSink = Arc<dyn Fn(&LogLine<'_>) + Send + Sync>;

/// How a runtime is set up.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where chains, the content store and compiled components live. `None` keeps chains in
    /// memory and persists nothing.
    pub data_dir: Option<PathBuf>,
    /// The durability of chains whose manifest does not set `[chain] durability`.
    pub durability: Durability,
    pub engine: EngineSettings,
    /// An actor idle this long drops its instance (its state and chain head stay). `None`:
    /// never hibernate.
    pub hibernate_after: Option<Duration>,
    pub on_log: LogSink,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            data_dir: None,
            durability: Durability::default(),
            engine: EngineSettings::default(),
            hibernate_after: Some(Duration::from_secs(1)),
            on_log: Arc::new(|line| {
                println!(
                    "[{} {}] {}",
                    line.actor_name,
                    short_id(line.actor_id),
                    line.message
                )
            }),
        }
    }
}

/// The first 8 characters of an actor id, as logs show it.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What a runtime's actors share.
pub(crate) struct Shared {
    pub(crate) components: ComponentCache,
    pub(crate) writer: Option<Arc<ChainWriter>>,
    pub(crate) content: Option<theater_store::ContentStore>,
    pub(crate) data_dir: Option<Arc<PathBuf>>,
    pub(crate) durability: Durability,
    pub(crate) settings: EngineSettings,
    pub(crate) hibernate_after: Option<Duration>,
    pub(crate) on_log: LogSink,
    /// Every running actor, between calls.
    actors: Mutex<HashMap<Arc<str>, ParkedActor>>,
    /// Parked actors by the time they went idle, oldest first, for the hibernation sweeper.
    idle: Mutex<VecDeque<(Instant, Arc<str>)>>,
    /// Spawns in progress and commands not yet handled; zero means quiescent.
    busy: AtomicUsize,
    quiet: Notify,
    _ticker: EpochTicker,
}

impl Shared {
    /// Keeps an actor that has finished its call until something needs it.
    pub(crate) fn park(&self, id: Arc<str>, actor: ParkedActor) {
        if self.hibernate_after.is_some() {
            self.idle
                .lock()
                .unwrap()
                .push_back((actor.idle_since(), id.clone()));
        }
        self.actors.lock().unwrap().insert(id, actor);
    }

    /// Stops a running actor, recording why. An actor that is not running is left alone.
    async fn stop_actor(&self, id: &str, reason: ShutdownReason) {
        let actor = self.actors.lock().unwrap().remove(id);
        if let Some(actor) = actor {
            actor.end(reason, None).await;
        }
    }

    /// Hibernates every actor idle since before `cutoff`.
    fn hibernate_idle(&self, cutoff: Instant) {
        let mut idle = self.idle.lock().unwrap();
        while let Some((since, _)) = idle.front()
            && *since <= cutoff
        {
            let (since, id) = idle.pop_front().expect("front exists");
            let mut actors = self.actors.lock().unwrap();
            // Skip actors that stopped, or ran again since they were queued.
            if let Some(actor) = actors.get_mut(&id)
                && actor.idle_since() == since
            {
                actor.hibernate();
            }
        }
    }

    fn begin_work(&self) -> WorkGuard<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        WorkGuard(self)
    }
}

/// Counts one unit of work as in progress until dropped.
struct WorkGuard<'a>(&'a Shared);

impl Drop for WorkGuard<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// Runs actors. Dropping it without [`Runtime::shutdown`] stops them without recording why.
pub struct Runtime {
    shared: Arc<Shared>,
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

/// A cheap, clonable reference to a running (or finished) actor.
#[derive(Clone)]
pub struct ActorHandle {
    id: Arc<str>,
    name: Arc<str>,
    shared: Arc<Shared>,
    exit: watch::Receiver<Option<ActorExit>>,
}

impl std::fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHandle")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl ActorHandle {
    pub(crate) fn new(
        id: Arc<str>,
        name: Arc<str>,
        shared: Arc<Shared>,
        exit: watch::Receiver<Option<ActorExit>>,
    ) -> Self {
        ActorHandle {
            id,
            name,
            shared,
            exit,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the actor ended, if it has.
    pub fn exit(&self) -> Option<ActorExit> {
        self.exit.borrow().clone()
    }

    /// Waits until the actor has ended.
    pub async fn exited(&self) -> ActorExit {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().expect("waited for Some"),
            Err(_) => ActorExit::Stopped,
        }
    }

    /// Stops the actor, recording why, and returns once it has stopped.
    pub async fn stop(&self) {
        self.shared
            .stop_actor(&self.id, ShutdownReason::Stopped)
            .await;
    }
}

impl Runtime {
    /// Starts a runtime. Must be called within a tokio runtime.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine =
            build_engine(&config.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let (writer, content) = match &config.data_dir {
            Some(dir) => (
                Some(Arc::new(ChainWriter::open(dir)?)),
                Some(theater_store::ContentStore::open(dir)?),
            ),
            None => (None, None),
        };
        let shared = Shared {
            components: ComponentCache::new(
                engine.clone(),
                config.data_dir.as_ref().map(|d| d.join("compiled")),
            ),
            writer,
            content,
            data_dir: config.data_dir.clone().map(Arc::new),
            durability: config.durability,
            settings: config.engine,
            hibernate_after: config.hibernate_after,
            on_log: config.on_log,
            actors: Mutex::default(),
            idle: Mutex::default(),
            busy: AtomicUsize::new(0),
            quiet: Notify::new(),
            _ticker: EpochTicker::start(engine),
        };
        let shared = Arc::new(shared);
        if let Some(delay) = config.hibernate_after {
            tokio::spawn(sweep_idle(Arc::downgrade(&shared), delay));
        }
        Ok(Runtime { shared })
    }

    /// Spawns a root actor and returns once its `init` has returned.
    pub async fn spawn(&self, manifest: Manifest) -> Result<ActorHandle, SpawnError> {
        self.spawn_with(manifest, None, None).await
    }

    /// Spawns an actor with a parent id and an initial state that overrides the manifest's.
    pub async fn spawn_with(
        &self,
        manifest: Manifest,
        parent: Option<String>,
        init_state: Option<Vec<u8>>,
    ) -> Result<ActorHandle, SpawnError> {
        let _work = self.shared.begin_work();
        actor::spawn(
            &self.shared,
            SpawnRequest {
                manifest: Arc::new(manifest),
                parent,
                init_state,
            },
        )
        .await
    }

    /// Actors currently running.
    pub fn actor_count(&self) -> usize {
        self.shared.actors.lock().unwrap().len()
    }

    /// Waits until nothing is in progress: no spawn running and no message waiting.
    pub async fn quiescent(&self) {
        loop {
            let notified = self.shared.quiet.notified();
            if self.shared.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Stops every actor (recording why), then commits every chain.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        let ids: Vec<Arc<str>> = self.shared.actors.lock().unwrap().keys().cloned().collect();
        for id in ids {
            self.shared
                .stop_actor(&id, ShutdownReason::RuntimeExit)
                .await;
        }
        self.flush().await
    }

    /// Commits every chain event recorded so far.
    pub async fn flush(&self) -> Result<(), RuntimeError> {
        if let Some(writer) = &self.shared.writer {
            let writer = writer.clone();
            tokio::task::spawn_blocking(move || writer.flush())
                .await
                .map_err(|e| RuntimeError::Engine(e.to_string()))??;
        }
        Ok(())
    }
}

impl Drop for Runtime {
    /// Drops the actors still parked, without recording why (use [`Runtime::shutdown`] for
    /// that), even if some [`ActorHandle`]s outlive the runtime.
    fn drop(&mut self) {
        let actors = std::mem::take(&mut *self.shared.actors.lock().unwrap());
        drop(actors);
    }
}

/// Hibernates idle actors until the runtime is gone. One task for all actors: an idle actor
/// needs no timer of its own.
async fn sweep_idle(shared: Weak<Shared>, delay: Duration) {
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
