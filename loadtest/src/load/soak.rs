//! `loadtest soak`: two real `iax2-gateway run` processes carrying about
//! N calls for a long time, calls starting and ending all the time, and
//! the checks that nothing leaks or sticks.
//!
//! ```text
//! PBX A (this process) --> iax2-gateway A --> iax2-gateway B --> PBX B (this process)
//! ```
//!
//! The gateways run the example configurations (`config/examples/`) with
//! free loopback ports, written to a temporary directory; their logs go
//! there too. PBX B demands a call token and MD5, as in `demo`. PBX A keeps
//! about [`SoakOptions::calls`] calls up: each call holds for a random
//! (seeded) time between [`SoakOptions::hold_min`] and
//! [`SoakOptions::hold_max`], its voice stops a moment before its hangup
//! (so that no frame of its own is still on the way when it ends), and a
//! new call starts as one ends. Every [`SoakOptions::sample_every`] the run
//! samples each gateway's resident memory (`/proc/PID/status`), CPU and
//! call table (`iax2_gateway_call_numbers_in_use` from `/metrics`), and
//! the PBXs' counters.
//!
//! At the end it stops originating, lets the calls up end at their time,
//! waits for both PBXs to release them, then gives the gateways
//! [`SoakOptions::grace`] to empty their tables (a hung-up call lingers
//! `hangup_linger`, 10 s, for the last ACKs). The verdict fails on an
//! entry left in a gateway's table (a stuck call), a call left at a PBX,
//! a call that failed to set up or was cut, or resident memory that grew
//! after the warm-up by more than [`SoakOptions::rss_limit_pct`].
//!
//! Every child process is stopped on every way out: at the end, on an
//! error, when a panic unwinds (the guard's `Drop`), and when this process
//! dies (the children ask the kernel for SIGKILL when their parent thread
//! exits, `PR_SET_PDEATHSIG`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::{self, CpuSnapshot};
use crate::driver::DriverGroup;
use crate::endpoint::measure::quantile_ms;
use crate::endpoint::{CallId, CallState, Codec, EndReason, EndpointStats};
use crate::load::demo::{rewrite, PbxSpec, SITE_A, SITE_B};
use crate::load::report::round3;
use crate::rng::SplitMix64;

/// The admin listeners of the example configurations, replaced by free
/// ports.
const EXAMPLE_ADMIN: [&str; 2] = ["127.0.0.1:19569", "127.0.0.1:29569"];

/// How long before its hangup a call stops sending voice: longer than a
/// trunk tick (20 ms) and the way through both gateways, so the frames it
/// sent arrive before its HANGUP does.
const MUTE_LEAD: Duration = Duration::from_millis(300);

/// How the soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The `iax2-gateway` binary.
    pub gateway_bin: PathBuf,
    /// Calls kept up.
    pub calls: usize,
    /// How long calls are originated.
    pub duration: Duration,
    /// Shortest hold of a call (answer to hangup, about).
    pub hold_min: Duration,
    /// Longest hold.
    pub hold_max: Duration,
    /// Most calls originated per second (the ramp; replacements are
    /// spread by the holds).
    pub rate: f64,
    /// Seed of the holds.
    pub seed: u64,
    /// Time between two samples.
    pub sample_every: Duration,
    /// The warm-up, after which resident memory must stay flat; `None`: a
    /// third of the run, at most 5 minutes.
    pub warmup: Option<Duration>,
    /// Largest growth of a gateway's resident memory after the warm-up
    /// (the highest sample after it against the sample that ends it), in
    /// percent of the latter.
    pub rss_limit_pct: f64,
    /// How long the gateways get to empty their tables once every call
    /// has ended at both PBXs.
    pub grace: Duration,
    /// Threads per emulated PBX.
    pub threads: usize,
    /// Each call sends a DTMF digit this often (`None`: none).
    pub dtmf_interval: Option<Duration>,
    /// Print a line per sample to stderr.
    pub progress: bool,
    /// Set from outside (SIGINT, SIGTERM) to end the run early: the calls
    /// up are hung up at once and the checks still run.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for SoakOptions {
    /// 800 calls for 30 minutes, holds of 20 to 90 s, the gateway binary
    /// next to this one.
    fn default() -> Self {
        Self {
            gateway_bin: default_gateway_bin(),
            calls: 800,
            duration: Duration::from_secs(30 * 60),
            hold_min: Duration::from_secs(20),
            hold_max: Duration::from_secs(90),
            rate: 100.0,
            seed: 1,
            sample_every: Duration::from_secs(10),
            warmup: None,
            rss_limit_pct: 10.0,
            grace: Duration::from_secs(20),
            threads: 2,
            dtmf_interval: Some(Duration::from_secs(10)),
            progress: true,
            stop: None,
        }
    }
}

/// `iax2-gateway` in the directory of the running executable (where cargo
/// puts both binaries).
pub fn default_gateway_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("iax2-gateway")))
        .unwrap_or_else(|| PathBuf::from("iax2-gateway"))
}

impl SoakOptions {
    /// The warm-up in force.
    pub fn warmup(&self) -> Duration {
        self.warmup
            .unwrap_or_else(|| (self.duration / 3).min(Duration::from_secs(300)))
    }

    fn check(&self) -> io::Result<()> {
        let bad = |m: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, m.to_owned()));
        if self.calls == 0 {
            return bad("--calls must be at least 1");
        }
        if self.hold_min < MUTE_LEAD * 2 || self.hold_max < self.hold_min {
            return bad("the holds must be at least 0.6 s and --hold-min at most --hold-max");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("--rate must be above 0");
        }
        if self.sample_every < Duration::from_millis(100) {
            return bad("--sample-every must be at least 0.1 s");
        }
        if !(self.rss_limit_pct.is_finite() && self.rss_limit_pct >= 0.0) {
            return bad("--rss-limit-pct must be 0 or more");
        }
        if !self.gateway_bin.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no such file (build it: cargo build --release -p iax2-gateway, or give --gateway-bin)",
                    self.gateway_bin.display()
                ),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------

/// One sample of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the first NEW.
    pub t_s: f64,
    /// Gateway A's resident memory, KiB.
    pub rss_a_kib: u64,
    /// Gateway B's resident memory, KiB.
    pub rss_b_kib: u64,
    /// Entries in gateway A's call table (call numbers in use).
    pub table_a: u64,
    /// Entries in gateway B's call table.
    pub table_b: u64,
    /// Calls up at PBX A (answered, not yet hung up).
    pub calls_up: u64,
    /// Calls originated so far.
    pub started: u64,
    /// Calls answered and hung up at their time so far.
    pub completed: u64,
    /// Calls that failed to set up, or were cut, so far.
    pub failed: u64,
    /// Voice loss since the previous sample (gaps in what the PBXs
    /// received, over what they received and missed).
    pub loss_ratio: f64,
    /// CPU of both gateway processes since the previous sample, in cores.
    pub gateway_cores: f64,
    /// CPU of this process (the emulated PBXs) since the previous sample,
    /// in cores.
    pub generator_cores: f64,
    /// The machine's busy share since the previous sample, 0 to 1.
    pub machine_busy: f64,
    /// The machine's one-minute load average.
    pub load_avg: f64,
}

