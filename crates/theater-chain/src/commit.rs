//! One signature per commit: the writer signs the Merkle root of every chain head a commit
//! moves, and each chain keeps the path from its own head up to that root.
//!
//! So a commit that moves a thousand chains costs one ed25519 signature, not a thousand, and
//! each chain still proves itself alone: its head, its path and the root's signature are all a
//! verifier needs (`docs/chain-format.md`, "Head proofs").

use crate::chain::ChainHead;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::sign::{NodeKey, PublicKey, Signature, head_message};

/// What a commit signature covers, before the Merkle root.
const COMMIT_DOMAIN: &[u8] = b"theater commit v1\0";
/// Leaves and inner nodes are hashed with different first bytes, so that no inner node can
/// pass for a leaf (a second-preimage attack on the tree).
const LEAF: u8 = 0;
const NODE: u8 = 1;
/// The deepest path a proof may hold: 2^64 chains moved in one commit.
pub const MAX_PATH: usize = 64;

/// One step up the tree: the sibling to hash with, and on which side it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MerkleStep {
    pub sibling: Hash,
    /// Whether the sibling is the left input of the parent's hash.
    pub sibling_is_left: bool,
}

/// How a chain head is shown to be the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadProof {
    /// The node signed this head alone ([`head_message`]): how chains were signed before
    /// commits were, and how their heads stay until they grow again.
    Head(Signature),
    /// The node signed the Merkle root of the heads one commit moved; `path` climbs from this
    /// head's leaf to that root.
    Commit {
        signature: Signature,
        path: Vec<MerkleStep>,
    },
}

fn leaf(actor_id: &str, head: &ChainHead) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF]);
    hasher.update(&head_message(actor_id, head));
    Hash(*hasher.finalize().as_bytes())
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[NODE]);
    hasher.update(&left.0);
    hasher.update(&right.0);
    Hash(*hasher.finalize().as_bytes())
}

/// The bytes a commit signature signs: a domain tag and the Merkle root.
pub fn commit_message(root: &Hash) -> Vec<u8> {
    [COMMIT_DOMAIN, &root.0].concat()
}

