//! What a chain records: one [`Event`] per crossing of the sandbox boundary or lifecycle step.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::Hash;

/// The version byte that starts every event this build writes. Version 3 added host-call
/// result kind 3 ([`HostResult::Error`]); version 4, a spawn's manifest by hash
/// ([`RecordedManifest::Hash`]).
pub const EVENT_ENCODING_VERSION: u8 = 4;

/// The oldest event encoding version this build still reads, so that older chains keep
/// verifying and replaying. Version 2 is version 3 without result kind 3; both record a
/// spawn's manifest as text.
pub const OLDEST_EVENT_ENCODING_VERSION: u8 = 2;

/// An interface, function or export name. The runtime's are `&'static str` (borrowed, so
/// recording an event copies no name); decoded events own theirs.
pub type Name = std::borrow::Cow<'static, str>;

/// One chain event. Its canonical bytes (see [`Event::encode`]) are what the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the Unix epoch when the runtime recorded the event.
    pub timestamp_ms: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The first event of every chain.
    Spawn(Spawn),
    /// A fresh instance of the component was created. Replay creates one at the same point.
    Instance {
        component: Hash,
        reason: InstanceReason,
    },
    /// The runtime called one of the actor's exports.
    CallStart(CallStart),
    /// That export returned.
    CallEnd(CallEnd),
    /// The actor called a host function.
    HostCall(HostCall),
    /// The guest trapped; the instance is gone.
    Trap { kind: TrapKind, message: String },
    /// The actor stopped.
    Shutdown {
        reason: ShutdownReason,
        data: Option<Vec<u8>>,
    },
    /// The actor's state at this point, kept in the content store under this hash. The
    /// instance is dropped right after, so the next call runs on a fresh one: replay and
    /// recovery can start here without the events before.
    Snapshot { state: Option<Hash> },
    /// A runtime restarted after a crash and brought the actor back. A fresh instance
    /// (reason `recovery`) follows.
    Recovery(Recovery),
}

/// What a recovery found and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The state the actor goes on with: the state after its last completed call.
    pub state: Option<Hash>,
    /// The export call the crash cut off, if any (`interface.function`). It is not finished:
    /// nothing it did was kept, and its requester, if any, is gone.
    pub interrupted: Option<String>,
    /// The message that call was delivering, if any.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    pub actor_id: String,
    /// The manifest's `name`.
    pub name: String,
    /// BLAKE3 of the component's bytes, which the content store keeps under this hash.
    pub component: Hash,
    pub manifest: RecordedManifest,
    pub parent: Option<String>,
    /// BLAKE3 of the state passed to `init` (kept in the content store), if any.
    pub initial_state: Option<Hash>,
}

/// A spawn's manifest as its chain records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedManifest {
    /// The whole text: where there is no content store to keep it (chains in memory), and
    /// in every chain written before encoding version 4.
    Text(String),
    /// BLAKE3 of the text, which the content store keeps under this hash. A supervisor's
    /// children spawned from one manifest record its 32 bytes, not its text each.
    Hash(Hash),
}

impl RecordedManifest {
    /// The text, if recorded inline.
    pub fn text(&self) -> Option<&str> {
        match self {
            RecordedManifest::Text(text) => Some(text),
            RecordedManifest::Hash(_) => None,
        }
    }

    /// The content-store hash, if recorded by hash.
    pub fn hash(&self) -> Option<Hash> {
        match self {
            RecordedManifest::Text(_) => None,
            RecordedManifest::Hash(hash) => Some(*hash),
        }
    }
}

impl From<String> for RecordedManifest {
    fn from(text: String) -> Self {
        RecordedManifest::Text(text)
    }
}

impl From<&str> for RecordedManifest {
    fn from(text: &str) -> Self {
        RecordedManifest::Text(text.to_owned())
    }
}

