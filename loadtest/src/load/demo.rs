//! `loadtest demo`: a gateway pair and two emulated PBXs in one process,
//! on loopback, carrying real calls.
//!
//! The gateways run the example configurations (`config/examples/`)
//! unchanged but for their addresses: every socket takes a free loopback
//! port, so the demo never collides with a running gateway, and the WAN
//! leg passes through a counting tap ([`crate::tap`]), which gives the
//! report's exact WAN figures and, on request, a pcap of the WAN for
//! tshark.
//!
//! ```text
//! PBX A --> gateway A --> tap --> gateway B --> PBX B
//! ```
//!
//! PBX B demands a call token and MD5 authentication, as an Asterisk peer
//! with `requirecalltoken=yes` and a secret would; both stay end to end
//! through the pair.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use iax2_gateway::GatewayHandle;

use crate::cpu::CpuSnapshot;
use crate::driver::{spawn_group, DriverConfig, DriverGroup};
use crate::endpoint::{Codec, Endpoint, EndpointConfig};
use crate::load::report::{CallCounts, Cpu, Drops, Dtmf, Media, Quantiles, RunReport, Setup, Wan};
use crate::load::run::{self, Outcome, Plan};
use crate::tap::{kernel_udp_drops, CaptureLimits, Leg, Tap, TapConfig};

/// The example configuration of site A.
pub const SITE_A: &str = include_str!("../../../config/examples/site-a.yaml");
/// The example configuration of site B.
pub const SITE_B: &str = include_str!("../../../config/examples/site-b.yaml");

/// The MD5 secret PBX B demands and PBX A knows.
const SECRET: &str = "demo-secret";

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Concurrent calls.
    pub calls: usize,
    /// From the first NEW to the hangup.
    pub duration: Duration,
    /// Calls originated per second.
    pub rate: f64,
    /// The codec.
    pub codec: Codec,
    /// Voice frame interval, milliseconds.
    pub ptime_ms: u32,
    /// Threads per emulated PBX.
    pub threads: usize,
    /// Print a progress line every second.
    pub progress: bool,
    /// Write the WAN leg (tap side A) to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Each call sends a DTMF digit this often (`None`: none).
    pub dtmf_interval: Option<Duration>,
}

impl Default for DemoOptions {
    /// 300 calls for 30 s, G.711 u-law 20 ms, a DTMF digit every 5 s per
    /// call, 2 threads per PBX.
    fn default() -> Self {
        Self {
            calls: 300,
            duration: Duration::from_secs(30),
            rate: 200.0,
            codec: Codec::Ulaw,
            ptime_ms: 20,
            threads: 2,
            progress: true,
            pcap: None,
            dtmf_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// Rewrites the `key: value` line of the example whose value is `old`.
fn readdress(yaml: &str, key: &str, old: &str, new: SocketAddr) -> io::Result<String> {
    let from = format!("{key}: {old}");
    if !yaml.contains(&from) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the example configuration has no `{from}`"),
        ));
    }
    Ok(yaml.replacen(&from, &format!("{key}: {new}"), 1))
}

/// Starts the gateway of one site from its example, with its PBX at `pbx`
/// and its far gateway at `far`.
fn gateway(
    example: &str,
    origin: &str,
    own: &str,
    pbx_old: &str,
    pbx: SocketAddr,
    far_old: &str,
    far: SocketAddr,
) -> io::Result<GatewayHandle> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let yaml = readdress(example, "listen", own, any)?;
    let yaml = readdress(&yaml, "host", pbx_old, pbx)?;
    let yaml = readdress(&yaml, "host", far_old, far)?;
    let config = iax2_config::from_yaml_str(&yaml, origin)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    iax2_gateway::start(&config)
}

/// An emulated PBX with `threads` threads on a free loopback port.
pub fn pbx(
    seed: u64,
    threads: usize,
    codec: Codec,
    ptime_ms: u32,
    callee: bool,
    dtmf_interval: Option<Duration>,
    origin: std::time::Instant,
) -> io::Result<DriverGroup> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    // Nobody reads the per-call events of a load run: keep none.
    let dc = DriverConfig {
        origin,
        max_events: 0,
        ..DriverConfig::default()
    };
    spawn_group(addr, threads, dc, |shard| {
        let mut cfg = EndpointConfig::new(addr, seed.wrapping_add(u64::from(shard.index) << 32));
        cfg.codec = codec;
        cfg.ptime_ms = ptime_ms;
        cfg.secret = Some(SECRET.to_owned());
        cfg.require_calltoken = callee;
        cfg.keep_ended_calls = false;
        cfg.dtmf_interval = dtmf_interval;
        cfg.shard = Some(shard);
        Endpoint::new(cfg)
    })
}

/// The report's media, calls and setup sections from an outcome.
pub fn summarize(mode: &str, codec: Codec, ptime_ms: u32, o: &Outcome) -> RunReport {
    let callee = o.callee.clone().unwrap_or_default();
    let a = &o.caller;
    RunReport {
        mode: mode.to_owned(),
        codec: codec_name(codec).to_owned(),
        ptime_ms,
        duration_s: o.elapsed.as_secs_f64(),
        calls: CallCounts {
            attempted: a.calls_originated,
            answered: a.calls_answered,
            failed: a.calls_originated.saturating_sub(a.calls_answered),
        },
        media: Media {
            sent: o.voice_sent(),
            received: o.voice_received(),
            lost: o.voice_lost(),
            loss_ratio: o.loss_ratio(),
            duplicates: a.voice_duplicates + callee.voice_duplicates,
            reordered: a.voice_reordered + callee.voice_reordered,
            corrupt: a.voice_corrupt + callee.voice_corrupt,
            latency_ms: Quantiles::of(&o.measure.latency_us),
            jitter_ms: Quantiles::of(&o.measure.jitter_us),
        },
        dtmf: Dtmf {
            sent: a.dtmf_sent + callee.dtmf_sent,
            received: a.dtmf_received + callee.dtmf_received,
        },
        setup_ms: {
            let q = Quantiles::of(&o.measure.setup_us);
            Setup {
                p50: q.p50,
                p99: q.p99,
            }
        },
        ..RunReport::default()
    }
}

