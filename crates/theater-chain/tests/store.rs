//! The SQLite chain store, on real files in a temp dir.

use std::sync::Arc;
use theater_chain::*;

fn spawn_event(id: &str) -> Event {
    Event::new(EventKind::Spawn(Spawn {
        actor_id: id.into(),
        name: "test".into(),
        component: Hash::of(b"c"),
        manifest: "name = \"test\"".into(),
        parent: None,
        initial_state: None,
    }))
}

fn log_event(i: u32) -> Event {
    Event::new(EventKind::HostCall(HostCall {
        message_id: None,
        interface: "theater:simple/runtime".into(),
        function: "log".into(),
        params: i.to_le_bytes().to_vec(),
        result: HostResult::Value(vec![]),
    }))
}

/// Writes a chain of `n` events for `id` and returns its head.
fn write_chain(writer: &ChainWriter, id: &str, n: u32) -> ChainHead {
    let mut head = ChainHead::default();
    writer
        .register(ChainInfo {
            actor_id: id.into(),
            name: "test".into(),
            parent: None,
            created_ms: 1,
            head,
            signature: None,
            manifest_dir: None,
        })
        .unwrap();
    let id: Arc<str> = id.into();
    for i in 0..n {
        let event = if i == 0 {
            spawn_event(&id)
        } else {
            log_event(i)
        };
        let (index, stored) = head.append(&event);
        writer.append(id.clone(), index, stored, None).unwrap();
    }
    head
}

fn verify_stored(dir: &std::path::Path, id: &str) -> Result<ChainHead, VerifyError> {
    let reader = ChainReader::open(dir).unwrap();
    let (info, events) = reader.chain(id).unwrap();
    verify_chain(id, &events, info.head)
}

#[test]
fn appended_events_read_back_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    let head = write_chain(&writer, "actor-1", 50);
    writer.flush().unwrap();

    let reader = ChainReader::open(dir.path()).unwrap();
    let info = reader.resolve("actor-1").unwrap();
    assert_eq!(info.head, head);
    assert_eq!(reader.resolve("actor").unwrap().actor_id, "actor-1");
    assert_eq!(verify_stored(dir.path(), "actor-1").unwrap(), head);
}

#[test]
fn reader_sees_commits_while_writer_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    write_chain(&writer, "a", 3);
    writer.flush().unwrap();
    let reader = ChainReader::open(dir.path()).unwrap();
    assert_eq!(reader.chains().unwrap().len(), 1);
    write_chain(&writer, "b", 3);
    writer.flush().unwrap();
    assert_eq!(reader.chains().unwrap().len(), 2);
}

#[test]
fn every_event_durability_acknowledges_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    let mut head = ChainHead::default();
    writer
        .register(ChainInfo {
            actor_id: "a".into(),
            name: "t".into(),
            parent: None,
            created_ms: 0,
            head,
            signature: None,
            manifest_dir: None,
        })
        .unwrap();
    let (index, stored) = head.append(&spawn_event("a"));
    let (tx, rx) = std::sync::mpsc::channel();
    writer
        .append(
            "a".into(),
            index,
            stored,
            Some(Box::new(move |r| tx.send(r).unwrap())),
        )
        .unwrap();
    rx.recv().unwrap().unwrap();
    // Acknowledged means readable by another connection.
    let reader = ChainReader::open(dir.path()).unwrap();
    assert_eq!(reader.resolve("a").unwrap().head, head);
}

fn tamper(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// Every segment row of a chain: its rowid and its data.
fn segments(dir: &std::path::Path, id: &str) -> Vec<(i64, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    let mut stmt = conn
        .prepare("SELECT rowid, data FROM segments WHERE actor_id = ?1 ORDER BY first_seq")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn set_segment(dir: &std::path::Path, rowid: i64, data: &[u8]) {
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    conn.execute(
        "UPDATE segments SET data = ?2 WHERE rowid = ?1",
        rusqlite::params![rowid, data],
    )
    .unwrap();
}

/// Where event `n`'s bytes end in a segment: each event is its hash, a `u32` length and its
/// bytes.
fn event_end(data: &[u8], n: usize) -> usize {
    let mut at = 0;
    for _ in 0..=n {
        let len = u32::from_le_bytes(data[at + 32..at + 36].try_into().unwrap()) as usize;
        at += 36 + len;
    }
    at
}

#[test]
fn changed_stored_event_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        write_chain(&writer, "a", 10);
    }
    // Flip the last byte of event 4's data.
    let (rowid, mut data) = segments(dir.path(), "a").remove(0);
    let end = event_end(&data, 4);
    data[end - 1] ^= 0xff;
    set_segment(dir.path(), rowid, &data);
    let err = verify_stored(dir.path(), "a").unwrap_err();
    assert_eq!(err.event_index(), Some(4), "{err}");
}

