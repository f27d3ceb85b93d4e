//! An actor's side of its chain: the head it keeps in memory and where its events go.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::replay_log::ReplayLog;
use crate::sync::LockExt;
use theater_chain::{
    ChainAppender, ChainHead, ChainReader, ChainWriter, Durability, Event, EventKind, Hash,
    StoredEvent,
};

/// The most a chain kept in memory (`save_chain = false`) may hold. Past it the actor's next
/// event fails its call: it traps, and its parent hears why. Its last word (the trap or
/// shutdown event) is kept over the limit.
pub const MAX_MEMORY_CHAIN_BYTES: u64 = 64 << 20;

/// The most events `runtime.get-chain` and `supervisor.get-child-events` return; a longer
/// chain fails the call (the guest traps) with a reason that names `theater:simple/chain`,
/// which reads any chain in ranges.
pub const MAX_WHOLE_CHAIN_EVENTS: u64 = 1_000;
/// The most bytes of events those calls, and one ranged read, return.
pub const MAX_CHAIN_READ_BYTES: u64 = 16 << 20;
/// The largest event a chain holds (SQLite refuses blobs past 10^9 bytes); a call that would
/// record a larger one (a huge log line, say) fails.
pub const MAX_EVENT_BYTES: u64 = 512 << 20;
/// The most events one ranged read returns.
pub const MAX_RANGE_EVENTS: u32 = 1_000;
/// How long a read waits for queued events to commit, on a failing disk, before it returns
/// what is committed.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Appends an actor's events. Only the head stays in memory for a persisted chain; events go to
/// the data dir's writer. A chain with `save_chain = false` is kept in memory instead.
pub(crate) struct ChainRecorder {
    head: ChainHead,
    source: ChainSource,
    durability: Durability,
    /// Where each persisted event is encoded, reused from one event to the next.
    scratch: Vec<u8>,
}

/// Where an actor's recorded events can be read back, by the actor itself (`get-chain`) or by
/// its parent (`get-child-events`), whether or not the actor is running.
#[derive(Clone)]
pub(crate) enum ChainSource {
    Persisted {
        actor_id: Arc<str>,
        writer: Arc<ChainWriter>,
        appender: Arc<ChainAppender>,
        readers: Arc<Readers>,
    },
    Memory(Arc<Mutex<MemoryChain>>),
    /// Recording is switched off (benchmarks of the bare runtime): nothing is kept.
    Off,
    /// A replay: each event must equal the next one of a recorded chain (see `crate::replay`).
    Replay(Arc<ReplayLog>),
}

