//! The `filesystem` handler, through a real guest (actors/file-keeper) on real temp dirs and
//! real programs: every function and its errors, escape attempts, a child held within its
//! parent's root and commands, and a replay after the files and programs are gone.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Harness, ask, harness, keeper, keeper_manifest, ok, puppet};

const KEEPER: &str = test_actors::FILE_KEEPER;

/// A filesystem handler table on `root` (relative to the harness dir) with these extra keys.
fn files(root: &str, extra: &str) -> String {
    format!("[[handler]]\ntype = \"filesystem\"\nroot = {root:?}\n{extra}")
}

fn setup() -> Harness {
    let h = harness();
    std::fs::create_dir(h.dir.path().join("root")).unwrap();
    std::fs::write(h.dir.path().join("secret"), "secret").unwrap();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_function_works_and_says_what_is_wrong() {
    let h = setup();
    let k = keeper(
        &h,
        KEEPER,
        &files("root", "max_read_bytes = 100\nmax_write_bytes = 50\n"),
    )
    .await;
    ok(&k, "mkdir notes").await;
    ok(&k, "write notes/a.txt hello world").await;
    assert_eq!(ok(&k, "read notes/a.txt").await, "hello world");
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("root/notes/a.txt")).unwrap(),
        "hello world"
    );
    ok(&k, "write notes/a.txt short").await;
    assert_eq!(ok(&k, "read notes/a.txt").await, "short");
    ok(&k, "write notes/b.txt b").await;
    assert_eq!(ok(&k, "ls notes").await, "a.txt b.txt");
    assert_eq!(ok(&k, "ls .").await, "notes");
    assert_eq!(ok(&k, "exists notes/a.txt").await, "true");
    assert_eq!(ok(&k, "exists notes/c.txt").await, "false");
    assert_eq!(ok(&k, "exists nowhere/c.txt").await, "false");
    ok(&k, "rm notes/b.txt").await;
    assert_eq!(ok(&k, "ls notes").await, "a.txt");

    let err = |answer: String, want: &str| {
        assert!(
            answer.starts_with("err ") && answer.contains(want),
            "{answer:?} lacks {want:?}"
        );
    };
    err(ask(&k, "read notes/c.txt").await.unwrap(), "does not exist");
    err(ask(&k, "rm notes").await.unwrap(), "is a directory");
    err(ask(&k, "mkdir notes").await.unwrap(), "exists already");
    err(ask(&k, "mkdir a/b/c").await.unwrap(), "does not exist");
    err(ask(&k, "read notes").await.unwrap(), "directory");
    err(
        ask(&k, "write-big big 51").await.unwrap(),
        "more than the 50-byte write limit",
    );
    std::fs::write(h.dir.path().join("root/large"), vec![b'x'; 101]).unwrap();
    err(
        ask(&k, "read large").await.unwrap(),
        "more than the 100-byte read limit",
    );
    ok(&k, "rmdir notes").await;
    assert_eq!(ok(&k, "exists notes").await, "false");
    err(ask(&k, "rmdir .").await.unwrap(), "filesystem root itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_root_refuses_every_change() {
    let h = setup();
    std::fs::write(h.dir.path().join("root/kept"), "kept").unwrap();
    let k = keeper(&h, KEEPER, &files("root", "read_only = true\n")).await;
    assert_eq!(ok(&k, "read kept").await, "kept");
    for change in [
        "write kept x",
        "rm kept",
        "mkdir d",
        "rmdir d",
        "write new x",
    ] {
        let e = ask(&k, change).await.unwrap();
        assert!(e.contains("read-only"), "{change}: {e}");
    }
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("root/kept")).unwrap(),
        "kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_leaves_the_root() {
    let h = setup();
    let root = h.dir.path().join("root");
    symlink(h.dir.path().join("secret"), root.join("abs")).unwrap();
    symlink("../secret", root.join("rel")).unwrap();
    symlink("..", root.join("up")).unwrap();
    symlink("/dev/zero", root.join("zero")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let k = keeper(&h, KEEPER, &files("root", "")).await;
    for (command, want) in [
        ("read ../secret", "holds `..`"),
        ("read sub/../../secret", "holds `..`"),
        ("write ../secret x", "holds `..`"),
        ("read /etc/passwd", "is absolute"),
        ("write /tmp/x x", "is absolute"),
        ("ls /", "is absolute"),
        ("read abs", "symbolic link"),
        ("read rel", "symbolic link"),
        ("write rel x", "symbolic link"),
        ("read up/secret", "outside the filesystem root"),
        ("ls up", "symbolic link"),
        ("read zero", "symbolic link"),
        ("read fifo", "FIFO"),
        ("write fifo x", "FIFO"),
        ("read a\0b", "NUL"),
        ("write a\0b x", "NUL"),
        ("exists ../secret", "holds `..`"),
    ] {
        let answer = ask(&k, command).await.unwrap();
        assert!(
            answer.starts_with("err ") && answer.contains(want),
            "{command:?}: {answer:?} lacks {want:?}"
        );
        // The answer names the actor's path, never the host's.
        assert!(!answer.contains(h.dir.path().to_str().unwrap()), "{answer}");
    }
    // Deleting a symlink deletes the link, not what it points at.
    ok(&k, "rm abs").await;
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("secret")).unwrap(),
        "secret"
    );
}

