//! `theater bench`: this machine's figures for Theater's workloads, interleaved with their
//! Erlang/OTP twins, then one table of medians and ratios.
//!
//! Each (workload, mode) runs in a fresh process (`theater bench --one WORKLOAD MODE`), so
//! that one mode's memory and threads do not blur the next; its Erlang twin runs right after
//! it, so that the machine's drift between runs hits both alike.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use theater_bench::table::Sitting;
use theater_bench::{Escript, Sizes, WORKLOADS, Workload};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  theater bench                      one quick round of every workload\n  theater bench --rounds 3 messaging three rounds of messaging, medians\n  theater bench --full skynet        skynet at 1,111,111 actors\n  theater bench --table a.jsonl      the table of figures kept with --out"
)]
pub struct Args {
    /// Workloads to run [default: all; see --list]
    #[arg(value_name = "WORKLOAD")]
    workloads: Vec<String>,
    /// Rounds; each cell of the table is the median of its rounds
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: u32,
    /// The sizes the aims are stated at: skynet of 1,111,111 actors, a million hibernated
    /// actors, full message counts (an hour or more on two cores)
    #[arg(long)]
    full: bool,
    /// Scale every message and child count [default: 0.3, or 1 with --full]
    #[arg(long, value_name = "F")]
    scale: Option<f64>,
    /// Actors the spawn workload spawns [default: 10000]
    #[arg(long, value_name = "N")]
    actors: Option<usize>,
    /// Levels below skynet's root: 5 is 111,111 actors [default: 5, or 6 with --full]
    #[arg(long, value_name = "N")]
    skynet_levels: Option<u32>,
    /// Hibernated actors the density workload holds [default: 100000, or 1000000 with --full]
    #[arg(long, value_name = "N")]
    density_actors: Option<usize>,
    /// Skip the Erlang/OTP twins even if `escript` is installed
    #[arg(long)]
    no_erlang: bool,
    /// Also append every figure, as JSON lines, to FILE
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// List the workloads and their modes
    #[arg(long)]
    list: bool,
    /// Print the table of JSON-lines files kept with --out, and run nothing
    #[arg(long, value_name = "FILE", num_args = 1..)]
    table: Vec<PathBuf>,
    /// Run one mode of one workload in this process (what each round runs)
    #[arg(long, num_args = 2, value_names = ["WORKLOAD", "MODE"], hide = true)]
    one: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.list {
        for w in WORKLOADS {
            let erlang = if w.erlang.is_some() {
                "; Erlang twin"
            } else {
                ""
            };
            println!(
                "{:<10} {} (modes: {}{erlang})",
                w.name,
                w.about,
                w.modes.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.table.is_empty() {
        return print_table(&args.table);
    }
    if let [workload, mode] = args.one.as_slice() {
        let workload = find(workload)?;
        theater_bench::run_one(workload, mode, &Sizes::from_env()).map_err(anyhow::Error::msg)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let workloads = match args.workloads.is_empty() {
        true => WORKLOADS.iter().collect(),
        false => args
            .workloads
            .iter()
            .map(|w| find(w))
            .collect::<Result<Vec<_>>>()?,
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build of theater: its figures are not representative (cargo build --release -p theater-cli)"
        );
    }
    let sizes = sizes(&args)?;
    let escript = (!args.no_erlang).then(find_escript).flatten();
    if escript.is_none() && !args.no_erlang {
        eprintln!(
            "escript not found: the Erlang/OTP figures are skipped (apt-get install erlang-base)"
        );
    }
    let mut out = match &args.out {
        Some(path) => Some(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let scripts = tempfile::tempdir().context("creating a temporary dir for the escripts")?;
    let me = std::env::current_exe().context("finding this program to run each mode")?;

    let mut sitting = Sitting::default();
    let mut failed = Vec::new();
    for round in 1..=args.rounds {
        for workload in &workloads {
            let mut runs: Vec<(String, Command)> = workload
                .modes
                .iter()
                .map(|mode| {
                    let mut command = Command::new(&me);
                    command.args(["bench", "--one", workload.name, mode]);
                    (format!("{} {mode}", workload.name), command)
                })
                .collect();
            if let (Some(escript), Some(twin)) = (&escript, workload.erlang) {
                let script = write_escript(scripts.path(), twin)?;
                let mut command = Command::new(escript);
                command.arg(script);
                runs.push((format!("{} erlang", workload.name), command));
            }
            for (what, mut command) in runs {
                eprintln!("round {round} of {}: {what}", args.rounds);
                command.envs(sizes.to_env());
                if let Err(e) = run_child(&what, command, &mut sitting, out.as_mut()) {
                    eprintln!("{e:#}");
                    failed.push(what);
                }
            }
        }
    }
    for failure in &sitting.failures {
        eprintln!("{failure}");
    }
    if sitting.is_empty() {
        bail!("no workload printed a figure");
    }
    println!("\n{}", sitting.table());
    // A workload that reported a failure (a skynet tree that did not complete) failed too.
    failed.extend(sitting.failures.iter().cloned());
    if !failed.is_empty() {
        bail!("{} run(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn find(name: &str) -> Result<&'static Workload> {
    theater_bench::workload(name).with_context(|| {
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        format!("no workload {name:?} (the workloads: {})", names.join(", "))
    })
}

/// The sizes asked for: flags, then `--full` or the `THEATER_BENCH_*` environment.
fn sizes(args: &Args) -> Result<Sizes> {
    let base = if args.full {
        Sizes::FULL
    } else {
        Sizes::from_env()
    };
    let sizes = Sizes {
        scale: args.scale.unwrap_or(base.scale),
        actors: args.actors.unwrap_or(base.actors),
        skynet_levels: args.skynet_levels.unwrap_or(base.skynet_levels),
        density_actors: args.density_actors.unwrap_or(base.density_actors),
        workers: base.workers,
    };
    if !(sizes.scale > 0.0 && sizes.scale.is_finite()) {
        bail!("--scale must be a positive number, not {}", sizes.scale);
    }
    if sizes.actors == 0 || sizes.density_actors == 0 || sizes.workers == 0 {
        bail!("--actors, --density-actors and THEATER_BENCH_WORKERS must be at least 1");
    }
    if !(1..=7).contains(&sizes.skynet_levels) {
        bail!(
            "--skynet-levels must be 1 to 7 (6 is 1,111,111 actors), not {}",
            sizes.skynet_levels
        );
    }
    Ok(sizes)
}

/// `escript` on the `PATH`, if Erlang/OTP is installed.
fn find_escript() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("escript"))
        .find(|p| p.is_file())
}

fn write_escript(dir: &Path, twin: Escript) -> Result<PathBuf> {
    let path = dir.join(twin.file_name);
    std::fs::write(&path, twin.source).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs one mode (or one Erlang twin), printing its JSON lines as they come and counting
/// them into `sitting`. Its stderr is kept aside and shown only if it fails.
fn run_child(
    what: &str,
    mut command: Command,
    sitting: &mut Sitting,
    mut out: Option<&mut File>,
) -> Result<()> {
    let log = tempfile::tempfile().context("creating a temporary file for a run's stderr")?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?)
        .spawn()
        .with_context(|| format!("{what}: starting it"))?;
    let stdout = child.stdout.take().expect("piped");
    let relay = || -> Result<()> {
        for line in BufReader::new(stdout).lines() {
            let line = line.with_context(|| format!("{what}: reading its output"))?;
            if sitting.add_line(&line) || line.starts_with('{') {
                println!("{line}");
                if let Some(out) = out.as_deref_mut() {
                    writeln!(out, "{line}").context("writing --out")?;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = relay() {
        // Not left running beside the next mode, whose figures it would spoil.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let status = child.wait()?;
    if !status.success() {
        let mut tail = String::new();
        let mut log = log;
        log.rewind()?;
        log.read_to_string(&mut tail)?;
        let tail: Vec<&str> = tail.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({status}):\n{}", tail.join("\n"));
    }
    Ok(())
}

fn print_table(files: &[PathBuf]) -> Result<ExitCode> {
    let mut sitting = Sitting::default();
    for path in files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for line in BufReader::new(file).lines() {
            sitting.add_line(&line.with_context(|| format!("reading {}", path.display()))?);
        }
    }
    for failure in &sitting.failures {
        eprintln!("{failure}");
    }
    if sitting.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        bail!("no benchmark figures in {}", names.join(", "));
    }
    println!("{}", sitting.table());
    Ok(ExitCode::SUCCESS)
}
