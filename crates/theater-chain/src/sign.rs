//! Node identity and signed chain heads.
//!
//! Each data dir has an ed25519 key pair (`node.key`, created on first use). The chain writer
//! signs the head of every chain a commit touches, in the same transaction, so the head stored
//! with a chain, including the tail left after a crash, always carries the node's signature. A
//! third party who trusts the node's public key can then check that an exported chain was
//! written by that node and not rewritten: rewriting any event changes the head, and only the
//! key's holder can sign the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier as _};

use crate::chain::ChainHead;
use crate::hash::Hash;

/// The node's secret key in the data dir: 64 hex digits (the ed25519 seed), mode 0600.
pub const KEY_FILE: &str = "node.key";

/// What a head signature covers, before the actor id, length and head.
const HEAD_DOMAIN: &[u8] = b"theater chain head v1\0";

/// An ed25519 public key: who signed a chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature over a chain head (see [`head_message`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(pub [u8; 64]);

/// A data dir's signing key.
pub struct NodeKey {
    key: ed25519_dalek::SigningKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("node key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "node key {0} is damaged: it must hold 64 hex digits (move it away to make a new key; chains it signed then no longer verify against this node)"
    )]
    Malformed(PathBuf),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl NodeKey {
    /// Reads `DATA_DIR/node.key`, creating it with a fresh key if there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<NodeKey, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::parse(&text).ok_or_else(|| KeyError::Malformed(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(hex::encode(seed).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(NodeKey {
                    key: ed25519_dalek::SigningKey::from_bytes(&seed),
                })
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(io)?;
                Self::parse(&text).ok_or(KeyError::Malformed(path))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key from a known seed (tests, and tools that keep keys elsewhere).
    pub fn from_seed(seed: [u8; 32]) -> NodeKey {
        NodeKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    fn parse(text: &str) -> Option<NodeKey> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).ok()?;
        Some(NodeKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `head` as the head of `actor_id`'s chain.
    pub fn sign_head(&self, actor_id: &str, head: &ChainHead) -> Signature {
        Signature(self.key.sign(&head_message(actor_id, head)).to_bytes())
    }
}

/// The bytes a head signature signs: a domain tag, the actor id (`u32` length and UTF-8), the
/// number of events (`u64`) and the head hash, as `docs/chain-format.md` specifies.
pub fn head_message(actor_id: &str, head: &ChainHead) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEAD_DOMAIN.len() + 4 + actor_id.len() + 8 + 32);
    m.extend_from_slice(HEAD_DOMAIN);
    m.extend_from_slice(&(actor_id.len() as u32).to_le_bytes());
    m.extend_from_slice(actor_id.as_bytes());
    m.extend_from_slice(&head.len.to_le_bytes());
    m.extend_from_slice(&head.head.0);
    m
}

impl PublicKey {
    /// Whether `signature` is this key's signature of `head` as `actor_id`'s chain head.
    pub fn verifies(&self, actor_id: &str, head: &ChainHead, signature: &Signature) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify(&head_message(actor_id, head), &signature)
            .is_ok()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<PublicKey> {
        Hash::from_hex(s.trim()).map(|h| PublicKey(h.0))
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_signs_heads_it_alone_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(dir.path()).unwrap();
        let again = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let head = ChainHead {
            len: 3,
            head: Hash::of(b"x"),
        };
        let sig = key.sign_head("a1", &head);
        assert!(key.public().verifies("a1", &head, &sig));
        assert!(!key.public().verifies("a2", &head, &sig));
        let longer = ChainHead { len: 4, ..head };
        assert!(!key.public().verifies("a1", &longer, &sig));
        let other = NodeKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(!other.public().verifies("a1", &head, &sig));
        let mut forged = sig;
        forged.0[10] ^= 1;
        assert!(!key.public().verifies("a1", &head, &forged));
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not hex").unwrap();
        let err = NodeKey::load_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }
}
