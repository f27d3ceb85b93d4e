//! Hermetic replay: an actor's chain re-run against its component, or against a new build of it.
//!
//! Every export call is driven again from the chain's `call-start` events, and every host call
//! the guest makes returns the result the chain recorded without running the host function, so a
//! replay touches no file, network, clock or random source, and never waits. The replay records
//! its events through the same [`ChainRecorder`] the live run used, pointed at the recorded chain
//! instead of storage (the [`ReplayLog`]): each event must equal the recorded one, timestamps
//! aside, and the first that does not is the divergence. So the state hash is compared after
//! every call (it is part of `call-end`), and so are the params of every host call.
//!
//! Fresh instances are created exactly where the chain records one (spawn, restart, wake), so
//! whatever the guest keeps in its own memory replays too. A call that ended in a trap that
//! depended on time (CPU budget, shutdown-timeout kill) is taken from the chain, not re-run, so a
//! looping guest does not hang a replay. A call the chain ends inside of (the runtime was killed
//! during it) is not re-run either: nothing it did was kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use theater_chain::{
    Durability, Event, EventKind, Hash, InstanceReason, StoredEvent, TrapKind, Verifier,
};

use crate::actor::{Actor, ActorCtx, Delivery, State, call_decoded};
use crate::bindings::theater::simple::types::{ChannelAccept, WitActorError};
use crate::component::{ComponentCache, Export, Prepared};
use crate::engine::{EngineSettings, EpochTicker, build_engine};
use crate::manifest::{MAX_COMPONENT_BYTES, Manifest, ManifestOrigin};
use crate::recording::{ChainRecorder, ChainSource};
use crate::replay_log::ReplayLog;
pub use crate::replay_log::{Divergence, ReplayError, ReplaySources};

use crate::actor::REPLAY_MAX_INSTANCES as MAX_INSTANCES;

/// The most memory a replayed actor may have, whatever its recorded manifest says.
pub const REPLAY_MAX_MEMORY_MB: u32 = 4096;
/// The most CPU time one replayed call may use, whatever its recorded manifest says.
pub const REPLAY_MAX_CALL_CPU_MS: u64 = 600_000;

/// How to replay. (Its `Default`, with the built-in handler types, is in `crate::handlers`.)
pub struct ReplayOptions {
    /// Replay against this component file instead of the recorded one (a new build).
    pub component: Option<PathBuf>,
    /// Where compiled components are cached between runs (`DATA_DIR/compiled`).
    pub compiled_cache: Option<PathBuf>,
    /// Start at the chain's newest snapshot instead of its first event (the events before it
    /// are still verified, not re-executed).
    pub from_snapshot: bool,
    /// Called as the replay moves on: (events done, events in the chain).
    pub on_progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
    /// The handler types the recorded manifest may name (the built-in ones by default; a
    /// program with its own handlers passes its registry).
    pub handlers: crate::host::Registry,
}

/// What a replay that matched the chain did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub actor_id: String,
    pub name: String,
    /// The component the replay ran.
    pub component: Hash,
    /// Events in the chain, all of them checked.
    pub events: u64,
    /// The snapshot event the replay started from, if it did not start at the beginning.
    pub started_at: Option<u64>,
    /// Export calls executed again.
    pub calls: u64,
    /// Host calls answered from the chain.
    pub host_calls: u64,
    /// Fresh instances created, as the chain recorded them.
    pub instances: u64,
    /// Calls not executed because they ended in a trap that depended on time; the trap was
    /// taken from the chain.
    pub traps_from_chain: u64,
    /// Calls the chain ends (or a recovery cuts off) in the middle of; not executed.
    pub interrupted_calls: u64,
    /// The state hash after the last call.
    pub final_state: Option<Hash>,
    /// Checking the chain, starting the engine and loading the component.
    pub setup: Duration,
    /// Re-executing the chain, after the setup.
    pub elapsed: Duration,
}

/// The replayed actor between events.
enum Body {
    Instance(Actor),
    /// No instance (before the first, or after a trap or stop); the context and last state.
    Empty(Box<ActorCtx>, State),
    Moving,
}

