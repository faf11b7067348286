//! The `switchback` binary: command-line parsing and wiring. Business rules live in
//! the library crates; this crate only connects them.

mod alerts;
mod check;
mod demo;
mod phones;
mod report;
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
    /// A self-contained lab on loopback: simulated sites, sample phones, short timers.
    Demo {
        /// Where the dashboard, API and phone files are served.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Serve the demo on an address other machines can reach. Its admin token is
        /// printed on the screen and its lab endpoints need none: only on a lab network.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Run the orchestrator: monitor, route decisions, phone files and the HTTP server.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Create the store if it does not exist (a first start). Without it, a missing or
        /// empty store is refused, so that a lost store is never silently replaced.
        #[arg(long)]
        init: bool,
    },
    /// Probe every service once, print a table, exit 1 if a primary service is down.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// On-call webhooks.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Manage the phone inventory.
    Phones {
        #[command(subcommand)]
        command: PhonesCommand,
    },
    /// A post-incident review of the last `--since` (at most 7d), read from the store:
    /// each failover's detection, failover, phone convergence and failback times, and
    /// the events. Changes nothing and never creates a store.
    Report {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How far back: 90m, 24h, 7d.
        #[arg(long, value_name = "WINDOW", default_value = "24h")]
        since: String,
    },
    /// Render the current generation of phone files to a folder, to inspect it.
    Render {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Send a test alert to every webhook and report each answer; exit 1 if any failed.
    Test {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PhonesCommand {
    /// Load phones from a CSV file (header: mac,vendor,model,display_name,user_id,auth_id,password),
    /// all or nothing; a known MAC is updated.
    Import {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(value_name = "PHONES.csv")]
        csv: PathBuf,
    },
}

/// Exit code for a primary service found down by `check`, or a webhook refusing `alerts test`.
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
            Command::Alerts { command: AlertsCommand::Test { config } } => {
                let all_ok = alerts::test(load(&config)?).await?;
                Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PRIMARY_DOWN) })
            }
            Command::Demo { listen, allow_remote } => {
                demo::demo(listen, allow_remote).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Phones { command: PhonesCommand::Import { config, csv } } => {
                phones::import(load(&config)?, &csv).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Report { config, since } => {
                report::report(load(&config)?, &since).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Render { config, out } => {
                phones::render_to(load(&config)?, &out).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Run { config, init } => run::run(load(&config)?, init).await.map(|()| ExitCode::SUCCESS),
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
    let colour =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // One JSON object a line, spans included, for a log shipper.
    if std::env::var("SWITCHBACK_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().with_current_span(true).with_span_list(true).init();
    } else {
        builder.with_ansi(colour).init();
    }
}
