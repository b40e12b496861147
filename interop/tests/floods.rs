//! Floods against gateway A of a pair of `iax2-gateway run` processes on
//! loopback, each while 100 calls with voice run through the pair:
//!
//! ```text
//! PBX A 127.0.0.1 ---- gateway A ====trunk==== gateway B ---- PBX B 127.0.0.1
//!   flood PBX 127.0.0.2 --/  \-- flood gateway 127.0.0.3
//!   strangers 127.0.0.4
//! ```
//!
//! Gateway A knows two peers for the floods besides its PBX and the far
//! gateway: `pbx-flood` (a PBX, routed to the far side) and `wan-flood` (a
//! trunk gateway peer with no routes), so a flood can come from a peer's
//! address on the PBX side or on the WAN side, as a misbehaving or spoofed
//! peer would send it; a stranger's floods come from many ports of an
//! address no peer has.
//!
//! For each flood (`loadtest flood`'s generators, at a rate a debug build
//! keeps up with on a shared 2-core machine; the full-rate runs are in
//! BENCHMARKS.md): the 100 calls lose no voice frame end to end, either
//! way; a call placed during the flood is answered; every datagram the
//! flood sent is counted in `iax2_gateway_drops_total` by the reason it
//! deserves, exactly, or was dropped by the kernel on the gateway's full
//! socket (counted in `/proc/net/udp`; none expected at these rates, and
//! the zero-loss check would catch them); and gateway A's resident memory
//! during the flood stays within [`RSS_BOUND_KIB`] of what it was with the
//! calls up before it. No assertion is about time.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use iax2_interop::lab::{emulated_pbx, free_loopback_addr, mute_all, wait_for};
use iax2_interop::process::{free_tcp_addr, gateway_binary, GatewayProcess, Metrics};
use iax2_loadtest::driver::DriverHandle;
use iax2_loadtest::flood::{self, malformed, FloodOptions, FloodReport, Kind};

/// Calls up through the pair during each flood.
const CALLS: usize = 100;

/// Datagrams per second and seconds of each flood in these tests.
const RATE: u64 = 10_000;
const SECONDS: u64 = 2;

/// How much gateway A's resident memory may grow during a flood, KiB.
///
/// Everything a flood can make the gateway hold is allocated at start
/// and bounded: the call table (32,765 slots) and the per-source
/// admission table (65,536 entries, 2.5 MiB) are fixed arrays; receive
/// and send batches are preallocated per worker. A flood can only touch
/// pages of those not touched yet: table slots for the entries a peer's
/// NEW flood opens (at most `maxcallnumbers` = 4096 of them per source;
/// the memory run in BENCHMARKS.md measured 0.92 MiB per 1,000 calls
/// including their buffers, so under 4 MiB), the admission sets of new
/// source addresses (at most the 2.5 MiB table) and the allocator's
/// arenas of threads that were idle. 16 MiB is that, twice over.
const RSS_BOUND_KIB: u64 = 16 * 1024;

/// The floods run one at a time: each measures a process's memory, and
/// two at once would share the machine's two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The two gateways, the two PBXs and the flood peers' addresses.
struct Lab {
    a: GatewayProcess,
    b: GatewayProcess,
    pbx_a: DriverHandle,
    pbx_b: DriverHandle,
    /// `pbx-flood`'s address (127.0.0.2).
    flood_pbx: SocketAddr,
    /// `wan-flood`'s address (127.0.0.3).
    flood_wan: SocketAddr,
    /// Calls placed by PBX A: the first `CALLS`, and one per flood.
    placed: Cell<usize>,
    /// Voice PBX B received from and sent to a call of the flood (the
    /// DTMF flood's), not PBX A's.
    flood_voice: Cell<(u64, u64)>,
    /// Calls of the flood answered by PBX B.
    flood_calls: Cell<u64>,
}

fn bind(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).unwrap()
}

