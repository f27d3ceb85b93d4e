//! Files an actor names by a path relative to its filesystem root: read, written, listed,
//! created and deleted without ever leaving the root.
//!
//! A path is refused up front when it is absolute, holds `..` or a NUL byte; what remains is
//! resolved by the kernel beneath the root's descriptor (`openat2` with `RESOLVE_BENEATH`, see
//! the crate docs), so a symlink that leads out, even one swapped in during the call, is refused
//! by the kernel rather than by a string check. Every operation then works on a descriptor of
//! the parent directory and the final name, which is never followed: a final symlink is itself
//! deleted, not its target, and is refused for reading and writing. Only regular files are read
//! or written (a FIFO, a socket or a device is refused before any byte moves).
//!
//! Errors are one line that names the path as the actor gave it, and never the host's paths.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{BENEATH_DIR_FLAGS, FileError, Root, open_beneath};

/// The deepest directory tree `remove_dir` deletes.
const MAX_DEPTH: usize = 128;

/// Flags for a file opened for writing: never follow a final symlink, never block on a FIFO.
const WRITE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// A path an actor gave, checked: relative, without `..` or NUL. Empty: the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPath {
    /// As the actor gave it, for messages.
    given: String,
    rel: PathBuf,
}

impl GuestPath {
    /// Checks `path`: refuses absolute paths, `..` and NUL bytes, naming which.
    pub fn parse(path: &str) -> Result<GuestPath, String> {
        let refuse = |why: &str| Err(format!("path {path:?} {why}"));
        if path.contains('\0') {
            return refuse("holds a NUL byte");
        }
        let mut rel = PathBuf::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(name) => rel.push(name),
                Component::CurDir => {}
                Component::ParentDir => {
                    return refuse("holds `..`; paths stay beneath the filesystem root");
                }
                Component::RootDir | Component::Prefix(_) => {
                    return refuse("is absolute; paths are relative to the filesystem root");
                }
            }
        }
        Ok(GuestPath {
            given: path.to_owned(),
            rel,
        })
    }

    /// The path relative to the root (empty for the root itself).
    pub fn relative(&self) -> &Path {
        &self.rel
    }

    fn is_root(&self) -> bool {
        self.rel.as_os_str().is_empty()
    }

    /// The parent (relative to the root) and the final name; `None` for the root.
    fn split(&self) -> Option<(&Path, &OsStr)> {
        Some((self.rel.parent()?, self.rel.file_name()?))
    }

    /// One line for `errno` met at this path.
    fn error(&self, errno: Errno) -> String {
        let why = if errno == Errno::XDEV {
            "leads outside the filesystem root (through a symbolic link)".into()
        } else if errno == Errno::LOOP || errno == Errno::MLINK {
            "is, or goes through, a symbolic link that is not followed".into()
        } else if errno == Errno::NOENT {
            "does not exist".into()
        } else if errno == Errno::NOTDIR {
            "goes through something that is not a directory".into()
        } else if errno == Errno::EXIST {
            "exists already".into()
        } else if errno == Errno::ISDIR {
            "is a directory".into()
        } else if errno == Errno::NOTEMPTY {
            "is a directory that is not empty".into()
        } else if errno == Errno::NXIO {
            "is a FIFO or socket, not a regular file".into()
        } else {
            format!("failed: {}", std::io::Error::from(errno))
        };
        format!("path {:?} {why}", self.given)
    }

    fn file_error(&self, e: FileError) -> String {
        let why = match e {
            FileError::OutsideRoot { .. } => {
                "leads outside the filesystem root (through a symbolic link)".into()
            }
            FileError::Symlink { .. } => {
                "is, or goes through, a symbolic link that is not followed".into()
            }
            FileError::NotRegular { kind, .. } => format!("is a {kind}, not a regular file"),
            FileError::NotDirectory { .. } => {
                "goes through something that is not a directory".into()
            }
            FileError::NotFound { .. } => "does not exist".into(),
            FileError::TooLarge { size, cap, .. } => {
                format!("is {size} bytes, more than the {cap}-byte read limit")
            }
            FileError::Grew { cap, .. } => format!("grew past the {cap}-byte read limit"),
            FileError::Changed { .. } => "changed while it was read; try again".into(),
            FileError::Io { source, .. } => format!("failed: {source}"),
        };
        format!("path {:?} {why}", self.given)
    }
}

impl Root {
    /// The directory `dir` (relative) beneath the root, opened; a symlink as `dir` is refused.
    fn dir_beneath(&self, dir: &Path) -> Result<OwnedFd, Errno> {
        open_beneath(&self.fd, dir, BENEATH_DIR_FLAGS)
    }

