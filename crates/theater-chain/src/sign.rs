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

use ed25519_dalek::Signer;

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
        self.sign_bytes(&head_message(actor_id, head))
    }

    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message).to_bytes())
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
    ///
    /// Verification is strict (RFC 8032): lax ed25519 lets a small-order key "verify" a
    /// signature anyone can make without a secret, and lets one key or signature have several
    /// encodings. So small-order keys and R values, non-canonical keys and non-canonical
    /// signatures are all refused.
    pub fn verifies(&self, actor_id: &str, head: &ChainHead, signature: &Signature) -> bool {
        self.verifies_bytes(&head_message(actor_id, head), signature)
    }

    /// Strict verification of `signature` over `message` (see [`PublicKey::verifies`]).
    pub(crate) fn verifies_bytes(&self, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        if key.is_weak() || key.to_edwards().compress().0 != self.0 {
            return false;
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).is_ok()
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

    /// The identity point: a small-order key whose "signatures" anyone can make.
    const SMALL_ORDER_KEY: PublicKey = PublicKey(identity());
    /// R = the identity point, s = 0: under lax verification this checks out against the
    /// identity key for every message, since `s·B = R + k·A` is `0 = 0 + 0`.
    const FORGED: Signature = Signature({
        let mut s = [0; 64];
        s[0] = 1;
        s
    });

    const fn identity() -> [u8; 32] {
        let mut p = [0; 32];
        p[0] = 1;
        p
    }

    #[test]
    fn small_order_keys_and_forged_signatures_never_verify() {
        let head = ChainHead {
            len: 3,
            head: Hash::of(b"x"),
        };
        // Lax verification accepts the forgery: this is what strict verification is for.
        let lax = ed25519_dalek::VerifyingKey::from_bytes(&SMALL_ORDER_KEY.0).unwrap();
        let forged = ed25519_dalek::Signature::from_bytes(&FORGED.0);
        assert!(ed25519_dalek::Verifier::verify(&lax, &head_message("a1", &head), &forged).is_ok());
        for actor in ["a1", "a2", ""] {
            for len in [0, 1, 3, u64::MAX] {
                let head = ChainHead { len, ..head };
                assert!(!SMALL_ORDER_KEY.verifies(actor, &head, &FORGED));
            }
        }
        // The same identity point with the x sign bit set: another encoding of a weak key.
        let mut negative_zero = SMALL_ORDER_KEY;
        negative_zero.0[31] |= 0x80;
        assert!(!negative_zero.verifies("a1", &head, &FORGED));
    }

    #[test]
    fn non_canonical_signatures_are_refused() {
        let key = NodeKey::from_seed([3; 32]);
        let head = ChainHead {
            len: 1,
            head: Hash::of(b"y"),
        };
        let sig = key.sign_head("a1", &head);
        assert!(key.public().verifies("a1", &head, &sig));
        // s + L is the same scalar mod L, but not its canonical encoding.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut malleated = sig;
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let sum = u16::from(malleated.0[32 + i]) + u16::from(*l) + carry;
            malleated.0[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_ne!(malleated, sig);
        assert!(!key.public().verifies("a1", &head, &malleated));
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not hex").unwrap();
        let err = NodeKey::load_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }
}
