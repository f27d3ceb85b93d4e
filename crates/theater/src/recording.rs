//! An actor's side of its chain: the head it keeps in memory and where its events go.

use std::path::PathBuf;
use std::sync::Arc;

use theater_chain::{
    ChainHead, ChainReader, ChainWriter, Durability, Event, EventKind, Hash, StoredEvent,
};

/// Appends an actor's events. Only the head stays in memory for a persisted chain; events go to
/// the data dir's writer. A chain with `save_chain = false` is kept in memory instead.
pub(crate) struct ChainRecorder {
    actor_id: Arc<str>,
    head: ChainHead,
    sink: Sink,
}

enum Sink {
    Persisted {
        writer: Arc<ChainWriter>,
        data_dir: Arc<PathBuf>,
        durability: Durability,
    },
    Memory(Vec<StoredEvent>),
}

impl ChainRecorder {
    pub(crate) fn persisted(
        actor_id: Arc<str>,
        writer: Arc<ChainWriter>,
        data_dir: Arc<PathBuf>,
        durability: Durability,
    ) -> Self {
        ChainRecorder {
            actor_id,
            head: ChainHead::default(),
            sink: Sink::Persisted {
                writer,
                data_dir,
                durability,
            },
        }
    }

    pub(crate) fn in_memory(actor_id: Arc<str>) -> Self {
        ChainRecorder {
            actor_id,
            head: ChainHead::default(),
            sink: Sink::Memory(Vec::new()),
        }
    }

    pub(crate) fn head(&self) -> ChainHead {
        self.head
    }

    /// Appends one event. With `every-event` durability this returns once it is on disk.
    pub(crate) async fn record(&mut self, kind: EventKind) -> wasmtime::Result<Hash> {
        let event = Event::new(kind);
        let (index, stored) = self.head.append(&event);
        let hash = stored.hash;
        match &mut self.sink {
            Sink::Memory(events) => events.push(stored),
            Sink::Persisted {
                writer,
                durability: Durability::Batched,
                ..
            } => writer.append(self.actor_id.clone(), index, stored, None)?,
            Sink::Persisted {
                writer,
                durability: Durability::EveryEvent,
                ..
            } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let ack = Box::new(move |r| {
                    let _ = tx.send(r);
                });
                writer.append(self.actor_id.clone(), index, stored, Some(ack))?;
                rx.await
                    .map_err(|_| wasmtime::format_err!("the chain writer stopped"))?
                    .map_err(|e| wasmtime::format_err!("persisting the chain: {e}"))?;
            }
        }
        Ok(hash)
    }

    /// Every event so far, oldest first, with its decoded form.
    pub(crate) async fn read_all(&mut self) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
        let stored = match &self.sink {
            Sink::Memory(events) => events.clone(),
            Sink::Persisted {
                writer, data_dir, ..
            } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                writer.flush_with(Box::new(move |r| {
                    let _ = tx.send(r);
                }))?;
                rx.await
                    .map_err(|_| wasmtime::format_err!("the chain writer stopped"))?
                    .map_err(|e| wasmtime::format_err!("persisting the chain: {e}"))?;
                let data_dir = data_dir.clone();
                let id = self.actor_id.clone();
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