    /// The parent directory of `path`, opened beneath the root, and the final name.
    fn parent_of<'p>(&self, path: &'p GuestPath) -> Result<(OwnedFd, &'p OsStr), String> {
        let (parent, name) = path
            .split()
            .ok_or_else(|| format!("path {:?} is the filesystem root itself", path.given))?;
        let fd = self.dir_beneath(parent).map_err(|e| path.error(e))?;
        Ok((fd, name))
    }

    /// The regular file at `path`, up to `cap` bytes.
    pub fn guest_read(&self, path: &GuestPath, cap: u64) -> Result<Vec<u8>, String> {
        self.guest_open(path)?.read(cap)
    }

    /// The regular file at `path`, opened (so its size is known before it is read).
    pub fn guest_open(&self, path: &GuestPath) -> Result<GuestFile, String> {
        if path.is_root() {
            return Err(path.error(Errno::ISDIR));
        }
        let file = self
            .open_file(&self.canonical.join(&path.rel), "file")
            .map_err(|e| path.file_error(e))?;
        Ok(GuestFile {
            file,
            path: path.clone(),
        })
    }

    /// Replaces the regular file at `path` with `data` (creating it, mode 0644).
    pub fn guest_write(&self, path: &GuestPath, data: &[u8]) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        let fd = rustix::fs::openat(&dir, name, WRITE_FLAGS, Mode::from_raw_mode(0o644))
            .map_err(|e| path.error(e))?;
        // Checked before anything is cut or written: a FIFO with a reader opens fine.
        let st = rustix::fs::fstat(&fd).map_err(|e| path.error(e))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(path.file_error(FileError::NotRegular {
                what: String::new(),
                path: PathBuf::new(),
                kind: crate::raw_kind(kind),
            }));
        }
        rustix::fs::ftruncate(&fd, 0).map_err(|e| path.error(e))?;
        // Opened non-blocking; a regular file never blocks anyway.
        File::from(fd)
            .write_all(data)
            .map_err(|e| format!("path {:?} failed: {e}", path.given))
    }

    /// The names in the directory `path`, sorted; more than `max` entries is an error.
    pub fn guest_list(&self, path: &GuestPath, max: usize) -> Result<Vec<String>, String> {
        let fd = self.dir_beneath(&path.rel).map_err(|e| path.error(e))?;
        let mut names = entries(&fd).map_err(|e| path.error(e))?;
        if names.len() > max {
            return Err(format!(
                "path {:?} holds {} entries, more than the {max} one listing returns",
                path.given,
                names.len()
            ));
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    /// Deletes the file (or symlink, not its target) at `path`; a directory is refused.
    pub fn guest_remove_file(&self, path: &GuestPath) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(|e| {
            if e == Errno::PERM {
                // Linux's answer for a directory.
                path.error(Errno::ISDIR)
            } else {
                path.error(e)
            }
        })
    }

    /// Creates the directory `path` (its parent must exist).
    pub fn guest_create_dir(&self, path: &GuestPath) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)).map_err(|e| path.error(e))
    }

    /// Deletes the directory `path` and everything in it, never following a symlink (a
    /// symlink inside is deleted itself).
    pub fn guest_remove_dir(&self, path: &GuestPath) -> Result<(), String> {
        let (parent, name) = self.parent_of(path)?;
        let dir = rustix::fs::openat(&parent, name, BENEATH_DIR_FLAGS, Mode::empty())
            .map_err(|e| path.error(e))?;
        clear(&dir, 0).map_err(|e| path.error(e))?;
        rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(|e| path.error(e))
    }

    /// Whether something (a symlink counts as itself) exists at `path`.
    pub fn guest_exists(&self, path: &GuestPath) -> Result<bool, String> {
        let Some((parent, name)) = path.split() else {
            return Ok(true);
        };
        let dir = match self.dir_beneath(parent) {
            Ok(dir) => dir,
            Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => return Ok(false),
            Err(e) => return Err(path.error(e)),
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(e) if e == Errno::NOENT => Ok(false),
            Err(e) => Err(path.error(e)),
        }
    }

    /// The directory `path` beneath the root, opened (for a command's working directory).
    pub fn guest_dir(&self, path: &GuestPath) -> Result<OwnedFd, String> {
        self.dir_beneath(&path.rel).map_err(|e| path.error(e))
    }
}

/// A regular file an actor named, opened beneath its root.
#[derive(Debug)]
pub struct GuestFile {
    file: crate::OpenFile,
    path: GuestPath,
}

impl GuestFile {
    /// Its size when it was opened.
    pub fn size(&self) -> u64 {
        self.file.stamp().size
    }