/// `spawn`'s manifest as recorded: its text, or the text its hash names in `sources`.
fn recorded_manifest(
    spawn: &theater_chain::Spawn,
    sources: &ReplaySources,
    handlers: &crate::host::Registry,
) -> Result<Manifest, String> {
    let text = manifest_text(&spawn.manifest, |hash| (sources.blobs)(hash))?;
    let origin = ManifestOrigin::Inline {
        base_dir: ".".into(),
    };
    Manifest::parse_in(&text, origin, handlers).map_err(|e| e.to_string())
}

/// A recorded manifest's text. One recorded by hash is looked up with `blob` and must hash
/// to it: a chain file's blobs, or a data dir's, are not trusted to match.
pub(crate) fn manifest_text(
    recorded: &theater_chain::RecordedManifest,
    blob: impl FnOnce(&Hash) -> Option<Vec<u8>>,
) -> Result<String, String> {
    let hash = match recorded {
        theater_chain::RecordedManifest::Text(text) => return Ok(text.clone()),
        theater_chain::RecordedManifest::Hash(hash) => hash,
    };
    let bytes = blob(hash).ok_or_else(|| {
        format!(
            "its manifest {} is not in the content store (or the chain file's blobs)",
            hash.to_hex()
        )
    })?;
    // The size first: a blob too big to be a manifest is not worth hashing.
    if bytes.len() as u64 > crate::manifest::MAX_MANIFEST_BYTES {
        return Err(format!(
            "its manifest {} is {} bytes, more than a manifest may be ({})",
            hash.to_hex(),
            bytes.len(),
            crate::manifest::MAX_MANIFEST_BYTES
        ));
    }
    if Hash::of(&bytes) != *hash {
        return Err(format!(
            "the content stored as manifest {} does not hash to it",
            hash.to_hex()
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("its manifest {} is not UTF-8", hash.to_hex()))
}

/// `manifest` held within the manifest of `parent` and its ancestors, as at its spawn, read
/// from their recorded chains; `None` where one of them cannot be read (an exported file
/// carries only its own chain: a child then replays with its manifest as recorded).
fn held_within_ancestors(
    sources: &ReplaySources,
    manifest: Manifest,
    parent: Option<&str>,
    handlers: &crate::host::Registry,
    depth: u32,
) -> Option<Manifest> {
    let Some(parent) = parent else {
        return Some(manifest);
    };
    // Deeper trees than this are not built by a supervisor; a crafted loop of parents ends.
    if depth > 256 {
        return None;
    }
    let stored = (sources.chains)(parent).ok()?;
    let EventKind::Spawn(spawn) = Event::decode(&stored.first()?.bytes).ok()?.kind else {
        return None;
    };
    let theirs = recorded_manifest(&spawn, sources, handlers).ok()?;
    let theirs = held_within_ancestors(
        sources,
        theirs,
        spawn.parent.as_deref(),
        handlers,
        depth + 1,
    )?;
    crate::attenuation::attenuate_keys(&theirs, manifest, Durability::default()).ok()
}

/// Replays `stored`, the chain of `actor_id`, and checks every event against it.
pub async fn replay_chain(
    actor_id: &str,
    stored: Vec<StoredEvent>,
    sources: ReplaySources,
    options: ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    replay_to_end(actor_id, stored, sources, options)
        .await
        .map(|(summary, _)| summary)
}

/// [`replay_chain`], also returning the state the actor ends with (recovery goes on from it).
pub(crate) async fn replay_to_end(
    actor_id: &str,
    stored: Vec<StoredEvent>,
    sources: ReplaySources,
    options: ReplayOptions,
) -> Result<(ReplaySummary, State), ReplayError> {
    let started = Instant::now();
    let input = ReplayError::Input;
    let mut verifier = Verifier::new(Some(actor_id));
    let events = stored
        .iter()
        .map(|s| verifier.check(s))
        .collect::<Result<Vec<Event>, _>>()
        .map_err(|e| input(format!("the chain does not verify: {e}")))?;
    let Some(EventKind::Spawn(spawn)) = events.first().map(|e| &e.kind) else {
        return Err(input("the chain is empty".into()));
    };
    let spawn = spawn.clone();
    let recorded = recorded_manifest(&spawn, &sources, &options.handlers)
        .map_err(|e| input(format!("the recorded manifest: {e}")))?;
    // A child ran with its manifest held within its parent's: its memory limit, say, may
    // have been the parent's, smaller than the default it left unset.
    let mut manifest = held_within_ancestors(
        &sources,
        recorded.clone(),
        spawn.parent.as_deref(),
        &options.handlers,
        0,
    )
    .unwrap_or(recorded);
    // The chain may be hostile: its limits are held to bounds, so that a replay cannot run
    // for ever or take all the memory.
    manifest.limits.memory_mb = manifest.limits.memory_mb.min(REPLAY_MAX_MEMORY_MB);
    manifest.limits.max_call_cpu_ms = manifest.limits.max_call_cpu_ms.min(REPLAY_MAX_CALL_CPU_MS);
    let (bytes, origin) = match &options.component {
        Some(path) => (
            theater_files::read_file(path, MAX_COMPONENT_BYTES, "component")
                .map_err(|e| input(e.to_string()))?,
            path.display().to_string(),
        ),
        None => (
            sources.blob(&spawn.component).ok_or_else(|| {
                input(format!(
                    "component {} is not in the content store; pass --component PATH",
                    spawn.component
                ))
            })?,
            format!("store:{}", spawn.component),
        ),
    };
    let engine = build_engine(&EngineSettings {
        max_instances: MAX_INSTANCES,
        max_memory_mb: manifest.limits.memory_mb,
    })
    .map_err(|e| input(format!("starting the engine: {e:#}")))?;
    // The CPU budget still applies, so a new build that loops where the old one did not is
    // reported as a divergence instead of hanging.
    let _ticker = EpochTicker::start(engine.clone());
    let cache = ComponentCache::new(
        engine,
        options.compiled_cache.clone(),
        options.handlers.clone(),
    );
    let prepared = cache
        .prepare_bytes(&manifest, bytes, origin)
        .await
        .map_err(|e| input(e.to_string()))?;
    let component = prepared.loaded.hash;
    let setup = started.elapsed();
    let started = Instant::now();

    // Where to start: after the spawn, or after the newest snapshot with the state it names.
    let snapshot = options
        .from_snapshot
        .then(|| {
            events
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, e)| match &e.kind {
                    EventKind::Snapshot { state } => Some((i, *state)),
                    _ => None,
                })
        })
        .flatten();
    let (start, state) = match snapshot {
        // The state the first instance is made with: `init`'s, or a resumed child's.
        None => (1, spawn.initial_state.and_then(|h| sources.blob(&h))),
        Some((index, None)) => (index + 1, None),
        Some((index, Some(hash))) => {
            let blob = sources.blob(&hash).ok_or_else(|| {
                input(format!(
                    "the snapshot at event {index} names state {hash}, which is not in the content store"
                ))
            })?;
            (index + 1, Some(blob))
        }
    };
    let log = Arc::new(ReplayLog::new(
        stored,
        events,
        options.component.is_some(),
        sources,
        start,
    ));
    let mut chain = ChainRecorder::new(ChainSource::Replay(log.clone()), Durability::Batched);
    chain.continue_from(log.head_at(start));
    let ctx = ActorCtx::for_replay(actor_id.into(), Arc::new(manifest), chain);
    let mut replayer = Replayer {
        log,
        prepared,
        initial_state: spawn.initial_state,
        body: Body::Empty(Box::new(ctx), state),
        kill: tokio::sync::Notify::new(),
        summary: ReplaySummary {
            actor_id: actor_id.to_owned(),
            name: spawn.name,
            component,
            events: 0,
            started_at: snapshot.map(|(i, _)| i as u64),
            calls: 0,
            host_calls: 0,
            instances: 0,
            traps_from_chain: 0,
            interrupted_calls: 0,
            final_state: None,
            setup,
            elapsed: Duration::ZERO,
        },
        on_progress: options.on_progress,
    };
    replayer.run().await?;
    let (_, state) = replayer.take_body();
    let mut summary = replayer.summary;
    summary.events = replayer.log.events.len() as u64;
    summary.host_calls = replayer.log.host_calls();
    summary.final_state = state.as_deref().map(Hash::of);
    summary.elapsed = started.elapsed();
    Ok((summary, state))
}

