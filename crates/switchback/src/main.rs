//! The `switchback` binary: command-line parsing and wiring. Business rules live in
//! the library crates; this crate only connects them.

mod alerts;
mod check;
mod demo;
mod inventory;
mod phones;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use switchback_core::Config;
use switchback_provisioning::Mac;

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
    /// Print a shell completion script to stdout, e.g.
    /// `switchback completions bash > /etc/bash_completion.d/switchback`.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `switchback man | man -l -`.
    Man,
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
    /// List the inventory without any credential: MAC, vendor, model, display name, user
    /// id and each phone's latest stored fetch (time, generation, source).
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only phones not seen for more than three phones.poll_interval (or never).
        #[arg(long)]
        stale: bool,
        #[arg(long, value_enum, default_value_t = inventory::Format::Table)]
        format: inventory::Format,
    },
    /// Write the inventory as a CSV in the import format, so that `phones import` of it
    /// gives the same inventory. It holds every SIP password: without --output it goes
    /// to stdout.
    Export {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Write to this new file, readable by its owner only (0600), instead of stdout.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Replace --output if it exists (otherwise an existing file is refused).
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Remove phones (any MAC spelling the import takes), all or none: if any MAC is not
    /// in the inventory nothing is removed, they are named, and the exit code is 1.
    Remove {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(value_name = "MAC", required = true, value_parser = Mac::parse)]
        macs: Vec<Mac>,
    },
}

/// Exit code for a primary service found down by `check`, a webhook refusing `alerts
/// test`, or a MAC unknown to `phones remove`.
const EXIT_PRIMARY_DOWN: u8 = 1;
/// Exit code for a bad config or any other failure (clap uses the same for bad usage).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "switchback", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&anyhow::Error::new(err).context("cannot write the manual page")),
            };
        }
        _ => {}
    }
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
            Command::Phones { command: PhonesCommand::List { config, stale, format } } => {
                inventory::list(load(&config)?, stale, format).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Phones { command: PhonesCommand::Export { config, output, force } } => {
                inventory::export(load(&config)?, output.as_deref(), force).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Phones { command: PhonesCommand::Remove { config, macs } } => {
                let all_known = inventory::remove(load(&config)?, &macs).await?;
                Ok(if all_known { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PRIMARY_DOWN) })
            }
            Command::Completions { .. } | Command::Man => Ok(ExitCode::SUCCESS),
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
    eprintln!("error: {}", said_once(err));
    ExitCode::from(EXIT_ERROR)
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already holds (`cannot read config file X: No such file…` has its I/O error in it).
fn said_once(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if message.contains(&cause) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&cause);
    }
    message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let missing = Config::load(std::path::Path::new("/nonexistent-switchback/x.toml"));
        let Err(err) = missing.map_err(anyhow::Error::new) else { panic!("a missing file loaded") };
        assert_eq!(
            said_once(&err),
            "cannot read config file /nonexistent-switchback/x.toml: No such file or directory (os error 2)"
        );
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let err = anyhow::Error::new(io).context("cannot listen on 127.0.0.1:8080");
        assert_eq!(said_once(&err), "cannot listen on 127.0.0.1:8080: address in use");
    }
}
