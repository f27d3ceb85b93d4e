//! Memos keyed by an `Arc`'s allocation: work done once per manifest (its children's parsed
//! manifests, its component) instead of once per spawn.
//!
//! An entry holds a `Weak` to its key, so the allocation cannot be freed and reused by another
//! value while the entry exists: a pointer match is an identity match, never a stale one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::sync::LockExt;

/// Entries past this are pruned: first those whose key is gone, then all.
const MAX_ENTRIES: usize = 4096;

pub(crate) struct ByIdentity<K, V> {
    map: Mutex<HashMap<usize, (Weak<K>, V)>>,
}

impl<K, V> Default for ByIdentity<K, V> {
    fn default() -> Self {
        ByIdentity {
            map: Mutex::default(),
        }
    }
}

impl<K, V: Default> ByIdentity<K, V> {
    /// Runs `f` on the value kept for `key`'s allocation (a default one the first time).
    pub(crate) fn with<R>(&self, key: &Arc<K>, f: impl FnOnce(&mut V) -> R) -> R {
        let mut map = self.map.locked();
        let at = Arc::as_ptr(key) as usize;
        if !map.contains_key(&at) && map.len() >= MAX_ENTRIES {
            map.retain(|_, (k, _)| k.strong_count() > 0);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let (_, value) = map
            .entry(at)
            .or_insert_with(|| (Arc::downgrade(key), V::default()));
        f(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_belongs_to_one_allocation_only() {
        let memo: ByIdentity<String, Vec<u32>> = ByIdentity::default();
        let a = Arc::new("a".to_owned());
        memo.with(&a, |v| v.push(1));
        assert_eq!(memo.with(&a, |v| v.clone()), vec![1]);
        // An equal value in another allocation is another key.
        let b = Arc::new("a".to_owned());
        assert!(memo.with(&b, |v| v.is_empty()));
    }

    #[test]
    fn a_dropped_key_is_never_matched_by_a_new_allocation() {
        let memo: ByIdentity<u64, Vec<u64>> = ByIdentity::default();
        for i in 0..10_000u64 {
            // Allocated and freed in turn, so addresses are reused by the allocator.
            let key = Arc::new(i);
            assert!(memo.with(&key, |v| v.is_empty()), "entry {i} was not fresh");
            memo.with(&key, |v| v.push(i));
        }
        assert!(memo.map.locked().len() <= MAX_ENTRIES);
    }
}