struct Replayer {
    log: Arc<ReplayLog>,
    prepared: Arc<Prepared>,
    initial_state: Option<Hash>,
    body: Body,
    /// Never notified: a replay has no shutdown timeout to enforce.
    kill: tokio::sync::Notify,
    summary: ReplaySummary,
    on_progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
}

impl Replayer {
    async fn run(&mut self) -> Result<(), ReplayError> {
        let total = self.log.events.len();
        loop {
            let index = self.log.position();
            if let Some(progress) = &mut self.on_progress {
                progress(index as u64, total as u64);
            }
            let log = self.log.clone();
            let Some(event) = log.events.get(index) else {
                return Ok(());
            };
            match &event.kind {
                EventKind::Instance {
                    reason: InstanceReason::Wake,
                    ..
                } => self.wake(index).await?,
                EventKind::Instance { reason, .. } => self.instantiate(index, *reason).await?,
                EventKind::CallStart(_) => self.call(index).await?,
                EventKind::Shutdown { .. } => {
                    self.drop_instance();
                    self.log.skip_to(index + 1);
                }
                // Both drop the instance; the state they name must be the one replay holds.
                EventKind::Snapshot { state }
                | EventKind::Recovery(theater_chain::Recovery { state, .. }) => {
                    self.drop_instance();
                    let Body::Empty(_, holding) = &self.body else {
                        unreachable!("just dropped")
                    };
                    let holding = holding.as_deref().map(Hash::of);
                    if holding != *state {
                        return Err(ReplayError::Diverged(Box::new(Divergence {
                            index: index as u64,
                            call: None,
                            expected: Some(format!(
                                "{} {}",
                                event.kind.type_name(),
                                crate::describe::event(&event.kind)
                            )),
                            actual: format!(
                                "state {}",
                                holding.map_or("none".into(), |h| h.to_hex())
                            ),
                        })));
                    }
                    self.log.skip_to(index + 1);
                }
                other => {
                    return Err(ReplayError::Input(format!(
                        "event {index}: a {} event outside any call, which this runtime never records",
                        other.type_name()
                    )));
                }
            }
            if let Some(failure) = self.log.take_failure() {
                return Err(failure);
            }
        }
    }