/// A directory swapped for a symlink out while the actor reads through it, over and over:
/// the kernel refuses the escape every time, whichever state the race catches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_during_calls_never_leads_out() {
    let h = setup();
    let root = h.dir.path().join("root");
    std::fs::create_dir(root.join("real")).unwrap();
    std::fs::write(root.join("real/secret"), "inside").unwrap();
    let k = keeper(&h, KEEPER, &files("root", "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, root, outside) = (stop.clone(), root.clone(), h.dir.path().to_owned());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // `d` is a directory inside, then a symlink to the directory outside.
                let _ = std::fs::remove_file(root.join("d"));
                let _ = symlink("real", root.join("tmp-link"));
                let _ = std::fs::rename(root.join("tmp-link"), root.join("d"));
                let _ = std::fs::remove_file(root.join("d"));
                let _ = symlink(&outside, root.join("tmp-link"));
                let _ = std::fs::rename(root.join("tmp-link"), root.join("d"));
                swaps += 1;
            }
            swaps
        })
    };
    for _ in 0..300 {
        let answer = ask(&k, "read d/secret").await.unwrap();
        assert_ne!(answer, "ok secret", "read the file outside the root");
        assert!(
            answer == "ok inside" || answer.starts_with("err path \"d/secret\""),
            "{answer}"
        );
        let answer = ask(&k, "write d/secret x").await.unwrap();
        assert!(answer.starts_with("err"), "{answer}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("secret")).unwrap(),
        "secret"
    );
}

