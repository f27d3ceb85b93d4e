//! `theater:simple/process`: operating-system processes from the handler's `programs`
//! allow-list, whose output and exit reach the actor through its mailbox as calls of its
//! `process-handlers` exports. Granted by the `process` handler.
//!
//! A process runs by the absolute path its name resolved to when the manifest was read, with a
//! clean environment (plus the variables `env` lets the actor set), in a directory beneath the
//! handler's `root`, in a process group of its own. The group is killed when the process times
//! out or prints past `max_output_bytes`, and when the actor stops, fails or is dropped with its
//! runtime. Each group is also recorded in the data dir (`processes/`) until it ends, so that a
//! runtime opening the data dir after a crash kills what the dead one left running
//! ([`kill_leftovers`]).
//!
//! Output is read only as fast as the actor's mailbox takes it: a full mailbox stops the
//! reading, and the process blocks on its pipe. A running process keeps `theater run` from
//! exiting as quiescent. Every host call is recorded, and so is every output and exit call, as
//! messages are; a replay starts no process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;
use theater_files::Root;
use theater_files::guest::GuestPath;
use tokio::io::AsyncWriteExt;

use crate::environment::{allowed, covered};
use crate::programs::{self, Group, Launch, Piece, Pipes, Program};
use theater::plugin::RootSetting;
use theater::plugin::bindings::theater::simple::process::{
    OutputMode, ProcessConfig, ProcessStatus,
};
use theater::plugin::{ActorCtx, now_ms};
use theater::plugin::{Call, ExportDecl, HandlerExport, LockExt, OutsideInput, State};
use theater::plugin::{
    ExitKind, Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput,
    at_most, positive,
};

type Answer<T> = (Result<T, String>,);

pub const DEFAULT_MAX_PROCESSES: u64 = 4;
pub const DEFAULT_PROCESS_OUTPUT_BYTES: u64 = 16 << 20;
/// The largest read buffer (`buffer-size`) and chunk (`chunk-size`) a process config may ask for.
pub const MAX_PROCESS_BUFFER: u32 = 1 << 20;
/// Exited processes whose status an actor can still ask for.
const KEPT_EXITED: usize = 64;
/// The data dir's record of running process groups.
pub const PROCESSES_DIR: &str = "processes";

/// The `process` handler's settings.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub programs: Vec<Program>,
    /// The directory processes run in (a config's `cwd` is beneath it); unset, the
    /// manifest's directory for the operator's actor, the parent's root for a child.
    pub root: RootSetting,
    /// The environment variables a config may set: names, or prefixes ending in `*`.
    pub env: Vec<String>,
    pub max_processes: Option<u64>,
    pub max_output_bytes: Option<u64>,
    /// The longest a process may run, in ms; `None`: as long as it likes.
    pub max_execution_ms: Option<u64>,
}

impl ProcessSettings {
    pub fn max_processes(&self) -> u64 {
        self.max_processes.unwrap_or(DEFAULT_MAX_PROCESSES)
    }
    pub fn max_output_bytes(&self) -> u64 {
        self.max_output_bytes
            .unwrap_or(DEFAULT_PROCESS_OUTPUT_BYTES)
    }
    fn opened_root(&self) -> Result<&Root, String> {
        self.root.open("process")
    }
}

/// One process an actor started, shared by its state and the task that reads its output.
struct Running {
    pid: u64,
    start_ms: u64,
    /// `None` while it runs.
    exit: Mutex<Option<i32>>,
    /// Armed until the group is killed, which the output task does before it reaps the
    /// leader: so a group id is never signalled once it may name someone else's group.
    group: Mutex<Group>,
    /// The process itself, for signals: a pidfd names this process, never one that reused
    /// its id after it was reaped.
    pidfd: Option<std::os::fd::OwnedFd>,
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    /// Its record in the data dir, removed when it ends.
    record: Option<PathBuf>,
    /// Set when its actor's run ends: no more output is delivered.
    stopped: std::sync::atomic::AtomicBool,
}

