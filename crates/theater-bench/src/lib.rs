//! Theater's benchmark workloads, as `theater bench` runs them, and the table that sets their
//! figures beside Erlang/OTP's.
//!
//! Each workload runs one mode (`recorded`: chains persisted, batched; `unrecorded`: no chain)
//! in a process of its own, so that one mode's memory and threads do not blur the next, and
//! prints one JSON line per figure on stdout. The rules every figure keeps: one message per
//! export call, every `init` done before timing, recording on for the recorded figures.
//!
//! The guest components are embedded in this crate (built from `actors/` by `test-actors`),
//! so an installed `theater` binary can run them anywhere.

pub mod alloc;
mod density;
mod floor;
mod http;
mod io;
mod messaging;
mod per_message;
mod skynet;
mod spawn;
pub mod table;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use theater::{Manifest, ManifestOrigin, RuntimeConfig};

/// Every binary that runs the workloads counts allocations, for `per-message`.
#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

/// How big each workload runs. Every field has an environment variable, through which a
/// parent `theater bench` hands it to the process running one mode and to the Erlang twins.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// Scales every message and child count (`THEATER_BENCH_SCALE`).
    pub scale: f64,
    /// Actors the spawn workload spawns (`THEATER_BENCH_ACTORS`).
    pub actors: usize,
    /// Levels below skynet's root: 5 is 111,111 actors, 6 the full 1,111,111
    /// (`THEATER_BENCH_SKYNET_LEVELS`).
    pub skynet_levels: u32,
    /// Hibernated actors the density workload holds (`THEATER_BENCH_DENSITY_ACTORS`).
    pub density_actors: usize,
    /// Tokio worker threads for the messaging workloads (`THEATER_BENCH_WORKERS`).
    pub workers: usize,
}

impl Sizes {
    /// A sitting of a few minutes a round on two cores.
    pub const QUICK: Sizes = Sizes {
        scale: 0.3,
        actors: 10_000,
        skynet_levels: 5,
        density_actors: 100_000,
        workers: 2,
    };

    /// The sizes the lightweight-processes aims are stated at: skynet of 1,111,111 actors,
    /// a million hibernated actors, full message counts.
    pub const FULL: Sizes = Sizes {
        scale: 1.0,
        actors: 10_000,
        skynet_levels: 6,
        density_actors: 1_000_000,
        workers: 2,
    };

    /// The sizes in the environment, each defaulting to [`Sizes::QUICK`]'s.
    pub fn from_env() -> Sizes {
        let q = Sizes::QUICK;
        Sizes {
            scale: env_or("THEATER_BENCH_SCALE", q.scale),
            actors: env_or("THEATER_BENCH_ACTORS", q.actors),
            skynet_levels: env_or("THEATER_BENCH_SKYNET_LEVELS", q.skynet_levels),
            density_actors: env_or("THEATER_BENCH_DENSITY_ACTORS", q.density_actors),
            workers: env_or("THEATER_BENCH_WORKERS", q.workers),
        }
    }

    /// The environment that hands these sizes on.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("THEATER_BENCH_SCALE", self.scale.to_string()),
            ("THEATER_BENCH_ACTORS", self.actors.to_string()),
            (
                "THEATER_BENCH_SKYNET_LEVELS",
                self.skynet_levels.to_string(),
            ),
            (
                "THEATER_BENCH_DENSITY_ACTORS",
                self.density_actors.to_string(),
            ),
            ("THEATER_BENCH_WORKERS", self.workers.to_string()),
        ]
    }

    /// `n` times the scale, at least 1.
    fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(1)
    }
}

/// One workload: its modes, each run in a process of its own, and its Erlang/OTP twin.
pub struct Workload {
    pub name: &'static str,
    /// What it measures, for `theater bench --list`.
    pub about: &'static str,
    pub modes: &'static [&'static str],
    /// The escript that measures the same on the BEAM, if there is one.
    pub erlang: Option<Escript>,
    run: fn(mode: &str, sizes: &Sizes, components: &Components),
}

/// An Erlang twin, embedded.
#[derive(Clone, Copy)]
pub struct Escript {
    pub file_name: &'static str,
    pub source: &'static str,
}

const RECORDED_AND_NOT: &[&str] = &["recorded", "unrecorded"];

