//! Opening files on behalf of untrusted actors, confined beneath a root directory.
//!
//! The runtime reads files that untrusted actors name: a child actor's manifest, component and
//! initial state, named by its parent guest. Every such file is opened **once**, beneath a
//! [`Root`], with the confinement enforced by the kernel (`openat2` with `RESOLVE_BENEATH`),
//! checked to be a regular file, and read up to a size cap. The bytes are passed along and
//! nothing is read again by path. This closes three holes:
//!
//! - checking a path and then reading it again by path lets a symlink swapped in between escape
//!   the root, so the check and the read must use the same file descriptor;
//! - reading `/dev/zero` (or any endless file) exhausts memory, so only regular files are read,
//!   and only up to a cap;
//! - opening a FIFO blocks a thread until a writer appears, and opening some devices has
//!   effects (a watchdog starts counting), so on Linux a file is first opened with `O_PATH`,
//!   which runs nothing of its driver, checked with `fstat`, and only then reopened for reading
//!   through `/proc/self/fd` (where `/proc` is missing: opened `O_NONBLOCK` and checked before
//!   any read);
//! - a file rewritten while it is read would give bytes its stamp does not identify, so the
//!   size and mtime are checked again after reading.
//!
//! Paths are made absolute against the current directory and `.`/`..` are resolved lexically
//! (without I/O). A path lies beneath a root if its lexical form starts with the root's canonical
//! path or with the root's path as the operator gave it; anything else is refused without I/O.
//! Symlinks inside the root are followed as long as they stay inside it (relative ones only:
//! the kernel refuses absolute symlinks under `RESOLVE_BENEATH`); a symlink as the final
//! component is never followed.
//!
//! On kernels without `openat2` (before Linux 5.6, or where seccomp forbids it) and on other
//! unix systems, the path is walked one component at a time with `O_NOFOLLOW`, so symlinks are
//! then refused anywhere in the path.
//!
//! ```no_run
//! use std::path::Path;
//! use theater_files::{Root, read_beneath};
//!
//! let root = Root::open(Path::new("/srv/actors"))?;
//! let manifest = read_beneath(&root, Path::new("/srv/actors/child/manifest.toml"), 1 << 20, "manifest")?;
//! # Ok::<(), theater_files::FileError>(())
//! ```

#![warn(missing_docs)]

pub mod guest;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode};
use rustix::io::Errno;

/// Flags for a file opened beneath a root: never follow a final symlink, never block on a FIFO,
/// never acquire a controlling terminal.
const BENEATH_FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// Flags for a file the operator named: followed as named, but still never blocking.
const TRUSTED_FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// Flags for a directory opened beneath a root; `O_DIRECTORY` also keeps a FIFO from blocking.
const BENEATH_DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Flags for the operator's root directory, followed as named.
const TRUSTED_DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// How often to retry `openat2` when the kernel reports a rename race (`EAGAIN`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const OPENAT2_RETRIES: u32 = 8;

