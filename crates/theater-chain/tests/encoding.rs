//! Property tests of the canonical encoding, the file format and tamper detection.

mod common;

use common::*;
use proptest::prelude::*;
use theater_chain::*;

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
            // An older version's event re-encodes as the current version, the rest unchanged.
            let mut current = bytes.clone();
            current[0] = EVENT_ENCODING_VERSION;
            prop_assert_eq!(decoded.encode(), current);
        }
    }

    #[test]
    fn version_2_events_decode_and_their_chains_verify((id, events) in chain()) {
        let events: Vec<Event> = events.into_iter().map(without_error_results).map(with_manifest_text).collect();
        let file = version_2_file(&id, &events);
        let back = ChainFile::decode(&file.encode()).unwrap();
        prop_assert_eq!(back.verify().unwrap().head.len, events.len() as u64);
        for (stored, event) in back.events.iter().zip(&events) {
            prop_assert_eq!(stored.bytes[0], 2);
            prop_assert_eq!(&Event::decode(&stored.bytes).unwrap(), event);
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

/// The spawn event of actor `a`, the first of the hand-built chains below.
fn spawn_event() -> Event {
    Event {
        timestamp_ms: 1,
        kind: EventKind::Spawn(Spawn {
            actor_id: "a".into(),
            name: "n".into(),
            component: Hash::of(b"c"),
            manifest: String::new().into(),
            parent: None,
            initial_state: None,
        }),
    }
}

#[test]
fn changed_event_is_named_by_index() {
    let spawn = spawn_event();
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

/// The same event with any host error result replaced by a value: version 2 has no errors.
fn without_error_results(mut e: Event) -> Event {
    if let EventKind::HostCall(h) = &mut e.kind
        && let HostResult::Error(message) = &h.result
    {
        h.result = HostResult::Value(message.clone().into_bytes());
    }
    e
}

/// The same event with a manifest recorded by hash replaced by text: before version 4 a
/// manifest is always text.
fn with_manifest_text(mut e: Event) -> Event {
    if let EventKind::Spawn(s) = &mut e.kind
        && let RecordedManifest::Hash(h) = s.manifest
    {
        s.manifest = RecordedManifest::Text(h.to_hex());
    }
    e
}

/// `e` as a writer of encoding `version` (2 or 3) stored it: the version byte and, for a
/// spawn, no manifest form byte before its text.
fn encode_as(e: &Event, version: u8) -> Vec<u8> {
    let mut bytes = e.encode();
    bytes[0] = version;
    if let EventKind::Spawn(s) = &e.kind {
        assert!(s.manifest.text().is_some(), "versions 2 and 3 record text");
        // version, timestamp, tag, actor id, name, component hash: then the form byte.
        let form = 1 + 8 + 1 + (4 + s.actor_id.len()) + (4 + s.name.len()) + 32;
        assert_eq!(bytes.remove(form), 0);
    }
    bytes
}

/// A signed file of `events` as a version 2 writer stored them: the encoding differs only in
/// the version byte and a spawn's manifest, and the links and signature cover those stored
/// bytes.
fn version_2_file(actor_id: &str, events: &[Event]) -> ChainFile {
    let mut head = ChainHead::default();
    let stored = events
        .iter()
        .map(|e| {
            let bytes = encode_as(e, 2);
            let hash = Hash::link(&head.head, &bytes);
            head = ChainHead {
                len: head.len + 1,
                head: hash,
            };
            StoredEvent { hash, bytes }
        })
        .collect();
    let key = NodeKey::from_seed([7; 32]);
    ChainFile {
        actor_id: actor_id.to_owned(),
        events: stored,
        head: head.head,
        signatures: Some(FileSignatures {
            key: key.public(),
            heads: vec![(head.len, HeadProof::Head(key.sign_head(actor_id, &head)))],
        }),
        blobs: Vec::new(),
    }
}

fn host_error(message: &str) -> Event {
    Event {
        timestamp_ms: 5,
        kind: EventKind::HostCall(HostCall {
            interface: "theater:simple/store".into(),
            function: "get".into(),
            params: vec![1, 2],
            result: HostResult::Error(message.into()),
            message_id: None,
        }),
    }
}

#[test]
fn a_host_error_round_trips_as_result_kind_3() {
    let e = host_error("disk full");
    let bytes = e.encode();
    assert_eq!(bytes[0], EVENT_ENCODING_VERSION);
    assert_eq!(EVENT_ENCODING_VERSION, 4);
    assert_eq!(OLDEST_EVENT_ENCODING_VERSION, 2);
    // ... params, then kind 3, the message as a `string`, then no message id.
    let tail = [&[3u8, 9, 0, 0, 0][..], b"disk full", &[0]].concat();
    assert!(bytes.ends_with(&tail), "{bytes:?}");
    assert_eq!(Event::decode(&bytes).unwrap(), e);
}

#[test]
fn result_kind_3_in_a_version_2_event_is_refused() {
    let mut bytes = host_error("disk full").encode();
    bytes[0] = 2;
    let err = Event::decode(&bytes).unwrap_err();
    assert!(
        err.what
            .starts_with("result kind 3 needs encoding version 3"),
        "{err}"
    );
}

#[test]
fn unknown_event_versions_are_refused() {
    let mut bytes = host_error("x").encode();
    for version in [0, 1, 5, 255] {
        bytes[0] = version;
        let err = Event::decode(&bytes).unwrap_err();
        assert!(
            err.what
                .starts_with(&format!("unknown event encoding version {version}")),
            "{err}"
        );
    }
}

/// [`spawn_event`] recording `manifest`.
fn spawn_recording(manifest: RecordedManifest) -> Event {
    let mut e = spawn_event();
    if let EventKind::Spawn(s) = &mut e.kind {
        s.manifest = manifest;
    }
    e
}

#[test]
fn a_manifest_by_hash_round_trips_and_an_unknown_form_is_refused() {
    let e = spawn_recording(RecordedManifest::Hash(Hash::of(b"name = \"n\"")));
    let mut bytes = e.encode();
    assert_eq!(Event::decode(&bytes).unwrap(), e);
    // version, timestamp, tag, "a", "n", component: then the form byte.
    let form = 1 + 8 + 1 + 5 + 5 + 32;
    assert_eq!(bytes[form], 1);
    bytes[form] = 2;
    let err = Event::decode(&bytes).unwrap_err();
    assert!(
        err.what
            .starts_with("manifest form must be 0 (text) or 1 (hash), found 2"),
        "{err}"
    );
}

#[test]
fn a_version_3_spawn_decodes_with_its_manifest_as_text() {
    let e = spawn_recording("name = \"n\"".into());
    let decoded = Event::decode(&encode_as(&e, 3)).unwrap();
    assert_eq!(decoded, e);
}

#[test]
fn a_stored_version_2_chain_is_hashed_as_stored() {
    let spawn = spawn_event();
    let file = version_2_file(
        "a",
        &[spawn.clone(), host_error("x")].map(without_error_results),
    );
    assert!(file.verify().is_ok());
    // Re-encoding would give version 3 bytes and different links: the stored bytes count.
    let mut head = ChainHead::default();
    let reencoded: Vec<StoredEvent> = file
        .events
        .iter()
        .map(|s| head.append(&Event::decode(&s.bytes).unwrap()).1)
        .collect();
    assert_ne!(reencoded[0].hash, file.events[0].hash);
    assert_ne!(head.head, file.head);
}
