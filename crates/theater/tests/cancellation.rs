//! A call killed at any point leaves the runtime consistent, stops and shutdowns end within
//! their bounds, waits on a restart take part in deadlock checks, and a wake that finds the
//! instance pool full makes room instead of losing the message.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, ask, chain_of, harness_with, ok, puppet, puppet_manifest};
use theater::chain::{ChainReader, EventKind};
use theater::{Runtime, RuntimeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_spawn_waits_on_a_long_init_ends_within_its_bound() {
    let h = harness_with(|_| {});
    let parent = puppet(
        &h,
        "parent.toml",
        "[limits]\nmax_call_cpu_ms = 60000\n[supervision]\nshutdown_timeout_ms = 300\n",
    )
    .await;
    puppet_manifest(h.dir.path(), "child.toml", "");
    // The child's `init` loops for up to a minute; the parent's `spawn` waits on it.
    parent
        .send(b"spawn-with init:loop|child.toml".to_vec())
        .await
        .unwrap();
    let reader = ChainReader::open(h.dir.path()).unwrap();
    let started = Instant::now();
    while reader.chains().unwrap().len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "no child");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Harness { runtime, dir, .. } = h;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), runtime.shutdown())
        .await
        .expect("shutdown within the root's 5 s timeout, the child's 0.3 s and the kill grace")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Both chains are ended: the child's `init` was stopped, not abandoned half-way.
    for info in ChainReader::open(dir.path()).unwrap().chains().unwrap() {
        let chain = chain_of(dir.path(), &info.actor_id);
        assert!(
            matches!(chain.last().unwrap().kind, EventKind::Shutdown { .. }),
            "{} ends with {:?}",
            info.name,
            chain.last().unwrap().kind.type_name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_init_that_requests_its_parent_during_restart_child_is_refused_at_once() {
    let h = harness_with(|_| {});
    let parent = puppet(&h, "parent.toml", "").await;
    puppet_manifest(h.dir.path(), "child.toml", "");
    let init = format!("init:request {} echo hi", parent.id());
    let child = ok(&parent, &format!("spawn-with {init}|child.toml")).await;
    let started = Instant::now();
    assert_eq!(ok(&parent, &format!("restart {child}")).await, "");
    // Refused as a cycle, not after the child's 30 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let logs = h.logs.lock().unwrap().clone();
    let refused = logs.iter().filter(|l| l.contains("would deadlock")).count();
    assert_eq!(refused, 2, "at spawn and at restart: {logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_with_the_pool_full_makes_room_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = logs.clone();
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        // Idle actors are queued for hibernation, but none is due within the test.
        hibernate_after: Some(Duration::from_secs(3600)),
        on_log: Arc::new(move |l| sink.lock().unwrap().push(l.message.to_owned())),
        ..Default::default()
    };
    config.engine.max_instances = 2;
    let runtime = Runtime::new(config).unwrap();
    // A snapshot after every call drops the instance: this actor hibernates after each.
    let sleeper = runtime
        .spawn(puppet_manifest(
            dir.path(),
            "sleeper.toml",
            "[chain]\nsnapshot_every = 1\n",
        ))
        .await
        .unwrap();
    ok(&sleeper, "note a").await;
    // Two live, idle actors take both slots.
    let first = runtime
        .spawn(puppet_manifest(dir.path(), "first.toml", ""))
        .await
        .unwrap();
    // The sleeper's snapshot (which frees its slot) follows its answer: retry until it is done.
    let second = loop {
        match runtime
            .spawn(puppet_manifest(dir.path(), "second.toml", ""))
            .await
        {
            Ok(second) => break second,
            Err(e) if e.to_string().contains("no free instance slot") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // The sleeper must wake to take this: the least recently used idle actor gives way.
    sleeper.send(b"note b".to_vec()).await.unwrap();
    // Handled in mailbox order: once this answers, the send has been handled too.
    let state = ask(&sleeper, "state").await.unwrap();
    assert_eq!(state, "a,b,", "{:?}", logs.lock().unwrap());
    assert_eq!(ask(&first, "echo still here").await.unwrap(), "still here");
    assert_eq!(ask(&second, "echo me too").await.unwrap(), "me too");
    assert!(
        !logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("could not handle")),
        "{:?}",
        logs.lock().unwrap()
    );
    runtime.shutdown().await.unwrap();
}
