//! `iax2-gateway`: run the gateway, or check a configuration file.
//!
//! ```text
//! iax2-gateway run --config site-a.yaml     # until SIGINT or SIGTERM
//! iax2-gateway check-config site-a.yaml     # exit 0 if valid, 1 if not
//! ```
//!
//! Exit codes: 0 after a clean stop or a valid file; 1 for an invalid file
//! (`check-config`) or a failure to start; 2 when `run` cannot load its
//! configuration. Logs go to stderr; `RUST_LOG` filters them (default
//! `info`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;
use trunk_core::relay::{CounterSnapshot, DropReason};

/// The iax2-trunk gateway: an IAX2 trunking relay between PBX sites.
#[derive(Debug, Parser)]
#[command(name = "iax2-gateway", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway until SIGINT or SIGTERM.
    Run(ConfigFile),
    /// Check a configuration file and exit (0: valid, 1: not).
    CheckConfig(ConfigFile),
}

/// The configuration file, as a positional argument or with `--config`.
#[derive(Debug, Args)]
struct ConfigFile {
    /// The configuration file (YAML).
    #[arg(value_name = "FILE", required_unless_present = "config")]
    file: Option<PathBuf>,
    /// The configuration file (YAML), as an option.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    config: Option<PathBuf>,
}

impl ConfigFile {
    fn path(&self) -> &Path {
        // clap requires one of the two; the fallback is never used.
        self.file
            .as_deref()
            .or(self.config.as_deref())
            .unwrap_or_else(|| Path::new(""))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(file) => run(file.path()),
        Command::CheckConfig(file) => check_config(file.path()),
    }
}

fn check_config(path: &Path) -> ExitCode {
    match iax2_config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} peers, {} routes)",
                path.display(),
                config.peers.len(),
                config.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path) -> ExitCode {
    init_logging();
    let config = match iax2_config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Before starting, so a signal during start-up is not lost and does
    // not kill the process half-way.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let gateway = match iax2_gateway::start(&config) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot start the gateway");
            return ExitCode::FAILURE;
        }
    };
    let signal = signals.forever().next();
    tracing::info!(signal = signal.map(signal_name), "stopping");
    let counters = gateway.stop();
    log_final(&counters);
    ExitCode::SUCCESS
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "other",
    }
}

fn log_final(c: &CounterSnapshot) {
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| c.drops(**r) > 0)
        .map(|r| format!("{}={}", r.label(), c.drops(*r)))
        .collect();
    tracing::info!(
        rx_datagrams = c.rx_datagrams,
        tx_datagrams = c.tx_datagrams,
        rx_trunk_frames = c.rx_trunk_frames,
        tx_trunk_frames = c.tx_trunk_frames,
        calls_created = c.calls_created,
        calls_ended = c.calls_ended,
        calls_reaped = c.calls_reaped,
        drops = if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(" ")
        },
        "gateway stopped"
    );
}
