//! Real files in tempdirs, real syscalls.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use theater_files::{FileError, Root, open_file, read_beneath, read_file};

const CAP: u64 = 1 << 20;

/// A tempdir holding `root/` (the confinement root) and `outside/` (a sibling it must not reach).
struct Fixture {
    _dir: TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside bytes").unwrap();
    Fixture {
        _dir: dir,
        root,
        outside,
    }
}

/// Runs `body` on a thread and fails if it has not returned after a minute: a blocking open
/// then fails the test instead of hanging the suite.
fn without_hanging(body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => handle.join().unwrap(),
        // The body panicked: join to surface its message.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => handle.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("still blocked after 60 s"),
    }
}

#[test]
fn reads_a_file_beneath_the_root() {
    let f = fixture();
    fs::create_dir(f.root.join("child")).unwrap();
    fs::write(f.root.join("child/state.bin"), b"inside bytes").unwrap();
    let root = Root::open(&f.root).unwrap();

    let bytes = read_beneath(&root, &f.root.join("child/state.bin"), CAP, "init_state").unwrap();
    assert_eq!(bytes, b"inside bytes");
    // `.` and `..` that stay inside are resolved lexically.
    let dotted = f.root.join("child/./../child/state.bin");
    assert_eq!(
        read_beneath(&root, &dotted, CAP, "init_state").unwrap(),
        b"inside bytes"
    );

    let opened = root
        .open_file(&f.root.join("child/state.bin"), "init_state")
        .unwrap();
    let meta = fs::metadata(f.root.join("child/state.bin")).unwrap();
    assert_eq!(opened.stamp().size, 12);
    assert_eq!(
        opened.stamp().ino,
        std::os::unix::fs::MetadataExt::ino(&meta)
    );
    assert_eq!(root.path(), fs::canonicalize(&f.root).unwrap());
}

#[test]
fn refuses_dotdot_escapes_and_absolute_paths_outside_without_io() {
    let f = fixture();
    let root = Root::open(&f.root).unwrap();
    // None of these exist: OutsideRoot rather than NotFound shows no lookup happened.
    for path in [
        f.root.join("../outside/missing"),
        f.root.join("a/../../outside/missing"),
        PathBuf::from("/nonexistent/theater-files/x"),
        f.root.with_file_name("root-sibling/missing"),
        PathBuf::from("relative-missing-file"),
    ] {
        assert!(!root.contains(&path), "{path:?}");
        let err = read_beneath(&root, &path, CAP, "init_state").unwrap_err();
        assert!(
            matches!(err, FileError::OutsideRoot { .. }),
            "{path:?}: {err}"
        );
        assert!(matches!(
            root.subdir(&path, "child root").unwrap_err(),
            FileError::OutsideRoot { .. }
        ));
    }
    let err = read_beneath(&root, Path::new("/etc/passwd"), CAP, "init_state").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "init_state /etc/passwd is outside the root {} (a child may only name files beneath its supervisor's root)",
            root.path().display()
        )
    );
    assert!(root.contains(&f.root));
    assert!(root.contains(&f.root.join("x/../y")));
}

#[test]
fn refuses_symlinks_that_point_outside() {
    let f = fixture();
    symlink("/etc/passwd", f.root.join("passwd")).unwrap();
    symlink(&f.outside, f.root.join("out")).unwrap();
    symlink("../outside", f.root.join("out_rel")).unwrap();
    let root = Root::open(&f.root).unwrap();

    let err = read_beneath(&root, &f.root.join("passwd"), CAP, "init_state").unwrap_err();
    assert!(
        matches!(
            err,
            FileError::Symlink { .. } | FileError::OutsideRoot { .. }
        ),
        "{err}"
    );
    for middle in ["out/secret", "out_rel/secret"] {
        let err = read_beneath(&root, &f.root.join(middle), CAP, "init_state").unwrap_err();
        assert!(
            matches!(
                err,
                FileError::OutsideRoot { .. } | FileError::Symlink { .. }
            ),
            "{middle}: {err}"
        );
        let err = root.subdir(&f.root.join(middle).with_file_name(""), "child root");
        assert!(err.is_err());
    }
}

