//! A child never gets more than its parent, and files a guest names are opened once, beneath
//! its supervisor's root. Every test here is an attack a hostile guest (the puppet actor, told
//! what to spawn) tried against an earlier build, or the legitimate case next to it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Harness, ask, harness, ok};
use theater::ActorHandle;
use theater::attenuation::{RULES, RuleKind};

/// A puppet parent whose supervisor root is `ROOT` (its manifest's directory, the default),
/// with the puppet component copied inside so that children can name it.
async fn confined_parent(h: &Harness, extra: &str) -> (ActorHandle, PathBuf) {
    let root = h.dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(test_actors::PUPPET, root.join("puppet.wasm")).unwrap();
    let text = format!(
        "name = \"parent\"\nversion = \"0.1.0\"\ncomponent = \"puppet.wasm\"\n\
         [[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n{extra}"
    );
    std::fs::write(root.join("parent.toml"), text).unwrap();
    let manifest = common::from_file(&root.join("parent.toml")).unwrap();
    (h.runtime.spawn(manifest).await.unwrap(), root)
}

/// An inline child manifest: the puppet (which imports message-server and supervisor) with
/// `extra`: top-level keys first, then tables.
fn child(extra: &str) -> String {
    let split = extra.find('[').unwrap_or(extra.len());
    let (top, tables) = extra.split_at(split);
    let supervisor = if tables.contains("type = \"supervisor\"") {
        ""
    } else {
        "[[handler]]\ntype = \"supervisor\"\n"
    };
    format!(
        "name = \"child\"\nversion = \"0.1.0\"\ncomponent = \"puppet.wasm\"\n{top}\
         [[handler]]\ntype = \"message-server\"\n{supervisor}{tables}"
    )
}