#[test]
fn a_flipped_byte_anywhere_in_a_segment_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        write_chain(&writer, "a", 4);
    }
    let (rowid, data) = segments(dir.path(), "a").remove(0);
    for at in 0..data.len() {
        let mut flipped = data.clone();
        flipped[at] ^= 0x01;
        set_segment(dir.path(), rowid, &flipped);
        assert!(
            verify_stored(dir.path(), "a").is_err(),
            "byte {at} of {} flipped and the chain still verified",
            data.len()
        );
    }
    set_segment(dir.path(), rowid, &data);
    assert_eq!(verify_stored(dir.path(), "a").unwrap().len, 4);
}

/// Chain "a" of 10 events in two commits, so in two segments: events 0-6 and 7-9.
fn two_commit_chain(dir: &std::path::Path) {
    let writer = ChainWriter::open(dir).unwrap();
    let mut head = write_chain(&writer, "a", 7);
    writer.flush().unwrap();
    for i in 7..10 {
        let (index, stored) = head.append(&log_event(i));
        writer.append("a".into(), index, stored, None).unwrap();
    }
}

#[test]
fn truncated_stored_chain_fails() {
    let dir = tempfile::tempdir().unwrap();
    two_commit_chain(dir.path());
    // The second commit's segment is gone.
    tamper(dir.path(), "DELETE FROM segments WHERE first_seq = 7");
    let err = verify_stored(dir.path(), "a").unwrap_err();
    assert!(matches!(err, VerifyError::HeadMismatch { .. }), "{err}");
    assert_eq!(err.event_index(), Some(7), "{err}");
    // And a cut inside a segment: the last event's bytes are cut off.
    let (rowid, data) = segments(dir.path(), "a").remove(0);
    set_segment(dir.path(), rowid, &data[..data.len() - 3]);
    let err = verify_stored(dir.path(), "a").unwrap_err();
    assert_eq!(err.event_index(), Some(6), "{err}");
}

#[test]
fn one_commit_signs_many_chains_and_each_verifies_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..7).map(|i| format!("actor-{i}")).collect();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        for id in &ids {
            write_chain(&writer, id, 3);
        }
        writer.flush().unwrap();
    }
    let reader = ChainReader::open(dir.path()).unwrap();
    let key = reader.node_key().unwrap().unwrap();
    let mut signatures = std::collections::HashSet::new();
    for id in &ids {
        let (info, events) = reader.chain(id).unwrap();
        let Some(HeadProof::Commit { signature, path }) = &info.signature else {
            panic!("{id} has no commit proof: {:?}", info.signature);
        };
        signatures.insert(signature.0.to_vec());
        assert!(!path.is_empty(), "seven heads make a tree");
        // Exported alone, with only its own path, it verifies as the node's.
        let file = ChainFile::from_stored(&info, events, Some(key));
        let back = ChainFile::decode(&file.encode()).unwrap();
        assert_eq!(back.verify_signed_by(&key).unwrap().head.len, 3);
    }
    assert_eq!(signatures.len(), 1, "one signature for the whole commit");

    // A forged inclusion proof: another chain's path, a changed sibling, a shortened path.
    let (info, events) = reader.chain(&ids[2]).unwrap();
    let (other, _) = reader.chain(&ids[3]).unwrap();
    let file = ChainFile::from_stored(&info, events, Some(key));
    let Some(HeadProof::Commit { signature, path }) = info.signature.clone() else {
        unreachable!()
    };
    let mut sibling = path.clone();
    sibling[0].sibling.0[31] ^= 0x80;
    for proof in [
        other.signature.clone().unwrap(),
        HeadProof::Commit {
            signature,
            path: sibling,
        },
        HeadProof::Commit {
            signature,
            path: path[1..].to_vec(),
        },
    ] {
        let mut forged = file.clone();
        forged.signatures.as_mut().unwrap().heads[0].1 = proof;
        let err = forged.verify().unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    }
    // A flipped byte anywhere in the export fails reading or verification.
    let bytes = file.encode();
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x04;
        assert!(
            ChainFile::decode(&flipped).map_or(true, |f| f.verify_signed_by(&key).is_err()),
            "byte {at} of the export flipped and it still verified"
        );
    }
}

