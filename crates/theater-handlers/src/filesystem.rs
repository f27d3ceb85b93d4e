//! `theater:simple/filesystem`: files beneath the handler's `root`, and the programs its
//! `commands` allow. Granted by the `filesystem` handler.
//!
//! Paths are confined by the kernel (`theater_files::guest`): `..`, absolute paths and NUL
//! bytes are refused up front, and a symlink that leads out is refused by `openat2` with
//! `RESOLVE_BENEATH`, even one swapped in during the call. Only regular files are read or
//! written, up to the handler's caps. Every result is recorded, so a replay reads no file and
//! runs no program.

use std::path::Path;

use std::time::Duration;

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;
use theater_files::Root;
use theater_files::guest::GuestPath;

use crate::programs::{self, Launch, Program};
use theater::plugin::ActorCtx;
use theater::plugin::RootSetting;
use theater::plugin::bindings::theater::simple::filesystem::{
    CommandError, CommandResult, CommandSuccess,
};
use theater::plugin::{
    Grant, Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput, at_most,
    positive,
};

type Answer<T> = (Result<T, String>,);

pub const DEFAULT_MAX_READ_BYTES: u64 = 16 << 20;
pub const DEFAULT_MAX_WRITE_BYTES: u64 = 16 << 20;
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// The most names one `list-files` returns.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// The `filesystem` handler's settings.
#[derive(Debug, Clone)]
pub struct FilesystemSettings {
    /// The directory every path is beneath.
    pub root: RootSetting,
    /// `None`: not set (false for a root actor, the parent's for a child).
    pub read_only: Option<bool>,
    pub max_read_bytes: Option<u64>,
    pub max_write_bytes: Option<u64>,
    /// The programs `execute-command` may run.
    pub commands: Vec<Program>,
    pub command_timeout_ms: Option<u64>,
    pub max_output_bytes: Option<u64>,
}

impl FilesystemSettings {
    pub fn read_only(&self) -> bool {
        self.read_only.unwrap_or(false)
    }
    pub fn max_read_bytes(&self) -> u64 {
        self.max_read_bytes.unwrap_or(DEFAULT_MAX_READ_BYTES)
    }
    pub fn max_write_bytes(&self) -> u64 {
        self.max_write_bytes.unwrap_or(DEFAULT_MAX_WRITE_BYTES)
    }
    pub fn command_timeout_ms(&self) -> u64 {
        self.command_timeout_ms
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS)
    }
    pub fn max_output_bytes(&self) -> u64 {
        self.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES)
    }

    /// The root directory, opened.
    pub fn opened_root(&self) -> Result<&Root, String> {
        self.root.open("filesystem")
    }
}

pub(crate) struct FilesystemHandler;

