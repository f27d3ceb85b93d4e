//! The chain export file (`theater export`), documented in `docs/chain-format.md`.
//!
//! Every byte of a file is either structure that a strict reader checks or is covered by a hash,
//! so any single changed byte makes reading or verification fail.

use crate::chain::{ChainHead, StoredEvent, VerifyError, verify_chain};
use crate::commit::HeadProof;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::sign::{PublicKey, Signature};
use crate::store::ChainInfo;

/// The eight bytes that open every chain file.
pub const MAGIC: &[u8; 8] = b"THCHAIN\0";
/// The file format version this build writes. Version 2 added head signatures and the blobs
/// the chain refers to; version 3 head proofs (a commit's signature and a Merkle path).
pub const FILE_VERSION: u32 = 3;
/// The oldest version this build reads: a version 2 file's signatures are head signatures.
pub const OLDEST_FILE_VERSION: u32 = 2;

/// A whole chain as one self-contained file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    pub actor_id: String,
    pub events: Vec<StoredEvent>,
    /// The hash of the last event (the genesis hash if there are none).
    pub head: Hash,
    /// Who signed the chain, and the signed heads (by number of events).
    pub signatures: Option<FileSignatures>,
    /// Content the chain names by hash (the component, recorded states), so that the file
    /// alone can be replayed. Sorted by hash; each is checked against its hash when read.
    pub blobs: Vec<(Hash, Vec<u8>)>,
}

/// The signing node's public key and its signatures of the chain's heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSignatures {
    pub key: PublicKey,
    /// `(number of events, proof of the head after that many)`; at least one.
    pub heads: Vec<(u64, HeadProof)>,
}

/// A chain whose links and signatures checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub head: ChainHead,
    /// The key that signed the whole chain; `None` if the file carries no signature.
    pub signer: Option<PublicKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a Theater chain file: it does not start with the THCHAIN magic bytes")]
    BadMagic,
    #[error(
        "chain file format version {0} is not supported (this build reads versions {OLDEST_FILE_VERSION} to {FILE_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("the file header is malformed: {0}")]
    Header(DecodeError),
    #[error("event {index} is cut off or malformed in the file: {error}")]
    Event { index: u64, error: DecodeError },
    #[error("the file ends before the head hash that follows event {count}: {error}")]
    Head { count: u64, error: DecodeError },
    #[error("the signature section is malformed: {0}")]
    Signatures(DecodeError),
    #[error("the blob section is malformed: {0}")]
    Blobs(DecodeError),
    #[error("blob {0} does not match its hash: its bytes were changed")]
    BlobHash(Hash),
    #[error("blob {0} is out of order (blobs must be sorted by hash, each once)")]
    BlobOrder(Hash),
    #[error("{0} unused bytes after the end of the chain")]
    Trailing(usize),
}

impl ChainFile {
    /// A chain as a data dir stores it: its events, and the stored head's signature by the
    /// node whose public key is `key`.
    pub fn from_stored(
        info: &ChainInfo,
        events: Vec<StoredEvent>,
        key: Option<PublicKey>,
    ) -> ChainFile {
        let signatures = match (key, &info.signature) {
            (Some(key), Some(proof)) => Some(FileSignatures {
                key,
                heads: vec![(info.head.len, proof.clone())],
            }),
            _ => None,
        };
        ChainFile {
            actor_id: info.actor_id.clone(),
            events,
            head: info.head.head,
            signatures,
            blobs: Vec::new(),
        }
    }

    /// The hash its `spawn` event records for its manifest, if it records one (not the text).
    pub fn manifest_hash(&self) -> Option<Hash> {
        let first = crate::Event::decode(&self.events.first()?.bytes).ok()?;
        match first.kind {
            crate::EventKind::Spawn(s) => s.manifest.hash(),
            _ => None,
        }
    }

