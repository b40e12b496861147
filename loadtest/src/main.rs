//! `loadtest`: the iax2-trunk call-load generator. See `loadtest --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use iax2_loadtest::flood;
use iax2_loadtest::impair::{cmd as impair, JitterShape, ProxyConfig, Rate, Settings};
use iax2_loadtest::load::{answer, bench, demo, run, soak};
use iax2_loadtest::Codec;

/// Call-load generator for IAX2: plays both PBXs, drives calls through a
/// gateway pair or any IAX2 peer, and measures loss, latency, jitter and
/// setup time.
#[derive(Parser, Debug)]
#[command(name = "loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CodecArg {
    Ulaw,
    Alaw,
    Gsm,
    G729,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::Ulaw => Self::Ulaw,
            CodecArg::Alaw => Self::Alaw,
            CodecArg::Gsm => Self::Gsm,
            CodecArg::G729 => Self::G729,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a gateway pair and two emulated PBXs on loopback and carry calls.
    Demo {
        /// Concurrent calls.
        #[arg(long, default_value_t = 300)]
        calls: usize,
        /// Seconds from the first NEW to the hangup.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Voice codec (payload sizes; the payload is test data).
        #[arg(long, value_enum, default_value_t = CodecArg::Ulaw)]
        codec: CodecArg,
        /// Voice frame interval, milliseconds.
        #[arg(long, default_value_t = 20)]
        ptime: u32,
        /// Calls originated per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Threads per emulated PBX.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a pcap of the WAN leg here (first 3 s, then signalling).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Seconds between the DTMF digits each call sends (0: none).
        #[arg(long, default_value_t = 5.0)]
        dtmf_every: f64,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Originate calls against any IAX2 peer (a gateway, or an Asterisk).
    Run {
        /// The peer's address.
        #[arg(long)]
        target: SocketAddr,
        /// Concurrent calls.
        #[arg(long)]
        calls: usize,
        /// Calls originated per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Seconds from the first NEW to the hangup.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// USERNAME sent in NEW.
        #[arg(long, default_value = "loadtest")]
        username: String,
        /// MD5 secret for AUTHREQ.
        #[arg(long)]
        secret: Option<String>,
        /// The number called.
        #[arg(long, default_value = "2001")]
        number: String,
        /// Voice codec.
        #[arg(long, value_enum, default_value_t = CodecArg::Ulaw)]
        codec: CodecArg,
        /// Voice frame interval, milliseconds.
        #[arg(long, default_value_t = 20)]
        ptime: u32,
        /// Local address to send from.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddr,
        /// Threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds between the DTMF digits each call sends (0: none).
        #[arg(long, default_value_t = 0.0)]
        dtmf_every: f64,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Answer calls (the terminating side alone) until interrupted.
    Answer {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Send each voice frame back instead of generating voice.
        #[arg(long)]
        echo: bool,
        /// Demand MD5 authentication with this secret.
        #[arg(long)]
        secret: Option<String>,
        /// Demand a call token (Asterisk's requirecalltoken=yes).
        #[arg(long)]
        calltoken: bool,
        /// Voice codec.
        #[arg(long, value_enum, default_value_t = CodecArg::Ulaw)]
        codec: CodecArg,
        /// Voice frame interval, milliseconds.
        #[arg(long, default_value_t = 20)]
        ptime: u32,
        /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<u64>,
        /// Threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Accept registrations from this user (NAME:SECRET, MD5); repeat
        /// for more users.
        #[arg(long = "user", value_parser = answer::parse_user)]
        users: Vec<(String, String)>,
    },
    /// Ramp concurrent calls through the gateway pair and through a bare
    /// UDP forwarder pair, and compare the most calls each carries.
    Bench {
        /// Largest step.
        #[arg(long, default_value_t = 4000)]
        max_calls: usize,
        /// Calls added per step.
        #[arg(long, default_value_t = 100)]
        step: usize,
        /// Seconds measured per step.
        #[arg(long, default_value_t = 5)]
        window: u64,
        /// Threads per emulated PBX.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write an SVG plot of loss and p99 latency against calls here.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Ramps per system, alternating; the median max_calls is reported.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Worker threads per gateway (default: the example configuration's, 2).
        #[arg(long)]
        workers: Option<usize>,
        /// Gateways without segmented sends (UDP GSO): `udp_gso: false`.
        #[arg(long)]
        no_gso: bool,
        /// The baseline forwarders with segmented sends too (default: a
        /// bare sendmmsg relay).
        #[arg(long)]
        forwarder_gso: bool,
    },
    /// Keep about N calls up through two `iax2-gateway run` processes for
    /// a long time, calls starting and ending all the time; sample their
    /// memory and call tables, and check nothing leaks or sticks.
    Soak {
        /// Calls kept up.
        #[arg(long, default_value_t = 800)]
        calls: usize,
        /// Minutes of origination (then the calls up end at their time).
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Shortest hold of a call, seconds.
        #[arg(long, default_value_t = 20.0)]
        hold_min: f64,
        /// Longest hold of a call, seconds.
        #[arg(long, default_value_t = 90.0)]
        hold_max: f64,
        /// Most calls originated per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seed of the holds.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10.0)]
        sample_every: f64,
        /// Warm-up seconds, after which RSS must stay flat (default: a
        /// third of the run, at most 300).
        #[arg(long)]
        warmup: Option<f64>,
        /// Largest RSS growth after the warm-up, percent.
        #[arg(long, default_value_t = 10.0)]
        rss_limit_pct: f64,
        /// Seconds the gateways get to empty their call tables once every
        /// call has ended.
        #[arg(long, default_value_t = 20.0)]
        grace: f64,
        /// The iax2-gateway binary (default: next to this one).
        #[arg(long)]
        gateway_bin: Option<PathBuf>,
        /// Threads per emulated PBX.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds between the DTMF digits each call sends (0: none).
        #[arg(long, default_value_t = 10.0)]
        dtmf_every: f64,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No line per sample.
        #[arg(long)]
        quiet: bool,
    },
    /// Relay UDP between clients and an upstream address with seeded
    /// loss, burst loss, reordering, duplication, delay, jitter and a rate
    /// limit (each client source gets an upstream socket of its own).
    Impair {
        /// Where clients send.
        #[arg(long)]
        listen: SocketAddr,
        /// Where their datagrams go.
        #[arg(long)]
        upstream: SocketAddr,
        /// Independent loss, percent.
        #[arg(long, value_parser = impair::parse_pct, default_value = "0")]
        loss: f64,
        /// Burst loss (Gilbert-Elliott): P(good to bad), P(bad to good),
        /// loss in the bad state, percent each.
        #[arg(long, value_name = "P_GB,P_BG,LOSS", value_parser = impair::parse_burst)]
        burst: Option<iax2_loadtest::impair::Burst>,
        /// Datagrams held back by --reorder-delay, percent.
        #[arg(long, value_parser = impair::parse_pct, default_value = "0")]
        reorder: f64,
        /// How long a reordered datagram is held back, milliseconds.
        #[arg(long, default_value_t = 50)]
        reorder_delay: u64,
        /// Datagrams delivered twice, percent.
        #[arg(long, value_parser = impair::parse_pct, default_value = "0")]
        duplicate: f64,
        /// Fixed one-way delay, milliseconds.
        #[arg(long, default_value_t = 0)]
        delay: u64,
        /// Jitter added to the delay, 0 to this many milliseconds.
        #[arg(long, default_value_t = 0)]
        jitter: u64,
        /// Bell-shaped jitter instead of uniform.
        #[arg(long)]
        normal_jitter: bool,
        /// Rate limit each way: datagrams per second (N or Npps) or bytes
        /// per second (NB, NkB, NMB).
        #[arg(long, value_name = "PPS|BYTES", value_parser = impair::parse_rate)]
        rate: Option<Rate>,
        /// Datagrams that may wait for the rate limit; more are dropped.
        #[arg(long, default_value_t = 1000)]
        rate_queue: usize,
        /// Impair only the direction towards the upstream.
        #[arg(long)]
        one_way: bool,
        /// Seed of the decisions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<u64>,
        /// Write the JSON summary here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No counters every second.
        #[arg(long)]
        quiet: bool,
    },
    /// Flood a gateway: NEWs, malformed datagrams, trunk frames from a
    /// stranger, or DTMF inside one call; stops by itself and reports the
    /// datagrams sent and the rate achieved.
    Flood {
        /// What to send.
        #[arg(long, value_enum)]
        kind: FloodKindArg,
        /// The gateway's address.
        #[arg(long)]
        target: SocketAddr,
        /// Datagrams per second.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        /// How long, seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Source sockets on ephemeral ports of --bind-ip (new,
        /// malformed, stranger-trunk).
        #[arg(long, default_value_t = 128)]
        sources: usize,
        /// Address the source sockets bind to.
        #[arg(long, default_value = "127.0.0.1")]
        bind_ip: std::net::IpAddr,
        /// Send from this one address instead (a peer's); required for
        /// dtmf, whose call is placed from it.
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// The number called (new, dtmf).
        #[arg(long, default_value = "2001")]
        number: String,
        /// MD5 secret of the dtmf flood's call.
        #[arg(long)]
        secret: Option<String>,
        /// Seed of the malformed mix and the trunk frames.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FloodKindArg {
    New,
    Malformed,
    StrangerTrunk,
    Dtmf,
}

fn write_json<T: serde::Serialize>(path: Option<&PathBuf>, value: &T) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// `secs` as an interval; zero, negative or not a number: none.
fn interval(secs: f64) -> Option<Duration> {
    (secs > 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

/// Prints a `demo` or `run` report and writes its JSON; whether every
/// call was answered.
fn finish_run(
    r: &iax2_loadtest::load::report::RunReport,
    json: Option<&PathBuf>,
) -> Result<bool, String> {
    print!("{}", r.table());
    write_json(json, r)?;
    Ok(r.calls.failed == 0)
}

/// Runs `loadtest soak` with `secs` = [duration, hold min, hold max,
/// sample interval, grace]; stops early (and still checks) at SIGINT or
/// SIGTERM, and exits at a second one.
fn soak_command(
    mut opts: soak::SoakOptions,
    secs: [f64; 5],
    warmup: Option<f64>,
    json: Option<&PathBuf>,
) -> Result<bool, String> {
    let d = |s: f64| {
        Duration::try_from_secs_f64(s).map_err(|_| format!("soak: {s}: not a number of seconds"))
    };
    let [duration, hold_min, hold_max, sample_every, grace] = secs;
    opts.duration = d(duration)?;
    opts.hold_min = d(hold_min)?;
    opts.hold_max = d(hold_max)?;
    opts.sample_every = d(sample_every)?;
    opts.grace = d(grace)?;
    opts.warmup = warmup.map(d).transpose()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| format!("soak: {e}"))?;
    }
    opts.stop = Some(stop);
    let r = soak::soak(&opts).map_err(|e| format!("soak: {e}"))?;
    print!("{}", r.table());
    write_json(json, &r)?;
    Ok(r.pass)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            calls,
            duration,
            codec,
            ptime,
            rate,
            threads,
            json,
            pcap,
            dtmf_every,
            quiet,
        } => demo::demo(&demo::DemoOptions {
            calls,
            duration: Duration::from_secs(duration),
            rate,
            codec: codec.into(),
            ptime_ms: ptime,
            threads,
            progress: !quiet,
            pcap,
            dtmf_interval: interval(dtmf_every),
        })
        .map_err(|e| format!("demo: {e}"))
        .and_then(|r| finish_run(&r, json.as_ref())),
        Command::Run {
            target,
            calls,
            rate,
            duration,
            username,
            secret,
            number,
            codec,
            ptime,
            bind,
            threads,
            dtmf_every,
            json,
            quiet,
        } => run::run_against(&run::RunOptions {
            target,
            calls,
            rate,
            duration: Duration::from_secs(duration),
            username,
            secret,
            number,
            codec: codec.into(),
            ptime_ms: ptime,
            bind,
            threads,
            progress: !quiet,
            dtmf_interval: interval(dtmf_every),
        })
        .map_err(|e| format!("run: {e}"))
        .and_then(|r| finish_run(&r, json.as_ref())),
        Command::Answer {
            listen,
            echo,
            secret,
            calltoken,
            codec,
            ptime,
            duration,
            threads,
            users,
        } => answer::answer(&answer::AnswerOptions {
            listen,
            echo,
            secret,
            calltoken,
            codec: codec.into(),
            ptime_ms: ptime,
            duration: duration.map(Duration::from_secs),
            threads,
            users,
        })
        .map_err(|e| format!("answer: {e}"))
        .map(|()| true),
        Command::Bench {
            max_calls,
            step,
            window,
            threads,
            json,
            plot,
            repeat,
            workers,
            no_gso,
            forwarder_gso,
        } => bench::bench(&bench::BenchOptions {
            max_calls,
            step,
            window: Duration::from_secs(window),
            threads,
            plot,
            repeat,
            workers,
            gateway_gso: !no_gso,
            forwarder_gso,
            ..bench::BenchOptions::default()
        })
        .map_err(|e| format!("bench: {e}"))
        .and_then(|r| {
            print!("{}", r.table());
            write_json(json.as_ref(), &r)?;
            Ok(true)
        }),
        Command::Soak {
            calls,
            minutes,
            hold_min,
            hold_max,
            rate,
            seed,
            sample_every,
            warmup,
            rss_limit_pct,
            grace,
            gateway_bin,
            threads,
            dtmf_every,
            json,
            quiet,
        } => soak_command(
            soak::SoakOptions {
                gateway_bin: gateway_bin.unwrap_or_else(soak::default_gateway_bin),
                calls,
                rate,
                seed,
                rss_limit_pct,
                threads,
                dtmf_interval: interval(dtmf_every),
                progress: !quiet,
                ..soak::SoakOptions::default()
            },
            [minutes * 60.0, hold_min, hold_max, sample_every, grace],
            warmup,
            json.as_ref(),
        ),
        Command::Impair {
            listen,
            upstream,
            loss,
            burst,
            reorder,
            reorder_delay,
            duplicate,
            delay,
            jitter,
            normal_jitter,
            rate,
            rate_queue,
            one_way,
            seed,
            duration,
            json,
            quiet,
        } => {
            let settings = Settings {
                loss,
                burst,
                reorder,
                reorder_delay: Duration::from_millis(reorder_delay),
                duplicate,
                delay: Duration::from_millis(delay),
                jitter: Duration::from_millis(jitter),
                jitter_shape: if normal_jitter {
                    JitterShape::Normal
                } else {
                    JitterShape::Uniform
                },
                rate,
                bucket: 0,
                rate_queue,
            };
            let mut config = ProxyConfig::new(listen, upstream, settings);
            if one_way {
                config.to_client = Settings::default();
            }
            config.seed = seed;
            config.run_for = duration.map(Duration::from_secs);
            impair::impair(&config, quiet)
                .map_err(|e| format!("impair: {e}"))
                .and_then(|r| {
                    print!("{}", r.table());
                    write_json(json.as_ref(), &r)?;
                    Ok(true)
                })
        }
        Command::Flood {
            kind,
            target,
            rate,
            seconds,
            sources,
            bind_ip,
            bind,
            number,
            secret,
            seed,
            json,
        } => {
            let kind = match kind {
                FloodKindArg::New => flood::Kind::New,
                FloodKindArg::Malformed => flood::Kind::Malformed,
                FloodKindArg::StrangerTrunk => flood::Kind::StrangerTrunk,
                FloodKindArg::Dtmf => flood::Kind::Dtmf,
            };
            let duration = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO);
            let mut opts = flood::FloodOptions::new(kind, target, rate, duration);
            opts.sources = sources;
            opts.bind_ip = bind_ip;
            opts.bind = bind;
            opts.called = number;
            opts.secret = secret;
            opts.seed = seed;
            flood::flood(&opts)
                .map_err(|e| format!("flood: {e}"))
                .and_then(|r| {
                    print!("{}", r.table());
                    write_json(json.as_ref(), &r)?;
                    Ok(r.call.as_ref().is_none_or(|c| c.answered && c.hung_up))
                })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}
