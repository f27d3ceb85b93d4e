//! A full disk: commits fail mid-run, the failure is reported, recording actors wait instead
//! of losing events, and when room is made recording goes on and every chain verifies.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, ask, chain_of, harness_with, ok, puppet};
use theater::chain::{ChainReader, EventKind};

/// Waits until `done` holds, for at most 20 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drives a batched and an every-event actor through a disk that fills up; `make_room` is
/// called once commits fail. Checks that nothing recorded is lost or damaged.
async fn fill_then_make_room(h: &Harness, fill: impl FnOnce(), make_room: impl FnOnce()) {
    let batched = puppet(h, "batched.toml", "").await;
    let durable = puppet(h, "durable.toml", "[chain]\ndurability = \"every-event\"\n").await;
    ok(&durable, "note before").await;
    h.runtime.flush().await.unwrap();
    fill();

    // 2 MiB of events, far past the room left.
    let chunk = "z".repeat(16 * 1024);
    let calls = 128;
    let writing = {
        let batched = batched.clone();
        tokio::spawn(async move {
            for _ in 0..calls {
                ask(&batched, &format!("echo {chunk}")).await.unwrap();
            }
        })
    };
    until("a failed commit", || {
        h.runtime.writer_status().unwrap().failing.is_some()
    })
    .await;
    let status = h.runtime.writer_status().unwrap();
    let failing = status.failing.unwrap();
    assert!(failing.contains("full"), "{failing}");
    // An every-event call needs its commit: it waits, it does not fail.
    let waiting = {
        let durable = durable.clone();
        tokio::spawn(async move { ok(&durable, "note during").await })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "an every-event call waits for the disk"
    );

    make_room();

    tokio::time::timeout(Duration::from_secs(30), writing)
        .await
        .expect("recording goes on once there is room")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the every-event call goes on once there is room")
        .unwrap();
    h.runtime.flush().await.unwrap();
    let status = h.runtime.writer_status().unwrap();
    assert_eq!(status.failing, None);
    assert!(status.failed_commits > 0);

    // Every event of every chain is there, linked and signed.
    let reader = ChainReader::open(h.dir.path()).unwrap();
    for info in reader.chains().unwrap() {
        chain_of(h.dir.path(), &info.actor_id);
    }
    let echoes = chain_of(h.dir.path(), batched.id())
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::CallEnd(_)))
        .count();
    assert_eq!(echoes, calls + 1, "init and every echo");
    assert_eq!(ask(&durable, "state").await.unwrap(), "before,during,");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_fills_up_mid_run_loses_nothing_and_recovers() {
    let h = harness_with(|_| {});
    let db = h.dir.path().join("theater.db");
    fill_then_make_room(
        &h,
        || {
            // SQLite's `max_page_count`: the database cannot grow past about its size now.
            let size = std::fs::metadata(&db).unwrap().len();
            h.runtime.set_chain_quota(Some(size + 64 * 1024)).unwrap();
        },
        || h.runtime.set_chain_quota(None).unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_full_filesystem_loses_nothing_and_recovers() {
    // A small tmpfs, where this machine lets the test mount one (root in a container).
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (the max_page_count test covers this)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount.path().to_owned());
    let data = mount.path().join("data");
    let h = Harness::on(&data);
    let filler = mount.path().join("filler");
    fill_then_make_room(
        &h,
        || {
            // Everything but ~200 KiB of the filesystem.
            let free = rustix::fs::statvfs(mount.path()).unwrap();
            let left = free.f_bavail * free.f_frsize;
            let size = left.saturating_sub(200 * 1024) as usize;
            std::fs::write(&filler, vec![0u8; size]).unwrap();
        },
        || std::fs::remove_file(&filler).unwrap(),
    )
    .await;
}
