//! The `store` handler, through a real guest (actors/keeper) on a real data dir: every function
//! and its errors, which stores an actor may use, a child held within its parent's stores, and
//! a replay that reads nothing from the database.

mod common;

use common::{Harness, ask, harness, harness_with, keeper, keeper_manifest, ok, puppet};

const KEEPER: &str = test_actors::STORE_KEEPER;
const NOTES: &str = "[[handler]]\ntype = \"store\"\nstores = [\"notes\"]\n";

fn hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_function_works_and_says_what_is_wrong() {
    let h = harness();
    let k = keeper(&h, KEEPER, NOTES).await;
    let hello = ok(&k, "put notes hello").await;
    assert_eq!(hello, hash("hello"));
    assert_eq!(ok(&k, &format!("get notes {hello}")).await, "hello");
    assert_eq!(ok(&k, &format!("has notes {hello}")).await, "true");
    assert_eq!(
        ok(&k, &format!("has notes {}", hash("nope"))).await,
        "false"
    );
    let missing = ask(&k, &format!("get notes {}", hash("nope")))
        .await
        .unwrap();
    assert!(missing.starts_with("err content") && missing.ends_with("is not in this store"));

    ok(&k, &format!("label notes first {hello}")).await;
    assert_eq!(ok(&k, "by-label notes first").await, hello);
    assert_eq!(ok(&k, "by-label notes other").await, "none");
    let world = ok(&k, "put-at notes second world").await;
    assert_eq!(world, hash("world"));
    assert_eq!(ok(&k, "labels notes").await, "first second");
    assert_eq!(ok(&k, "contents notes").await, {
        let mut both = [hello.clone(), world.clone()];
        both.sort();
        both.join(" ")
    });
    assert_eq!(ok(&k, "size notes").await, "10");

    // Replacing needs the label to exist.
    let again = ok(&k, "replace-content notes second again").await;
    assert_eq!(ok(&k, "by-label notes second").await, again);
    let e = ask(&k, "replace-content notes third x").await.unwrap();
    assert_eq!(e, "err the store has no label \"third\"");
    ok(&k, &format!("replace-at notes second {hello}")).await;
    assert_eq!(ok(&k, "by-label notes second").await, hello);
    let e = ask(&k, &format!("replace-at notes third {hello}"))
        .await
        .unwrap();
    assert!(e.contains("no label \"third\""), "{e}");
    let e = ask(&k, &format!("label notes x {}", hash("never stored")))
        .await
        .unwrap();
    assert!(e.contains("is not in this store"), "{e}");

    // Removing.
    let e = ask(&k, &format!("unlabel-from notes first {world}"))
        .await
        .unwrap();
    assert!(e.contains("points at"), "{e}");
    ok(&k, &format!("unlabel-from notes first {hello}")).await;
    ok(&k, "unlabel notes second").await;
    assert_eq!(ok(&k, "labels notes").await, "");
    let e = ask(&k, "unlabel notes second").await.unwrap();
    assert_eq!(e, "err the store has no label \"second\"");
    // Content stays after its labels go.
    assert_eq!(ok(&k, &format!("get notes {world}")).await, "world");

    // Malformed arguments.
    let e = ask(&k, "get notes ../../etc/passwd").await.unwrap();
    assert!(e.contains("not a content hash"), "{e}");
    let e = ask(&k, &format!("label notes  {hello}")).await.unwrap();
    assert!(e.contains("is not a label"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_bounds_each_store() {
    let h = harness();
    let k = keeper(&h, KEEPER, &format!("{NOTES}max_bytes = 100\n")).await;
    ok(&k, "put-big notes 60").await;
    // The same content again is free.
    ok(&k, "put-big notes 60").await;
    let e = ask(&k, "put notes 0123456789012345678901234567890123456789x")
        .await
        .unwrap();
    assert!(e.contains("limit of 100"), "{e}");
    let e = ask(&k, "put-big notes 101").await.unwrap();
    assert!(e.contains("more than a store may hold (100"), "{e}");
    assert_eq!(ok(&k, "size notes").await, "60");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_uses_only_its_own_and_its_named_stores() {
    let h = harness();
    let a = keeper(
        &h,
        KEEPER,
        "[[handler]]\ntype = \"store\"\nmax_stores = 2\n",
    )
    .await;
    let b = keeper(&h, KEEPER, NOTES).await;
    let mine = ok(&a, "new").await;
    let secret = ok(&a, &format!("put {mine} secret")).await;
    assert_eq!(ok(&a, &format!("get {mine} {secret}")).await, "secret");
    ok(&a, "new").await;
    let e = ask(&a, "new").await.unwrap();
    assert!(e.contains("max_stores"), "{e}");

    // Another actor, knowing the id and the hash, gets the same refusal as for any id.
    let refused = ask(&b, &format!("get {mine} {secret}")).await.unwrap();
    assert!(
        refused.starts_with(&format!(
            "err store \"{mine}\" is not granted to this actor"
        )),
        "{refused}"
    );
    for id in ["../../etc", "/tmp/x", "notes\0", "nope"] {
        let e = ask(&b, &format!("put {id} x")).await.unwrap();
        assert!(e.contains("is not granted to this actor"), "{id}: {e}");
    }
    // A's store has a name B's manifest does not list; B's named store does not see A's data.
    let e = ask(&b, &format!("get notes {secret}")).await.unwrap();
    assert!(e.contains("is not in this store"), "{e}");
    // A named store is not granted to an actor whose manifest does not list it.
    let e = ask(&a, "put notes x").await.unwrap();
    assert!(e.contains("is not granted"), "{e}");

    // A manifest that names a store after another actor's created id gets a different store.
    let c = keeper(
        &h,
        KEEPER,
        &format!("[[handler]]\ntype = \"store\"\nstores = [\"{mine}\"]\n"),
    )
    .await;
    assert_eq!(ok(&c, &format!("has {mine} {secret}")).await, "false");
    assert_eq!(ok(&c, &format!("contents {mine}")).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_gets_only_stores_its_parent_has() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[[handler]]\ntype = \"store\"\nstores = [\"notes\"]\nmax_bytes = 1000\n",
    )
    .await;
    let child = |extra: &str| {
        keeper_manifest(h.dir.path(), KEEPER, extra);
        format!("spawn {}", h.dir.path().join("keeper.toml").display())
    };
    let e = ask(
        &parent,
        &child("[[handler]]\ntype = \"store\"\nstores = [\"secrets\"]\n"),
    )
    .await
    .unwrap();
    assert!(e.contains("`stores`") && e.contains("\"secrets\""), "{e}");
    let e = ask(
        &parent,
        &child("[[handler]]\ntype = \"store\"\nmax_bytes = 1001\n"),
    )
    .await
    .unwrap();
    assert!(e.contains("`max_bytes`"), "{e}");
    let id = ok(&parent, &child(NOTES)).await;
    assert!(!id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let h = harness();
    let mut actors = Vec::new();
    for _ in 0..6 {
        actors.push(keeper(&h, KEEPER, NOTES).await);
    }
    let mut tasks = Vec::new();
    for (i, k) in actors.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for j in 0..25 {
                ok(&k, &format!("put-at notes l{i}-{j} v{i}-{j}")).await;
            }
            k
        }));
    }
    let mut last = None;
    for t in tasks {
        last = Some(t.await.unwrap());
    }
    let k = last.unwrap();
    assert_eq!(ok(&k, "contents notes").await.split(' ').count(), 150);
    assert_eq!(ok(&k, "labels notes").await.split(' ').count(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outlives_its_runtime_and_replays_without_it() {
    let h = harness();
    let k = keeper(&h, KEEPER, NOTES).await;
    let id = k.id().to_owned();
    let hello = ok(&k, "put-at notes greeting hello").await;
    drop(k);
    let Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();

    // A new runtime on the same data dir reads what the first one stored.
    let h = harness_at_dir(dir);
    let k = keeper(&h, KEEPER, NOTES).await;
    assert_eq!(ok(&k, "by-label notes greeting").await, hello);
    assert_eq!(ok(&k, &format!("get notes {hello}")).await, "hello");
    drop(k);
    let Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();

    // With the stores' tables emptied, the first actor's chain still replays: every read
    // comes from the chain.
    let db = rusqlite::Connection::open(dir.path().join("theater.db")).unwrap();
    db.execute_batch(
        "DELETE FROM actor_store_content; DELETE FROM actor_store_labels; DELETE FROM actor_stores;",
    )
    .unwrap();
    drop(db);
    let (len, summary) = common::replay_from(dir.path(), &id, &theater_handlers::builtin()).await;
    assert_eq!(summary.events, len as u64);
    assert!(summary.host_calls >= 1, "{summary:?}");
}

fn harness_at_dir(dir: tempfile::TempDir) -> Harness {
    let path = dir.path().to_owned();
    let mut h = harness_with(|c| c.data_dir = Some(path));
    h.dir = dir;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_data_dir_the_store_says_so() {
    let h = harness_with(|c| c.data_dir = None);
    let k = keeper(&h, KEEPER, NOTES).await;
    let e = ask(&k, "put notes x").await.unwrap();
    assert_eq!(
        e,
        "err the store handler needs a data dir, and this runtime has none"
    );
}