impl Lab {
    /// Starts both gateways and PBXs, and puts up `CALLS` calls from PBX A
    /// to PBX B; `extra_a` is more top-level YAML for gateway A.
    fn start(extra_a: &str) -> Self {
        let bin = gateway_binary();
        let (sock_a, sock_b) = (bind("127.0.0.1"), bind("127.0.0.1"));
        let flood_pbx = bind("127.0.0.2").local_addr().unwrap();
        let flood_wan = bind("127.0.0.3").local_addr().unwrap();
        let (listen_a, listen_b) = (free_loopback_addr(), free_loopback_addr());
        let (admin_a, admin_b) = (free_tcp_addr(), free_tcp_addr());
        let common = "workers: 2\nlog:\n  level: error\ntimeouts:\n  hangup_linger: 1\n";
        let yaml_a = format!(
            "listen: {listen_a}\nadmin:\n  listen: {admin_a}\n{common}{extra_a}peers:
  pbx-a:
    host: {}
    kind: pbx
  pbx-flood:
    host: {flood_pbx}
    kind: pbx
  wan-flood:
    host: {flood_wan}
    kind: gateway
    trunk: true
    keepalive: 0
  far:
    host: {listen_b}
    kind: gateway
    trunk: true
routes:
  - from: far
    to: pbx-a
  - from: pbx-a
    to: far
  - from: pbx-flood
    to: far
",
            sock_a.local_addr().unwrap()
        );
        let yaml_b = format!(
            "listen: {listen_b}\nadmin:\n  listen: {admin_b}\n{common}peers:
  pbx-b:
    host: {}
    kind: pbx
  far:
    host: {listen_a}
    kind: gateway
    trunk: true
routes:
  - from: far
    to: pbx-b
  - from: pbx-b
    to: far
",
            sock_b.local_addr().unwrap()
        );
        let a = GatewayProcess::spawn(&bin, &yaml_a, listen_a, admin_a);
        let b = GatewayProcess::spawn(&bin, &yaml_b, listen_b, admin_b);
        let pbx_a = emulated_pbx(sock_a, 71, false, |_| {});
        let pbx_b = emulated_pbx(sock_b, 72, true, |_| {});
        assert_eq!(pbx_a.originate(listen_a, "700", CALLS).len(), CALLS);
        wait_for("every call answered", Duration::from_secs(60), || {
            pbx_a.stats().calls_answered == CALLS as u64
                && pbx_b.stats().calls_answered == CALLS as u64
        });
        // The voice of every call flows before the flood.
        std::thread::sleep(Duration::from_millis(500));
        Self {
            a,
            b,
            pbx_a,
            pbx_b,
            flood_pbx,
            flood_wan,
            placed: Cell::new(CALLS),
            flood_voice: Cell::new((0, 0)),
            flood_calls: Cell::new(0),
        }
    }