/// A script in `dir` named `name` that prints its arguments.
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_commands_run_confined_and_bounded() {
    let h = setup();
    let bin = h.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(&bin, "nix", "echo nix \"$@\"");
    std::fs::create_dir(h.dir.path().join("root/sub")).unwrap();
    std::fs::write(h.dir.path().join("root/sub/here"), "").unwrap();
    let k = keeper(
        &h,
        KEEPER,
        &files(
            "root",
            "commands = [\"ls\", \"sleep\", \"yes\", \"env\", \"./bin/nix\"]\ncommand_timeout_ms = 300\nmax_output_bytes = 1000\n",
        ),
    )
    .await;
    // Runs in the directory named beneath the root.
    let listing = ok(&k, "exec sub ls").await;
    assert!(
        listing.starts_with("exit=0 stdout=\"here\\n\""),
        "{listing}"
    );
    // By its resolved path too.
    let ls = std::fs::canonicalize(which("ls")).unwrap();
    assert!(
        ok(&k, &format!("exec sub {}", ls.display()))
            .await
            .starts_with("exit=0")
    );
    // With a clean environment.
    let env = ok(&k, "exec . env").await;
    assert!(!env.contains("HOME="), "{env}");
    assert!(env.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{env}");
    // Not on the list: by name, relative path, or a symlink to an allowed one.
    symlink(&ls, h.dir.path().join("root/ls")).unwrap();
    for refused in [
        "exec . cat /etc/passwd",
        "exec . ./ls",
        "exec . bin/ls",
        "exec . /bin/sh -c id",
    ] {
        let e = ask(&k, refused).await.unwrap();
        assert!(
            e.contains("is not in the filesystem handler's `commands`"),
            "{refused}: {e}"
        );
    }
    let e = ask(&k, "exec ../ ls").await.unwrap();
    assert!(e.contains("holds `..`"), "{e}");
    // Bounded in time and output: killed, and said so.
    let slow = ok(&k, "exec . sleep 10").await;
    assert!(slow.contains("did not finish within 300 ms"), "{slow}");
    let loud = ok(&k, "exec . yes").await;
    assert!(loud.contains("output passed 1000 bytes"), "{loud}");
    // `nix` is allowed here (a stand-in script named nix).
    let nix = ok(&k, "nix . echo hi").await;
    assert!(nix.contains("nix develop --command sh -c echo hi"), "{nix}");
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nix_is_refused_unless_allowed() {
    let h = setup();
    let k = keeper(&h, KEEPER, &files("root", "commands = [\"ls\"]\n")).await;
    let e = ask(&k, "nix . echo hi").await.unwrap();
    assert!(
        e.contains("`nix` is not in the filesystem handler's `commands`"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_root_or_program_refuses_the_spawn() {
    let h = setup();
    let e = h
        .runtime
        .spawn(keeper_manifest(h.dir.path(), KEEPER, &files("nowhere", "")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("handler \"filesystem\"") && e.contains("nowhere"),
        "{e}"
    );
    let e = h
        .runtime
        .spawn(keeper_manifest(
            h.dir.path(),
            KEEPER,
            &files("root", "commands = [\"no-such-program-anywhere\"]\n"),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no-such-program-anywhere") && e.contains("not in PATH"),
        "{e}"
    );
    // A program beneath a writable root: the actor could rewrite it, then run it.
    let tool = h.dir.path().join("root/tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let e = h
        .runtime
        .spawn(keeper_manifest(
            h.dir.path(),
            KEEPER,
            &files("root", "commands = [\"./root/tool\"]\n"),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("lies beneath the writable root"), "{e}");
    h.runtime
        .spawn(keeper_manifest(
            h.dir.path(),
            KEEPER,
            &files("root", "commands = [\"./root/tool\"]\nread_only = true\n"),
        ))
        .await
        .unwrap();
    let text = "name = \"x\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[[handler]]\ntype = \"filesystem\"\n";
    let e = common::parse(
        text,
        theater::ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`root` is required"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_gets_no_more_files_or_commands_than_its_parent() {
    let h = setup();
    std::fs::create_dir(h.dir.path().join("root/child")).unwrap();
    let parent = puppet(
        &h,
        "parent.toml",
        &files(
            "root",
            "read_only = true\ncommands = [\"ls\"]\nmax_read_bytes = 100\n",
        ),
    )
    .await;
    let spawn = |extra: &str| {
        keeper_manifest(h.dir.path(), KEEPER, extra);
        format!("spawn {}", h.dir.path().join("keeper.toml").display())
    };
    for (extra, key) in [
        (files(".", ""), "`root`"),
        (files("root/../secret", ""), "`root`"),
        (files("root/child", "read_only = false\n"), "`read_only`"),
        (files("root/child", "commands = [\"cat\"]\n"), "`commands`"),
        (
            files("root/child", "max_read_bytes = 101\n"),
            "`max_read_bytes`",
        ),
    ] {
        let e = ask(&parent, &spawn(&extra)).await.unwrap();
        assert!(e.starts_with("err") && e.contains(key), "{extra}: {e}");
    }
    let child = ok(&parent, &spawn(&files("root/child", ""))).await;
    assert!(!child.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_commands_replay_after_they_are_gone() {
    let h = setup();
    let k = keeper(&h, KEEPER, &files("root", "commands = [\"ls\"]\n")).await;
    ok(&k, "write a.txt one").await;
    ok(&k, "mkdir d").await;
    assert_eq!(ok(&k, "read a.txt").await, "one");
    assert_eq!(ok(&k, "ls .").await, "a.txt d");
    let listing = ok(&k, "exec . ls").await;
    let id = k.id().to_owned();
    drop(k);
    let Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("root")).unwrap();
    let (len, summary) = common::replay_from(dir.path(), &id, &theater_handlers::builtin()).await;
    assert_eq!(summary.events, len as u64);
    assert!(summary.host_calls >= 5, "{summary:?}");
    assert!(listing.contains("a.txt"));
}
