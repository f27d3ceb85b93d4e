//! Messaging benchmarks, as issue 3 defines them: ping-pong round trips (request/response and
//! send/send), counting (one producer, one consumer), a thread ring and fork-join creation.
//! One message per export call, every `init` done before timing, a 64-byte state.
//!
//! `cargo bench -p theater --bench messaging` runs each mode in a fresh process and prints one
//! JSON line per benchmark: `recorded` (chains persisted, batched durability) and `unrecorded`
//! (no chain at all). `THEATER_BENCH_SCALE` (default 1.0) scales every count, for quick runs.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{manifest, scaled};
use theater::{ActorHandle, Runtime, RuntimeConfig};

const MODES: &[&str] = &["recorded", "unrecorded"];

fn main() {
    common::run_modes(MODES, run_mode);
}

const GRANTS: &str = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n[limits]\nmax_call_cpu_ms = 3600000\n[messaging]\nrequest_timeout_ms = 3600000\n";

async fn bench_actor(runtime: &Runtime, name: &str) -> ActorHandle {
    runtime
        .spawn(manifest(name, test_actors::BENCH_ACTOR, GRANTS))
        .await
        .unwrap()
}

async fn ask(actor: &ActorHandle, command: String) -> (Vec<u8>, Duration) {
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

fn run_mode(mode: &str) {
    let mode = mode.to_owned();
    let data_dir = tempfile::tempdir().unwrap();
    let recorded = mode == "recorded";
    let mut config = RuntimeConfig {
        data_dir: recorded.then(|| data_dir.path().to_owned()),
        record: recorded,
        durability: theater::chain::Durability::Batched,
        hibernate_after: None,
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = 2_000;
    let workers: usize = std::env::var("THEATER_BENCH_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    common::on_worker(Some(workers), async move {
        let runtime = Runtime::new(config).unwrap();
        let a = bench_actor(&runtime, "a").await;
        let b = bench_actor(&runtime, "b").await;
        // Warm up both paths.
        ask(&a, format!("rr 1000 {}", b.id())).await;
        ask(&a, format!("ss 1000 {}", b.id())).await;

        let n = scaled(200_000);
        let (_, t) = ask(&a, format!("rr {n} {}", b.id())).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "ping-pong-request", n, t, "round_trip_us", us);

        let (_, t) = ask(&a, format!("ss {n} {}", b.id())).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "ping-pong-send", n, t, "round_trip_us", us);

        let consumer = bench_actor(&runtime, "consumer").await;
        let n = scaled(1_000_000);
        let (count, t) = ask(&a, format!("count {n} {}", consumer.id())).await;
        assert_eq!(String::from_utf8(count).unwrap(), n.to_string());
        let rate = n as f64 / t.as_secs_f64();
        report(&mode, "counting", n, t, "messages_per_second", rate);

        let mut ring = Vec::new();
        for i in 0..1_000 {
            ring.push(bench_actor(&runtime, &format!("ring-{i}")).await);
        }
        for (i, node) in ring.iter().enumerate() {
            let next = ring[(i + 1) % ring.len()].id().to_owned();
            ask(node, format!("next {next}")).await;
        }
        let hops = scaled(1_000_000);
        let (_, t) = ask(&ring[0], format!("ring {hops}")).await;
        let us = t.as_secs_f64() * 1e6 / hops as f64;
        report(&mode, "thread-ring", hops, t, "hop_us", us);

        let child = format!(
            "name = \"child\"\nversion = \"0.1.0\"\ncomponent = {:?}\n",
            test_actors::MINIMAL
        );
        ask(&a, format!("fork 100 {child}")).await;
        let n = scaled(100_000);
        let (_, t) = ask(&a, format!("fork {n} {child}")).await;
        let us = t.as_secs_f64() * 1e6 / n as f64;
        report(&mode, "fork-join", n, t, "per_child_us", us);

        runtime.shutdown().await.unwrap();
    });
}
