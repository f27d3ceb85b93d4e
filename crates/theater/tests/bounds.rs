//! Every queue and buffer a guest can fill is bounded: mailboxes by count and bytes, the
//! runtime's budget of mailbox bytes, answers and child states, deferred requests, chains kept
//! in memory, whole-chain reads, and log lines. Each test fills one with a real guest.

mod common;

use std::time::Duration;

use common::{Harness, ask, harness, harness_with, ok, outstanding, puppet, puppet_manifest};
use theater::{ActorExit, ManifestOrigin};

/// A puppet `receiver` stuck in a call (a request to a puppet that defers it) for about
/// `busy_ms`, and a puppet `sender` whose sends wait at most 300 ms for room.
async fn busy_receiver(h: &Harness, receiver_extra: &str, busy_ms: u64) -> (String, String) {
    let sink = puppet(h, "sink.toml", "").await;
    let receiver = puppet(
        h,
        "receiver.toml",
        &format!("[messaging]\nrequest_timeout_ms = {busy_ms}\n{receiver_extra}"),
    )
    .await;
    let sender = puppet(h, "sender.toml", "[messaging]\nrequest_timeout_ms = 300\n").await;
    // The receiver asks the sink, which defers: the receiver is busy until its timeout.
    receiver
        .send(format!("request {} defer", sink.id()).into_bytes())
        .await
        .unwrap();
    outstanding(&sink).await;
    (receiver.id().to_owned(), sender.id().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_holds_at_most_its_bytes() {
    let h = harness();
    let (receiver, sender) = busy_receiver(
        &h,
        "mailbox_bytes = 3000\nmax_message_bytes = 2000\n",
        3_000,
    )
    .await;
    let sender = h.runtime.actor(&sender).unwrap();
    // 1,500 bytes twice fill the 3,000; the third waits for room, then fails.
    assert_eq!(ok(&sender, &format!("big-send {receiver} 1500")).await, "");
    assert_eq!(ok(&sender, &format!("big-send {receiver} 1500")).await, "");
    let answer = ask(&sender, &format!("big-send {receiver} 1500"))
        .await
        .unwrap();
    assert!(
        answer.starts_with("err") && answer.contains("3000 bytes") && answer.contains("is full"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_mailboxes_together_hold_at_most_the_runtimes_budget() {
    let h = harness_with(|c| c.mailbox_budget_bytes = 4_000);
    let (receiver, sender) = busy_receiver(&h, "", 3_000).await;
    let sender = h.runtime.actor(&sender).unwrap();
    assert_eq!(ok(&sender, &format!("big-send {receiver} 3000")).await, "");
    // Within the receiver's own limits, over the runtime's: refused at once, not after a wait.
    let started = std::time::Instant::now();
    let answer = ask(&sender, &format!("big-send {receiver} 3000"))
        .await
        .unwrap();
    assert!(
        answer.contains("whole budget of 4000 bytes") && answer.contains("--mailbox-budget-mb"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_child_states_are_held_to_the_requesters_message_limit() {
    let h = harness();
    let requester = puppet(
        &h,
        "requester.toml",
        "[messaging]\nmax_message_bytes = 1000\n",
    )
    .await;
    let answerer = puppet(&h, "answerer.toml", "").await;
    let id = answerer.id();

    assert_eq!(
        ok(&requester, &format!("request {id} big-answer 900"))
            .await
            .len(),
        900
    );
    let answer = ask(&requester, &format!("request {id} big-answer 5000"))
        .await
        .unwrap();
    assert!(
        answer.contains("an answer of 5000 bytes is over the requester's limit of 1000 bytes"),
        "{answer}"
    );

    // `respond-to-request` with too much: an error for the answerer, and the request stays
    // outstanding, so a smaller answer can still go.
    let asking = {
        let requester = requester.clone();
        let id = id.to_owned();
        tokio::spawn(async move { ask(&requester, &format!("request {id} defer")).await })
    };
    let rid = outstanding(&answerer).await;
    let big = "x".repeat(2000);
    let refused = ask(&answerer, &format!("respond {rid} {big}"))
        .await
        .unwrap();
    assert!(refused.contains("over the requester's limit"), "{refused}");
    assert_eq!(ask(&answerer, "outstanding").await.unwrap(), rid);
    assert_eq!(ok(&answerer, &format!("respond {rid} small")).await, "");
    assert_eq!(asking.await.unwrap().unwrap(), "ok small");

    // A child's state is a message to its parent.
    puppet_manifest(h.dir.path(), "child.toml", "");
    let child = ok(&requester, "spawn child.toml").await;
    let note = "y".repeat(400);
    for _ in 0..3 {
        ok(&requester, &format!("request {child} note {note}")).await;
    }
    let state = ask(&requester, &format!("child-state {child}"))
        .await
        .unwrap();
    assert!(
        state.starts_with("err") && state.contains("over this actor's limit of 1000 bytes"),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_request_is_forgotten_when_its_requester_gives_up() {
    let h = harness();
    let requester = puppet(
        &h,
        "requester.toml",
        "[messaging]\nrequest_timeout_ms = 200\n",
    )
    .await;
    let answerer = puppet(&h, "answerer.toml", "").await;
    let answer = ask(&requester, &format!("request {} defer", answerer.id()))
        .await
        .unwrap();
    assert!(answer.contains("got no answer within 200 ms"), "{answer}");
    assert_eq!(ask(&answerer, "outstanding").await.unwrap(), "");
    // Nothing is left waiting: the runtime is quiescent.
    tokio::time::timeout(Duration::from_secs(5), h.runtime.quiescent())
        .await
        .expect("quiescent once the requester gave up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_kept_in_memory_stops_its_actor_at_its_limit() {
    let h = harness();
    let text = format!(
        "save_chain = false\nname = \"forgetful\"\nversion = \"1\"\ncomponent = {:?}\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
        test_actors::PUPPET
    );
    let manifest = common::parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap();
    let actor = h.runtime.spawn(manifest).await.unwrap();
    let mb = "e".repeat((1 << 20) - 100);
    let mut calls = 0;
    // Each call records its message and its answer; 64 MiB of them fill the chain.
    while calls < 100 && ask(&actor, &format!("echo {mb}")).await.is_ok() {
        calls += 1;
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), actor.exited())
        .await
        .unwrap();
    let ActorExit::Failed(why) = exit else {
        panic!("{exit:?}")
    };
    assert!(
        why.contains("kept in memory (save_chain = false), reached its limit of 67108864 bytes"),
        "{why}"
    );
    assert!((25..40).contains(&calls), "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_is_read_in_ranges_and_get_chain_refuses_it_clearly() {
    let h = harness();
    let actor = puppet(&h, "long.toml", "").await;
    // Reads see committed events: flush first.
    h.runtime.flush().await.unwrap();
    assert_eq!(ok(&actor, "chain-loop 3").await.split(' ').count(), 1);
    h.runtime.flush().await.unwrap();
    // Ranged reads of its own chain: the first events, then a middle range linked to the
    // event before it, then nothing past the end.
    assert_eq!(
        ok(&actor, "chain-range own 0 2").await,
        "2 spawn true false"
    );
    let middle = ok(&actor, "chain-range own 3 4").await;
    assert!(
        middle.starts_with("4 ") && middle.ends_with(" true true"),
        "{middle}"
    );
    assert_eq!(
        ok(&actor, "chain-range own 100000 5").await,
        "0  true false"
    );
    // One read returns at most 1,000 events.
    for _ in 0..600 {
        ask(&actor, "echo x").await.unwrap();
    }
    h.runtime.flush().await.unwrap();
    assert!(
        ok(&actor, "chain-range own 0 5000")
            .await
            .starts_with("1000 ")
    );
    // A child's chain, for its parent only.
    puppet_manifest(h.dir.path(), "child.toml", "");
    let child = ok(&actor, "spawn child.toml").await;
    h.runtime.flush().await.unwrap();
    assert_eq!(
        ok(&actor, &format!("chain-range {child} 0 1")).await,
        "1 spawn true false"
    );
    let stranger = puppet(&h, "stranger.toml", "").await;
    let refused = ask(&stranger, &format!("chain-range {child} 0 1"))
        .await
        .unwrap();
    assert!(refused.contains("is not a running child"), "{refused}");

    // Past 1,000 events a whole-chain read traps, naming the way out.
    let _ = ask(&actor, "chain-loop 1").await;
    let exit = tokio::time::timeout(Duration::from_secs(10), actor.exited())
        .await
        .unwrap();
    let ActorExit::Failed(why) = exit else {
        panic!("{exit:?}")
    };
    assert!(
        why.contains("more than the 1000 that a read of a whole chain returns")
            && why.contains("theater:simple/chain"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_capped_in_size_and_rate() {
    let h = harness();
    let actor = puppet(&h, "chatty.toml", "").await;
    ok(&actor, "log-flood 1 100000").await;
    let started = std::time::Instant::now();
    ok(&actor, "log-flood 5000 10").await;
    // A burst of 1,000, then 100 a second for as long as the flood took.
    let earned = (started.elapsed().as_secs_f64() * 100.0).ceil() as usize;
    // Earned back at 100 lines a second: the next line says how many were held back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    ok(&actor, "log-flood 1 10").await;
    let logs = h.logs.lock().unwrap().clone();
    let long = &logs[0];
    assert!(
        long.len() < 16 * 1024 + 100 && long.ends_with("(83616 more bytes not printed)"),
        "{}",
        long.len()
    );
    let printed = logs.iter().filter(|l| l.as_str() == "xxxxxxxxxx").count();
    assert!(
        (999..=1001 + earned + 5).contains(&printed),
        "{printed} printed, {earned} earned"
    );
    let notice = logs
        .iter()
        .find(|l| l.contains("log lines not printed"))
        .expect("a notice of the held-back lines");
    assert!(notice.contains("the chain has them"), "{notice}");
    // Lines held back at the end of a flood are counted when the actor stops.
    ok(&actor, "log-flood 3000 10").await;
    actor.stop().await;
    let logs = h.logs.lock().unwrap().clone();
    assert!(
        logs.last().unwrap().contains("log lines not printed"),
        "{:?}",
        logs.last()
    );
}

#[test]
fn limits_above_their_ceilings_are_refused_when_parsed() {
    let parse = |extra: &str| {
        common::parse(
            &format!("name = \"a\"\nversion = \"1\"\ncomponent = \"a.wasm\"\n{extra}"),
            ManifestOrigin::Inline {
                base_dir: ".".into(),
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    for (extra, message) in [
        (
            "[messaging]\nmailbox_capacity = 1000001\n",
            "`messaging.mailbox_capacity` = 1000001 is more than the most allowed, 1000000",
        ),
        (
            "[messaging]\nmailbox_bytes = 4294967297\n",
            "`messaging.mailbox_bytes` = 4294967297 is more than the most allowed, 4294967296",
        ),
        (
            "[messaging]\nmax_message_bytes = 268435457\n",
            "is more than the most allowed, 268435456",
        ),
        (
            "[supervision]\nmax_children = 1000001\n",
            "`supervision.max_children` = 1000001 is more than the most allowed, 1000000",
        ),
    ] {
        let err = parse(extra).unwrap_err();
        assert!(err.contains(message), "{err}");
    }
    assert!(parse("[messaging]\nmailbox_bytes = 4096\n").is_ok());
}
