//! Density: how many actors one process holds, what a hibernated one costs, and how long
//! waking one takes.
//!
//! Spawns the density size's actors of the messaging workload's actor (a 64-byte state) from
//! two tasks at once, with hibernation after 100 ms of idleness and the default pool of 10,000
//! instances. Once they have hibernated it reports the resident memory per actor
//! (`hibernated-actor`), then the latency of a request to a hibernated actor (a wake: a new
//! instance, recorded) and of the same request to it again, live (`wake`: medians and 99th
//! percentiles).

use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{Runtime, RuntimeConfig};

use crate::{Components, Sizes};

const GRANTS: &str =
    "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n";

/// Requests timed for each latency figure.
const SAMPLES: usize = 1_000;

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    let mode = mode.to_owned();
    let actors = sizes.density_actors;
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = RuntimeConfig {
        handlers: theater_handlers::builtin(),
        hibernate_after: Some(Duration::from_millis(100)),
        ..crate::config(&mode, data_dir.path())
    };
    // One manifest for all, as a host spawning many of one kind would pass it.
    let manifest = Arc::new(crate::manifest("dense", &components.bench_actor, GRANTS));
    crate::on_worker(None, async move {
        let runtime = Arc::new(Runtime::new(config).unwrap());
        // Warm up: compile, link, and the runtime's own tables.
        for _ in 0..100 {
            runtime.spawn(manifest.clone()).await.unwrap();
        }
        settle(&runtime).await;
        let rss_before = crate::rss_bytes();

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
        let rss_after = crate::rss_bytes();
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