/// Why a file could not be opened or read. Each displays as one line naming the file and the
/// problem.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is not beneath the root, lexically or once the kernel followed a symlink.
    #[error(
        "{what} {path} is outside the root {root} (a child may only name files beneath its supervisor's root)"
    )]
    OutsideRoot {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
        /// The root's canonical path.
        root: PathBuf,
    },
    /// The path is a symlink, or (where `openat2` is unavailable) goes through one.
    #[error(
        "{what} {path} is or goes through a symbolic link that is not followed; name the file itself"
    )]
    Symlink {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// The path names something other than a regular file.
    #[error("{what} {path} is a {kind}, not a regular file")]
    NotRegular {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
        /// What it is instead: "directory", "FIFO", "character device", ...
        kind: &'static str,
    },
    /// The path, or one of its parents, is not a directory where a directory is needed.
    #[error("{what} {path} is not a directory")]
    NotDirectory {
        /// The directory's role, e.g. "root".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// The file's size (from `fstat`) exceeds the cap.
    #[error("{what} {path} is {size} bytes, more than the {cap}-byte limit")]
    TooLarge {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
        /// The size `fstat` reported.
        size: u64,
        /// The cap in bytes.
        cap: u64,
    },
    /// The file was within the cap when opened but grew past it while being read.
    #[error("{what} {path} grew past the {cap}-byte limit while being read")]
    Grew {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },
    /// The file changed while it was being read (or was replaced before it was reopened).
    #[error("{what} {path} changed while it was being read; try again once it is written")]
    Changed {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// Nothing exists at the path.
    #[error("{what} {path}: no such file")]
    NotFound {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// The file's role, e.g. "component".
        what: String,
        /// The path as the caller gave it.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    fn io(what: &str, path: &Path, source: io::Error) -> FileError {
        FileError::Io {
            what: what.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// Maps an error from opening a path followed as named.
    fn trusted(what: &str, path: &Path, errno: Errno) -> FileError {
        let (what, path) = (what.to_owned(), path.to_owned());
        if errno == Errno::NOENT {
            FileError::NotFound { what, path }
        } else if errno == Errno::NOTDIR {
            FileError::NotDirectory { what, path }
        } else {
            FileError::Io {
                what,
                path,
                source: errno.into(),
            }
        }
    }
}

/// A directory that files are opened beneath. Cheap to clone (the fd is shared).
#[derive(Clone, Debug)]
pub struct Root {
    /// The directory itself; every open beneath the root starts here, never from a path.
    fd: Arc<OwnedFd>,
    /// The canonical path, for messages and for lexical containment.
    canonical: PathBuf,
    /// The absolute, lexically normalized path as given, which may go through symlinks.
    given: PathBuf,
}

impl Root {
    /// Opens the operator's directory `path` (trusted: followed as named, after `..` is
    /// resolved lexically like every path in this crate). Error if not a directory.
    pub fn open(path: &Path) -> Result<Root, FileError> {
        let what = "root";
        let given = normalize(path).map_err(|e| FileError::io(what, path, e))?;
        let fd = rustix::fs::open(&given, TRUSTED_DIR_FLAGS, Mode::empty())
            .map_err(|e| FileError::trusted(what, path, e))?;
        let canonical = std::fs::canonicalize(&given).map_err(|e| FileError::io(what, path, e))?;
        Ok(Root {
            fd: Arc::new(fd),
            canonical,
            given,
        })
    }

    /// Opens `path`, which must lie beneath this root, as a narrower root (a child's).
    ///
    /// `what` names the directory's role in error messages. The new root's canonical path is
    /// this root's canonical path joined with the lexical remainder; it is not re-resolved.
    pub fn subdir(&self, path: &Path, what: &str) -> Result<Root, FileError> {
        let (given, rel) = self.beneath(path, what)?;
        let fd = open_beneath(&self.fd, &rel, BENEATH_DIR_FLAGS)
            .map_err(|e| self.beneath_error(what, path, e))?;
        let canonical = if rel.as_os_str().is_empty() {
            self.canonical.clone()
        } else {
            self.canonical.join(&rel)
        };
        Ok(Root {
            fd: Arc::new(fd),
            canonical,
            given,
        })
    }

    /// Whether `path` lies beneath this root lexically (or is the root itself). No I/O.
    pub fn contains(&self, path: &Path) -> bool {
        normalize(path).is_ok_and(|abs| self.relative(&abs).is_some())
    }

    /// The root's canonical path, for messages.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Opens the regular file `path` beneath this root.
    ///
    /// `what` names the file's role ("manifest", "component", ...) in error messages.
    pub fn open_file(&self, path: &Path, what: &str) -> Result<OpenFile, FileError> {
        let (_, rel) = self.beneath(path, what)?;
        if let Some(path_flags) = path_only(OFlags::NOFOLLOW) {
            let fd = open_beneath(&self.fd, &rel, path_flags)
                .map_err(|e| self.beneath_error(what, path, e))?;
            return OpenFile::path_only(fd, what, path);
        }
        let fd = open_beneath(&self.fd, &rel, BENEATH_FILE_FLAGS)
            .map_err(|e| self.beneath_error(what, path, e))?;
        OpenFile::regular(fd, what, path)
    }

    /// The normalized absolute `path` and its remainder below the root, or `OutsideRoot`.
    fn beneath(&self, path: &Path, what: &str) -> Result<(PathBuf, PathBuf), FileError> {
        let abs = normalize(path).map_err(|e| FileError::io(what, path, e))?;
        match self.relative(&abs) {
            Some(rel) => {
                let rel = rel.to_owned();
                Ok((abs, rel))
            }
            None => Err(self.outside(what, path)),
        }
    }

    /// The remainder of the normalized absolute `abs` below the root, by either of its names.
    fn relative<'a>(&self, abs: &'a Path) -> Option<&'a Path> {
        abs.strip_prefix(&self.canonical)
            .or_else(|_| abs.strip_prefix(&self.given))
            .ok()
    }

    fn outside(&self, what: &str, path: &Path) -> FileError {
        FileError::OutsideRoot {
            what: what.to_owned(),
            path: path.to_owned(),
            root: self.canonical.clone(),
        }
    }

    /// Maps an error from opening beneath the root.
    fn beneath_error(&self, what: &str, path: &Path, errno: Errno) -> FileError {
        if errno == Errno::XDEV {
            self.outside(what, path)
        } else if errno == Errno::LOOP || errno == Errno::MLINK {
            // ELOOP is Linux's answer to O_NOFOLLOW on a symlink; EMLINK is FreeBSD's.
            FileError::Symlink {
                what: what.to_owned(),
                path: path.to_owned(),
            }
        } else {
            FileError::trusted(what, path, errno)
        }
    }
}

/// Opens a file the operator named (trusted path, followed as named) with the same file-type
/// checks and `O_NONBLOCK`, so the root actor's own files get the same size and type checks.
///
/// `what` names the file's role in error messages.
pub fn open_file(path: &Path, what: &str) -> Result<OpenFile, FileError> {
    if let Some(path_flags) = path_only(OFlags::empty()) {
        let fd = rustix::fs::open(path, path_flags, Mode::empty())
            .map_err(|e| FileError::trusted(what, path, e))?;
        return OpenFile::path_only(fd, what, path);
    }
    let fd = rustix::fs::open(path, TRUSTED_FILE_FLAGS, Mode::empty())
        .map_err(|e| FileError::trusted(what, path, e))?;
    OpenFile::regular(fd, what, path)
}

/// `O_PATH` flags (with `extra`) where a file opened that way can be reopened for reading
/// through `/proc/self/fd`; `None` elsewhere.
///
/// Opening with `O_PATH` runs nothing of the file's driver: a device is refused by `fstat`
/// without ever being opened (opening some devices has effects, such as starting a watchdog).
/// The file is reopened for reading only once it is known to be a regular file, through its
/// descriptor, never by path.
fn path_only(extra: OFlags) -> Option<OFlags> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let available = *PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir());
        available.then(|| OFlags::PATH.union(OFlags::CLOEXEC).union(extra))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = extra;
        None
    }
}

