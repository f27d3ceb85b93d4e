//! Chain throughput: appending through the SQLite writer, `every-event` durability with many
//! chains waiting for their fsyncs at once (group commit), and verifying an exported file
//! against the floor of any link check: one BLAKE3 per 128-byte event, on every core. Prints one
//! JSON line per measurement. `THEATER_BENCH_EVENTS` sets the number of events (default
//! 200000); the data dir is a temp dir on the disk that holds `TMPDIR`.

use std::sync::Arc;
use std::time::Instant;

use theater_chain::*;

/// The size of every benchmark event but the spawn.
const EVENT_BYTES: usize = 128;

fn log_event(i: u64) -> Event {
    let mut params = format!("message number {i} from the benchmark").into_bytes();
    // Padded so that the event encodes to EVENT_BYTES: the rest of a log event is 53 bytes.
    params.resize(EVENT_BYTES - 53, b'.');
    let event = Event {
        timestamp_ms: 1_700_000_000_000 + i,
        kind: EventKind::HostCall(HostCall {
            interface: "theater:simple/runtime".into(),
            function: "log".into(),
            params,
            result: HostResult::Value(Vec::new()),
            message_id: None,
        }),
    };
    if i == 1 {
        assert_eq!(event.encode().len(), EVENT_BYTES);
    }
    event
}

fn register(writer: &ChainWriter, id: &str) {
    writer
        .register(ChainInfo {
            actor_id: id.to_string(),
            name: "bench".into(),
            parent: None,
            created_ms: 0,
            head: ChainHead::default(),
            signature: None,
            manifest_dir: None,
        })
        .unwrap();
}

/// `chains` threads, each appending `per_chain` events to a chain of its own with
/// `every-event` durability: each waits for its event's fsync'd commit before the next, so
/// every commit carries what all the waiting chains queued.
fn every_event(chains: usize, per_chain: u64) {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(ChainWriter::open(dir.path()).unwrap());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..chains {
            let writer = writer.clone();
            scope.spawn(move || {
                let id: Arc<str> = format!("chain-{c}").into();
                register(&writer, &id);
                let mut head = ChainHead::default();
                for i in 0..per_chain {
                    let event = if i == 0 {
                        spawn_event(&id)
                    } else {
                        log_event(i)
                    };
                    let (index, stored) = head.append(&event);
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    let ack: Ack = Box::new(move |r| {
                        let _ = tx.send(r);
                    });
                    writer.append(id.clone(), index, stored, Some(ack)).unwrap();
                    rx.recv().unwrap().unwrap();
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let events = chains as u64 * per_chain;
    println!(
        "{{\"bench\":\"every-event-group-commit\",\"mode\":\"recorded\",\"chains\":{chains},\"events\":{events},\"seconds\":{:.3},\"events_per_second\":{:.0}}}",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

fn spawn_event(id: &str) -> Event {
    Event::new(EventKind::Spawn(Spawn {
        actor_id: id.into(),
        name: "bench".into(),
        component: Hash::of(b"bench"),
        manifest: "name = \"bench\"".into(),
        parent: None,
        initial_state: None,
    }))
}

fn main() {
    let n: u64 = std::env::var("THEATER_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    every_event(100, (n / 1_000).max(20));
    let dir = tempfile::tempdir().unwrap();

    // Append through the writer (batched), then wait for the last commit.
    let writer = ChainWriter::open(dir.path()).unwrap();
    let id: Arc<str> = "bench-actor".into();
    let mut head = ChainHead::default();
    register(&writer, &id);
    let start = Instant::now();
    let (index, stored) = head.append(&spawn_event(&id));
    writer.append(id.clone(), index, stored, None).unwrap();
    for i in 1..n {
        let (index, stored) = head.append(&log_event(i));
        writer.append(id.clone(), index, stored, None).unwrap();
    }
    let appended = start.elapsed();
    writer.flush().unwrap();
    let committed = start.elapsed();
    println!(
        "{{\"bench\":\"chain-append\",\"events\":{n},\"durability\":\"batched\",\"appended_per_sec\":{:.0},\"committed_per_sec\":{:.0}}}",
        n as f64 / appended.as_secs_f64(),
        n as f64 / committed.as_secs_f64()
    );
    drop(writer);

    // Verify an exported file: strict decode, re-link, compare.
    let reader = ChainReader::open(dir.path()).unwrap();
    let (info, events) = reader.chain(&id).unwrap();
    let file = ChainFile::from_stored(&info, events, reader.node_key().unwrap()).encode();
    let start = Instant::now();
    let verified = ChainFile::decode(&file).unwrap().verify().unwrap();
    let verify = start.elapsed();
    assert_eq!(verified.head.len, n);
    assert!(verified.signer.is_some(), "the writer signed the head");
    let start = Instant::now();
    let digest = blake3::hash(&file);
    let raw = start.elapsed();
    std::hint::black_box(digest);
    // The floor for any link check: one BLAKE3 per event over (previous hash, event bytes).
    let start = Instant::now();
    let decoded = ChainFile::decode(&file).unwrap();
    let read = start.elapsed();
    let start = Instant::now();
    decoded.verify().unwrap();
    let check = start.elapsed();
    // The floor: each event's link hashed once, on every core, as `verify_chain` splits it.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let slice = decoded.events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for part in decoded.events.chunks(slice) {
            scope.spawn(move || {
                let mut link = Hash::GENESIS;
                for event in part {
                    link = Hash::link(&link, &event.bytes);
                }
                std::hint::black_box(link);
            });
        }
    });
    let per_event = start.elapsed();
    let mb = file.len() as f64 / 1e6;
    println!(
        "{{\"bench\":\"verification\",\"mode\":\"recorded\",\"events\":{n},\"event_bytes\":{EVENT_BYTES},\"threads\":{threads},\"events_per_second\":{:.0},\"blake3_floor_events_per_second\":{:.0},\"ratio_to_floor\":{:.2}}}",
        n as f64 / verify.as_secs_f64(),
        n as f64 / per_event.as_secs_f64(),
        verify.as_secs_f64() / per_event.as_secs_f64(),
    );
    println!(
        "{{\"bench\":\"verification\",\"mode\":\"floor\",\"events\":{n},\"event_bytes\":{EVENT_BYTES},\"threads\":{threads},\"events_per_second\":{:.0}}}",
        n as f64 / per_event.as_secs_f64(),
    );
    println!(
        "{{\"bench\":\"chain-verify\",\"events\":{n},\"file_bytes\":{},\"threads\":{},\"verify_mb_per_sec\":{:.0},\"verify_events_per_sec\":{:.0},\"blake3_whole_file_mb_per_sec\":{:.0},\"blake3_per_event_all_threads_mb_per_sec\":{:.0},\"of_which_file_read_mb_per_sec\":{:.0},\"of_which_check_mb_per_sec\":{:.0}}}",
        file.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        mb / verify.as_secs_f64(),
        n as f64 / verify.as_secs_f64(),
        mb / raw.as_secs_f64(),
        mb / per_event.as_secs_f64(),
        mb / read.as_secs_f64(),
        mb / check.as_secs_f64()
    );
}
