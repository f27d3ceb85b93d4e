//! I/O: what the store, filesystem and process handlers cost an actor, against doing the same
//! directly, as a program without Theater would.
//!
//! - `store-put-get-1k`: store 1 KiB of fresh content, then get it back (one op = both).
//!   Direct: SQLite (WAL, `synchronous = NORMAL`, as Theater's database), one transaction per
//!   store, the same two tables and hashing.
//! - `file-read-4k`: read a 4 KiB file. Direct: `std::fs::read`.
//! - `process-spawn-exit`: start `true` and wait for its exit (reported to the actor as a
//!   `handle-exit` call). Direct: `std::process::Command::status`.
//!
//! Modes: `recorded` (chains persisted, batched), `unrecorded` (no chain; the store still
//! writes to the data dir's database), `direct`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{Runtime, RuntimeConfig};

use crate::{Components, Sizes};

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    let counts = Counts {
        store: sizes.scaled(10_000),
        read: sizes.scaled(50_000),
        spawn: sizes.scaled(1_000),
    };
    let files = tempfile::tempdir().expect("a temporary dir");
    std::fs::write(files.path().join("data.4k"), vec![b'x'; 4096]).expect("writing data.4k");
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let mode = mode.to_owned();
    if mode == "direct" {
        direct(&counts, files.path(), data_dir.path());
        return;
    }
    let config = RuntimeConfig {
        handlers: theater_handlers::builtin(),
        data_dir: Some(data_dir.path().to_owned()),
        record: mode == "recorded",
        durability: theater::chain::Durability::Batched,
        on_log: Arc::new(|line| eprintln!("{}: {}", line.actor_name, line.message)),
        ..Default::default()
    };
    let manifest = crate::manifest(
        "io-bench",
        &components.io_bench,
        &format!(
            "[[handler]]\ntype = \"message-server\"\n\
             [[handler]]\ntype = \"store\"\nstores = [\"bench\"]\nmax_bytes = {}\n\
             [[handler]]\ntype = \"filesystem\"\nroot = {:?}\nread_only = true\n\
             [[handler]]\ntype = \"process\"\nprograms = [\"true\"]\nmax_processes = 1\n",
            (counts.store + 1_000) * 1024,
            files.path().display().to_string(),
        ),
    );
    crate::on_worker(Some(sizes.workers), async move {
        let runtime = Runtime::new(config).unwrap();
        let actor = runtime.spawn(manifest).await.unwrap();
        let ask = |request: String| {
            let actor = actor.clone();
            async move {
                let answer = actor
                    .request_within(request.clone().into_bytes(), Duration::from_secs(3600))
                    .await
                    .unwrap_or_else(|e| panic!("{request}: {e}"));
                assert_eq!(answer, b"ok", "{request}");
            }
        };
        let timed = |verb: &'static str, n: u64| {
            async move {
                // Warm up: the code paths, the database's pages.
                ask(format!("{verb} {}", (n / 20).max(1))).await;
                let start = Instant::now();
                ask(format!("{verb} {n}")).await;
                start.elapsed().as_secs_f64()
            }
        };
        let store = timed("store", counts.store).await;
        let read = timed("read", counts.read).await;
        let spawn = timed("spawn", counts.spawn).await;
        report(&mode, &counts, store, read, spawn);
        runtime.shutdown().await.unwrap();
    });
}

struct Counts {
    store: u64,
    read: u64,
    spawn: u64,
}

fn report(mode: &str, counts: &Counts, store: f64, read: f64, spawn: f64) {
    println!(
        "{{\"bench\":\"store-put-get-1k\",\"mode\":\"{mode}\",\"ops\":{},\"ops_per_second\":{:.0},\"us_per_op\":{:.2}}}",
        counts.store,
        counts.store as f64 / store,
        store * 1e6 / counts.store as f64,
    );
    println!(
        "{{\"bench\":\"file-read-4k\",\"mode\":\"{mode}\",\"ops\":{},\"ops_per_second\":{:.0},\"us_per_op\":{:.2}}}",
        counts.read,
        counts.read as f64 / read,
        read * 1e6 / counts.read as f64,
    );
    println!(
        "{{\"bench\":\"process-spawn-exit\",\"mode\":\"{mode}\",\"processes\":{},\"round_trip_us\":{:.1}}}",
        counts.spawn,
        spawn * 1e6 / counts.spawn as f64,
    );
}

/// The same work without Theater.
fn direct(counts: &Counts, files: &Path, data_dir: &Path) {
    let conn = rusqlite::Connection::open(data_dir.join("direct.db")).expect("opening SQLite");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE blobs (hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE content (key TEXT NOT NULL, hash BLOB NOT NULL, size INTEGER NOT NULL,
                               PRIMARY KEY (key, hash)) WITHOUT ROWID;",
    )
    .expect("creating the tables");
    let store_op = |i: u64, value: &mut Vec<u8>| {
        value[..8].copy_from_slice(&i.to_le_bytes());
        let hash = blake3::hash(value);
        let tx = conn.unchecked_transaction().unwrap();
        tx.prepare_cached("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?1, ?2)")
            .unwrap()
            .execute(rusqlite::params![&hash.as_bytes()[..], &value[..]])
            .unwrap();
        tx.prepare_cached("INSERT INTO content (key, hash, size) VALUES ('bench', ?1, ?2)")
            .unwrap()
            .execute(rusqlite::params![&hash.as_bytes()[..], value.len() as i64])
            .unwrap();
        tx.commit().unwrap();
        let back: Vec<u8> = conn
            .prepare_cached(
                "SELECT b.data FROM content c JOIN blobs b ON b.hash = c.hash
                 WHERE c.key = 'bench' AND c.hash = ?1",
            )
            .unwrap()
            .query_row([&hash.as_bytes()[..]], |r| r.get(0))
            .unwrap();
        assert_eq!(&back, value);
    };
    let mut value = vec![b'v'; 1024];
    let mut i = 0;
    let timed = |n: u64, op: &mut dyn FnMut()| {
        for _ in 0..(n / 20).max(1) {
            op();
        }
        let start = Instant::now();
        for _ in 0..n {
            op();
        }
        start.elapsed().as_secs_f64()
    };
    let store = timed(counts.store, &mut || {
        i += 1;
        store_op(i, &mut value);
    });
    let path = files.join("data.4k");
    let read = timed(counts.read, &mut || {
        assert_eq!(std::fs::read(&path).unwrap().len(), 4096);
    });
    let spawn = timed(counts.spawn, &mut || {
        let status = std::process::Command::new("true").status().unwrap();
        assert!(status.success());
    });
    report("direct", counts, store, read, spawn);
}