#[test]
fn follows_a_symlinked_middle_directory_that_stays_inside() {
    let f = fixture();
    fs::create_dir_all(f.root.join("real/deeper")).unwrap();
    fs::write(f.root.join("real/deeper/c.wasm"), b"component").unwrap();
    symlink("real", f.root.join("alias")).unwrap();
    fs::create_dir(f.root.join("sub")).unwrap();
    symlink("../real/deeper", f.root.join("sub/up")).unwrap();
    let root = Root::open(&f.root).unwrap();

    for path in ["alias/deeper/c.wasm", "sub/up/c.wasm"] {
        let bytes = read_beneath(&root, &f.root.join(path), CAP, "component").unwrap();
        assert_eq!(bytes, b"component", "{path}");
    }
    let child = root
        .subdir(&f.root.join("alias/deeper"), "child root")
        .unwrap();
    assert_eq!(
        read_beneath(
            &child,
            &f.root.join("alias/deeper/c.wasm"),
            CAP,
            "component"
        )
        .unwrap(),
        b"component"
    );
    // The final component is never followed, even when it stays inside.
    let err = root
        .subdir(&f.root.join("alias"), "child root")
        .unwrap_err();
    assert!(matches!(err, FileError::Symlink { .. }), "{err}");
}

#[test]
fn refuses_dev_zero_quickly() {
    let f = fixture();
    symlink("/dev/zero", f.root.join("zero")).unwrap();
    symlink("/dev", f.root.join("dev")).unwrap();
    let root = Root::open(&f.root).unwrap();
    without_hanging(move || {
        for path in ["zero", "dev/zero"] {
            let err = read_beneath(&root, &f.root.join(path), CAP, "init_state").unwrap_err();
            assert!(
                matches!(
                    err,
                    FileError::OutsideRoot { .. }
                        | FileError::Symlink { .. }
                        | FileError::NotRegular { .. }
                ),
                "{path}: {err}"
            );
        }
        let err = open_file(Path::new("/dev/zero"), "init_state").unwrap_err();
        assert!(
            matches!(
                err,
                FileError::NotRegular {
                    kind: "character device",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "init_state /dev/zero is a character device, not a regular file"
        );
        let err = read_file(Path::new("/dev/zero"), CAP, "init_state").unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
    });
}

#[test]
fn refuses_a_fifo_without_blocking() {
    let f = fixture();
    let fifo = f.root.join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let root = Root::open(&f.root).unwrap();
    without_hanging(move || {
        let err = read_beneath(&root, &fifo, CAP, "init_state").unwrap_err();
        assert!(
            matches!(err, FileError::NotRegular { kind: "FIFO", .. }),
            "{err}"
        );
        let err = read_file(&fifo, CAP, "init_state").unwrap_err();
        assert!(
            matches!(err, FileError::NotRegular { kind: "FIFO", .. }),
            "{err}"
        );
        let err = root.subdir(&fifo, "child root").unwrap_err();
        assert!(matches!(err, FileError::NotDirectory { .. }), "{err}");
        drop(f);
    });
}

#[test]
fn refuses_directories_and_missing_files_clearly() {
    let f = fixture();
    fs::create_dir(f.root.join("d")).unwrap();
    fs::write(f.root.join("file"), b"x").unwrap();
    let root = Root::open(&f.root).unwrap();

    let err = read_beneath(&root, &f.root.join("d"), CAP, "component").unwrap_err();
    assert!(
        matches!(
            err,
            FileError::NotRegular {
                kind: "directory",
                ..
            }
        ),
        "{err}"
    );
    let err = read_beneath(&root, &f.root, CAP, "component").unwrap_err();
    assert!(
        matches!(
            err,
            FileError::NotRegular {
                kind: "directory",
                ..
            }
        ),
        "{err}"
    );

    let missing = f.root.join("c.wasm");
    let err = read_beneath(&root, &missing, CAP, "component").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("component {}: no such file", missing.display())
    );
    let err = read_file(Path::new("c.wasm-theater-files-missing"), CAP, "component").unwrap_err();
    assert_eq!(
        err.to_string(),
        "component c.wasm-theater-files-missing: no such file"
    );

    let err = root.subdir(&f.root.join("file"), "child root").unwrap_err();
    assert!(matches!(err, FileError::NotDirectory { .. }), "{err}");
    assert!(matches!(
        Root::open(&f.root.join("file")).unwrap_err(),
        FileError::NotDirectory { .. }
    ));
    assert!(matches!(
        Root::open(&f.root.join("nope")).unwrap_err(),
        FileError::NotFound { .. }
    ));
}

#[test]
fn enforces_the_size_cap() {
    let f = fixture();
    fs::write(f.root.join("exact"), vec![7u8; 100]).unwrap();
    fs::write(f.root.join("big"), vec![7u8; 101]).unwrap();
    let root = Root::open(&f.root).unwrap();

    assert_eq!(
        read_beneath(&root, &f.root.join("exact"), 100, "init_state")
            .unwrap()
            .len(),
        100
    );
    let err = read_beneath(&root, &f.root.join("big"), 100, "init_state").unwrap_err();
    assert!(
        matches!(
            err,
            FileError::TooLarge {
                size: 101,
                cap: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with(" is 101 bytes, more than the 100-byte limit"),
        "{err}"
    );

    // A file within the cap when opened but grown before the read is caught while reading.
    let opened = root.open_file(&f.root.join("exact"), "init_state").unwrap();
    assert_eq!(opened.stamp().size, 100);
    fs::write(f.root.join("exact"), vec![7u8; 200]).unwrap();
    let err = opened.read(100, "init_state").unwrap_err();
    assert!(matches!(err, FileError::Grew { cap: 100, .. }), "{err}");
}

#[test]
fn subdir_confines_further() {
    let f = fixture();
    fs::create_dir(f.root.join("child")).unwrap();
    fs::write(f.root.join("child/mine"), b"child").unwrap();
    fs::write(f.root.join("parents"), b"parent").unwrap();
    let root = Root::open(&f.root).unwrap();
    let child = root.subdir(&f.root.join("child"), "child root").unwrap();

    assert_eq!(child.path(), root.path().join("child"));
    assert_eq!(
        read_beneath(&child, &f.root.join("child/mine"), CAP, "manifest").unwrap(),
        b"child"
    );
    assert!(read_beneath(&root, &f.root.join("parents"), CAP, "manifest").is_ok());
    for path in [f.root.join("parents"), f.root.join("child/../parents")] {
        let err = read_beneath(&child, &path, CAP, "manifest").unwrap_err();
        assert!(matches!(err, FileError::OutsideRoot { .. }), "{err}");
    }
    // A symlink inside the child pointing at the parent's file escapes the child.
    symlink("..", f.root.join("child/up")).unwrap();
    let err = read_beneath(&child, &f.root.join("child/up/parents"), CAP, "manifest").unwrap_err();
    assert!(
        matches!(
            err,
            FileError::OutsideRoot { .. } | FileError::Symlink { .. }
        ),
        "{err}"
    );
}

#[test]
fn root_named_through_a_symlink_accepts_both_names() {
    let f = fixture();
    fs::write(f.root.join("m"), b"m").unwrap();
    let link = f.root.with_file_name("root-link");
    symlink(&f.root, &link).unwrap();
    let root = Root::open(&link).unwrap();

    assert_eq!(root.path(), fs::canonicalize(&f.root).unwrap());
    for path in [link.join("m"), f.root.join("m")] {
        assert!(root.contains(&path));
        assert_eq!(read_beneath(&root, &path, CAP, "manifest").unwrap(), b"m");
    }
}

#[test]
fn swapped_symlinks_never_leak_outside_bytes() {
    let f = fixture();
    fs::create_dir_all(f.root.join("inside/real")).unwrap();
    fs::write(f.root.join("inside/real/secret"), b"inside bytes").unwrap();
    let root = Root::open(&f.root).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));

    // Swaps `inside/dir` between a directory inside the root and one outside, and
    // `inside/target` between a regular file inside and a symlink to a file outside.
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let inside = f.root.join("inside");
        let outside = f.outside.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let out = n % 2 == 1;
                let tmp = inside.join("tmp_dir");
                if out {
                    symlink(&outside, &tmp).unwrap();
                } else {
                    symlink("real", &tmp).unwrap();
                }
                fs::rename(&tmp, inside.join("dir")).unwrap();
                let tmp = inside.join("tmp_target");
                if out {
                    symlink(outside.join("secret"), &tmp).unwrap();
                } else {
                    fs::write(&tmp, b"inside bytes").unwrap();
                }
                fs::rename(&tmp, inside.join("target")).unwrap();
                n += 1;
                swaps.store(n, Ordering::Relaxed);
            }
        })
    };
    while swaps.load(Ordering::Relaxed) < 4 {
        std::thread::yield_now();
    }

    let (mut read, mut refused) = (0, 0);
    for i in 0..2000 {
        let path = if i % 2 == 0 {
            "inside/dir/secret"
        } else {
            "inside/target"
        };
        match read_beneath(&root, &f.root.join(path), CAP, "init_state") {
            Ok(bytes) => {
                assert_eq!(bytes, b"inside bytes", "{path} leaked outside bytes");
                read += 1;
            }
            Err(e) => {
                assert!(
                    matches!(e, FileError::OutsideRoot { .. } | FileError::Symlink { .. }),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(read + refused, 2000);
    // How many reads won the race depends on scheduling; with the links pointing inside, the
    // same reads succeed.
    let inside = f.root.join("inside");
    symlink("real", inside.join("tmp_dir")).unwrap();
    fs::rename(inside.join("tmp_dir"), inside.join("dir")).unwrap();
    fs::write(inside.join("tmp_target"), b"inside bytes").unwrap();
    fs::rename(inside.join("tmp_target"), inside.join("target")).unwrap();
    for path in ["inside/dir/secret", "inside/target"] {
        let bytes = read_beneath(&root, &f.root.join(path), CAP, "init_state").unwrap();
        assert_eq!(bytes, b"inside bytes");
    }
}