/// A data dir as the previous build (schema version 2, one row per event, a head signature
/// per chain) wrote it, with `n` events in chain `id`.
fn schema_2_data_dir(dir: &std::path::Path, id: &str, n: u32) -> (ChainHead, PublicKey) {
    let key = NodeKey::load_or_create(dir).unwrap();
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE chains (actor_id TEXT PRIMARY KEY, name TEXT NOT NULL, parent_id TEXT,
             created_ms INTEGER NOT NULL, len INTEGER NOT NULL, head BLOB NOT NULL,
             signature BLOB, manifest_dir TEXT);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
         CREATE TABLE events (actor_id TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
             data BLOB NOT NULL, PRIMARY KEY (actor_id, seq)) WITHOUT ROWID;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO meta VALUES ('node_public_key', ?1)",
        [&key.public().0[..]],
    )
    .unwrap();
    let mut head = ChainHead::default();
    for i in 0..n {
        let event = if i == 0 {
            spawn_event(id)
        } else {
            log_event(i)
        };
        let (index, stored) = head.append(&event);
        conn.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, index as i64, &stored.hash.0[..], stored.bytes],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO chains VALUES (?1, 'old', NULL, 1, ?2, ?3, ?4, NULL)",
        rusqlite::params![
            id,
            head.len as i64,
            &head.head.0[..],
            &key.sign_head(id, &head).0[..]
        ],
    )
    .unwrap();
    (head, key.public())
}

#[test]
fn an_old_data_dir_is_refused_by_readers_and_migrated_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    // More events than one segment holds.
    let (head, key) = schema_2_data_dir(dir.path(), "old-1", 2_500);
    let err = ChainReader::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("schema version 2") && err.contains("theater migrate --data-dir"),
        "{err}"
    );
    drop(ChainWriter::open(dir.path()).unwrap());
    let reader = ChainReader::open(dir.path()).unwrap();
    let (info, events) = reader.chain("old-1").unwrap();
    assert_eq!(info.head, head);
    assert_eq!(events.len(), 2_500);
    assert!(matches!(info.signature, Some(HeadProof::Head(_))));
    // The old head signature still proves the migrated chain.
    let file = ChainFile::from_stored(&info, events, reader.node_key().unwrap());
    assert_eq!(file.verify_signed_by(&key).unwrap().head, head);
    assert_eq!(segments(dir.path(), "old-1").len(), 3);
    // A ranged read across a segment boundary.
    let (len, range) = reader.events("old-1", 1_020, 10, u64::MAX).unwrap();
    assert_eq!(len, 2_500);
    assert_eq!(range, file.events[1_020..1_030]);
    assert_eq!(
        reader.hash_at("old-1", 2_048).unwrap(),
        Some(file.events[2_048].hash)
    );
    assert_eq!(reader.hash_at("old-1", 2_500).unwrap(), None);
    // And the chain grows on, now signed by commits.
    let writer = ChainWriter::open(dir.path()).unwrap();
    let mut grown = head;
    let (index, stored) = grown.append(&log_event(9_999));
    writer.append("old-1".into(), index, stored, None).unwrap();
    drop(writer);
    let (info, events) = reader.chain("old-1").unwrap();
    assert!(matches!(info.signature, Some(HeadProof::Commit { .. })));
    let file = ChainFile::from_stored(&info, events, Some(key));
    assert_eq!(file.verify_signed_by(&key).unwrap().head, grown);
}

