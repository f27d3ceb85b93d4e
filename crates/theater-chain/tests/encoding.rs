//! Property tests of the canonical encoding, the file format and tamper detection.

use proptest::prelude::*;
use theater_chain::*;

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn text() -> impl Strategy<Value = String> {
    "[a-zé0-9 ./:-]{0,24}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn spawn() -> impl Strategy<Value = EventKind> {
    (
        text(),
        text(),
        hash(),
        text(),
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

fn later_kind() -> impl Strategy<Value = EventKind> {
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
                    export,
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
                export,
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
                })
            ],
            prop::option::of(text())
        )
            .prop_map(|(interface, function, params, result, message_id)| {
                EventKind::HostCall(HostCall {
                    interface,
                    function,
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

fn event(kind: impl Strategy<Value = EventKind>) -> impl Strategy<Value = Event> {
    (any::<u64>(), kind).prop_map(|(timestamp_ms, kind)| Event { timestamp_ms, kind })
}

/// A valid chain: a spawn event, then up to 8 others.
fn chain() -> impl Strategy<Value = (String, Vec<Event>)> {
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

fn file_of(actor_id: &str, events: &[Event]) -> ChainFile {
    let mut head = ChainHead::default();
    let events = events.iter().map(|e| head.append(e).1).collect();
    let key = NodeKey::from_seed([7; 32]);
    ChainFile {
        actor_id: actor_id.to_owned(),
        events,
        head: head.head,
        signatures: Some(FileSignatures {
            key: key.public(),
            heads: vec![(head.len, key.sign_head(actor_id, &head))],
        }),
        blobs: vec![(Hash::of(b"component"), b"component".to_vec())],
    }
}

proptest! {
    #[test]
    fn every_event_round_trips(e in event(prop_oneof![spawn(), later_kind()])) {
        let bytes = e.encode();
        prop_assert_eq!(Event::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn decoding_is_canonical(e in event(prop_oneof![spawn(), later_kind()]), extra in 1usize..4) {
        let bytes = e.encode();
        // Trailing bytes are refused.
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(Event::decode(&longer).is_err());
        // Every strict prefix is refused.
        for cut in 0..bytes.len() {
            prop_assert!(Event::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn accepted_bytes_re_encode_identically(e in event(prop_oneof![spawn(), later_kind()]), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = e.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(decoded) = Event::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn file_round_trips_and_verifies((id, events) in chain()) {
        let file = file_of(&id, &events);
        let bytes = file.encode();
        let back = ChainFile::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &file);
        let verified = back.verify().unwrap();
        prop_assert_eq!(verified.head.len, events.len() as u64);
        prop_assert_eq!(verified.signer, Some(NodeKey::from_seed([7; 32]).public()));
    }

    #[test]
    fn any_changed_byte_fails_verification((id, events) in chain(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = file_of(&id, &events).encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let outcome = ChainFile::decode(&bytes).map(|f| f.verify());
        prop_assert!(!matches!(outcome, Ok(Ok(_))), "flipping bit {} of byte {} went unnoticed", bit, i);
    }

    #[test]
    fn any_truncation_fails((id, events) in chain(), cut in any::<prop::sample::Index>()) {
        let bytes = file_of(&id, &events).encode();
        let cut = cut.index(bytes.len());
        prop_assert!(ChainFile::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn changed_event_is_named_by_index() {
    let spawn = Event {
        timestamp_ms: 1,
        kind: EventKind::Spawn(Spawn {
            actor_id: "a".into(),
            name: "n".into(),
            component: Hash::of(b"c"),
            manifest: String::new(),
            parent: None,
            initial_state: None,
        }),
    };
    let log = |msg: &str| Event {
        timestamp_ms: 2,
        kind: EventKind::HostCall(HostCall {
            interface: "theater:simple/runtime".into(),
            function: "log".into(),
            params: msg.as_bytes().to_vec(),
            result: HostResult::Value(vec![]),
            message_id: None,
        }),
    };
    let mut file = file_of("a", &[spawn, log("one"), log("two"), log("six")]);
    let last = file.events[2].bytes.len() - 1;
    file.events[2].bytes[last] = b'X';
    let err = file.verify().unwrap_err();
    assert_eq!(err.event_index(), Some(2), "{err}");
    assert!(err.to_string().starts_with("event 2 "), "{err}");
}

#[test]
fn chain_must_start_with_spawn() {
    let e = Event {
        timestamp_ms: 0,
        kind: EventKind::Trap {
            kind: TrapKind::Other,
            message: "x".into(),
        },
    };
    let err = file_of("a", &[e]).verify().unwrap_err();
    assert!(
        matches!(err, VerifyError::NoSpawn { index: 0, .. }),
        "{err}"
    );
}