async fn spawn(parent: &ActorHandle, manifest: &str) -> String {
    ask(parent, &format!("spawn {manifest}")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cannot_widen_its_supervisor_root_to_read_files_outside() {
    let h = harness();
    let (parent, root) = confined_parent(&h, "").await;
    std::fs::write(h.dir.path().join("secret.txt"), "do not read").unwrap();

    // The escalation: a child supervisor with root "/", whose own child names a file outside.
    for wide in ["/", "..", "/etc"] {
        let answer = spawn(
            &parent,
            &child(&format!(
                "[[handler]]\ntype = \"supervisor\"\nroot = {wide:?}\n"
            )),
        )
        .await;
        assert!(
            answer.starts_with("err child manifest refused: handler \"supervisor\" `root`"),
            "{wide}: {answer}"
        );
    }

    // A child supervisor that takes its parent's root cannot name a file outside it either,
    // for itself or for its own child, by absolute path, `..` or a symlink.
    let middle = ok(
        &parent,
        &format!("spawn {}", child("[[handler]]\ntype = \"supervisor\"\n")),
    )
    .await;
    std::os::unix::fs::symlink(h.dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    let secret = h.dir.path().join("secret.txt").display().to_string();
    for named in [secret.as_str(), "../secret.txt", "link.txt", "/etc/passwd"] {
        let grandchild = child(&format!("init_state = {named:?}\n"));
        let answer = ask(&parent, &format!("request {middle} spawn {grandchild}"))
            .await
            .unwrap();
        assert!(answer.starts_with("ok err "), "{named}: {answer}");
        assert!(!answer.contains("do not read"), "{answer}");
        let direct = spawn(&parent, &grandchild).await;
        assert!(direct.starts_with("err "), "{named}: {direct}");
    }

    // Inside the root, the same grandchild is fine, and its state is the file's bytes.
    std::fs::write(root.join("inside.txt"), "inside").unwrap();
    let answer = ok(
        &parent,
        &format!(
            "request {middle} spawn {}",
            child("init_state = \"inside.txt\"\n")
        ),
    )
    .await;
    let grandchild = answer.strip_prefix("ok ").expect(&answer).to_owned();
    assert_eq!(
        ok(
            &parent,
            &format!("request {middle} child-state {grandchild}")
        )
        .await,
        "ok inside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_gets_no_environment_variable_its_parent_cannot_read() {
    let h = harness();
    let (parent, _) = confined_parent(
        &h,
        "[[handler]]\ntype = \"environment\"\nallow = [\"HOME\"]\n",
    )
    .await;
    for wider in ["[\"*\"]", "[\"PATH\"]", "[\"HOME\", \"H*\"]"] {
        let answer = spawn(
            &parent,
            &child(&format!(
                "[[handler]]\ntype = \"environment\"\nallow = {wider}\n"
            )),
        )
        .await;
        assert!(
            answer.starts_with("err child manifest refused: handler \"environment\" `allow`: "),
            "{wider}: {answer}"
        );
    }
    let answer = spawn(
        &parent,
        &child("[[handler]]\ntype = \"environment\"\nallow = [\"HOME\"]\n"),
    )
    .await;
    assert!(answer.starts_with("ok "), "{answer}");
}

/// The value a parent sets for `key` in the limits test; children go one past it.
fn parent_value(key: &str) -> u64 {
    if key == "limits.memory_mb" { 32 } else { 5_000 }
}

fn table_line(key: &str, value: u64) -> String {
    let (table, field) = key.split_once('.').unwrap();
    format!("[{table}]\n{field} = {value}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cannot_raise_any_limit_above_its_parents() {
    let h = harness();
    let limits: Vec<_> = RULES
        .iter()
        .filter(|r| matches!(r.kind, RuleKind::AtMost | RuleKind::AtLeast))
        .collect();
    // One parent that sets every limit; tables are merged by key.
    let mut tables: std::collections::BTreeMap<&str, String> = Default::default();
    for rule in &limits {
        let (table, field) = rule.key.split_once('.').unwrap();
        let line = format!("{field} = {}\n", parent_value(rule.key));
        tables.entry(table).or_default().push_str(&line);
    }
    let extra: String = tables
        .iter()
        .map(|(t, lines)| format!("[{t}]\n{lines}"))
        .collect();
    let (parent, _) = confined_parent(&h, &extra).await;
    for rule in &limits {
        let value = parent_value(rule.key);
        let beyond = if rule.kind == RuleKind::AtMost {
            value + 1
        } else {
            value - 1
        };
        let answer = spawn(&parent, &child(&table_line(rule.key, beyond))).await;
        assert!(
            answer.starts_with("err child manifest refused: [")
                && answer.contains(&format!("`{}`: {beyond}", rule.key)),
            "{}: {answer}",
            rule.key
        );
        // The parent's own value is allowed.
        let answer = spawn(&parent, &child(&table_line(rule.key, value))).await;
        assert!(answer.starts_with("ok "), "{}: {answer}", rule.key);
        ok(&parent, &format!("stop {}", &answer[3..])).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_inline_manifest_is_refused() {
    let h = harness();
    let (parent, _) = confined_parent(&h, "[messaging]\nmax_message_bytes = 4000000\n").await;
    let padding = format!("description = \"{}\"\n", "x".repeat(1 << 20));
    let answer = spawn(&parent, &child(&padding)).await;
    assert!(
        answer.starts_with("err the child manifest is") && answer.contains("-byte limit"),
        "{}",
        &answer[..answer.len().min(200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_a_recorded_parent_is_recorded() {
    let h = harness();
    let (parent, _) = confined_parent(&h, "").await;
    let answer = spawn(&parent, &child("save_chain = false\n")).await;
    assert!(
        answer.starts_with("err child manifest refused: manifest `save_chain`"),
        "{answer}"
    );
    let answer = spawn(&parent, &child("[chain]\ndurability = \"batched\"\n")).await;
    assert!(answer.starts_with("ok "), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_child_manifest_is_never_handed_to_a_parent_that_could_not_grant_it() {
    let h = harness();
    // A parent with `random`, and a child of it without: the same inline text asks for it.
    let (parent, _) = confined_parent(&h, "[[handler]]\ntype = \"random\"\n").await;
    let wants_random = child("[[handler]]\ntype = \"random\"\n");
    let middle = ok(&parent, &format!("spawn {}", child(""))).await;
    for _ in 0..3 {
        // The parent spawns it (parsed once, then kept) ...
        ok(&parent, &format!("spawn {wants_random}")).await;
        // ... and the weaker child, handed the very same text, is refused every time: what a
        // supervisor keeps is its own, never another's result.
        let answer = ask(&parent, &format!("request {middle} spawn {wants_random}"))
            .await
            .unwrap();
        assert!(
            answer.starts_with("ok err child manifest refused: handler \"random\""),
            "{answer}"
        );
    }
    // A refused text stays refused for the parent too (refusals are not kept as grants).
    let too_much = child("[limits]\nmemory_mb = 100000\n");
    for _ in 0..2 {
        let answer = spawn(&parent, &too_much).await;
        assert!(answer.starts_with("err child manifest refused"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_gets_no_handler_its_parent_lacks_and_keeps_those_it_has() {
    let h = harness();
    let (parent, _) = confined_parent(&h, "").await;
    for missing in ["random", "timing", "environment"] {
        let answer = spawn(
            &parent,
            &child(&format!("[[handler]]\ntype = {missing:?}\n")),
        )
        .await;
        assert_eq!(
            answer,
            format!(
                "err child manifest refused: handler {missing:?} `type`: the parent does not have this handler, and a child gets only handlers its parent has"
            )
        );
    }
    // Within its parent's grants and limits, a child spawns and works.
    let id = ok(
        &parent,
        &format!(
            "spawn {}",
            child("[[handler]]\ntype = \"supervisor\"\n[limits]\nmemory_mb = 16\n[messaging]\nmax_message_bytes = 4096\n")
        ),
    )
    .await;
    assert_eq!(ok(&parent, &format!("request {id} echo hi")).await, "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_while_children_spawn_never_yields_a_byte_from_outside() {
    let h = harness();
    let (parent, root) = confined_parent(&h, "").await;
    let inside = root.join("real");
    let outside = h.dir.path().join("outside");
    std::fs::create_dir(&inside).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(inside.join("state.txt"), "inside").unwrap();
    std::fs::write(outside.join("state.txt"), "SECRET").unwrap();
    let link = root.join("dir");
    // Relative targets: `real` stays beneath the root, `../outside` leaves it.
    let (inside, outside) = (PathBuf::from("real"), PathBuf::from("../outside"));
    std::os::unix::fs::symlink(&inside, &link).unwrap();

    // Swap `dir` between the directory inside the root and the one outside, atomically (a
    // rename over the link), as fast as the thread can.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, link) = (stop.clone(), link.clone());
        std::thread::spawn(move || {
            let tmp = link.with_extension("tmp");
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                let target: &Path = if flip { &inside } else { &outside };
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp).unwrap();
                std::fs::rename(&tmp, &link).unwrap();
                flip = !flip;
            }
        })
    };
    let manifest = child("init_state = \"dir/state.txt\"\n");
    let (mut spawned, mut refused) = (0, 0);
    for _ in 0..150 {
        let answer = spawn(&parent, &manifest).await;
        match answer.strip_prefix("ok ") {
            Some(id) => {
                let state = ok(&parent, &format!("child-state {id}")).await;
                assert_eq!(state, "inside");
                ok(&parent, &format!("stop {id}")).await;
                spawned += 1;
            }
            None => {
                assert!(!answer.contains("SECRET"), "{answer}");
                assert!(answer.contains("outside the root"), "{answer}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(spawned + refused, 150);
    eprintln!("{spawned} spawned from inside, {refused} refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_fifo_and_oversized_init_states_are_refused_without_hanging() {
    let h = harness();
    let (parent, root) = confined_parent(&h, "").await;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len(theater::manifest::MAX_INIT_STATE_BYTES + 1)
        .unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
    let guard = Duration::from_secs(20);
    for (file, why) in [
        ("fifo", "FIFO"),
        ("big.bin", "limit"),
        ("zero", "symbolic link"),
        ("/dev/zero", "outside the root"),
    ] {
        let answer = tokio::time::timeout(
            guard,
            spawn(&parent, &child(&format!("init_state = {file:?}\n"))),
        )
        .await
        .unwrap_or_else(|_| panic!("spawning with init_state {file} hung"));
        assert!(
            answer.starts_with("err ") && answer.contains(why),
            "{file}: {answer}"
        );
    }
    // The operator's own root manifest is read as named, with the same type checks.
    for file in [
        "/dev/zero".to_owned(),
        root.join("fifo").display().to_string(),
    ] {
        let text = format!(
            "name = \"r\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = {file:?}\n\
             [[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\n",
            test_actors::PUPPET
        );
        std::fs::write(root.join("root.toml"), text).unwrap();
        let manifest = common::from_file(&root.join("root.toml")).unwrap();
        let err = tokio::time::timeout(guard, h.runtime.spawn(manifest))
            .await
            .unwrap()
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a regular file"), "{file}: {err}");
    }
    // A manifest that is a device is refused as one too.
    let err = common::from_file(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert_eq!(ask(&parent, "echo still here").await.unwrap(), "still here");
}