impl Handler for FilesystemHandler {
    type Settings = FilesystemSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "filesystem"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/filesystem"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "root",
                rule: "beneath the parent's root, opened beneath it (kernel-confined)",
            },
            SettingKey {
                key: "read_only",
                rule: "read-only under a read-only parent; unset: the parent's",
            },
            SettingKey {
                key: "max_read_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_write_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "commands",
                rule: "every program resolves to one of the parent's; unset: none",
            },
            SettingKey {
                key: "command_timeout_ms",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_output_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<FilesystemSettings, String> {
        let table = input.table;
        let root = RootSetting::parse(
            input,
            Some("`root` is required: the directory the actor's paths are relative to"),
        )?;
        let read_only = match table.get("read_only") {
            None => None,
            Some(v) => Some(v.as_bool().ok_or("`read_only` must be true or false")?),
        };
        Ok(FilesystemSettings {
            root,
            read_only,
            max_read_bytes: positive(table, "max_read_bytes")?,
            max_write_bytes: positive(table, "max_write_bytes")?,
            commands: programs::parse_list(table, "commands", input.base_dir)?,
            command_timeout_ms: positive(table, "command_timeout_ms")?,
            max_output_bytes: positive(table, "max_output_bytes")?,
        })
    }
    fn attenuate(
        &self,
        parent: &FilesystemSettings,
        child: FilesystemSettings,
    ) -> Result<FilesystemSettings, Refusal> {
        let refuse = |key: &str, message: String| Refusal::handler("filesystem", key, message);
        let read_only = match (parent.read_only(), child.read_only) {
            (true, Some(false)) => {
                return Err(refuse(
                    "read_only",
                    "false is refused under a read-only parent".into(),
                ));
            }
            (parent, child) => Some(child.unwrap_or(parent)),
        };
        if let Some(wider) = programs::first_outside(&parent.commands, &child.commands) {
            return Err(refuse(
                "commands",
                format!("{:?} is not one of the parent's commands", wider.name),
            ));
        }
        let limit = |key, child, parent| at_most("filesystem", key, child, parent);
        Ok(FilesystemSettings {
            root: child.root.within(&parent.root, "filesystem")?,
            read_only,
            max_read_bytes: limit(
                "max_read_bytes",
                child.max_read_bytes,
                parent.max_read_bytes(),
            )?,
            max_write_bytes: limit(
                "max_write_bytes",
                child.max_write_bytes,
                parent.max_write_bytes(),
            )?,
            commands: child.commands,
            command_timeout_ms: limit(
                "command_timeout_ms",
                child.command_timeout_ms,
                parent.command_timeout_ms(),
            )?,
            max_output_bytes: limit(
                "max_output_bytes",
                child.max_output_bytes,
                parent.max_output_bytes(),
            )?,
        })
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut fs = linker.interface("theater:simple/filesystem")?;
        fs.func("read-file", RecordAs::Value, read_file)?;
        fs.func("write-file", RecordAs::Value, write_file)?;
        fs.func("list-files", RecordAs::Value, list_files)?;
        fs.func("delete-file", RecordAs::Value, delete_file)?;
        fs.func("create-dir", RecordAs::Value, create_dir)?;
        fs.func("delete-dir", RecordAs::Value, delete_dir)?;
        fs.func("path-exists", RecordAs::Value, path_exists)?;
        fs.func("execute-command", RecordAs::Value, execute_command)?;
        fs.func("execute-nix-command", RecordAs::Value, execute_nix_command)?;
        Ok(())
    }
    fn grants(&self, settings: &FilesystemSettings) -> Vec<Grant> {
        vec![Grant::Directory(settings.root.granted())]
    }
    fn check(&self, settings: &FilesystemSettings) -> Result<(), String> {
        let root = settings.opened_root()?;
        programs::unresolved(&settings.commands, "commands")?;
        // A program the actor can rewrite would run whatever the actor wrote.
        if !settings.read_only()
            && let Some(inside) = settings
                .commands
                .iter()
                .find(|p| p.path.as_ref().is_ok_and(|path| root.contains(path)))
        {
            return Err(format!(
                "`commands`: {:?} lies beneath the writable root, where the actor could rewrite it",
                inside.name
            ));
        }
        Ok(())
    }
    fn new_state(&self, _: &FilesystemSettings) {}
}

/// The actor's settings, for a call that runs off the actor's store.
fn settings(store: &StoreContextMut<'_, ActorCtx>) -> Result<FilesystemSettings, String> {
    store
        .data()
        .settings::<FilesystemSettings>()
        .cloned()
        .ok_or_else(|| "the filesystem handler is not granted".into())
}

/// Reads and writes up to this size run on the calling worker; larger ones, listings and
/// recursive deletes on a blocking thread. A handoff costs some 20 µs, five times a small
/// read; a small operation on a local disk blocks for less.
const INLINE_BYTES: u64 = 64 << 10;

/// Where a file operation runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Inline,
    Blocking,
}

/// Runs `f` with the opened root and the checked path, inline or on a blocking thread.
async fn on_path<T: Send + 'static>(
    settings: Result<FilesystemSettings, String>,
    path: String,
    writes: bool,
    run: Run,
    f: impl FnOnce(&FilesystemSettings, &Root, &GuestPath) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let settings = settings?;
    if writes && settings.read_only() {
        return Err(format!(
            "path {path:?}: the filesystem handler is read-only here"
        ));
    }
    let path = GuestPath::parse(&path)?;
    let work = move || {
        let root = settings.opened_root()?;
        f(&settings, root, &path)
    };
    match run {
        Run::Inline => work(),
        Run::Blocking => tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| format!("the file operation failed: {e}"))?,
    }
}

fn read_file(
    store: StoreContextMut<'_, ActorCtx>,
    (path,): (String,),
) -> HostFuture<'_, Answer<Vec<u8>>> {
    let settings = settings(&store);
    Box::pin(async move {
        let opened = on_path(settings, path, false, Run::Inline, |s, root, path| {
            Ok((root.guest_open(path)?, s.max_read_bytes()))
        })
        .await;
        let result = match opened {
            Ok((file, cap)) if file.size() <= INLINE_BYTES => file.read(cap),
            Ok((file, cap)) => tokio::task::spawn_blocking(move || file.read(cap))
                .await
                .unwrap_or_else(|e| Err(format!("the file operation failed: {e}"))),
            Err(e) => Err(e),
        };
        Ok((result,))
    })
}