impl Running {
    fn kill(&self) {
        self.group.locked().kill();
    }

    /// Kills it for good: no more output, and its record gone.
    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.kill();
        self.forget_record();
    }

    fn forget_record(&self) {
        if let Some(record) = &self.record {
            let _ = std::fs::remove_file(record);
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An actor's processes.
#[derive(Default)]
pub struct ProcessState {
    processes: HashMap<u64, Arc<Running>>,
}

impl ProcessState {
    fn running(&self) -> usize {
        self.processes
            .values()
            .filter(|p| p.exit.locked().is_none())
            .count()
    }

    /// Forgets the oldest exited processes past [`KEPT_EXITED`].
    fn trim(&mut self) {
        let mut exited: Vec<(u64, u64)> = self
            .processes
            .values()
            .filter(|p| p.exit.locked().is_some())
            .map(|p| (p.start_ms, p.pid))
            .collect();
        if exited.len() > KEPT_EXITED {
            exited.sort_unstable();
            for (_, pid) in &exited[..exited.len() - KEPT_EXITED] {
                self.processes.remove(pid);
            }
        }
    }

    fn kill_all(&mut self) {
        for process in self.processes.values() {
            process.stop();
        }
    }
}

impl Drop for ProcessState {
    /// A process never outlives the actor that started it, however the actor goes.
    fn drop(&mut self) {
        self.kill_all();
    }
}

pub(crate) struct ProcessHandler;

impl Handler for ProcessHandler {
    type Settings = ProcessSettings;
    type State = ProcessState;

    fn name(&self) -> &'static str {
        "process"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/process"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "programs",
                rule: "every program resolves to one of the parent's; unset: none",
            },
            SettingKey {
                key: "root",
                rule: "beneath the parent's root, opened beneath it (kernel-confined); unset: the parent's root",
            },
            SettingKey {
                key: "env",
                rule: "every pattern covered by one of the parent's; unset: none",
            },
            SettingKey {
                key: "max_processes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_output_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_execution_ms",
                rule: "at most the parent's (unset in the parent: any); unset: the parent's",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<ProcessSettings, String> {
        let table = input.table;
        let root = RootSetting::parse(input, None)?;
        let env = match table.get("env") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .ok_or(
                    "`env` must be a list of variable names (a trailing `*` matches a prefix)",
                )?,
        };
        Ok(ProcessSettings {
            programs: programs::parse_list(table, "programs", input.base_dir)?,
            root,
            env,
            max_processes: positive(table, "max_processes")?,
            max_output_bytes: positive(table, "max_output_bytes")?,
            max_execution_ms: positive(table, "max_execution_ms")?,
        })
    }
    fn attenuate(
        &self,
        parent: &ProcessSettings,
        child: ProcessSettings,
    ) -> Result<ProcessSettings, Refusal> {
        let refuse = |key: &str, message: String| Refusal::handler("process", key, message);
        if let Some(wider) = programs::first_outside(&parent.programs, &child.programs) {
            return Err(refuse(
                "programs",
                format!("{:?} is not one of the parent's programs", wider.name),
            ));
        }
        if let Some(wider) = child.env.iter().find(|p| !covered(&parent.env, p)) {
            return Err(refuse(
                "env",
                format!("{wider:?} is not within the parent's env {:?}", parent.env),
            ));
        }
        let max_execution_ms = match (parent.max_execution_ms, child.max_execution_ms) {
            (Some(p), c) => at_most("process", "max_execution_ms", c, p)?,
            (None, c) => c,
        };
        Ok(ProcessSettings {
            max_processes: at_most(
                "process",
                "max_processes",
                child.max_processes,
                parent.max_processes(),
            )?,
            max_output_bytes: at_most(
                "process",
                "max_output_bytes",
                child.max_output_bytes,
                parent.max_output_bytes(),
            )?,
            max_execution_ms,
            root: child.root.within(&parent.root, "process")?,
            ..child
        })
    }
    fn exports(&self) -> &'static [&'static ExportDecl] {
        static EXPORTS: [&ExportDecl; 3] = [
            HANDLE_STDOUT.decl(),
            HANDLE_STDERR.decl(),
            HANDLE_EXIT.decl(),
        ];
        &EXPORTS
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut process = linker.interface("theater:simple/process")?;
        process.func("os-spawn", RecordAs::Value, os_spawn)?;
        process.func("os-write-stdin", RecordAs::Value, os_write_stdin)?;
        process.func("os-status", RecordAs::Value, os_status)?;
        process.func("os-signal", RecordAs::Value, os_signal)?;
        process.func("os-kill", RecordAs::Value, os_kill)?;
        Ok(())
    }
    fn check(&self, settings: &ProcessSettings) -> Result<(), String> {
        settings.opened_root()?;
        programs::unresolved(&settings.programs, "programs")
    }
    fn new_state(&self, _: &ProcessSettings) -> ProcessState {
        ProcessState::default()
    }
    fn on_exit(&self, state: &mut ProcessState, _how: ExitKind) {
        state.kill_all();
    }
    fn on_data_dir_locked(&self, data_dir: &Path) {
        // Holding the lock, any process group still recorded belongs to a runtime that died
        // without stopping its actors.
        let killed = kill_leftovers(data_dir);
        if killed > 0 {
            tracing::warn!(
                "killed {killed} process groups a previous run left in {}",
                data_dir.display()
            );
        }
    }
}