/// Convenience: `root.open_file(path, what)?.read(cap, what)`.
pub fn read_beneath(root: &Root, path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, FileError> {
    root.open_file(path, what)?.read(cap, what)
}

/// Convenience: `open_file(path, what)?.read(cap, what)`.
pub fn read_file(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, FileError> {
    open_file(path, what)?.read(cap, what)
}

/// An opened regular file.
#[derive(Debug)]
pub struct OpenFile {
    /// Readable, or (`O_PATH`) only a reference to the file, reopened for reading by
    /// [`OpenFile::read`] through this descriptor.
    fd: OwnedFd,
    readable: bool,
    stamp: FileStamp,
    /// The path as the caller gave it, for messages only: never opened again.
    path: PathBuf,
}

impl OpenFile {
    /// Wraps `fd` after `fstat` shows it is a regular file.
    fn regular(fd: OwnedFd, what: &str, path: &Path) -> Result<OpenFile, FileError> {
        let stamp = regular_stamp(&fd, what, path)?;
        Ok(OpenFile {
            fd,
            readable: true,
            stamp,
            path: path.to_owned(),
        })
    }

    /// Wraps the `O_PATH` descriptor `fd` after `fstat` shows it is a regular file (a final
    /// symlink, which `O_PATH | O_NOFOLLOW` opens as itself, is refused as one).
    fn path_only(fd: OwnedFd, what: &str, path: &Path) -> Result<OpenFile, FileError> {
        let stamp = regular_stamp(&fd, what, path)?;
        Ok(OpenFile {
            fd,
            readable: false,
            stamp,
            path: path.to_owned(),
        })
    }

    /// A readable file for this one: the descriptor itself, or the same file reopened through
    /// `/proc/self/fd` (which names the open file, not a path that could be swapped).
    fn readable(self, what: &str) -> Result<(File, FileStamp, PathBuf), FileError> {
        let OpenFile {
            fd,
            readable,
            stamp,
            path,
        } = self;
        if readable {
            return Ok((File::from(fd), stamp, path));
        }
        let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let reopened = rustix::fs::open(by_fd.as_str(), TRUSTED_FILE_FLAGS, Mode::empty())
            .map_err(|e| FileError::io(what, &path, e.into()))?;
        let now = regular_stamp(&reopened, what, &path)?;
        if (now.dev, now.ino) != (stamp.dev, stamp.ino) {
            return Err(FileError::Changed {
                what: what.to_owned(),
                path,
            });
        }
        Ok((File::from(reopened), stamp, path))
    }

    /// Identity of the opened file's contents (from fstat): device, inode, size, mtime and ctime
    /// in ns.
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Reads the whole file, refusing it if it is larger than `cap` bytes (checked from fstat
    /// first, and again while reading, since the file may grow).
    ///
    /// The file must not change while it is read (its stamp is checked again after): the
    /// bytes returned are the contents [`OpenFile::stamp`] identifies.
    pub fn read(self, cap: u64, what: &str) -> Result<Vec<u8>, FileError> {
        let (file, stamp, path) = self.readable(what)?;
        if stamp.size > cap {
            return Err(FileError::TooLarge {
                what: what.to_owned(),
                path,
                size: stamp.size,
                cap,
            });
        }
        // The size is at most `cap` here, so the allocation is bounded by the caller.
        let mut bytes = Vec::with_capacity(usize::try_from(stamp.size).unwrap_or(0));
        (&file)
            .take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::io(what, &path, e))?;
        if bytes.len() as u64 > cap {
            return Err(FileError::Grew {
                what: what.to_owned(),
                path,
                cap,
            });
        }
        // Size and mtime: the contents. (ctime also moves when the file is merely renamed or
        // unlinked, which leaves the bytes read intact.)
        let after = rustix::fs::fstat(&file)
            .map(|st| FileStamp::of(&st))
            .map_err(|e| FileError::io(what, &path, e.into()))?;
        if (after.size, after.mtime_ns) != (stamp.size, stamp.mtime_ns) {
            return Err(FileError::Changed {
                what: what.to_owned(),
                path,
            });
        }
        Ok(bytes)
    }
}

/// Identity of an opened file's contents, from `fstat` on the opened descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Device the file lives on.
    pub dev: u64,
    /// Inode number on that device.
    pub ino: u64,
    /// Size in bytes when opened.
    pub size: u64,
    /// Last modification, in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Last status change, in nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileStamp {
    // The field types of `Stat` differ between platforms, so the casts are not all no-ops.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> FileStamp {
        let ns = |secs, nsecs| i128::from(secs as i64) * 1_000_000_000 + i128::from(nsecs as i64);
        FileStamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// The stamp of `fd` if it is a regular file; a symlink (opened as itself by
/// `O_PATH | O_NOFOLLOW`) and anything else are refused.
fn regular_stamp(fd: &OwnedFd, what: &str, path: &Path) -> Result<FileStamp, FileError> {
    let st = rustix::fs::fstat(fd).map_err(|e| FileError::io(what, path, e.into()))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(FileStamp::of(&st)),
        FileType::Symlink => Err(FileError::Symlink {
            what: what.to_owned(),
            path: path.to_owned(),
        }),
        other => Err(FileError::NotRegular {
            what: what.to_owned(),
            path: path.to_owned(),
            kind: raw_kind(other),
        }),
    }
}

/// What a non-regular file is, phrased to follow "a".
fn raw_kind(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        _ => "file of unknown type",
    }
}

