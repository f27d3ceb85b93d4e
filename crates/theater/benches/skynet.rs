//! Skynet: a tree of actors ten wide and `THEATER_BENCH_SKYNET_LEVELS` (default 6) deep below
//! the root, 1,111,111 actors in all. Every node but the root is spawned by its parent through
//! the supervisor handler from an inline manifest, told its number by message, and answers its
//! parent with the sum of its subtree (see `actors/skynet`). The root's answer must be
//! `sum(0..10^levels)`, 499999500000 for six levels.
//!
//! `cargo bench -p theater --bench skynet` prints one JSON line per mode: `recorded` (chains
//! persisted, batched) and `unrecorded`. Each mode runs in a fresh process, with the runtime's
//! defaults otherwise (hibernation after 1 s of idleness, 10,000 live instances at most). A
//! tree that fails (a node's spawn refused, say) is reported as a JSON line with `failed`.

mod common;

use std::time::{Duration, Instant};

use theater::Runtime;

const MODES: &[&str] = &["recorded", "unrecorded"];

fn main() {
    common::run_modes(MODES, run_mode);
}

/// What the skynet actors need: messages, children, and no limit that the tree's depth of
/// waiting would reach. Children are temporary: one that has answered ends for good.
const GRANTS: &str = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n[child]\nrestart = \"temporary\"\n[messaging]\nrequest_timeout_ms = 3600000\n";

fn run_mode(mode: &str) {
    let mode = mode.to_owned();
    let levels: u32 = common::env_or("THEATER_BENCH_SKYNET_LEVELS", 6);
    let data_dir = tempfile::tempdir().unwrap();
    let config = common::config(&mode, data_dir.path());
    common::on_worker(None, async move {
        let runtime = Runtime::new(config).unwrap();
        let child = format!(
            "name = \"skynet\"\nversion = \"0.1.0\"\ncomponent = {:?}\n{GRANTS}",
            test_actors::SKYNET
        );
        let root = runtime
            .spawn(common::manifest("skynet", test_actors::SKYNET, GRANTS))
            .await
            .unwrap();
        let start = Instant::now();
        let leaves = 10u64.pow(levels);
        let actors = (leaves * 10 - 1) / 9;
        let answer = root
            .request_within(
                format!("skynet 0 {levels}\n{child}").into_bytes(),
                Duration::from_secs(3600),
            )
            .await;
        let seconds = start.elapsed().as_secs_f64();
        match answer {
            Ok(answer) => {
                let sum: u64 = String::from_utf8(answer).unwrap().parse().unwrap();
                assert_eq!(sum, leaves * (leaves - 1) / 2, "skynet's sum");
                runtime.flush().await.unwrap();
                let committed = start.elapsed().as_secs_f64();
                println!(
                    "{{\"bench\":\"skynet\",\"mode\":\"{mode}\",\"n\":{actors},\"seconds\":{seconds:.3},\"committed_seconds\":{committed:.3},\"result\":{sum},\"peak_rss_bytes\":{}}}",
                    peak_rss_bytes()
                );
            }
            Err(why) => {
                // The first failure is in the log above; the root only knows the tree failed.
                eprintln!("skynet failed after {seconds:.1} s: {why}");
                println!(
                    "{{\"bench\":\"skynet\",\"mode\":\"{mode}\",\"n\":{actors},\"seconds\":{seconds:.3},\"failed\":{:?},\"peak_rss_bytes\":{}}}",
                    why.to_string(),
                    peak_rss_bytes()
                );
            }
        }
        runtime.shutdown().await.unwrap();
    });
}

/// This process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