/// The exports a process's output and exit call, each with the process id.
type OutputExport = HandlerExport<(u64, Vec<u8>), (State,)>;
static HANDLE_STDOUT: OutputExport = HandlerExport::new(
    "theater:simple/process-handlers",
    "handle-stdout",
    "theater:simple/process-handlers.handle-stdout",
);
static HANDLE_STDERR: OutputExport = HandlerExport::new(
    "theater:simple/process-handlers",
    "handle-stderr",
    "theater:simple/process-handlers.handle-stderr",
);
static HANDLE_EXIT: HandlerExport<(u64, i32), (State,)> = HandlerExport::new(
    "theater:simple/process-handlers",
    "handle-exit",
    "theater:simple/process-handlers.handle-exit",
);

/// What a call needs of the calling actor.
struct Caller<'a> {
    settings: ProcessSettings,
    input: OutsideInput,
    actor: Arc<str>,
    state: &'a mut ProcessState,
}

fn caller<'a>(store: &'a mut StoreContextMut<'_, ActorCtx>) -> Result<Caller<'a>, String> {
    let ctx = store.data_mut();
    let settings = ctx
        .settings::<ProcessSettings>()
        .cloned()
        .ok_or("the process handler is not granted")?;
    let input = ctx.outside_input();
    let actor: Arc<str> = ctx.actor_id().into();
    let state = ctx
        .handler_state::<ProcessState>()
        .ok_or("the process handler has no state for this actor")?;
    Ok(Caller {
        settings,
        input,
        actor,
        state,
    })
}

/// Checks a config against the settings: the program, the variables, the sizes.
fn checked<'s>(
    settings: &'s ProcessSettings,
    config: &ProcessConfig,
) -> Result<(&'s Program, PathBuf), String> {
    let program = programs::find(&settings.programs, &config.program).ok_or_else(|| {
        format!(
            "program {:?} is not in the process handler's `programs`",
            config.program
        )
    })?;
    let path = program.path.clone()?;
    if let Some((name, _)) = config.env.iter().find(|(k, _)| !allowed(&settings.env, k)) {
        return Err(format!(
            "environment variable {name:?} is not in the process handler's `env`"
        ));
    }
    for (what, size) in [
        ("buffer-size", Some(config.buffer_size)),
        ("chunk-size", config.chunk_size),
    ] {
        if let Some(size) = size
            && !(1..=MAX_PROCESS_BUFFER).contains(&size)
        {
            return Err(format!(
                "{what} {size} is not between 1 and {MAX_PROCESS_BUFFER}"
            ));
        }
    }
    Ok((program, path))
}

