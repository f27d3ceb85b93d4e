//! Programs an actor may run (the `filesystem` handler's `commands`, the `process` handler's
//! `programs`): an allow-list resolved to absolute paths when the manifest is read, and how one
//! is started: by that path (no `PATH` lookup), with a clean environment, in a directory opened
//! beneath a root, in a process group of its own so that everything it starts can be killed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The `PATH` a program runs with; the rest of its environment is what the actor passes.
pub(crate) const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The most programs one allow-list names.
pub const MAX_PROGRAMS: usize = 64;

/// One allow-list entry: the name as the manifest gave it and where it resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    /// The absolute, canonical path; or why the name did not resolve (a call to it is refused
    /// with this reason, and a live spawn is refused with it too, see `Handler::check`).
    pub path: Result<PathBuf, String>,
}

/// Parses the list at `key`: program names (looked up in the operator's `PATH` now) or paths
/// (relative to the manifest's directory).
pub(crate) fn parse_list(
    table: &toml::Table,
    key: &str,
    base_dir: &Path,
) -> Result<Vec<Program>, String> {
    let Some(list) = table.get(key) else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = list
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| format!("`{key}` must be a list of program names or paths"))?;
    // Each is looked up on disk while the manifest is read (a child's, on the runtime's
    // workers): a hostile child manifest must not make that a long walk.
    if names.len() > MAX_PROGRAMS {
        return Err(format!(
            "`{key}` lists {} programs; at most {MAX_PROGRAMS}",
            names.len()
        ));
    }
    names
        .into_iter()
        .map(|name| {
            if name.is_empty() || name.contains('\0') {
                return Err(format!("`{key}`: {name:?} is not a program name"));
            }
            let path = resolve(&name, base_dir);
            Ok(Program { name, path })
        })
        .collect()
}

/// `name` as an absolute, canonical path to an executable file.
fn resolve(name: &str, base_dir: &Path) -> Result<PathBuf, String> {
    let found = if name.contains('/') {
        base_dir.join(name)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| executable(candidate))
            .ok_or_else(|| format!("program {name:?} is not in PATH"))?
    };
    let canonical = std::fs::canonicalize(&found)
        .map_err(|e| format!("program {name:?} ({}): {e}", found.display()))?;
    if !executable(&canonical) {
        return Err(format!(
            "program {name:?} ({}) is not an executable file",
            canonical.display()
        ));
    }
    Ok(canonical)
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The entry `asked` names: by its name as listed, or by its resolved path. A relative path,
/// another spelling or a symlink to an allowed program is not on the list.
pub(crate) fn find<'a>(list: &'a [Program], asked: &str) -> Option<&'a Program> {
    list.iter().find(|p| {
        p.name == asked
            || p.path
                .as_ref()
                .is_ok_and(|path| path.as_os_str() == std::ffi::OsStr::new(asked))
    })
}

/// Whether every program of `child` is one of `parent`'s (by resolved path); else the first
/// that is not.
pub(crate) fn first_outside<'a>(parent: &[Program], child: &'a [Program]) -> Option<&'a Program> {
    child.iter().find(|c| match &c.path {
        Ok(path) => !parent.iter().any(|p| p.path.as_ref() == Ok(path)),
        Err(_) => true,
    })
}

/// The first entry that did not resolve, as a refusal.
pub(crate) fn unresolved(list: &[Program], key: &str) -> Result<(), String> {
    match list.iter().find_map(|p| p.path.as_ref().err()) {
        Some(why) => Err(format!("`{key}`: {why}")),
        None => Ok(()),
    }
}

/// A program to start.
pub(crate) struct Launch<'a> {
    pub(crate) path: &'a Path,
    pub(crate) args: &'a [String],
    /// The working directory, opened beneath a root.
    pub(crate) dir: &'a OwnedFd,
    pub(crate) env: &'a [(String, String)],
    pub(crate) stdin: bool,
}

impl Launch<'_> {
    /// Starts it in a process group of its own, with stdout and stderr piped.
    pub(crate) fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut command = tokio::process::Command::new(self.path);
        command
            .args(self.args)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The child changes to the directory through its own copy of our descriptor, so
            // the directory is the one opened beneath the root, whatever its path names now.
            .current_dir(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .process_group(0)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.spawn()
    }
}

/// Kills a process group (with SIGKILL) when dropped, unless disarmed: a program and whatever
/// it started die with the call or actor that owns them.
pub(crate) struct Group(Option<i32>);

