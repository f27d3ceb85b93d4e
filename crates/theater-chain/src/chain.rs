//! Hash-linking events into a chain and checking the links.

use crate::encoding::DecodeError;
use crate::event::{Event, EventKind};
use crate::hash::Hash;
use crate::sign::PublicKey;

/// One stored event: its canonical bytes and the link hash stored beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

/// The growing end of a chain: how many events it has and the hash of the last.
///
/// This is all an actor keeps in memory about its chain; the events themselves go to storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub len: u64,
    pub head: Hash,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            len: 0,
            head: Hash::GENESIS,
        }
    }
}

impl ChainHead {
    /// Links `event` after the head and returns the stored form and its index.
    pub fn append(&mut self, event: &Event) -> (u64, StoredEvent) {
        let bytes = event.encode();
        let (index, hash) = self.link(&bytes);
        (index, StoredEvent { hash, bytes })
    }

    /// Links an event's canonical bytes after the head; returns its index and link hash.
    pub fn link(&mut self, bytes: &[u8]) -> (u64, Hash) {
        let hash = Hash::link(&self.head, bytes);
        let index = self.len;
        self.len += 1;
        self.head = hash;
        (index, hash)
    }
}

/// What is wrong with a chain, and at which event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("event {index} is malformed: {error}")]
    Malformed { index: u64, error: DecodeError },
    #[error(
        "event {index} does not match its hash: stored {stored}, computed {computed} (the event or its hash was changed)"
    )]
    HashMismatch {
        index: u64,
        stored: Hash,
        computed: Hash,
    },
    #[error("event {index} is a {found} event, but a chain must start with spawn")]
    NoSpawn { index: u64, found: &'static str },
    #[error("event {index} is a second spawn event; only the first event may be a spawn")]
    LateSpawn { index: u64 },
    #[error("the chain belongs to actor {expected}, but its spawn event names {found}")]
    WrongActor { expected: String, found: String },
    #[error(
        "the chain is truncated or was extended: its recorded head is event {expected_len} with hash {expected_head}, but the events end at {found_len} with hash {found_head}"
    )]
    HeadMismatch {
        expected_len: u64,
        expected_head: Hash,
        found_len: u64,
        found_head: Hash,
    },
    #[error(
        "the signature of the head after {len} events does not verify with key {key}: the chain was rewritten or the signature forged"
    )]
    BadSignature { len: u64, key: PublicKey },
    #[error("a signature covers {len} events, but the chain has only {events}")]
    SignatureBeyondEnd { len: u64, events: u64 },
    #[error(
        "the last {0} events are not signed: the newest signature covers {signed} of {events} events",
        events.saturating_sub(*signed)
    )]
    TailUnsigned { signed: u64, events: u64 },
    #[error("the chain is signed by key {found}, not by the expected key {expected}")]
    WrongSigner {
        expected: PublicKey,
        found: PublicKey,
    },
    #[error("the chain is not signed, so nothing shows who wrote it")]
    Unsigned,
}

impl VerifyError {
    /// The index of the first bad event, where one can be named.
    pub fn event_index(&self) -> Option<u64> {
        match self {
            VerifyError::Malformed { index, .. }
            | VerifyError::HashMismatch { index, .. }
            | VerifyError::NoSpawn { index, .. }
            | VerifyError::LateSpawn { index } => Some(*index),
            VerifyError::WrongActor { .. } => Some(0),
            VerifyError::HeadMismatch {
                expected_len,
                found_len,
                ..
            } => Some((*expected_len).min(*found_len)),
            VerifyError::BadSignature { len, .. } => Some(len.saturating_sub(1)),
            VerifyError::SignatureBeyondEnd { .. }
            | VerifyError::TailUnsigned { .. }
            | VerifyError::WrongSigner { .. }
            | VerifyError::Unsigned => None,
        }
    }
}

/// Checks a chain event by event, naming the first bad one.
///
/// Feed it events in order, then call [`Verifier::finish`] with the head the chain claims.
pub struct Verifier {
    actor_id: Option<String>,
    head: ChainHead,
}

