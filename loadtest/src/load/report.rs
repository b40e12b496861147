//! The reports of `demo`, `run` and `bench`: JSON (stable keys, see the
//! README) and a human table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::endpoint::measure::{max_ms, quantile_ms};

/// p50, p99 and max of a distribution, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    /// Of a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: round3(quantile_ms(h, 0.5)),
            p99: round3(quantile_ms(h, 0.99)),
            max: round3(max_ms(h)),
        }
    }
}

/// Three decimals: microseconds when the unit is milliseconds.
pub fn round3(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// Calls of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallCounts {
    /// NEWs sent.
    pub attempted: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls rejected, timed out or otherwise not answered.
    pub failed: u64,
}

/// Voice of a run, both directions added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Media {
    /// Voice frames sent.
    pub sent: u64,
    /// Voice frames received with an intact payload (duplicates included).
    pub received: u64,
    /// Frames never received.
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// Frames received twice or more.
    pub duplicates: u64,
    /// Frames received after a later one.
    pub reordered: u64,
    /// Frames whose payload failed the check.
    pub corrupt: u64,
    /// One-way latency (round trip when the far end echoes).
    pub latency_ms: Quantiles,
    /// Per-call RFC 3550 interarrival jitter.
    pub jitter_ms: Quantiles,
}

/// DTMF digits of a run, both directions added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Dtmf {
    /// Digits sent.
    pub sent: u64,
    /// Digits received.
    pub received: u64,
}

/// NEW to ANSWER, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Setup {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Traffic between the two gateways, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Wan {
    /// Datagrams.
    pub packets: u64,
    /// UDP payload bytes.
    pub bytes: u64,
    /// Meta trunk frames.
    pub trunk_frames: u64,
    /// Entries in those trunk frames.
    pub trunk_entries: u64,
    /// `trunk_entries / trunk_frames`.
    pub entries_per_frame: f64,
}

/// CPU used during the run, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cpu {
    /// The load generator's threads (the emulated PBXs).
    pub generator_s: f64,
    /// The gateways' worker threads.
    pub gateways_s: f64,
    /// The whole process.
    pub process_s: f64,
    /// The whole machine's busy share, 0 to 1.
    pub machine_busy: f64,
    /// Wall-clock seconds measured.
    pub wall_s: f64,
}

/// Where datagrams were lost, when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Drops {
    /// Dropped by the kernel at the emulated PBXs' sockets (full buffers).
    pub generator_kernel: u64,
    /// Not sent by the emulated PBXs (full socket, error).
    pub generator_send: u64,
    /// Handed between generator threads and dropped (a full queue).
    pub generator_handoff: u64,
    /// Dropped by the gateways, all reasons.
    pub gateways: u64,
}

/// The report of `demo` and `run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// What ran: "demo" or "run".
    pub mode: String,
    /// The codec.
    pub codec: String,
    /// Voice frame interval, milliseconds.
    pub ptime_ms: u32,
    /// Seconds from the first NEW to the hangup.
    pub duration_s: f64,
    /// Calls.
    pub calls: CallCounts,
    /// Voice.
    pub media: Media,
    /// DTMF digits.
    pub dtmf: Dtmf,
    /// Call setup time.
    pub setup_ms: Setup,
    /// The WAN between the gateways (zero when not known).
    pub wan: Wan,
    /// CPU.
    pub cpu: Cpu,
    /// Losses by place.
    pub drops: Drops,
}

