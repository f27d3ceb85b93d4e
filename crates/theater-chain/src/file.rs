//! The chain export file (`theater export`), documented in `docs/chain-format.md`.
//!
//! Every byte of a file is either structure that a strict reader checks or is covered by a hash,
//! so any single changed byte makes reading or verification fail.

use crate::chain::{ChainHead, StoredEvent, VerifyError, verify_chain};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::Hash;

/// The eight bytes that open every chain file.
pub const MAGIC: &[u8; 8] = b"THCHAIN\0";
/// The file format version this build writes and reads.
pub const FILE_VERSION: u32 = 1;

/// A whole chain as one self-contained file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    pub actor_id: String,
    pub events: Vec<StoredEvent>,
    /// The hash of the last event (the genesis hash if there are none).
    pub head: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a Theater chain file: it does not start with the THCHAIN magic bytes")]
    BadMagic,
    #[error(
        "chain file format version {0} is not supported (this build reads version {FILE_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("the file header is malformed: {0}")]
    Header(DecodeError),
    #[error("event {index} is cut off or malformed in the file: {error}")]
    Event { index: u64, error: DecodeError },
    #[error("the file ends before the head hash that follows event {count}: {error}")]
    Head { count: u64, error: DecodeError },
    #[error("{0} unused bytes after the end of the chain")]
    Trailing(usize),
}

impl ChainFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.u32(FILE_VERSION);
        w.str(&self.actor_id);
        w.u64(self.events.len() as u64);
        for event in &self.events {
            w.bytes(&event.bytes);
            w.hash(&event.hash);
        }
        w.hash(&self.head);
        w.buf
    }

    /// Reads a file strictly. This checks structure only; call [`ChainFile::verify`] for the links.
    pub fn decode(bytes: &[u8]) -> Result<ChainFile, FileError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
            return Err(FileError::BadMagic);
        }
        let version = r.u32("format version").map_err(FileError::Header)?;
        if version != FILE_VERSION {
            return Err(FileError::UnsupportedVersion(version));
        }
        let actor_id = r.str("actor id").map_err(FileError::Header)?;
        let count = r.u64("event count").map_err(FileError::Header)?;
        // No preallocation from `count`: a corrupt count must not allocate gigabytes.
        let mut events = Vec::new();
        for index in 0..count {
            let event = (|| {
                let bytes = r.bytes("event bytes")?;
                let hash = r.hash("event hash")?;
                Ok(StoredEvent { hash, bytes })
            })()
            .map_err(|error| FileError::Event { index, error })?;
            events.push(event);
        }
        let head = r
            .hash("head hash")
            .map_err(|error| FileError::Head { count, error })?;
        if r.remaining() != 0 {
            return Err(FileError::Trailing(r.remaining()));
        }
        Ok(ChainFile {
            actor_id,
            events,
            head,
        })
    }

    /// Checks every event's encoding and hash link, and the head.
    pub fn verify(&self) -> Result<ChainHead, VerifyError> {
        verify_chain(
            &self.actor_id,
            &self.events,
            ChainHead {
                len: self.events.len() as u64,
                head: self.head,
            },
        )
    }
}