    /// Runs `opts` against gateway A; meanwhile samples A's memory and
    /// places one more call from PBX A, which must be answered.
    fn flood(&self, opts: &FloodOptions) -> Flooded {
        let before = self.a.metrics();
        let kernel_before = self.a.kernel_drops();
        let rss_before = self.a.rss_kib();
        let cpu_before = self.a.cpu_seconds();
        let answered_before = self.pbx_a.stats().calls_answered;
        let (report, rss_peak) = std::thread::scope(|s| {
            let run = s.spawn(|| flood::flood(opts).unwrap());
            let mut peak = rss_before;
            let mut placed = false;
            let started = std::time::Instant::now();
            while !run.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                peak = peak.max(self.a.rss_kib());
                // Late in the flood, once whatever it can fill is full.
                if !placed && started.elapsed() >= opts.duration * 3 / 4 {
                    placed = true;
                    assert_eq!(self.pbx_a.originate(self.a.listen, "701", 1).len(), 1);
                    self.placed.set(self.placed.get() + 1);
                }
            }
            (run.join().unwrap(), peak)
        });
        wait_for(
            "the call placed during the flood answered",
            Duration::from_secs(30),
            || self.pbx_a.stats().calls_answered == answered_before + 1,
        );
        // What the flood left in the socket is read before the counting.
        std::thread::sleep(Duration::from_millis(500));
        let after = self.a.metrics();
        let delta = |m: &Metrics, b: &Metrics| {
            let (m, b) = (m.drops(), b.drops());
            m.into_iter()
                .map(|(r, n)| {
                    let was = b.get(&r).copied().unwrap_or(0);
                    (r, n - was)
                })
                .filter(|(_, n)| *n > 0)
                .collect::<BTreeMap<_, _>>()
        };
        let flooded = Flooded {
            drops: delta(&after, &before),
            kernel_drops: self.a.kernel_drops() - kernel_before,
            rss_before,
            rss_peak,
            cpu: self.a.cpu_seconds() - cpu_before,
            before,
            after,
            report,
        };
        eprintln!(
            "{}  drops at A: {:?}; kernel drops at A: {}; A's RSS {} KiB before, {} KiB at most during; A's CPU {:.2} s",
            flooded.report.table().trim_end(),
            flooded.drops,
            flooded.kernel_drops,
            flooded.rss_before,
            flooded.rss_peak,
            flooded.cpu
        );
        assert_eq!(flooded.report.send_errors, 0, "{:?}", flooded.report);
        assert!(flooded.report.sent > 0);
        assert!(
            flooded.rss_peak <= flooded.rss_before + RSS_BOUND_KIB,
            "gateway A grew from {} to {} KiB",
            flooded.rss_before,
            flooded.rss_peak
        );
        flooded
    }

    /// Ends the calls: not a voice frame lost either way, then every call
    /// hung up and both tables empty.
    fn finish(self) {
        let calls = self.placed.get();
        assert_eq!(
            (mute_all(&self.pbx_a), mute_all(&self.pbx_b)),
            (Some(calls), Some(calls)),
            "every call still up"
        );
        std::thread::sleep(Duration::from_millis(500));
        let (sa, sb) = (self.pbx_a.stats(), self.pbx_b.stats());
        for (name, s) in [("PBX A", &sa), ("PBX B", &sb)] {
            assert!(s.voice_received > 0, "{name}");
            assert_eq!(
                (s.voice_lost, s.voice_corrupt, s.calls_failed),
                (0, 0, 0),
                "{name}: {s:?}"
            );
        }
        let (flood_in, flood_out) = self.flood_voice.get();
        assert_eq!(sa.voice_sent + flood_in, sb.voice_received, "A -> B");
        assert_eq!(sb.voice_sent, sa.voice_received + flood_out, "B -> A");
        assert_eq!(self.pbx_a.hangup_all(16), calls);
        wait_for("PBX B saw every hangup", Duration::from_secs(20), || {
            self.pbx_b.stats().calls_hung_up_by_peer >= calls as u64
        });
        // Every call of PBX A ended answered at both gateways and left
        // their tables (entries a flood opened may stay until their own
        // timeouts, so the far gateway's legs are not counted).
        let answered = calls as u64;
        wait_for(
            "PBX A's calls gone from gateway A",
            Duration::from_secs(20),
            || {
                let m = self.a.metrics();
                m.value("iax2_gateway_calls_active", &[("peer", "pbx-a")]) == 0
                    && m.value(
                        "iax2_gateway_calls_total",
                        &[
                            ("peer", "pbx-a"),
                            ("direction", "in"),
                            ("result", "answered"),
                        ],
                    ) == answered
            },
        );
        wait_for(
            "the calls ended at gateway B",
            Duration::from_secs(20),
            || {
                self.b.metrics().value(
                    "iax2_gateway_calls_total",
                    &[
                        ("peer", "pbx-b"),
                        ("direction", "out"),
                        ("result", "answered"),
                    ],
                ) == answered + self.flood_calls.get()
            },
        );
        drop((self.pbx_a.stop(), self.pbx_b.stop()));
    }
}

/// What one flood did to gateway A.
struct Flooded {
    report: FloodReport,
    /// `drops_total` by reason, the flood's increase (no zeros).
    drops: BTreeMap<String, u64>,
    kernel_drops: u64,
    rss_before: u64,
    rss_peak: u64,
    cpu: f64,
    before: Metrics,
    after: Metrics,
}

impl Flooded {
    fn drops_of(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }

    /// The increase of a counter with these labels.
    fn grew(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.after.value(name, labels) - self.before.value(name, labels)
    }