    /// Its bytes, up to `cap`.
    pub fn read(self, cap: u64) -> Result<Vec<u8>, String> {
        let path = self.path;
        self.file.read(cap, "file").map_err(|e| path.file_error(e))
    }
}

/// The names in the open directory `fd`, without `.` and `..`.
fn entries(fd: &OwnedFd) -> Result<Vec<std::ffi::OsString>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Deletes everything in the open directory `dir`, depth first, by descriptor.
fn clear(dir: &OwnedFd, depth: usize) -> Result<(), Errno> {
    if depth > MAX_DEPTH {
        return Err(Errno::NAMETOOLONG);
    }
    for name in entries(dir)? {
        let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rustix::fs::openat(dir, &name, BENEATH_DIR_FLAGS, Mode::empty())?;
            clear(&sub, depth + 1)?;
            rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(dir, &name, AtFlags::empty())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::write(dir.path().join("secret"), "secret").unwrap();
        let root = Root::open(&dir.path().join("root")).unwrap();
        (dir, root)
    }

    fn p(path: &str) -> GuestPath {
        GuestPath::parse(path).unwrap()
    }

    #[test]
    fn paths_are_relative_without_parent_or_nul() {
        for (bad, why) in [
            ("/etc/passwd", "is absolute"),
            ("../secret", "holds `..`"),
            ("a/../../secret", "holds `..`"),
            ("a\0b", "NUL"),
        ] {
            let e = GuestPath::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(p("./a//b/").relative(), Path::new("a/b"));
        assert!(p("").is_root() && p(".").is_root());
    }

    #[test]
    fn files_are_written_read_listed_and_deleted_beneath_the_root() {
        let (dir, root) = setup();
        root.guest_create_dir(&p("d")).unwrap();
        root.guest_write(&p("d/f"), b"hello").unwrap();
        root.guest_write(&p("d/f"), b"hi").unwrap();
        assert_eq!(root.guest_read(&p("d/f"), 10).unwrap(), b"hi");
        assert!(
            root.guest_read(&p("d/f"), 1)
                .unwrap_err()
                .contains("more than the 1-byte read limit")
        );
        assert_eq!(root.guest_list(&p("d"), 10).unwrap(), vec!["f"]);
        assert_eq!(root.guest_list(&p(""), 10).unwrap(), vec!["d"]);
        assert!(root.guest_exists(&p("d/f")).unwrap());
        assert!(!root.guest_exists(&p("d/g")).unwrap());
        assert!(!root.guest_exists(&p("nope/g")).unwrap());
        assert!(
            root.guest_remove_file(&p("d"))
                .unwrap_err()
                .contains("is a directory")
        );
        assert!(
            root.guest_create_dir(&p("d"))
                .unwrap_err()
                .contains("exists already")
        );
        root.guest_remove_dir(&p("d")).unwrap();
        assert!(!root.guest_exists(&p("d")).unwrap());
        assert!(
            root.guest_remove_dir(&p(""))
                .unwrap_err()
                .contains("root itself")
        );
        assert_eq!(std::fs::read(dir.path().join("secret")).unwrap(), b"secret");
    }

    #[test]
    fn symlinks_out_fifos_and_devices_are_refused() {
        let (dir, root) = setup();
        let r = dir.path().join("root");
        symlink(dir.path().join("secret"), r.join("abs")).unwrap();
        symlink("../secret", r.join("rel")).unwrap();
        symlink("..", r.join("up")).unwrap();
        symlink("/dev/zero", r.join("zero")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        for path in ["abs", "rel", "zero"] {
            let e = root.guest_read(&p(path), 100).unwrap_err();
            assert!(e.contains("symbolic link"), "{path}: {e}");
            let e = root.guest_write(&p(path), b"x").unwrap_err();
            assert!(e.contains("symbolic link"), "{path}: {e}");
        }
        let e = root.guest_read(&p("up/secret"), 100).unwrap_err();
        assert!(e.contains("outside the filesystem root"), "{e}");
        // A symlink as a parent to write in is not followed at all.
        let e = root.guest_write(&p("up/secret"), b"x").unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(
            root.guest_list(&p("up"), 10)
                .unwrap_err()
                .contains("symbolic link")
        );
        let e = root.guest_read(&p("fifo"), 100).unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
        let e = root.guest_write(&p("fifo"), b"x").unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
        // Deleting a symlink deletes the link, not its target; deleting a directory holding
        // a symlink out leaves the target alone.
        root.guest_remove_file(&p("abs")).unwrap();
        root.guest_create_dir(&p("d")).unwrap();
        symlink(dir.path(), r.join("d/out")).unwrap();
        root.guest_remove_dir(&p("d")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("secret")).unwrap(), b"secret");
    }
}
