//! `theater`: build, run and inspect WebAssembly actors.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "theater",
    version,
    about = "Run WebAssembly components as actors, with every run recorded in a verifiable event chain",
    after_help = "Examples:\n  theater new hello && cd hello\n  theater build\n  theater run\n  theater chains\n  theater events <ACTOR-ID>\n  theater verify <ACTOR-ID>\n  theater replay <ACTOR-ID>"
)]
struct Cli {
    /// Where chains, the content store and compiled components live
    /// [default: $THEATER_HOME, else ~/.theater]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new actor project that builds and runs as it is
    New(commands::new::Args),
    /// Build the actor crate in DIR to a component and point its manifest at it
    Build(commands::build::Args),
    /// Run an actor until it shuts down or has nothing left to do
    Run(commands::run::Args),
    /// List the chains in the data dir
    Chains(commands::chains::ChainsArgs),
    /// Print an actor's event chain
    Events(commands::chains::EventsArgs),
    /// Write an actor's chain to a self-contained file
    Export(commands::chains::ExportArgs),
    /// Check a chain's hash links, from the data dir or an exported file
    Verify(commands::chains::VerifyArgs),
    /// Re-execute a chain hermetically and report the first divergence
    Replay(commands::replay::Args),
    /// Print this data dir's node public key, which signs its chains (for `verify --key`)
    Key,
    /// Convert a data dir written by an older Theater to this build's format, in place
    Migrate,
    /// Measure this machine: Theater's workloads beside Erlang/OTP's, interleaved
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("THEATER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let data_dir = || commands::data_dir(cli.data_dir.clone());
    let result = match cli.command {
        Command::New(args) => commands::new::run(args),
        Command::Build(args) => commands::build::run(args),
        Command::Run(args) => data_dir().and_then(|d| commands::run::run(args, d)),
        Command::Chains(args) => data_dir().and_then(|d| commands::chains::chains(args, d)),
        Command::Events(args) => data_dir().and_then(|d| commands::chains::events(args, d)),
        Command::Export(args) => data_dir().and_then(|d| commands::chains::export(args, d)),
        Command::Verify(args) => data_dir().and_then(|d| commands::chains::verify(args, d)),
        Command::Replay(args) => data_dir().and_then(|d| commands::replay::run(args, d)),
        Command::Key => data_dir().and_then(commands::chains::key),
        Command::Migrate => data_dir().and_then(commands::chains::migrate),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(code) => code,
        // A reader that went away (`theater events ID | head`) is not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
