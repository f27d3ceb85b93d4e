//! What recording costs and what replay gains, on the counting benchmark of issue 3 (one
//! bench actor sends N messages to another).
//!
//! `cargo bench -p theater --bench recording` prints one JSON line per measurement:
//! - `durability`: counting with no chain, chains in memory (`save_chain = false`), persisted
//!   `batched`, and persisted `every-event` (an fsync'd commit before each event's call goes on),
//!   with each setting's throughput as a ratio of the unrecorded one;
//! - `replay`: the same run's chains replayed, events per second live and in replay;
//! - `replay-sleepy`: the dice example (random numbers, 20 ms sleeps), where replay skips the
//!   waiting.
//!
//! `THEATER_BENCH_SCALE` scales N (default 1: 200,000 messages; every-event uses 1/100 of that).

use std::sync::Arc;
use std::time::{Duration, Instant};

use theater::chain::{ChainReader, Durability};
use theater::replay::{ReplayOptions, ReplaySources, replay_chain};
use theater::{ActorHandle, Manifest, ManifestOrigin, Runtime, RuntimeConfig};

const GRANTS: &str = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n[limits]\nmax_call_cpu_ms = 3600000\n[messaging]\nrequest_timeout_ms = 3600000\n[chain]\nsnapshot_every = 0\n";

#[derive(Clone, Copy, PartialEq)]
enum Setting {
    Unrecorded,
    Memory,
    Batched,
    EveryEvent,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Unrecorded => "none",
            Setting::Memory => "memory",
            Setting::Batched => "batched",
            Setting::EveryEvent => "every-event",
        }
    }
}

/// Counting under `setting`: (messages per second, the runtime's data dir, the two actors' ids,
/// the time it took).
async fn counting(setting: Setting, n: u64) -> (f64, tempfile::TempDir, [String; 2], Duration) {
    let dir = tempfile::tempdir().unwrap();
    let persisted = matches!(setting, Setting::Batched | Setting::EveryEvent);
    let mut config = RuntimeConfig {
        data_dir: persisted.then(|| dir.path().to_owned()),
        record: setting != Setting::Unrecorded,
        durability: if setting == Setting::EveryEvent {
            Durability::EveryEvent
        } else {
            Durability::Batched
        },
        hibernate_after: None,
        on_log: Arc::new(|_| {}),
        ..Default::default()
    };
    config.engine.max_instances = 16;
    let runtime = Runtime::new(config).unwrap();
    let extra = if setting == Setting::Memory {
        format!("save_chain = false\n{GRANTS}")
    } else {
        GRANTS.to_owned()
    };
    let spawn =
        |name: &'static str| runtime.spawn(manifest(name, test_actors::BENCH_ACTOR, &extra));
    let producer: ActorHandle = spawn("producer").await.unwrap();
    let consumer: ActorHandle = spawn("consumer").await.unwrap();
    let command = |n: u64| format!("count {n} {}", consumer.id()).into_bytes();
    producer
        .request_within(command(100), Duration::from_secs(3600))
        .await
        .unwrap();
    let start = Instant::now();
    let count = producer
        .request_within(command(n), Duration::from_secs(3600))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    // The consumer counted the warm-up too.
    assert_eq!(String::from_utf8(count).unwrap(), (n + 100).to_string());
    let ids = [producer.id().to_owned(), consumer.id().to_owned()];
    runtime.shutdown().await.unwrap();
    (n as f64 / elapsed.as_secs_f64(), dir, ids, elapsed)
}

async fn replay(dir: &std::path::Path, id: &str) -> (u64, Duration) {
    let (_, events) = ChainReader::open(dir).unwrap().chain(id).unwrap();
    let options = ReplayOptions {
        compiled_cache: Some(dir.join("compiled")),
        ..Default::default()
    };
    let summary = replay_chain(id, events, ReplaySources::data_dir(dir), options)
        .await
        .unwrap();
    // Setup (engine, component) counts: a user waits for it too.
    (summary.events, summary.setup + summary.elapsed)
}

/// Events of `id`'s chain recorded after the warm-up (from the first call-start of the timed
/// request on): the events the timed part of the run produced.
fn timed_events(dir: &std::path::Path, id: &str) -> u64 {
    ChainReader::open(dir).unwrap().chain(id).unwrap().1.len() as u64
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let n = scaled(200_000);
        let (base, ..) = counting(Setting::Unrecorded, n).await;
        for setting in [Setting::Unrecorded, Setting::Memory, Setting::Batched, Setting::EveryEvent] {
            let n = if setting == Setting::EveryEvent { (n / 100).max(1) } else { n };
            let (rate, dir, ids, live) = counting(setting, n).await;
            println!(
                "{{\"bench\":\"durability\",\"setting\":\"{}\",\"n\":{n},\"messages_per_second\":{rate:.0},\"ratio_to_none\":{:.3}}}",
                setting.name(),
                rate / base
            );
            if setting != Setting::Batched {
                continue;
            }
            // Replay both chains of the batched run. Live: the run's events over its time
            // (the warm-up's few events included on both sides).
            for (role, id) in ["producer", "consumer"].iter().zip(&ids) {
                let events = timed_events(dir.path(), id);
                let (replayed, took) = replay(dir.path(), id).await;
                assert_eq!(replayed, events);
                println!(
                    "{{\"bench\":\"replay\",\"chain\":\"{role}\",\"events\":{events},\"live_events_per_second\":{:.0},\"replay_events_per_second\":{:.0},\"speedup\":{:.2}}}",
                    events as f64 / live.as_secs_f64(),
                    events as f64 / took.as_secs_f64(),
                    live.as_secs_f64() / took.as_secs_f64()
                );
            }
        }

        // Dice: 50 rolls 20 ms apart, in init. Replay answers the sleeps from the chain.
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(RuntimeConfig {
            data_dir: Some(dir.path().to_owned()),
            on_log: Arc::new(|_| {}),
            ..Default::default()
        })
        .unwrap();
        let dice = manifest(
            "dice",
            test_actors::DICE,
            "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"timing\"\n[[handler]]\ntype = \"random\"\n[[handler]]\ntype = \"environment\"\n",
        );
        let start = Instant::now();
        let actor = runtime.spawn_with(dice, Some(b"demo 50".to_vec())).await.unwrap();
        let live = start.elapsed();
        let id = actor.id().to_owned();
        runtime.shutdown().await.unwrap();
        let events = timed_events(dir.path(), &id);
        let (_, took) = replay(dir.path(), &id).await;
        println!(
            "{{\"bench\":\"replay-sleepy\",\"events\":{events},\"live_seconds\":{:.3},\"replay_seconds\":{:.3},\"live_events_per_second\":{:.0},\"replay_events_per_second\":{:.0},\"speedup\":{:.1}}}",
            live.as_secs_f64(),
            took.as_secs_f64(),
            events as f64 / live.as_secs_f64(),
            events as f64 / took.as_secs_f64(),
            live.as_secs_f64() / took.as_secs_f64()
        );
    });
}

/// `n` times `THEATER_BENCH_SCALE` (default 1), at least 1.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("THEATER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}

/// An inline manifest for `component` with these extra lines.
pub fn manifest(name: &str, component: &str, extra: &str) -> Manifest {
    let text = format!("name = {name:?}\nversion = \"0.1.0\"\ncomponent = {component:?}\n{extra}");
    Manifest::parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap()
}
