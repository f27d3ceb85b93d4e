//! The `theater` binary as a user runs it: real processes, real data dirs, real components.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn theater(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_theater"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env_remove("THEATER_HOME");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("running theater")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a manifest for a test actor with `init_state` holding `script`.
fn probe_manifest(dir: &Path, name: &str, script: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join(format!("{name}.state")), script).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = \"{name}.state\"\n{extra}",
            test_actors::PROBE
        ),
    )
    .unwrap();
    path
}

/// The id of the only chain in `data_dir` called `name`.
fn chain_id(data_dir: &Path, name: &str) -> String {
    let out = run(theater(data_dir).args(["chains", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no chain named {name}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn run_prints_logs_and_events_and_verify_read_the_chain() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest = probe_manifest(work.path(), "greeter", "log:hello there;chain", "");
    let out = run(theater(data.path()).arg("run").arg(&manifest));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("] hello there"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("] chain 4 host-call"),
        "{}",
        stdout(&out)
    );
    let id = chain_id(data.path(), "greeter");
    assert!(
        stderr(&out).contains(&format!("root actor greeter {id}")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("is quiescent"), "{}", stderr(&out));

    let chains = run(theater(data.path()).args(["chains", "--json"]));
    let line: serde_json::Value =
        serde_json::from_str(stdout(&chains).lines().next().unwrap()).unwrap();
    for field in ["id", "name", "events", "head"] {
        assert!(!line[field].is_null(), "missing {field}: {line}");
    }
    assert_eq!(line["events"], 8);

    let events = run(theater(data.path()).args(["events", &id[..8]]));
    assert!(events.status.success(), "{}", stderr(&events));
    let text = stdout(&events);
    assert!(text.contains("runtime.log(\"hello there\")"), "{text}");
    assert!(text.contains("shutdown    runtime-exit"), "{text}");
    let json = run(theater(data.path()).args(["events", &id, "--json"]));
    assert_eq!(stdout(&json).lines().count(), 8);

    let verify = run(theater(data.path()).args(["verify", &id]));
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).starts_with("ok: chain of greeter"),
        "{}",
        stdout(&verify)
    );
}

/// Runs a probe actor that logs twice and exports its chain: (id, file, export's output).
fn run_and_export_probe(data: &Path, work: &Path, name: &str) -> (String, PathBuf, Output) {
    let manifest = probe_manifest(work, name, "log:a;log:b", "");
    assert!(
        run(theater(data).arg("run").arg(&manifest))
            .status
            .success()
    );
    let id = chain_id(data, name);
    let file = work.join("chain.bin");
    let out = run(theater(data).args(["export", &id, "-o"]).arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    (id, file, out)
}

#[test]
fn any_changed_byte_of_an_exported_chain_fails_verify() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_, file, _) = run_and_export_probe(data.path(), work.path(), "exported");
    let out = run(theater(data.path()).arg("verify").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));

    // Every byte, flipped, through the library (fast) ...
    let bytes = std::fs::read(&file).unwrap();
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        let ok = theater_chain_ok(&changed);
        assert!(!ok, "flipping byte {i} of {} went unnoticed", bytes.len());
    }
    // ... and a few through the binary, which names the event.
    for i in [20, bytes.len() / 2, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[i] ^= 0x80;
        let bad = work.path().join(format!("bad-{i}.bin"));
        std::fs::write(&bad, &changed).unwrap();
        let out = run(theater(data.path()).arg("verify").arg(&bad));
        assert!(!out.status.success(), "byte {i}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: chain file"), "{err}");
    }
    // A truncated file fails too.
    let cut = work.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let out = run(theater(data.path()).arg("verify").arg(&cut));
    assert!(!out.status.success());
}

