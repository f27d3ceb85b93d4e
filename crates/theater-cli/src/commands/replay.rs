//! `theater replay ACTOR|FILE [--component PATH]`: re-executes a chain hermetically and checks
//! every event, reporting the first divergence with both sides.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::json;
use theater::replay::{ReplayError, ReplayOptions, ReplaySources, replay_chain};

use super::chains::load_chain;

#[derive(clap::Args)]
pub struct Args {
    /// An actor id (or unique prefix) in the data dir, or a file written by `theater export`
    target: String,
    /// Replay against this component instead of the recorded one, to check that a new build
    /// behaves the same on recorded traffic
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// Start at the chain's newest snapshot (the events before it are still verified)
    #[arg(long)]
    from_snapshot: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
}

/// Chains shorter than this replay too fast for a progress bar to help.
const PROGRESS_FROM_EVENTS: usize = 2_000;

pub fn run(args: Args, data_dir: PathBuf) -> Result<ExitCode> {
    let chain = load_chain(&args.target, &data_dir)?;
    let file = chain.file;
    let label = format!("{} ({})", chain.name, file.actor_id);
    let bar = (file.events.len() >= PROGRESS_FROM_EVENTS).then(|| {
        let bar = indicatif::ProgressBar::new(file.events.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "replaying {bar:40} {pos}/{len} events, {per_sec}, {eta} left",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let progress = bar.clone().map(|bar| {
        Box::new(move |done: u64, _total: u64| bar.set_position(done))
            as Box<dyn FnMut(u64, u64) + Send>
    });
    let sources = if data_dir.exists() {
        ReplaySources::data_dir(&data_dir)
    } else {
        ReplaySources::new(
            |_| None,
            |id| Err(format!("no data dir to read {id}'s chain from")),
        )
    }
    // An exported file carries what it refers to: it comes first.
    .with_blobs(file.blobs.iter().cloned().collect());
    let options = ReplayOptions {
        component: args.component.clone(),
        compiled_cache: Some(data_dir.join("compiled")),
        from_snapshot: args.from_snapshot,
        on_progress: progress,
        handlers: theater_handlers::builtin(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(replay_chain(&file.actor_id, file.events, sources, options));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(ReplayError::Diverged(d)) => {
            let mut message = format!(
                "replay of {label} diverged at event {}{}",
                d.index,
                against(args.component.as_deref())
            );
            if let Some((index, call)) = &d.call {
                message.push_str(&format!("\nin call:  event {index} {call}"));
            }
            match &d.expected {
                Some(expected) => message.push_str(&format!("\nexpected: {expected}")),
                None => message.push_str("\nexpected: the end of the chain"),
            }
            message.push_str(&format!("\nactual:   {}", d.actual));
            return Err(anyhow!(message));
        }
        Err(ReplayError::Input(message)) => {
            return Err(anyhow!("cannot replay {label}: {message}"));
        }
    };
    let seconds = summary.elapsed.as_secs_f64();
    let rate = summary.events as f64 / seconds.max(1e-9);
    let state = summary
        .final_state
        .map_or("none".to_owned(), |h| h.to_hex()[..16].to_owned());
    if args.json {
        println!(
            "{}",
            json!({
                "actor_id": summary.actor_id, "name": summary.name, "ok": true,
                "component": summary.component.to_hex(), "events": summary.events,
                "calls": summary.calls, "host_calls": summary.host_calls,
                "instances": summary.instances, "traps_from_chain": summary.traps_from_chain,
                "interrupted_calls": summary.interrupted_calls,
                "started_at": summary.started_at,
                "final_state": summary.final_state.map(|h| h.to_hex()),
                "setup_seconds": summary.setup.as_secs_f64(),
                "seconds": seconds, "events_per_second": rate,
            })
        );
    } else {
        println!(
            "ok: replayed {label}{}: {} events, {} calls re-executed, {} host calls answered from the chain, {} instances; final state {state}; {seconds:.3} s ({rate:.0} events/s) after {:.2} s of setup",
            against(args.component.as_deref()),
            summary.events,
            summary.calls,
            summary.host_calls,
            summary.instances,
            summary.setup.as_secs_f64(),
        );
        if let Some(index) = summary.started_at {
            println!("   started from the snapshot at event {index}");
        }
        if summary.traps_from_chain > 0 {
            println!(
                "   {} calls ended in a time-dependent trap (CPU budget or kill) and were taken from the chain, not re-run",
                summary.traps_from_chain
            );
        }
        if summary.interrupted_calls > 0 {
            println!(
                "   {} calls were interrupted in the recorded run (the chain ends, or a recovery follows, inside them) and were not re-run",
                summary.interrupted_calls
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn against(component: Option<&Path>) -> String {
    component
        .map(|c| format!(" against {}", c.display()))
        .unwrap_or_default()
}