impl Verifier {
    /// `actor_id`: the actor the chain should belong to, if known.
    pub fn new(actor_id: Option<&str>) -> Self {
        Verifier {
            actor_id: actor_id.map(str::to_owned),
            head: ChainHead::default(),
        }
    }

    /// Checks the next event; returns it decoded.
    pub fn check(&mut self, stored: &StoredEvent) -> Result<Event, VerifyError> {
        self.check_with(stored, Event::decode)
    }

    /// [`Verifier::check`] without keeping the event: only the first (the spawn, whose actor
    /// id is checked) is decoded whole; the others are validated without allocating.
    fn check_only(&mut self, stored: &StoredEvent) -> Result<(), VerifyError> {
        let decode = if self.head.len == 0 {
            Event::decode
        } else {
            Event::validate
        };
        self.check_with(stored, decode).map(drop)
    }

    fn check_with(
        &mut self,
        stored: &StoredEvent,
        decode: fn(&[u8]) -> Result<Event, crate::encoding::DecodeError>,
    ) -> Result<Event, VerifyError> {
        let index = self.head.len;
        let event =
            decode(&stored.bytes).map_err(|error| VerifyError::Malformed { index, error })?;
        let computed = Hash::link(&self.head.head, &stored.bytes);
        if computed != stored.hash {
            return Err(VerifyError::HashMismatch {
                index,
                stored: stored.hash,
                computed,
            });
        }
        match (&event.kind, index) {
            (EventKind::Spawn(spawn), 0) => {
                if let Some(expected) = &self.actor_id
                    && *expected != spawn.actor_id
                {
                    return Err(VerifyError::WrongActor {
                        expected: expected.clone(),
                        found: spawn.actor_id.clone(),
                    });
                }
            }
            (EventKind::Spawn(_), _) => return Err(VerifyError::LateSpawn { index }),
            (other, 0) => {
                return Err(VerifyError::NoSpawn {
                    index,
                    found: other.type_name(),
                });
            }
            _ => {}
        }
        self.head.len += 1;
        self.head.head = computed;
        Ok(event)
    }

    /// Compares the verified events with the head the chain's container recorded.
    pub fn finish(self, recorded: ChainHead) -> Result<ChainHead, VerifyError> {
        if recorded != self.head {
            return Err(VerifyError::HeadMismatch {
                expected_len: recorded.len,
                expected_head: recorded.head,
                found_len: self.head.len,
                found_head: self.head.head,
            });
        }
        Ok(self.head)
    }
}

/// Checks a whole chain against the head its container recorded, naming the first bad event.
///
/// Each event's link depends only on its own bytes and the stored hash before it, so long
/// chains are checked in parallel slices, one per core; the first bad event is still the one
/// reported.
pub fn verify_chain(
    actor_id: &str,
    events: &[StoredEvent],
    recorded: ChainHead,
) -> Result<ChainHead, VerifyError> {
    /// Below this, one thread is faster than starting more.
    const MIN_SLICE: usize = 4_096;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(events.len() / MIN_SLICE)
        .max(1);
    let slice = events.len().div_ceil(threads).max(1);
    let check_slice = |start: usize| -> Result<(), VerifyError> {
        let mut verifier = Verifier::new(Some(actor_id));
        verifier.head = ChainHead {
            len: start as u64,
            head: start
                .checked_sub(1)
                .map_or(Hash::GENESIS, |i| events[i].hash),
        };
        for event in &events[start..(start + slice).min(events.len())] {
            verifier.check_only(event)?;
        }
        Ok(())
    };
    let results: Vec<Result<(), VerifyError>> = if threads == 1 {
        vec![check_slice(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || check_slice(t * slice)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("verifier thread"))
                .collect()
        })
    };
    // Slices are in chain order: the first error is the first bad event.
    results.into_iter().collect::<Result<(), _>>()?;
    let mut verifier = Verifier::new(Some(actor_id));
    verifier.head = ChainHead {
        len: events.len() as u64,
        head: events.last().map_or(Hash::GENESIS, |e| e.hash),
    };
    verifier.finish(recorded)
}
