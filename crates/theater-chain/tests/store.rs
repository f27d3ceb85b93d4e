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

#[test]
fn changed_stored_event_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        write_chain(&writer, "a", 10);
    }
    // Flip the last byte of event 4's data.
    tamper(
        dir.path(),
        "UPDATE events SET data = substr(data, 1, length(data) - 1) || x'ff' WHERE seq = 4",
    );
    let err = verify_stored(dir.path(), "a").unwrap_err();
    assert_eq!(err.event_index(), Some(4), "{err}");
}

#[test]
fn truncated_stored_chain_fails() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = ChainWriter::open(dir.path()).unwrap();
        write_chain(&writer, "a", 10);
    }
    tamper(dir.path(), "DELETE FROM events WHERE seq >= 7");
    let err = verify_stored(dir.path(), "a").unwrap_err();
    assert!(matches!(err, VerifyError::HeadMismatch { .. }), "{err}");
    assert_eq!(err.event_index(), Some(7), "{err}");
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
