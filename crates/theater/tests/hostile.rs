//! Hostile guests next to a healthy actor. Each case runs in a process of its own (this test
//! binary, run again with `THEATER_HOSTILE_CASE` set), so that its peak resident memory can be
//! read. In each, the healthy actor keeps answering, the process stays under the memory bound
//! the case states, and the hostile actor's failure, with its reason, is in a chain.
//!
//! The child prints one JSON line per case: the healthy actor's request latency (p50, p99)
//! alone and next to the hostile guest, and the peak RSS. `cargo test --test hostile --
//! --nocapture` shows them; they are figures, never asserted.

mod common;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, ask, harness_with, peak_rss_kb, puppet, puppet_manifest};
use theater::chain::ChainReader;

const CASE_VAR: &str = "THEATER_HOSTILE_CASE";

struct Case {
    name: &'static str,
    /// The hostile puppet's manifest lines.
    manifest: &'static str,
    /// What the hostile actor is asked to do (`{healthy}`, `{slow}` are replaced).
    command: &'static str,
    /// Text that the hostile's answer or exit, and a chain, must show.
    reason: &'static str,
    /// Whose chain holds the reason: the hostile's, or the requester's (a refused answer).
    reason_in_requester: bool,
    /// The process's peak resident memory must stay under this, in MiB.
    max_rss_mb: u64,
}

const CASES: &[Case] = &[
    Case {
        name: "infinite-loop",
        manifest: "[limits]\nmax_call_cpu_ms = 3000\n",
        command: "loop",
        reason: "CPU budget",
        reason_in_requester: false,
        max_rss_mb: 100,
    },
    Case {
        name: "memory-bomb",
        manifest: "[limits]\nmemory_mb = 64\n",
        command: "alloc 100000",
        reason: "memory past its limit",
        reason_in_requester: false,
        max_rss_mb: 250,
    },
    Case {
        name: "deep-recursion",
        manifest: "",
        command: "recurse 100000000",
        // A Rust guest's frames live on a stack in its linear memory: overflowing it is an
        // access out of bounds.
        reason: "out of bounds",
        reason_in_requester: false,
        max_rss_mb: 100,
    },
    Case {
        name: "100-MB-message",
        manifest: "[limits]\nmemory_mb = 512\n",
        command: "big-send {healthy} 100000000",
        reason: "is over actor",
        reason_in_requester: false,
        max_rss_mb: 700,
    },
    Case {
        name: "100-MB-reply",
        manifest: "[limits]\nmemory_mb = 512\n",
        command: "big-answer 100000000",
        reason: "over the requester's limit",
        reason_in_requester: true,
        max_rss_mb: 700,
    },
    Case {
        name: "spawn-flood",
        manifest: "[supervision]\nmax_children = 2000\n",
        command: "spawn-flood 5000 child.toml",
        reason: "max_children",
        reason_in_requester: false,
        max_rss_mb: 250,
    },
    Case {
        name: "log-flood",
        manifest: "",
        command: "log-flood 200000 100",
        reason: "log lines not printed",
        reason_in_requester: false,
        max_rss_mb: 200,
    },
    Case {
        name: "send-flood-at-a-slow-actor",
        manifest: "[messaging]\nrequest_timeout_ms = 200\n",
        command: "send-flood {slow} 100000",
        reason: "is full",
        reason_in_requester: false,
        max_rss_mb: 150,
    },
    Case {
        name: "get-chain-loop",
        // Reaching the chain limit reads the chain 1,000 times (half a million events, in a
        // test build): more CPU than the default budget on a loaded machine. The limit under
        // test is the chain's, not the CPU's.
        manifest: "[limits]\nmax_call_cpu_ms = 60000\n",
        command: "chain-loop 100000",
        reason: "read it in ranges",
        reason_in_requester: false,
        max_rss_mb: 150,
    },
];