/// Signs the heads one commit moves with one signature: returns each head's proof, in the
/// order given. An odd node at the end of a level goes up unpaired.
pub fn sign_commit(key: &NodeKey, heads: &[(&str, ChainHead)]) -> Vec<HeadProof> {
    let mut level: Vec<Hash> = heads.iter().map(|(id, head)| leaf(id, head)).collect();
    let mut paths: Vec<Vec<MerkleStep>> = vec![Vec::new(); heads.len()];
    // Which node of the current level each head's path is at.
    let mut at: Vec<usize> = (0..heads.len()).collect();
    while level.len() > 1 {
        for (path, at) in paths.iter_mut().zip(&mut at) {
            let sibling = *at ^ 1;
            if sibling < level.len() {
                path.push(MerkleStep {
                    sibling: level[sibling],
                    sibling_is_left: sibling < *at,
                });
            }
            *at /= 2;
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node(left, right),
                [alone] => *alone,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    let Some(root) = level.first() else {
        return Vec::new();
    };
    let signature = key.sign_bytes(&commit_message(root));
    paths
        .into_iter()
        .map(|path| HeadProof::Commit { signature, path })
        .collect()
}

impl PublicKey {
    /// Whether `proof` shows `head` to be the head of `actor_id`'s chain as this key's holder
    /// wrote it.
    pub fn proves(&self, actor_id: &str, head: &ChainHead, proof: &HeadProof) -> bool {
        match proof {
            HeadProof::Head(signature) => self.verifies(actor_id, head, signature),
            HeadProof::Commit { signature, path } => {
                if path.len() > MAX_PATH {
                    return false;
                }
                let root = path.iter().fold(leaf(actor_id, head), |at, step| {
                    if step.sibling_is_left {
                        node(&step.sibling, &at)
                    } else {
                        node(&at, &step.sibling)
                    }
                });
                self.verifies_bytes(&commit_message(&root), signature)
            }
        }
    }
}

impl HeadProof {
    /// The Merkle path's bytes as the database and export files keep them: per step, a side
    /// byte (1: the sibling is on the left) and the sibling's hash.
    pub(crate) fn encode_path(path: &[MerkleStep], w: &mut Writer) {
        for step in path {
            w.u8(u8::from(step.sibling_is_left));
            w.hash(&step.sibling);
        }
    }

    /// Reads `steps` path steps strictly.
    pub(crate) fn decode_path(
        r: &mut Reader<'_>,
        steps: usize,
    ) -> Result<Vec<MerkleStep>, DecodeError> {
        if steps > MAX_PATH {
            return Err(r.error(format!(
                "a Merkle path holds at most {MAX_PATH} steps, not {steps}"
            )));
        }
        (0..steps)
            .map(|_| {
                let sibling_is_left = match r.u8("path side")? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(r.error(format!("path side must be 0 or 1, found {other}")));
                    }
                };
                Ok(MerkleStep {
                    sibling: r.hash("path sibling")?,
                    sibling_is_left,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(n: usize) -> Vec<(String, ChainHead)> {
        (0..n)
            .map(|i| {
                (
                    format!("actor-{i}"),
                    ChainHead {
                        len: i as u64 + 1,
                        head: Hash::of(&i.to_le_bytes()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_head_of_a_commit_proves_itself_alone() {
        let key = NodeKey::from_seed([7; 32]);
        for n in [1, 2, 3, 5, 8, 13, 100] {
            let heads = heads(n);
            let refs: Vec<(&str, ChainHead)> =
                heads.iter().map(|(id, h)| (id.as_str(), *h)).collect();
            let proofs = sign_commit(&key, &refs);
            assert_eq!(proofs.len(), n);
            for ((id, head), proof) in refs.iter().zip(&proofs) {
                assert!(key.public().proves(id, head, proof), "{n} heads, {id}");
                // Another chain's proof, another length, another id: all refused.
                let longer = ChainHead {
                    len: head.len + 1,
                    ..*head
                };
                assert!(!key.public().proves(id, &longer, proof));
                assert!(!key.public().proves("stranger", head, proof));
            }
            if n > 1 {
                assert!(!key.public().proves(refs[0].0, &refs[0].1, &proofs[1]));
            }
        }
    }

    #[test]
    fn a_forged_path_or_signature_is_refused() {
        let key = NodeKey::from_seed([7; 32]);
        let heads = heads(4);
        let refs: Vec<(&str, ChainHead)> = heads.iter().map(|(id, h)| (id.as_str(), *h)).collect();
        let proofs = sign_commit(&key, &refs);
        let HeadProof::Commit { signature, path } = proofs[2].clone() else {
            panic!("commit proof")
        };
        let mut flipped = path.clone();
        flipped[0].sibling.0[0] ^= 1;
        let mut sided = path.clone();
        sided[1].sibling_is_left ^= true;
        let mut bad_sig = signature;
        bad_sig.0[5] ^= 1;
        for proof in [
            HeadProof::Commit {
                signature,
                path: flipped,
            },
            HeadProof::Commit {
                signature,
                path: sided,
            },
            HeadProof::Commit {
                signature,
                path: path[..1].to_vec(),
            },
            HeadProof::Commit {
                signature: bad_sig,
                path: path.clone(),
            },
            // The root signature is not a head signature.
            HeadProof::Head(signature),
        ] {
            assert!(
                !key.public().proves(refs[2].0, &refs[2].1, &proof),
                "{proof:?}"
            );
        }
        // A stranger's key signs its own tree; the node's key refuses it.
        let stranger = NodeKey::from_seed([8; 32]);
        let forged = sign_commit(&stranger, &refs);
        assert!(!key.public().proves(refs[2].0, &refs[2].1, &forged[2]));
    }
}
