//! Chain throughput: appending through the SQLite writer, and verifying an exported file, with
//! BLAKE3's own speed on the same bytes for comparison. Prints one JSON line per measurement.
//! `THEATER_BENCH_EVENTS` sets the number of events (default 200000).

use std::sync::Arc;
use std::time::Instant;

use theater_chain::*;

fn log_event(i: u64) -> Event {
    Event {
        timestamp_ms: 1_700_000_000_000 + i,
        kind: EventKind::HostCall(HostCall {
            interface: "theater:simple/runtime".into(),
            function: "log".into(),
            params: format!("message number {i} from the benchmark").into_bytes(),
            result: HostResult::Value(Vec::new()),
            message_id: None,
        }),
    }
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
    let dir = tempfile::tempdir().unwrap();

    // Append through the writer (batched), then wait for the last commit.
    let writer = ChainWriter::open(dir.path()).unwrap();
    let id: Arc<str> = "bench-actor".into();
    let mut head = ChainHead::default();
    writer
        .register(ChainInfo {
            actor_id: id.to_string(),
            name: "bench".into(),
            parent: None,
            created_ms: 0,
            head,
            signature: None,
            manifest_dir: None,
        })
        .unwrap();
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
    let start = Instant::now();
    let mut link = Hash::GENESIS;
    for event in &decoded.events {
        link = Hash::link(&link, &event.bytes);
    }
    let per_event = start.elapsed();
    std::hint::black_box(link);
    let mb = file.len() as f64 / 1e6;
    println!(
        "{{\"bench\":\"chain-verify\",\"events\":{n},\"file_bytes\":{},\"threads\":{},\"verify_mb_per_sec\":{:.0},\"verify_events_per_sec\":{:.0},\"blake3_whole_file_mb_per_sec\":{:.0},\"blake3_per_event_one_thread_mb_per_sec\":{:.0},\"of_which_file_read_mb_per_sec\":{:.0},\"of_which_check_mb_per_sec\":{:.0}}}",
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
