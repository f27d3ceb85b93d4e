//! Skynet: a tree of actors ten wide and `levels` deep below the root (1,111,111 actors for
//! six levels). Every node but the root is spawned by its parent through the supervisor
//! handler from an inline manifest, told its number by message, and answers its parent with
//! the sum of its subtree (see `actors/skynet`). The root's answer must be
//! `sum(0..10^levels)`, 499999500000 for six levels.
//!
//! The runtime's defaults otherwise: hibernation after 1 s of idleness, 10,000 live instances
//! at most. A tree that fails (a node's spawn refused, say) is reported as a JSON line with
//! `failed`.

use std::time::{Duration, Instant};

use theater::Runtime;

use crate::{Components, Sizes};

/// What the skynet actors need: messages, children, and no limit that the tree's depth of
/// waiting would reach. Children are temporary: one that has answered ends for good.
const GRANTS: &str = "[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n[child]\nrestart = \"temporary\"\n[messaging]\nrequest_timeout_ms = 3600000\n";

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    let mode = mode.to_owned();
    let levels = sizes.skynet_levels;
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = crate::config(&mode, data_dir.path());
    let child = crate::manifest_text("skynet", &components.skynet, GRANTS);
    let root = crate::manifest("skynet", &components.skynet, GRANTS);
    crate::on_worker(None, async move {
        let runtime = Runtime::new(config).unwrap();
        let root = runtime.spawn(root).await.unwrap();
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
                    crate::peak_rss_bytes()
                );
            }
            Err(why) => {
                // The first failure is in the log above; the root only knows the tree failed.
                eprintln!("skynet failed after {seconds:.1} s: {why}");
                println!(
                    "{{\"bench\":\"skynet\",\"mode\":\"{mode}\",\"n\":{actors},\"seconds\":{seconds:.3},\"failed\":{},\"peak_rss_bytes\":{}}}",
                    serde_json::Value::from(why.to_string()),
                    crate::peak_rss_bytes()
                );
            }
        }
        runtime.shutdown().await.unwrap();
    });
}
