//! `loadtest bench`: the most concurrent calls the gateway pair carries
//! cleanly on this machine, against a bare UDP forwarder pair measured
//! the same way in the same run.
//!
//! Each ramp starts two emulated PBXs and the system under test (the
//! gateway pair, from the example configurations, or a
//! [`crate::forwarder::ForwarderPair`] in its place), then
//! adds calls a step at a time. A step waits for every call to be
//! answered, lets the new calls' voice settle, then measures over a
//! window: loss (sequence gaps at both PBXs), p99 one-way latency, voice
//! frames per second, and the CPU of the system under test and of the
//! generator (by thread name). A step passes with every call up, loss
//! under 0.1% and p99 under trunkfreq + 10 ms; the ramp stops after two
//! failing steps in a row.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use iax2_gateway::GatewayHandle;

use crate::cpu::CpuSnapshot;
use crate::driver::DriverGroup;
use crate::endpoint::Codec;
use crate::forwarder::{ForwarderConfig, ForwarderPair};
use crate::load::demo::{pbx_pair, SITE_A, SITE_B};
use crate::load::report::{round3, BenchReport, Criteria, Machine, Quantiles, Ramp, Step};
use crate::load::run::wait_until;
use crate::plot::{PlotData, Point, Series};
use crate::tap::kernel_udp_drops;

/// How the bench runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Largest step.
    pub max_calls: usize,
    /// Calls added per step.
    pub step: usize,
    /// Measured per step.
    pub window: Duration,
    /// Between all calls answered and the window.
    pub settle: Duration,
    /// Calls originated per second while a step ramps up.
    pub rate: f64,
    /// Threads per emulated PBX.
    pub threads: usize,
    /// The codec.
    pub codec: Codec,
    /// Voice frame interval, ms.
    pub ptime_ms: u32,
    /// Largest loss ratio of a passing step.
    pub max_loss_ratio: f64,
    /// Failing steps in a row that end a ramp.
    pub failures_to_stop: usize,
    /// Write the SVG plot here.
    pub plot: Option<PathBuf>,
    /// Print each step as it completes.
    pub progress: bool,
    /// Ramps of each system, alternating (gateway, baseline, gateway,
    /// ...); the report takes the median of their `max_calls`.
    pub repeat: usize,
    /// Worker threads per gateway (`None`: the example configuration's).
    pub workers: Option<usize>,
    /// The gateways send runs of equal datagrams segmented (UDP GSO).
    pub gateway_gso: bool,
    /// The baseline forwarders do too (off: a bare `sendmmsg` relay).
    pub forwarder_gso: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            max_calls: 4000,
            step: 100,
            window: Duration::from_secs(5),
            settle: Duration::from_secs(1),
            rate: 1000.0,
            threads: 2,
            codec: Codec::Ulaw,
            ptime_ms: 20,
            max_loss_ratio: 0.001,
            failures_to_stop: 2,
            plot: None,
            progress: true,
            repeat: 1,
            workers: None,
            gateway_gso: true,
            forwarder_gso: false,
        }
    }
}

/// The system under test.
enum System {
    Gateways(GatewayHandle, GatewayHandle),
    Forwarders(ForwarderPair),
}

impl System {
    /// Where PBX A sends its NEWs.
    fn entry(&self) -> SocketAddr {
        match self {
            Self::Gateways(a, _) => a.local_addr(),
            Self::Forwarders(f) => f.a_lan_addr(),
        }
    }

    /// The prefix of its threads' names.
    fn thread_prefix(&self) -> &'static str {
        match self {
            Self::Gateways(..) => crate::cpu::GATEWAY_WORKER_PREFIX,
            Self::Forwarders(_) => crate::cpu::FORWARDER_PREFIX,
        }
    }

    /// Datagrams it received so far.
    fn datagrams_in(&self) -> u64 {
        match self {
            Self::Gateways(a, b) => a.counters().rx_datagrams + b.counters().rx_datagrams,
            Self::Forwarders(f) => {
                let s = f.stats();
                s.a_lan.received + s.a_wan.received + s.b_wan.received + s.b_lan.received
            }
        }
    }

    /// Datagrams the kernel dropped at its sockets (full receive buffers).
    fn kernel_drops(&self) -> u64 {
        match self {
            Self::Gateways(a, b) => {
                kernel_udp_drops(a.local_addr()).unwrap_or(0)
                    + kernel_udp_drops(b.local_addr()).unwrap_or(0)
            }
            Self::Forwarders(f) => f.kernel_drops().unwrap_or(0),
        }
    }

    fn stop(self) {
        match self {
            Self::Gateways(a, b) => {
                a.stop();
                b.stop();
            }
            Self::Forwarders(f) => {
                f.stop();
            }
        }
    }
}