fn os_spawn(
    mut store: StoreContextMut<'_, ActorCtx>,
    (config,): (ProcessConfig,),
) -> HostFuture<'_, Answer<u64>> {
    Box::pin(async move { Ok((spawn(&mut store, config).await,)) })
}

async fn spawn(
    store: &mut StoreContextMut<'_, ActorCtx>,
    config: ProcessConfig,
) -> Result<u64, String> {
    let data_dir = store.data().data_dir();
    let Caller {
        settings,
        input,
        actor,
        state,
    } = caller(store)?;
    let (program, path) = checked(&settings, &config)?;
    let running = state.running() as u64;
    if running >= settings.max_processes() {
        return Err(format!(
            "this actor runs {running} processes already, its limit (the process handler's `max_processes`)"
        ));
    }
    // Opened on this worker, as the filesystem handler's path-only operations are.
    let cwd = GuestPath::parse(config.cwd.as_deref().unwrap_or(""))?;
    let dir = settings.opened_root()?.guest_dir(&cwd)?;
    let launch = Launch {
        path: &path,
        args: &config.args,
        dir: &dir,
        env: &config.env,
        stdin: true,
    };
    let mut child = launch
        .spawn()
        .map_err(|e| format!("could not start {:?}: {e}", program.name))?;
    let group = Group::of(&child);
    let pid = u64::from(child.id().unwrap_or(0));
    // Opened before anything can reap it, so it names this process.
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let record = data_dir.and_then(|dir| record_group(&dir, pid as i32, &actor));
    let process = Arc::new(Running {
        pid,
        start_ms: now_ms(),
        exit: Mutex::new(None),
        group: Mutex::new(group),
        pidfd,
        stdin: tokio::sync::Mutex::new(child.stdin.take()),
        record,
        stopped: Default::default(),
    });
    state.processes.insert(pid, process.clone());
    state.trim();
    let work = input.keep_alive();
    let output = Output {
        input,
        actor,
        process: process.clone(),
        left: settings.max_output_bytes(),
    };
    let limit = match (config.execution_timeout, settings.max_execution_ms) {
        (Some(asked), Some(max)) => Some(asked.min(max)),
        (asked, max) => asked.or(max),
    };
    tokio::spawn(async move {
        // Keeps the run from being quiescent until the output and the exit are delivered.
        let _work = work;
        watch(child, output, config, limit).await;
    });
    Ok(pid)
}

/// Where a process's output goes, and how much more may go.
struct Output {
    input: OutsideInput,
    actor: Arc<str>,
    process: Arc<Running>,
    left: u64,
}

impl Output {
    /// Delivers a piece of output to the actor, waiting for room in its mailbox (the process
    /// waits on its pipe meanwhile), in parts no larger than the actor takes; false once the
    /// actor is gone (nothing more will be delivered).
    async fn output(&self, export: &'static OutputExport, pid: u64, data: Vec<u8>) -> bool {
        let Some(max) = self.input.max_message_bytes().map(|m| m.max(1) as usize) else {
            return false;
        };
        if data.len() <= max {
            return self
                .deliver(export.decl(), || {
                    export.notice((pid, data.clone()), data.len())
                })
                .await;
        }
        for part in data.chunks(max) {
            let call = || export.notice((pid, part.to_vec()), part.len());
            if !self.deliver(export.decl(), call).await {
                return false;
            }
        }
        true
    }

    /// Delivers the process's exit code.
    async fn exit(&self, pid: u64, code: i32) -> bool {
        self.deliver(HANDLE_EXIT.decl(), || HANDLE_EXIT.notice((pid, code), 0))
            .await
    }