/// The codec's name on the command line.
pub fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Ulaw => "ulaw",
        Codec::Alaw => "alaw",
        Codec::Gsm => "gsm",
        Codec::G729 => "g729",
    }
}

/// Runs the demo; prints the topology to stderr.
pub fn demo(opts: &DemoOptions) -> io::Result<RunReport> {
    let origin = std::time::Instant::now();
    let pbx_b = pbx(
        2,
        opts.threads,
        opts.codec,
        opts.ptime_ms,
        true,
        None,
        origin,
    )?;
    let mut pbx_a = pbx(
        1,
        opts.threads,
        opts.codec,
        opts.ptime_ms,
        false,
        opts.dtmf_interval,
        origin,
    )?;
    let capture = if opts.pcap.is_some() {
        CaptureLimits::default()
    } else {
        CaptureLimits::NONE
    };
    let tap = Tap::bind(&TapConfig {
        capture,
        ..TapConfig::default()
    })?;
    let (a_addr, b_addr) = (pbx_a.local_addr(), pbx_b.local_addr());
    let gw_a = gateway(
        SITE_A,
        "site-a.yaml",
        "127.0.0.1:14569",
        "127.0.0.1:14570",
        a_addr,
        "127.0.0.1:24569",
        tap.side_a_addr(),
    )?;
    let gw_b = gateway(
        SITE_B,
        "site-b.yaml",
        "127.0.0.1:24569",
        "127.0.0.1:24570",
        b_addr,
        "127.0.0.1:14569",
        tap.side_b_addr(),
    )?;
    let tap = tap.start(gw_a.local_addr(), gw_b.local_addr())?;
    let t = tap.addresses();
    eprintln!(
        "PBX A {a_addr} ({n} threads) -> gateway A {} -> WAN tap {} | {} -> gateway B {} -> PBX B {b_addr} ({n} threads)",
        t.gateway_a,
        t.side_a,
        t.side_b,
        t.gateway_b,
        n = opts.threads
    );
    eprintln!(
        "{} calls, {} ms {}, {:.0} calls/s, {:.0} s; CALLTOKEN and MD5 end to end",
        opts.calls,
        opts.ptime_ms,
        codec_name(opts.codec),
        opts.rate,
        opts.duration.as_secs_f64()
    );
    let kdrops = || kernel_udp_drops(a_addr).unwrap_or(0) + kernel_udp_drops(b_addr).unwrap_or(0);
    let kdrops0 = kdrops();
    let cpu0 = CpuSnapshot::take();
    let plan = Plan {
        target: gw_a.local_addr(),
        called: "2001".to_owned(),
        calls: opts.calls,
        rate: opts.rate,
        duration: opts.duration,
        progress: opts.progress,
    };
    let outcome = run::run(&mut pbx_a, Some(&pbx_b), &plan);
    let cpu1 = CpuSnapshot::take();
    let mut report = summarize("demo", opts.codec, opts.ptime_ms, &outcome);
    let wan = tap.stats();
    let (ab, ba) = (&wan.a_to_b, &wan.b_to_a);
    report.wan = Wan {
        packets: ab.datagrams + ba.datagrams,
        bytes: ab.bytes + ba.bytes,
        trunk_frames: ab.trunk_frames + ba.trunk_frames,
        trunk_entries: ab.trunk_entries + ba.trunk_entries,
        entries_per_frame: 0.0,
    };
    if report.wan.trunk_frames > 0 {
        report.wan.entries_per_frame =
            super::report::round3(report.wan.trunk_entries as f64 / report.wan.trunk_frames as f64);
    }
    report.cpu = Cpu {
        generator_s: cpu1.prefix_seconds_since(&cpu0, crate::cpu::ENDPOINT_PREFIX),
        gateways_s: cpu1.prefix_seconds_since(&cpu0, crate::cpu::GATEWAY_WORKER_PREFIX),
        process_s: cpu1.process_seconds_since(&cpu0).unwrap_or(0.0),
        machine_busy: cpu1.machine_busy_since(&cpu0).unwrap_or(0.0),
        wall_s: cpu1.wall_seconds_since(&cpu0),
    };
    let (_, _, handoff) = pbx_a.handoffs();
    let (_, _, handoff_b) = pbx_b.handoffs();
    let (_, ds_a) = pbx_a.stop();
    let (_, ds_b) = pbx_b.stop();
    report.drops = Drops {
        generator_kernel: kdrops().saturating_sub(kdrops0),
        generator_send: ds_a.send_errors + ds_b.send_errors,
        generator_handoff: handoff + handoff_b,
        gateways: gw_a.counters().total_drops() + gw_b.counters().total_drops(),
    };
    let tap_report = tap.stop();
    gw_a.stop();
    gw_b.stop();
    if let Some(path) = &opts.pcap {
        tap_report.capture.write_pcap(path, Leg::A)?;
        eprintln!("WAN capture written to {}", path.display());
    }
    Ok(report)
}