fn write_file(
    store: StoreContextMut<'_, ActorCtx>,
    (path, content): (String, String),
) -> HostFuture<'_, Answer<()>> {
    let settings = settings(&store);
    Box::pin(async move {
        let run = if content.len() as u64 <= INLINE_BYTES {
            Run::Inline
        } else {
            Run::Blocking
        };
        Ok((on_path(settings, path, true, run, move |s, root, path| {
            let cap = s.max_write_bytes();
            if content.len() as u64 > cap {
                return Err(format!(
                    "{} bytes is more than the {cap}-byte write limit (the filesystem handler's `max_write_bytes`)",
                    content.len()
                ));
            }
            root.guest_write(path, content.as_bytes())
        })
        .await,))
    })
}

/// A host function that runs one operation on the path it is given.
macro_rules! path_function {
    ($name:ident -> $t:ty, writes: $writes:expr, $run:expr, $op:expr) => {
        fn $name(
            store: StoreContextMut<'_, ActorCtx>,
            (path,): (String,),
        ) -> HostFuture<'_, Answer<$t>> {
            let settings = settings(&store);
            Box::pin(async move {
                let op = $op;
                Ok((
                    on_path(settings, path, $writes, $run, move |_, root, path| {
                        op(root, path)
                    })
                    .await,
                ))
            })
        }
    };
}

path_function!(list_files -> Vec<String>, writes: false, Run::Blocking,
    |root: &Root, path: &GuestPath| root.guest_list(path, MAX_LIST_ENTRIES));
path_function!(delete_file -> (), writes: true, Run::Inline, Root::guest_remove_file);
path_function!(create_dir -> (), writes: true, Run::Inline, Root::guest_create_dir);
path_function!(delete_dir -> (), writes: true, Run::Blocking, Root::guest_remove_dir);
path_function!(path_exists -> bool, writes: false, Run::Inline, Root::guest_exists);

/// Runs the allowed program `program` with `args` in `dir` beneath the root.
async fn run_command(
    settings: Result<FilesystemSettings, String>,
    dir: String,
    program: &Program,
    args: Vec<String>,
) -> Result<CommandResult, String> {
    let settings = settings?;
    let path = program.path.clone()?;
    let dir = on_path(
        Ok(settings.clone()),
        dir,
        false,
        Run::Inline,
        |_, root, dir| root.guest_dir(dir),
    )
    .await?;
    let launch = Launch {
        path: &path,
        args: &args,
        dir: &dir,
        env: &[],
        stdin: false,
    };
    let timeout = Duration::from_millis(settings.command_timeout_ms());
    Ok(
        match programs::run_to_end(&launch, timeout, settings.max_output_bytes()).await {
            Ok(done) => CommandResult::Success(CommandSuccess {
                stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
                exit_code: done.code,
            }),
            Err(message) => CommandResult::Error(CommandError {
                message: format!("{}: {message}", program.name),
            }),
        },
    )
}

fn execute_command(
    store: StoreContextMut<'_, ActorCtx>,
    (dir, command, args): (String, String, Vec<String>),
) -> HostFuture<'_, Answer<CommandResult>> {
    let settings = settings(&store);
    Box::pin(async move {
        let program = settings.as_ref().map_err(Clone::clone).and_then(|s| {
            programs::find(&s.commands, &command)
                .cloned()
                .ok_or_else(|| {
                    format!("command {command:?} is not in the filesystem handler's `commands`")
                })
        });
        let result = match program {
            Ok(program) => run_command(settings, dir, &program, args).await,
            Err(e) => Err(e),
        };
        Ok((result,))
    })
}

/// `nix develop --command sh -c COMMAND`, only if `nix` is in `commands`: allowing it allows
/// whatever the flake's shell can run, so it is the operator's explicit choice.
fn execute_nix_command(
    store: StoreContextMut<'_, ActorCtx>,
    (dir, command): (String, String),
) -> HostFuture<'_, Answer<CommandResult>> {
    let settings = settings(&store);
    Box::pin(async move {
        let nix = settings.as_ref().map_err(Clone::clone).and_then(|s| {
            s.commands
                .iter()
                .find(|p| Path::new(&p.name).file_name() == Some("nix".as_ref()))
                .cloned()
                .ok_or_else(|| {
                    "execute-nix-command is refused: `nix` is not in the filesystem handler's `commands`".to_string()
                })
        });
        let args = ["develop", "--command", "sh", "-c", &command].map(str::to_owned);
        let result = match nix {
            Ok(nix) => run_command(settings, dir, &nix, args.to_vec()).await,
            Err(e) => Err(e),
        };
        Ok((result,))
    })
}
