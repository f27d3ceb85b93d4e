//! The layer check (`scripts/module-graph.py --check`, run by `scripts/test.sh`): it passes on
//! the tree as it is, and fails on an upward edge planted in a copy of the runtime, or on a
//! handler family that names a runtime module other than `theater::plugin`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the check on `runtime` and `handlers` (source trees); its exit code and output.
fn check(runtime: &Path, handlers: &Path) -> (Option<i32>, String) {
    let out = Command::new("python3")
        .arg(repo().join("scripts/module-graph.py"))
        .arg("--check")
        .arg("--root")
        .arg(runtime)
        .arg("--handlers-root")
        .arg(handlers)
        .output()
        .expect("python3 runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

fn copies() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("theater/src");
    let handlers = dir.path().join("theater-handlers/src");
    copy_tree(&repo().join("crates/theater/src"), &runtime);
    copy_tree(&repo().join("crates/theater-handlers/src"), &handlers);
    (dir, runtime, handlers)
}

/// Puts `line` at the top of `file` (the check reads no further than a test module).
fn plant(file: &Path, line: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(file, format!("{line}{text}")).unwrap();
}

#[test]
fn the_tree_as_it_is_keeps_its_layers() {
    let (_dir, runtime, handlers) = copies();
    let (code, out) = check(&runtime, &handlers);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn an_upward_edge_fails_the_check() {
    let (_dir, runtime, handlers) = copies();
    // The instance wrapper reaching the runtime's tables, as it did before `Services`.
    plant(
        &runtime.join("actor.rs"),
        "fn planted() -> usize { std::mem::size_of::<crate::shared::Shared>() }\n",
    );
    let (code, out) = check(&runtime, &handlers);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("actor (layer 5) uses shared (layer 6, above it)"),
        "{out}"
    );
}

#[test]
fn a_handler_family_naming_a_runtime_module_fails_the_check() {
    let (_dir, runtime, handlers) = copies();
    plant(
        &handlers.join("timing.rs"),
        "fn planted(_: &theater::Runtime) {}\n",
    );
    let (code, out) = check(&runtime, &handlers);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("timing.rs names theater::Runtime"), "{out}");
}
