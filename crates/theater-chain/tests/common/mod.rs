//! Strategies and helpers shared by the property tests. Each test binary uses part of them.
#![allow(dead_code)]

use proptest::prelude::*;
use theater_chain::*;

pub fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

pub fn text() -> impl Strategy<Value = String> {
    "[a-zé0-9 ./:-]{0,24}"
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

pub fn spawn() -> impl Strategy<Value = EventKind> {
    (
        text(),
        text(),
        hash(),
        prop_oneof![
            text().prop_map(RecordedManifest::Text),
            hash().prop_map(RecordedManifest::Hash)
        ],
        prop::option::of(text()),
        prop::option::of(hash()),
    )
        .prop_map(
            |(actor_id, name, component, manifest, parent, initial_state)| {
                EventKind::Spawn(Spawn {
                    actor_id,
                    name,
                    component,
                    manifest,
                    parent,
                    initial_state,
                })
            },
        )
}

pub fn later_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (hash(), prop::sample::select(InstanceReason::ALL))
            .prop_map(|(component, reason)| EventKind::Instance { component, reason }),
        (
            text(),
            prop::option::of(hash()),
            bytes(),
            prop::option::of(text()),
            prop::option::of(text())
        )
            .prop_map(|(export, state, params, message_id, sender)| {
                EventKind::CallStart(CallStart {
                    export: export.into(),
                    state,
                    params,
                    message_id,
                    sender,
                })
            }),
        (
            text(),
            prop::result::maybe_ok(bytes(), text()),
            prop::option::of(hash())
        )
            .prop_map(|(export, outcome, state)| EventKind::CallEnd(CallEnd {
                export: export.into(),
                outcome,
                state
            })),
        (
            text(),
            text(),
            bytes(),
            prop_oneof![
                bytes().prop_map(HostResult::Value),
                (any::<u64>(), hash()).prop_map(|(len, head)| HostResult::ChainRef { len, head }),
                (text(), any::<u64>(), hash()).prop_map(|(actor_id, len, head)| {
                    HostResult::ActorChainRef {
                        actor_id,
                        len,
                        head,
                    }
                }),
                text().prop_map(HostResult::Error),
            ],
            prop::option::of(text())
        )
            .prop_map(|(interface, function, params, result, message_id)| {
                EventKind::HostCall(HostCall {
                    interface: interface.into(),
                    function: function.into(),
                    params,
                    result,
                    message_id,
                })
            }),
        (prop::sample::select(TrapKind::ALL), text())
            .prop_map(|(kind, message)| EventKind::Trap { kind, message }),
        prop::option::of(hash()).prop_map(|state| EventKind::Snapshot { state }),
        (
            prop::option::of(hash()),
            prop::option::of(text()),
            prop::option::of(text())
        )
            .prop_map(
                |(state, interrupted, message_id)| EventKind::Recovery(Recovery {
                    state,
                    interrupted,
                    message_id
                })
            ),
        (
            prop::sample::select(ShutdownReason::ALL),
            prop::option::of(bytes())
        )
            .prop_map(|(reason, data)| EventKind::Shutdown { reason, data }),
    ]
}

pub fn event(kind: impl Strategy<Value = EventKind>) -> impl Strategy<Value = Event> {
    (any::<u64>(), kind).prop_map(|(timestamp_ms, kind)| Event { timestamp_ms, kind })
}

/// A valid chain: a spawn event, then up to 8 others.
pub fn chain() -> impl Strategy<Value = (String, Vec<Event>)> {
    (
        event(spawn()),
        prop::collection::vec(event(later_kind()), 0..8),
    )
        .prop_map(|(first, rest)| {
            let EventKind::Spawn(s) = &first.kind else {
                unreachable!()
            };
            let id = s.actor_id.clone();
            (id, std::iter::once(first).chain(rest).collect())
        })
}

pub fn file_of(actor_id: &str, events: &[Event]) -> ChainFile {
    let mut head = ChainHead::default();
    let events = events.iter().map(|e| head.append(e).1).collect();
    let key = NodeKey::from_seed([7; 32]);
    ChainFile {
        actor_id: actor_id.to_owned(),
        events,
        head: head.head,
        signatures: Some(FileSignatures {
            key: key.public(),
            heads: vec![(head.len, HeadProof::Head(key.sign_head(actor_id, &head)))],
        }),
        blobs: vec![(Hash::of(b"component"), b"component".to_vec())],
    }
}

/// One damage done to an encoding, as storage, transport or an attacker might do it.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    /// A length or count overwritten with a large value (little endian, 4 or 8 bytes).
    Large(prop::sample::Index, u64, bool),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let large = prop_oneof![
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) - 1),
        Just(1 << 31),
        Just(1 << 40),
        any::<u64>(),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<prop::sample::Index>(), large, any::<bool>())
            .prop_map(|(i, v, wide)| Mutation::Large(i, v, wide)),
    ]
}

/// Up to four mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

pub fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            _ if len == 0 => {}
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Remove(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Large(i, v, wide) => {
                let at = i.index(len);
                let value = v.to_le_bytes();
                let width = if *wide { 8 } else { 4 };
                let end = (at + width).min(len);
                bytes[at..end].copy_from_slice(&value[..end - at]);
            }
        }
    }
}
