//! `theater run`: run an actor in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use theater::chain::{ChainReader, Durability};
use theater::{
    ActorExit, Lifecycle, LifecycleEvent, LifecycleSink, Manifest, Runtime, RuntimeConfig,
};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The actor's manifest [default: ./manifest.toml]
    manifest: Option<PathBuf>,
    /// Bring back every actor a crashed run left running in the data dir (each from its last
    /// persisted state; its chain continues), instead of starting one
    #[arg(long, conflicts_with = "manifest")]
    resume: bool,
    /// Keep running once the actor is quiescent, until Ctrl-C
    #[arg(long)]
    keep_alive: bool,
    /// When a chain event counts as saved, for actors whose manifest does not say:
    /// `every-event` (fsync before the call goes on) or `batched` (group commits)
    #[arg(long, default_value = "batched", value_parser = ["every-event", "batched"])]
    durability: String,
    /// Most instances live at once. Actors idle for 1 s hibernate and free theirs; a spawn
    /// that finds none free fails
    #[arg(long, default_value_t = theater::EngineSettings::default().max_instances)]
    max_instances: u32,
    /// The largest memory, in MiB, any actor's `[limits] memory_mb` may ask for
    #[arg(long, default_value_t = theater::EngineSettings::default().max_memory_mb)]
    max_memory_mb: u32,
    /// Bytes of messages, in MiB, that all mailboxes together may hold; past it a send fails
    #[arg(long, default_value_t = theater::DEFAULT_MAILBOX_BUDGET >> 20)]
    mailbox_budget_mb: u64,
}

pub fn run(args: Args, data_dir: PathBuf) -> Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.resume {
        return tokio.block_on(run_actors(args, None, data_dir));
    }
    let path = args
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from("manifest.toml"));
    if !path.exists() {
        return Err(anyhow!(
            "no manifest at {}: pass the actor's manifest.toml (create a project with `theater new NAME`)",
            path.display()
        ));
    }
    let manifest = Manifest::from_file_with(&path, &theater_handlers::builtin())?;
    tokio.block_on(run_actors(args, Some(manifest), data_dir))
}

/// Runs `manifest`'s actor, or with none the actors a crashed run left (`--resume`), until
/// they end or the runtime is quiescent.
async fn run_actors(args: Args, manifest: Option<Manifest>, data_dir: PathBuf) -> Result<ExitCode> {
    let mut config = RuntimeConfig {
        data_dir: Some(data_dir.clone()),
        durability: Durability::parse(&args.durability).expect("validated by clap"),
        on_lifecycle: Some(actor_tree()),
        handlers: theater_handlers::builtin(),
        ..Default::default()
    };
    config.engine.max_instances = args.max_instances;
    config.engine.max_memory_mb = args.max_memory_mb;
    config.mailbox_budget_bytes = args.mailbox_budget_mb.saturating_mul(1 << 20);
    let runtime = Runtime::new(config)?;
    let roots = match manifest {
        Some(manifest) => match runtime.spawn(manifest).await {
            Ok(root) => {
                output::status(&format!("root actor {} {}", root.name(), root.id()));
                vec![root]
            }
            Err(e) => {
                let detail = e
                    .backtrace()
                    .map(|bt| format!("\nguest backtrace, innermost call first:\n{bt}"))
                    .unwrap_or_default();
                output::error(&format!("{e}{detail}"));
                runtime.shutdown().await?;
                return Ok(ExitCode::FAILURE);
            }
        },
        None => {
            let recovered = runtime.recover().await?;
            for (id, name, why) in &recovered.failed {
                output::error(&format!(
                    "{name} {} not recovered: {why}",
                    theater::short_id(id)
                ));
            }
            for (id, name, interrupted) in &recovered.actors {
                if let Some(call) = interrupted {
                    output::status(&format!(
                        "{name} {}: the crash interrupted {call}; it was not finished (see docs/architecture.md, \"Crash recovery\")",
                        theater::short_id(id)
                    ));
                }
            }
            if recovered.actors.is_empty() {
                output::status(&format!(
                    "nothing to resume: no actor in {} was left running",
                    data_dir.display()
                ));
                runtime.shutdown().await?;
                return Ok(if recovered.failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            for root in &recovered.roots {
                output::status(&format!("resumed root actor {} {}", root.name(), root.id()));
            }
            recovered.roots
        }
    };
    let all_ended = async {
        for root in &roots {
            root.exited().await;
        }
    };
    // Ctrl-C or SIGTERM shuts the actors down cleanly (their chains end with `shutdown`), so
    // that a server run in the foreground can be stopped without looking like a crash.
    let signalled = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        // A second Ctrl-C does not wait for the shutdown.
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    };
    let mut stopped_by_signal = false;
    if args.keep_alive {
        tokio::select! {
            biased;
            () = all_ended => {}
            () = signalled => stopped_by_signal = true,
        }
    } else {
        tokio::select! {
            biased;
            () = all_ended => {}
            _ = runtime.quiescent() => {}
            () = signalled => stopped_by_signal = true,
        }
    }
    // Quiescence and a root's end can arrive together (a root that shuts down stops its
    // children first); the root's own end is the more precise report.
    let exits: Vec<Option<ActorExit>> = roots.iter().map(|r| r.exit()).collect();
    runtime.shutdown().await?;

    let reader = ChainReader::open(&data_dir).ok();
    let mut code = ExitCode::SUCCESS;
    for (root, exit) in roots.iter().zip(exits) {
        let events = reader
            .as_ref()
            .and_then(|r| r.resolve(root.id()).ok())
            .map(|c| c.head.len);
        let saved = match events {
            Some(n) => format!(
                "; its chain has {n} events (theater events {})",
                theater::short_id(root.id())
            ),
            None => String::new(),
        };
        let what = match exit {
            Some(ActorExit::Shutdown(_)) => "shut down",
            Some(ActorExit::Stopped) => "was stopped",
            Some(ActorExit::Failed(reason)) => {
                output::error(&format!("{} failed: {reason}", root.name()));
                code = ExitCode::FAILURE;
                "failed"
            }
            None if stopped_by_signal => "was shut down by Ctrl-C or SIGTERM",
            None => "is quiescent",
        };
        output::status(&format!("{} {what}{saved}", root.name()));
    }
    Ok(code)
}

/// Prints actors starting, stopping, failing and restarting, indented under their parents.
fn actor_tree() -> LifecycleSink {
    Arc::new(move |l: &Lifecycle<'_>| {
        let (mark, what) = match &l.event {
            LifecycleEvent::Started => ("+", "started".to_owned()),
            LifecycleEvent::Recovered => ("^", "recovered".to_owned()),
            LifecycleEvent::Restarted => ("~", "restarted".to_owned()),
            LifecycleEvent::Exited => ("-", "shut down".to_owned()),
            LifecycleEvent::Stopped => ("-", "stopped".to_owned()),
            LifecycleEvent::Failed(why) => ("!", format!("failed: {why}")),
        };
        output::status(&format!(
            "{}{mark} {} {} {what}",
            "  ".repeat(l.depth as usize),
            l.name,
            theater::short_id(l.actor_id)
        ));
    })
}