#[test]
fn unknown_and_ambiguous_ids_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        write_chain(&writer, "ab1", 1);
        write_chain(&writer, "ab2", 1);
    }
    let reader = ChainReader::open(dir.path()).unwrap();
    assert!(matches!(
        reader.resolve("zz"),
        Err(StoreError::UnknownActor(_))
    ));
    assert!(matches!(
        reader.resolve("ab"),
        Err(StoreError::AmbiguousActor { count: 2, .. })
    ));
}

#[test]
fn missing_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = ChainReader::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("no chains in"), "{err}");
}

/// A chain written by the real writer, exported as a file with its signature.
fn signed_export(dir: &std::path::Path, id: &str, n: u32) -> ChainFile {
    let writer = ChainWriter::open(dir).unwrap();
    write_chain(&writer, id, n);
    writer.flush().unwrap();
    let reader = ChainReader::open(dir).unwrap();
    let (info, events) = reader.chain(id).unwrap();
    ChainFile::from_stored(&info, events, reader.node_key().unwrap())
}

#[test]
fn every_commit_signs_the_head_with_the_data_dirs_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = signed_export(dir.path(), "a1", 5);
    let node = NodeKey::load_or_create(dir.path()).unwrap().public();
    let verified = file.verify_signed_by(&node).unwrap();
    assert_eq!(verified.head.len, 5);
    // The signature moves with the head: after more events, the new head is signed.
    let writer = ChainWriter::open(dir.path()).unwrap();
    let mut head = verified.head;
    for i in 5..8 {
        let (index, stored) = head.append(&log_event(i));
        writer.append("a1".into(), index, stored, None).unwrap();
    }
    writer.flush().unwrap();
    let reader = ChainReader::open(dir.path()).unwrap();
    let (info, events) = reader.chain("a1").unwrap();
    let file = ChainFile::from_stored(&info, events, reader.node_key().unwrap());
    assert_eq!(file.verify_signed_by(&node).unwrap().head.len, 8);
    // And it survives the trip through the file format.
    let back = ChainFile::decode(&file.encode()).unwrap();
    assert_eq!(back.verify().unwrap().signer, Some(node));
}

#[test]
fn forged_signatures_swapped_keys_and_consistent_rewrites_fail() {
    let dir = tempfile::tempdir().unwrap();
    let file = signed_export(dir.path(), "a1", 6);
    let node = NodeKey::load_or_create(dir.path()).unwrap().public();
    let sigs = file.signatures.clone().unwrap();

    // A forged signature: one bit changed.
    let mut forged = file.clone();
    match &mut forged.signatures.as_mut().unwrap().heads[0].1 {
        HeadProof::Head(signature) | HeadProof::Commit { signature, .. } => signature.0[7] ^= 0x10,
    }
    let err = forged.verify().unwrap_err();
    assert!(
        matches!(err, VerifyError::BadSignature { len: 6, .. }),
        "{err}"
    );

    // A swapped public key: someone else's key in place of the node's.
    let stranger = NodeKey::from_seed([9; 32]);
    let mut swapped = file.clone();
    swapped.signatures.as_mut().unwrap().key = stranger.public();
    assert!(matches!(
        swapped.verify(),
        Err(VerifyError::BadSignature { .. })
    ));

    // A consistent rewrite without the key: change an event and recompute every hash. The
    // links are perfect, but the old signature does not cover the new head.
    let mut rewritten = file.clone();
    let mut head = ChainHead::default();
    let mut events = Vec::new();
    for (i, stored) in file.events.iter().enumerate() {
        let mut event = Event::decode(&stored.bytes).unwrap();
        if i == 3 {
            event = log_event(999);
        }
        events.push(head.append(&event).1);
    }
    rewritten.events = events;
    rewritten.head = head.head;
    assert!(
        verify_chain("a1", &rewritten.events, head).is_ok(),
        "the links alone pass"
    );
    let err = rewritten.verify().unwrap_err();
    assert!(
        err.to_string()
            .contains("rewritten or the signature forged"),
        "{err}"
    );

    // The same rewrite re-signed with the rewriter's own key verifies on its own terms, but
    // not as the node's chain.
    let mut resigned = rewritten.clone();
    resigned.signatures = Some(FileSignatures {
        key: stranger.public(),
        heads: vec![(head.len, HeadProof::Head(stranger.sign_head("a1", &head)))],
    });
    assert_eq!(resigned.verify().unwrap().signer, Some(stranger.public()));
    let err = resigned.verify_signed_by(&node).unwrap_err();
    assert!(matches!(err, VerifyError::WrongSigner { .. }), "{err}");

    // Stripping the signatures leaves a chain that proves nothing about its writer.
    let mut stripped = file.clone();
    stripped.signatures = None;
    assert_eq!(stripped.verify().unwrap().signer, None);
    assert!(matches!(
        stripped.verify_signed_by(&node),
        Err(VerifyError::Unsigned)
    ));

    // Dropping the last events leaves the tail's signature pointing past the end.
    let mut cut = file.clone();
    cut.events.truncate(4);
    cut.head = cut.events[3].hash;
    assert!(matches!(
        cut.verify(),
        Err(VerifyError::SignatureBeyondEnd { len: 6, events: 4 })
    ));
    // ... and an older signature alone leaves the tail unsigned.
    let mut old = file.clone();
    let four = ChainHead {
        len: 4,
        head: file.events[3].hash,
    };
    old.signatures = Some(FileSignatures {
        key: sigs.key,
        heads: vec![(
            4,
            HeadProof::Head(
                NodeKey::load_or_create(dir.path())
                    .unwrap()
                    .sign_head("a1", &four),
            ),
        )],
    });
    assert!(matches!(
        old.verify(),
        Err(VerifyError::TailUnsigned {
            signed: 4,
            events: 6
        })
    ));
}

