//! Messaging, as issue 3 defines it: ping-pong round trips (request/response and send/send),
//! counting (one producer, one consumer), a thread ring of 1,000 actors and fork-join
//! creation. One message per export call, every `init` done before timing, a 64-byte state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{ActorHandle, Runtime, RuntimeConfig};

use crate::{Components, Sizes};

pub(crate) const GRANTS: &str = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n[limits]\nmax_call_cpu_ms = 3600000\n[messaging]\nrequest_timeout_ms = 3600000\n";

pub(crate) async fn ask(actor: &ActorHandle, command: String) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let answer = actor
        .request_within(command.into_bytes(), Duration::from_secs(3600))
        .await
        .unwrap();
    (answer, start.elapsed())
}

fn report(mode: &str, bench: &str, n: u64, elapsed: Duration, unit: &str, value: f64) {
    println!(
        "{{\"bench\":\"{bench}\",\"mode\":\"{mode}\",\"n\":{n},\"seconds\":{:.3},\"{unit}\":{value:.3}}}",
        elapsed.as_secs_f64()
    );
}

/// The messaging workloads' runtime: chains persisted in `data_dir` (batched) when `mode` is
/// `recorded`, no hibernation, no log output, `max_instances` instances.
pub(crate) fn config(mode: &str, data_dir: &Path, max_instances: u32) -> RuntimeConfig {
    let recorded = mode == "recorded";
    let mut config = RuntimeConfig {
        handlers: theater_handlers::builtin(),
        data_dir: recorded.then(|| data_dir.to_owned()),
        record: recorded,
        durability: theater::chain::Durability::Batched,
        hibernate_after: None,
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = max_instances;
    config
}

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    match mode {
        "floor" => return crate::floor::messaging(sizes, components),
        "writer-floor" => return crate::floor::writer(sizes),
        _ => {}
    }
    let mode = mode.to_owned();
    let sizes = sizes.clone();
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = config(&mode, data_dir.path(), 2_000);
    let bench_actor = components.bench_actor.clone();
    let child = crate::manifest_text("child", &components.minimal, "");
    crate::on_worker(Some(sizes.workers), async move {
        let runtime = Runtime::new(config).unwrap();
        let spawn = async |name: &str| {
            let manifest = crate::manifest(name, &bench_actor, GRANTS);
            runtime.spawn(manifest).await.unwrap()
        };
        let a = spawn("a").await;
        let b = spawn("b").await;
        // Warm up both paths.
        ask(&a, format!("rr 1000 {}", b.id())).await;
        ask(&a, format!("ss 1000 {}", b.id())).await;

        let n = sizes.scaled(200_000);
        let (_, t) = ask(&a, format!("rr {n} {}", b.id())).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "ping-pong-request", n, t, "round_trip_us", us);

        let (_, t) = ask(&a, format!("ss {n} {}", b.id())).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "ping-pong-send", n, t, "round_trip_us", us);

        let consumer = spawn("consumer").await;
        let n = sizes.scaled(1_000_000);
        let (count, t) = ask(&a, format!("count {n} {}", consumer.id())).await;
        assert_eq!(String::from_utf8(count).unwrap(), n.to_string());
        let rate = n as f64 / t.as_secs_f64();
        report(&mode, "counting", n, t, "messages_per_second", rate);

        let mut ring = Vec::new();
        for i in 0..1_000 {
            ring.push(spawn(&format!("ring-{i}")).await);
        }
        for (i, node) in ring.iter().enumerate() {
            let next = ring[(i + 1) % ring.len()].id().to_owned();
            ask(node, format!("next {next}")).await;
        }
        let hops = sizes.scaled(1_000_000);
        let (_, t) = ask(&ring[0], format!("ring {hops}")).await;
        let us = t.as_secs_f64() * 1e6 / hops as f64;
        report(&mode, "thread-ring", hops, t, "hop_us", us);

        ask(&a, format!("fork 100 {child}")).await;
        let n = sizes.scaled(100_000);
        let (_, t) = ask(&a, format!("fork {n} {child}")).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "fork-join", n, t, "per_child_us", us);

        runtime.shutdown().await.unwrap();
    });
}