    /// Drops outside `reasons`.
    fn others(&self, reasons: &[&str]) -> BTreeMap<String, u64> {
        self.drops
            .iter()
            .filter(|(r, _)| !reasons.contains(&r.as_str()))
            .map(|(r, n)| (r.clone(), *n))
            .collect()
    }
}

/// The rate and length of the floods: [`RATE`] and [`SECONDS`], or
/// `FLOOD_RATE` and `FLOOD_SECONDS` from the environment (the full-rate
/// runs of BENCHMARKS.md).
fn options(kind: Kind, target: SocketAddr) -> FloodOptions {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = env("FLOOD_RATE").map_or(RATE, |r| r as u64);
    let seconds =
        env("FLOOD_SECONDS").map_or(Duration::from_secs(SECONDS), Duration::from_secs_f64);
    let mut o = FloodOptions::new(kind, target, rate, seconds);
    o.bind_ip = "127.0.0.4".parse().unwrap();
    o.sources = 64;
    o
}

#[test]
fn a_new_flood_from_many_ports_of_a_stranger_is_dropped_and_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("");
    let f = lab.flood(&options(Kind::New, lab.a.listen));
    // Every NEW is a stranger's: dropped unanswered, before any state.
    assert_eq!(f.drops_of("stranger") + f.kernel_drops, f.report.sent);
    assert_eq!(f.others(&["stranger"]), BTreeMap::new());
    assert_eq!(f.report.replies, 0);
    lab.finish();
}

#[test]
fn malformed_floods_from_a_pbx_peer_and_a_trunk_peer_are_counted_as_malformed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("");
    // From the PBX side: trunk frames are refused before they are read
    // (a PBX peer without `trunk: true` may not send them); all else is
    // malformed.
    let mut o = options(Kind::Malformed, lab.a.listen);
    o.bind = Some(lab.flood_pbx);
    let f = lab.flood(&o);
    let trunk: u64 = malformed::TRUNK_CATEGORIES
        .iter()
        .map(|c| f.report.categories[*c])
        .sum();
    assert_eq!(f.kernel_drops, 0);
    assert_eq!(f.drops_of("trunk_not_allowed"), trunk);
    assert_eq!(f.drops_of("malformed"), f.report.sent - trunk);
    assert_eq!(
        f.others(&["malformed", "trunk_not_allowed"]),
        BTreeMap::new()
    );
    // From the WAN side (a trunk peer): every one is malformed.
    let mut o = options(Kind::Malformed, lab.a.listen);
    o.bind = Some(lab.flood_wan);
    o.seed = 2;
    let f = lab.flood(&o);
    assert_eq!(f.kernel_drops, 0);
    assert_eq!(f.drops_of("malformed"), f.report.sent);
    assert_eq!(f.others(&["malformed"]), BTreeMap::new());
    // From strangers: each is a stranger's, unread.
    let f = lab.flood(&options(Kind::Malformed, lab.a.listen));
    assert_eq!(f.drops_of("stranger") + f.kernel_drops, f.report.sent);
    assert_eq!(f.others(&["stranger"]), BTreeMap::new());
    lab.finish();
}

#[test]
fn trunk_frames_from_strangers_are_dropped_and_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("");
    let f = lab.flood(&options(Kind::StrangerTrunk, lab.a.listen));
    assert_eq!(f.drops_of("stranger") + f.kernel_drops, f.report.sent);
    assert_eq!(f.others(&["stranger"]), BTreeMap::new());
    assert_eq!(
        f.grew("iax2_gateway_stranger_trunk_frames_total", &[]) + f.kernel_drops,
        f.report.sent
    );
    lab.finish();
}

