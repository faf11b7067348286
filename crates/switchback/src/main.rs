//! The `switchback` binary: command-line parsing and wiring. Business rules live in
//! the library crates; this crate only connects them.

mod check;
mod decider;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchback_core::Config;

/// Disaster-failover orchestrator for a VoIP provider.
#[derive(Debug, Parser)]
#[command(name = "switchback", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the orchestrator: monitor, route decisions, and (soon) phone provisioning.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Probe every service once, print a table, exit 1 if a primary service is down.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Exit code for a primary service found down by `check`.
const EXIT_PRIMARY_DOWN: u8 = 1;
/// Exit code for a bad config or any other failure (clap uses the same for bad usage).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::Error::new(err).context("cannot start the async runtime")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run::run(load(&config)?).await.map(|()| ExitCode::SUCCESS),
            Command::Check { config } => {
                let all_primaries_up = check::check(load(&config)?).await?;
                Ok(if all_primaries_up { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PRIMARY_DOWN) })
            }
        }
    });
    outcome.unwrap_or_else(|err| fail(&err))
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    ExitCode::from(EXIT_ERROR)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