impl ChainRecorder {
    pub(crate) fn new(source: ChainSource, durability: Durability) -> Self {
        ChainRecorder {
            head: ChainHead::default(),
            source,
            durability,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn head(&self) -> ChainHead {
        self.head
    }

    /// Frees the encoding buffer: a hibernating actor keeps nothing it can make again.
    pub(crate) fn release_buffers(&mut self) {
        self.scratch = Vec::new();
    }

    /// Whether events are kept at all; callers skip building events when not.
    pub(crate) fn is_on(&self) -> bool {
        !matches!(self.source, ChainSource::Off)
    }

    /// The recorded chain being replayed, if this is a replay.
    pub(crate) fn replaying(&self) -> Option<&Arc<ReplayLog>> {
        match &self.source {
            ChainSource::Replay(log) => Some(log),
            _ => None,
        }
    }

    /// Continues a chain that already has events.
    pub(crate) fn continue_from(&mut self, head: ChainHead) {
        self.head = head;
    }

    pub(crate) fn source(&self) -> &ChainSource {
        &self.source
    }

    /// Appends one event. With `every-event` durability this returns once it is on disk; with
    /// `batched`, once it is queued (waiting while the writer's bounded queue is full).
    pub(crate) async fn record(&mut self, kind: EventKind) -> wasmtime::Result<Hash> {
        match self.record_now(kind)? {
            Recorded::Done(hash) => Ok(hash),
            // Boxed: rare, and its future would otherwise be part of every call's.
            waiting => Box::pin(self.record_waiting(waiting)).await,
        }
    }

    /// Records the event without waiting, if it can: the usual case, where the writer's queue
    /// has room and the durability is `batched`.
    fn record_now(&mut self, kind: EventKind) -> wasmtime::Result<Recorded> {
        let event = match &self.source {
            ChainSource::Off => return Ok(Recorded::Done(self.head.head)),
            ChainSource::Replay(log) => {
                self.head = log.accept(kind)?;
                return Ok(Recorded::Done(self.head.head));
            }
            _ => Event::new(kind),
        };
        if let ChainSource::Persisted { appender, .. } = &self.source {
            // Encoded into a reused buffer and copied into the appender's: no allocation.
            event.encode_to(&mut self.scratch);
            check_size(self.scratch.len())?;
            // The head moves only once the event is queued: a call killed while it waits for
            // room leaves neither a gap in the chain nor a head past its events.
            let mut next = self.head;
            let (index, hash) = next.link(&self.scratch);
            if !appender.try_append(index, &hash, &self.scratch)? {
                return Ok(Recorded::WaitingForRoom { next, index, hash });
            }
            self.head = next;
            self.trim_scratch();
            if self.durability == Durability::EveryEvent {
                return Ok(Recorded::WaitingForDisk(hash));
            }
            return Ok(Recorded::Done(hash));
        }
        let before = self.head;
        let (_, stored) = self.head.append(&event);
        let hash = stored.hash;
        if let Err(e) = check_size(stored.bytes.len()) {
            self.head = before;
            return Err(e);
        }
        if let ChainSource::Memory(chain) = &self.source {
            let mut chain = chain.locked();
            let last_word = matches!(
                event.kind,
                EventKind::Trap { .. } | EventKind::Shutdown { .. }
            );
            if chain.bytes + stored.bytes.len() as u64 > MAX_MEMORY_CHAIN_BYTES && !last_word {
                self.head = before;
                wasmtime::bail!(
                    "its chain, kept in memory (save_chain = false), reached its limit of {MAX_MEMORY_CHAIN_BYTES} bytes; persist it (save_chain = true) or make fewer calls"
                );
            }
            chain.bytes += stored.bytes.len() as u64;
            chain.events.push(stored);
        }
        Ok(Recorded::Done(hash))
    }

    /// The rest of a [`ChainRecorder::record`] that must wait: for room in the writer's queue
    /// (a slow or failing disk), then, with `every-event` durability, for the commit.
    async fn record_waiting(&mut self, recorded: Recorded) -> wasmtime::Result<Hash> {
        let ChainSource::Persisted {
            writer, appender, ..
        } = &self.source
        else {
            unreachable!("only a persisted chain waits")
        };
        let (writer, appender) = (writer.clone(), appender.clone());
        let hash = match recorded {
            Recorded::Done(hash) => return Ok(hash),
            Recorded::WaitingForDisk(hash) => hash,
            Recorded::WaitingForRoom { next, index, hash } => {
                appender.append(index, &hash, &self.scratch).await?;
                self.head = next;
                self.trim_scratch();
                if self.durability != Durability::EveryEvent {
                    return Ok(hash);
                }
                hash
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Waits for the fsynced commit, through any retries of a failing disk.
        writer.sync_with(Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        rx.await
            .map_err(|_| wasmtime::format_err!("the chain writer stopped"))?
            .map_err(|e| wasmtime::format_err!("persisting the chain: {e}"))?;
        Ok(hash)
    }

    /// Big buffers are not kept: one huge event must not pin its size for ever.
    fn trim_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
    }
}

/// How far [`ChainRecorder::record_now`] got.
enum Recorded {
    Done(Hash),
    /// Encoded in the scratch buffer and linked as `next`'s last event, but not queued: the
    /// writer's queue is full.
    WaitingForRoom {
        next: ChainHead,
        index: u64,
        hash: Hash,
    },
    /// Queued; `every-event` durability waits for the commit.
    WaitingForDisk(Hash),
}

/// The most bytes the encoding buffer keeps between events.
const SCRATCH_KEPT: usize = 64 << 10;

/// Refuses an event larger than a chain holds.
fn check_size(bytes: usize) -> wasmtime::Result<()> {
    if bytes as u64 > MAX_EVENT_BYTES {
        wasmtime::bail!(
            "an event of {bytes} bytes is more than a chain event may hold ({MAX_EVENT_BYTES} bytes)"
        );
    }
    Ok(())
}

/// An in-memory chain (`save_chain = false`) and its size.
#[derive(Default)]
pub(crate) struct MemoryChain {
    events: Vec<StoredEvent>,
    bytes: u64,
}

/// Read connections to the data dir's database, opened once and reused, so that reading a
/// chain costs a query, not a connection.
pub(crate) struct Readers {
    data_dir: Arc<PathBuf>,
    idle: Mutex<Vec<ChainReader>>,
}

impl Readers {
    pub(crate) fn new(data_dir: Arc<PathBuf>) -> Self {
        Readers {
            data_dir,
            idle: Mutex::default(),
        }
    }

    /// Runs `read` on a connection, off the async workers.
    async fn with<R: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&ChainReader) -> Result<R, theater_chain::StoreError> + Send + 'static,
    ) -> wasmtime::Result<R> {
        let readers = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let popped = readers.idle.locked().pop();
            let reader = match popped {
                Some(reader) => reader,
                None => ChainReader::open(&readers.data_dir)?,
            };
            let result = read(&reader);
            let mut idle = readers.idle.locked();
            // One per thread that reads at once is enough; more would only hold files open.
            if idle.len() < 4 {
                idle.push(reader);
            }
            result
        })
        .await?;
        Ok(result?)
    }
}