    fn take_body(&mut self) -> (Box<ActorCtx>, State) {
        match std::mem::replace(&mut self.body, Body::Moving) {
            Body::Instance(actor) => actor.into_parts(),
            Body::Empty(ctx, state) => (ctx, state),
            Body::Moving => unreachable!("the body is put back after every step"),
        }
    }

    fn drop_instance(&mut self) {
        let (ctx, state) = self.take_body();
        self.body = Body::Empty(ctx, state);
    }

    async fn instantiate(
        &mut self,
        index: usize,
        reason: InstanceReason,
    ) -> Result<(), ReplayError> {
        let (ctx, state) = self.take_body();
        match Actor::instantiate(
            self.prepared.clone(),
            *ctx,
            reason,
            state.clone(),
            MAX_INSTANCES,
        )
        .await
        {
            Ok(actor) => {
                self.summary.instances += 1;
                self.body = Body::Instance(actor);
                Ok(())
            }
            Err((ctx, message)) => {
                self.body = Body::Empty(ctx, state);
                Err(self.log.take_failure().unwrap_or_else(|| {
                    ReplayError::Input(format!("event {index}: creating the instance: {message}"))
                }))
            }
        }
    }

    /// A fresh instance for the call that follows (the live run recorded the wake as part of
    /// that call, just before its `call-start`).
    async fn wake(&mut self, index: usize) -> Result<(), ReplayError> {
        self.instantiate(index, InstanceReason::Wake).await?;
        match self.log.events.get(index + 1).map(|e| &e.kind) {
            Some(EventKind::CallStart(_)) => self.call(index + 1).await,
            _ => Ok(()),
        }
    }