/// How version 4 writes a spawn's manifest.
mod manifest_form {
    pub const TEXT: u8 = 0;
    pub const HASH: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStart {
    /// `interface.function`, e.g. `theater:simple/actor.init`.
    pub export: Name,
    /// Hash of the state passed in.
    pub state: Option<Hash>,
    /// The other parameters, in the payload encoding (`docs/chain-format.md`, "Payloads").
    pub params: Vec<u8>,
    /// Set when the call delivers a message, so it can be traced to the sender's chain.
    pub message_id: Option<String>,
    pub sender: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub export: Name,
    /// `Ok(payload of the results after the state)` or the guest's `Err` string.
    pub outcome: Result<Vec<u8>, String>,
    /// Hash of the actor's state after the call (unchanged after an `Err`).
    pub state: Option<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// e.g. `theater:simple/runtime`.
    pub interface: Name,
    pub function: Name,
    pub params: Vec<u8>,
    pub result: HostResult,
    /// Set when the call sent a message (`send`, `request`, channel traffic), so the
    /// receiver's `call-start` with the same id can be found.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostResult {
    /// The result in the payload encoding.
    Value(Vec<u8>),
    /// A result derived from the chain itself (`get-chain`): its first `len` events ending at `head`.
    ChainRef { len: u64, head: Hash },
    /// A result derived from another actor's chain (`get-child-events`): its first `len`
    /// events ending at `head`.
    ActorChainRef {
        actor_id: String,
        len: u64,
        head: Hash,
    },
    /// The host function failed with this error, and the guest trapped on it. Replay returns
    /// the same error, so the guest traps at the same point.
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceReason {
    Spawn = 0,
    Restart = 1,
    Wake = 2,
    Recovery = 3,
    Update = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// `unreachable`, including Rust panics.
    Unreachable = 0,
    MemoryOutOfBounds = 1,
    StackOverflow = 2,
    /// The CPU budget (fuel) ran out.
    OutOfFuel = 3,
    /// A wall-clock deadline passed.
    Deadline = 4,
    /// A memory or table limit was hit.
    ResourceLimit = 5,
    /// Integer overflow, division by zero, bad conversion, bad indirect call...
    Arithmetic = 6,
    Other = 7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// The actor called `runtime.shutdown`.
    Requested = 0,
    /// Its parent or the operator stopped it.
    Stopped = 1,
    /// The runtime exited with the actor idle.
    RuntimeExit = 2,
    /// It failed (`init` error or a trap) and will not run again.
    Failed = 3,
}

/// The byte tag, name and decoding of a fieldless enum.
macro_rules! byte_enum {
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),* $(,)?]) => {
        impl $ty {
            fn from_byte(b: u8) -> Option<Self> {
                $(if b == $ty::$variant as u8 { return Some($ty::$variant); })*
                None
            }
            /// Every variant, in tag order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The name `theater events` shows.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }
        }
        impl $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let b = r.u8($what)?;
                Self::from_byte(b).ok_or_else(|| r.error(format!("unknown {} {b}", $what)))
            }
        }
    };
}

byte_enum!(InstanceReason, "instance reason", [
    Spawn => "spawn",
    Restart => "restart",
    Wake => "wake",
    Recovery => "recovery",
    Update => "update",
]);
byte_enum!(TrapKind, "trap kind", [
    Unreachable => "unreachable",
    MemoryOutOfBounds => "memory-out-of-bounds",
    StackOverflow => "stack-overflow",
    OutOfFuel => "out-of-fuel",
    Deadline => "deadline",
    ResourceLimit => "resource-limit",
    Arithmetic => "arithmetic",
    Other => "other",
]);
byte_enum!(ShutdownReason, "shutdown reason", [
    Requested => "requested",
    Stopped => "stopped",
    RuntimeExit => "runtime-exit",
    Failed => "failed",
]);

