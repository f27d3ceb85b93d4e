//! The `process` handler, through a real guest (actors/process-keeper) and real child
//! processes: every function and output mode, the allow-list, limits, the exports that deliver
//! output and exit, no process left after the actor stops or fails or its runtime goes, and a
//! replay after the program is gone.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Harness, ask, harness, harness_with, keeper, ok, puppet};
use theater::ActorHandle;

const KEEPER: &str = test_actors::PROCESS_KEEPER;

fn grant(extra: &str) -> String {
    format!("[[handler]]\ntype = \"process\"\n{extra}")
}

const BASIC: &str = "programs = [\"echo\", \"printf\", \"sh\", \"cat\", \"sleep\", \"yes\"]\nenv = [\"GREETING\"]\n";

/// The journal once the run is quiescent: every process has ended and its output and exit
/// were handled.
async fn settled(h: &Harness, k: &ActorHandle) -> String {
    h.runtime.quiescent().await;
    ask(k, "state").await.unwrap()
}

/// The journal's entries (`out:PID:TEXT,` ...), each with its comma; an entry's text may hold
/// commas, so an entry ends where the next `out:`, `err:` or `exit:` begins.
fn entries(journal: &str) -> Vec<String> {
    let starts: Vec<usize> = (0..journal.len())
        .filter(|&i| i == 0 || journal.as_bytes()[i - 1] == b',')
        .filter(|&i| {
            ["out:", "err:", "exit:"]
                .iter()
                .any(|p| journal[i..].starts_with(p))
        })
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &i)| journal[i..starts.get(n + 1).copied().unwrap_or(journal.len())].to_owned())
        .collect()
}

/// Whether process group `pgid` has any member left.
fn group_alive(pgid: i32) -> bool {
    let pid = rustix::process::Pid::from_raw(pgid).unwrap();
    rustix::process::test_kill_process_group(pid).is_ok()
}

