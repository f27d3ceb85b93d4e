//! Spawning real components: init, the chain it leaves, and every way a spawn can fail.

mod common;

use std::sync::Arc;

use common::{Harness, chain_of, harness};
use theater::chain::{ChainReader, Event, EventKind, HostResult, ShutdownReason, TrapKind};
use theater::{ActorExit, Manifest, ManifestOrigin, Runtime, RuntimeConfig, SpawnError};

fn manifest(component: &str, extra: &str) -> Manifest {
    let text = format!("name = \"test\"\nversion = \"0.1.0\"\ncomponent = {component:?}\n{extra}");
    common::parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap()
}

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.type_name()).collect()
}

async fn spawn_probe(
    h: &Harness,
    script: &str,
    extra: &str,
) -> Result<theater::ActorHandle, SpawnError> {
    h.runtime
        .spawn_with(
            manifest(test_actors::PROBE, extra),
            Some(script.as_bytes().to_vec()),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_runs_init_and_its_chain_records_every_crossing() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "tests").unwrap();
    let m = common::parse(
        &format!(
            "name = \"hello\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = \"greeting.txt\"\n",
            test_actors::HELLO
        ),
        ManifestOrigin::Inline { base_dir: dir.path().to_owned() },
    )
    .unwrap();
    let actor = h.runtime.spawn(m).await.unwrap();
    h.runtime.quiescent().await;
    h.runtime.flush().await.unwrap();
    let logs = h.logs.lock().unwrap().clone();
    assert_eq!(logs[0], format!("Hello, tests! I am actor {}.", actor.id()));
    assert_eq!(
        logs[1],
        "My chain already holds 4 events; the last is a host-call."
    );

    let events = chain_of(h.dir.path(), actor.id());
    assert_eq!(
        types(&events),
        [
            "spawn",
            "instance",
            "call-start",
            "host-call",
            "host-call",
            "host-call",
            "call-end"
        ]
    );
    let EventKind::Spawn(spawn) = &events[0].kind else {
        panic!()
    };
    assert_eq!(spawn.actor_id, actor.id());
    assert_eq!(
        spawn.initial_state,
        Some(theater::chain::Hash::of(b"tests"))
    );
    // The manifest is recorded by hash; its text is in the content store.
    let manifest = spawn.manifest.hash().expect("recorded by hash");
    let text = common::blob(h.dir.path(), &manifest);
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("init_state = \"greeting.txt\"")
    );
    // get-chain is recorded as a reference to the 4 events before it, not as a copy.
    let EventKind::HostCall(get_chain) = &events[4].kind else {
        panic!()
    };
    assert_eq!(get_chain.function, "get-chain");
    let HostResult::ChainRef { len: 4, .. } = get_chain.result else {
        panic!("{:?}", get_chain.result)
    };
    let EventKind::CallEnd(end) = &events[6].kind else {
        panic!()
    };
    assert_eq!(end.state, Some(theater::chain::Hash::of(b"greeted tests")));

    h.runtime.shutdown().await.unwrap();
    let events = chain_of(h.dir.path(), actor.id());
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Shutdown {
            reason: ShutdownReason::RuntimeExit,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_bytes_are_kept_in_the_content_store() {
    let h = harness();
    let actor = spawn_probe(&h, "", "").await.unwrap();
    h.runtime.flush().await.unwrap();
    let EventKind::Spawn(spawn) = &chain_of(h.dir.path(), actor.id())[0].kind else {
        panic!()
    };
    let bytes = common::blob(h.dir.path(), &spawn.component);
    assert_eq!(bytes, std::fs::read(test_actors::PROBE).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_fails_spawn_and_is_recorded() {
    let h = harness();
    let err = spawn_probe(&h, "log:x;err:bad config", "")
        .await
        .unwrap_err();
    let SpawnError::InitFailed { id, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(message, "bad config");
    assert!(
        err.to_string()
            .contains("init returned an error: bad config"),
        "{err}"
    );
    assert_eq!(h.runtime.actor_count(), 0);
    h.runtime.flush().await.unwrap();
    let events = chain_of(h.dir.path(), id);
    let EventKind::CallEnd(end) = &events[events.len() - 2].kind else {
        panic!()
    };
    assert_eq!(end.outcome, Err("bad config".to_string()));
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Shutdown {
            reason: ShutdownReason::Failed,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_trap_is_reported_with_backtrace_and_runtime_keeps_working() {
    let h = harness();
    let err = spawn_probe(&h, "panic:boom", "").await.unwrap_err();
    let SpawnError::InitTrapped {
        id,
        kind,
        backtrace,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*kind, TrapKind::Unreachable);
    assert!(
        backtrace.as_deref().unwrap().contains("actor#init"),
        "{backtrace:?}"
    );
    assert!(!err.to_string().contains('\n'), "{err}");
    h.runtime.flush().await.unwrap();
    let events = chain_of(h.dir.path(), id);
    assert!(matches!(
        events[events.len() - 2].kind,
        EventKind::Trap {
            kind: TrapKind::Unreachable,
            ..
        }
    ));
    // The runtime is unharmed: the next spawn works.
    spawn_probe(&h, "log:still here", "").await.unwrap();
    assert!(h.logs.lock().unwrap().contains(&"still here".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_traps_at_the_manifest_limit() {
    let h = harness();
    let err = spawn_probe(&h, "alloc:100", "[limits]\nmemory_mb = 8\n")
        .await
        .unwrap_err();
    let SpawnError::InitTrapped { kind, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*kind, TrapKind::ResourceLimit);
    assert!(message.contains("memory_mb"), "{message}");
    // Within the limit the same allocation succeeds.
    spawn_probe(&h, "alloc:4", "[limits]\nmemory_mb = 8\n")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_traps() {
    let h = harness();
    let err = spawn_probe(&h, "recurse", "").await.unwrap_err();
    let SpawnError::InitTrapped { kind, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*kind, TrapKind::StackOverflow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_cpu_budget_without_starving_other_actors() {
    let h = Arc::new(harness());
    let looping = {
        let h = h.clone();
        tokio::spawn(
            async move { spawn_probe(&h, "loop", "[limits]\nmax_call_cpu_ms = 3000\n").await },
        )
    };
    // While the loop spins, other actors still spawn and run on the same two workers.
    for i in 0..3 {
        spawn_probe(&h, &format!("log:alive {i}"), "")
            .await
            .unwrap();
    }
    assert!(
        !looping.is_finished(),
        "the looping actor should still be running"
    );
    let err = looping.await.unwrap().unwrap_err();
    let SpawnError::InitTrapped { kind, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*kind, TrapKind::Deadline);
    assert!(message.contains("max_call_cpu_ms"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_init_ends_the_actor_after_init() {
    let h = harness();
    let actor = spawn_probe(&h, "log:first;shutdown;log:after", "")
        .await
        .unwrap();
    assert_eq!(
        actor.exited().await,
        ActorExit::Shutdown(Some(b"bye".to_vec()))
    );
    // The call finished before the shutdown took effect.
    assert_eq!(*h.logs.lock().unwrap(), ["first", "after"]);
    assert_eq!(h.runtime.actor_count(), 0);
    h.runtime.flush().await.unwrap();
    let events = chain_of(h.dir.path(), actor.id());
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Shutdown {
            reason: ShutdownReason::Requested,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungranted_import_fails_spawn_naming_interface_and_handler() {
    let h = harness();
    let err = h
        .runtime
        .spawn(manifest(test_actors::UNGRANTED, ""))
        .await
        .unwrap_err();
    let s = err.to_string();
    assert!(s.contains("imports `theater:simple/timing`"), "{s}");
    assert!(s.contains("type = \"timing\""), "{s}");
    assert!(matches!(
        err,
        SpawnError::Ungranted {
            handler: "timing",
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_kinds_of_file_are_refused_with_clear_errors() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.wasm");
    std::fs::write(&text_file, "not wasm at all").unwrap();
    let cases = [
        (
            test_actors::PROBE_MODULE.to_string(),
            "a core WebAssembly module, not a component",
        ),
        (text_file.display().to_string(), "not a WebAssembly file"),
        (
            dir.path().join("missing.wasm").display().to_string(),
            "no such file",
        ),
        (
            test_actors::NOT_AN_ACTOR.to_string(),
            "does not export `theater:simple/actor`",
        ),
    ];
    for (path, expected) in cases {
        let err = h.runtime.spawn(manifest(&path, "")).await.unwrap_err();
        let s = err.to_string();
        assert!(s.contains(expected), "{path}: {s}");
        assert!(!s.contains('\n'), "{s}");
    }
    assert_eq!(h.runtime.actor_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsaved_chain_stays_out_of_the_database() {
    let h = harness();
    let actor = spawn_probe(&h, "", "save_chain = false\n").await.unwrap();
    h.runtime.flush().await.unwrap();
    let reader = ChainReader::open(h.dir.path()).unwrap();
    assert!(reader.resolve(actor.id()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_durability_has_events_on_disk_when_spawn_returns() {
    let h = harness();
    let actor = spawn_probe(&h, "log:durable", "[chain]\ndurability = \"every-event\"\n")
        .await
        .unwrap();
    // No flush: with every-event durability the events are committed already.
    let reader = ChainReader::open(h.dir.path()).unwrap();
    assert_eq!(reader.resolve(actor.id()).unwrap().head.len, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_component_reference_runs_the_stored_bytes() {
    let h = harness();
    spawn_probe(&h, "", "").await.unwrap();
    let hash = theater::chain::Hash::of(&std::fs::read(test_actors::PROBE).unwrap());
    let actor = h
        .runtime
        .spawn_with(
            manifest(&format!("store:{hash}"), ""),
            Some(b"log:from store".to_vec()),
        )
        .await
        .unwrap();
    assert!(
        h.logs.lock().unwrap().contains(&"from store".to_string()),
        "{}",
        actor.id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernation_frees_the_slot_and_the_actor_still_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        hibernate_after: Some(std::time::Duration::from_millis(1)),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = 1;
    let runtime = Runtime::new(config).unwrap();
    let m = manifest(test_actors::MINIMAL, "");
    let first = runtime.spawn(m.clone()).await.unwrap();
    // The only slot is free again once the first actor hibernates (bounded wait, ~10 s).
    let mut second = None;
    for _ in 0..1000 {
        match runtime.spawn(m.clone()).await {
            Ok(actor) => {
                second = Some(actor);
                break;
            }
            Err(e) => {
                assert!(e.to_string().contains("no free instance slot"), "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    let second = second.expect("the first actor never hibernated");
    assert_eq!(runtime.actor_count(), 2);
    first.stop().await;
    assert_eq!(first.exited().await, ActorExit::Stopped);
    runtime.shutdown().await.unwrap();
    assert_eq!(second.exited().await, ActorExit::Stopped);
    let events = chain_of(dir.path(), first.id());
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Shutdown {
            reason: ShutdownReason::Stopped,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_at_a_full_pool_hibernates_the_actor_idle_longest() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        // Idle actors are queued for hibernation, but the sweeper would not get to them.
        hibernate_after: Some(std::time::Duration::from_secs(3600)),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = 2;
    let runtime = Runtime::new(config).unwrap();
    let mut actors = Vec::new();
    // Five actors in two slots: each spawn makes room at once, without a retry.
    for i in 0..5 {
        let m = common::puppet_manifest(dir.path(), &format!("p{i}.toml"), "");
        actors.push(runtime.spawn(m).await.unwrap());
    }
    // Each wakes to answer, making room in turn, with its state intact.
    for (i, actor) in actors.iter().enumerate() {
        common::ok(actor, &format!("note {i}")).await;
    }
    for (i, actor) in actors.iter().enumerate() {
        assert_eq!(common::journal(actor).await, format!("{i},"));
    }
    runtime.shutdown().await.unwrap();
    let woken = common::wakes(dir.path(), actors[0].id());
    assert!(woken >= 1, "the first actor was never hibernated and woken");
}

/// Polls `done` for up to ten seconds; whether it came true.
async fn within_ten_seconds(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    done()
}

/// An actor's task stays, warm, after it parks the actor, so that the next message costs a
/// wake and not a task spawn; it ends when the actor stops or hibernates, or the runtime is
/// dropped, so idle and hibernated actors hold no task and none is leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_tasks_end_when_their_actors_stop_or_hibernate_or_the_runtime_goes() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let dir = tempfile::tempdir().unwrap();
    let before_runtime = tasks();
    let config = |hibernate_ms| RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        hibernate_after: Some(std::time::Duration::from_millis(hibernate_ms)),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    // Hibernation that will not come during the test.
    let runtime = Runtime::new(config(3_600_000)).unwrap();
    let mut actors = Vec::new();
    for i in 0..20 {
        let m = common::puppet_manifest(dir.path(), &format!("p{i}.toml"), "");
        actors.push(runtime.spawn(m).await.unwrap());
    }
    // A spawned actor that has had no message has no task.
    let spawned = tasks();
    for (i, actor) in actors.iter().enumerate() {
        common::ok(actor, &format!("note {i}")).await;
    }
    let warm = tasks();
    assert!(warm >= spawned + 20, "{spawned} tasks, then {warm}");
    // Warm tasks run the next messages, in order, with the state intact.
    for (i, actor) in actors.iter().enumerate() {
        common::ok(actor, "note again").await;
        assert_eq!(common::journal(actor).await, format!("{i},again,"));
    }
    assert!(tasks() <= warm, "a second message started another task");
    for actor in &actors[..10] {
        actor.stop().await;
    }
    assert!(
        within_ten_seconds(|| tasks() <= warm - 10).await,
        "stopped actors kept their tasks: {} of {warm}",
        tasks()
    );
    // The handles too: one keeps the runtime's shared part, and with it the idle sweeper.
    drop(actors);
    drop(runtime);
    assert!(
        within_ten_seconds(|| tasks() <= before_runtime).await,
        "a dropped runtime left tasks: {} of {before_runtime}",
        tasks()
    );

    // Hibernation ends the task; the next message starts one and is handled.
    let runtime = Runtime::new(config(20)).unwrap();
    let m = common::puppet_manifest(dir.path(), "h.toml", "");
    let actor = runtime.spawn(m).await.unwrap();
    let idle = tasks();
    common::ok(&actor, "note 1").await;
    assert!(
        within_ten_seconds(|| tasks() < idle + 1).await,
        "a hibernated actor kept its task"
    );
    common::ok(&actor, "note 2").await;
    assert_eq!(common::journal(&actor).await, "1,2,");
    runtime.shutdown().await.unwrap();
    assert!(
        common::wakes(dir.path(), actor.id()) >= 1,
        "it never hibernated"
    );
}

/// The skynet tree (see `actors/skynet`), `levels` deep, in a runtime of `slots` instances.
async fn skynet(levels: u32, slots: u32) -> Result<u64, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = slots;
    let runtime = Runtime::new(config).unwrap();
    let grants = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n[child]\nrestart = \"temporary\"\n";
    let child = format!(
        "name = \"skynet\"\nversion = \"0.1.0\"\ncomponent = {:?}\n{grants}",
        test_actors::SKYNET
    );
    let root = runtime
        .spawn(manifest(test_actors::SKYNET, grants))
        .await
        .unwrap();
    let answer = root
        .request_within(
            format!("skynet 0 {levels}\n{child}").into_bytes(),
            std::time::Duration::from_secs(120),
        )
        .await
        .map(|a| String::from_utf8(a).unwrap().parse().unwrap());
    runtime.shutdown().await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_supervisors_far_wider_than_the_pool_completes() {
    // 1,111 actors, 111 of them parents spawning at once, in 8 instances: every slot could be
    // held by a parent waiting for the instance its child's `init` needs. Calls under way are
    // capped below the pool, actors waiting for a place or a run hold no instance, and spawns
    // make room by hibernating.
    assert_eq!(skynet(3, 8).await, Ok(499_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_instance_pool_is_a_clear_error_and_frees_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        hibernate_after: None,
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = 2;
    let runtime = Runtime::new(config).unwrap();
    let m = manifest(test_actors::MINIMAL, "");
    let first = runtime.spawn(m.clone()).await.unwrap();
    runtime.spawn(m.clone()).await.unwrap();
    let err = runtime.spawn(m.clone()).await.unwrap_err();
    assert!(err.to_string().contains("no free instance slot"), "{err}");
    // Stopping an actor gives its slot back.
    first.stop().await;
    runtime.spawn(m).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_altered_compiled_cache_file_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    let cached = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path().join("compiled"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let m = manifest(test_actors::MINIMAL, "");
    let runtime = Runtime::new(config()).unwrap();
    runtime.spawn(m.clone()).await.unwrap();
    runtime.shutdown().await.unwrap();
    let files = cached();
    assert_eq!(
        files.len(),
        1,
        "one artifact, no temporary file left: {files:?}"
    );
    let artifact = files[0].clone();
    assert_eq!(artifact.extension().unwrap(), "cwasm");
    let whole = std::fs::read(&artifact).unwrap();

    // Torn (a writer's half) and altered (one byte) files are refused, then replaced.
    let mut altered = whole.clone();
    altered[whole.len() / 2] ^= 1;
    for damaged in [whole[..whole.len() / 2].to_vec(), altered] {
        std::fs::write(&artifact, &damaged).unwrap();
        let runtime = Runtime::new(config()).unwrap();
        let actor = runtime.spawn(m.clone()).await.unwrap();
        assert!(actor.exit().is_none());
        runtime.shutdown().await.unwrap();
        let rewritten = std::fs::read(&artifact).unwrap();
        assert_ne!(rewritten, damaged, "the damaged file is replaced");
        let (body, trailer) = rewritten.split_at(rewritten.len() - 32);
        assert_eq!(theater::chain::Hash::of(body).0, trailer, "and whole");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_compiling_the_same_component_at_once_leave_one_whole_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    // Two runtimes on one data dir (as two processes would be), each compiling and caching
    // the component at the same time.
    let (a, b) = (
        Runtime::new(config()).unwrap(),
        Runtime::new(config()).unwrap(),
    );
    let m = manifest(
        test_actors::PUPPET,
        "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
    );
    let (first, second) = tokio::join!(a.spawn(m.clone()), b.spawn(m.clone()));
    first.unwrap();
    second.unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one artifact, no temporary file: {files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let (body, trailer) = bytes.split_at(bytes.len() - 32);
    assert_eq!(theater::chain::Hash::of(body).0, trailer, "whole");
    // And a third runtime loads it.
    let c = Runtime::new(config()).unwrap();
    c.spawn(m).await.unwrap();
    c.shutdown().await.unwrap();
}
