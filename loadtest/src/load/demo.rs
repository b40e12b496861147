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
use crate::load::report::{Cpu, Drops, RunReport, Wan};
use crate::load::run::{self, Plan};
use crate::tap::{kernel_udp_drops, CaptureLimits, Leg, Tap, TapConfig};

/// One of the example configurations (`config/examples/`) and the
/// addresses it names, which a run on free ports replaces.
#[derive(Debug, Clone, Copy)]
pub struct ExampleSite {
    /// The file's text.
    pub yaml: &'static str,
    /// The file's name, for error messages.
    pub file: &'static str,
    /// Its `listen` address.
    pub listen: &'static str,
    /// Its PBX's `host`.
    pub pbx: &'static str,
    /// Its far gateway's `host`.
    pub far: &'static str,
}

/// Site A of the example pair.
pub const SITE_A: ExampleSite = ExampleSite {
    yaml: include_str!("../../../config/examples/site-a.yaml"),
    file: "site-a.yaml",
    listen: "127.0.0.1:14569",
    pbx: "127.0.0.1:14570",
    far: "127.0.0.1:24569",
};

/// Site B of the example pair.
pub const SITE_B: ExampleSite = ExampleSite {
    yaml: include_str!("../../../config/examples/site-b.yaml"),
    file: "site-b.yaml",
    listen: "127.0.0.1:24569",
    pbx: "127.0.0.1:24570",
    far: "127.0.0.1:14569",
};

/// The `maxcalls` the example PBXs have.
const EXAMPLE_MAXCALLS: usize = 2000;

impl ExampleSite {
    /// Starts this site's gateway listening on `listen`, with its PBX at
    /// `pbx` and its far gateway at `far`; with `maxcalls`, its PBX may
    /// have that many calls if it is more than the example's.
    pub fn start(
        &self,
        listen: SocketAddr,
        pbx: SocketAddr,
        far: SocketAddr,
        maxcalls: Option<usize>,
    ) -> io::Result<GatewayHandle> {
        self.start_with(listen, pbx, far, maxcalls, |_| {})
    }

    /// This site's configuration text with the addresses of
    /// [`start`](Self::start) (for a gateway run as its own process).
    pub fn yaml_for(
        &self,
        listen: SocketAddr,
        pbx: SocketAddr,
        far: SocketAddr,
        maxcalls: Option<usize>,
    ) -> io::Result<String> {
        let yaml = rewrite(self.yaml, "listen", self.listen, listen)?;
        let yaml = rewrite(&yaml, "host", self.pbx, pbx)?;
        let mut yaml = rewrite(&yaml, "host", self.far, far)?;
        if let Some(n) = maxcalls.filter(|&n| n > EXAMPLE_MAXCALLS) {
            yaml = rewrite(&yaml, "maxcalls", &EXAMPLE_MAXCALLS.to_string(), n)?;
        }
        Ok(yaml)
    }

    /// Like [`start`](Self::start), with the parsed configuration changed
    /// by `tweak` first (the bench's worker count and segmented sends).
    pub fn start_with(
        &self,
        listen: SocketAddr,
        pbx: SocketAddr,
        far: SocketAddr,
        maxcalls: Option<usize>,
        tweak: impl FnOnce(&mut iax2_config::Config),
    ) -> io::Result<GatewayHandle> {
        let yaml = self.yaml_for(listen, pbx, far, maxcalls)?;
        let mut config = iax2_config::from_yaml_str(&yaml, self.file)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        tweak(&mut config);
        iax2_gateway::start(&config)
    }
}

/// The MD5 secret PBX B demands and PBX A knows.
pub(crate) const SECRET: &str = "demo-secret";

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

/// Rewrites the `key: value` line of an example whose value is `old`.
pub(crate) fn rewrite(
    yaml: &str,
    key: &str,
    old: &str,
    new: impl std::fmt::Display,
) -> io::Result<String> {
    let from = format!("{key}: {old}");
    if !yaml.contains(&from) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the example configuration has no `{from}`"),
        ));
    }
    Ok(yaml.replacen(&from, &format!("{key}: {new}"), 1))
}

/// One emulated PBX of a run: A calls, B (`callee`) answers and demands
/// a call token and MD5.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PbxSpec {
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) codec: Codec,
    pub(crate) ptime_ms: u32,
    pub(crate) callee: bool,
    /// A DTMF digit per call this often (the caller only).
    pub(crate) dtmf_interval: Option<Duration>,
    /// Keep the records of ended calls (to classify them afterwards).
    pub(crate) keep_ended_calls: bool,
}

/// An emulated PBX on a free loopback port.
pub(crate) fn pbx(spec: PbxSpec, origin: std::time::Instant) -> io::Result<DriverGroup> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    // Per-call events are not read in a load run: keep none.
    let dc = DriverConfig {
        origin,
        max_events: 0,
        ..DriverConfig::default()
    };
    spawn_group(addr, spec.threads, dc, |shard| {
        let seed = spec.seed.wrapping_add(u64::from(shard.index) << 32);
        let mut cfg = EndpointConfig::new(addr, seed);
        cfg.codec = spec.codec;
        cfg.ptime_ms = spec.ptime_ms;
        cfg.secret = Some(SECRET.to_owned());
        cfg.require_calltoken = spec.callee;
        cfg.keep_ended_calls = spec.keep_ended_calls;
        cfg.dtmf_interval = if spec.callee {
            None
        } else {
            spec.dtmf_interval
        };
        cfg.shard = Some(shard);
        Endpoint::new(cfg)
    })
}

/// The two emulated PBXs of a run, on free loopback ports with `threads`
/// threads each and seeds `seeds`: A calls (sending a DTMF digit every
/// `dtmf_interval`), B answers and demands a call token and MD5.
pub fn pbx_pair(
    seeds: [u64; 2],
    threads: usize,
    codec: Codec,
    ptime_ms: u32,
    dtmf_interval: Option<Duration>,
    origin: std::time::Instant,
) -> io::Result<(DriverGroup, DriverGroup)> {
    let spec = |seed, callee| PbxSpec {
        seed,
        threads,
        codec,
        ptime_ms,
        callee,
        dtmf_interval,
        keep_ended_calls: false,
    };
    let b = pbx(spec(seeds[1], true), origin)?;
    let a = pbx(spec(seeds[0], false), origin)?;
    Ok((a, b))
}

/// Runs the demo; prints the topology to stderr.
pub fn demo(opts: &DemoOptions) -> io::Result<RunReport> {
    let origin = std::time::Instant::now();
    let (mut pbx_a, pbx_b) = pbx_pair(
        [1, 2],
        opts.threads,
        opts.codec,
        opts.ptime_ms,
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
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let gw_a = SITE_A.start(any, a_addr, tap.side_a_addr(), None)?;
    let gw_b = SITE_B.start(any, b_addr, tap.side_b_addr(), None)?;
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
        opts.codec.name(),
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
    let mut report = outcome.report("demo", opts.codec, opts.ptime_ms);
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
