//! Property test: random sequences of child starts, crashes, normal exits, stops and clock
//! steps, applied to the runtime's supervision logic and to a plain model of OTP semantics
//! written out here. Every decision and the children left must agree, and the stop and
//! restart orders must be the OTP ones.

use proptest::prelude::*;
use theater::supervision::{
    ChildExit, Decision, RestartType, Strategy as Otp, Supervision, SupervisorSpec,
};

#[derive(Debug, Clone)]
enum Op {
    Start(RestartType),
    Exit(usize, ChildExit),
    /// The parent's `stop-child`.
    Stop(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let restart = prop_oneof![
        Just(RestartType::Permanent),
        Just(RestartType::Transient),
        Just(RestartType::Temporary)
    ];
    let exit = prop_oneof![Just(ChildExit::Normal), Just(ChildExit::Failed)];
    prop_oneof![
        2 => restart.prop_map(Op::Start),
        4 => (any::<usize>(), exit).prop_map(|(i, e)| Op::Exit(i, e)),
        1 => any::<usize>().prop_map(Op::Stop),
        // Round steps, so that restarts land exactly on the period's edge too.
        2 => prop_oneof![0u64..3, Just(250), Just(500), Just(1_000), 0u64..3_000].prop_map(Op::Wait),
    ]
}

fn spec() -> impl Strategy<Value = SupervisorSpec> {
    (
        prop_oneof![
            Just(Otp::OneForOne),
            Just(Otp::OneForAll),
            Just(Otp::RestForOne)
        ],
        0u32..4,
        prop_oneof![Just(500u64), Just(1_000), 1u64..5_000],
    )
        .prop_map(|(strategy, max_restarts, period_ms)| SupervisorSpec {
            strategy,
            max_restarts,
            period_ms,
            ..SupervisorSpec::default()
        })
}

/// OTP as the documentation states it, without any cleverness.
struct Model {
    spec: SupervisorSpec,
    children: Vec<(u32, RestartType)>,
    restarts: Vec<u64>,
}

impl Model {
    fn exit(&mut self, child: u32, exit: ChildExit, now: u64) -> Decision<u32> {
        let position = self.children.iter().position(|(c, _)| *c == child).unwrap();
        let kind = self.children[position].1;
        let restarts = kind == RestartType::Permanent
            || (kind == RestartType::Transient && exit == ChildExit::Failed);
        if !restarts {
            self.children.remove(position);
            return Decision {
                remove: vec![child],
                ..Decision::default()
            };
        }
        self.restarts.push(now);
        let recent = self
            .restarts
            .iter()
            .filter(|&&t| t + self.spec.period_ms > now)
            .count();
        if recent > self.spec.max_restarts as usize {
            let all: Vec<u32> = self.children.iter().map(|(c, _)| *c).collect();
            self.children.clear();
            return Decision {
                stop: all.iter().rev().copied().filter(|c| *c != child).collect(),
                remove: all,
                restart: vec![],
                escalate: true,
            };
        }
        let affected: Vec<(u32, RestartType)> = match self.spec.strategy {
            Otp::OneForOne => vec![],
            Otp::OneForAll => self
                .children
                .iter()
                .copied()
                .filter(|(c, _)| *c != child)
                .collect(),
            Otp::RestForOne => self.children[position + 1..].to_vec(),
        };
        let temporary: Vec<u32> = affected
            .iter()
            .filter(|(_, t)| *t == RestartType::Temporary)
            .map(|(c, _)| *c)
            .collect();
        self.children.retain(|(c, _)| !temporary.contains(c));
        Decision {
            stop: affected.iter().rev().map(|(c, _)| *c).collect(),
            restart: self
                .children
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| *c == child || affected.iter().any(|(a, _)| a == c))
                .collect(),
            remove: temporary,
            escalate: false,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn supervision_matches_the_otp_model(spec in spec(), ops in prop::collection::vec(op(), 1..60)) {
        let mut real = Supervision::new(spec);
        let mut model = Model { spec, children: vec![], restarts: vec![] };
        let (mut now, mut next_id) = (0u64, 0u32);
        for op in ops {
            match op {
                Op::Start(kind) => {
                    real.add(next_id, kind);
                    model.children.push((next_id, kind));
                    next_id += 1;
                }
                Op::Exit(i, exit) if !model.children.is_empty() => {
                    let child = model.children[i % model.children.len()].0;
                    let order: Vec<u32> = model.children.iter().map(|(c, _)| *c).collect();
                    let got = real.on_exit(&child, exit, now);
                    let want = model.exit(child, exit, now);
                    prop_assert_eq!(&got, &want);
                    // The orders OTP promises, checked against the start order directly.
                    let pos = |c: &u32| order.iter().position(|o| o == c).unwrap();
                    prop_assert!(got.stop.windows(2).all(|w| pos(&w[0]) > pos(&w[1])));
                    prop_assert!(got.restart.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));
                    prop_assert!(!got.stop.contains(&child));
                    if got.escalate {
                        prop_assert!(real.children().next().is_none());
                        return Ok(()); // The supervisor itself is gone.
                    }
                }
                Op::Stop(i) if !model.children.is_empty() => {
                    let child = model.children.remove(i % model.children.len()).0;
                    prop_assert!(real.remove(&child));
                }
                Op::Wait(ms) => now += ms,
                _ => {}
            }
            let left: Vec<u32> = real.children().copied().collect();
            let want: Vec<u32> = model.children.iter().map(|(c, _)| *c).collect();
            prop_assert_eq!(left, want);
        }
    }
}