/// One gateway's resident memory over the run, KiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rss {
    /// Before the first call.
    pub idle_kib: u64,
    /// At the first sample at or after the warm-up.
    pub warmup_kib: u64,
    /// At the last sample with calls up (the end of the loaded phase).
    pub end_kib: u64,
    /// Highest sample from the warm-up to the end of the loaded phase.
    pub max_kib: u64,
    /// `max_kib - warmup_kib`: what the verdict checks.
    pub growth_kib: i64,
    /// The same in percent of `warmup_kib`.
    pub growth_pct: f64,
    /// `end_kib - warmup_kib`.
    pub end_growth_kib: i64,
    /// Least-squares slope of the samples after the warm-up, KiB per hour.
    pub slope_kib_per_hour: f64,
    /// Once every call had ended.
    pub after_drain_kib: u64,
}

/// Calls of the run, as PBX A saw them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakCalls {
    /// NEWs sent.
    pub started: u64,
    /// Answered.
    pub answered: u64,
    /// Answered, held and hung up by PBX A at their time.
    pub completed: u64,
    /// Never answered: rejected, timed out, or still not up at their
    /// hangup time.
    pub setup_failures: u64,
    /// Answered, then ended otherwise than by PBX A's hangup.
    pub dropped: u64,
    /// Setup failures and dropped calls by how they ended.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// The first 20 of them, with what PBX A knew of the call.
    pub failure_details: Vec<String>,
    /// Most calls up at once (answered, not hung up) at a sample.
    pub max_up: u64,
    /// Calls PBX B answered.
    pub answered_by_b: u64,
    /// Calls that failed at PBX B (no ACK for its frames, bad call token
    /// or MD5).
    pub failed_at_b: u64,
    /// NEW to ANSWER at PBX A, milliseconds: median.
    pub setup_p50_ms: f64,
    /// 99th percentile.
    pub setup_p99_ms: f64,
}

/// What was left at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Leftovers {
    /// Entries in gateway A's table after the grace (stuck calls).
    pub table_a: u64,
    /// The same for gateway B.
    pub table_b: u64,
    /// Calls PBX A still held after the wait for the last hangups.
    pub pbx_a: u64,
    /// The same for PBX B.
    pub pbx_b: u64,
    /// How long the gateways took to empty their tables once the PBXs
    /// had released every call, seconds (the grace when they did not).
    pub table_empty_after_s: f64,
    /// The stuck entries, as `/status` lists them: `kind state age_s
    /// legs` per entry (at most 20 per gateway).
    pub entries: Vec<String>,
}

/// Voice over the whole run, both directions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakMedia {
    /// Frames sent by both PBXs.
    pub sent: u64,
    /// Distinct frames received intact.
    pub received: u64,
    /// Frames that reached a PBX after it had released their call (they
    /// were not lost; their call had ended).
    pub after_end: u64,
    /// `sent - received - after_end`.
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// One-way latency, ms: median.
    pub latency_p50_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// DTMF digits sent and received.
    pub dtmf_sent: u64,
    /// See `dtmf_sent`.
    pub dtmf_received: u64,
}

/// CPU over the loaded phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakCpu {
    /// Both gateway processes, average cores.
    pub gateway_cores: f64,
    /// This process (the emulated PBXs), average cores.
    pub generator_cores: f64,
    /// The machine's busy share, 0 to 1 (others' work included).
    pub machine_busy: f64,
    /// The highest one-minute load average seen.
    pub max_load_avg: f64,
    /// Cores on the machine.
    pub cores: usize,
}

/// Datagrams the kernel dropped at each address's sockets over the run
/// (`/proc/net/udp`), read before the gateways stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelDrops {
    /// PBX A's sockets.
    pub pbx_a: u64,
    /// PBX B's sockets.
    pub pbx_b: u64,
    /// Gateway A's listen sockets.
    pub gateway_a: u64,
    /// Gateway B's listen sockets.
    pub gateway_b: u64,
}

/// The settings of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakSettings {
    /// Calls kept up.
    pub calls: usize,
    /// Seconds of origination.
    pub duration_s: f64,
    /// Hold range, seconds.
    pub hold_min_s: f64,
    /// See `hold_min_s`.
    pub hold_max_s: f64,
    /// Ramp rate, calls per second.
    pub rate: f64,
    /// Seed of the holds.
    pub seed: u64,
    /// Seconds between samples.
    pub sample_every_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// The RSS bound, percent.
    pub rss_limit_pct: f64,
    /// Grace for the tables, seconds.
    pub grace_s: f64,
    /// Worker threads per gateway.
    pub gateway_workers: usize,
}

/// The report of `soak`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakReport {
    /// "soak".
    pub mode: String,
    /// How it ran.
    pub settings: SoakSettings,
    /// Seconds from the first NEW to the last sample.
    pub elapsed_s: f64,
    /// Whether the run stopped early (a signal, a gateway that exited).
    pub stopped_early: Option<String>,
    /// Calls.
    pub calls: SoakCalls,
    /// What was left at the end.
    pub leftovers: Leftovers,
    /// Gateway A's memory.
    pub rss_a: Rss,
    /// Gateway B's memory.
    pub rss_b: Rss,
    /// Voice.
    pub media: SoakMedia,
    /// CPU.
    pub cpu: SoakCpu,
    /// Datagrams the gateways dropped, by reason (both added up).
    pub gateway_drops: BTreeMap<String, u64>,
    /// Datagrams the kernel dropped at the sockets (full receive buffers).
    pub kernel_drops: KernelDrops,
    /// Lines the gateways logged at WARN or ERROR.
    pub gateway_warnings: u64,
    /// The first 10 of them, by gateway.
    pub gateway_warning_lines: Vec<String>,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// Whether every check passed.
    pub pass: bool,
    /// The checks that failed.
    pub failures: Vec<String>,
}

