//! `iax2-gateway`: run the gateway, or check a configuration file.
//!
//! ```text
//! iax2-gateway run --config site-a.yaml     # until SIGTERM (drain) or SIGINT
//! iax2-gateway check-config site-a.yaml     # exit 0 if valid, 1 if not
//! iax2-gateway status [--json]              # peers, trunks and calls of a running gateway
//! iax2-gateway reload                       # reload a running gateway's file (as SIGHUP)
//! ```
//!
//! Signals to `run`:
//!
//! - SIGTERM drains: new calls are refused (REJECT, cause 42), the calls
//!   in progress go on until none is left in the table or
//!   `timeouts.drain` has passed, then the gateway stops. systemd hears
//!   `STOPPING=1`. A second SIGTERM, or SIGINT, stops at once.
//! - SIGINT stops at once (the calls in progress are cut).
//! - SIGHUP reloads the configuration file: it is validated first (a file
//!   that does not validate is refused with check-config's error, and the
//!   running configuration stays); peers, routes and timers change at once
//!   and the calls in progress go on. The log says what changed and what
//!   applies only to new calls. systemd hears `RELOADING=1`, then
//!   `READY=1`.
//!
//! `status` and `reload` talk to the admin listener (`admin.listen`, by
//! default 127.0.0.1:9569): `--admin ADDR`, or `--config FILE` to read it
//! from the gateway's file.
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
use iax2_gateway::admin::AdminServer;
use iax2_gateway::lifecycle::notify;
use iax2_gateway::reload::reload_file;
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
    /// Show a running gateway's peers, trunks and calls.
    Status(StatusArgs),
    /// Make a running gateway reload its configuration file (as SIGHUP).
    Reload(AdminTarget),
}

/// Which running gateway to ask.
#[derive(Debug, Args)]
struct AdminTarget {
    /// Its admin listener.
    #[arg(long, value_name = "ADDR", conflicts_with = "config")]
    admin: Option<std::net::SocketAddr>,
    /// Its configuration file, to read `admin.listen` from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl AdminTarget {
    fn addr(&self) -> Result<std::net::SocketAddr, String> {
        if let Some(a) = self.admin {
            return Ok(a);
        }
        match &self.config {
            None => Ok(iax2_config::AdminSettings::DEFAULT_LISTEN),
            Some(path) => iax2_config::load(path)
                .map_err(|e| e.to_string())?
                .admin
                .listen
                .ok_or_else(|| {
                    format!(
                        "{}: the admin listener is off (admin.listen: none)",
                        path.display()
                    )
                }),
        }
    }
}

/// `status`'s arguments.
#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    target: AdminTarget,
    /// Print the JSON document instead of tables.
    #[arg(long)]
    json: bool,
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
        Command::Status(args) => status(&args),
        Command::Reload(target) => reload(&target),
    }
}

fn status(args: &StatusArgs) -> ExitCode {
    let result = args.target.addr().and_then(|addr| {
        let body = iax2_gateway::admin::client::get(addr, "/status")?;
        if args.json {
            return Ok(body);
        }
        let doc: iax2_gateway::admin::status::Status =
            serde_json::from_str(&body).map_err(|e| format!("{addr}/status: {e}"))?;
        Ok(iax2_gateway::admin::status::render(&doc))
    });
    match result {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn reload(target: &AdminTarget) -> ExitCode {
    match target
        .addr()
        .and_then(|addr| iax2_gateway::admin::client::post(addr, "/reload"))
    {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
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
    let state = gateway.admin_state();
    let admin_listen = config.admin.listen;
    let reload_now = {
        let path = args.file.path().to_owned();
        let state = std::sync::Arc::downgrade(&state);
        move || -> Result<String, String> {
            let state = state.upgrade().ok_or("the gateway is stopping")?;
            reload_file(&path, &state, admin_listen).map(|r| r.to_string())
        }
    };
    let reload_hook: iax2_gateway::admin::ReloadHook = Box::new(reload_now.clone());
    state.set_reload_hook(reload_hook);
    // A gateway without its admin listener still relays: say so loudly,
    // and go on.
    let _admin = admin_listen.and_then(|listen| {
        AdminServer::start(listen, std::sync::Arc::clone(&state))
            .map_err(|e| tracing::error!(listen = %listen, error = %e, "no admin listener: metrics, status and reload over HTTP are unavailable"))
            .ok()
    });
    notify::ready(gateway.workers());
    let on_sighup = || {
        let _ = reload_now();
    };
    let signal = wait_for_stop(&mut signals, &on_sighup);
    tracing::info!(signal = signal_name(signal), "stopping");
    if signal == SIGTERM {
        // The deadline of the configuration in force (the last reload).
        let deadline = gateway.relay().timeouts().drain;
        drain(&gateway, deadline, &mut signals, &on_sighup);
    }
    let counters = gateway.stop();
    log_final(&counters);
    ExitCode::SUCCESS
}

/// Waits for SIGTERM or SIGINT and returns it; SIGHUP reloads meanwhile.
fn wait_for_stop(signals: &mut Signals, on_sighup: &dyn Fn()) -> i32 {
    loop {
        match signals.forever().next() {
            Some(SIGHUP) => on_sighup(),
            Some(signal) => return signal,
            // The iterator ends only when closed, which nothing does.
            None => return SIGTERM,
        }
    }
}

/// The drain after SIGTERM: new calls are refused, and the gateway waits
/// until no call is left or `deadline` has passed. A second SIGTERM, or
/// SIGINT, ends the wait at once.
fn drain(gateway: &GatewayHandle, deadline: Duration, signals: &mut Signals, on_sighup: &dyn Fn()) {
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
                on_sighup();
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
