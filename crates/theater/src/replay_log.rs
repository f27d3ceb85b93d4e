//! A recorded chain being replayed: what the actor's recorder matches each event against
//! instead of storing it (see `crate::recording::ChainSource::Replay`), and where a replay
//! finds what the chain refers to. Below the recorder; the replay driver (`crate::replay`)
//! sits above the runtime core.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use theater_chain::{ChainHead, Event, EventKind, Hash, HostCall, HostResult, StoredEvent};

use crate::sync::LockExt;

/// Turns a chain's events back into a host function's result (replay of a chain reference).
pub(crate) type Rebuild<R> = fn(Vec<(StoredEvent, Event)>) -> R;

/// Where a replay finds what a chain refers to by hash or by actor id.
pub struct ReplaySources {
    pub(crate) blobs: BlobLookup,
    pub(crate) chains: ChainLookup,
}

type BlobLookup = Box<dyn Fn(&Hash) -> Option<Vec<u8>> + Send + Sync>;
type ChainLookup = Box<dyn Fn(&str) -> Result<Vec<StoredEvent>, String> + Send + Sync>;

impl ReplaySources {
    /// `blobs`: content by BLAKE3 hash (the component, recorded states). `chains`: other actors'
    /// chains, for results recorded as references to them (`get-child-events`).
    pub fn new(
        blobs: impl Fn(&Hash) -> Option<Vec<u8>> + Send + Sync + 'static,
        chains: impl Fn(&str) -> Result<Vec<StoredEvent>, String> + Send + Sync + 'static,
    ) -> ReplaySources {
        ReplaySources {
            blobs: Box::new(blobs),
            chains: Box::new(chains),
        }
    }

    /// The content store and chains of a data dir.
    pub fn data_dir(dir: &Path) -> ReplaySources {
        let content = theater_store::ContentStore::open(dir).ok();
        let dir = dir.to_owned();
        ReplaySources::new(
            move |hash| content.as_ref()?.get(&hash.0).ok().flatten(),
            move |id| {
                theater_chain::ChainReader::open(&dir)
                    .and_then(|r| r.chain(id))
                    .map(|(_, events)| events)
                    .map_err(|e| e.to_string())
            },
        )
    }

    /// Looks in `first`, then in `self`.
    pub fn with_blobs(self, first: HashMap<Hash, Vec<u8>>) -> ReplaySources {
        let rest = self.blobs;
        ReplaySources {
            blobs: Box::new(move |hash| first.get(hash).cloned().or_else(|| rest(hash))),
            chains: self.chains,
        }
    }

    pub(crate) fn blob(&self, hash: &Hash) -> Option<Vec<u8>> {
        (self.blobs)(hash).filter(|b| Hash::of(b) == *hash)
    }
}

/// The first point where the replay did something other than what the chain recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The index of the recorded event that was not matched.
    pub index: u64,
    /// The export call it happened in (its `call-start`, with params and state hash).
    pub call: Option<(u64, String)>,
    /// The recorded event; `None` if the chain had ended.
    pub expected: Option<String>,
    /// What the replay did instead.
    pub actual: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "replay diverged at event {}", self.index)?;
        if let Some((index, call)) = &self.call {
            write!(f, " in the call at event {index}, {call}")?;
        }
        match &self.expected {
            Some(expected) => write!(f, "; expected {expected}; replay did {}", self.actual),
            None => write!(f, "; the chain ends there, but replay did {}", self.actual),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Diverged(Box<Divergence>),
    /// The chain, or something it refers to, cannot be replayed.
    #[error("{0}")]
    Input(String),
}

/// A recorded chain being replayed, and how far the replay has matched it.
pub(crate) struct ReplayLog {
    stored: Vec<StoredEvent>,
    pub(crate) events: Vec<Event>,
    /// Replaying a different build: instance events name another component.
    new_component: bool,
    pub(crate) sources: ReplaySources,
    cursor: Mutex<Cursor>,
}

#[derive(Default)]
struct Cursor {
    /// The next recorded event to match.
    next: usize,
    /// The call being replayed: its call-start's index.
    call: Option<usize>,
    host_calls: u64,
    failure: Option<ReplayError>,
}