/// Every workload, in the order `theater bench` runs them.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "messaging",
        about: "request and send round trips, counting, a thread ring of 1,000 actors, fork-join; floors: bare wasmtime making the same calls, the chain writer alone",
        modes: &["recorded", "unrecorded", "floor", "writer-floor"],
        erlang: Some(Escript {
            file_name: "messaging.escript",
            source: include_str!("../../../bench/erlang/messaging.escript"),
        }),
        run: messaging::run,
    },
    Workload {
        name: "spawn",
        about: "spawning idle actors: microseconds each, resident bytes each; floor: bare wasmtime instantiating and calling init",
        modes: &[
            "recorded",
            "unrecorded",
            "memory",
            "recorded-hibernating",
            "floor",
        ],
        erlang: Some(Escript {
            file_name: "spawn.escript",
            source: include_str!("../../../bench/erlang/spawn.escript"),
        }),
        run: spawn::run,
    },
    Workload {
        name: "skynet",
        about: "a tree of actors ten wide, each spawned by its parent, summing its leaves",
        modes: RECORDED_AND_NOT,
        erlang: Some(Escript {
            file_name: "skynet.escript",
            source: include_str!("../../../bench/erlang/skynet.escript"),
        }),
        run: skynet::run,
    },
    Workload {
        name: "density",
        about: "resident bytes per hibernated actor, and the latency of waking one",
        modes: RECORDED_AND_NOT,
        erlang: None,
        run: density::run,
    },
    Workload {
        name: "io",
        about: "the store, filesystem and process handlers: 1 KiB store+get, 4 KiB file reads, process spawn-to-exit; against SQLite, std::fs and std::process directly",
        modes: &["recorded", "unrecorded", "direct"],
        erlang: None,
        run: io::run,
    },
    Workload {
        name: "http",
        about: "an actor serving HTTP (wrk: requests per second, p99) and a websocket echo, against a plain axum server",
        modes: &["recorded", "unrecorded", "axum"],
        erlang: None,
        run: http::run,
    },
    Workload {
        name: "per-message",
        about: "allocations per message on ping-pong requests and counting (instructions too, under scripts/per-message.sh)",
        modes: RECORDED_AND_NOT,
        erlang: None,
        run: per_message::run,
    },
];

/// The workload called `name`.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Runs one mode of one workload in this process, printing its JSON lines on stdout.
pub fn run_one(workload: &Workload, mode: &str, sizes: &Sizes) -> Result<(), String> {
    if !workload.modes.contains(&mode) {
        return Err(format!(
            "workload {} has no mode {mode:?} (its modes: {})",
            workload.name,
            workload.modes.join(", ")
        ));
    }
    let components = Components::unpack()?;
    (workload.run)(mode, sizes, &components);
    Ok(())
}

/// The guest components the workloads run, written out of this binary into a temporary
/// directory, since a manifest names its component by path.
struct Components {
    _dir: tempfile::TempDir,
    minimal: PathBuf,
    bench_actor: PathBuf,
    skynet: PathBuf,
    io_bench: PathBuf,
    http_server: PathBuf,
}

impl Components {
    fn unpack() -> Result<Components, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary dir: {e}"))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes)
                .map(|()| path)
                .map_err(|e| format!("writing {name} to a temporary dir: {e}"))
        };
        Ok(Components {
            minimal: write("minimal.wasm", test_actors::embedded::MINIMAL)?,
            bench_actor: write("bench-actor.wasm", test_actors::embedded::BENCH_ACTOR)?,
            skynet: write("skynet.wasm", test_actors::embedded::SKYNET)?,
            io_bench: write("io-bench.wasm", test_actors::embedded::IO_BENCH)?,
            http_server: write("http-server.wasm", test_actors::embedded::HTTP_SERVER)?,
            _dir: dir,
        })
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An inline manifest for `component` with these extra lines.
fn manifest(name: &str, component: &Path, extra: &str) -> Manifest {
    Manifest::parse_with(
        &manifest_text(name, component, extra),
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
        &theater_handlers::builtin(),
    )
    .expect("the workloads' manifests are valid")
}

fn manifest_text(name: &str, component: &Path, extra: &str) -> String {
    format!(
        "name = {name:?}\nversion = \"0.1.0\"\ncomponent = {:?}\n{extra}",
        component.display().to_string()
    )
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    proc_status("VmRSS:")
}

/// This process's peak resident memory, in bytes.
fn peak_rss_bytes() -> u64 {
    proc_status("VmHWM:")
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The runtime configuration of a `recorded` mode (chains persisted in `data_dir`, batched)
/// or an `unrecorded` one (no chain), with log lines on stderr.
fn config(mode: &str, data_dir: &Path) -> RuntimeConfig {
    let recorded = mode == "recorded";
    RuntimeConfig {
        handlers: theater_handlers::builtin(),
        data_dir: recorded.then(|| data_dir.to_owned()),
        record: recorded,
        durability: theater::chain::Durability::Batched,
        on_log: Arc::new(|line| eprintln!("{}: {}", line.actor_name, line.message)),
        ..Default::default()
    }
}

/// Runs `bench` on a multi-threaded tokio runtime (`workers` threads, or one per core), from a
/// worker task, as an actor would be driven, not from the `block_on` thread.
fn on_worker(workers: Option<usize>, bench: impl Future<Output = ()> + Send + 'static) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let tokio = builder.enable_all().build().expect("starting tokio");
    let bench = tokio.spawn(bench);
    match tokio.block_on(bench) {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the workload's task: {e}"),
    }
}
