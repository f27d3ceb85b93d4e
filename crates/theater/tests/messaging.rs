//! message-server-host and -client with real components: every function, the ordering and
//! deadlock rules, limits, and bad input.

mod common;

use common::*;
use theater::ActorExit;
use theater::chain::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_requests_from_one_sender_arrive_in_order() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    for i in 0..40 {
        let command = format!("send {} note {i}", b.id());
        assert_eq!(ask(&a, &command).await.unwrap(), "ok");
    }
    // The request shares the FIFO with the sends, so it sees all of them.
    let seen = ok(&a, &format!("request {} state", b.id())).await;
    let expected: String = (0..40).map(|i| format!("{i},")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_error_is_an_err_for_the_requester_and_the_actor_keeps_its_state() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    ok(&b, "note kept").await;
    let answer = ask(&a, &format!("request {} fail boom", b.id()))
        .await
        .unwrap();
    assert!(answer.starts_with("err actor b ("), "{answer}");
    assert!(
        answer.ends_with("returned an error for request ") || answer.contains(": boom"),
        "{answer}"
    );
    assert_eq!(
        ok(&a, &format!("request {} echo still here", b.id())).await,
        "still here"
    );
    assert_eq!(journal(&b).await, "kept,");
    // The error is recorded as the call's end, with the state hash unchanged.
    h.runtime.flush().await.unwrap();
    let events = chain_of(h.dir.path(), b.id());
    let failed = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallEnd(c) if c.outcome.is_err() => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(failed.outcome, Err("boom".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_stopped_targets_and_unknown_ids_are_clear_errors() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    let answer = ask(&a, "send 0000-nobody hi").await.unwrap();
    assert!(answer.contains("no actor 0000-nobody"), "{answer}");
    b.stop().await;
    let answer = ask(&a, &format!("request {} echo x", b.id()))
        .await
        .unwrap();
    assert!(
        answer.contains("no actor") || answer.contains("stopped"),
        "{answer}"
    );
    let answer = ask(&a, "respond 1234-5 late").await.unwrap();
    assert!(answer.contains("no outstanding request 1234-5"), "{answer}");
    let answer = ask(&a, "cancel 1234-5").await.unwrap();
    assert!(answer.contains("no outstanding request 1234-5"), "{answer}");
    let answer = ask(&a, "chan ch-nope hi").await.unwrap();
    assert!(answer.contains("no open channel ch-nope"), "{answer}");
    let answer = ask(&a, "close ch-nope").await.unwrap();
    assert!(answer.contains("no open channel ch-nope"), "{answer}");
    // Nothing else was disturbed.
    assert_eq!(ask(&a, "echo fine").await.unwrap(), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_requests_are_listed_answered_later_or_cancelled() {
    let h = harness();
    let b = puppet(&h, "b.toml", "").await;
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { ask(&b, "defer").await })
    };
    // Host requests come from outside any actor, so they do not wait on each other.
    let ids = outstanding(&b).await;
    let ids: Vec<&str> = ids.split(' ').collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ok(&b, &format!("respond {} later", ids[0])).await, "");
    assert_eq!(waiting.await.unwrap().unwrap(), "later");
    assert_eq!(ask(&b, "outstanding").await.unwrap(), "");

    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { ask(&b, "defer").await })
    };
    let id = outstanding(&b).await;
    ok(&b, &format!("cancel {id}")).await;
    let err = waiting.await.unwrap().unwrap_err();
    assert!(err.contains(&format!("cancelled request {id}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_closes_a_cycle_fails_at_once_naming_it() {
    let h = harness();
    // A long timeout: only the cycle check can make this quick.
    let slow = "[messaging]\nrequest_timeout_ms = 600000\n";
    let a = puppet(&h, "a.toml", slow).await;
    let b = puppet(&h, "b.toml", slow).await;
    let c = puppet(&h, "c.toml", slow).await;

    // A asks B, and B (while A waits) asks A: B's request is refused, A's is answered.
    let answer = ok(
        &a,
        &format!("request {} request {} echo hi", b.id(), a.id()),
    )
    .await;
    assert!(answer.starts_with("err request "), "{answer}");
    assert!(answer.contains("would deadlock"), "{answer}");
    let b_label = format!("b ({})", &b.id()[..8]);
    let a_label = format!("a ({})", &a.id()[..8]);
    assert!(
        answer.contains(&format!("{b_label} -> {a_label} -> {b_label}")),
        "{answer}"
    );

    // Three actors: A -> B -> C -> A.
    let answer = ok(
        &a,
        &format!(
            "request {} request {} request {} echo hi",
            b.id(),
            c.id(),
            a.id()
        ),
    )
    .await;
    assert!(answer.contains("would deadlock"), "{answer}");
    assert!(
        answer.contains(&format!("{a_label} -> {b_label}")),
        "{answer}"
    );

    // Asking yourself is the shortest cycle.
    let answer = ask(&a, &format!("request {} echo me", a.id()))
        .await
        .unwrap();
    assert!(answer.contains("would deadlock"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_carry_messages_both_ways_until_either_side_closes() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    let channel = ok(&a, &format!("open {} hello", b.id())).await;
    assert!(channel.starts_with("ch-"), "{channel}");
    ok(&a, &format!("chan {channel} echo ping")).await;
    // B answers on the channel; A sees B's greeting first, then the answer.
    let seen = ok(&b, &format!("request {} state", a.id())).await;
    assert_eq!(seen, "chan:welcome,chan:re:ping,");
    assert_eq!(
        journal(&b).await,
        format!("open:{channel}:hello,chan:echo ping,")
    );
    // B closes; A hears it, and using the channel is an error on both sides.
    ok(&b, &format!("close {channel}")).await;
    let seen = ok(&b, &format!("request {} state", a.id())).await;
    assert!(seen.ends_with(&format!("closed:{channel},")), "{seen}");
    for side in [&a, &b] {
        let answer = ask(side, &format!("chan {channel} more")).await.unwrap();
        assert!(answer.contains("no open channel"), "{answer}");
    }
    // A refused channel is an err carrying the refusal.
    let answer = ask(&a, &format!("open {} reject", b.id())).await.unwrap();
    assert!(answer.contains("refused the channel: go away"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_full_mailboxes_are_errors_not_drops() {
    let h = harness();
    let a = puppet(&h, "a.toml", "[messaging]\nrequest_timeout_ms = 300\n").await;
    let b = puppet(
        &h,
        "b.toml",
        "[messaging]\nmax_message_bytes = 64\nmailbox_capacity = 1\n",
    )
    .await;
    let c = puppet(&h, "c.toml", "").await;
    let answer = ask(&a, &format!("send {} note {}", b.id(), "x".repeat(100)))
        .await
        .unwrap();
    assert!(answer.contains("over actor b"), "{answer}");
    assert!(answer.contains("max_message_bytes"), "{answer}");

    // Keep B busy: it waits on a request that C defers.
    let busy = {
        let b = b.clone();
        let c_id = c.id().to_owned();
        tokio::spawn(async move { ask(&b, &format!("request {c_id} defer")).await })
    };
    let deferred = outstanding(&c).await;
    assert_eq!(
        ask(&a, &format!("send {} note first", b.id()))
            .await
            .unwrap(),
        "ok"
    );
    let answer = ask(&a, &format!("send {} note second", b.id()))
        .await
        .unwrap();
    assert!(answer.contains("mailbox of actor b"), "{answer}");
    assert!(answer.contains("is full"), "{answer}");
    ok(&c, &format!("respond {deferred} done")).await;
    assert_eq!(busy.await.unwrap().unwrap(), "ok done");
    assert_eq!(journal(&b).await, "first,");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_a_handler_ends_the_actor_and_fails_its_request() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    let answer = ask(&a, &format!("request {} panic", b.id())).await.unwrap();
    assert!(answer.contains("trapped handling request"), "{answer}");
    assert!(matches!(b.exited().await, ActorExit::Failed(m) if m.contains("unreachable")));
    // A keeps running.
    assert_eq!(ask(&a, "echo alive").await.unwrap(), "alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_carries_one_id_from_the_senders_chain_to_the_receivers() {
    let h = harness();
    let a = puppet(&h, "a.toml", "").await;
    let b = puppet(&h, "b.toml", "").await;
    ok(&a, &format!("send {} note traced", b.id())).await;
    ok(&a, &format!("request {} echo traced", b.id())).await;
    h.runtime.flush().await.unwrap();
    let sent: Vec<String> = chain_of(h.dir.path(), a.id())
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HostCall(c) if c.interface.ends_with("message-server-host") => c.message_id,
            _ => None,
        })
        .collect();
    let received: Vec<(String, String)> = chain_of(h.dir.path(), b.id())
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::CallStart(c) => Some((c.message_id?, c.sender?)),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        received,
        sent.iter()
            .map(|id| (id.clone(), a.id().to_owned()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_actor_wakes_with_a_fresh_instance_for_its_next_message() {
    let h = harness_with(|c| c.hibernate_after = Some(std::time::Duration::from_millis(20)));
    let a = puppet(&h, "a.toml", "").await;
    ok(&a, "note before").await;
    // Wait until the sweeper has dropped its instance: the next call then records a wake.
    let mut woke = false;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        ok(&a, "note again").await;
        h.runtime.flush().await.unwrap();
        woke = common::wakes(h.dir.path(), a.id()) > 0;
        if woke {
            break;
        }
    }
    assert!(woke, "no wake was recorded");
    // The state survived hibernation.
    assert!(journal(&a).await.starts_with("before,again,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requesters_waiting_on_an_idle_actor_do_not_hold_every_place() {
    // Eight instances: four actors may run at once. Four clients each wait on a request the
    // gate deferred, so the gate is idle. A client waiting for its answer must not keep the
    // place the gate needs to run (it lends it), or nothing could reach the gate until the
    // requests time out.
    let h = common::harness_with(|c| {
        c.engine.max_instances = 8;
        c.hibernate_after = Some(std::time::Duration::from_secs(3600));
    });
    let gate = common::puppet(&h, "gate.toml", "").await;
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let client = common::puppet(
            &h,
            &format!("c{i}.toml"),
            "[messaging]\nrequest_timeout_ms = 20000\n",
        )
        .await;
        let gate = gate.id().to_owned();
        asks.spawn(async move { common::ask(&client, &format!("request {gate} defer")).await });
    }
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let deferred = loop {
        assert!(
            std::time::Instant::now() < give_up,
            "the gate never held all four requests"
        );
        let listed = common::ask(&gate, "outstanding").await.unwrap();
        let ids: Vec<String> = listed.split_whitespace().map(str::to_owned).collect();
        if ids.len() == 4 {
            break ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    for id in &deferred {
        assert_eq!(common::ok(&gate, &format!("respond {id} done")).await, "");
    }
    while let Some(answer) = asks.join_next().await {
        assert_eq!(answer.unwrap().unwrap(), "ok done");
    }
}

/// A hibernated actor with a deferred request keeps its whole context (the request's reply
/// among it), and answers after it wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_request_survives_hibernation() {
    let h = harness_with(|c| c.hibernate_after = Some(std::time::Duration::from_millis(20)));
    let gate = puppet(&h, "gate.toml", "").await;
    let client = puppet(
        &h,
        "client.toml",
        "[messaging]\nrequest_timeout_ms = 20000\n",
    )
    .await;
    let target = gate.id().to_owned();
    let asked =
        tokio::spawn(async move { common::ask(&client, &format!("request {target} defer")).await });
    let id = loop {
        let listed = common::ask(&gate, "outstanding").await.unwrap();
        if let Some(id) = listed.split_whitespace().next() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    // Long enough for the sweeper to hibernate the idle gate several times over.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(ok(&gate, &format!("respond {id} later")).await, "");
    assert_eq!(asked.await.unwrap().unwrap(), "ok later");
    h.runtime.flush().await.unwrap();
    let woke = common::wakes(h.dir.path(), gate.id()) > 0;
    assert!(woke, "the gate never hibernated");
}