#[test]
fn long_chains_checked_in_parallel_still_name_the_first_bad_event() {
    let mut head = ChainHead::default();
    let mut events: Vec<StoredEvent> = (0..10_000u32)
        .map(|i| {
            let event = if i == 0 {
                spawn_event("a1")
            } else {
                log_event(i)
            };
            head.append(&event).1
        })
        .collect();
    assert_eq!(verify_chain("a1", &events, head).unwrap(), head);
    // A damaged event late in the chain, and a damaged stored hash at the middle (where two
    // slices meet on two cores): the earlier one is reported.
    events[7_000].bytes[20] ^= 1;
    let err = verify_chain("a1", &events, head).unwrap_err();
    assert_eq!(err.event_index(), Some(7_000), "{err}");
    events[4_999].hash.0[0] ^= 1;
    let err = verify_chain("a1", &events, head).unwrap_err();
    assert_eq!(err.event_index(), Some(4_999), "{err}");
}

/// A log event whose params are `bytes` long.
fn big_event(bytes: usize) -> Event {
    Event::new(EventKind::HostCall(HostCall {
        message_id: None,
        interface: "theater:simple/runtime".into(),
        function: "log".into(),
        params: vec![7; bytes],
        result: HostResult::Value(vec![]),
    }))
}

#[test]
fn a_full_disk_fills_the_bounded_queue_then_appends_wait_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(ChainWriter::open(dir.path()).unwrap());
    let mut head = write_chain(&writer, "a", 1);
    writer.flush().unwrap();
    // No room left in the database: every commit fails from now on.
    let size = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
    writer.set_quota(Some(size)).unwrap();
    let id: Arc<str> = "a".into();
    let mb = 1 << 20;
    // The queue takes QUEUE_BYTES of events, then an append waits for room.
    let fits = (QUEUE_BYTES / (mb as u64 + 200)) as usize;
    for _ in 0..fits {
        let (index, stored) = head.append(&big_event(mb));
        writer.append(id.clone(), index, stored, None).unwrap();
    }
    let status = writer.status();
    assert!(status.failing.is_some_and(|f| f.contains("full")));
    assert!(status.queued_bytes > QUEUE_BYTES - 2 * mb as u64);
    let (index, stored) = head.append(&big_event(mb));
    let waiting = {
        let (writer, id) = (writer.clone(), id.clone());
        std::thread::spawn(move || writer.append(id, index, stored, None))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "a full queue makes the appender wait"
    );
    // Room again: the queue drains, the waiting append goes in, the chain is whole.
    writer.set_quota(None).unwrap();
    waiting.join().unwrap().unwrap();
    writer.flush().unwrap();
    assert_eq!(writer.status().failing, None);
    assert_eq!(verify_stored(dir.path(), "a").unwrap(), head);
}

