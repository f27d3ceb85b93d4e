//! Spawn benchmark: spawns N actors of a minimal component (init only) and prints one JSON line
//! per mode with spawns per second, chain events appended per second and resident bytes per
//! idle actor.
//!
//! `cargo bench -p theater --bench spawn` runs every mode, each in a fresh process so that one
//! mode's memory does not blur the next. `THEATER_BENCH_ACTORS` sets N (default 10000).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{Runtime, RuntimeConfig};

/// `recorded`: chains persisted (batched); `memory`: chains kept in memory; `unrecorded`: no
/// chain at all; `recorded-hibernating`: persisted, and idle actors hibernate after 100 ms.
const MODES: &[&str] = &["recorded", "memory", "unrecorded", "recorded-hibernating"];

fn main() {
    common::run_modes(MODES, run_mode);
}

fn run_mode(mode: &str) {
    let mode = mode.to_owned();
    let actors: usize = common::env_or("THEATER_BENCH_ACTORS", 10_000);
    let data_dir = tempfile::tempdir().unwrap();
    let persisted = mode.starts_with("recorded");
    let hibernating = mode.ends_with("hibernating");
    let mut config = RuntimeConfig {
        data_dir: persisted.then(|| data_dir.path().to_owned()),
        record: mode != "unrecorded",
        hibernate_after: hibernating.then(|| Duration::from_millis(100)),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = actors as u32 + 100;
    common::on_worker(None, async move {
        let runtime = Runtime::new(config).unwrap();
        let manifest = common::manifest("minimal", test_actors::MINIMAL, "");
        // Warm up: compile, link, and touch the code paths once.
        let mut handles = Vec::with_capacity(actors);
        for _ in 0..50 {
            handles.push(runtime.spawn(manifest.clone()).await.unwrap());
        }
        runtime.flush().await.unwrap();
        let rss_before = common::rss_bytes();

        let start = Instant::now();
        for _ in 0..actors {
            handles.push(runtime.spawn(manifest.clone()).await.unwrap());
        }
        let spawned = start.elapsed();
        runtime.flush().await.unwrap();
        let committed = start.elapsed();
        if hibernating {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rss_after = common::rss_bytes();
        let events = actors as f64 * EVENTS_PER_SPAWN;
        println!(
            "{{\"bench\":\"spawn\",\"mode\":\"{mode}\",\"actors\":{actors},\"us_per_spawn\":{:.2},\"spawns_per_sec\":{:.0},\"events_per_sec\":{:.0},\"events_committed_per_sec\":{:.0},\"rss_bytes_per_idle_actor\":{},\"live_actors\":{}}}",
            spawned.as_secs_f64() * 1e6 / actors as f64,
            actors as f64 / spawned.as_secs_f64(),
            events / spawned.as_secs_f64(),
            if persisted {
                events / committed.as_secs_f64()
            } else {
                0.0
            },
            rss_after.saturating_sub(rss_before) / actors as u64,
            runtime.actor_count(),
        );
        drop(handles);
        runtime.shutdown().await.unwrap();
    });
}

/// spawn, instance, call-start, call-end (the minimal actor makes no host calls).
const EVENTS_PER_SPAWN: f64 = 4.0;