impl SoakReport {
    /// The human summary.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let s = &self.settings;
        let c = &self.calls;
        let l = &self.leftovers;
        let _ = writeln!(
            t,
            "soak: {} calls, holds {:.0}-{:.0} s, {:.1} min ({:.0} s warm-up), seed {}",
            s.calls,
            s.hold_min_s,
            s.hold_max_s,
            s.duration_s / 60.0,
            s.warmup_s,
            s.seed
        );
        if let Some(why) = &self.stopped_early {
            let _ = writeln!(t, "  stopped early: {why}");
        }
        let _ = writeln!(
            t,
            "  calls      started {}  answered {}  completed {}  setup failures {}  dropped {}  max up {}",
            c.started, c.answered, c.completed, c.setup_failures, c.dropped, c.max_up
        );
        for (why, n) in &c.failures_by_reason {
            let _ = writeln!(t, "             {n} {why}");
        }
        for d in &c.failure_details {
            let _ = writeln!(t, "             - {d}");
        }
        let _ = writeln!(
            t,
            "  setup      p50 {:.3} ms  p99 {:.3} ms",
            c.setup_p50_ms, c.setup_p99_ms
        );
        let _ = writeln!(
            t,
            "  left over  gateway tables A {} B {} (empty {:.1} s after the last call ended)  PBX calls A {} B {}",
            l.table_a, l.table_b, l.table_empty_after_s, l.pbx_a, l.pbx_b
        );
        for e in &l.entries {
            let _ = writeln!(t, "             {e}");
        }
        for (name, r) in [("A", &self.rss_a), ("B", &self.rss_b)] {
            let _ = writeln!(
                t,
                "  RSS {name}      idle {} KiB  warm-up {} KiB  end {} KiB  max {} KiB  growth {:+} KiB ({:+.2}%), end {:+} KiB, slope {:+.0} KiB/h  after drain {} KiB",
                r.idle_kib,
                r.warmup_kib,
                r.end_kib,
                r.max_kib,
                r.growth_kib,
                r.growth_pct,
                r.end_growth_kib,
                r.slope_kib_per_hour,
                r.after_drain_kib
            );
        }
        let m = &self.media;
        let _ = writeln!(
            t,
            "  voice      sent {}  received {}  after the call ended {}  lost {} ({:.4}%)  latency p50 {:.3} ms p99 {:.3} ms  DTMF {}/{}",
            m.sent,
            m.received,
            m.after_end,
            m.lost,
            m.loss_ratio * 100.0,
            m.latency_p50_ms,
            m.latency_p99_ms,
            m.dtmf_received,
            m.dtmf_sent
        );
        let p = &self.cpu;
        let _ = writeln!(
            t,
            "  CPU        gateways {:.2} cores  generator {:.2} cores  machine busy {:.0}% of {} cores  max load average {:.2}",
            p.gateway_cores,
            p.generator_cores,
            p.machine_busy * 100.0,
            p.cores,
            p.max_load_avg
        );
        let drops: Vec<String> = self
            .gateway_drops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let k = &self.kernel_drops;
        let _ = writeln!(
            t,
            "  kernel     drops at the sockets: PBX A {}  PBX B {}  gateway A {}  gateway B {}",
            k.pbx_a, k.pbx_b, k.gateway_a, k.gateway_b
        );
        let _ = writeln!(
            t,
            "  gateways   drops: {}  log warnings: {}",
            if drops.is_empty() {
                "none".to_owned()
            } else {
                drops.join(", ")
            },
            self.gateway_warnings
        );
        for w in &self.gateway_warning_lines {
            let _ = writeln!(t, "             {w}");
        }
        if self.pass {
            let _ = writeln!(
                t,
                "  verdict    pass (no stuck calls, tables empty, every call set up and completed, RSS growth after warm-up within {}%)",
                s.rss_limit_pct
            );
        } else {
            let _ = writeln!(t, "  verdict    FAIL");
            for f in &self.failures {
                let _ = writeln!(t, "             {f}");
            }
        }
        t
    }
}

// ---------------------------------------------------------------------
// Gateway processes
// ---------------------------------------------------------------------