#[test]
fn verify_with_the_node_key_proves_who_wrote_an_exported_chain() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (id, file, out) = run_and_export_probe(data.path(), work.path(), "signed");
    let key = run(theater(data.path()).arg("key"));
    assert!(key.status.success(), "{}", stderr(&key));
    let key = stdout(&key).trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(
        stderr(&out).contains(&format!("signed by {key}")),
        "{}",
        stderr(&out)
    );
    let out = run(theater(data.path())
        .arg("verify")
        .arg(&file)
        .args(["--key", &key]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signed by") && stdout(&out).contains("(the given key)"));

    // Another node's key: the file was not written by it.
    let other = tempfile::tempdir().unwrap();
    let other_key = stdout(&run(theater(other.path()).arg("key")))
        .trim()
        .to_owned();
    let out = run(theater(data.path())
        .arg("verify")
        .arg(&file)
        .args(["--key", &other_key]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not by the expected key"),
        "{}",
        stderr(&out)
    );
    let out = run(theater(data.path())
        .arg("verify")
        .arg(&file)
        .args(["--key", "xyz"]));
    assert!(
        stderr(&out).contains("must be 64 hex digits"),
        "{}",
        stderr(&out)
    );

    // The data dir's own chains verify against its key as well.
    let out = run(theater(data.path()).args(["verify", &id, "--key", &key]));
    assert!(out.status.success(), "{}", stderr(&out));
}

fn theater_chain_ok(bytes: &[u8]) -> bool {
    // The CLI's own library path: decode strictly, then verify.
    matches!(
        theater::chain::ChainFile::decode(bytes).map(|f| f.verify()),
        Ok(Ok(_))
    )
}

#[test]
fn changed_stored_event_fails_verify_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest = probe_manifest(work.path(), "stored", "log:one;log:two", "");
    assert!(
        run(theater(data.path()).arg("run").arg(&manifest))
            .status
            .success()
    );
    let id = chain_id(data.path(), "stored");
    let db = rusqlite::Connection::open(data.path().join("theater.db")).unwrap();
    db.execute(
        "UPDATE segments SET data = CAST(replace(CAST(data AS TEXT), 'two', 'TWO') AS BLOB) WHERE actor_id = ?1",
        [&id],
    )
    .unwrap();
    drop(db);
    let out = run(theater(data.path()).args(["verify", &id]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("event 4 does not match its hash"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_manifests_fail_with_one_clear_line() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name = \"x\"\ncomponent = \"a.wasm\"\n",
            "missing field `version`",
        ),
        (
            "name = \"x\"\nversion = \"1\"\ncomponent = \"a.wasm\"\ncolour = 1\n",
            "unknown key `colour`",
        ),
        (
            "name = \"x\"\nversion = \"1\"\ncomponent = \"a.wasm\"\n[[handler]]\ntype = \"teleport\"\n",
            "unknown handler type \"teleport\"",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = work.path().join(format!("m{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = run(theater(data.path()).arg("run").arg(&path));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: manifest"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn failing_init_exits_non_zero_and_names_the_reason() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest = probe_manifest(work.path(), "failing", "err:no config", "");
    let out = run(theater(data.path()).arg("run").arg(&manifest));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("init returned an error: no config"),
        "{}",
        stderr(&out)
    );

    let manifest = probe_manifest(work.path(), "trapping", "panic:oops", "");
    let out = run(theater(data.path()).arg("run").arg(&manifest));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: actor trapping"), "{err}");
    assert!(err.contains("guest backtrace"), "{err}");

    let ungranted = work.path().join("ungranted.toml");
    std::fs::write(
        &ungranted,
        format!(
            "name = \"u\"\nversion = \"1\"\ncomponent = {:?}\n",
            test_actors::UNGRANTED
        ),
    )
    .unwrap();
    let out = run(theater(data.path()).arg("run").arg(&ungranted));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`theater:simple/timing`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reading_commands_work_while_run_holds_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest = probe_manifest(work.path(), "resident", "log:up", "");
    let mut child = theater(data.path())
        .arg("run")
        .arg(&manifest)
        .arg("--keep-alive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the running actor's chain to be committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let out = run(theater(data.path()).args(["chains", "--json"]));
        if out.status.success() && stdout(&out).contains("resident") {
            break chain_id(data.path(), "resident");
        }
        assert!(
            Instant::now() < deadline,
            "the chain never appeared: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "run should still be running"
    );
    for args in [vec!["events", id.as_str()], vec!["verify", id.as_str()]] {
        let out = run(theater(data.path()).args(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let file = work.path().join("live.bin");
    let out = run(theater(data.path()).args(["export", &id, "-o"]).arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));

    // Ctrl-C ends the run cleanly, recording the shutdown.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let events = run(theater(data.path()).args(["events", &id]));
    assert!(
        stdout(&events).contains("shutdown    runtime-exit"),
        "{}",
        stdout(&events)
    );
}

#[test]
fn new_project_outside_the_repo_builds_and_runs_without_edits() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(theater(data.path())
        .current_dir(work.path())
        .args(["new", "my-actor"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let project = work.path().join("my-actor");
    assert!(project.join("wit/deps/theater-simple/runtime.wit").exists());

    let out = run(theater(data.path()).current_dir(&project).arg("build"));
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(project.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains(
            "component = \"target/wasm32-unknown-unknown/release/my_actor.component.wasm\""
        ),
        "{manifest}"
    );

    let out = run(theater(data.path()).current_dir(&project).arg("run"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("my-actor ("), "{}", stdout(&out));
    assert!(stdout(&out).contains(") initialized"), "{}", stdout(&out));
    let id = chain_id(data.path(), "my-actor");
    assert!(
        run(theater(data.path()).args(["verify", &id]))
            .status
            .success()
    );

    // A second `new` into the same place refuses to overwrite.
    let out = run(theater(data.path())
        .current_dir(work.path())
        .args(["new", "my-actor"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn supervisor_and_message_server_templates_build_and_run() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for template in ["message-server", "supervisor"] {
        let name = format!("my-{template}");
        let out = run(theater(data.path()).current_dir(work.path()).args([
            "new",
            &name,
            "--template",
            template,
        ]));
        assert!(out.status.success(), "{}", stderr(&out));
        let project = work.path().join(&name);
        let out = run(theater(data.path()).current_dir(&project).arg("build"));
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(theater(data.path()).current_dir(&project).arg("run"));
        assert!(out.status.success(), "{}", stderr(&out));
        let (logs, status) = (stdout(&out), stderr(&out));
        if template == "supervisor" {
            assert!(logs.contains("worker answered"), "{logs}");
            // The tree: the worker indented under its parent, stopped before it.
            let worker_stopped = status.find("  - my-supervisor-worker").unwrap();
            let parent_done = status.find("- my-supervisor ").unwrap();
            assert!(worker_stopped < parent_done, "{status}");
        } else {
            assert!(logs.contains("ready for messages"), "{logs}");
        }
    }
}

#[test]
fn examples_run_to_completion_and_show_the_actor_tree() {
    let data = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors");
    // Built by test-actors' build script, where the examples' manifests point.
    let _ = test_actors::PING_PONG;
    for (example, expect) in [
        ("ping-pong", "got pong by send; done"),
        ("supervisor", "job: done, 1 jobs since this worker started"),
        ("chat", "the room is empty; closing the chat"),
        ("dice", " in 5 throws"),
    ] {
        let manifest = examples.join(example).join("manifest.toml");
        let out = run(theater(data.path()).arg("run").arg(&manifest));
        assert!(out.status.success(), "{example}: {}", stderr(&out));
        assert!(stdout(&out).contains(expect), "{example}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(" shut down;"),
            "{example}: {}",
            stderr(&out)
        );
    }
    let out = run(theater(data.path())
        .args(["run"])
        .arg(examples.join("supervisor/manifest.toml")));
    let status = stderr(&out);
    assert!(status.contains("  ! worker "), "{status}");
    assert!(status.contains("  ~ worker "), "{status}");

    // Every chain of every example replays hermetically, to the same state hashes.
    let out = run(theater(data.path()).args(["chains", "--json"]));
    let chains: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(chains.len() >= 12, "{chains:?}");
    for chain in &chains {
        let id = chain["id"].as_str().unwrap();
        let out = run(theater(data.path()).args(["replay", id, "--json"]));
        assert!(out.status.success(), "{}: {}", chain["name"], stderr(&out));
        let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(summary["events"], chain["events"], "{summary}");
    }
}

#[test]
fn replay_against_a_changed_build_names_the_divergence() {
    let data = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors/dice/manifest.toml");
    let out = run(theater(data.path()).arg("run").arg(&manifest));
    assert!(out.status.success(), "{}", stderr(&out));
    let id = chain_id(data.path(), "dice");

    let out = run(theater(data.path()).args(["replay", &id]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: replayed dice"),
        "{}",
        stdout(&out)
    );

    let out = run(theater(data.path())
        .args(["replay", &id, "--component"])
        .arg(test_actors::DICE_LOADED));
    assert!(!out.status.success());
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("error: replay of dice") && first.contains("diverged at event"),
        "{err}"
    );
    assert!(
        err.contains("in call:  event 2 theater:simple/actor.init"),
        "{err}"
    );
    assert!(
        err.contains("expected: host-call theater:simple/random.random-range(1, 7)"),
        "{err}"
    );
    assert!(
        err.contains("actual:   host-call theater:simple/random.random-range(1, 6)"),
        "{err}"
    );

    // An exported file carries the component, the manifest and the initial state: it replays
    // on its own, with an empty data dir, as a third party would run it.
    let file = data.path().join("dice.chain");
    let out = run(theater(data.path()).args(["export", &id, "-o"]).arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("with 3 blobs"), "{}", stderr(&out));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(theater(&elsewhere.path().join("empty"))
        .arg("replay")
        .arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    // Without the blobs, it cannot, and says what to pass.
    let bare = data.path().join("bare.chain");
    let out = run(theater(data.path())
        .args(["export", &id, "--without-blobs", "-o"])
        .arg(&bare));
    assert!(out.status.success(), "{}", stderr(&out));
    // The manifest, recorded by hash, still goes: the file says what ran.
    assert!(stderr(&out).contains("with 1 blob ("), "{}", stderr(&out));
    let out = run(theater(&elsewhere.path().join("empty"))
        .arg("replay")
        .arg(&bare));
    assert!(
        stderr(&out).contains("pass --component"),
        "{}",
        stderr(&out)
    );
}

/// The dice example as `long-dice`, rolling `rolls` dice 20 ms apart; returns its manifest.
fn long_dice(dir: &Path, rolls: u32) -> PathBuf {
    let dice = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors/dice");
    let manifest = std::fs::read_to_string(dice.join("manifest.toml"))
        .unwrap()
        .replace("../target", &dice.join("../target").display().to_string())
        .replace("demo.txt", "long-demo.txt")
        .replace("name = \"dice\"", "name = \"long-dice\"");
    std::fs::write(dir.join("long-demo.txt"), format!("demo {rolls}")).unwrap();
    let path = dir.join("long-dice.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

#[test]
fn events_filter_by_type_and_range_and_follow_a_running_actor() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The dice example with a longer demo: 40 rolls, 20 ms apart.
    let manifest_path = long_dice(work.path(), 40);

    let mut running = theater(data.path())
        .arg("run")
        .arg(&manifest_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let id = loop {
        let out = run(theater(data.path()).args(["chains", "--json"]));
        if let Some(line) = stdout(&out).lines().next() {
            let chain: serde_json::Value = serde_json::from_str(line).unwrap();
            break chain["id"].as_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no chain appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Follow from the start: every event, ending with the shutdown, then exit by itself.
    let follow = run(theater(data.path()).args(["events", &id, "--follow", "--json"]));
    assert!(running.wait().unwrap().success());
    assert!(follow.status.success(), "{}", stderr(&follow));
    let followed: Vec<serde_json::Value> = stdout(&follow)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all = run(theater(data.path()).args(["events", &id, "--json"]));
    assert_eq!(followed.len(), stdout(&all).lines().count());
    assert_eq!(followed.last().unwrap()["type"], "shutdown");
    for (i, e) in followed.iter().enumerate() {
        assert_eq!(e["index"], i, "in order, none missed or repeated");
    }
    assert!(
        stderr(&follow).contains("no longer following"),
        "{}",
        stderr(&follow)
    );

    // Filters: one type, several types, an index range.
    let rolls = run(theater(data.path()).args(["events", &id, "--json", "--type", "host-call"]));
    let rolls = stdout(&rolls);
    assert!(rolls.lines().count() > 80, "{rolls}");
    assert!(rolls.lines().all(|l| l.contains("\"type\":\"host-call\"")));
    let two = run(theater(data.path()).args(["events", &id, "--type", "spawn,shutdown"]));
    assert_eq!(
        stdout(&two).lines().count(),
        3,
        "header and two events: {}",
        stdout(&two)
    );
    let range =
        run(theater(data.path()).args(["events", &id, "--json", "--from", "3", "--to", "5"]));
    let indexes: Vec<u64> = stdout(&range)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, [3, 4, 5]);
    let bad = run(theater(data.path()).args(["events", &id, "--type", "trapz"]));
    assert!(
        stderr(&bad).contains("not an event type (one of: spawn,"),
        "{}",
        stderr(&bad)
    );
}

/// The random-range results recorded since the chain's last spawn or recovery instance: the
/// rolls of the run that was killed.
fn rolls_of_last_run(data_dir: &Path, id: &str) -> Vec<String> {
    let out = run(theater(data_dir).args(["events", id, "--json", "--type", "instance,host-call"]));
    let mut rolls = Vec::new();
    for line in stdout(&out).lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["type"] == "instance" && e["reason"] != "wake" {
            rolls.clear();
        } else if e["function"] == "random-range" {
            let value = e["result"]["value"].as_str().unwrap();
            rolls.push(value.strip_prefix("ok ").unwrap().to_owned());
        }
    }
    rolls
}

#[test]
fn sigkill_at_random_points_then_resume_keeps_every_chain_whole() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest_path = long_dice(work.path(), 60);
    let dice = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors/dice");
    // Random kill points, reproducible from the printed seed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill-point seed {seed}");
    let mut next_ms = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        150 + seed % 1_100
    };

    // Compile the component once, so that kills land while the actor runs, not while the
    // runtime compiles.
    let warm = run(theater(data.path())
        .arg("run")
        .arg(dice.join("manifest.toml")));
    assert!(warm.status.success(), "{}", stderr(&warm));

    for round in 0..6 {
        let mut cmd = theater(data.path());
        cmd.arg("run");
        if round == 0 {
            cmd.arg(&manifest_path);
        } else {
            cmd.arg("--resume");
        }
        let child = cmd
            .args(["--durability", "every-event"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(next_ms()));
        let mut child = child;
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();

        // Every chain verifies (links and signature) and replays to the recorded states.
        let chains = run(theater(data.path()).args(["chains", "--json"]));
        let chains: Vec<serde_json::Value> = stdout(&chains)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for chain in &chains {
            let id = chain["id"].as_str().unwrap();
            let verify = run(theater(data.path()).args(["verify", id]));
            assert!(
                verify.status.success(),
                "round {round}: {}",
                stderr(&verify)
            );
            let replay = run(theater(data.path()).args(["replay", id]));
            assert!(
                replay.status.success(),
                "round {round}: {}",
                stderr(&replay)
            );

            if chain["name"] != "long-dice" {
                continue;
            }
            // With every-event durability, a roll the actor went on to print was on disk
            // before it printed: each printed roll is in the chain, in order.
            let printed: Vec<String> = stdout(&out)
                .lines()
                .filter_map(|l| l.split(" rolls ").nth(1))
                .map(|rest| rest.split(' ').next().unwrap().to_owned())
                .collect();
            let recorded = rolls_of_last_run(data.path(), id);
            assert!(
                recorded.len() >= printed.len() && recorded[..printed.len()] == printed[..],
                "round {round}: printed {printed:?}, recorded {recorded:?}"
            );
        }
    }
    let id = chain_id(data.path(), "long-dice");
    let recoveries =
        run(theater(data.path()).args(["events", &id, "--json", "--type", "recovery"]));
    assert!(
        !stdout(&recoveries).is_empty(),
        "no kill landed while the actor ran"
    );

    // Left alone, the last resume finishes the demo.
    let out = run(theater(data.path()).args(["run", "--resume"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let last = run(theater(data.path()).args(["events", &id, "--json", "--type", "shutdown"]));
    assert_eq!(stdout(&last).lines().count(), 1, "{}", stdout(&last));
    assert!(
        stdout(&last).contains("\"reason\":\"requested\""),
        "{}",
        stdout(&last)
    );
    let replay = run(theater(data.path()).args(["replay", &id]));
    assert!(replay.status.success(), "{}", stderr(&replay));
}

#[test]
fn an_old_data_dir_is_refused_with_the_fix_then_migrated() {
    let data = tempfile::tempdir().unwrap();
    // A schema 2 database, as the previous build left it: one row per event.
    let db = rusqlite::Connection::open(data.path().join("theater.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE chains (actor_id TEXT PRIMARY KEY, name TEXT NOT NULL, parent_id TEXT,
             created_ms INTEGER NOT NULL, len INTEGER NOT NULL, head BLOB NOT NULL,
             signature BLOB, manifest_dir TEXT);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
         CREATE TABLE events (actor_id TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
             data BLOB NOT NULL, PRIMARY KEY (actor_id, seq)) WITHOUT ROWID;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(db);
    let out = run(theater(data.path()).arg("chains"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("theater migrate --data-dir"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = run(theater(data.path()).arg("migrate"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("from schema version 2"),
        "{}",
        stdout(&out)
    );
    assert!(run(theater(data.path()).arg("chains")).status.success());
    let again = run(theater(data.path()).arg("migrate"));
    assert!(stdout(&again).contains("already in the current format"));
}

/// `theater bench` runs a workload in processes of its own, prints its figures as JSON lines
/// and a table, keeps them with `--out`, tables them again with `--table`, and names the
/// workloads when given one it does not have.
#[cfg(feature = "bench")]
#[test]
fn bench_prints_figures_and_a_table_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("figures.jsonl");
    let out = run(theater(dir.path())
        .args([
            "bench",
            "skynet",
            "--skynet-levels",
            "2",
            "--no-erlang",
            "--out",
        ])
        .arg(&kept));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for mode in ["recorded", "unrecorded"] {
        // 111 actors, the sum of 0..100.
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"bench\":\"skynet\",\"mode\":\"{mode}\"")))
            .unwrap_or_else(|| panic!("no {mode} line in:\n{text}"));
        assert!(
            line.contains("\"n\":111") && line.contains("\"result\":4950"),
            "{line}"
        );
    }
    assert!(text.contains("| skynet | seconds |"), "{text}");
    // A debug build's figures mean little, and it says so.
    if cfg!(debug_assertions) {
        assert!(stderr(&out).contains("debug build"), "{}", stderr(&out));
    }

    let again = run(theater(dir.path()).args(["bench", "--table"]).arg(&kept));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("| skynet | seconds |"));
    assert!(stdout(&again).contains("recorded ÷ unrecorded"));

    let wrong = run(theater(dir.path()).args(["bench", "skynets"]));
    assert!(!wrong.status.success());
    let why = stderr(&wrong);
    assert!(
        why.contains("no workload \"skynets\"")
            && why.contains("messaging, spawn, skynet, density"),
        "{why}"
    );
}

/// The floors (bare wasmtime making the messaging and spawn workloads' calls, the chain writer
/// alone) run as modes of their workloads and print the figures the aims are ratios of; the
/// bare embedding checks that the consumer counted every message.
#[cfg(feature = "bench")]
#[test]
fn bench_floors_print_the_figures_aims_are_ratios_of() {
    let dir = tempfile::tempdir().unwrap();
    let floors: [(&str, &str, &[&str]); 3] = [
        (
            "messaging",
            "floor",
            &["ping-pong-request", "ping-pong-send", "counting"],
        ),
        ("messaging", "writer-floor", &["counting"]),
        ("spawn", "floor", &["spawn"]),
    ];
    for (workload, mode, benches) in floors {
        let out = run(theater(dir.path())
            .args(["bench", "--one", workload, mode])
            .env("THEATER_BENCH_SCALE", "0.005")
            .env("THEATER_BENCH_ACTORS", "20"));
        assert!(out.status.success(), "{workload} {mode}: {}", stderr(&out));
        let text = stdout(&out);
        for bench in benches {
            let prefix = format!("{{\"bench\":\"{bench}\",\"mode\":\"{mode}\"");
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {bench} {mode} line in:\n{text}"));
            assert!(line.contains("allocations_per_"), "{line}");
        }
    }
}

/// A process group recorded in the data dir: its id.
fn recorded_group(data_dir: &Path) -> Option<i32> {
    std::fs::read_dir(data_dir.join("processes"))
        .ok()?
        .flatten()
        .find_map(|e| e.file_name().to_str()?.parse().ok())
}

fn group_alive(pgid: i32) -> bool {
    // `kill -0 -PGID`: whether any process of the group is left.
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `done` for up to a minute.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A process started by an actor survives `theater run` being killed with SIGKILL (nothing in
/// the dead runtime can act), and the next run on the data dir kills it: `run --resume` finds
/// the group recorded and kills it before the actor is brought back.
#[test]
fn a_process_left_by_a_killed_run_is_killed_on_resume() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("keeper.state"),
        "init:spawn -- sh -c sleep%20300&sleep%20300",
    )
    .unwrap();
    let manifest = work.path().join("keeper.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"keeper\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = \"keeper.state\"\n[[handler]]\ntype = \"process\"\nprograms = [\"sh\"]\n",
            test_actors::PROCESS_KEEPER
        ),
    )
    .unwrap();
    let mut child = theater(data.path())
        .arg("run")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pgid = None;
    assert!(
        eventually(|| {
            pgid = recorded_group(data.path());
            pgid.is_some()
        }),
        "the actor's process was never recorded"
    );
    let pgid = pgid.unwrap();
    assert!(group_alive(pgid));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait_with_output().unwrap();
    assert!(group_alive(pgid), "SIGKILL left nothing to clean up");

    let resumed = run(theater(data.path()).args(["run", "--resume"]));
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("killed 1 process groups a previous run left"),
        "{}",
        stderr(&resumed)
    );
    assert!(
        eventually(|| !group_alive(pgid)),
        "the leftover group still runs"
    );
}

/// One HTTP/1.1 GET on loopback; the response's status line and body, or `None` when nothing
/// answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.lines().next()?.to_owned();
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some(format!("{status} {body}"))
}

/// An HTTP server actor keeps `theater run` going; after SIGKILL its port is free, and
/// `run --resume` serves again on the same port with the state the actor had.
#[test]
fn an_http_server_killed_with_sigkill_serves_again_on_resume() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(work.path().join("web.state"), port.to_string()).unwrap();
    let manifest = work.path().join("web.toml");
    std::fs::write(
        &manifest,
        format!(
            // Every event committed before the actor goes on: a response leaves only once its
            // call is durable, so the state after SIGKILL counts every answered request.
            "name = \"web\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = \"web.state\"\n[chain]\ndurability = \"every-event\"\n[[handler]]\ntype = \"http-framework\"\n",
            test_actors::HTTP_SERVER
        ),
    )
    .unwrap();
    let serve = |args: &[&std::ffi::OsStr]| {
        theater(data.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = serve(&["run".as_ref(), manifest.as_os_str()]);
    assert!(
        eventually(|| http_get(port, "/hello/x").is_some()),
        "the server never answered"
    );
    assert_eq!(
        http_get(port, "/count").unwrap(),
        "HTTP/1.1 200 OK 2 requests\n"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the port is free after SIGKILL"
    );
    let mut resumed = serve(&["run".as_ref(), "--resume".as_ref()]);
    let answered = eventually(|| http_get(port, "/count").is_some());
    let count = http_get(port, "/count");
    resumed.kill().unwrap();
    resumed.wait().unwrap();
    assert!(answered, "the resumed run never served");
    // Two requests before the crash, the probe above, and this one.
    assert_eq!(count.unwrap(), "HTTP/1.1 200 OK 4 requests\n");
}

/// `theater new --template http-server` builds as it is, runs, and serves its page and routes.
#[test]
fn the_http_server_template_builds_runs_and_serves() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(theater(data.path()).current_dir(work.path()).args([
        "new",
        "my-web",
        "--template",
        "http-server",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let project = work.path().join("my-web");
    // Any free port, so that the test never collides with a server on 8080.
    std::fs::write(project.join("port.txt"), "0").unwrap();
    let out = run(theater(data.path()).current_dir(&project).arg("build"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut server = theater(data.path())
        .current_dir(&project)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) else {
            let _ = server.kill();
            panic!("the server never said where it listens");
        };
        if let Some((_, port)) = line.split_once("listening on http://127.0.0.1:") {
            break port.trim().parse::<u16>().unwrap();
        }
    };
    let page = http_get(port, "/");
    let hello = http_get(port, "/hello/you");
    server.kill().unwrap();
    server.wait().unwrap();
    let page = page.unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("new WebSocket"), "{page}");
    assert_eq!(hello.unwrap(), "HTTP/1.1 200 OK hello you\n");
}
