//! Crash recovery (`Runtime::recover`): a runtime that stops without shutting its actors down
//! (`Runtime::abandon` here) leaves chains that a new runtime on the same data dir continues.
//! `crates/theater-cli/tests/cli.rs` does the same with SIGKILL on a real process.

mod common;

use std::time::Duration;

use common::{ask, chain_of, dice_manifest, harness_with, journal, ok, puppet, puppet_manifest};
use theater::chain::{EventKind, InstanceReason};
use theater::replay::{ReplayOptions, ReplaySources, replay_chain};
use theater::{Runtime, RuntimeConfig};

/// A second runtime on `data_dir`, as `theater run --resume` would start.
fn restarted(data_dir: &std::path::Path) -> Runtime {
    let mut config = RuntimeConfig {
        data_dir: Some(data_dir.to_owned()),
        on_log: std::sync::Arc::new(|_| {}),
        handlers: theater_handlers::builtin(),
        ..Default::default()
    };
    config.engine.max_instances = 64;
    Runtime::new(config).unwrap()
}

async fn replays(data_dir: &std::path::Path, id: &str) {
    let (_, events) = theater::chain::ChainReader::open(data_dir)
        .unwrap()
        .chain(id)
        .unwrap();
    replay_chain(
        id,
        events,
        ReplaySources::data_dir(data_dir),
        ReplayOptions {
            handlers: theater_handlers::builtin(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("replaying {id}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervision_tree_comes_back_with_its_state_and_links() {
    let h = harness_with(|c| c.hibernate_after = Some(Duration::from_secs(3600)));
    let parent = puppet(&h, "parent.toml", "[chain]\nsnapshot_every = 4\n").await;
    puppet_manifest(h.dir.path(), "child.toml", "");
    let child = ok(&parent, "spawn child.toml").await;
    for i in 0..6 {
        ok(&parent, &format!("note p{i}")).await;
        ok(&parent, &format!("request {child} note c{i}")).await;
    }
    // A child made by `resume` has no `init`, and must not get one when it comes back, even
    // though it never had a call before the crash.
    let resumed = ok(&parent, "resume init:note x|child.toml").await;
    let parent_state = journal(&parent).await;
    // The crash: nothing is shut down; every committed event stays.
    let parent_id = parent.id().to_owned();
    std::mem::forget(parent);
    h.runtime.abandon().await.unwrap();

    let runtime = restarted(h.dir.path());
    let recovered = runtime.recover().await.unwrap();
    assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
    // While it runs, no other runtime may recover the same data dir.
    let second = restarted(h.dir.path());
    let err = second.recover().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("another theater process is running"),
        "{err}"
    );
    drop(second);
    assert_eq!(recovered.actors.len(), 3);
    assert_eq!(recovered.roots.len(), 1);
    let parent = &recovered.roots[0];
    assert_eq!(parent.id(), parent_id);
    // The state is the one before the crash; the link to the child works both ways.
    assert_eq!(journal(parent).await, parent_state);
    assert_eq!(
        ask(parent, "children").await.unwrap(),
        format!("{child} {resumed}")
    );
    assert_eq!(
        ok(parent, &format!("child-state {resumed}")).await,
        "init:note x"
    );
    assert_eq!(
        ok(parent, &format!("child-state {child}")).await,
        "c0,c1,c2,c3,c4,c5,"
    );
    ok(parent, &format!("request {child} note after")).await;
    ok(parent, &format!("stop {child}")).await;
    runtime.shutdown().await.unwrap();

    for id in [parent_id.as_str(), child.as_str(), resumed.as_str()] {
        let chain = chain_of(h.dir.path(), id);
        let recovery = chain
            .iter()
            .position(|e| matches!(e.kind, EventKind::Recovery(_)))
            .expect("a recovery event");
        assert!(matches!(
            chain[recovery + 1].kind,
            EventKind::Instance {
                reason: InstanceReason::Recovery,
                ..
            }
        ));
        replays(h.dir.path(), id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_at_the_crash_is_named_and_dropped() {
    let h = harness_with(|c| c.hibernate_after = None);
    let dice = h.runtime.spawn(dice_manifest("[]")).await.unwrap();
    ask(&dice, "roll").await.unwrap();
    let before = journal(&dice).await;
    // A call that is still sleeping when the runtime dies.
    let sleeper = dice.clone();
    tokio::spawn(async move { sleeper.request(b"sleep 600000".to_vec()).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = dice.id().to_owned();
    std::mem::forget(dice);
    h.runtime.abandon().await.unwrap();

    let runtime = restarted(h.dir.path());
    let recovered = runtime.recover().await.unwrap();
    let (_, _, interrupted) = &recovered.actors[0];
    assert_eq!(
        interrupted.as_deref(),
        Some("theater:simple/message-server-client.handle-request")
    );
    let dice = &recovered.roots[0];
    assert_eq!(
        journal(dice).await,
        before,
        "the interrupted call left no trace in the state"
    );
    assert!(ask(dice, "roll").await.is_ok());
    runtime.shutdown().await.unwrap();
    let chain = chain_of(h.dir.path(), &id);
    let EventKind::Recovery(r) = &chain
        .iter()
        .find(|e| matches!(e.kind, EventKind::Recovery(_)))
        .unwrap()
        .kind
    else {
        unreachable!()
    };
    assert!(r.message_id.is_some());
    replays(h.dir.path(), &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_listed_before_its_parent_is_still_recovered_after_it() {
    let h = harness_with(|c| c.hibernate_after = Some(Duration::from_secs(3600)));
    let parent = puppet(&h, "parent.toml", "").await;
    puppet_manifest(h.dir.path(), "child.toml", "");
    let child = ok(&parent, "spawn child.toml").await;
    ok(&parent, &format!("request {child} note kept")).await;
    let parent_id = parent.id().to_owned();
    std::mem::forget(parent);
    h.runtime.abandon().await.unwrap();
    // Created in the same millisecond as its parent, with an id that sorts first: the
    // database lists the child first. (Written here; on a fast machine it happens by itself.)
    let db = rusqlite::Connection::open(h.dir.path().join("theater.db")).unwrap();
    let created: i64 = db
        .query_row(
            "SELECT created_ms FROM chains WHERE actor_id = ?1",
            [&parent_id],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE chains SET created_ms = ?1 WHERE actor_id = ?2",
        rusqlite::params![created - 1, child],
    )
    .unwrap();
    drop(db);

    let runtime = restarted(h.dir.path());
    let recovered = runtime.recover().await.unwrap();
    assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
    assert_eq!(recovered.actors.len(), 2);
    let parent = &recovered.roots[0];
    assert_eq!(ask(parent, "children").await.unwrap(), child);
    assert_eq!(ok(parent, &format!("child-state {child}")).await, "kept,");
    runtime.shutdown().await.unwrap();
}
