//! Spawn: N actors of a minimal component (`init` only), spawned one after another from the
//! host; microseconds per spawn, chain events appended per second and resident bytes per idle
//! actor.
//!
//! Modes: `recorded` (chains persisted), `memory` (chains kept in memory), `unrecorded` (no
//! chain at all), `recorded-hibernating` (persisted, and idle actors hibernate after 100 ms).

use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::{Runtime, RuntimeConfig};

use crate::{Components, Sizes};

/// spawn, instance, call-start, call-end (the minimal actor makes no host calls).
const EVENTS_PER_SPAWN: f64 = 4.0;

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    if mode == "floor" {
        return crate::floor::spawn(sizes, components);
    }
    let mode = mode.to_owned();
    let actors = sizes.actors;
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let persisted = mode.starts_with("recorded");
    let hibernating = mode.ends_with("hibernating");
    let mut config = RuntimeConfig {
        handlers: theater_handlers::builtin(),
        data_dir: persisted.then(|| data_dir.path().to_owned()),
        record: mode != "unrecorded",
        hibernate_after: hibernating.then(|| Duration::from_millis(100)),
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = actors as u32 + 100;
    // A manifest cloned per spawn, as earlier sittings measured it.
    let manifest = crate::manifest("minimal", &components.minimal, "");
    crate::on_worker(None, async move {
        let runtime = Runtime::new(config).unwrap();
        // Warm up: compile, link, and touch the code paths once.
        let mut handles = Vec::with_capacity(actors + 50);
        for _ in 0..50 {
            handles.push(runtime.spawn(manifest.clone()).await.unwrap());
        }
        runtime.flush().await.unwrap();
        let rss_before = crate::rss_bytes();

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
        let rss_after = crate::rss_bytes();
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