impl RunReport {
    /// The human table printed at the end.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.media;
        let _ = writeln!(
            t,
            "{} {} {} ms, {:.1} s",
            self.mode, self.codec, self.ptime_ms, self.duration_s
        );
        let _ = writeln!(
            t,
            "  calls      attempted {:>8}  answered {:>8}  failed {:>6}",
            self.calls.attempted, self.calls.answered, self.calls.failed
        );
        let _ = writeln!(
            t,
            "  voice      sent {:>12}  received {:>12}  lost {:>8} ({:.4}%)  dup {}  reordered {}  corrupt {}",
            m.sent,
            m.received,
            m.lost,
            m.loss_ratio * 100.0,
            m.duplicates,
            m.reordered,
            m.corrupt
        );
        if self.mode == "run" && m.corrupt > 0 {
            let _ = writeln!(
                t,
                "             ({} frames were not ours: the far end's own audio, or damaged; \
                 loss and latency are measured on frames the far end echoes back)",
                m.corrupt
            );
        }
        let _ = writeln!(
            t,
            "  latency    p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
            m.latency_ms.p50, m.latency_ms.p99, m.latency_ms.max
        );
        let _ = writeln!(
            t,
            "  jitter     p50 {:>8.3} ms  p99 {:>8.3} ms  (per call, RFC 3550)",
            m.jitter_ms.p50, m.jitter_ms.p99
        );
        let _ = writeln!(
            t,
            "  setup      p50 {:>8.3} ms  p99 {:>8.3} ms",
            self.setup_ms.p50, self.setup_ms.p99
        );
        if self.dtmf.sent + self.dtmf.received > 0 {
            let _ = writeln!(
                t,
                "  DTMF       sent {:>8}  received {:>8}",
                self.dtmf.sent, self.dtmf.received
            );
        }
        if self.wan.packets > 0 {
            let _ = writeln!(
                t,
                "  WAN        packets {:>10}  bytes {:>12}  trunk frames {:>9}  entries {:>10}  ({:.2} per frame)",
                self.wan.packets,
                self.wan.bytes,
                self.wan.trunk_frames,
                self.wan.trunk_entries,
                self.wan.entries_per_frame
            );
        }
        let c = &self.cpu;
        let _ = writeln!(
            t,
            "  CPU        generator {:.2} s  gateways {:.2} s  process {:.2} s  machine busy {:.0}% over {:.1} s",
            c.generator_s,
            c.gateways_s,
            c.process_s,
            c.machine_busy * 100.0,
            c.wall_s
        );
        let d = &self.drops;
        let _ = writeln!(
            t,
            "  drops      generator kernel {}  generator send {}  generator handoff {}  gateways {}",
            d.generator_kernel, d.generator_send, d.generator_handoff, d.gateways
        );
        t
    }
}

/// One step of a bench ramp.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Step {
    /// Concurrent calls asked for.
    pub calls: u64,
    /// Calls up during the window.
    pub calls_up: u64,
    /// Loss over the measurement window.
    pub loss_ratio: f64,
    /// One-way latency over the window.
    pub latency_ms: Quantiles,
    /// Voice frames received per second by both emulated PBXs.
    pub packets_per_s: f64,
    /// CPU seconds of the system under test (gateways or forwarders) per
    /// voice frame carried end to end.
    pub cpu_s_per_packet: f64,
    /// The same, in microseconds.
    pub cpu_us_per_packet: f64,
    /// CPU seconds of the system under test per datagram it received.
    pub cpu_us_per_datagram: f64,
    /// The system under test's CPU share of one core during the window.
    pub sut_cores: f64,
    /// The generator's CPU share of one core during the window.
    pub generator_cores: f64,
    /// The machine's busy share (all cores), 0 to 1.
    pub machine_busy: f64,
    /// Datagrams the kernel dropped at the generator's sockets.
    pub generator_kernel_drops: u64,
    /// Datagrams the kernel dropped at the system under test's sockets.
    pub sut_kernel_drops: u64,
    /// Resident memory of the whole process (generator and system under
    /// test together) at the end of the window, bytes.
    pub process_rss_bytes: u64,
    /// The busiest generator thread's share of a core.
    pub generator_busiest_thread: f64,
    /// What most likely limited the step: "machine" (all cores busy: the
    /// generator and the system under test share them), "generator" (one
    /// of its threads near a full core, or drops at its sockets, with
    /// cores to spare), or "system" (the system under test).
    pub limited_by: String,
    /// Whether the step met the criteria.
    pub pass: bool,
}