/// A running `iax2-gateway run`; dropping it stops it.
#[derive(Debug)]
struct GatewayProcess {
    name: &'static str,
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl GatewayProcess {
    fn spawn(
        bin: &Path,
        name: &'static str,
        config: &Path,
        admin: SocketAddr,
        log: PathBuf,
    ) -> io::Result<Self> {
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
        })?;
        Ok(Self {
            name,
            child,
            admin,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while it runs, else how it ended.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("gateway {} exited ({status})", self.name)),
            Err(e) => Some(format!("gateway {}: {e}", self.name)),
        }
    }

    /// Waits until `/healthz` answers.
    fn wait_ready(&mut self, limit: Duration) -> io::Result<()> {
        let end = Instant::now() + limit;
        loop {
            if let Some(why) = self.exited() {
                return Err(io::Error::other(format!(
                    "{why} before it was ready:\n{}",
                    tail(&self.log, 20)
                )));
            }
            if iax2_gateway::admin::client::get(self.admin, "/healthz").is_ok_and(|b| b == "ok\n") {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(io::Error::other(format!(
                    "gateway {} not ready within {limit:?}:\n{}",
                    self.name,
                    tail(&self.log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory, KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        cpu::parse_vm_rss(&status).map(|b| b / 1024)
    }

    /// User plus system CPU seconds.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        cpu::parse_task_stat(&stat, cpu::clock_ticks_per_second()).map(|(_, s)| s)
    }

    fn metrics(&self) -> Option<Metrics> {
        iax2_gateway::admin::client::get(self.admin, "/metrics")
            .ok()
            .map(|text| Metrics::parse(&text))
    }

    /// The table entries `/status` lists, one line each.
    fn entries(&self, at_most: usize) -> Vec<String> {
        let Ok(text) = iax2_gateway::admin::client::get(self.admin, "/status") else {
            return vec![format!("gateway {}: /status did not answer", self.name)];
        };
        let Ok(status) = serde_json::from_str::<iax2_gateway::admin::status::Status>(&text) else {
            return vec![format!("gateway {}: /status did not parse", self.name)];
        };
        status
            .calls
            .iter()
            .take(at_most)
            .map(|c| {
                format!(
                    "gateway {}: call number {} {} {} age {:.0} s, legs {} ({:?}, {} frames) / {} ({:?}, {} frames)",
                    self.name,
                    c.call_number,
                    c.kind,
                    c.state,
                    c.age_s,
                    c.legs[0].peer,
                    c.legs[0].call_number,
                    c.legs[0].frames,
                    c.legs[1].peer,
                    c.legs[1].call_number,
                    c.legs[1].frames
                )
            })
            .collect()
    }

    /// Lines logged at WARN or ERROR: how many, and the first `keep`.
    fn warnings(&self, keep: usize) -> (u64, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        let first = lines
            .iter()
            .take(keep)
            .map(|l| format!("gateway {}: {l}", self.name))
            .collect();
        (lines.len() as u64, first)
    }

    /// SIGINT (the drain cut short), then SIGKILL if it is still there
    /// after 3 s.
    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child, which has not been waited
            // for (`exited` just saw it running), so the pid is still ours.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks the kernel to SIGKILL the child when the thread that starts it
/// exits, so that no gateway outlives a soak killed outright.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the child between fork and exec and
    // only calls prctl(2), which is async-signal-safe and touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The few gauges and counters the soak reads from `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Metrics {
    call_numbers_in_use: u64,
    drops: BTreeMap<String, u64>,
}

impl Metrics {
    /// Reads the text exposition; lines it does not know are skipped.
    fn parse(text: &str) -> Self {
        let mut m = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((head, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = if value.is_finite() && value > 0.0 {
                value.round() as u64
            } else {
                0
            };
            if head == "iax2_gateway_call_numbers_in_use" {
                m.call_numbers_in_use = value;
            } else if let Some(labels) = head.strip_prefix("iax2_gateway_drops_total{") {
                if let Some(reason) = labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("reason=\""))
                    .map(|r| r.trim_end_matches(['}', '"']))
                {
                    if value > 0 {
                        *m.drops.entry(reason.to_owned()).or_default() += value;
                    }
                }
            }
        }
        m
    }
}

/// A free loopback UDP port (free when asked; the gateway binds it next).
fn free_udp() -> io::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

/// A free loopback TCP port.
fn free_tcp() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// A temporary directory for the configurations and logs; removed when
/// dropped unless kept.
#[derive(Debug)]
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn new() -> io::Result<Self> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path =
            std::env::temp_dir().join(format!("loadtest-soak-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path, keep: false })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------

/// A duration in `lo..=hi`, millisecond steps.
fn between(rng: &mut SplitMix64, lo: Duration, hi: Duration) -> Duration {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.range(ms(lo), ms(hi)))
}

/// A PBX of the soak on a free loopback port: A calls (and keeps the
/// records of its ended calls, to classify them), B answers and demands a
/// call token and MD5.
fn pbx(
    seed: u64,
    threads: usize,
    callee: bool,
    dtmf_interval: Option<Duration>,
    origin: Instant,
) -> io::Result<DriverGroup> {
    let spec = PbxSpec {
        seed,
        threads,
        codec: Codec::Ulaw,
        ptime_ms: 20,
        callee,
        dtmf_interval,
        keep_ended_calls: !callee,
    };
    crate::load::demo::pbx(spec, origin)
}

/// What is due for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Mute,
    Hangup,
}

/// A call of PBX A: its shard and its id there (ids are per shard).
type Key = (usize, CallId);

/// How an ended call of PBX A counts.
fn classify(end: Option<EndReason>, answered: bool) -> Result<(), String> {
    match (end, answered) {
        (Some(EndReason::HungUpLocally(_)), true) => Ok(()),
        (Some(EndReason::HungUpLocally(_)), false) => Err("not answered by its hangup".into()),
        (Some(EndReason::RejectedByPeer(c)), _) => Err(format!("rejected (cause {c})")),
        (Some(EndReason::HungUpByPeer(c)), true) => {
            Err(format!("hung up by the far end (cause {c})"))
        }
        (Some(EndReason::HungUpByPeer(c)), false) => {
            Err(format!("hung up by the far end before answer (cause {c})"))
        }
        (Some(EndReason::Failed(r)), _) => Err(format!("failed ({r:?})")),
        (Some(EndReason::RejectedLocally(c)), _) => Err(format!("rejected locally (cause {c})")),
        (None, _) => Err("ended without a reason".into()),
    }
}

/// The counters the run keeps.
#[derive(Debug, Default)]
struct Tally {
    started: u64,
    completed: u64,
    setup_failures: u64,
    dropped: u64,
    by_reason: BTreeMap<String, u64>,
    details: Vec<String>,
}

/// PBX A and the calls it keeps up.
struct Caller {
    group: DriverGroup,
    target: SocketAddr,
    /// Calls originated and not yet hung up by us (or ended by themselves).
    live: HashMap<Key, bool>,
    due: BinaryHeap<Reverse<(Instant, Action, usize, u64)>>,
    rng: SplitMix64,
    next_shard: usize,
    tally: Tally,
}

impl Caller {
    /// Starts `n` calls, each with its hold.
    fn originate(&mut self, n: usize, hold: (Duration, Duration)) {
        let shards = self.group.shards().len().max(1);
        let mut per = vec![0usize; shards];
        for i in 0..n {
            if let Some(p) = per.get_mut((self.next_shard + i) % shards) {
                *p += 1;
            }
        }
        self.next_shard = (self.next_shard + n) % shards;
        for (i, &k) in per.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let Some(shard) = self.group.shards().get(i) else {
                continue;
            };
            let ids = shard.originate(self.target, "2001", k);
            let now = Instant::now();
            for id in ids {
                let held = between(&mut self.rng, hold.0, hold.1);
                self.live.insert((i, id), false);
                self.due
                    .push(Reverse((now + held - MUTE_LEAD, Action::Mute, i, id.0)));
                self.due
                    .push(Reverse((now + held, Action::Hangup, i, id.0)));
                self.tally.started += 1;
            }
        }
    }

    /// Runs the mutes and hangups that are due.
    fn run_due(&mut self, now: Instant) {
        let mut batch: BTreeMap<usize, Vec<(Action, CallId)>> = BTreeMap::new();
        while let Some(Reverse((t, action, shard, id))) = self.due.peek().copied() {
            if t > now {
                break;
            }
            self.due.pop();
            let id = CallId(id);
            if self.live.contains_key(&(shard, id)) {
                batch.entry(shard).or_default().push((action, id));
                if action == Action::Hangup {
                    self.live.remove(&(shard, id));
                }
            }
        }
        for (i, actions) in batch {
            let Some(shard) = self.group.shards().get(i) else {
                continue;
            };
            shard.with(move |ep, now, out| {
                let mut out = crate::sim::DynTransmit(out);
                for (action, id) in actions {
                    match action {
                        Action::Mute => {
                            ep.stop_media(now, id);
                        }
                        Action::Hangup => {
                            ep.hangup(now, id, 16, &mut out);
                        }
                    }
                }
            });
        }
    }

    /// Mutes every call now, and hangs them up after the lead.
    fn end_all_now(&mut self) {
        let now = Instant::now();
        let keys: Vec<Key> = self.live.keys().copied().collect();
        self.due.clear();
        for (i, id) in keys {
            self.due.push(Reverse((now, Action::Mute, i, id.0)));
            self.due
                .push(Reverse((now + MUTE_LEAD, Action::Hangup, i, id.0)));
        }
    }

    /// Takes the calls that ended and counts them; returns how many are
    /// up (answered and live).
    fn sweep(&mut self) -> u64 {
        let per_shard = self.group.each(|ep, _, _| {
            let ended: Vec<(CallId, Option<EndReason>, bool, String)> = ep
                .take_ended()
                .into_iter()
                .map(|e| {
                    let c = &e.stats;
                    let detail = format!(
                        "call numbers {}/{:?}, last state {:?}, {:.1} s from NEW to release, \
                         answered after {:?} ms, full frames sent {} received {}, retransmissions {}",
                        c.local_call_number,
                        c.peer_call_number,
                        c.state,
                        c.ended
                            .map_or(0, |t| t.as_micros().saturating_sub(c.created.as_micros()))
                            as f64
                            / 1e6,
                        c.answered
                            .map(|t| t.as_micros().saturating_sub(c.created.as_micros()) / 1000),
                        c.full_frames_sent,
                        c.full_frames_received,
                        c.retransmissions
                    );
                    (c.id, c.end, c.answered.is_some(), detail)
                })
                .collect();
            let up: Vec<CallId> = ep
                .call_ids()
                .into_iter()
                .filter(|&id| ep.call_state(id) == Some(CallState::Up))
                .collect();
            (ended, up)
        });
        let mut up_count = 0;
        for (i, (ended, up)) in per_shard.into_iter().enumerate() {
            for id in up {
                if let Some(answered) = self.live.get_mut(&(i, id)) {
                    *answered = true;
                    up_count += 1;
                }
            }
            for (id, end, answered, detail) in ended {
                // Ended before its hangup: a replacement starts.
                self.live.remove(&(i, id));
                match classify(end, answered) {
                    Ok(()) => self.tally.completed += 1,
                    Err(why) => {
                        if answered {
                            self.tally.dropped += 1;
                        } else {
                            self.tally.setup_failures += 1;
                        }
                        if self.tally.details.len() < 20 {
                            self.tally.details.push(format!("{why}: {detail}"));
                        }
                        *self.tally.by_reason.entry(why).or_default() += 1;
                    }
                }
            }
        }
        up_count
    }
}

/// Readings taken at each sample, for the differences.
#[derive(Debug, Clone)]
struct Reading {
    at: Instant,
    gateway_cpu: f64,
    process_cpu: f64,
    machine: Option<cpu::MachineCpu>,
    voice_lost: u64,
    voice_unique: u64,
}

fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn unique(s: &EndpointStats) -> u64 {
    s.voice_received.saturating_sub(s.voice_duplicates)
}

/// The soak's state between samples.
struct Run<'a> {
    opts: &'a SoakOptions,
    gws: [GatewayProcess; 2],
    caller: Caller,
    callee: DriverGroup,
    start: Instant,
    samples: Vec<Sample>,
    last: Option<Reading>,
    stopped_early: Option<String>,
}

impl Run<'_> {
    fn reading(&self) -> Reading {
        let (a, b) = (self.caller.group.stats(), self.callee.stats());
        Reading {
            at: Instant::now(),
            gateway_cpu: self
                .gws
                .iter()
                .filter_map(GatewayProcess::cpu_seconds)
                .sum(),
            process_cpu: cpu::process_cpu_seconds().unwrap_or(0.0),
            machine: cpu::machine_cpu(),
            voice_lost: a.voice_lost + b.voice_lost,
            voice_unique: unique(&a) + unique(&b),
        }
    }

    /// Takes a sample; returns it.
    fn sample(&mut self, calls_up: u64) -> Sample {
        let r = self.reading();
        let tables: Vec<u64> = self
            .gws
            .iter()
            .map(|g| g.metrics().map_or(0, |m| m.call_numbers_in_use))
            .collect();
        let mut s = Sample {
            t_s: round3(self.start.elapsed().as_secs_f64()),
            rss_a_kib: self.gws[0].rss_kib().unwrap_or(0),
            rss_b_kib: self.gws[1].rss_kib().unwrap_or(0),
            table_a: tables.first().copied().unwrap_or(0),
            table_b: tables.get(1).copied().unwrap_or(0),
            calls_up,
            started: self.caller.tally.started,
            completed: self.caller.tally.completed,
            failed: self.caller.tally.setup_failures + self.caller.tally.dropped,
            load_avg: load_avg(),
            ..Sample::default()
        };
        if let Some(p) = &self.last {
            let wall = r.at.duration_since(p.at).as_secs_f64().max(1e-3);
            s.gateway_cores = round3((r.gateway_cpu - p.gateway_cpu).max(0.0) / wall);
            s.generator_cores = round3((r.process_cpu - p.process_cpu).max(0.0) / wall);
            s.machine_busy = match (&r.machine, &p.machine) {
                (Some(now), Some(then)) => round3(now.busy_fraction_since(then).unwrap_or(0.0)),
                _ => 0.0,
            };
            let lost = r.voice_lost.saturating_sub(p.voice_lost);
            let got = r.voice_unique.saturating_sub(p.voice_unique);
            if lost + got > 0 {
                s.loss_ratio = lost as f64 / (lost + got) as f64;
            }
        }
        self.last = Some(r);
        if self.opts.progress {
            let line = format!(
                "{:>6.0}s  up {:>5}  started {:>7}  completed {:>7}  failed {:>3}  tables {:>5}/{:<5}  RSS A {:>6} B {:>6} KiB  loss {:.4}%  gw {:.2} cores  busy {:>3.0}%  load {:.2}",
                s.t_s,
                s.calls_up,
                s.started,
                s.completed,
                s.failed,
                s.table_a,
                s.table_b,
                s.rss_a_kib,
                s.rss_b_kib,
                s.loss_ratio * 100.0,
                s.gateway_cores,
                s.machine_busy * 100.0,
                s.load_avg
            );
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
        self.samples.push(s.clone());
        s
    }

    fn stop_requested(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Checks both gateways still run; records why not.
    fn gateways_alive(&mut self) -> bool {
        for g in &mut self.gws {
            if let Some(why) = g.exited() {
                self.stopped_early
                    .get_or_insert(format!("{why}:\n{}", tail(&g.log, 20)));
                return false;
            }
        }
        true
    }

    /// The loaded phase: originate, hold, hang up, sample. Returns the
    /// index of the last sample of the phase.
    fn loaded_phase(&mut self) -> usize {
        let hold = (self.opts.hold_min, self.opts.hold_max);
        let mut tokens = 0.0f64;
        let mut last_tick = Instant::now();
        let mut next_sweep = self.start + Duration::from_secs(1);
        let mut next_sample = self.start + self.opts.sample_every;
        let mut up = 0;
        while self.start.elapsed() < self.opts.duration {
            if self.stop_requested() {
                self.stopped_early
                    .get_or_insert_with(|| "stopped by a signal".to_owned());
                break;
            }
            let now = Instant::now();
            tokens = (tokens + now.duration_since(last_tick).as_secs_f64() * self.opts.rate)
                .min(self.opts.rate.max(1.0));
            last_tick = now;
            let want = self.opts.calls.saturating_sub(self.caller.live.len());
            let n = want.min(tokens.floor() as usize);
            if n > 0 {
                tokens -= n as f64;
                self.caller.originate(n, hold);
            }
            self.caller.run_due(now);
            if now >= next_sweep {
                next_sweep += Duration::from_secs(1);
                up = self.caller.sweep();
            }
            if now >= next_sample {
                next_sample += self.opts.sample_every;
                self.sample(up);
                if !self.gateways_alive() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.samples.len().saturating_sub(1)
    }

    /// Lets the calls up end at their time (at once when stopping early),
    /// then waits for both PBXs to release every call.
    fn wind_down(&mut self) {
        if self.stopped_early.is_some() {
            self.caller.end_all_now();
        }
        let limit = self.opts.hold_max + Duration::from_secs(10);
        let end = Instant::now() + limit;
        let mut next_sweep = Instant::now();
        let mut next_sample = Instant::now() + self.opts.sample_every;
        while !self.caller.live.is_empty() && Instant::now() < end {
            if self.stop_requested() && self.stopped_early.is_none() {
                self.stopped_early = Some("stopped by a signal".to_owned());
                self.caller.end_all_now();
            }
            let now = Instant::now();
            self.caller.run_due(now);
            if now >= next_sweep {
                next_sweep += Duration::from_secs(1);
                let up = self.caller.sweep();
                if now >= next_sample {
                    next_sample += self.opts.sample_every;
                    self.sample(up);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Whatever is still tracked (a hangup time past the limit) goes now.
        if !self.caller.live.is_empty() {
            self.caller.end_all_now();
            let until = Instant::now() + MUTE_LEAD * 2;
            while Instant::now() < until {
                self.caller.run_due(Instant::now());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The last HANGUPs need their ACKs (retransmitted if lost).
        crate::load::run::wait_until(Duration::from_secs(15), || {
            self.caller.group.active_calls() == 0 && self.callee.active_calls() == 0
        });
        self.caller.sweep();
    }
}

/// Runs the soak (see the module documentation).
pub fn soak(opts: &SoakOptions) -> io::Result<SoakReport> {
    opts.check()?;
    let mut work = WorkDir::new()?;
    let origin = Instant::now();
    let callee = pbx(2, opts.threads, true, None, origin)?;
    let caller_group = pbx(1, opts.threads, false, opts.dtmf_interval, origin)?;
    let (pbx_a, pbx_b) = (caller_group.local_addr(), callee.local_addr());
    let (gw_a, gw_b) = (free_udp()?, free_udp()?);
    let admin = [free_tcp()?, free_tcp()?];
    let mut configs = Vec::new();
    for (i, (site, listen, pbx, far)) in [(SITE_A, gw_a, pbx_a, gw_b), (SITE_B, gw_b, pbx_b, gw_a)]
        .into_iter()
        .enumerate()
    {
        let yaml = site.yaml_for(listen, pbx, far, Some(opts.calls.saturating_mul(2)))?;
        let yaml = rewrite(&yaml, "listen", EXAMPLE_ADMIN[i], admin[i])?;
        let path = work.path.join(site.file);
        std::fs::write(&path, yaml)?;
        configs.push(path);
    }
    let workers =
        iax2_config::from_yaml_str(SITE_A.yaml, SITE_A.file).map_or(0, |c| c.workers.get());
    let mut gws = [
        GatewayProcess::spawn(
            &opts.gateway_bin,
            "A",
            &configs[0],
            admin[0],
            work.path.join("gateway-a.log"),
        )?,
        GatewayProcess::spawn(
            &opts.gateway_bin,
            "B",
            &configs[1],
            admin[1],
            work.path.join("gateway-b.log"),
        )?,
    ];
    for g in &mut gws {
        g.wait_ready(Duration::from_secs(20))?;
    }
    if opts.progress {
        eprintln!(
            "PBX A {pbx_a} -> iax2-gateway A {gw_a} (pid {}, admin {}) -> iax2-gateway B {gw_b} (pid {}, admin {}) -> PBX B {pbx_b}",
            gws[0].pid(),
            admin[0],
            gws[1].pid(),
            admin[1]
        );
        eprintln!(
            "{} calls, holds {:.0}-{:.0} s, for {:.1} min; configurations and logs in {}",
            opts.calls,
            opts.hold_min.as_secs_f64(),
            opts.hold_max.as_secs_f64(),
            opts.duration.as_secs_f64() / 60.0,
            work.path.display()
        );
    }
    let idle = [gws[0].rss_kib().unwrap_or(0), gws[1].rss_kib().unwrap_or(0)];
    let cpu0 = CpuSnapshot::take();
    let caller = Caller {
        group: caller_group,
        target: gw_a,
        live: HashMap::new(),
        due: BinaryHeap::new(),
        rng: SplitMix64::new(opts.seed),
        next_shard: 0,
        tally: Tally::default(),
    };
    let mut run = Run {
        opts,
        gws,
        caller,
        callee,
        start: Instant::now(),
        samples: Vec::new(),
        last: None,
        stopped_early: None,
    };
    run.last = Some(run.reading());
    let gw_cpu0 = run.last.as_ref().map_or(0.0, |r| r.gateway_cpu);
    let last_loaded = run.loaded_phase();
    let cpu1 = CpuSnapshot::take();
    let gw_cpu1: f64 = run.gws.iter().filter_map(GatewayProcess::cpu_seconds).sum();
    let loaded_wall = cpu1.wall_seconds_since(&cpu0).max(1e-3);
    let alive = run.gateways_alive();
    if alive {
        run.wind_down();
    }
    let drained_at = Instant::now();

    // The tables must empty within the grace.
    let mut tables = [u64::MAX; 2];
    let grace_end = drained_at + opts.grace;
    if alive {
        loop {
            for (t, g) in tables.iter_mut().zip(&run.gws) {
                *t = g.metrics().map_or(u64::MAX, |m| m.call_numbers_in_use);
            }
            if tables == [0, 0] || Instant::now() >= grace_end {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let table_empty_after = drained_at.elapsed();
    let mut entries = Vec::new();
    for (t, g) in tables.iter().zip(&run.gws) {
        if *t > 0 {
            entries.extend(g.entries(20));
        }
    }
    let metrics: Vec<Metrics> = run.gws.iter().filter_map(GatewayProcess::metrics).collect();
    let drops = |a: SocketAddr| crate::tap::kernel_udp_drops(a).unwrap_or(0);
    let kernel_drops = KernelDrops {
        pbx_a: drops(pbx_a),
        pbx_b: drops(pbx_b),
        gateway_a: drops(gw_a),
        gateway_b: drops(gw_b),
    };
    let after_drain = [
        run.gws[0].rss_kib().unwrap_or(0),
        run.gws[1].rss_kib().unwrap_or(0),
    ];
    let (mut warnings, mut warning_lines) = (0, Vec::new());
    for g in &run.gws {
        let (n, lines) = g.warnings(5);
        warnings += n;
        warning_lines.extend(lines);
    }

    let a = run.caller.group.stats();
    let b = run.callee.stats();
    let mut measure = run.caller.group.measurements(false);
    measure.add(&run.callee.measurements(false));
    let pbx_left = [a.active_calls as u64, b.active_calls as u64];
    run.caller.group.hangup_all(16);
    run.callee.hangup_all(16);

    let warmup = opts.warmup();
    let samples = std::mem::take(&mut run.samples);
    let loaded = samples.get(..=last_loaded).unwrap_or(&[]);
    let rss = |pick: fn(&Sample) -> u64, idle: u64, drained: u64| {
        rss_summary(loaded, warmup, pick, idle, drained)
    };
    let tally = std::mem::take(&mut run.caller.tally);
    let sent = a.voice_sent + b.voice_sent;
    let received = unique(&a) + unique(&b);
    let after_end = a.unknown_call_media + b.unknown_call_media;
    let lost = sent.saturating_sub(received + after_end);
    let loaded_len = loaded.len();
    let max_up = loaded.iter().map(|s| s.calls_up).max().unwrap_or(0);
    let rss_a = rss(|s| s.rss_a_kib, idle[0], after_drain[0]);
    let rss_b = rss(|s| s.rss_b_kib, idle[1], after_drain[1]);
    let mut report = SoakReport {
        mode: "soak".to_owned(),
        settings: SoakSettings {
            calls: opts.calls,
            duration_s: opts.duration.as_secs_f64(),
            hold_min_s: opts.hold_min.as_secs_f64(),
            hold_max_s: opts.hold_max.as_secs_f64(),
            rate: opts.rate,
            seed: opts.seed,
            sample_every_s: opts.sample_every.as_secs_f64(),
            warmup_s: warmup.as_secs_f64(),
            rss_limit_pct: opts.rss_limit_pct,
            grace_s: opts.grace.as_secs_f64(),
            gateway_workers: workers,
        },
        elapsed_s: round3(run.start.elapsed().as_secs_f64()),
        stopped_early: run.stopped_early.take(),
        calls: SoakCalls {
            started: tally.started,
            answered: a.calls_answered,
            completed: tally.completed,
            setup_failures: tally.setup_failures,
            dropped: tally.dropped,
            failures_by_reason: tally.by_reason,
            failure_details: tally.details,
            max_up,
            answered_by_b: b.calls_answered,
            failed_at_b: b.calls_failed + b.calls_rejected_locally,
            setup_p50_ms: round3(quantile_ms(&measure.setup_us, 0.5)),
            setup_p99_ms: round3(quantile_ms(&measure.setup_us, 0.99)),
        },
        leftovers: Leftovers {
            table_a: tables[0],
            table_b: tables[1],
            pbx_a: pbx_left[0],
            pbx_b: pbx_left[1],
            table_empty_after_s: round3(table_empty_after.as_secs_f64()),
            entries,
        },
        rss_a,
        rss_b,
        media: SoakMedia {
            sent,
            received,
            after_end,
            lost,
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            latency_p50_ms: round3(quantile_ms(&measure.latency_us, 0.5)),
            latency_p99_ms: round3(quantile_ms(&measure.latency_us, 0.99)),
            dtmf_sent: a.dtmf_sent + b.dtmf_sent,
            dtmf_received: a.dtmf_received + b.dtmf_received,
        },
        cpu: SoakCpu {
            gateway_cores: round3((gw_cpu1 - gw_cpu0).max(0.0) / loaded_wall),
            generator_cores: round3(cpu1.process_seconds_since(&cpu0).unwrap_or(0.0) / loaded_wall),
            machine_busy: round3(cpu1.machine_busy_since(&cpu0).unwrap_or(0.0)),
            max_load_avg: samples.iter().map(|s| s.load_avg).fold(0.0, f64::max),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        },
        gateway_drops: metrics.iter().fold(BTreeMap::new(), |mut acc, m| {
            for (k, v) in &m.drops {
                *acc.entry(k.clone()).or_default() += v;
            }
            acc
        }),
        gateway_warnings: warnings,
        gateway_warning_lines: warning_lines,
        kernel_drops,
        samples,
        pass: false,
        failures: Vec::new(),
    };
    report.failures = verdict(&report, loaded_len, warmup);
    report.pass = report.failures.is_empty();
    for g in &mut run.gws {
        g.stop();
    }
    drop(run);
    if !report.pass {
        work.keep = true;
        report.failures.push(format!(
            "configurations and logs kept in {}",
            work.path.display()
        ));
    }
    Ok(report)
}

/// One gateway's memory summary from the loaded phase's samples.
fn rss_summary(
    loaded: &[Sample],
    warmup: Duration,
    pick: fn(&Sample) -> u64,
    idle_kib: u64,
    after_drain_kib: u64,
) -> Rss {
    let warm = warmup.as_secs_f64();
    let after: Vec<&Sample> = loaded.iter().filter(|s| s.t_s >= warm).collect();
    let mut r = Rss {
        idle_kib,
        after_drain_kib,
        end_kib: loaded.last().map_or(0, pick),
        ..Rss::default()
    };
    let Some(first) = after.first() else {
        return r;
    };
    r.warmup_kib = pick(first);
    r.max_kib = after.iter().map(|s| pick(s)).max().unwrap_or(0);
    r.growth_kib = r.max_kib as i64 - r.warmup_kib as i64;
    r.end_growth_kib = r.end_kib as i64 - r.warmup_kib as i64;
    if r.warmup_kib > 0 {
        r.growth_pct = round3(r.growth_kib as f64 * 100.0 / r.warmup_kib as f64);
    }
    if after.len() >= 2 {
        let n = after.len() as f64;
        let mx = after.iter().map(|s| s.t_s).sum::<f64>() / n;
        let my = after.iter().map(|s| pick(s) as f64).sum::<f64>() / n;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for s in &after {
            let dx = s.t_s - mx;
            sxy += dx * (pick(s) as f64 - my);
            sxx += dx * dx;
        }
        if sxx > 0.0 {
            r.slope_kib_per_hour = round3(sxy / sxx * 3600.0);
        }
    }
    r
}

/// The checks that failed.
fn verdict(r: &SoakReport, loaded_samples: usize, warmup: Duration) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(why) = &r.stopped_early {
        f.push(format!("the run stopped early: {why}"));
    }
    let l = &r.leftovers;
    for (name, n) in [("A", l.table_a), ("B", l.table_b)] {
        if n == u64::MAX {
            f.push(format!("gateway {name}: the call table could not be read"));
        } else if n > 0 {
            f.push(format!(
                "gateway {name}: {n} entries still in the call table {:.0} s after the last call ended (stuck calls)",
                r.settings.grace_s
            ));
        }
    }
    for (name, n) in [("A", l.pbx_a), ("B", l.pbx_b)] {
        if n > 0 {
            f.push(format!("PBX {name}: {n} calls never released"));
        }
    }
    if r.calls.setup_failures > 0 {
        f.push(format!("{} calls failed to set up", r.calls.setup_failures));
    }
    if r.calls.dropped > 0 {
        f.push(format!("{} calls were cut", r.calls.dropped));
    }
    if r.calls.failed_at_b > 0 {
        f.push(format!("{} calls failed at PBX B", r.calls.failed_at_b));
    }
    if r.calls.started == 0 {
        f.push("no call was started".to_owned());
    }
    let measured = r.rss_a.warmup_kib > 0 && r.rss_b.warmup_kib > 0;
    if !measured && loaded_samples > 0 && r.stopped_early.is_none() {
        f.push(format!(
            "no sample after the {:.0} s warm-up: run longer or give a shorter --warmup",
            warmup.as_secs_f64()
        ));
    }
    for (name, rss) in [("A", &r.rss_a), ("B", &r.rss_b)] {
        if measured && rss.growth_pct > r.settings.rss_limit_pct {
            f.push(format!(
                "gateway {name}: RSS grew {} KiB ({:.2}%) after the warm-up, over the {}% bound",
                rss.growth_kib, rss.growth_pct, r.settings.rss_limit_pct
            ));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_gives_the_table_and_the_drops() {
        let text = "# TYPE iax2_gateway_call_numbers_in_use gauge\n\
            iax2_gateway_call_numbers_in_use 812\n\
            iax2_gateway_call_numbers_capacity 32766\n\
            iax2_gateway_drops_total{reason=\"unknown_call\"} 3\n\
            iax2_gateway_drops_total{reason=\"malformed\"} 0\n\
            iax2_gateway_drops_total{reason=\"stranger\"} 2.0\n\
            garbage line\n\
            iax2_gateway_call_numbers_in_use_total NaN\n\
            # EOF\n";
        let m = Metrics::parse(text);
        assert_eq!(m.call_numbers_in_use, 812);
        assert_eq!(
            m.drops.into_iter().collect::<Vec<_>>(),
            vec![("stranger".to_owned(), 2), ("unknown_call".to_owned(), 3)]
        );
        assert_eq!(Metrics::parse(""), Metrics::default());
    }

    fn sample(t_s: f64, rss: u64) -> Sample {
        Sample {
            t_s,
            rss_a_kib: rss,
            ..Sample::default()
        }
    }

    #[test]
    fn rss_growth_is_measured_from_the_end_of_the_warm_up() {
        let samples = [
            sample(10.0, 1000),
            sample(20.0, 1500),
            sample(30.0, 1600),
            sample(40.0, 1700),
            sample(50.0, 1650),
        ];
        let r = rss_summary(
            &samples,
            Duration::from_secs(25),
            |s| s.rss_a_kib,
            900,
            1640,
        );
        assert_eq!(
            (r.idle_kib, r.warmup_kib, r.max_kib, r.end_kib),
            (900, 1600, 1700, 1650)
        );
        assert_eq!((r.growth_kib, r.end_growth_kib), (100, 50));
        assert!((r.growth_pct - 6.25).abs() < 1e-9);
        // 1600, 1700, 1650 at 30, 40, 50 s: 2.5 KiB/s.
        assert!((r.slope_kib_per_hour - 9000.0).abs() < 1e-6);
        // No sample after the warm-up: nothing to compare.
        let none = rss_summary(&samples, Duration::from_secs(60), |s| s.rss_a_kib, 900, 0);
        assert_eq!((none.warmup_kib, none.growth_kib), (0, 0));
    }

    #[test]
    fn ended_calls_are_classified() {
        assert!(classify(Some(EndReason::HungUpLocally(16)), true).is_ok());
        for (end, answered) in [
            (Some(EndReason::HungUpLocally(16)), false),
            (Some(EndReason::RejectedByPeer(34)), false),
            (Some(EndReason::HungUpByPeer(16)), true),
            (
                Some(EndReason::Failed(crate::endpoint::FailReason::Timeout)),
                true,
            ),
            (None, false),
        ] {
            assert!(classify(end, answered).is_err(), "{end:?}");
        }
    }

    #[test]
    fn holds_stay_in_their_range_and_replay() {
        let (lo, hi) = (Duration::from_secs(20), Duration::from_secs(90));
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        let draws: Vec<Duration> = (0..1000).map(|_| between(&mut a, lo, hi)).collect();
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        assert_eq!(
            draws,
            (0..1000)
                .map(|_| between(&mut b, lo, hi))
                .collect::<Vec<_>>()
        );
        assert!(draws.iter().any(|d| *d < Duration::from_secs(30)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(80)));
    }

    #[test]
    fn bad_options_are_refused() {
        let bin = std::env::current_exe().unwrap_or_default();
        let ok = SoakOptions {
            gateway_bin: bin,
            ..SoakOptions::default()
        };
        assert!(ok.check().is_ok());
        for bad in [
            SoakOptions {
                calls: 0,
                ..ok.clone()
            },
            SoakOptions {
                hold_min: Duration::from_secs(10),
                hold_max: Duration::from_secs(5),
                ..ok.clone()
            },
            SoakOptions {
                rate: f64::NAN,
                ..ok.clone()
            },
            SoakOptions {
                gateway_bin: PathBuf::from("/nonexistent/iax2-gateway"),
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert_eq!(ok.warmup(), Duration::from_secs(300));
        let short = SoakOptions {
            duration: Duration::from_secs(90),
            ..ok
        };
        assert_eq!(short.warmup(), Duration::from_secs(30));
    }
}