/// How long one case may take, start to report. A case takes under a minute here; past this it
/// hangs, and the case is killed and named rather than holding the whole test run.
const CASE_DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn hostile_guests_next_to_a_healthy_actor() {
    if let Ok(case) = std::env::var(CASE_VAR) {
        let case = CASES.iter().find(|c| c.name == case).expect("a known case");
        return run_case(case);
    }
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "hostile_guests_next_to_a_healthy_actor",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE_VAR, case.name)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, stdout, stderr) = wait_with_deadline(child, CASE_DEADLINE);
        let Some(status) = status else {
            failures.push(format!(
                "{}: no report within {CASE_DEADLINE:?}, killed; its last phase and output:\n{stderr}",
                case.name
            ));
            continue;
        };
        // libtest may print its `test ... ` prefix on the same line.
        let Some(line) = stdout
            .lines()
            .find_map(|l| l.split_once("HOSTILE ").map(|(_, report)| report))
        else {
            failures.push(format!("{}: no report ({status}):\n{stderr}", case.name));
            continue;
        };
        println!("{line}");
        if !status.success() {
            failures.push(format!("{}: {stderr}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Waits for `child` at most `deadline`, killing it past that (the status is then `None`);
/// returns what it printed either way.
fn wait_with_deadline(
    mut child: Child,
    deadline: Duration,
) -> (Option<ExitStatus>, String, String) {
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, stdout.join().unwrap(), stderr.join().unwrap())
}

/// Says on stderr which phase a case is in, so that a case killed at its deadline names where
/// it stopped.
fn phase(name: &str) {
    eprintln!("phase: {name}");
}

/// `n` requests to `healthy`, 2 ms apart; their latencies in µs, sorted.
async fn latencies(healthy: &theater::ActorHandle, n: usize) -> Vec<u128> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let answer = ask(healthy, "echo alive").await;
        assert_eq!(answer.as_deref(), Ok("alive"), "the healthy actor answers");
        all.push(started.elapsed().as_micros());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    all.sort_unstable();
    all
}

fn percentile(sorted: &[u128], p: usize) -> u128 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Whether any event of `id`'s chain holds `needle` (strings are stored as UTF-8 bytes).
fn chain_holds(h: &Harness, id: &str, needle: &str) -> bool {
    let (_, events) = ChainReader::open(h.dir.path()).unwrap().chain(id).unwrap();
    events.iter().any(|e| {
        e.bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

fn run_case(case: &Case) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A failed assertion must end this process, not wait in the runtime's drop for actors that
    // may still be running: the report is printed before any assertion, and the outcome is the
    // exit code.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(case_body(case))
    }));
    phase("done");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::process::exit(if outcome.is_ok() { 0 } else { 101 });
}

async fn case_body(case: &Case) {
    let h = harness_with(|c| {
        c.engine.max_instances = 300;
        c.engine.max_memory_mb = 1024;
        c.hibernate_after = Some(Duration::from_millis(100));
    });
    phase("the healthy actor alone");
    let healthy = puppet(&h, "healthy.toml", "").await;
    let alone = latencies(&healthy, 300).await;

    phase("spawning the others");
    // The slow actor (for the send flood): stuck in a request that is never answered.
    let sink = puppet(&h, "sink.toml", "").await;
    let slow = puppet(
        &h,
        "slow.toml",
        "[messaging]\nmailbox_capacity = 1000\nrequest_timeout_ms = 60000\n",
    )
    .await;
    slow.send(format!("request {} defer", sink.id()).into_bytes())
        .await
        .unwrap();
    puppet_manifest(h.dir.path(), "child.toml", "");
    let requester = puppet(&h, "requester.toml", "").await;
    let hostile = puppet(&h, "hostile.toml", case.manifest).await;
    let command = case
        .command
        .replace("{healthy}", healthy.id())
        .replace("{slow}", slow.id());
    let trigger = {
        let (hostile, requester) = (hostile.clone(), requester.clone());
        tokio::spawn(async move {
            if command.starts_with("big-answer") {
                ask(&requester, &format!("request {} {command}", hostile.id())).await
            } else {
                ask(&hostile, &command).await
            }
        })
    };
    phase("the healthy actor next to the hostile one");
    let next_to = latencies(&healthy, 1_000).await;
    phase("waiting for the hostile call");
    let answer = tokio::time::timeout(Duration::from_secs(120), trigger)
        .await
        .expect("the hostile call ends")
        .unwrap();
    let outcome = match (&answer, hostile.exit()) {
        (_, Some(exit)) => format!("exited: {exit:?}"),
        (Ok(answer), None) => format!("answered: {}", answer.get(..300).unwrap_or(answer)),
        (Err(e), None) => format!("failed: {e}"),
    };
    let peak = peak_rss_kb();
    phase("flushing the chains");
    h.runtime.flush().await.unwrap();
    let logs = h.logs.lock().unwrap().len();
    let in_chain = if case.reason_in_requester {
        chain_holds(&h, requester.id(), case.reason)
    } else if case.name == "log-flood" {
        // The log lines are all in the chain; the notice is the runtime's, in its log.
        h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(case.reason))
    } else {
        chain_holds(&h, hostile.id(), case.reason)
    };
    let report = serde_json::json!({
        "case": case.name,
        "alone_p50_us": percentile(&alone, 50),
        "alone_p99_us": percentile(&alone, 99),
        "p50_us": percentile(&next_to, 50),
        "p99_us": percentile(&next_to, 99),
        "healthy_answered": next_to.len(),
        "peak_rss_mb": peak / 1024,
        "max_rss_mb": case.max_rss_mb,
        "log_lines": logs,
        "outcome": outcome,
    });
    println!("HOSTILE {report}");
    if case.name != "log-flood" {
        assert!(outcome.contains(case.reason), "{}: {outcome}", case.name);
    }
    assert!(in_chain, "{}: the reason is recorded", case.name);
    assert!(
        peak / 1024 < case.max_rss_mb,
        "{}: peak RSS {} MiB",
        case.name,
        peak / 1024
    );
    assert!(healthy.exit().is_none());
}