/// The flood comes from `pbx-flood`'s own address (a PBX gone wrong, or
/// a spoofer who knows it): admission control holds it to its NEW rate
/// and refuses the rest once it holds its share. Each entry it opens
/// waits for the far side's first reply (PBX B answers each NEW with a
/// stateless CALLTOKEN, which opens nothing), so the share that binds is
/// `max_unanswered_per_source` (1024 by default), a quarter of the whole
/// gateway's `max_unanswered`: PBX A's call placed late in the flood
/// still connects. Default limits throughout.
#[test]
fn a_new_flood_from_a_pbx_peer_is_held_to_its_admission_limits() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("");
    let mut o = options(Kind::New, lab.a.listen);
    o.bind = Some(lab.flood_pbx);
    o.called = "2001".into();
    let f = lab.flood(&o);
    // Fresh call numbers only: no NEW of the flood repeats an earlier one
    // (a repeat would continue the exchange its number opened).
    assert!(f.report.sent < 32_765, "keep rate x seconds under 32,765");
    // Each NEW either opened a table entry (relayed to the far side) or
    // was refused by admission control, counted by reason.
    let active = f
        .after
        .value("iax2_gateway_calls_active", &[("peer", "pbx-flood")]);
    let ended: u64 = ["answered", "rejected", "unanswered", "timeout"]
        .iter()
        .map(|r| {
            f.after.value(
                "iax2_gateway_calls_total",
                &[("peer", "pbx-flood"), ("direction", "in"), ("result", r)],
            )
        })
        .sum();
    let refused = ["new_rate", "source_limit"];
    let refusals: u64 = refused.iter().map(|r| f.drops_of(r)).sum();
    assert_eq!(f.kernel_drops, 0);
    assert_eq!(active + ended + refusals, f.report.sent, "{:?}", f.drops);
    let share = iax2_config::Admission::default().max_unanswered_per_source;
    assert_eq!(
        active + ended,
        u64::from(share),
        "the source's share, no more"
    );
    assert!(f.drops_of("new_rate") > 0 && f.drops_of("source_limit") > 0);
    assert_eq!(f.others(&refused), BTreeMap::new());
    lab.finish();
}

#[test]
fn a_dtmf_flood_inside_one_call_is_cut_to_its_rate_and_the_call_still_hangs_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("");
    let control_b = lab
        .b
        .metrics()
        .drops()
        .get("control_flood")
        .copied()
        .unwrap_or(0);
    let dup_before = lab.pbx_b.stats().dtmf_duplicates;
    let mut o = options(Kind::Dtmf, lab.a.listen);
    o.bind = Some(lab.flood_pbx);
    o.called = "2001".into();
    let f = lab.flood(&o);
    let call = f.report.call.clone().unwrap();
    assert!(call.answered && call.hung_up, "{call}");
    assert_eq!(call.voice_lost, 0, "{call}");
    assert_eq!(f.kernel_drops, 0);
    // The copies over the call's rate are dropped as control_flood at A;
    // the others (and the digit itself) reach PBX B, which takes them as
    // duplicates of the digit.
    let control_a = f.drops_of("control_flood");
    let control_b = lab
        .b
        .metrics()
        .drops()
        .get("control_flood")
        .copied()
        .unwrap_or(0)
        - control_b;
    assert!(control_a > 0 && control_a < f.report.sent, "{:?}", f.drops);
    let dup_at_b = lab.pbx_b.stats().dtmf_duplicates - dup_before;
    assert_eq!(
        control_a + control_b + dup_at_b,
        f.report.sent,
        "{:?}",
        f.drops
    );
    assert_eq!(f.others(&["control_flood"]), BTreeMap::new());
    // The flooding call's HANGUP went through: PBX B saw it, and the call
    // left both tables, ended answered (the only call ended yet).
    wait_for(
        "the flooding call gone at A",
        Duration::from_secs(20),
        || {
            lab.a
                .metrics()
                .value("iax2_gateway_calls_active", &[("peer", "pbx-flood")])
                == 0
        },
    );
    wait_for(
        "the flooding call ended at B",
        Duration::from_secs(20),
        || {
            lab.b.metrics().value(
                "iax2_gateway_calls_total",
                &[
                    ("peer", "pbx-b"),
                    ("direction", "out"),
                    ("result", "answered"),
                ],
            ) == 1
        },
    );
    lab.flood_voice.set((call.voice_sent, call.voice_received));
    lab.flood_calls.set(1);
    assert_eq!(lab.pbx_b.stats().calls_hung_up_by_peer, 1);
    lab.finish();
}