    /// The hashes of the content the chain refers to: its component, its manifest (when
    /// recorded by hash), its initial state and the states its snapshots name.
    pub fn referenced_blobs(&self) -> Vec<Hash> {
        let mut hashes: Vec<Hash> = self
            .events
            .iter()
            .filter_map(|e| crate::Event::decode(&e.bytes).ok())
            .flat_map(|e| match e.kind {
                crate::EventKind::Spawn(s) => {
                    vec![Some(s.component), s.initial_state, s.manifest.hash()]
                }
                crate::EventKind::Snapshot { state } => vec![state],
                _ => Vec::new(),
            })
            .flatten()
            .collect();
        hashes.sort();
        hashes.dedup();
        hashes
    }

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
        w.opt(self.signatures.as_ref(), |w, s| {
            w.hash(&Hash(s.key.0));
            w.u64(s.heads.len() as u64);
            for (len, proof) in &s.heads {
                w.u64(*len);
                match proof {
                    HeadProof::Head(signature) => {
                        w.u8(0);
                        w.buf.extend_from_slice(&signature.0);
                    }
                    HeadProof::Commit { signature, path } => {
                        w.u8(1);
                        w.buf.extend_from_slice(&signature.0);
                        w.u8(path.len() as u8);
                        HeadProof::encode_path(path, w);
                    }
                }
            }
        });
        w.u32(u32::try_from(self.blobs.len()).expect("a chain file holds at most 2^32 blobs"));
        for (hash, bytes) in &self.blobs {
            w.hash(hash);
            w.bytes(bytes);
        }
        w.buf
    }

    /// Reads a file strictly. This checks structure only; call [`ChainFile::verify`] for the links.
    pub fn decode(bytes: &[u8]) -> Result<ChainFile, FileError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
            return Err(FileError::BadMagic);
        }
        let version = r.u32("format version").map_err(FileError::Header)?;
        if !(OLDEST_FILE_VERSION..=FILE_VERSION).contains(&version) {
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
        let signatures = r
            .opt("signatures", |r| {
                let key = PublicKey(r.hash("public key")?.0);
                let n = r.u64("signature count")?;
                if n == 0 {
                    return Err(r.error("a signature section must hold at least one signature"));
                }
                // No preallocation from `n` either: each entry must be present to be kept.
                let mut heads = Vec::new();
                for _ in 0..n {
                    let len = r.u64("signed length")?;
                    let kind = if version < 3 { 0 } else { r.u8("proof kind")? };
                    let proof = match kind {
                        0 => HeadProof::Head(Signature(r.array("signature")?)),
                        1 => {
                            let signature = Signature(r.array("signature")?);
                            let steps = r.u8("path length")? as usize;
                            let path = HeadProof::decode_path(r, steps)?;
                            HeadProof::Commit { signature, path }
                        }
                        other => {
                            return Err(
                                r.error(format!("proof kind must be 0 or 1, found {other}"))
                            );
                        }
                    };
                    heads.push((len, proof));
                }
                Ok(FileSignatures { key, heads })
            })
            .map_err(FileError::Signatures)?;
        let count = r.u32("blob count").map_err(FileError::Blobs)?;
        let mut blobs: Vec<(Hash, Vec<u8>)> = Vec::new();
        for _ in 0..count {
            let hash = r.hash("blob hash").map_err(FileError::Blobs)?;
            let bytes = r.bytes("blob").map_err(FileError::Blobs)?;
            if Hash::of(&bytes) != hash {
                return Err(FileError::BlobHash(hash));
            }
            // Canonical: strictly ascending, so each blob has one place.
            if blobs.last().is_some_and(|(last, _)| *last >= hash) {
                return Err(FileError::BlobOrder(hash));
            }
            blobs.push((hash, bytes));
        }
        if r.remaining() != 0 {
            return Err(FileError::Trailing(r.remaining()));
        }
        Ok(ChainFile {
            actor_id,
            events,
            head,
            signatures,
            blobs,
        })
    }

    /// Checks every event's encoding and hash link, the head, and every signature against the
    /// embedded key. A signed file must have a signature of its whole chain.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        let head = verify_chain(
            &self.actor_id,
            &self.events,
            ChainHead {
                len: self.events.len() as u64,
                head: self.head,
            },
        )?;
        let Some(signatures) = &self.signatures else {
            return Ok(Verified { head, signer: None });
        };
        for (len, proof) in &signatures.heads {
            let signed = ChainHead {
                len: *len,
                head: match len.checked_sub(1) {
                    None => Hash::GENESIS,
                    Some(i) => {
                        // `try_from`, not `as`: on a 32-bit target a huge length must not
                        // wrap around to an early event.
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| self.events.get(i))
                            .ok_or(VerifyError::SignatureBeyondEnd {
                                len: *len,
                                events: head.len,
                            })?
                            .hash
                    }
                },
            };
            if !signatures.key.proves(&self.actor_id, &signed, proof) {
                return Err(VerifyError::BadSignature {
                    len: *len,
                    key: signatures.key,
                });
            }
        }
        if !signatures.heads.iter().any(|(len, _)| *len == head.len) {
            return Err(VerifyError::TailUnsigned {
                signed: signatures.heads.iter().map(|(l, _)| *l).max().unwrap_or(0),
                events: head.len,
            });
        }
        Ok(Verified {
            head,
            signer: Some(signatures.key),
        })
    }

    /// [`ChainFile::verify`], and the chain must be signed by `key`: proof that the node
    /// holding that key wrote it and that it was not rewritten since.
    pub fn verify_signed_by(&self, key: &PublicKey) -> Result<Verified, VerifyError> {
        let verified = self.verify()?;
        match verified.signer {
            Some(signer) if signer == *key => Ok(verified),
            Some(signer) => Err(VerifyError::WrongSigner {
                expected: *key,
                found: signer,
            }),
            None => Err(VerifyError::Unsigned),
        }
    }
}
