//! An actor's side of its chain: the head it keeps in memory and where its events go.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::replay::ReplayLog;
use theater_chain::{
    ChainHead, ChainReader, ChainWriter, Durability, Event, EventKind, Hash, StoredEvent,
};

/// Appends an actor's events. Only the head stays in memory for a persisted chain; events go to
/// the data dir's writer. A chain with `save_chain = false` is kept in memory instead.
pub(crate) struct ChainRecorder {
    head: ChainHead,
    source: ChainSource,
    durability: Durability,
}

/// Where an actor's recorded events can be read back, by the actor itself (`get-chain`) or by
/// its parent (`get-child-events`), whether or not the actor is running.
#[derive(Clone)]
pub(crate) enum ChainSource {
    Persisted {
        actor_id: Arc<str>,
        writer: Arc<ChainWriter>,
        data_dir: Arc<PathBuf>,
    },
    Memory(Arc<Mutex<Vec<StoredEvent>>>),
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
        }
    }

    pub(crate) fn head(&self) -> ChainHead {
        self.head
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

    /// Appends one event. With `every-event` durability this returns once it is on disk.
    pub(crate) async fn record(&mut self, kind: EventKind) -> wasmtime::Result<Hash> {
        let event = match &self.source {
            ChainSource::Off => return Ok(self.head.head),
            ChainSource::Replay(log) => {
                self.head = log.accept(kind)?;
                return Ok(self.head.head);
            }
            _ => Event::new(kind),
        };
        let (index, stored) = self.head.append(&event);
        let hash = stored.hash;
        match &self.source {
            ChainSource::Off | ChainSource::Replay(_) => {}
            ChainSource::Memory(events) => events.lock().unwrap().push(stored),
            ChainSource::Persisted {
                writer, actor_id, ..
            } => match self.durability {
                Durability::Batched => writer.append(actor_id.clone(), index, stored, None)?,
                Durability::EveryEvent => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let ack = Box::new(move |r| {
                        let _ = tx.send(r);
                    });
                    writer.append(actor_id.clone(), index, stored, Some(ack))?;
                    rx.await
                        .map_err(|_| wasmtime::format_err!("the chain writer stopped"))?
                        .map_err(|e| wasmtime::format_err!("persisting the chain: {e}"))?;
                }
            },
        }
        Ok(hash)
    }
}

impl ChainSource {
    /// Every event so far, oldest first, with its decoded form.
    pub(crate) async fn read_all(&self) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
        let stored = match self {
            ChainSource::Off => Vec::new(),
            ChainSource::Memory(events) => events.lock().unwrap().clone(),
            ChainSource::Replay(log) => log.recorded_so_far(),
            ChainSource::Persisted {
                actor_id,
                writer,
                data_dir,
            } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                writer.flush_with(Box::new(move |r| {
                    let _ = tx.send(r);
                }))?;
                rx.await
                    .map_err(|_| wasmtime::format_err!("the chain writer stopped"))?
                    .map_err(|e| wasmtime::format_err!("persisting the chain: {e}"))?;
                let data_dir = data_dir.clone();
                let id = actor_id.clone();
                tokio::task::spawn_blocking(move || {
                    ChainReader::open(&data_dir)?
                        .chain(&id)
                        .map(|(_, events)| events)
                })
                .await??
            }
        };
        stored
            .into_iter()
            .map(|s| {
                let event = Event::decode(&s.bytes)?;
                Ok((s, event))
            })
            .collect()
    }
}