/// One ramp: the gateway pair or the forwarder baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ramp {
    /// Most calls of a passing step (with repeats: the median ramp's).
    pub max_calls: u64,
    /// Every step run (with repeats: those of the median ramp).
    pub steps: Vec<Step>,
    /// Each repeat's `max_calls`, in the order run.
    pub runs_max_calls: Vec<u64>,
}

/// The report of `bench`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchReport {
    /// Through the gateway pair.
    pub gateway: Ramp,
    /// Through a bare UDP forwarder pair.
    pub baseline: Ramp,
    /// `gateway.max_calls / baseline.max_calls`.
    pub ratio: f64,
    /// The criteria and settings.
    pub criteria: Criteria,
    /// The machine.
    pub machine: Machine,
}

/// What a step must meet, and how it was run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Criteria {
    /// Largest loss ratio of a passing step.
    pub max_loss_ratio: f64,
    /// Largest p99 one-way latency of a passing step, ms.
    pub max_p99_ms: f64,
    /// The gateways' trunk tick, ms.
    pub trunkfreq_ms: u32,
    /// Seconds measured per step.
    pub window_s: f64,
    /// Codec and ptime.
    pub codec: String,
    /// Voice frame interval, ms.
    pub ptime_ms: u32,
    /// Worker threads per gateway.
    pub gateway_workers: usize,
    /// The gateways sent runs of equal datagrams segmented (UDP GSO).
    pub gateway_gso: bool,
    /// The baseline forwarders did too.
    pub forwarder_gso: bool,
}

/// The machine the bench ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Machine {
    /// Cores available to the process.
    pub cores: usize,
    /// `uname -r` and the CPU model, when readable.
    pub kernel: String,
    /// CPU model name.
    pub cpu_model: String,
}

impl Machine {
    /// Reads the machine's description (Linux `/proc`).
    pub fn read() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            cores,
            kernel,
            cpu_model,
        }
    }
}

impl BenchReport {
    /// The human table printed at the end.
    pub fn table(&self) -> String {
        let mut t = String::new();
        for (name, ramp) in [
            ("gateway pair", &self.gateway),
            ("bare forwarder pair", &self.baseline),
        ] {
            let _ = writeln!(t, "{name}: max_calls {}", ramp.max_calls);
            if ramp.runs_max_calls.len() > 1 {
                let _ = writeln!(
                    t,
                    "  (median of {:?}; the steps below are the median ramp's)",
                    ramp.runs_max_calls
                );
            }
            let _ = writeln!(
                t,
                "  {:>6} {:>6} {:>9} {:>8} {:>8} {:>10} {:>9} {:>9} {:>7} {:>5}",
                "calls",
                "up",
                "loss %",
                "p50 ms",
                "p99 ms",
                "voice/s",
                "cpu us/f",
                "sut core",
                "gen core",
                "pass"
            );
            for s in &ramp.steps {
                let _ = writeln!(
                    t,
                    "  {:>6} {:>6} {:>9.4} {:>8.2} {:>8.2} {:>10.0} {:>9.2} {:>9.2} {:>7.2} {:>5}",
                    s.calls,
                    s.calls_up,
                    s.loss_ratio * 100.0,
                    s.latency_ms.p50,
                    s.latency_ms.p99,
                    s.packets_per_s,
                    s.cpu_us_per_packet,
                    s.sut_cores,
                    s.generator_cores,
                    if s.pass { "yes" } else { "no" }
                );
            }
        }
        let _ = writeln!(
            t,
            "ratio (gateway / baseline max_calls): {:.2}  [loss < {}%, p99 < {} ms, {} s per step, {} cores]",
            self.ratio,
            self.criteria.max_loss_ratio * 100.0,
            self.criteria.max_p99_ms,
            self.criteria.window_s,
            self.machine.cores
        );
        t
    }
}