/// Makes `path` absolute against the current directory and resolves `.` and `..` lexically.
/// No I/O beyond reading the current directory for a relative path.
fn normalize(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in std::path::absolute(path)?.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component),
            Component::CurDir => {}
            // `/..` stays `/`, as the kernel does.
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    Ok(out)
}

/// Opens the lexically normalized relative path `rel` beneath `dir`, confined by the kernel where
/// it can be, else by walking components with `O_NOFOLLOW`.
fn open_beneath(dir: &OwnedFd, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match openat2_beneath(dir, rel, flags) {
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => {}
        result => return result,
    }
    walk_beneath(dir, rel, flags)
}

/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel refuses (`EXDEV`) any
/// resolution that would leave `dir`, including through symlinks and `..`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_beneath(dir: &OwnedFd, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    use rustix::fs::ResolveFlags;

    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let open = |flags| {
        let mut retries = 0;
        loop {
            match rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve) {
                // The kernel asks for a retry when a concurrent rename made `..` unverifiable.
                Err(e) if e == Errno::AGAIN && retries < OPENAT2_RETRIES => retries += 1,
                result => return result,
            }
        }
    };
    let result = open(flags);
    if result.as_ref().is_err_and(|e| *e == Errno::NOTDIR) && flags.contains(OFlags::DIRECTORY) {
        // `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with ENOTDIR; look again without
        // opening anything (`O_PATH`) so the error can say it is a symlink.
        let probe = open(OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC);
        if probe.is_ok_and(|fd| rustix::fs::fstat(&fd).is_ok_and(|st| is_symlink(st.st_mode))) {
            return Err(Errno::LOOP);
        }
    }
    result
}

