//! Which actor waits on which, so that a wait that would close a cycle fails at once.
//!
//! An actor handles one call at a time, so an actor blocked in `request` (or `spawn`,
//! `stop-child`, `get-child-state`, or a send to a full mailbox) cannot handle anything else
//! until that host call returns. If A waits on B and B then waits on A, neither can ever go on.
//! Every such wait registers an edge here first; an edge that would close a cycle is refused
//! with the cycle, and the waiter gets an `err` instead of waiting for its timeout.

use crate::sync::LockExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The waits-for graph. Each actor waits on at most one other (its one host call).
#[derive(Default)]
pub(crate) struct WaitGraph {
    edges: Mutex<HashMap<Arc<str>, Arc<str>>>,
}

/// The cycle a wait would have closed: the waiter first, then whom each one waits on, ending
/// with the waiter again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cycle(pub Vec<Arc<str>>);

impl WaitGraph {
    /// Records that `waiter` waits on `target` until the guard drops, unless that closes a cycle.
    pub(crate) fn wait<'g>(
        &'g self,
        waiter: &Arc<str>,
        target: &Arc<str>,
    ) -> Result<WaitGuard<'g>, Cycle> {
        let mut edges = self.edges.locked();
        let mut path = vec![waiter.clone(), target.clone()];
        let mut current = target;
        while current != waiter {
            match edges.get(current) {
                Some(next) => {
                    path.push(next.clone());
                    current = next;
                }
                None => {
                    edges.insert(waiter.clone(), target.clone());
                    return Ok(WaitGuard {
                        graph: self,
                        waiter: waiter.clone(),
                    });
                }
            }
            // Edges are only added when they close no cycle, so a walk ends; this is a guard.
            if path.len() > edges.len() + 2 {
                break;
            }
        }
        Err(Cycle(path))
    }

    /// Whether `actor` is already waiting on someone.
    pub(crate) fn is_waiting(&self, actor: &str) -> bool {
        self.edges.locked().contains_key(actor)
    }
}

/// Removes its edge when the wait ends.
pub(crate) struct WaitGuard<'g> {
    graph: &'g WaitGraph,
    waiter: Arc<str>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.graph.edges.locked().remove(&self.waiter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Arc<str> {
        s.into()
    }

    #[test]
    fn two_and_three_actor_cycles_are_refused_and_named() {
        let g = WaitGraph::default();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        let _ab = g.wait(&a, &b).ok().unwrap();
        let cycle = g.wait(&b, &a).err().unwrap();
        assert_eq!(cycle, Cycle(vec![b.clone(), a.clone(), b.clone()]));
        let _bc = g.wait(&b, &c).ok().unwrap();
        let cycle = g.wait(&c, &a).err().unwrap();
        assert_eq!(cycle.0, vec![c.clone(), a.clone(), b.clone(), c.clone()]);
    }

    #[test]
    fn waiting_on_yourself_is_a_cycle_and_ended_waits_are_forgotten() {
        let g = WaitGraph::default();
        let (a, b) = (id("a"), id("b"));
        assert!(g.wait(&a, &a).is_err());
        drop(g.wait(&a, &b).ok());
        assert!(g.wait(&b, &a).is_ok());
    }
}
