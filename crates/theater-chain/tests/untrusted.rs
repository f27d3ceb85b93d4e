//! Untrusted bytes: whatever a file or a stored event holds, decoding and verification return
//! an answer (almost always an error) and never panic.

mod common;

use common::*;
use proptest::prelude::*;
use theater_chain::*;

/// Decodes and verifies `bytes` as a chain file; what is accepted must be canonical.
fn check_file(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(file) = ChainFile::decode(bytes) {
        prop_assert_eq!(file.encode(), bytes);
        let _ = file.verify();
        let _ = file.referenced_blobs();
    }
    Ok(())
}

/// Decodes `bytes` as an event; what is accepted re-encodes as the current version, and the
/// allocation-free validator (which `verify` uses) accepts and refuses exactly the same.
fn check_event(bytes: &[u8]) -> Result<(), TestCaseError> {
    let validated = Event::validate(bytes);
    let decoded = Event::decode(bytes);
    prop_assert_eq!(
        validated
            .as_ref()
            .map(|e| e.kind.type_name())
            .map_err(Clone::clone),
        decoded
            .as_ref()
            .map(|e| e.kind.type_name())
            .map_err(Clone::clone)
    );
    if let Ok(event) = decoded {
        let mut current = bytes.to_vec();
        current[0] = EVENT_ENCODING_VERSION;
        prop_assert_eq!(event.encode(), current);
    }
    Ok(())
}

fn file_header(actor_id: &str) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&FILE_VERSION.to_le_bytes());
    b.extend_from_slice(&(actor_id.len() as u32).to_le_bytes());
    b.extend_from_slice(actor_id.as_bytes());
    b
}

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic_the_event_decoder(bytes in any_bytes(256)) {
        check_event(&bytes)?;
    }

    /// Random bytes rarely get past the version byte: these start like an event.
    #[test]
    fn arbitrary_event_bodies_never_panic(
        version in 0u8..5,
        timestamp in any::<u64>(),
        tag in 0u8..11,
        rest in any_bytes(160),
    ) {
        let mut bytes = vec![version];
        bytes.extend_from_slice(&timestamp.to_le_bytes());
        bytes.push(tag);
        bytes.extend_from_slice(&rest);
        check_event(&bytes)?;
    }

    #[test]
    fn damaged_events_never_panic(e in event(prop_oneof![spawn(), later_kind()]), m in mutations()) {
        let mut bytes = e.encode();
        mutate(&mut bytes, &m);
        check_event(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_file_decoder(bytes in any_bytes(512)) {
        check_file(&bytes)?;
    }

    /// Random bytes rarely get past the magic: these start like a file.
    #[test]
    fn arbitrary_file_bodies_never_panic(rest in any_bytes(512)) {
        let mut bytes = file_header("a");
        bytes.extend_from_slice(&rest);
        check_file(&bytes)?;
    }

    #[test]
    fn damaged_files_never_panic((id, events) in chain(), m in mutations()) {
        let mut bytes = file_of(&id, &events).encode();
        mutate(&mut bytes, &m);
        check_file(&bytes)?;
    }

    /// Damage inside one event, with every link after it recomputed, so that the file reads
    /// and verification reaches the damaged event's decoding and the signature check.
    #[test]
    fn relinked_damaged_events_never_panic(
        (id, events) in chain(),
        which in any::<prop::sample::Index>(),
        m in mutations(),
        signed in prop::collection::vec(any::<u64>(), 0..3),
    ) {
        let mut file = file_of(&id, &events);
        let i = which.index(file.events.len());
        mutate(&mut file.events[i].bytes, &m);
        let mut head = file.events[..i].last().map_or(Hash::GENESIS, |e| e.hash);
        for stored in &mut file.events[i..] {
            stored.hash = Hash::link(&head, &stored.bytes);
            head = stored.hash;
        }
        file.head = head;
        if let Some(s) = &mut file.signatures {
            let signature = s.heads[0].1.clone();
            s.heads.extend(signed.iter().map(|len| (*len, signature.clone())));
        }
        check_file(&file.encode())?;
    }
}

#[test]
fn huge_counts_and_lengths_are_errors_not_allocations() {
    let mut events = file_header("a");
    events.extend_from_slice(&u64::MAX.to_le_bytes());
    events.extend_from_slice(&u32::MAX.to_le_bytes());
    events.extend_from_slice(b"abc");
    assert!(matches!(
        ChainFile::decode(&events),
        Err(FileError::Event { index: 0, .. })
    ));

    let mut actor = MAGIC.to_vec();
    actor.extend_from_slice(&FILE_VERSION.to_le_bytes());
    actor.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        ChainFile::decode(&actor),
        Err(FileError::Header(_))
    ));

    // No events, the genesis head, then a signature section claiming 2^64 - 1 signatures.
    let mut empty = file_header("a");
    empty.extend_from_slice(&0u64.to_le_bytes());
    empty.extend_from_slice(&[0; 32]);
    let mut signatures = empty.clone();
    signatures.push(1);
    signatures.extend_from_slice(&[1; 32]);
    signatures.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        ChainFile::decode(&signatures),
        Err(FileError::Signatures(_))
    ));

    let mut blobs = empty.clone();
    blobs.push(0);
    blobs.extend_from_slice(&u32::MAX.to_le_bytes());
    blobs.extend_from_slice(&[0; 32]);
    blobs.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        ChainFile::decode(&blobs),
        Err(FileError::Blobs(_))
    ));

    let mut event = vec![EVENT_ENCODING_VERSION];
    event.extend_from_slice(&0u64.to_le_bytes());
    event.push(1);
    event.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = Event::decode(&event).unwrap_err();
    assert!(err.what.contains("needs 4294967295 bytes"), "{err}");
}

fn spawn_of(id: &str) -> Event {
    Event {
        timestamp_ms: 1,
        kind: EventKind::Spawn(Spawn {
            actor_id: id.into(),
            name: "n".into(),
            component: Hash::of(b"c"),
            manifest: String::new().into(),
            parent: None,
            initial_state: None,
        }),
    }
}

#[test]
fn signatures_past_the_end_are_errors() {
    let mut file = file_of("a", &[spawn_of("a")]);
    let signature = file.signatures.as_ref().unwrap().heads[0].1.clone();
    for len in [2, u64::from(u32::MAX) + 1, u64::MAX] {
        file.signatures.as_mut().unwrap().heads = vec![(len, signature.clone())];
        let back = ChainFile::decode(&file.encode()).unwrap();
        assert!(
            matches!(back.verify(), Err(VerifyError::SignatureBeyondEnd { .. })),
            "{len}"
        );
    }
}

#[test]
fn a_small_order_key_with_a_forged_signature_fails_verification() {
    // The identity point as the key, and R = identity, s = 0 as every signature: lax ed25519
    // accepts this for any message, so anyone could "sign" any chain with it.
    let mut identity = [0; 32];
    identity[0] = 1;
    let mut forged = [0; 64];
    forged[0] = 1;
    let mut file = file_of("a", &[spawn_of("a")]);
    file.signatures = Some(FileSignatures {
        key: PublicKey(identity),
        heads: vec![
            (0, HeadProof::Head(Signature(forged))),
            (1, HeadProof::Head(Signature(forged))),
        ],
    });
    let back = ChainFile::decode(&file.encode()).unwrap();
    let err = back.verify().unwrap_err();
    assert!(
        matches!(err, VerifyError::BadSignature { len: 0, key } if key == PublicKey(identity)),
        "{err}"
    );
}
