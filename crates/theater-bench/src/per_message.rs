//! Per message: the allocations (and, under callgrind, the instructions) that one message
//! costs, on ping-pong requests and on counting, with the messaging workload's actors and
//! settings. Figures that drift less than time: `scripts/per-message.sh` runs this under
//! `valgrind --tool=callgrind` at two sizes and divides the difference.
//!
//! `THEATER_BENCH_MESSAGES` sets the messages of each pattern (default 20,000);
//! `THEATER_BENCH_PATTERN` runs only `ping-pong` or only `counting`.

use theater::Runtime;

use crate::alloc::counting;
use crate::{Components, Sizes};

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    let mode = mode.to_owned();
    let n: u64 = crate::env_or("THEATER_BENCH_MESSAGES", 20_000);
    let pattern = std::env::var("THEATER_BENCH_PATTERN").unwrap_or_default();
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = crate::messaging::config(&mode, data_dir.path(), 100);
    let bench_actor = components.bench_actor.clone();
    let report = move |mode: &str, bench: &str, counted: crate::alloc::Counted| {
        println!(
            "{{\"bench\":\"{bench}\",\"mode\":\"{mode}\",\"n\":{n},\"allocations_per_message\":{:.2},\"allocated_bytes_per_message\":{:.1}}}",
            counted.allocations as f64 / n as f64,
            counted.bytes as f64 / n as f64,
        );
    };
    crate::on_worker(Some(sizes.workers), async move {
        let runtime = Runtime::new(config).unwrap();
        let spawn = async |name: &str| {
            let manifest = crate::manifest(name, &bench_actor, crate::messaging::GRANTS);
            runtime.spawn(manifest).await.unwrap()
        };
        let a = spawn("a").await;
        if pattern != "counting" {
            let b = spawn("b").await;
            crate::messaging::ask(&a, format!("rr 1000 {}", b.id())).await;
            let (_, counted) =
                counting(crate::messaging::ask(&a, format!("rr {n} {}", b.id()))).await;
            report(&mode, "per-message-request", counted);
        }
        if pattern != "ping-pong" {
            let consumer = spawn("consumer").await;
            crate::messaging::ask(&a, format!("count 1000 {}", consumer.id())).await;
            let ((count, _), counted) = counting(crate::messaging::ask(
                &a,
                format!("count {n} {}", consumer.id()),
            ))
            .await;
            // The consumer counts the warm-up's messages too.
            assert_eq!(String::from_utf8(count).unwrap(), (n + 1000).to_string());
            report(&mode, "per-message-counting", counted);
        }
        runtime.shutdown().await.unwrap();
    });
}