impl ReplayLog {
    /// `stored` and `events`, the same chain stored and decoded, matched from event `start`;
    /// `new_component`: the replay runs another build, whose instance events differ.
    pub(crate) fn new(
        stored: Vec<StoredEvent>,
        events: Vec<Event>,
        new_component: bool,
        sources: ReplaySources,
        start: usize,
    ) -> ReplayLog {
        ReplayLog {
            stored,
            events,
            new_component,
            sources,
            cursor: Mutex::new(Cursor {
                next: start,
                ..Default::default()
            }),
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.cursor.locked().next
    }

    pub(crate) fn skip_to(&self, next: usize) {
        self.cursor.locked().next = next;
    }

    pub(crate) fn head_at(&self, len: usize) -> ChainHead {
        ChainHead {
            len: len as u64,
            head: len
                .checked_sub(1)
                .map_or(Hash::GENESIS, |i| self.stored[i].hash),
        }
    }

    /// Matches the replay's next event against the recorded one; returns the chain head after
    /// it. A mismatch is kept as the replay's failure and fails the call in progress.
    pub(crate) fn accept(&self, kind: EventKind) -> wasmtime::Result<ChainHead> {
        let mut cursor = self.cursor.locked();
        if cursor.failure.is_some() {
            wasmtime::bail!("replay diverged");
        }
        let index = cursor.next;
        let expected = self.events.get(index).map(|e| &e.kind);
        if expected.is_some_and(|e| self.same(e, &kind)) {
            cursor.next += 1;
            match kind {
                EventKind::CallStart(_) => cursor.call = Some(index),
                EventKind::HostCall(_) => cursor.host_calls += 1,
                _ => {}
            }
            return Ok(self.head_at(cursor.next));
        }
        let divergence = Divergence {
            index: index as u64,
            call: cursor.call.map(|c| (c as u64, self.describe(c))),
            expected: expected.map(|e| format!("{} {}", e.type_name(), crate::describe::event(e))),
            actual: format!("{} {}", kind.type_name(), crate::describe::event(&kind)),
        };
        cursor.failure = Some(ReplayError::Diverged(Box::new(divergence)));
        wasmtime::bail!("replay diverged at event {index}")
    }

    fn same(&self, recorded: &EventKind, replayed: &EventKind) -> bool {
        match (recorded, replayed) {
            (EventKind::Instance { reason: a, .. }, EventKind::Instance { reason: b, .. })
                if self.new_component =>
            {
                a == b
            }
            (a, b) => a == b,
        }
    }

    fn describe(&self, index: usize) -> String {
        crate::describe::event(&self.events[index].kind)
    }

    /// The recorded host call, if the chain's next event is `call` (same function and params).
    pub(crate) fn next_host_call(&self, call: &HostCall) -> Option<HostCall> {
        let cursor = self.cursor.locked();
        match self.events.get(cursor.next).map(|e| &e.kind) {
            Some(EventKind::HostCall(h))
                if cursor.failure.is_none()
                    && h.interface == call.interface
                    && h.function == call.function
                    && h.params == call.params =>
            {
                Some(h.clone())
            }
            _ => None,
        }
    }

    /// The value a recorded host call returned to the guest.
    pub(crate) fn rebuild_result<R: crate::recordable::Recordable>(
        &self,
        call: &HostCall,
        rebuild: Option<Rebuild<R>>,
    ) -> wasmtime::Result<R> {
        let index = self.position();
        let name = format!("{}.{}", call.interface, call.function);
        let chain = match &call.result {
            HostResult::Value(bytes) => {
                return crate::recordable::decode(bytes).map_err(|e| {
                    self.fail(format!(
                        "event {index}: the recorded result of {name} does not decode as this build's type: {e}"
                    ))
                });
            }
            HostResult::ChainRef { len, head } => {
                self.prefix(&self.stored, "this chain", *len, head, index)?
            }
            HostResult::Error(message) => {
                return Err(self.fail(format!(
                    "event {index}: {name} failed in the host ({message}); the guest trapped"
                )));
            }
            HostResult::ActorChainRef {
                actor_id,
                len,
                head,
            } => {
                let other = (self.sources.chains)(actor_id).map_err(|e| {
                    self.fail(format!(
                        "event {index}: {name} returned actor {actor_id}'s chain, which this replay cannot read ({e}); replay from the data dir that holds it"
                    ))
                })?;
                self.prefix(
                    &other,
                    &format!("actor {actor_id}'s chain"),
                    *len,
                    head,
                    index,
                )?
            }
        };
        let rebuild = rebuild.ok_or_else(|| {
            self.fail(format!(
                "event {index}: {name} has a chain reference as its result, which it never records"
            ))
        })?;
        Ok(rebuild(chain))
    }

    /// The first `len` events of `chain`, which must end at `head`.
    fn prefix(
        &self,
        chain: &[StoredEvent],
        what: &str,
        len: u64,
        head: &Hash,
        index: usize,
    ) -> wasmtime::Result<Vec<(StoredEvent, Event)>> {
        let len = len as usize;
        let found = len
            .checked_sub(1)
            .and_then(|i| chain.get(i))
            .map_or(Hash::GENESIS, |e| e.hash);
        if len > chain.len() || found != *head {
            return Err(self.fail(format!(
                "event {index} refers to the first {len} events of {what}, ending at {head}, which it does not have"
            )));
        }
        chain[..len]
            .iter()
            .map(|s| Ok((s.clone(), Event::decode(&s.bytes)?)))
            .collect::<Result<_, theater_chain::DecodeError>>()
            .map_err(|e| self.fail(format!("event {index}: {what}: {e}")))
    }

    /// Stops the replay with `message` (the chain cannot be replayed past here).
    pub(crate) fn fail(&self, message: String) -> wasmtime::Error {
        let mut cursor = self.cursor.locked();
        cursor
            .failure
            .get_or_insert(ReplayError::Input(message.clone()));
        wasmtime::format_err!("{message}")
    }

    /// Host calls answered from the chain so far.
    pub(crate) fn host_calls(&self) -> u64 {
        self.cursor.locked().host_calls
    }

    pub(crate) fn take_failure(&self) -> Option<ReplayError> {
        self.cursor.locked().failure.take()
    }

    /// The recorded events the replay has matched so far.
    pub(crate) fn recorded_so_far(&self) -> Vec<StoredEvent> {
        self.stored[..self.position()].to_vec()
    }
}
