//! Hermetic replay (`theater::replay`): real runs of real components, replayed from their own
//! chains alone, must match event for event; a changed component must be reported at the event
//! where it first behaves differently.

mod common;

use std::time::Duration;

use common::{
    ask, chain_of, dice_manifest, harness, harness_with, journal, ok, puppet, puppet_manifest,
};
use theater::chain::{ChainReader, Event, EventKind, Hash, InstanceReason};
use theater::replay::{ReplayError, ReplayOptions, ReplaySources, ReplaySummary, replay_chain};

/// Replay options with every family this project ships, as `theater replay` has them.
fn options() -> ReplayOptions {
    ReplayOptions {
        handlers: theater_handlers::builtin(),
        ..Default::default()
    }
}

async fn replay_with(
    data_dir: &std::path::Path,
    id: &str,
    options: ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let (_, events) = ChainReader::open(data_dir).unwrap().chain(id).unwrap();
    replay_chain(id, events, ReplaySources::data_dir(data_dir), options).await
}

/// The state hash the chain recorded last (after its last completed call).
fn last_recorded_state(data_dir: &std::path::Path, id: &str) -> Option<Hash> {
    chain_of(data_dir, id)
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::CallEnd(end) => Some(end.state),
            _ => None,
        })
        .flatten()
}