    /// Replays the call whose `call-start` is at `at`.
    async fn call(&mut self, at: usize) -> Result<(), ReplayError> {
        let events = &self.log.events;
        let EventKind::CallStart(start) = &events[at].kind else {
            unreachable!("called at a call-start")
        };
        let mut end = at + 1;
        while matches!(
            events.get(end).map(|e| &e.kind),
            Some(EventKind::HostCall(_))
        ) {
            end += 1;
        }
        match events.get(end).map(|e| &e.kind) {
            Some(EventKind::CallEnd(_)) => {}
            Some(EventKind::Trap { kind, .. }) if !depends_on_time(*kind) => {}
            Some(EventKind::Trap { .. }) => {
                // Re-running it would take as long as it did, or forever.
                self.summary.traps_from_chain += 1;
                self.drop_instance();
                self.log.skip_to(end + 1);
                return Ok(());
            }
            _ => {
                // The run stopped in the middle of this call; nothing it did was kept.
                self.summary.interrupted_calls += 1;
                self.drop_instance();
                self.log.skip_to(end);
                return Ok(());
            }
        }
        let start = start.clone();
        let state = match &self.body {
            Body::Instance(actor) if actor.state_hash() == start.state => None,
            Body::Instance(actor) => Some(self.state_for(at, &start, actor.state_hash())?),
            _ => {
                return Err(ReplayError::Input(format!(
                    "event {at}: a call-start with no instance before it"
                )));
            }
        };
        let Body::Instance(actor) = &mut self.body else {
            unreachable!("checked above")
        };
        if let Some(state) = state {
            actor.set_state(state);
        }
        let delivery = Delivery {
            message_id: start.message_id.as_deref(),
            sender: start.sender.as_deref(),
        };
        let trapped = match Export::from_path(&start.export) {
            Some(export) => dispatch(actor, export, &start.params, delivery, &self.kill).await,
            // A handler's export: the handler declared how its params decode.
            None => match self.prepared.handler_export(&start.export) {
                Some(decl) => (decl.drive)(decl, actor, &start.params, delivery, &self.kill).await,
                None => {
                    return Err(ReplayError::Input(format!(
                        "event {at}: unknown export `{}`",
                        start.export
                    )));
                }
            },
        }
        .map_err(|e| ReplayError::Input(format!("event {at}: {e}")))?;
        self.summary.calls += 1;
        if trapped {
            self.drop_instance();
        }
        Ok(())
    }

    /// The state a call was given that is not the one the replay holds: the initial state (a
    /// restart from init) or any recorded state blob, checked against its hash.
    fn state_for(
        &self,
        at: usize,
        start: &theater_chain::CallStart,
        holding: Option<Hash>,
    ) -> Result<State, ReplayError> {
        let Some(wanted) = start.state else {
            return Ok(None);
        };
        if let Some(blob) = self.log.sources.blob(&wanted) {
            return Ok(Some(blob));
        }
        let known = if Some(wanted) == self.initial_state {
            "the actor's initial state, which is not in the content store"
        } else {
            "a state this replay does not hold and cannot find in the content store"
        };
        Err(ReplayError::Diverged(Box::new(Divergence {
            index: at as u64,
            call: None,
            expected: Some(format!(
                "call-start {} ({known})",
                crate::describe::event(&self.log.events[at].kind)
            )),
            actual: format!(
                "nothing: the replayed state is {}",
                holding.map_or("none".into(), |h| h.to_hex())
            ),
        })))
    }
}

/// Whether a trap of this kind came from the clock rather than from the guest's code.
fn depends_on_time(kind: TrapKind) -> bool {
    matches!(kind, TrapKind::Deadline | TrapKind::OutOfFuel)
}

/// Calls `export` with params decoded from the chain; returns whether the instance trapped.
async fn dispatch(
    actor: &mut Actor,
    export: Export,
    params: &[u8],
    delivery: Delivery<'_>,
    kill: &tokio::sync::Notify,
) -> Result<bool, String> {
    macro_rules! call {
        ($params:ty, $returns:ty) => {
            call_decoded::<$params, $returns>(actor, export, params, delivery, kill).await
        };
    }
    match export {
        Export::Init => call!((String,), (State,)),
        Export::HandleSend => call!((Vec<u8>,), (State,)),
        Export::HandleRequest => call!((String, Vec<u8>), (State, (Option<Vec<u8>>,))),
        Export::HandleChannelOpen => call!((String, Vec<u8>), (State, (ChannelAccept,))),
        Export::HandleChannelMessage => call!((String, Vec<u8>), (State,)),
        Export::HandleChannelClose => call!((String,), (State,)),
        Export::HandleChildError => call!((String, WitActorError), (State,)),
        Export::HandleChildExit => call!((String, Option<Vec<u8>>), (State,)),
        Export::HandleChildExternalStop => call!((String,), (State,)),
    }
}
