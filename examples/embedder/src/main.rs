//! `embedder [COMPONENT]`: runs the metronome actor under a runtime with a handler family of
//! this program's own, then replays its chain. See `src/lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let component = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from(test_actors::METRONOME), PathBuf::from);
    let data_dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: creating a data dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    match theater_example_embedder::run(&component, data_dir.path()).await {
        Ok(report) => {
            println!(
                "actor {} shut down with state {:?}",
                report.actor_id, report.final_state
            );
            println!(
                "its chain of {} events ({} ticks) replayed: {} calls driven again, state {}",
                report.events,
                report.ticks,
                report.replayed_calls,
                if report.replay_matches {
                    "matches"
                } else {
                    "differs"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