    /// Delivers one call (made again for each try) to the actor, waiting for room as a sender
    /// would; false once the actor is gone.
    async fn deliver(&self, export: &'static ExportDecl, call: impl Fn() -> Call) -> bool {
        loop {
            if self.process.is_stopped() || self.input.max_message_bytes().is_none() {
                return false;
            }
            if !self.input.exports(export) {
                // It does not take this output: read and dropped.
                return true;
            }
            if self
                .input
                .deliver(call(), Duration::from_secs(60))
                .await
                .is_ok()
            {
                return true;
            }
            // A full mailbox, or every mailbox together full: wait, as a sender would.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads the process's output, delivers it in the configured modes, then its exit.
async fn watch(
    mut child: tokio::process::Child,
    mut output: Output,
    config: ProcessConfig,
    limit: Option<u64>,
) {
    let pid = output.process.pid;
    // However this task ends (a panic included), the group is killed before the leader can be
    // reaped, and the process counts as exited.
    let _cleanup = Cleanup(output.process.clone());
    let buffer = config.buffer_size.clamp(1, MAX_PROCESS_BUFFER) as usize;
    let chunk = config.chunk_size.map_or(buffer, |c| c as usize);
    let mut streams = [
        (Framing::new(config.stdout_mode, chunk), &HANDLE_STDOUT),
        (Framing::new(config.stderr_mode, chunk), &HANDLE_STDERR),
    ];
    let mut pipes = Pipes::of(&mut child, buffer);
    let process = output.process.clone();
    let read = async {
        while let Some(piece) = pipes.next().await {
            let (pieces, export, over) = match piece {
                Piece::Closed(which) => {
                    let (framing, export) = &mut streams[which];
                    (framing.finish(), *export, false)
                }
                Piece::Bytes(which, mut data) => {
                    let (framing, export) = &mut streams[which];
                    let over = data.len() as u64 > output.left;
                    if over {
                        data = &data[..output.left as usize];
                    }
                    output.left -= data.len() as u64;
                    let pieces = if data.is_empty() {
                        Vec::new()
                    } else {
                        framing.take(data)
                    };
                    (pieces, *export, over)
                }
            };
            for piece in pieces {
                if !output.output(export, pid, piece).await {
                    return Ended::ActorGone;
                }
            }
            if over {
                tracing::warn!(
                    "actor {}: process {pid} printed past its output limit; it was killed",
                    output.actor
                );
                return Ended::Limit;
            }
        }
        Ended::Closed
    };
    // Its output closed, it is waited for; past a limit, or with its actor gone, it is
    // killed first. Either way, what it left running in its group goes with it, killed while
    // its exit status still holds the group's id.
    let run = async {
        let ended = read.await;
        if ended != Ended::Closed {
            process.kill();
        }
        let status = programs::wait_then_kill(&mut child, || process.kill()).await;
        (ended, status)
    };
    let (ended, status) = match limit {
        None => run.await,
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), run).await {
            Ok(done) => done,
            Err(_) => {
                tracing::warn!(
                    "actor {}: process {pid} ran past its {ms} ms execution timeout; it was killed",
                    output.actor
                );
                process.kill();
                (Ended::Limit, child.wait().await)
            }
        },
    };
    let code = match status {
        Ok(status) => programs::exit_code(status),
        Err(_) => -1,
    };
    *output.process.exit.locked() = Some(code);
    output.process.forget_record();
    if ended != Ended::ActorGone {
        output.exit(pid, code).await;
    }
}

/// How reading a process's output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Both pipes closed.
    Closed,
    /// It printed past its limit (or, from the caller, ran past its time).
    Limit,
    /// Its actor is gone: nothing more is delivered.
    ActorGone,
}

/// Ends a process's bookkeeping when its output task ends, however it ends.
struct Cleanup(Arc<Running>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.kill();
        self.0.exit.locked().get_or_insert(-1);
        self.0.forget_record();
    }
}

/// How a stream's bytes are cut into the pieces delivered.
enum Framing {
    /// As read.
    Raw,
    /// One piece per line, without its newline.
    Lines(Vec<u8>),
    /// One piece per JSON value, compact; bytes that are not JSON are skipped to the next line.
    Json(Vec<u8>),
    /// Pieces of exactly this many bytes (the last may be shorter).
    Chunks(usize, Vec<u8>),
}

/// The longest line or JSON value held back waiting for its end; past it, it goes as is.
const MAX_PIECE: usize = 1 << 20;