/// A free loopback UDP port (free when asked; the gateway binds it next).
fn free_port() -> io::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

/// The gateway pair between `pbx_a` and `pbx_b`, talking to each other
/// directly, with room for the bench's largest step.
fn gateways(pbx_a: SocketAddr, pbx_b: SocketAddr, opts: &BenchOptions) -> io::Result<System> {
    let (gw_a, gw_b) = (free_port()?, free_port()?);
    let tweak = |c: &mut iax2_config::Config| {
        if let Some(n) = opts.workers.and_then(std::num::NonZeroUsize::new) {
            c.workers = n;
        }
        c.udp_gso = opts.gateway_gso;
    };
    let a = SITE_A.start_with(gw_a, pbx_a, gw_b, Some(opts.max_calls), tweak)?;
    let b = SITE_B.start_with(gw_b, pbx_b, gw_a, Some(opts.max_calls), tweak)?;
    Ok(System::Gateways(a, b))
}

/// The trunk tick of the example configuration, ms.
fn trunkfreq_ms() -> u32 {
    iax2_config::from_yaml_str(SITE_A.yaml, SITE_A.file)
        .ok()
        .and_then(|c| {
            c.peers
                .iter()
                .find_map(|p| p.trunk.as_ref().map(|t| u32::from(t.freq.as_millis())))
        })
        .unwrap_or(20)
}

/// The worker count of the example configuration.
fn example_workers() -> usize {
    iax2_config::from_yaml_str(SITE_A.yaml, SITE_A.file).map_or(1, |c| c.workers.get())
}

/// Runs one ramp.
fn ramp(opts: &BenchOptions, baseline: bool, limit_ms: f64) -> io::Result<Ramp> {
    let origin = Instant::now();
    let (mut pbx_a, pbx_b) = pbx_pair(
        [10, 20],
        opts.threads,
        opts.codec,
        opts.ptime_ms,
        None,
        origin,
    )?;
    let (a_addr, b_addr) = (pbx_a.local_addr(), pbx_b.local_addr());
    let system = if baseline {
        System::Forwarders(ForwarderPair::start(ForwarderConfig {
            bind_ip: a_addr.ip(),
            pbx_a: a_addr,
            pbx_b: b_addr,
            segmentation: opts.forwarder_gso,
        })?)
    } else {
        gateways(a_addr, b_addr, opts)?
    };
    let name = if baseline { "baseline" } else { "gateway" };
    let mut result = Ramp::default();
    let mut failures = 0;
    let mut calls = 0usize;
    let step = opts.step.max(1);
    while calls + step <= opts.max_calls.max(step) {
        let target = calls + step;
        let s = one_step(opts, &mut pbx_a, &pbx_b, &system, calls, target, limit_ms)?;
        calls = target;
        if opts.progress {
            eprintln!(
                "{name:>8} {:>6} calls: up {:>6}  loss {:>8.4}%  p99 {:>7.2} ms  voice {:>8.0}/s  {:>5.2} us/frame  sut {:.2} gen {:.2} cores  kernel drops sut {} gen {}  machine {:.0}% busy  {}",
                s.calls,
                s.calls_up,
                s.loss_ratio * 100.0,
                s.latency_ms.p99,
                s.packets_per_s,
                s.cpu_us_per_packet,
                s.sut_cores,
                s.generator_cores,
                s.sut_kernel_drops,
                s.generator_kernel_drops,
                s.machine_busy * 100.0,
                if s.pass {
                    "pass".to_owned()
                } else {
                    format!("FAIL (limited by the {})", s.limited_by)
                }
            );
        }
        if s.pass {
            result.max_calls = result.max_calls.max(s.calls);
            failures = 0;
        } else {
            failures += 1;
        }
        result.steps.push(s);
        if failures >= opts.failures_to_stop {
            break;
        }
    }
    pbx_a.hangup_all(16);
    wait_until(Duration::from_secs(15), || {
        pbx_a.active_calls() == 0 && pbx_b.active_calls() == 0
    });
    drop(pbx_a.stop());
    drop(pbx_b.stop());
    system.stop();
    Ok(result)
}

