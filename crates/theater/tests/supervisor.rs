//! The supervisor interface and OTP supervision with real components.

mod common;

use common::*;
use theater::chain::{EventKind, InstanceReason, ShutdownReason};
use theater::{ActorExit, LifecycleEvent};

/// Writes a child manifest file next to the parent's and returns its file name.
fn child_file(h: &Harness, file: &str, extra: &str) -> String {
    puppet_manifest(h.dir.path(), file, extra);
    file.to_owned()
}

/// Spawns `n` children of `parent` from `file`; returns their ids, oldest first.
async fn spawn_children(parent: &theater::ActorHandle, file: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(ok(parent, &format!("spawn {file}")).await);
    }
    ids
}

async fn children(parent: &theater::ActorHandle) -> Vec<String> {
    let listed = ask(parent, "children").await.unwrap();
    listed
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Lifecycle events of `ids`, in order, as (index in `ids`, event).
fn events_of(h: &Harness, ids: &[&str]) -> Vec<(usize, LifecycleEvent)> {
    h.lifecycle
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, e)| Some((ids.iter().position(|i| i == id)?, e.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_by_path_or_inline_list_state_events_stop_and_restart() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let first = ok(&parent, &format!("spawn {file}")).await;
    let inline = format!(
        "name = \"inline\"\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
        test_actors::PUPPET
    );
    let second = ok(&parent, &format!("spawn-with init:note hello|{inline}")).await;
    assert_eq!(children(&parent).await, vec![first.clone(), second.clone()]);

    assert_eq!(
        ok(&parent, &format!("child-state {second}")).await,
        "hello,"
    );
    let events = ok(&parent, &format!("child-events {first}")).await;
    assert!(
        events.starts_with("4 spawn instance call-start call-end"),
        "{events}"
    );
    // A restarted child keeps its id and starts again from `init`.
    let child = h.runtime.actor(&second).unwrap();
    ok(&child, "note more").await;
    ok(&parent, &format!("restart {second}")).await;
    assert_eq!(children(&parent).await, vec![first.clone(), second.clone()]);
    assert_eq!(journal(&child).await, "hello,");
    // stop-child is synchronous: the next list no longer has it.
    ok(&parent, &format!("stop {first}")).await;
    assert_eq!(children(&parent).await, vec![second.clone()]);
    assert!(h.runtime.actor(&first).is_none());

    h.runtime.flush().await.unwrap();
    let chain = chain_of(h.dir.path(), &second);
    assert!(chain.iter().any(|e| matches!(
        e.kind,
        EventKind::Instance {
            reason: InstanceReason::Restart,
            ..
        }
    )));
    // The parent's get-child-events recorded a reference to the child's chain, not a copy.
    let parent_chain = chain_of(h.dir.path(), parent.id());
    assert!(parent_chain.iter().any(|e| matches!(
        &e.kind,
        EventKind::HostCall(c) if c.function == "get-child-events"
            && matches!(c.result, theater::chain::HostResult::ActorChainRef { .. })
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_starts_from_the_given_state_without_init() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    // `init-fail` would make init fail; resume does not call init.
    let id = ok(&parent, &format!("resume init-fail|{file}")).await;
    assert_eq!(ok(&parent, &format!("child-state {id}")).await, "init-fail");
    let answer = ask(&parent, &format!("spawn-with init-fail|{file}"))
        .await
        .unwrap();
    assert!(
        answer.contains("init returned an error: told to fail in init"),
        "{answer}"
    );
    assert_eq!(children(&parent).await, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_child_manifests_and_unknown_children_are_clear_errors() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let answer = ask(&parent, "spawn no-such-file.toml").await.unwrap();
    assert!(
        answer.contains("no-such-file.toml: no such file"),
        "{answer}"
    );
    let answer = ask(&parent, "spawn name = \"x\"\nversoin = 1")
        .await
        .unwrap();
    assert!(answer.contains("<inline manifest>"), "{answer}");
    let answer = ask(&parent, "stop 1234").await.unwrap();
    assert!(answer.contains("1234 is not a running child"), "{answer}");
    let answer = ask(&parent, "child-state 1234").await.unwrap();
    assert!(answer.contains("1234 is not a running child"), "{answer}");
    // Someone else's child is not yours.
    let other = puppet(&h, "other.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let theirs = ok(&other, &format!("spawn {file}")).await;
    let answer = ask(&parent, &format!("stop {theirs}")).await.unwrap();
    assert!(answer.contains("is not a running child"), "{answer}");
    assert_eq!(children(&other).await, vec![theirs]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_child_is_restarted_with_its_id_and_the_parent_is_told() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let id = ok(&parent, &format!("spawn-with init:note fresh|{file}")).await;
    let child = h.runtime.actor(&id).unwrap();
    ok(&child, "note extra").await;
    let answer = ask(&parent, &format!("request {id} panic")).await.unwrap();
    assert!(answer.contains("trapped"), "{answer}");
    // Restarted from init (the default): the journal is back to what init made.
    assert_eq!(ok(&parent, &format!("request {id} state")).await, "fresh,");
    assert_eq!(journal(&parent).await, format!("child-error:{id},"));
    assert!(
        h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("failed: wasm trap") || l.contains("unreachable"))
    );
    h.runtime.flush().await.unwrap();
    let chain = chain_of(h.dir.path(), &id);
    let kinds: Vec<&str> = chain.iter().map(|e| e.kind.type_name()).collect();
    let trap = kinds.iter().position(|k| *k == "trap").unwrap();
    assert_eq!(kinds[trap + 1], "instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_last_state_keeps_the_state_of_the_last_good_call() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[supervision]\nrestart_from = \"last-state\"\n",
    )
    .await;
    let file = child_file(&h, "child.toml", "");
    let id = ok(&parent, &format!("spawn {file}")).await;
    ok(&parent, &format!("request {id} note kept")).await;
    ask(&parent, &format!("request {id} panic")).await.unwrap();
    assert_eq!(ok(&parent, &format!("request {id} state")).await, "kept,");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_types_decide_what_comes_back() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let temporary = child_file(&h, "temporary.toml", "[child]\nrestart = \"temporary\"\n");
    let transient = child_file(&h, "transient.toml", "[child]\nrestart = \"transient\"\n");
    let permanent = child_file(&h, "permanent.toml", "");
    let tmp = ok(&parent, &format!("spawn {temporary}")).await;
    let tra = ok(&parent, &format!("spawn {transient}")).await;
    let per = ok(&parent, &format!("spawn {permanent}")).await;

    ask(&parent, &format!("request {tmp} panic")).await.unwrap();
    ask(&parent, &format!("request {tra} panic")).await.unwrap();
    assert_eq!(children(&parent).await, vec![tra.clone(), per.clone()]);
    // A normal exit: transient stays down, permanent comes back.
    ok(&parent, &format!("request {tra} shutdown")).await;
    ok(&parent, &format!("request {per} shutdown")).await;
    let per_handle = h.runtime.actor(&per).unwrap();
    assert_eq!(ask(&per_handle, "echo back").await.unwrap(), "back");
    assert_eq!(children(&parent).await, vec![per]);
    let told = journal(&parent).await;
    assert!(told.contains(&format!("child-exit:{tra}")), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_stops_newest_first_then_restarts_in_start_order() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[supervision]\nstrategy = \"one-for-all\"\n",
    )
    .await;
    let file = child_file(&h, "child.toml", "");
    let ids = spawn_children(&parent, &file, 3).await;
    h.lifecycle.lock().unwrap().clear();
    ask(&parent, &format!("request {} panic", ids[1]))
        .await
        .unwrap();
    ask(&parent, &format!("request {} echo", ids[0]))
        .await
        .unwrap(); // after the restarts
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seen = events_of(&h, &refs);
    use LifecycleEvent::*;
    let failed = matches!(&seen[0], (1, Failed(_)));
    assert!(failed, "{seen:?}");
    assert_eq!(
        seen[1..].to_vec(),
        vec![
            (2, Stopped),
            (0, Stopped),
            (0, Restarted),
            (1, Restarted),
            (2, Restarted)
        ]
    );
    assert_eq!(children(&parent).await, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[supervision]\nstrategy = \"rest-for-one\"\n",
    )
    .await;
    let file = child_file(&h, "child.toml", "");
    let ids = spawn_children(&parent, &file, 3).await;
    h.lifecycle.lock().unwrap().clear();
    ask(&parent, &format!("request {} panic", ids[1]))
        .await
        .unwrap();
    ask(&parent, &format!("request {} echo", ids[2]))
        .await
        .unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seen: Vec<_> = events_of(&h, &refs).into_iter().skip(1).collect();
    use LifecycleEvent::*;
    assert_eq!(seen, vec![(2, Stopped), (1, Restarted), (2, Restarted)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_restart_intensity_the_supervisor_fails_and_its_parent_hears() {
    let h = harness();
    let top = puppet(&h, "top.toml", "").await;
    let middle = child_file(
        &h,
        "middle.toml",
        "[supervision]\nmax_restarts = 1\nperiod_ms = 60000\n[child]\nrestart = \"temporary\"\n",
    );
    let worker = child_file(&h, "worker.toml", "");
    let mid = ok(&top, &format!("spawn {middle}")).await;
    let mid_handle = h.runtime.actor(&mid).unwrap();
    let w = ok(&mid_handle, &format!("spawn {worker}")).await;
    ask(&mid_handle, &format!("request {w} panic"))
        .await
        .unwrap(); // restart 1: allowed
    ask(&mid_handle, &format!("request {w} panic"))
        .await
        .unwrap(); // restart 2: too many
    let exit = mid_handle.exited().await;
    assert!(
        matches!(&exit, ActorExit::Failed(m) if m.contains("restart intensity exceeded")),
        "{exit:?}"
    );
    assert!(h.runtime.actor(&w).is_none());
    // The top supervisor was told, and (the middle being temporary) did not restart it.
    assert_eq!(ask(&top, "echo").await.unwrap(), "");
    assert_eq!(journal(&top).await, format!("child-error:{mid},"));
    assert!(children(&top).await.is_empty());
    h.runtime.flush().await.unwrap();
    let last = chain_of(h.dir.path(), &mid).pop().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::Shutdown {
            reason: ShutdownReason::Failed,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_parent_stops_its_children_newest_first() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let ids = spawn_children(&parent, &file, 3).await;
    h.lifecycle.lock().unwrap().clear();
    parent.stop().await;
    let mut refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    refs.push(parent.id());
    use LifecycleEvent::*;
    assert_eq!(
        events_of(&h, &refs),
        vec![(2, Stopped), (1, Stopped), (0, Stopped), (3, Stopped)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_does_not_stop_in_time_is_killed_after_the_shutdown_timeout() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[supervision]\nshutdown_timeout_ms = 100\n[limits]\nmax_call_cpu_ms = 600000\n",
    )
    .await;
    let file = child_file(&h, "child.toml", "[limits]\nmax_call_cpu_ms = 600000\n");
    let id = ok(&parent, &format!("spawn {file}")).await;
    let child = h.runtime.actor(&id).unwrap();
    child.send(b"loop".to_vec()).await.unwrap();
    // Wait until it is in the looping call (a stop before it would not need the timeout).
    for _ in 0..5_000 {
        h.runtime.flush().await.unwrap();
        let looping = chain_of(h.dir.path(), &id).iter().any(
            |e| matches!(&e.kind, EventKind::CallStart(c) if c.export.ends_with("handle-send")),
        );
        if looping {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    ok(&parent, &format!("stop {id}")).await;
    assert_eq!(child.exited().await, ActorExit::Stopped);
    assert!(children(&parent).await.is_empty());
    h.runtime.flush().await.unwrap();
    let kinds: Vec<&str> = chain_of(h.dir.path(), &id)
        .iter()
        .map(|e| e.kind.type_name())
        .collect();
    assert_eq!(kinds[kinds.len() - 2..], ["trap", "shutdown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_stop_is_reported_to_the_parent() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let id = ok(&parent, &format!("spawn {file}")).await;
    h.runtime.actor(&id).unwrap().stop().await;
    assert_eq!(ask(&parent, "echo").await.unwrap(), "");
    assert_eq!(journal(&parent).await, format!("child-stop:{id},"));
    assert!(children(&parent).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_init_requests_its_parent_gets_a_cycle_error_not_a_hang() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        "[messaging]\nrequest_timeout_ms = 600000\n",
    )
    .await;
    let file = child_file(&h, "child.toml", "");
    let id = ok(
        &parent,
        &format!("spawn-with init:request {} echo hi|{file}", parent.id()),
    )
    .await;
    assert_eq!(children(&parent).await, vec![id]);
    assert!(
        h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("would deadlock")),
        "{:?}",
        h.logs.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_manifest_cannot_name_files_outside_the_supervisor_root() {
    let h = harness();
    // A parent with the default root: its own manifest's directory.
    let dir = h.dir.path().join("parent");
    std::fs::create_dir(&dir).unwrap();
    let text = format!(
        "name = \"parent\"\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
        test_actors::PUPPET
    );
    std::fs::write(dir.join("parent.toml"), &text).unwrap();
    let manifest = common::from_file(&dir.join("parent.toml")).unwrap();
    let parent = h.runtime.spawn(manifest).await.unwrap();
    puppet_manifest(h.dir.path(), "sibling.toml", "");

    let answer = ask(&parent, "spawn ../sibling.toml").await.unwrap();
    assert!(
        answer.contains("sibling.toml is outside the root"),
        "{answer}"
    );
    let secret = h.dir.path().join("secret.txt");
    std::fs::write(&secret, "do not read").unwrap();
    std::fs::copy(test_actors::PUPPET, dir.join("puppet.wasm")).unwrap();
    let inline = format!(
        "name = \"thief\"\nversion = \"0.1.0\"\ncomponent = \"puppet.wasm\"\ninit_state = {:?}\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
        secret.display().to_string()
    );
    let answer = ask(&parent, &format!("spawn {inline}")).await.unwrap();
    assert!(answer.contains("secret.txt is outside"), "{answer}");
    // Inside the root, the same child is fine.
    let answer = ask(
        &parent,
        &format!(
            "spawn {}",
            inline.replace(&secret.display().to_string(), "puppet.wasm")
        ),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("ok "), "{answer}");
    assert!(children(&parent).await.len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_supervisor_spawns_children_again() {
    let h = harness();
    let parent = puppet(&h, "parent.toml", "").await;
    let file = child_file(&h, "child.toml", "");
    let id = ok(&parent, &format!("spawn {file}")).await;
    ok(&parent, &format!("request {id} spawn {file}")).await;
    // It crashes and is restarted: its new run may have children like the first.
    let answer = ask(&parent, &format!("request {id} panic")).await.unwrap();
    assert!(answer.contains("trapped"), "{answer}");
    let grandchild = ok(&parent, &format!("request {id} spawn {file}")).await;
    assert!(grandchild.starts_with("ok "), "{grandchild}");
    assert_eq!(
        ok(&parent, &format!("request {id} children")).await,
        grandchild.trim_start_matches("ok ")
    );
}