impl Framing {
    fn new(mode: OutputMode, chunk: usize) -> Framing {
        match mode {
            OutputMode::Raw => Framing::Raw,
            OutputMode::LineByLine => Framing::Lines(Vec::new()),
            OutputMode::Json => Framing::Json(Vec::new()),
            OutputMode::Chunked => Framing::Chunks(chunk.max(1), Vec::new()),
        }
    }

    fn take(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        match self {
            Framing::Raw => vec![data.to_vec()],
            Framing::Lines(held) => {
                let mut pieces = complete_lines(held, data);
                while held.len() > MAX_PIECE {
                    pieces.push(held.drain(..MAX_PIECE).collect());
                }
                pieces
            }
            Framing::Json(held) => {
                let lines = complete_lines(held, data);
                if held.len() > MAX_PIECE {
                    // A value this long is not waited for.
                    held.clear();
                }
                lines.iter().flat_map(|line| json_values(line)).collect()
            }
            Framing::Chunks(size, held) => {
                held.extend_from_slice(data);
                let whole = held.len() / *size * *size;
                held.drain(..whole)
                    .collect::<Vec<u8>>()
                    .chunks(*size)
                    .map(<[u8]>::to_vec)
                    .collect()
            }
        }
    }

    /// What is held back when the stream ends.
    fn finish(&mut self) -> Vec<Vec<u8>> {
        match self {
            Framing::Raw => Vec::new(),
            Framing::Json(held) => json_values(&std::mem::take(held)),
            Framing::Lines(held) | Framing::Chunks(_, held) => {
                let rest = std::mem::take(held);
                if rest.is_empty() {
                    Vec::new()
                } else {
                    vec![rest]
                }
            }
        }
    }
}

/// Appends `data` to `held` and takes the lines it completes, without their newlines. Only
/// the new bytes are scanned and `held` is cut once, so a stream costs time in its length.
fn complete_lines(held: &mut Vec<u8>, data: &[u8]) -> Vec<Vec<u8>> {
    let scanned = held.len();
    held.extend_from_slice(data);
    let mut pieces = Vec::new();
    let mut from = 0;
    for (at, byte) in held.iter().enumerate().skip(scanned) {
        if *byte == b'\n' {
            pieces.push(held[from..at].to_vec());
            from = at + 1;
        }
    }
    held.drain(..from);
    pieces
}

/// The JSON values on one line, each compacted. Bytes that are not JSON end the line.
fn json_values(line: &[u8]) -> Vec<Vec<u8>> {
    serde_json::Deserializer::from_slice(line)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .map(|value| serde_json::to_vec(&value).unwrap_or_default())
        .collect()
}

/// The actor's process `pid`.
fn process(store: &mut StoreContextMut<'_, ActorCtx>, pid: u64) -> Result<Arc<Running>, String> {
    caller(store)?
        .state
        .processes
        .get(&pid)
        .cloned()
        .ok_or_else(|| format!("this actor has no process {pid}"))
}

fn os_write_stdin(
    mut store: StoreContextMut<'_, ActorCtx>,
    (pid, data): (u64, Vec<u8>),
) -> HostFuture<'_, Answer<u32>> {
    Box::pin(async move {
        let result = async {
            let process = process(&mut store, pid)?;
            let mut stdin = process.stdin.lock().await;
            let pipe = stdin
                .as_mut()
                .ok_or_else(|| format!("process {pid} has no stdin open"))?;
            let write = async {
                pipe.write_all(&data).await?;
                pipe.flush().await
            };
            match tokio::time::timeout(Duration::from_secs(30), write).await {
                Ok(Ok(())) => Ok(data.len() as u32),
                Ok(Err(e)) => Err(format!("writing to process {pid}: {e}")),
                Err(_) => Err(format!("process {pid} did not read its stdin within 30 s")),
            }
        }
        .await;
        Ok((result,))
    })
}