#[test]
fn a_writer_dropped_on_a_disk_that_stays_full_gives_up_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    let mut head = write_chain(&writer, "a", 1);
    writer.flush().unwrap();
    let size = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
    writer.set_quota(Some(size)).unwrap();
    // More commands than one batch holds: the writer retries a full batch and reads no more,
    // so it must learn it is closing some other way than from its queue.
    let id: Arc<str> = "a".into();
    for i in 0..20_000 {
        let (index, stored) = head.append(&log_event(i));
        writer.append(id.clone(), index, stored, None).unwrap();
    }
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(writer);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the writer gives up and its drop returns");
    // What was committed before the disk filled is intact (the pages the database had left
    // hold a few small segments), and the rest was given up.
    let committed = verify_stored(dir.path(), "a").unwrap().len;
    assert!((1..20_001).contains(&committed), "{committed}");
}

#[test]
fn a_moved_or_miscounted_segment_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    two_commit_chain(dir.path());
    assert_eq!(verify_stored(dir.path(), "a").unwrap().len, 10);
    // The bytes are all there, but a ranged read would put them at the wrong indexes: each
    // of these must be named, not read as a whole chain.
    for sql in [
        "UPDATE segments SET first_seq = 5 WHERE first_seq = 7",
        "UPDATE segments SET first_seq = 9 WHERE first_seq = 7",
        "UPDATE segments SET first_seq = 1 WHERE first_seq = 0",
        "UPDATE segments SET count = 6 WHERE first_seq = 0",
        "UPDATE segments SET first_seq = -7 WHERE first_seq = 7",
    ] {
        let copy = tempfile::tempdir().unwrap();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, copy.path().join(file.file_name().unwrap())).unwrap();
        }
        tamper(copy.path(), sql);
        assert!(
            verify_stored(copy.path(), "a").is_err(),
            "{sql} still verified"
        );
    }
}

#[test]
fn appending_after_the_writer_is_gone_is_an_error_not_a_silent_loss() {
    use std::future::Future;
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    let appender = writer.appender("a".into(), None);
    drop(writer);
    let mut head = ChainHead::default();
    let (index, stored) = head.append(&spawn_event("a"));
    let append = std::pin::pin!(appender.append(index, &stored.hash, &stored.bytes));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match append.poll(&mut context) {
        std::task::Poll::Ready(Err(e)) => assert!(e.to_string().contains("exited"), "{e}"),
        other => panic!("expected an error at once, got {other:?}"),
    }
}

/// A data dir whose content store writes through its chain writer, as the runtime's does.
fn store_through_writer() -> (
    tempfile::TempDir,
    Arc<ChainWriter>,
    theater_store::ContentStore,
) {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(ChainWriter::open(dir.path()).unwrap());
    let store = theater_store::ContentStore::open(dir.path())
        .unwrap()
        .writing_through(writer.clone());
    (dir, writer, store)
}

/// The runtime calls `ContentStore::put` on its async workers. With the chain writer as the
/// store's writer, a put never waits for the database's write lock (SQLite's busy handler would
/// sleep the worker for milliseconds at a time, or fail after its timeout), and what it put is
/// readable at once and committed by the next flush.
#[test]
fn a_blob_put_through_the_chain_writer_never_waits_for_the_database_lock() {
    let (dir, writer, store) = store_through_writer();
    // Another connection holds the write lock, as the writer's own transactions do.
    let other = rusqlite::Connection::open(db_path(dir.path())).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let hash = store
        .put(b"initial state")
        .expect("queued for the writer, not written under the lock");
    assert_eq!(hash, Hash::of(b"initial state").0);
    assert_eq!(store.get(&hash).unwrap().unwrap(), b"initial state");
    assert!(store.contains(&hash).unwrap());
    other.execute_batch("ROLLBACK").unwrap();

    // A chain whose first event names the blob: one flush commits both.
    write_chain(&writer, "a", 2);
    writer.flush().unwrap();
    let fresh = theater_store::ContentStore::open(dir.path()).unwrap();
    assert_eq!(fresh.get(&hash).unwrap().unwrap(), b"initial state");
    assert_eq!(verify_stored(dir.path(), "a").unwrap().len, 2);
}