impl ChainSource {
    /// The whole chain (committed: see [`ChainSource::read_stored`]), for `get-chain` and
    /// `get-child-events`. A chain of
    /// more than [`MAX_WHOLE_CHAIN_EVENTS`] events or [`MAX_CHAIN_READ_BYTES`] bytes fails.
    pub(crate) async fn read_whole(&self) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
        let (len, stored) = self
            .read_stored(0, MAX_WHOLE_CHAIN_EVENTS, MAX_CHAIN_READ_BYTES + 1)
            .await?;
        if len > MAX_WHOLE_CHAIN_EVENTS {
            wasmtime::bail!(
                "the chain has {len} events, more than the {MAX_WHOLE_CHAIN_EVENTS} that a read of a whole chain returns; read it in ranges with theater:simple/chain"
            );
        }
        let bytes: u64 = stored.iter().map(|e| e.bytes.len() as u64).sum();
        if bytes > MAX_CHAIN_READ_BYTES {
            wasmtime::bail!(
                "the chain holds {bytes} bytes of events, more than the {MAX_CHAIN_READ_BYTES} that a read of a whole chain returns; read it in ranges with theater:simple/chain"
            );
        }
        decode(stored)
    }

    /// Up to `max` events (at most [`MAX_RANGE_EVENTS`]) from index `from`, as far as they are
    /// committed, and no more than [`MAX_CHAIN_READ_BYTES`] of them unless one event alone is.
    pub(crate) async fn read_range(
        &self,
        from: u64,
        max: u32,
    ) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
        let limit = max.min(MAX_RANGE_EVENTS).into();
        let (_, mut stored) = self.read_stored(from, limit, MAX_CHAIN_READ_BYTES).await?;
        let mut total = 0;
        let keep = stored
            .iter()
            .take_while(|e| {
                total += e.bytes.len() as u64;
                total <= MAX_CHAIN_READ_BYTES
            })
            .count()
            .max(1);
        stored.truncate(keep);
        decode(stored)
    }

    /// The hash of committed event `index`, if there is one.
    pub(crate) async fn hash_at(&self, index: u64) -> wasmtime::Result<Option<Hash>> {
        let at = |events: &[StoredEvent]| {
            usize::try_from(index)
                .ok()
                .and_then(|i| events.get(i))
                .map(|e| e.hash)
        };
        Ok(match self {
            ChainSource::Off => None,
            ChainSource::Memory(chain) => at(&chain.locked().events),
            ChainSource::Replay(log) => at(&log.recorded_so_far()),
            ChainSource::Persisted {
                actor_id, readers, ..
            } => {
                let id = actor_id.clone();
                readers
                    .with(move |reader| reader.hash_at(&id, index))
                    .await?
            }
        })
    }

    /// The chain's committed length, and up to `limit` of its events from `from`. Events
    /// queued before the call are included, unless commits fail for [`COMMIT_WAIT`].
    async fn read_stored(
        &self,
        from: u64,
        limit: u64,
        max_bytes: u64,
    ) -> wasmtime::Result<(u64, Vec<StoredEvent>)> {
        // As the database does: stop once the events taken hold `max_bytes`.
        let range = |events: &[StoredEvent], from: u64, limit: u64| {
            let from = usize::try_from(from).unwrap_or(usize::MAX);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let mut bytes = 0;
            events
                .iter()
                .skip(from)
                .take(limit)
                .take_while(|e| {
                    let before = bytes;
                    bytes += e.bytes.len() as u64;
                    before < max_bytes
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        Ok(match self {
            ChainSource::Off => (0, Vec::new()),
            ChainSource::Memory(chain) => {
                let chain = chain.locked();
                (chain.events.len() as u64, range(&chain.events, from, limit))
            }
            ChainSource::Replay(log) => {
                let events = log.recorded_so_far();
                (events.len() as u64, range(&events, from, limit))
            }
            ChainSource::Persisted {
                actor_id,
                readers,
                writer,
                ..
            } => {
                // Events still on their way to disk are read once the writer's next rounds
                // have committed them: no early commit, a few milliseconds' wait.
                writer.committed_so_far(COMMIT_WAIT).await;
                let id = actor_id.clone();
                readers
                    .with(move |reader| reader.events(&id, from, limit, max_bytes))
                    .await?
            }
        })
    }
}

fn decode(stored: Vec<StoredEvent>) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
    stored
        .into_iter()
        .map(|s| {
            let event = Event::decode(&s.bytes)?;
            Ok((s, event))
        })
        .collect()
}