fn os_status(
    mut store: StoreContextMut<'_, ActorCtx>,
    (pid,): (u64,),
) -> HostFuture<'_, Answer<ProcessStatus>> {
    Box::pin(async move {
        let result = process(&mut store, pid).map(|p| {
            let exit = *p.exit.locked();
            ProcessStatus {
                pid,
                running: exit.is_none(),
                exit_code: exit,
                start_time: p.start_ms,
            }
        });
        Ok((result,))
    })
}

fn os_signal(
    mut store: StoreContextMut<'_, ActorCtx>,
    (pid, signal): (u64, u32),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let result = process(&mut store, pid).and_then(|p| {
            let sig = i32::try_from(signal)
                .ok()
                .and_then(rustix::process::Signal::from_named_raw)
                .ok_or_else(|| format!("{signal} is not a signal"))?;
            let exited = || format!("process {pid} has exited");
            if p.exit.locked().is_some() {
                return Err(exited());
            }
            let pidfd = p.pidfd.as_ref().ok_or_else(exited)?;
            match rustix::process::pidfd_send_signal(pidfd, sig) {
                Ok(()) => Ok(()),
                Err(rustix::io::Errno::SRCH) => Err(exited()),
                Err(e) => Err(format!("signalling process {pid}: {e}")),
            }
        });
        Ok((result,))
    })
}

fn os_kill(mut store: StoreContextMut<'_, ActorCtx>, (pid,): (u64,)) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let result = process(&mut store, pid).map(|p| p.kill());
        Ok((result,))
    })
}

/// Records a running process group in `data_dir/processes/`, with its start time as the
/// kernel counts it (so that a later runtime does not kill a process that reused the id).
fn record_group(data_dir: &Path, pgid: i32, actor: &str) -> Option<PathBuf> {
    let dir = data_dir.join(PROCESSES_DIR);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(pgid.to_string());
    let started = start_time(pgid)?;
    std::fs::write(&path, format!("{} {started} {actor}\n", boot_id())).ok()?;
    Some(path)
}

/// This boot's id: start times count from the boot, so a record from another boot means
/// nothing now.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, in clock ticks since boot).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process groups a runtime that died left running in `data_dir`, and forgets them.
/// Only a group whose leader is still the process recorded (same boot, same start time) is
/// killed: a leader gone, its id may name an unrelated group by now, so what is left of that
/// group is left alone. Returns how many groups were killed.
pub fn kill_leftovers(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join(PROCESSES_DIR)) else {
        return 0;
    };
    let boot = boot_id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let pgid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let (recorded_boot, started) = (fields.next(), fields.next());
        let started = started.and_then(|s| s.parse::<u64>().ok());
        if let (Some(pgid), Some(started)) = (pgid, started)
            && pgid > 1
            && recorded_boot == Some(boot.as_str())
            && start_time(pgid) == Some(started)
        {
            programs::kill_group(pgid);
            killed += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(mode: OutputMode, chunk: usize, inputs: &[&str]) -> Vec<String> {
        let mut framing = Framing::new(mode, chunk);
        let mut out: Vec<Vec<u8>> = Vec::new();
        for input in inputs {
            out.extend(framing.take(input.as_bytes()));
        }
        out.extend(framing.finish());
        out.into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn output_modes_cut_the_stream_as_named() {
        assert_eq!(pieces(OutputMode::Raw, 0, &["ab", "c"]), ["ab", "c"]);
        assert_eq!(
            pieces(OutputMode::LineByLine, 0, &["a\nb", "c\n", "d"]),
            ["a", "bc", "d"]
        );
        assert_eq!(
            pieces(OutputMode::Chunked, 3, &["abcd", "efg", "h"]),
            ["abc", "def", "gh"]
        );
        assert_eq!(
            pieces(
                OutputMode::Json,
                0,
                &["{\"a\": 1} [2", ",3]\nnot json\n", "\"s\"", " 4 x 5"]
            ),
            ["{\"a\":1}", "[2,3]", "\"s\"", "4"]
        );
    }

    #[test]
    fn start_times_come_from_proc() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(i32::MAX), None);
    }
}
