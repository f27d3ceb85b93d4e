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
}

pub fn run(args: Args, data_dir: PathBuf) -> Result<ExitCode> {
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
    let manifest = Manifest::from_file(&path)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(run_actor(args, manifest, data_dir))
}

async fn run_actor(args: Args, manifest: Manifest, data_dir: PathBuf) -> Result<ExitCode> {
    let mut config = RuntimeConfig {
        data_dir: Some(data_dir.clone()),
        durability: Durability::parse(&args.durability).expect("validated by clap"),
        on_lifecycle: Some(actor_tree()),
        ..Default::default()
    };
    config.engine.max_instances = args.max_instances;
    config.engine.max_memory_mb = args.max_memory_mb;
    let runtime = Runtime::new(config)?;
    let root = match runtime.spawn(manifest).await {
        Ok(root) => root,
        Err(e) => {
            let detail = e
                .backtrace()
                .map(|bt| format!("\nguest backtrace, innermost call first:\n{bt}"))
                .unwrap_or_default();
            output::error(&format!("{e}{detail}"));
            runtime.shutdown().await?;
            return Ok(ExitCode::FAILURE);
        }
    };
    output::status(&format!("root actor {} {}", root.name(), root.id()));

    let exit = if args.keep_alive {
        tokio::select! {
            biased;
            exit = root.exited() => Some(exit),
            _ = tokio::signal::ctrl_c() => None,
        }
    } else {
        tokio::select! {
            biased;
            exit = root.exited() => Some(exit),
            _ = runtime.quiescent() => None,
        }
    };
    // Quiescence and the root's end can arrive together (a root that shuts down stops its
    // children first); the root's own end is the more precise report.
    let exit = exit.or_else(|| root.exit());
    runtime.shutdown().await?;

    let events = ChainReader::open(&data_dir)
        .and_then(|r| r.resolve(root.id()))
        .map(|c| c.head.len)
        .ok();
    let saved = match events {
        Some(n) => format!(
            "; its chain has {n} events (theater events {})",
            theater::short_id(root.id())
        ),
        None => String::new(),
    };
    let (what, code) = match exit {
        Some(ActorExit::Shutdown(_)) => ("shut down", ExitCode::SUCCESS),
        Some(ActorExit::Stopped) => ("was stopped", ExitCode::SUCCESS),
        Some(ActorExit::Failed(reason)) => {
            output::error(&format!("{} failed: {reason}", root.name()));
            ("failed", ExitCode::FAILURE)
        }
        None if args.keep_alive => ("was stopped by Ctrl-C", ExitCode::SUCCESS),
        None => ("is quiescent", ExitCode::SUCCESS),
    };
    output::status(&format!("{} {what}{saved}", root.name()));
    Ok(code)
}

/// Prints actors starting, stopping, failing and restarting, indented under their parents.
fn actor_tree() -> LifecycleSink {
    Arc::new(move |l: &Lifecycle<'_>| {
        let (mark, what) = match &l.event {
            LifecycleEvent::Started => ("+", "started".to_owned()),
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