mod tag {
    pub const SPAWN: u8 = 1;
    pub const INSTANCE: u8 = 2;
    pub const CALL_START: u8 = 3;
    pub const CALL_END: u8 = 4;
    pub const HOST_CALL: u8 = 5;
    pub const TRAP: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SNAPSHOT: u8 = 8;
    pub const RECOVERY: u8 = 9;
}

impl EventKind {
    /// Every type name, in tag order.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "spawn",
        "instance",
        "call-start",
        "call-end",
        "host-call",
        "trap",
        "shutdown",
        "snapshot",
        "recovery",
    ];

    /// The event's type name, as `theater events` and the guest's `event-type` show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Spawn(_) => "spawn",
            EventKind::Instance { .. } => "instance",
            EventKind::CallStart(_) => "call-start",
            EventKind::CallEnd(_) => "call-end",
            EventKind::HostCall(_) => "host-call",
            EventKind::Trap { .. } => "trap",
            EventKind::Shutdown { .. } => "shutdown",
            EventKind::Snapshot { .. } => "snapshot",
            EventKind::Recovery(_) => "recovery",
        }
    }
}

impl Event {
    pub fn new(kind: EventKind) -> Event {
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Event { timestamp_ms, kind }
    }

    /// The canonical bytes of this event.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer {
            buf: Vec::with_capacity(self.size_hint()),
        };
        self.encode_into(&mut w);
        w.buf
    }

    /// Writes the canonical bytes into `buf`, replacing what it held: a buffer reused for every
    /// event allocates only while it grows.
    pub fn encode_to(&self, buf: &mut Vec<u8>) {
        buf.clear();
        let mut w = Writer {
            buf: std::mem::take(buf),
        };
        w.buf.reserve(self.size_hint());
        self.encode_into(&mut w);
        *buf = w.buf;
    }

    /// About the encoded size, a little over: so that encoding allocates once.
    fn size_hint(&self) -> usize {
        /// Tags, lengths, hashes and the other fixed-size fields, at most.
        const FIXED: usize = 128;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        FIXED
            + match &self.kind {
                EventKind::Spawn(s) => {
                    let manifest = s.manifest.text().map_or(0, str::len);
                    s.actor_id.len() + s.name.len() + manifest + opt(&s.parent)
                }
                EventKind::CallStart(c) => {
                    c.export.len() + c.params.len() + opt(&c.message_id) + opt(&c.sender)
                }
                EventKind::CallEnd(c) => {
                    c.export.len() + c.outcome.as_ref().map_or_else(String::len, Vec::len)
                }
                EventKind::HostCall(h) => {
                    let result = match &h.result {
                        HostResult::Value(v) => v.len(),
                        HostResult::ActorChainRef { actor_id, .. } => actor_id.len(),
                        HostResult::Error(e) => e.len(),
                        HostResult::ChainRef { .. } => 0,
                    };
                    h.interface.len()
                        + h.function.len()
                        + h.params.len()
                        + result
                        + opt(&h.message_id)
                }
                EventKind::Trap { message, .. } => message.len(),
                EventKind::Shutdown { data, .. } => data.as_ref().map_or(0, Vec::len),
                EventKind::Recovery(r) => opt(&r.interrupted) + opt(&r.message_id),
                EventKind::Instance { .. } | EventKind::Snapshot { .. } => 0,
            }
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.u8(EVENT_ENCODING_VERSION);
        w.u64(self.timestamp_ms);
        match &self.kind {
            EventKind::Spawn(s) => {
                w.u8(tag::SPAWN);
                w.str(&s.actor_id);
                w.str(&s.name);
                w.hash(&s.component);
                match &s.manifest {
                    RecordedManifest::Text(text) => {
                        w.u8(manifest_form::TEXT);
                        w.str(text);
                    }
                    RecordedManifest::Hash(hash) => {
                        w.u8(manifest_form::HASH);
                        w.hash(hash);
                    }
                }
                w.opt(s.parent.as_deref(), |w, p| w.str(p));
                w.opt(s.initial_state.as_ref(), |w, h| w.hash(h));
            }
            EventKind::Instance { component, reason } => {
                w.u8(tag::INSTANCE);
                w.hash(component);
                w.u8(*reason as u8);
            }
            EventKind::CallStart(c) => {
                w.u8(tag::CALL_START);
                w.str(&c.export);
                w.opt(c.state.as_ref(), |w, h| w.hash(h));
                w.bytes(&c.params);
                w.opt(c.message_id.as_deref(), |w, s| w.str(s));
                w.opt(c.sender.as_deref(), |w, s| w.str(s));
            }
            EventKind::CallEnd(c) => {
                w.u8(tag::CALL_END);
                w.str(&c.export);
                match &c.outcome {
                    Ok(payload) => {
                        w.u8(0);
                        w.bytes(payload);
                    }
                    Err(message) => {
                        w.u8(1);
                        w.str(message);
                    }
                }
                w.opt(c.state.as_ref(), |w, h| w.hash(h));
            }
            EventKind::HostCall(h) => {
                w.u8(tag::HOST_CALL);
                w.str(&h.interface);
                w.str(&h.function);
                w.bytes(&h.params);
                match &h.result {
                    HostResult::Value(v) => {
                        w.u8(0);
                        w.bytes(v);
                    }
                    HostResult::ChainRef { len, head } => {
                        w.u8(1);
                        w.u64(*len);
                        w.hash(head);
                    }
                    HostResult::ActorChainRef {
                        actor_id,
                        len,
                        head,
                    } => {
                        w.u8(2);
                        w.str(actor_id);
                        w.u64(*len);
                        w.hash(head);
                    }
                    HostResult::Error(message) => {
                        w.u8(3);
                        w.str(message);
                    }
                }
                w.opt(h.message_id.as_deref(), |w, s| w.str(s));
            }
            EventKind::Trap { kind, message } => {
                w.u8(tag::TRAP);
                w.u8(*kind as u8);
                w.str(message);
            }
            EventKind::Shutdown { reason, data } => {
                w.u8(tag::SHUTDOWN);
                w.u8(*reason as u8);
                w.opt(data.as_deref(), |w, d| w.bytes(d));
            }
            EventKind::Snapshot { state } => {
                w.u8(tag::SNAPSHOT);
                w.opt(state.as_ref(), |w, h| w.hash(h));
            }
            EventKind::Recovery(r) => {
                w.u8(tag::RECOVERY);
                w.opt(r.state.as_ref(), |w, h| w.hash(h));
                w.opt(r.interrupted.as_deref(), |w, s| w.str(s));
                w.opt(r.message_id.as_deref(), |w, s| w.str(s));
            }
        }
    }

    /// Decodes exactly one event from `bytes`, rejecting anything non-canonical.
    ///
    /// Events of every version from [`OLDEST_EVENT_ENCODING_VERSION`] on are accepted; an older
    /// one re-encodes as the current version, so hash the stored bytes, never re-encoded ones.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut r = Reader::new(bytes);
        let event = Self::decode_from(&mut r)?;
        r.finish("event")?;
        Ok(event)
    }

    /// Checks that `bytes` are exactly one canonical event, as strictly as [`Event::decode`],
    /// without allocating: the event returned has every string, name and byte string empty.
    pub fn validate(bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut r = Reader::validating(bytes);
        let event = Self::decode_from(&mut r)?;
        r.finish("event")?;
        Ok(event)
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
        let version = r.u8("encoding version")?;
        if !(OLDEST_EVENT_ENCODING_VERSION..=EVENT_ENCODING_VERSION).contains(&version) {
            return Err(DecodeError {
                offset: 0,
                what: format!(
                    "unknown event encoding version {version} (this build reads versions {OLDEST_EVENT_ENCODING_VERSION} to {EVENT_ENCODING_VERSION})"
                ),
            });
        }
        let timestamp_ms = r.u64("timestamp")?;
        let kind = match r.u8("event tag")? {
            tag::SPAWN => EventKind::Spawn(Spawn {
                actor_id: r.str("actor id")?,
                name: r.str("name")?,
                component: r.hash("component hash")?,
                manifest: if version < 4 {
                    RecordedManifest::Text(r.str("manifest")?)
                } else {
                    match r.u8("manifest form")? {
                        manifest_form::TEXT => RecordedManifest::Text(r.str("manifest")?),
                        manifest_form::HASH => RecordedManifest::Hash(r.hash("manifest hash")?),
                        other => {
                            return Err(r.error(format!(
                                "manifest form must be 0 (text) or 1 (hash), found {other}"
                            )));
                        }
                    }
                },
                parent: r.opt("parent", |r| r.str("parent"))?,
                initial_state: r.opt("initial state", |r| r.hash("initial state"))?,
            }),
            tag::INSTANCE => EventKind::Instance {
                component: r.hash("component hash")?,
                reason: InstanceReason::read(r)?,
            },
            tag::CALL_START => EventKind::CallStart(CallStart {
                export: r.str("export")?.into(),
                state: r.opt("state hash", |r| r.hash("state hash"))?,
                params: r.bytes("params")?,
                message_id: r.opt("message id", |r| r.str("message id"))?,
                sender: r.opt("sender", |r| r.str("sender"))?,
            }),
            tag::CALL_END => {
                let export = r.str("export")?.into();
                let outcome = match r.u8("outcome")? {
                    0 => Ok(r.bytes("result")?),
                    1 => Err(r.str("error")?),
                    other => return Err(r.error(format!("outcome must be 0 or 1, found {other}"))),
                };
                EventKind::CallEnd(CallEnd {
                    export,
                    outcome,
                    state: r.opt("state hash", |r| r.hash("state hash"))?,
                })
            }
            tag::HOST_CALL => {
                let interface = r.str("interface")?.into();
                let function = r.str("function")?.into();
                let params = r.bytes("params")?;
                let result = match r.u8("result kind")? {
                    0 => HostResult::Value(r.bytes("result")?),
                    1 => HostResult::ChainRef {
                        len: r.u64("chain length")?,
                        head: r.hash("chain head")?,
                    },
                    2 => HostResult::ActorChainRef {
                        actor_id: r.str("actor id")?,
                        len: r.u64("chain length")?,
                        head: r.hash("chain head")?,
                    },
                    // No version 2 writer ever wrote kind 3: one there is damage, not data.
                    3 if version < 3 => {
                        return Err(r.error(format!(
                            "result kind 3 needs encoding version 3 (this event is version {version})"
                        )));
                    }
                    3 => HostResult::Error(r.str("host error")?),
                    other => {
                        return Err(
                            r.error(format!("result kind must be 0, 1, 2 or 3, found {other}"))
                        );
                    }
                };
                EventKind::HostCall(HostCall {
                    interface,
                    function,
                    params,
                    result,
                    message_id: r.opt("message id", |r| r.str("message id"))?,
                })
            }
            tag::TRAP => EventKind::Trap {
                kind: TrapKind::read(r)?,
                message: r.str("trap message")?,
            },
            tag::SHUTDOWN => EventKind::Shutdown {
                reason: ShutdownReason::read(r)?,
                data: r.opt("shutdown data", |r| r.bytes("shutdown data"))?,
            },
            tag::SNAPSHOT => EventKind::Snapshot {
                state: r.opt("state hash", |r| r.hash("state hash"))?,
            },
            tag::RECOVERY => EventKind::Recovery(Recovery {
                state: r.opt("state hash", |r| r.hash("state hash"))?,
                interrupted: r.opt("interrupted export", |r| r.str("interrupted export"))?,
                message_id: r.opt("message id", |r| r.str("message id"))?,
            }),
            other => return Err(r.error(format!("unknown event tag {other}"))),
        };
        Ok(Event { timestamp_ms, kind })
    }
}