/// The counters a step's window starts and ends with.
struct Reading {
    a: crate::EndpointStats,
    b: crate::EndpointStats,
    /// Datagrams the system under test received.
    datagrams_in: u64,
    /// Datagrams the kernel dropped at the PBXs' sockets.
    generator_drops: u64,
    /// Datagrams the kernel dropped at the system under test's sockets.
    system_drops: u64,
    cpu: CpuSnapshot,
}

impl Reading {
    fn take(pbx_a: &DriverGroup, pbx_b: &DriverGroup, system: &System) -> Self {
        let drops = |g: &DriverGroup| kernel_udp_drops(g.local_addr()).unwrap_or(0);
        Self {
            a: pbx_a.stats(),
            b: pbx_b.stats(),
            datagrams_in: system.datagrams_in(),
            generator_drops: drops(pbx_a) + drops(pbx_b),
            system_drops: system.kernel_drops(),
            cpu: CpuSnapshot::take(),
        }
    }
}

/// Grows the calls from `from` to `to` and measures a window.
fn one_step(
    opts: &BenchOptions,
    pbx_a: &mut DriverGroup,
    pbx_b: &DriverGroup,
    system: &System,
    from: usize,
    to: usize,
    limit_ms: f64,
) -> io::Result<Step> {
    let entry = system.entry();
    let start = Instant::now();
    let mut originated = from;
    while originated < to {
        let due = from + (start.elapsed().as_secs_f64() * opts.rate).ceil() as usize;
        let due = due.min(to);
        if due > originated {
            pbx_a.originate(entry, "2001", due - originated);
            originated = due;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let all_up = wait_until(Duration::from_secs(20), || {
        pbx_a.stats().calls_answered >= to as u64 && pbx_b.stats().calls_answered >= to as u64
    });
    std::thread::sleep(opts.settle);
    // The window.
    let _ = pbx_a.measurements(true);
    let _ = pbx_b.measurements(true);
    let r0 = Reading::take(pbx_a, pbx_b, system);
    std::thread::sleep(opts.window);
    let mut m = pbx_a.measurements(true);
    m.add(&pbx_b.measurements(true));
    let r1 = Reading::take(pbx_a, pbx_b, system);
    let (cpu0, cpu1) = (&r0.cpu, &r1.cpu);
    let secs = cpu1.wall_seconds_since(cpu0).max(1e-3);
    let unique = |s: &crate::EndpointStats| s.voice_received - s.voice_duplicates;
    let got = (unique(&r1.a) + unique(&r1.b)).saturating_sub(unique(&r0.a) + unique(&r0.b));
    let lost =
        (r1.a.voice_lost + r1.b.voice_lost).saturating_sub(r0.a.voice_lost + r0.b.voice_lost);
    let loss_ratio = if got + lost == 0 {
        1.0
    } else {
        lost as f64 / (got + lost) as f64
    };
    let sut = cpu1.prefix_seconds_since(cpu0, system.thread_prefix());
    let generator = cpu1.prefix_seconds_since(cpu0, crate::cpu::ENDPOINT_PREFIX);
    let datagrams = r1.datagrams_in.saturating_sub(r0.datagrams_in);
    let per = |n: u64| if n == 0 { 0.0 } else { sut / n as f64 };
    let latency = Quantiles::of(&m.latency_us);
    let calls_up = r1.a.calls_answered.min(r1.a.active_calls as u64);
    let busiest = crate::cpu::busiest_thread_seconds(
        &cpu0.threads,
        &cpu1.threads,
        crate::cpu::ENDPOINT_PREFIX,
    ) / secs;
    let machine_busy = cpu1.machine_busy_since(cpu0).unwrap_or(0.0);
    let generator_drops = r1.generator_drops.saturating_sub(r0.generator_drops);
    // A saturated box drops wherever a queue overflows first, so its
    // drops say nothing about the culprit.
    let limited_by = if machine_busy > 0.95 {
        "machine"
    } else if busiest > 0.9 || generator_drops > 0 {
        "generator"
    } else {
        "system"
    };
    Ok(Step {
        calls: to as u64,
        calls_up,
        loss_ratio,
        latency_ms: latency,
        packets_per_s: round3(got as f64 / secs),
        cpu_s_per_packet: per(got),
        cpu_us_per_packet: round3(per(got) * 1e6),
        cpu_us_per_datagram: round3(per(datagrams) * 1e6),
        sut_cores: round3(sut / secs),
        generator_cores: round3(generator / secs),
        machine_busy: round3(machine_busy),
        generator_kernel_drops: generator_drops,
        generator_busiest_thread: round3(busiest),
        limited_by: limited_by.to_owned(),
        sut_kernel_drops: r1.system_drops.saturating_sub(r0.system_drops),
        process_rss_bytes: cpu1.rss_bytes.unwrap_or(0),
        pass: all_up
            && calls_up >= to as u64
            && got > 0
            && loss_ratio < opts.max_loss_ratio
            && latency.p99 < limit_ms,
    })
}

/// Runs both ramps, gateway pair first; writes the plot if asked.
pub fn bench(opts: &BenchOptions) -> io::Result<BenchReport> {
    let trunkfreq = trunkfreq_ms();
    let limit_ms = f64::from(trunkfreq) + 10.0;
    let machine = Machine::read();
    if opts.progress {
        eprintln!(
            "bench: up to {} calls in steps of {}, {} s windows; pass: loss < {}%, p99 < {limit_ms} ms; {} cores",
            opts.max_calls,
            opts.step,
            opts.window.as_secs_f64(),
            opts.max_loss_ratio * 100.0,
            machine.cores
        );
    }
    let (mut gateways, mut baselines) = (Vec::new(), Vec::new());
    for _ in 0..opts.repeat.max(1) {
        gateways.push(ramp(opts, false, limit_ms)?);
        baselines.push(ramp(opts, true, limit_ms)?);
    }
    let gateway = median(gateways);
    let baseline = median(baselines);
    let ratio = if baseline.max_calls == 0 {
        0.0
    } else {
        round3(gateway.max_calls as f64 / baseline.max_calls as f64)
    };
    let report = BenchReport {
        gateway,
        baseline,
        ratio,
        criteria: Criteria {
            max_loss_ratio: opts.max_loss_ratio,
            max_p99_ms: limit_ms,
            trunkfreq_ms: trunkfreq,
            window_s: opts.window.as_secs_f64(),
            codec: opts.codec.name().to_owned(),
            ptime_ms: opts.ptime_ms,
            gateway_workers: opts.workers.unwrap_or_else(example_workers),
            gateway_gso: opts.gateway_gso,
            forwarder_gso: opts.forwarder_gso,
        },
        machine,
    };
    if let Some(path) = &opts.plot {
        crate::plot::write_svg(path, &plot_data(&report))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(report)
}

/// The ramp with the median `max_calls` (the lower middle one of an even
/// count), with every ramp's `max_calls` in `runs_max_calls`.
fn median(mut ramps: Vec<Ramp>) -> Ramp {
    let runs: Vec<u64> = ramps.iter().map(|r| r.max_calls).collect();
    ramps.sort_by_key(|r| r.max_calls);
    let mid = ramps.len().saturating_sub(1) / 2;
    let mut m = ramps.into_iter().nth(mid).unwrap_or_default();
    m.runs_max_calls = runs;
    m
}

/// The plot of a bench report.
pub fn plot_data(r: &BenchReport) -> PlotData {
    let series = |name: &str, ramp: &Ramp| Series {
        name: format!("{name} (max {} calls)", ramp.max_calls),
        points: ramp
            .steps
            .iter()
            .map(|s| Point {
                calls: u32::try_from(s.calls).unwrap_or(u32::MAX),
                loss_ratio: s.loss_ratio,
                p99_ms: s.latency_ms.p99,
            })
            .collect(),
    };
    PlotData {
        title: format!(
            "Concurrent {} {} ms calls, {} cores: gateway pair vs bare forwarder pair (ratio {:.2})",
            r.criteria.codec, r.criteria.ptime_ms, r.machine.cores, r.ratio
        ),
        latency_limit_ms: r.criteria.max_p99_ms,
        series: vec![
            series("gateway pair", &r.gateway),
            series("bare forwarder pair", &r.baseline),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_with(max: u64) -> Ramp {
        Ramp {
            max_calls: max,
            steps: vec![Step {
                calls: max,
                ..Step::default()
            }],
            runs_max_calls: Vec::new(),
        }
    }

    #[test]
    fn median_ramp_keeps_every_runs_maximum() {
        let m = median(vec![ramp_with(900), ramp_with(700), ramp_with(800)]);
        assert_eq!(m.max_calls, 800);
        assert_eq!(m.steps[0].calls, 800);
        assert_eq!(m.runs_max_calls, vec![900, 700, 800]);
        // An even count takes the lower middle one: never flattering.
        assert_eq!(median(vec![ramp_with(1000), ramp_with(600)]).max_calls, 600);
        assert_eq!(median(Vec::new()).max_calls, 0);
    }
}
