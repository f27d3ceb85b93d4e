//! OTP supervision decisions, without any actors: given a supervisor's children and settings,
//! what happens when one of them exits. The runtime applies a [`Decision`]; keeping the logic
//! pure lets a property test check it against a model of OTP (`tests/supervision.rs`).

use std::collections::VecDeque;
use std::fmt;

/// Which children a failure restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that exited.
    #[default]
    OneForOne,
    /// Every child: the others are stopped (newest first) and all start again.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartType {
    /// Always, whether it failed or shut down.
    #[default]
    Permanent,
    /// Only when it failed.
    Transient,
    /// Never; also not when a sibling's failure stops it.
    Temporary,
}

/// Where a restarted child starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartFrom {
    /// A fresh `init` with the child's original initial state (as OTP does).
    #[default]
    Init,
    /// Its state after its last successful call, without calling `init`.
    LastState,
}

/// A supervisor's settings (manifest `[supervision]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// At most this many restarts in `period_ms`; one more and the supervisor fails.
    pub max_restarts: u32,
    pub period_ms: u64,
    /// The restart type of children whose manifest does not set `[child] restart`.
    pub restart: RestartType,
    pub restart_from: RestartFrom,
    /// How long a child may take to finish its current call when stopped before it is killed.
    pub shutdown_timeout_ms: u64,
    /// At most this many children at a time; `spawn` and `resume` beyond it are refused.
    pub max_children: u32,
}

pub const DEFAULT_MAX_RESTARTS: u32 = 3;
pub const DEFAULT_PERIOD_MS: u64 = 5_000;
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_MAX_CHILDREN: u32 = 10_000;

impl Default for SupervisorSpec {
    fn default() -> Self {
        SupervisorSpec {
            strategy: Strategy::default(),
            max_restarts: DEFAULT_MAX_RESTARTS,
            period_ms: DEFAULT_PERIOD_MS,
            restart: RestartType::default(),
            restart_from: RestartFrom::default(),
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            max_children: DEFAULT_MAX_CHILDREN,
        }
    }
}

/// How a child ended, as far as restarting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It called `runtime.shutdown`.
    Normal,
    /// It trapped, failed to restart, or (for a supervisor) gave up restarting its children.
    Failed,
}

/// What the runtime must do after a child exited, in this order: stop `stop`, remove `remove`,
/// start `restart`; or, if `escalate`, fail the supervisor itself after stopping everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<K> {
    /// Running children to stop, newest first. The exited child is never in it.
    pub stop: Vec<K>,
    /// Children that are gone for good, including the exited one if it is not restarted.
    pub remove: Vec<K>,
    /// Children to start again, oldest first.
    pub restart: Vec<K>,
    /// The restart intensity was exceeded: every child is in `stop` (or is the exited one) and
    /// `remove`, and the supervisor must fail.
    pub escalate: bool,
}

impl<K> Default for Decision<K> {
    fn default() -> Self {
        Decision {
            stop: Vec::new(),
            remove: Vec::new(),
            restart: Vec::new(),
            escalate: false,
        }
    }
}

/// One supervisor's children, oldest first, and its recent restarts.
#[derive(Debug, Clone)]
pub struct Supervision<K> {
    pub spec: SupervisorSpec,
    children: Vec<(K, RestartType)>,
    /// Times (ms) of the restarts within the last period.
    restarts: VecDeque<u64>,
}

impl<K: Clone + PartialEq + fmt::Debug> Supervision<K> {
    pub fn new(spec: SupervisorSpec) -> Self {
        Supervision {
            spec,
            children: Vec::new(),
            restarts: VecDeque::new(),
        }
    }

    /// Children, oldest first.
    pub fn children(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.children.iter().map(|(k, _)| k)
    }

    pub fn contains(&self, child: &K) -> bool {
        self.children.iter().any(|(k, _)| k == child)
    }

    /// Records a newly started child (it becomes the newest).
    pub fn add(&mut self, child: K, restart: RestartType) {
        self.children.push((child, restart));
    }

    /// Forgets a child that was stopped on purpose; returns whether it was there.
    pub fn remove(&mut self, child: &K) -> bool {
        let before = self.children.len();
        self.children.retain(|(k, _)| k != child);
        before != self.children.len()
    }

    /// Applies OTP semantics to `child` exiting at `now_ms`.
    pub fn on_exit(&mut self, child: &K, exit: ChildExit, now_ms: u64) -> Decision<K> {
        let Some(position) = self.children.iter().position(|(k, _)| k == child) else {
            return Decision::default();
        };
        let restart_type = self.children[position].1;
        let restart = match restart_type {
            RestartType::Permanent => true,
            RestartType::Transient => exit == ChildExit::Failed,
            RestartType::Temporary => false,
        };
        if !restart {
            self.children.remove(position);
            return Decision {
                remove: vec![child.clone()],
                ..Decision::default()
            };
        }

        while self
            .restarts
            .front()
            .is_some_and(|&t| t.saturating_add(self.spec.period_ms) <= now_ms)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now_ms);
        if self.restarts.len() > self.spec.max_restarts as usize {
            let all = std::mem::take(&mut self.children);
            return Decision {
                stop: all
                    .iter()
                    .rev()
                    .filter(|(k, _)| k != child)
                    .map(|(k, _)| k.clone())
                    .collect(),
                remove: all.into_iter().map(|(k, _)| k).collect(),
                restart: Vec::new(),
                escalate: true,
            };
        }