impl Group {
    pub(crate) fn of(child: &tokio::process::Child) -> Group {
        Group(child.id().map(|id| id as i32))
    }

    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for `child` to exit, then runs `kill` (which kills what is left of its group) while
/// the leader is still unreaped, so that its id still names this group, then reaps it.
///
/// The exit is seen through a pidfd, which becomes readable when the process exits, before
/// anyone reaps it. Without pidfds (Linux before 5.3), it reaps first and then kills.
pub(crate) async fn wait_then_kill(
    child: &mut tokio::process::Child,
    kill: impl FnOnce(),
) -> std::io::Result<std::process::ExitStatus> {
    let pidfd = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        .and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()
        })
        // SAFETY: the `AsyncFd` owns the descriptor, which stays open until it is dropped.
        .and_then(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok());
    match pidfd {
        Some(pidfd) => {
            let _ = pidfd.readable().await;
            kill();
            child.wait().await
        }
        None => {
            let status = child.wait().await;
            kill();
            status
        }
    }
}

/// SIGKILLs the process group `pgid`; a group that is gone already is fine.
pub(crate) fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// How a program run to its end went.
pub(crate) struct Finished {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) code: i32,
}

/// Runs `launch` to its end, within `timeout` and `max_output` bytes of stdout and stderr
/// together. Past either, the whole process group is killed and the answer says which.
pub(crate) async fn run_to_end(
    launch: &Launch<'_>,
    timeout: Duration,
    max_output: u64,
) -> Result<Finished, String> {
    let mut child = launch
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", launch.path.display()))?;
    let mut group = Group::of(&child);
    let mut pipes = Pipes::of(&mut child, 8192);
    let read = async {
        let mut output = [Vec::new(), Vec::new()];
        while let Some(piece) = pipes.next().await {
            if let Piece::Bytes(which, data) = piece {
                output[which].extend_from_slice(data);
                if (output[0].len() + output[1].len()) as u64 > max_output {
                    return Err(format!(
                        "its output passed {max_output} bytes; it was killed"
                    ));
                }
            }
        }
        let [stdout, stderr] = output;
        let status = wait_then_kill(&mut child, || group.kill())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Finished {
            stdout,
            stderr,
            code: exit_code(status),
        })
    };
    let finished = match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "it did not finish within {} ms; it was killed",
            timeout.as_millis()
        )),
    };
    // Whatever it left running in its group goes with it (after a timeout or too much
    // output: the leader too).
    group.kill();
    finished
}

type Pipe = Box<dyn AsyncRead + Send + Unpin>;

/// A child's stdout and stderr, read together as either has bytes.
pub(crate) struct Pipes {
    pipes: [Option<Pipe>; 2],
    bufs: [Vec<u8>; 2],
}

/// What one of [`Pipes`] gave: bytes, or its end. Index 0 is stdout, 1 stderr.
pub(crate) enum Piece<'a> {
    Bytes(usize, &'a [u8]),
    Closed(usize),
}

impl Pipes {
    /// Takes `child`'s stdout and stderr, read `buffer` bytes at most at a time.
    pub(crate) fn of(child: &mut tokio::process::Child, buffer: usize) -> Pipes {
        Pipes {
            pipes: [
                child.stdout.take().map(|p| Box::new(p) as Pipe),
                child.stderr.take().map(|p| Box::new(p) as Pipe),
            ],
            bufs: [vec![0; buffer], vec![0; buffer]],
        }
    }

    /// The next bytes or end of either pipe; `None` once both have ended.
    pub(crate) async fn next(&mut self) -> Option<Piece<'_>> {
        if self.pipes.iter().all(Option::is_none) {
            return None;
        }
        let [out, err] = &mut self.pipes;
        let [out_buf, err_buf] = &mut self.bufs;
        let (which, n) = tokio::select! {
            n = read_some(out, out_buf) => (0, n),
            n = read_some(err, err_buf) => (1, n),
        };
        if n == 0 {
            self.pipes[which] = None;
            return Some(Piece::Closed(which));
        }
        Some(Piece::Bytes(which, &self.bufs[which][..n]))
    }
}

/// Reads into `buf` from `pipe`; never ready once the pipe is closed (`None`), so that the
/// other pipe is waited for alone.
async fn read_some(pipe: &mut Option<Pipe>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

/// The exit code, or for a program killed by a signal, 128 plus the signal (as shells say).
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_through_path_and_paths_against_the_manifest() {
        let sh = resolve("sh", Path::new("/nowhere")).unwrap();
        assert!(sh.is_absolute());
        let e = resolve("no-such-program-here", Path::new("/")).unwrap_err();
        assert!(e.contains("not in PATH"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), "x").unwrap();
        let e = resolve("./data", dir.path()).unwrap_err();
        assert!(e.contains("not an executable file"), "{e}");
        let list = vec![Program {
            name: "sh".into(),
            path: Ok(sh.clone()),
        }];
        assert!(find(&list, "sh").is_some());
        assert!(find(&list, sh.to_str().unwrap()).is_some());
        assert!(find(&list, "./sh").is_none());
        assert!(find(&list, "bash").is_none());
    }
}
