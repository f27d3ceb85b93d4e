//! Density: how many actors one process holds, what a hibernated one costs, and how long
//! waking one takes.
//!
//! Spawns `THEATER_BENCH_DENSITY_ACTORS` (default 1,000,000) actors of the messaging
//! benchmark's actor (a 64-byte state) from two tasks at once, with hibernation after 100 ms
//! of idleness and the default pool of 10,000 instances. Once they have hibernated it reports
//! the resident memory per actor, then the latency of a request to a hibernated actor (a wake:
//! a new instance, recorded) and of the same request to it again, live.
//!
//! `cargo bench -p theater --bench density` prints two JSON lines per mode, `hibernated-actor`
//! (resident bytes per actor) and `wake` (median microseconds, and the 99th percentile, of a
//! request to a hibernated actor, and of the next one, live), for `recorded` (chains
//! persisted, batched) and `unrecorded`, each mode in a fresh process.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{Runtime, RuntimeConfig};

const MODES: &[&str] = &["recorded", "unrecorded"];

const GRANTS: &str =
    "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n";

/// Requests timed for each latency figure.
const SAMPLES: usize = 1_000;

fn main() {
    common::run_modes(MODES, run_mode);
}

fn run_mode(mode: &str) {
    let mode = mode.to_owned();
    let actors: usize = common::env_or("THEATER_BENCH_DENSITY_ACTORS", 1_000_000);
    let data_dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        hibernate_after: Some(Duration::from_millis(100)),
        ..common::config(&mode, data_dir.path())
    };
    common::on_worker(None, async move {
        let runtime = Arc::new(Runtime::new(config).unwrap());
        // One manifest for all, as a host spawning many of one kind would pass it.
        let manifest = Arc::new(common::manifest("dense", test_actors::BENCH_ACTOR, GRANTS));
        // Warm up: compile, link, and the runtime's own tables.
        for _ in 0..100 {
            runtime.spawn(manifest.clone()).await.unwrap();
        }
        settle(&runtime).await;
        let rss_before = common::rss_bytes();

        let start = Instant::now();
        let spawners: Vec<_> = (0..2)
            .map(|part| {
                let (runtime, manifest) = (runtime.clone(), manifest.clone());
                tokio::spawn(async move {
                    let mut sampled = Vec::new();
                    let mine = actors / 2 + part * (actors % 2);
                    let every = (mine / (SAMPLES / 2)).max(1);
                    for i in 0..mine {
                        let actor = runtime.spawn(manifest.clone()).await.unwrap();
                        if i % every == 0 && sampled.len() < SAMPLES / 2 {
                            sampled.push(actor.id().to_owned());
                        }
                    }
                    sampled
                })
            })
            .collect();
        let mut sampled = Vec::new();
        for s in spawners {
            sampled.extend(s.await.unwrap());
        }
        let spawned = start.elapsed();
        settle(&runtime).await;
        let rss_after = common::rss_bytes();
        let alive = runtime.actor_count();

        let mut wake = Vec::with_capacity(sampled.len());
        let mut live = Vec::with_capacity(sampled.len());
        for id in &sampled {
            let actor = runtime.actor(id).expect("a sampled actor is alive");
            for times in [&mut wake, &mut live] {
                let t = Instant::now();
                actor.request(b"?".to_vec()).await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        println!(
            "{{\"bench\":\"hibernated-actor\",\"mode\":\"{mode}\",\"actors\":{actors},\"alive\":{alive},\"spawn_seconds\":{:.3},\"rss_bytes\":{rss_after},\"bytes_per_actor\":{}}}",
            spawned.as_secs_f64(),
            rss_after.saturating_sub(rss_before) / actors as u64,
        );
        println!(
            "{{\"bench\":\"wake\",\"mode\":\"{mode}\",\"n\":{},\"wake_us\":{:.1},\"wake_us_p99\":{:.1},\"live_us\":{:.1},\"live_us_p99\":{:.1}}}",
            wake.len(),
            percentile(&mut wake, 50),
            percentile(&mut wake, 99),
            percentile(&mut live, 50),
            percentile(&mut live, 99),
        );
        if let Ok(runtime) = Arc::try_unwrap(runtime) {
            runtime.shutdown().await.unwrap();
        }
    });
}

/// Waits until every idle actor has hibernated and every event is committed.
async fn settle(runtime: &Runtime) {
    // The sweeper hibernates actors idle for 100 ms; a second covers its rounds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    runtime.flush().await.unwrap();
}

fn percentile(values: &mut [f64], p: usize) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() * p / 100).min(values.len() - 1)]
}
