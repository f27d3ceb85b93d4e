//! Theater's event chains: the events an actor's run produces, their canonical encoding, the
//! BLAKE3 hash links between them, persistence in the data dir, and verification.
//!
//! This crate has no WebAssembly dependency: a third party can verify a chain with it alone.
//! The byte format is specified in `docs/chain-format.md`.
//!
//! ```
//! use theater_chain::{ChainFile, ChainHead, Event, EventKind, Hash, Spawn};
//!
//! let mut head = ChainHead::default();
//! let spawn = Event::new(EventKind::Spawn(Spawn {
//!     actor_id: "a1".into(),
//!     name: "counter".into(),
//!     component: Hash::of(b"component bytes"),
//!     manifest: "name = \"counter\"".into(),
//!     parent: None,
//!     initial_state: None,
//! }));
//! let (_, stored) = head.append(&spawn);
//! let file = ChainFile {
//!     actor_id: "a1".into(),
//!     events: vec![stored],
//!     head: head.head,
//!     signatures: None,
//!     blobs: Vec::new(),
//! };
//!
//! let bytes = file.encode();
//! assert!(ChainFile::decode(&bytes).unwrap().verify().is_ok());
//!
//! // Any changed byte is caught, by the strict reader or by the hash links.
//! let mut tampered = bytes.clone();
//! tampered[40] ^= 1;
//! assert!(ChainFile::decode(&tampered).map_or(true, |f| f.verify().is_err()));
//! ```

mod chain;
mod commit;
mod encoding;
mod event;
mod file;
mod hash;
mod sign;
mod store;

pub use chain::{ChainHead, StoredEvent, Verifier, VerifyError, verify_chain};
pub use commit::{HeadProof, MAX_PATH, MerkleStep, commit_message, sign_commit};
pub use encoding::DecodeError;
pub use event::{
    CallEnd, CallStart, EVENT_ENCODING_VERSION, Event, EventKind, HostCall, HostResult,
    InstanceReason, Name, OLDEST_EVENT_ENCODING_VERSION, RecordedManifest, Recovery,
    ShutdownReason, Spawn, TrapKind,
};
pub use file::{ChainFile, FILE_VERSION, FileError, FileSignatures, MAGIC, Verified};
pub use hash::Hash;
pub use sign::{KEY_FILE, KeyError, NodeKey, PublicKey, Signature, head_message};
pub use store::{
    Ack, BATCH_INTERVAL, ChainAppender, ChainInfo, ChainReader, ChainWriter, DB_FILE, Durability,
    QUEUE_BYTES, StoreError, TransactOp, WriterStatus, db_path, migrate_data_dir,
};