/// Walks `rel` one component at a time with `O_NOFOLLOW`, so no symlink is ever followed and
/// nothing outside `dir` is reachable (`rel` holds only plain names after normalization).
fn walk_beneath(dir: &OwnedFd, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let dir_flags = OFlags::RDONLY
        .union(OFlags::NOFOLLOW)
        .union(OFlags::DIRECTORY)
        .union(OFlags::CLOEXEC);
    let mut names: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            // Unreachable after normalization; refuse rather than resolve it.
            _ => return Err(Errno::XDEV),
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return rustix::fs::openat(dir, ".", flags, Mode::empty());
    };
    let mut current: Option<OwnedFd> = None;
    for name in parents {
        let next = open_step(current.as_ref().unwrap_or(dir), name, dir_flags)?;
        current = Some(next);
    }
    open_step(current.as_ref().unwrap_or(dir), last, flags)
}

/// One `openat` of the walk. `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with ENOTDIR; report
/// ELOOP instead so the error says it is a symlink.
fn open_step(dir: &OwnedFd, name: &OsStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    let result = rustix::fs::openat(dir, name, flags, Mode::empty());
    if result.as_ref().is_err_and(|e| *e == Errno::NOTDIR)
        && flags.contains(OFlags::DIRECTORY)
        && rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| is_symlink(st.st_mode))
    {
        return Err(Errno::LOOP);
    }
    result
}

fn is_symlink(st_mode: RawMode) -> bool {
    FileType::from_raw_mode(st_mode) == FileType::Symlink
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn normalize_resolves_dots_lexically() {
        let n = |p: &str| normalize(Path::new(p)).unwrap();
        assert_eq!(n("/a/./b/../c"), Path::new("/a/c"));
        assert_eq!(n("/../../etc"), Path::new("/etc"));
        assert_eq!(n("/a/b/"), Path::new("/a/b"));
        assert!(n("rel/../x").is_absolute());
    }

    #[test]
    fn fallback_walk_reads_nested_files_and_refuses_every_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        symlink("a", dir.path().join("alias")).unwrap();
        symlink("b/f", dir.path().join("a/flink")).unwrap();
        let root = Root::open(dir.path()).unwrap();

        let fd = walk_beneath(&root.fd, Path::new("a/b/f"), BENEATH_FILE_FLAGS).unwrap();
        let mut bytes = Vec::new();
        File::from(fd).read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"x");

        let middle = walk_beneath(&root.fd, Path::new("alias/b/f"), BENEATH_FILE_FLAGS);
        assert_eq!(middle.unwrap_err(), Errno::LOOP);
        let dir_link = walk_beneath(&root.fd, Path::new("alias"), BENEATH_DIR_FLAGS);
        assert_eq!(dir_link.unwrap_err(), Errno::LOOP);
        let last = walk_beneath(&root.fd, Path::new("a/flink"), BENEATH_FILE_FLAGS);
        assert_eq!(last.unwrap_err(), Errno::LOOP);
        assert!(walk_beneath(&root.fd, Path::new("../x"), BENEATH_FILE_FLAGS).is_err());
        let here = walk_beneath(&root.fd, Path::new(""), BENEATH_DIR_FLAGS);
        assert!(here.is_ok());
    }
}