/// Without a writer the store writes itself; putting the same bytes twice is one blob either
/// way, and a blob put through the writer and then put directly is not duplicated.
#[test]
fn blobs_put_either_way_are_one_blob() {
    let (dir, writer, through) = store_through_writer();
    let a = through.put(b"x").unwrap();
    assert_eq!(through.put(b"x").unwrap(), a);
    writer.flush().unwrap();
    let direct = theater_store::ContentStore::open(dir.path()).unwrap();
    assert_eq!(direct.put(b"x").unwrap(), a);
    let rows: i64 = rusqlite::Connection::open(db_path(dir.path()))
        .unwrap()
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

/// A put never waits for the writer's queue either: the runtime puts on its async workers, and
/// a worker blocked there could stall the tasks that would free the queue. Here the writer
/// cannot commit (another connection holds the lock) while more than the whole queue's worth
/// of blobs is put.
#[test]
fn puts_past_a_full_writer_queue_return_and_commit_later() {
    let (dir, writer, store) = store_through_writer();
    let other = rusqlite::Connection::open(db_path(dir.path())).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 30 << 20]).collect();
    let hashes: Vec<_> = blobs.iter().map(|b| store.put(b).unwrap()).collect();
    other.execute_batch("ROLLBACK").unwrap();
    writer.flush().unwrap();
    let fresh = theater_store::ContentStore::open(dir.path()).unwrap();
    for (hash, blob) in hashes.iter().zip(&blobs) {
        assert_eq!(fresh.get(hash).unwrap().as_ref(), Some(blob));
    }
}

/// A blob in a batch the writer gives up on is not committed. The store must not go on
/// believing it stored it: the next put of the same bytes queues them again, so that later
/// events never name a blob that is not there.
#[test]
fn a_blob_the_writer_gave_up_on_is_put_again() {
    let (dir, writer, store) = store_through_writer();
    // The table disappears after the put looked for the blob and before the writer commits
    // it: an error no retry can cure, so the writer gives the batch up.
    let other = rusqlite::Connection::open(db_path(dir.path())).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; DROP TABLE blobs;")
        .unwrap();
    let hash = store.put(b"state").unwrap();
    other.execute_batch("COMMIT").unwrap();
    // The flush fails if it shares the failing batch; one queued while the writer backs off
    // lands in a later batch and succeeds. Either way the writer gives the blob up.
    let _ = writer.flush();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while theater_store::BlobWriter::losses(&*writer) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never gave the blob's batch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    theater_store::create_tables(&other).unwrap();

    assert_eq!(store.put(b"state").unwrap(), hash);
    writer.flush().unwrap();
    let fresh = theater_store::ContentStore::open(dir.path()).unwrap();
    assert_eq!(fresh.get(&hash).unwrap().unwrap(), b"state");
}

/// A change run through the writer commits with its batch; a refused one is rolled back alone,
/// and its refusal reaches its caller.
#[test]
fn transactions_commit_through_the_writer_and_refusals_roll_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ChainWriter::open(dir.path()).unwrap();
    let run = |sql: &'static str, refuse: bool| {
        let (tx, rx) = std::sync::mpsc::channel();
        let op: TransactOp = Box::new(move |conn| {
            conn.execute_batch(sql)?;
            Ok(if refuse { Err("no".into()) } else { Ok(()) })
        });
        writer
            .transact(op, 0, Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        rx.recv().unwrap()
    };
    assert_eq!(run("CREATE TABLE t (x INTEGER)", false), Ok(()));
    assert_eq!(run("INSERT INTO t VALUES (1)", false), Ok(()));
    assert_eq!(run("INSERT INTO t VALUES (2)", true), Err("no".to_string()));
    // A database error that retrying cannot mend refuses that change alone, saying why.
    let failed = run("INSERT INTO nosuch VALUES (1)", false).unwrap_err();
    assert!(failed.contains("nosuch"), "{failed}");
    drop(writer);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let rows: Vec<i64> = conn
        .prepare("SELECT x FROM t")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![1]);
}