        let affected: Vec<(K, RestartType)> = match self.spec.strategy {
            Strategy::OneForOne => Vec::new(),
            Strategy::OneForAll => self
                .children
                .iter()
                .filter(|(k, _)| k != child)
                .cloned()
                .collect(),
            Strategy::RestForOne => self.children[position + 1..].to_vec(),
        };
        let mut decision = Decision {
            stop: affected.iter().rev().map(|(k, _)| k.clone()).collect(),
            ..Decision::default()
        };
        // A temporary sibling stopped by the strategy is not restarted, as in OTP.
        for (k, t) in &affected {
            if *t == RestartType::Temporary {
                decision.remove.push(k.clone());
            }
        }
        self.children.retain(|(k, _)| !decision.remove.contains(k));
        decision.restart = self
            .children
            .iter()
            .filter(|(k, _)| k == child || affected.iter().any(|(a, _)| a == k))
            .map(|(k, _)| k.clone())
            .collect();
        decision
    }
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "one-for-one" => Some(Strategy::OneForOne),
            "one-for-all" => Some(Strategy::OneForAll),
            "rest-for-one" => Some(Strategy::RestForOne),
            _ => None,
        }
    }
}

impl RestartType {
    /// The name manifests use.
    pub fn name(self) -> &'static str {
        match self {
            RestartType::Permanent => "permanent",
            RestartType::Transient => "transient",
            RestartType::Temporary => "temporary",
        }
    }

    pub fn parse(s: &str) -> Option<RestartType> {
        match s {
            "permanent" => Some(RestartType::Permanent),
            "transient" => Some(RestartType::Transient),
            "temporary" => Some(RestartType::Temporary),
            _ => None,
        }
    }
}

impl RestartFrom {
    pub fn parse(s: &str) -> Option<RestartFrom> {
        match s {
            "init" => Some(RestartFrom::Init),
            "last-state" => Some(RestartFrom::LastState),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup(strategy: Strategy, kids: &[(u32, RestartType)]) -> Supervision<u32> {
        let mut s = Supervision::new(SupervisorSpec {
            strategy,
            ..SupervisorSpec::default()
        });
        for &(k, t) in kids {
            s.add(k, t);
        }
        s
    }

    use RestartType::*;

    #[test]
    fn one_for_all_stops_newest_first_and_restarts_oldest_first() {
        let mut s = sup(
            Strategy::OneForAll,
            &[(1, Permanent), (2, Temporary), (3, Transient)],
        );
        let d = s.on_exit(&1, ChildExit::Failed, 0);
        assert_eq!(d.stop, vec![3, 2]);
        assert_eq!(d.remove, vec![2]);
        assert_eq!(d.restart, vec![1, 3]);
        assert_eq!(s.children().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn rest_for_one_touches_only_younger_children() {
        let mut s = sup(
            Strategy::RestForOne,
            &[(1, Permanent), (2, Permanent), (3, Permanent)],
        );
        let d = s.on_exit(&2, ChildExit::Failed, 0);
        assert_eq!(d.stop, vec![3]);
        assert_eq!(d.restart, vec![2, 3]);
    }

    #[test]
    fn intensity_escalates_on_the_restart_past_the_limit() {
        let mut s = sup(Strategy::OneForOne, &[(1, Permanent), (2, Permanent)]);
        for t in 0..3 {
            assert!(!s.on_exit(&1, ChildExit::Failed, t).escalate);
        }
        let d = s.on_exit(&1, ChildExit::Failed, 10);
        assert!(d.escalate);
        assert_eq!(d.stop, vec![2]);
        assert_eq!(s.children().count(), 0);
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let mut s = sup(Strategy::OneForOne, &[(1, Permanent)]);
        for t in [0, 1000, 2000, 5000, 6000, 7000] {
            assert!(!s.on_exit(&1, ChildExit::Failed, t).escalate, "at {t}");
        }
    }

    #[test]
    fn transient_restarts_only_on_failure() {
        let mut s = sup(Strategy::OneForOne, &[(1, Transient), (2, Transient)]);
        assert_eq!(s.on_exit(&1, ChildExit::Failed, 0).restart, vec![1]);
        let d = s.on_exit(&1, ChildExit::Normal, 0);
        assert_eq!((d.remove, d.restart), (vec![1], vec![]));
    }
}
