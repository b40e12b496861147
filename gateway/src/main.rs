//! `iax2-gateway`: run the gateway, or check a configuration file.
//!
//! ```text
//! iax2-gateway run --config site-a.yaml     # until SIGTERM (drain) or SIGINT
//! iax2-gateway check-config site-a.yaml     # exit 0 if valid, 1 if not
//! ```
//!
//! Signals to `run`:
//!
//! - SIGTERM drains: new calls are refused (REJECT, cause 42), the calls
//!   in progress go on until none is left in the table or
//!   `timeouts.drain` has passed, then the gateway stops. systemd hears
//!   `STOPPING=1`. A second SIGTERM, or SIGINT, stops at once.
//! - SIGINT stops at once (the calls in progress are cut).
//! - SIGHUP is caught and logged: reload is not supported yet.
//!
//! Exit codes: 0 after a stop by signal (drained or not) or a valid file;
//! 1 for an invalid file (`check-config`) or a failure to start; 2 when
//! `run` cannot load its configuration. Logs go to stderr, as the file's
//! `log:` says (`--log-format` overrides the format, `RUST_LOG` the
//! level); a configuration error is printed as one plain line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use iax2_config::{LogFormat, LogLevel};
use iax2_gateway::lifecycle::notify;
use iax2_gateway::{DrainEnd, GatewayHandle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
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
    /// Run the gateway: SIGTERM drains then stops, SIGINT stops at once.
    Run(RunArgs),
    /// Check a configuration file and exit (0: valid, 1: not).
    CheckConfig(ConfigFile),
}

/// `run`'s arguments.
#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// The log format, over the file's `log.format`: human or json (one
    /// JSON object per line).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> Self {
        match arg {
            LogFormatArg::Human => Self::Human,
            LogFormatArg::Json => Self::Json,
        }
    }
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
        Command::Run(args) => run(&args),
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

fn run(args: &RunArgs) -> ExitCode {
    let config = match iax2_config::load(args.file.path()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let format = args.log_format.map_or(config.log.format, LogFormat::from);
    init_logging(format, config.log.level);
    // Before starting, so a signal during start-up is not lost and does
    // not kill the process half-way (SIGHUP's default action included).
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
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
    notify::ready(gateway.workers());
    let signal = wait_for_stop(&mut signals);
    tracing::info!(signal = signal_name(signal), "stopping");
    if signal == SIGTERM {
        drain(&gateway, config.timeouts.drain, &mut signals);
    }
    let counters = gateway.stop();
    log_final(&counters);
    ExitCode::SUCCESS
}

/// Waits for SIGTERM or SIGINT and returns it; SIGHUP goes to the reload
/// hook meanwhile.
fn wait_for_stop(signals: &mut Signals) -> i32 {
    loop {
        match signals.forever().next() {
            Some(SIGHUP) => reload_hook(),
            Some(signal) => return signal,
            // The iterator ends only when closed, which nothing does.
            None => return SIGTERM,
        }
    }
}

/// RELOAD HOOK: SIGHUP is to reload the configuration without dropping
/// calls (DESIGN.md, "Operating it"), with `RELOADING=1` to systemd. Until
/// then the signal is caught, so it does not kill the gateway, and logged.
fn reload_hook() {
    tracing::warn!(
        signal = "SIGHUP",
        "reload not supported yet; configuration unchanged"
    );
}

/// The drain after SIGTERM: new calls are refused, and the gateway waits
/// until no call is left or `deadline` has passed. A second SIGTERM, or
/// SIGINT, ends the wait at once.
fn drain(gateway: &GatewayHandle, deadline: Duration, signals: &mut Signals) {
    let calls = gateway.begin_drain();
    tracing::info!(
        calls,
        deadline_s = deadline.as_secs(),
        "draining: new calls are refused until the calls in progress end"
    );
    notify::stopping(calls);
    let (mut shown, mut shown_at) = (calls, Instant::now());
    let outcome = gateway.drain_until(deadline, |left| {
        if left != shown && shown_at.elapsed() >= Duration::from_secs(1) {
            notify::status(&notify::draining_status(left));
            (shown, shown_at) = (left, Instant::now());
        }
        let mut stop = false;
        for signal in signals.pending() {
            if signal == SIGHUP {
                reload_hook();
            } else {
                tracing::info!(
                    signal = signal_name(signal),
                    calls_left = left,
                    "stopping now: drain cut short"
                );
                stop = true;
            }
        }
        stop
    });
    let waited_ms = u64::try_from(outcome.waited.as_millis()).unwrap_or(u64::MAX);
    match outcome.end {
        DrainEnd::Drained => tracing::info!(waited_ms, "drained: no call left"),
        DrainEnd::Deadline => tracing::warn!(
            calls_left = outcome.calls_left,
            deadline_s = deadline.as_secs(),
            "drain deadline passed; the calls left are cut"
        ),
        DrainEnd::Interrupted => tracing::warn!(
            calls_left = outcome.calls_left,
            waited_ms,
            "drain interrupted; the calls left are cut"
        ),
    }
}

/// Logs to stderr in `format`, up to `level`; `RUST_LOG`, when set and
/// valid, overrides the level (and may filter per module).
fn init_logging(format: LogFormat, level: LogLevel) {
    // An empty RUST_LOG counts as unset.
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV)
        .filter(|v| !v.is_empty())
        .map(|_| EnvFilter::try_from_default_env());
    let (filter, bad_env) = match from_env {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new(level.as_str()), Some(e)),
        None => (EnvFilter::new(level.as_str()), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // No colour codes in journald or a log file.
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line, the event's fields at the top level.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(e) = bad_env {
        tracing::warn!(error = %e, level = level.as_str(), "RUST_LOG ignored; using the file's log.level");
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
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