/// Waits (up to a minute, polling) until the group is gone; false if it never went.
async fn group_gone(pgid: i32) -> bool {
    for _ in 0..600 {
        if !group_alive(pgid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_exit_reach_the_actor_in_each_mode() {
    let h = harness();
    let k = keeper(&h, KEEPER, &grant(BASIC)).await;
    let raw = ok(&k, "spawn -- echo hello").await;
    let lines = ok(&k, "spawn mode=lines -- printf a\\nb\\nc").await;
    let chunks = ok(&k, "spawn mode=chunked chunk=2 -- printf abcde").await;
    let json = ok(
        &k,
        "spawn mode=json -- printf {\"a\":%201}\\n[2,3]\\nnot\\n",
    )
    .await;
    let err = ok(&k, "spawn err-mode=lines -- sh -c echo%20oops>&2;exit%203").await;
    let env = ok(&k, "spawn env=GREETING=hi -- sh -c echo%20$GREETING").await;
    let journal = settled(&h, &k).await;
    // The processes ran at once, so their entries interleave: each one's, in order.
    let of = |pid: &str| -> String {
        entries(&journal)
            .into_iter()
            .filter(|e| e.split(':').nth(1) == Some(pid))
            .collect()
    };
    assert_eq!(of(&raw), format!("out:{raw}:hello\n,exit:{raw}:0,"));
    assert_eq!(
        of(&lines),
        format!("out:{lines}:a,out:{lines}:b,out:{lines}:c,exit:{lines}:0,")
    );
    assert_eq!(
        of(&chunks),
        format!("out:{chunks}:ab,out:{chunks}:cd,out:{chunks}:e,exit:{chunks}:0,")
    );
    assert_eq!(
        of(&json),
        format!("out:{json}:{{\"a\":1}},out:{json}:[2,3],exit:{json}:0,")
    );
    assert_eq!(of(&err), format!("err:{err}:oops,exit:{err}:3,"));
    assert_eq!(of(&env), format!("out:{env}:hi\n,exit:{env}:0,"));
    assert_eq!(
        ok(&k, &format!("status {raw}")).await,
        "running=false exit=Some(0)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_signals_and_kill_reach_the_process() {
    let h = harness();
    let k = keeper(&h, KEEPER, &grant(BASIC)).await;
    let cat = ok(&k, "spawn mode=lines -- cat").await;
    assert_eq!(
        ok(&k, &format!("status {cat}")).await,
        "running=true exit=None"
    );
    assert_eq!(ok(&k, &format!("stdin {cat} one\n")).await, "4");
    let sleeper = ok(&k, "spawn -- sleep 30").await;
    ok(&k, &format!("signal {sleeper} 15")).await;
    ok(&k, &format!("kill {cat}")).await;
    let journal = settled(&h, &k).await;
    assert!(journal.contains(&format!("out:{cat}:one,")), "{journal}");
    assert!(journal.contains(&format!("exit:{cat}:137,")), "{journal}");
    assert!(
        journal.contains(&format!("exit:{sleeper}:143,")),
        "{journal}"
    );
    let e = ask(&k, &format!("signal {cat} 15")).await.unwrap();
    assert!(e.contains("has exited"), "{e}");
    let e = ask(&k, "status 1").await.unwrap();
    assert_eq!(e, "err this actor has no process 1");
    let e = ask(&k, "kill 1").await.unwrap();
    assert_eq!(e, "err this actor has no process 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_programs_and_variables_run_within_limits() {
    let h = harness();
    std::fs::create_dir(h.dir.path().join("work")).unwrap();
    let echo = which("echo");
    std::os::unix::fs::symlink(&echo, h.dir.path().join("work/echo")).unwrap();
    let k = keeper(
        &h,
        KEEPER,
        &grant(&format!(
            "{BASIC}max_processes = 1\nmax_output_bytes = 10\nroot = \"work\"\n"
        )),
    )
    .await;
    for (command, want) in [
        (
            "spawn -- id",
            "program \"id\" is not in the process handler's `programs`",
        ),
        (
            "spawn -- ./echo x",
            "is not in the process handler's `programs`",
        ),
        (
            "spawn -- work/echo x",
            "is not in the process handler's `programs`",
        ),
        (
            "spawn -- /bin/sh -c id",
            "is not in the process handler's `programs`",
        ),
        (
            "spawn env=LD_PRELOAD=/tmp/x.so -- echo x",
            "\"LD_PRELOAD\" is not in the process handler's `env`",
        ),
        (
            "spawn env=PATH=/tmp -- echo x",
            "\"PATH\" is not in the process handler's `env`",
        ),
        ("spawn cwd=../ -- echo x", "holds `..`"),
        ("spawn cwd=/ -- echo x", "is absolute"),
        ("spawn buffer=0 -- echo x", "buffer-size 0 is not between"),
    ] {
        let answer = ask(&k, command).await.unwrap();
        assert!(
            answer.starts_with("err") && answer.contains(want),
            "{command}: {answer}"
        );
    }
    // By its resolved path, it is the same program.
    let resolved = std::fs::canonicalize(&echo).unwrap();
    ok(&k, &format!("spawn -- {} by-path", resolved.display())).await;
    h.runtime.quiescent().await;
    // One at a time.
    let sleeper = ok(&k, "spawn -- sleep 30").await;
    let e = ask(&k, "spawn -- echo x").await.unwrap();
    assert!(e.contains("`max_processes`"), "{e}");
    ok(&k, &format!("kill {sleeper}")).await;
    h.runtime.quiescent().await;
    // Output past the limit: cut there, and the process killed.
    let loud = ok(&k, "spawn mode=lines -- yes").await;
    let journal = settled(&h, &k).await;
    assert!(
        journal.contains(&format!(
            "{}exit:{loud}:137,",
            format!("out:{loud}:y,").repeat(5)
        )),
        "{journal}"
    );
    assert!(
        journal.contains("out:") && journal.contains("by-path"),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_runs_in_its_root_and_times_out() {
    let h = harness();
    std::fs::create_dir_all(h.dir.path().join("work/sub")).unwrap();
    let k = keeper(&h, KEEPER, &grant(&format!("{BASIC}root = \"work\"\n"))).await;
    let pwd = ok(&k, "spawn cwd=sub -- sh -c pwd").await;
    let slow = ok(&k, "spawn timeout=200 -- sleep 30").await;
    let journal = settled(&h, &k).await;
    let sub = std::fs::canonicalize(h.dir.path().join("work/sub")).unwrap();
    assert!(
        journal.contains(&format!("out:{pwd}:{}\n", sub.display())),
        "{journal}"
    );
    assert!(journal.contains(&format!("exit:{slow}:137,")), "{journal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_outlives_its_actor() {
    let h = harness();
    // Stopped.
    let k = keeper(&h, KEEPER, &grant(BASIC)).await;
    // A process that starts another in its group.
    let pid: i32 = ok(&k, "spawn -- sh -c sleep%20300&sleep%20300")
        .await
        .parse()
        .unwrap();
    assert!(group_alive(pid));
    assert!(
        h.dir
            .path()
            .join("processes")
            .join(pid.to_string())
            .exists()
    );
    k.stop().await;
    assert!(group_gone(pid).await, "the group outlived a stopped actor");
    // Failed.
    let k = keeper(&h, KEEPER, &grant(BASIC)).await;
    let pid: i32 = ok(&k, "spawn -- sleep 300").await.parse().unwrap();
    assert!(ask(&k, "panic").await.is_err());
    assert!(group_gone(pid).await, "the group outlived a failed actor");
    // Dropped with its runtime.
    let k = keeper(&h, KEEPER, &grant(BASIC)).await;
    let pid: i32 = ok(&k, "spawn -- sleep 300").await.parse().unwrap();
    drop(k);
    let Harness { runtime, dir, .. } = h;
    drop(runtime);
    assert!(group_gone(pid).await, "the group outlived its runtime");
    drop(dir);
}

/// What a runtime killed without stopping its actors leaves running (as after SIGKILL) is
/// killed by the next runtime on the data dir: the groups are recorded there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_kills_what_a_dead_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let processes = dir.path().join("processes");
    std::fs::create_dir_all(&processes).unwrap();
    // A leftover as a dead runtime would have recorded it.
    let mut left = std::process::Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300"])
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = left.id() as i32;
    let started = start_time(pgid);
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let boot = boot.trim();
    std::fs::write(
        processes.join(pgid.to_string()),
        format!("{boot} {started} someone\n"),
    )
    .unwrap();
    // A record whose id now names another process (a different start time) is not killed.
    let mut innocent = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let innocent_id = innocent.id() as i32;
    std::fs::write(
        processes.join(innocent_id.to_string()),
        format!("{boot} 1 someone\n"),
    )
    .unwrap();
    // Nor one recorded in another boot, even with the right start time.
    let mut rebooted = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let rebooted_id = rebooted.id() as i32;
    std::fs::write(
        processes.join(rebooted_id.to_string()),
        format!("another-boot {} someone\n", start_time(rebooted_id)),
    )
    .unwrap();

    let path = dir.path().to_owned();
    let h = harness_with(|c| c.data_dir = Some(path));
    let _ = left.wait();
    assert!(group_gone(pgid).await, "the leftover group still runs");
    assert!(group_alive(innocent_id), "a reused id was killed");
    assert!(
        group_alive(rebooted_id),
        "a record from another boot was acted on"
    );
    rebooted.kill().unwrap();
    let _ = rebooted.wait();
    assert!(std::fs::read_dir(&processes).unwrap().next().is_none());
    innocent.kill().unwrap();
    let _ = innocent.wait();
    drop(h);
}

use std::os::unix::process::CommandExt;

/// Field 22 of `/proc/PID/stat`: the start time, in clock ticks since boot.
fn start_time(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_owned()
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap()
}

/// A script in `dir` named `name`.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_replays_after_the_program_is_gone() {
    let h = harness();
    std::fs::create_dir(h.dir.path().join("bin")).unwrap();
    script(
        &h.dir.path().join("bin"),
        "tool",
        "echo tool says $1; exit 7",
    );
    let k = keeper(&h, KEEPER, &grant("programs = [\"./bin/tool\"]\n")).await;
    let pid = ok(&k, "spawn mode=lines -- ./bin/tool hi").await;
    let journal = settled(&h, &k).await;
    assert!(
        journal.contains(&format!("out:{pid}:tool says hi,exit:{pid}:7,")),
        "{journal}"
    );
    let id = k.id().to_owned();
    drop(k);
    let Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("bin")).unwrap();
    let (len, summary) = common::replay_from(dir.path(), &id, &theater_handlers::builtin()).await;
    assert_eq!(summary.events, len as u64);
    // The output and the exit were handled as calls, and they replay.
    assert!(summary.calls >= 4, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_gets_no_program_or_variable_its_parent_lacks() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        &grant("programs = [\"echo\"]\nenv = [\"APP_*\"]\nmax_processes = 2\n"),
    )
    .await;
    let spawn = |extra: &str| {
        common::keeper_manifest(h.dir.path(), KEEPER, extra);
        format!("spawn {}", h.dir.path().join("keeper.toml").display())
    };
    for (extra, key) in [
        (grant("programs = [\"sh\"]\n"), "`programs`"),
        (grant("env = [\"*\"]\n"), "`env`"),
        (grant("max_processes = 3\n"), "`max_processes`"),
        (grant("root = \"/\"\n"), "`root`"),
    ] {
        let e = ask(&parent, &spawn(&extra)).await.unwrap();
        assert!(e.starts_with("err") && e.contains(key), "{extra}: {e}");
    }
    let child = ok(
        &parent,
        &spawn(&grant("programs = [\"echo\"]\nenv = [\"APP_X\"]\n")),
    )
    .await;
    assert!(!child.is_empty());
}