/// Replays every chain in the data dir; each must match and end in the recorded state.
async fn replay_all(data_dir: &std::path::Path) -> Vec<ReplaySummary> {
    let chains = ChainReader::open(data_dir).unwrap().chains().unwrap();
    let mut summaries = Vec::new();
    for chain in chains {
        let summary = replay_with(data_dir, &chain.actor_id, options())
            .await
            .unwrap_or_else(|e| panic!("replaying {} ({}): {e}", chain.name, chain.actor_id));
        assert_eq!(summary.events, chain.head.len);
        assert_eq!(
            summary.final_state,
            last_recorded_state(data_dir, &chain.actor_id),
            "{}",
            chain.name
        );
        summaries.push(summary);
    }
    summaries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_that_talk_and_supervise_replay_from_their_own_chains() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    puppet_manifest(h.dir.path(), "child.toml", "");
    let child = ok(&parent, "spawn child.toml").await;
    assert_eq!(ok(&parent, &format!("request {child} echo hi")).await, "hi");
    ok(&parent, &format!("send {child} note one")).await;
    let channel = ok(&parent, &format!("open {child} hello")).await;
    ok(&parent, &format!("chan {channel} echo ping")).await;
    ok(&parent, &format!("close {channel}")).await;
    let child_state = ok(&parent, &format!("child-state {child}")).await;
    assert!(child_state.starts_with("one,open:"), "{child_state}");
    ok(&parent, &format!("child-events {child}")).await;
    // The child crashes and is restarted with a fresh instance; the parent is told.
    ask(&parent, &format!("request {child} panic"))
        .await
        .unwrap();
    assert_eq!(
        ok(&parent, &format!("request {child} note again")).await,
        "ok"
    );
    assert_eq!(ask(&parent, "children").await.unwrap(), child);
    ok(&parent, &format!("stop {child}")).await;
    assert!(
        journal(&parent)
            .await
            .contains(&format!("child-error:{child},"))
    );
    h.runtime.quiescent().await;
    h.runtime.flush().await.unwrap();

    let summaries = replay_all(h.dir.path()).await;
    assert_eq!(summaries.len(), 2);
    let child = summaries.iter().find(|s| s.actor_id == child).unwrap();
    assert_eq!(child.instances, 2, "spawn and restart");
    assert!(child.calls >= 6, "{child:?}");
    let parent = summaries
        .iter()
        .find(|s| s.actor_id == parent.id())
        .unwrap();
    assert!(parent.host_calls >= 9, "{parent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_clock_and_hidden_memory_replay_across_wakes() {
    let h = harness_with(|c| c.hibernate_after = Some(Duration::from_millis(20)));
    let dice = h.runtime.spawn(dice_manifest(r#"["PATH"]"#)).await.unwrap();
    for command in [
        "roll", "float", "uuid", "bytes 8", "now", "sleep 5", "env PATH", "vars",
    ] {
        ask(&dice, command).await.unwrap();
    }
    // Let it hibernate, so the next calls run on a fresh instance whose call counter (kept in
    // the guest's own memory) starts again at 1.
    let mut woke = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        ask(&dice, "roll").await.unwrap();
        h.runtime.flush().await.unwrap();
        woke = common::wakes(h.dir.path(), dice.id()) > 0;
        if woke {
            break;
        }
    }
    assert!(woke, "the actor never hibernated");
    // Entries are `command=answer#calls-on-this-instance;`: the count restarts after the wake.
    let entries = journal(&dice).await;
    assert!(entries.starts_with("init#1;roll="), "{entries}");
    assert!(entries.ends_with("#1;"), "{entries}");
    let summary = replay_all(h.dir.path()).await.remove(0);
    assert!(summary.instances >= 2, "{summary:?}");
    assert!(summary.host_calls >= 10, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_diverges_at_the_first_event_it_changes() {
    let h = harness();
    let dice = h.runtime.spawn(dice_manifest(r#"["PATH"]"#)).await.unwrap();
    for _ in 0..6 {
        ask(&dice, "roll").await.unwrap();
    }
    h.runtime.flush().await.unwrap();
    // The fourth random-range call is where the loaded build differs.
    let fourth = chain_of(h.dir.path(), dice.id())
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(&e.kind, EventKind::HostCall(c) if c.function == "random-range"))
        .nth(3)
        .unwrap()
        .0 as u64;

    let same = replay_with(
        h.dir.path(),
        dice.id(),
        ReplayOptions {
            component: Some(test_actors::DICE.into()),
            ..options()
        },
    )
    .await;
    assert!(same.is_ok(), "the same build replays: {same:?}");

    let changed = replay_with(
        h.dir.path(),
        dice.id(),
        ReplayOptions {
            component: Some(test_actors::DICE_LOADED.into()),
            ..options()
        },
    )
    .await;
    let Err(ReplayError::Diverged(d)) = changed else {
        panic!("expected a divergence, got {changed:?}");
    };
    assert_eq!(d.index, fourth, "{d}");
    assert!(
        d.expected
            .as_deref()
            .unwrap()
            .contains("random-range(1, 7)"),
        "{d}"
    );
    assert!(d.actual.contains("random-range(1, 6)"), "{d}");
    let (_, call) = d.call.as_ref().unwrap();
    assert!(
        call.contains("handle-request") && call.contains("\"roll\""),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_call_is_taken_from_the_chain_not_rerun() {
    let h = harness();
    let looper = puppet(&h, "looper.toml", "[limits]\nmax_call_cpu_ms = 50\n").await;
    ok(&looper, "note first").await;
    let answer = ask(&looper, "loop").await.unwrap_err();
    assert!(answer.contains("CPU budget"), "{answer}");
    h.runtime.quiescent().await;
    h.runtime.flush().await.unwrap();
    let summary = replay_with(h.dir.path(), looper.id(), options())
        .await
        .unwrap();
    assert_eq!(summary.traps_from_chain, 1, "{summary:?}");
    assert_eq!(summary.calls, 2, "init and the note; not the loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_that_cannot_be_replayed_are_clear_errors() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    ok(&a, "note x").await;
    h.runtime.flush().await.unwrap();
    let (_, mut events) = ChainReader::open(h.dir.path())
        .unwrap()
        .chain(a.id())
        .unwrap();

    // A component that needs more than the recorded manifest grants.
    let wrong = replay_with(
        h.dir.path(),
        a.id(),
        ReplayOptions {
            component: Some(test_actors::DICE.into()),
            ..options()
        },
    )
    .await
    .unwrap_err();
    assert!(
        wrong.to_string().contains("theater:simple/timing"),
        "{wrong}"
    );

    // A changed byte is caught before anything runs.
    let last = events.len() - 1;
    events[last].bytes[12] ^= 1;
    let sources = ReplaySources::data_dir(h.dir.path());
    let err = replay_chain(a.id(), events, sources, options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");

    // Without the content store, the component must be given.
    let (_, events) = ChainReader::open(h.dir.path())
        .unwrap()
        .chain(a.id())
        .unwrap();
    let nowhere = || ReplaySources::new(|_| None, |_| Err("none".into()));
    let EventKind::Spawn(spawn) = &Event::decode(&events[0].bytes).unwrap().kind else {
        panic!()
    };
    let manifest = spawn.manifest.hash().expect("recorded by hash");
    let text = common::blob(h.dir.path(), &manifest);
    let only_manifest = nowhere().with_blobs([(manifest, text)].into());
    let err = replay_chain(a.id(), events.clone(), only_manifest, options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pass --component"), "{err}");

    // The manifest is recorded by hash: without it there is nothing to replay with, and
    // content that does not hash to it is refused, not parsed.
    let err = replay_chain(a.id(), events.clone(), nowhere(), options())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "its manifest {} is not in the content store",
            manifest.to_hex()
        )),
        "{err}"
    );
    let forged = nowhere().with_blobs([(manifest, b"name = \"other\"".to_vec())].into());
    let err = replay_chain(a.id(), events, forged, options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not hash to it"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_recorded_on_schedule_and_replay_can_start_from_the_newest() {
    let h = harness_with(|c| c.hibernate_after = Some(Duration::from_secs(3600)));
    let a = puppet(&h, "a.toml", "[chain]\nsnapshot_every = 3\n").await;
    for i in 0..10 {
        ok(&a, &format!("note n{i}")).await;
    }
    h.runtime.flush().await.unwrap();
    let chain = chain_of(h.dir.path(), a.id());
    let snapshots: Vec<usize> = chain
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EventKind::Snapshot { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(snapshots.len(), 3, "after calls 3, 6 and 9 (init counts)");
    // Each snapshot is followed by a fresh instance for the next call.
    let last = *snapshots.last().unwrap();
    assert!(matches!(
        chain[last + 1].kind,
        EventKind::Instance {
            reason: InstanceReason::Wake,
            ..
        }
    ));

    let full = replay_with(h.dir.path(), a.id(), options()).await.unwrap();
    assert_eq!(full.started_at, None);
    let from = replay_with(
        h.dir.path(),
        a.id(),
        ReplayOptions {
            from_snapshot: true,
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(from.started_at, Some(last as u64));
    assert_eq!(
        from.calls, 2,
        "only the calls after the newest snapshot run"
    );
    assert_eq!(from.final_state, full.final_state);
    assert_eq!(from.final_state, last_recorded_state(h.dir.path(), a.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_replays_with_the_limits_its_parent_held_it_to() {
    let h = harness();
    // The child sets no memory limit: it ran with its parent's 16 MiB, not the default 64.
    let parent = puppet(&h, "parent.toml", "[limits]\nmemory_mb = 16\n").await;
    let child = format!(
        "name = \"probe\"\nversion = \"0.1.0\"\ncomponent = {:?}\n",
        test_actors::PROBE
    );
    let answer = ask(&parent, &format!("spawn-with alloc:32|{child}"))
        .await
        .unwrap();
    assert!(answer.contains("trapped in init"), "{answer}");
    h.runtime.flush().await.unwrap();
    let chains = ChainReader::open(h.dir.path()).unwrap().chains().unwrap();
    let probe = chains.iter().find(|c| c.name == "probe").unwrap();
    // The replay finds the parent's chain in the data dir and holds the child within it, so
    // the allocation fails again at the same point.
    let summary = replay_with(h.dir.path(), &probe.actor_id, options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.events, probe.head.len);
}

/// The notes example (actors/notes) reads a store, writes and reads a file and runs `wc`; its
/// chain replays event for event after the file, the store's rows and the run's data dir
/// records are gone, and without running `wc`: everything came from the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_files_and_processes_replay_after_they_are_gone() {
    let h = harness();
    let dir = h.dir.path();
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/notes.txt"), "an earlier note\n").unwrap();
    let text = format!(
        "name = \"notes\"\nversion = \"0.1.0\"\ncomponent = {:?}\n\
         [[handler]]\ntype = \"store\"\nstores = [\"notes\"]\n\
         [[handler]]\ntype = \"filesystem\"\nroot = \"data\"\n\
         [[handler]]\ntype = \"process\"\nprograms = [\"wc\"]\nroot = \"data\"\n",
        test_actors::NOTES
    );
    let path = dir.join("notes.toml");
    std::fs::write(&path, &text).unwrap();
    let manifest = common::parse(&text, theater::ManifestOrigin::File(path)).unwrap();
    // Twice, so that the second run reads what the first stored.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let actor = h.runtime.spawn(manifest.clone()).await.unwrap();
        ids.push(actor.id().to_owned());
        h.runtime.quiescent().await;
    }
    let logs = h.logs.lock().unwrap().join("\n");
    assert!(logs.contains("wc says: 3 notes.txt"), "{logs}");
    assert!(logs.contains("the store's latest note"), "{logs}");
    let common::Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();

    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("theater.db")).unwrap();
    db.execute_batch(
        "DELETE FROM actor_store_content; DELETE FROM actor_store_labels; DELETE FROM actor_stores;",
    )
    .unwrap();
    drop(db);
    for id in &ids {
        let summary = replay_with(dir.path(), id, options()).await.unwrap();
        assert!(summary.host_calls >= 8, "{summary:?}");
        // init, the output line and the exit: three calls re-executed.
        assert_eq!(summary.calls, 3, "{summary:?}");
        assert_eq!(summary.final_state, last_recorded_state(dir.path(), id));
    }
}
