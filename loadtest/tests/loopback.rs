//! The gateway pair under load on real loopback sockets (must-shows 2 and
//! 3 of the relay issue).
//!
//! ```text
//! PBX A --mini--> gateway A --trunk--> [WAN tap] --trunk--> gateway B --mini--> PBX B
//! ```
//!
//! Two emulated PBXs, two in-process gateways (two workers each, trunking
//! to each other with trunk timestamps) and the WAN tap between the
//! gateways, all in this process on 127.0.0.1 with free ports. PBX A
//! places 500 concurrent calls to PBX B (MD5 secret, call tokens), which
//! answers; G.711 u-law 20 ms flows both ways for at least 10 s; both
//! stop talking and, once the voice in flight has arrived, PBX A hangs up.
//! The test shows:
//!
//! - zero voice loss, damage or reordering at both PBXs (every frame sent
//!   arrived on its call, in order), every call answered and ended
//!   cleanly, no datagram dropped by any kernel socket buffer;
//! - the WAN carried voice only in meta trunk frames (no mini frame crossed
//!   the tap), at least 6 entries per trunk frame on average;
//! - both workers of each gateway relayed a real share of the traffic;
//! - the relay tables are empty after the hangup linger and consistent;
//!   the relays dropped nothing but what is expected;
//! - tshark decodes the tap's capture of the WAN as IAX2 with trunk frames
//!   and no malformed packet (the capture holds the first seconds of WAN
//!   traffic and the later full frames, so tshark runs fast).
//!
//! It needs an optimised build: `scripts/test` runs it with `--release`.
//! Run it alone with
//! `cargo test --release -p loadtest --test loopback -- --include-ignored --nocapture`.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use iax2_gateway::GatewayHandle;
use iax2_loadtest::driver::{spawn_udp, DriverConfig, DriverHandle, DriverStats};
use iax2_loadtest::tap::{
    kernel_udp_drops, CaptureLimits, DirectionStats, Leg, Tap, TapConfig, TapStats,
};
use iax2_loadtest::{
    AnswerMode, Codec, EndReason, EndedCall, Endpoint, EndpointConfig, EndpointStats,
};
use trunk_core::relay::{CounterSnapshot, DropReason};

/// Concurrent calls.
const CALLS: usize = 500;
/// Voice held after the last call was answered.
const HOLD: Duration = Duration::from_millis(10_500);
/// Voice frames per second and direction of one call (20 ms).
const FRAMES_PER_SECOND: u64 = 50;
/// `timeouts.hangup_linger` of both gateways, seconds.
const LINGER_S: u64 = 1;
/// Smallest share of a gateway's datagrams (received, and sent) each
/// worker must carry.
const MIN_WORKER_SHARE: f64 = 0.10;
/// Smallest mean number of entries per meta trunk frame.
const MIN_ENTRIES_PER_FRAME: f64 = 6.0;

// ---------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------

/// A gateway on 127.0.0.1 (free port), two workers, serving the PBX
/// `pbx_name` at `pbx` and trunking to the far gateway `far_name`, which it
/// reaches at `far` (the tap).
fn gateway(pbx_name: &str, pbx: SocketAddr, far_name: &str, far: SocketAddr) -> GatewayHandle {
    let yaml = format!(
        "listen: 127.0.0.1:0
workers: 2
trunkfreq: 20
trunkmtu: 1240
trunktimestamps: yes
timeouts:
  hangup_linger: {LINGER_S}
peers:
  {pbx_name}:
    host: {pbx}
    kind: pbx
  {far_name}:
    host: {far}
    kind: gateway
    trunk: true
routes:
  - from: {pbx_name}
    to: {far_name}
  - from: {far_name}
    to: {pbx_name}
"
    );
    let config = iax2_config::from_yaml_str(&yaml, "loopback.yaml").unwrap();
    iax2_gateway::start(&config).unwrap()
}

/// An emulated PBX on `socket`: u-law 20 ms, MD5 secret; the callee
/// demands call tokens and answers at once.
fn pbx(socket: UdpSocket, seed: u64, callee: bool, origin: std::time::Instant) -> DriverHandle {
    let mut cfg = EndpointConfig::new(socket.local_addr().unwrap(), seed);
    cfg.secret = Some("loopback-secret".into());
    cfg.codec = Codec::Ulaw;
    cfg.ptime_ms = 20;
    cfg.require_calltoken = callee;
    cfg.answer = AnswerMode::Answer;
    let dc = DriverConfig {
        origin,
        ..DriverConfig::default()
    };
    spawn_udp(Endpoint::new(cfg), socket, dc).unwrap()
}

/// Polls `cond` every 50 ms until it holds; fails the test after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Polls `read` every 50 ms until it returned the same value for 200 ms
/// (at most `limit`); returns how long that took.
fn settle<T: PartialEq>(limit: Duration, mut read: impl FnMut() -> T) -> Duration {
    let start = std::time::Instant::now();
    let (mut last, mut same) = (read(), 0);
    while start.elapsed() < limit && same < 4 {
        std::thread::sleep(Duration::from_millis(50));
        let now = read();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    start.elapsed()
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> Option<f64> {
    iax2_loadtest::cpu::process_cpu_seconds()
}

/// Busy and total CPU seconds of the whole machine, all cores together:
/// to tell this test's load from other processes'.
fn machine_cpu() -> Option<(f64, f64)> {
    iax2_loadtest::cpu::machine_cpu().map(|m| (m.busy_seconds, m.total_seconds))
}

/// CPU seconds of each thread of this process: (thread id, name, seconds).
fn thread_cpu() -> Vec<(u32, String, f64)> {
    iax2_loadtest::cpu::thread_cpu()
        .into_iter()
        .map(|t| (t.tid, t.name, t.seconds))
        .collect()
}

/// Each thread's share of a core between two [`thread_cpu`] readings.
fn thread_load(before: &[(u32, String, f64)], after: &[(u32, String, f64)], secs: f64) -> String {
    after
        .iter()
        .filter_map(|(tid, name, cpu)| {
            let prev = before.iter().find(|b| b.0 == *tid).map_or(0.0, |b| b.2);
            let load = (cpu - prev) / secs;
            (load >= 0.005).then(|| format!("{name} {:.0}%", load * 100.0))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Checks: every one is printed, failures are listed together at the end
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Checks {
    failed: Vec<String>,
    /// Said after the failures (what else loaded the machine).
    note: String,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("  [{}] {what}", if ok { " ok " } else { "FAIL" });
        if !ok {
            self.failed.push(what);
        }
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} check(s) failed:\n  {}\n{}",
            self.failed.len(),
            self.failed.join("\n  "),
            self.note
        );
    }
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

fn endpoint_line(name: &str, s: &EndpointStats, d: &DriverStats) -> String {
    format!(
        "{name}: originated {} incoming {} answered {} ended {} (hung up locally {}, by peer {}, \
         failed {}); voice sent {} (full {}) received {} lost {} dup {} reordered {} corrupt {} \
         dropped {} skipped {}; latency mean {:?} us max {} us, jitter max {:.0} us; \
         retransmissions {}, dup full frames {}, INVAL rx {}, malformed {}, unknown-call media {}; \
         driver rx {} tx {} send errors {}",
        s.calls_originated,
        s.calls_incoming,
        s.calls_answered,
        s.calls_ended,
        s.calls_hung_up_locally,
        s.calls_hung_up_by_peer,
        s.calls_failed,
        s.voice_sent,
        s.voice_full_sent,
        s.voice_received,
        s.voice_lost,
        s.voice_duplicates,
        s.voice_reordered,
        s.voice_corrupt,
        s.voice_dropped,
        s.voice_skipped,
        s.latency_mean_us(),
        s.latency_max_us,
        s.jitter_max_us,
        s.retransmissions,
        s.duplicate_full_frames,
        s.invals_received,
        s.malformed,
        s.unknown_call_media,
        d.received,
        d.sent,
        d.send_errors,
    )
}

fn counters_line(c: &CounterSnapshot) -> String {
    let mut drops = String::new();
    for &r in DropReason::ALL {
        if c.drops(r) > 0 {
            let _ = write!(drops, " {}={}", r.label(), c.drops(r));
        }
    }
    if drops.is_empty() {
        drops.push_str(" none");
    }
    format!(
        "rx {} (full {} mini {} trunk {} / {} entries) tx {} (full {} mini {} trunk {} / {} \
         entries); calls created {} ended {} reaped {}; replies {}; drops:{drops}",
        c.rx_datagrams,
        c.rx_full,
        c.rx_mini,
        c.rx_trunk_frames,
        c.rx_trunk_entries,
        c.tx_datagrams,
        c.tx_full,
        c.tx_mini,
        c.tx_trunk_frames,
        c.tx_trunk_entries,
        c.calls_created,
        c.calls_ended,
        c.calls_reaped,
        c.replies_sent,
    )
}

fn direction_line(name: &str, d: &DirectionStats) -> String {
    format!(
        "{name}: {} datagrams, {} bytes; full {} mini {} video {} trunk {} ({} entries, {:.2} \
         per frame, max {}) other meta {} malformed {}; forwarded {} send errors {} strangers {}; \
         recorded {} (not {})",
        d.datagrams,
        d.bytes,
        d.full_frames,
        d.mini_frames,
        d.video_frames,
        d.trunk_frames,
        d.trunk_entries,
        d.entries_per_trunk_frame(),
        d.max_trunk_entries,
        d.other_meta,
        d.malformed,
        d.forwarded,
        d.send_errors,
        d.strangers,
        d.recorded,
        d.unrecorded,
    )
}

/// Each worker's share of its gateway's received and sent datagrams.
fn worker_shares(workers: &[CounterSnapshot]) -> Vec<(f64, f64)> {
    let rx: u64 = workers.iter().map(|w| w.rx_datagrams).sum();
    let tx: u64 = workers.iter().map(|w| w.tx_datagrams).sum();
    workers
        .iter()
        .map(|w| {
            (
                w.rx_datagrams as f64 / rx.max(1) as f64,
                w.tx_datagrams as f64 / tx.max(1) as f64,
            )
        })
        .collect()
}

fn shares_line(shares: &[(f64, f64)]) -> String {
    shares
        .iter()
        .enumerate()
        .map(|(i, (rx, tx))| format!("worker {i}: rx {:.1}% tx {:.1}%", rx * 100.0, tx * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counters of `after` minus `before`.
fn delta(after: &TapStats, before: &TapStats) -> (u64, u64, u64, u64) {
    (
        after.a_to_b.datagrams - before.a_to_b.datagrams,
        after.b_to_a.datagrams - before.b_to_a.datagrams,
        after.a_to_b.trunk_entries - before.a_to_b.trunk_entries,
        after.b_to_a.trunk_entries - before.b_to_a.trunk_entries,
    )
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs an optimised build: scripts/test runs it with --release"
)]
fn five_hundred_trunked_calls_through_a_gateway_pair() {
    let origin = std::time::Instant::now();
    let mut checks = Checks::default();

    // Sockets first: the gateways' configs need the PBXs' and the tap's
    // addresses, and the tap needs the gateways'.
    let sock_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pbx_a_addr, pbx_b_addr) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());
    let tap = Tap::bind(&TapConfig {
        capture: CaptureLimits {
            everything_for: Duration::from_secs(3),
            full_frames_after: true,
            max_datagrams: 40_000,
            max_bytes: 48 << 20,
        },
        ..TapConfig::default()
    })
    .unwrap();
    let gw_a = gateway("pbx-a", pbx_a_addr, "gw-b", tap.side_a_addr());
    let gw_b = gateway("pbx-b", pbx_b_addr, "gw-a", tap.side_b_addr());
    let tap_buffers = tap.socket_buffers();
    let tap = tap.start(gw_a.local_addr(), gw_b.local_addr()).unwrap();
    let a = pbx(sock_a, 1, false, origin);
    let b = pbx(sock_b, 2, true, origin);
    let addrs = tap.addresses();
    println!(
        "PBX A {pbx_a_addr} -> gateway A {} -> tap {} | {} -> gateway B {} -> PBX B {pbx_b_addr}; \
         tap socket buffers (rcv, snd) as reported: {tap_buffers:?}",
        addrs.gateway_a, addrs.side_a, addrs.side_b, addrs.gateway_b
    );

    // Set-up: every call answered at both ends.
    let cpu0 = cpu_seconds();
    let ids = a.originate(gw_a.local_addr(), "2001", CALLS);
    assert_eq!(ids.len(), CALLS, "originated");
    let setup = wait_for("every call answered", Duration::from_secs(60), || {
        a.stats().calls_answered == CALLS as u64 && b.stats().calls_answered == CALLS as u64
    });
    println!("{CALLS} calls answered at both ends in {setup:.2?}");

    // Voice for HOLD; the steady-state WAN rate is measured over the
    // middle of it (all calls up, none ending).
    std::thread::sleep(Duration::from_secs(1));
    let (tap0, t0, cpu_t0, threads0, machine0) = (
        tap.stats(),
        std::time::Instant::now(),
        cpu_seconds(),
        thread_cpu(),
        machine_cpu(),
    );
    std::thread::sleep(HOLD - Duration::from_secs(2));
    let (tap1, window, cpu_t1, threads1, machine1) = (
        tap.stats(),
        t0.elapsed(),
        cpu_seconds(),
        thread_cpu(),
        machine_cpu(),
    );
    std::thread::sleep(Duration::from_secs(1));

    // Both PBXs stop talking, and the voice in flight arrives, before the
    // hangup: every frame sent is then received on a live call, so loss
    // is measured exactly (voice reaching a PBX after it ended the call
    // would be discarded there, and a reordered one counted as lost).
    let mute = |pbx: &DriverHandle| {
        pbx.with(|ep, now, _| {
            let ids = ep.call_ids();
            ids.into_iter().filter(|&id| ep.stop_media(now, id)).count()
        })
    };
    assert_eq!(
        (mute(&a), mute(&b)),
        (Some(CALLS), Some(CALLS)),
        "voice stopped"
    );
    let drain = settle(Duration::from_secs(3), || {
        let (sa, sb) = (a.stats(), b.stats());
        (
            sa.voice_sent,
            sb.voice_sent,
            sa.voice_received,
            sb.voice_received,
        )
    });
    println!("voice stopped; the counts settled within {drain:.2?}");

    // Counters before the hangup: no drops are expected up to here.
    let voice_a = gw_a.counters();
    let voice_b = gw_b.counters();

    // Tear-down.
    assert_eq!(a.hangup_all(16), CALLS, "hung up");
    let teardown = wait_for(
        "every call ended at both PBXs",
        Duration::from_secs(30),
        || a.active_calls() == 0 && b.active_calls() == 0,
    );
    let linger = wait_for(
        "both relay tables empty",
        Duration::from_secs(LINGER_S + 10),
        || gw_a.relay().active_calls() == 0 && gw_b.relay().active_calls() == 0,
    );
    println!("calls ended at both PBXs in {teardown:.2?}; relay tables empty {linger:.2?} later");
    let cpu1 = cpu_seconds();

    // Kernel drops, read while every socket is still open.
    let kernel: Vec<(&str, Option<u64>)> = vec![
        ("PBX A", kernel_udp_drops(pbx_a_addr)),
        ("PBX B", kernel_udp_drops(pbx_b_addr)),
        ("gateway A", kernel_udp_drops(addrs.gateway_a)),
        ("gateway B", kernel_udp_drops(addrs.gateway_b)),
        ("tap", tap.kernel_drops()),
    ];
    let (sa, sb) = (a.stats(), b.stats());
    let ended_a: Vec<EndedCall> = a.with(|ep, _, _| ep.take_ended()).unwrap();
    let ended_b: Vec<EndedCall> = b.with(|ep, _, _| ep.take_ended()).unwrap();
    let (_, da) = a.stop().unwrap();
    let (_, db) = b.stop().unwrap();
    let invariants = (
        gw_a.relay().check_invariants(),
        gw_b.relay().check_invariants(),
    );
    let (workers_a, workers_b) = (gw_a.worker_counters(), gw_b.worker_counters());
    let (io_a, io_b) = (gw_a.io_counters(), gw_b.io_counters());
    let report = tap.stop();
    let ca = gw_a.stop();
    let cb = gw_b.stop();
    let wan = report.stats;

    // -----------------------------------------------------------------
    // Human summary
    // -----------------------------------------------------------------
    let secs = window.as_secs_f64();
    let (ab, ba, ab_entries, ba_entries) = delta(&tap1, &tap0);
    let untrunked = CALLS as f64 * FRAMES_PER_SECOND as f64;
    let total_frames = wan.a_to_b.trunk_frames + wan.b_to_a.trunk_frames;
    let total_entries = wan.a_to_b.trunk_entries + wan.b_to_a.trunk_entries;
    let entries_per_frame = total_entries as f64 / total_frames.max(1) as f64;
    println!(
        "\n== loopback: {CALLS} calls, u-law 20 ms both ways, held {HOLD:?} after the last answer"
    );
    println!("{}", endpoint_line("PBX A", &sa, &da));
    println!("{}", endpoint_line("PBX B", &sb, &db));
    println!(
        "WAN steady state over {secs:.2} s: A->B {:.0} packets/s ({:.0} entries/s), B->A {:.0} \
         packets/s ({:.0} entries/s); without trunking {CALLS} calls need {untrunked:.0} packets/s \
         each way: {:.1}x fewer packets",
        ab as f64 / secs,
        ab_entries as f64 / secs,
        ba as f64 / secs,
        ba_entries as f64 / secs,
        untrunked * 2.0 * secs / (ab + ba).max(1) as f64,
    );
    // On the wire: UDP payload + 8 (UDP) + 20 (IPv4) per datagram; an
    // untrunked u-law voice frame is a 4-byte mini header + 160 bytes.
    let wire = |bytes: u64, datagrams: u64| (bytes + 28 * datagrams) as f64 * 8.0 / secs / 1e6;
    let (bytes_ab, bytes_ba) = (
        tap1.a_to_b.bytes - tap0.a_to_b.bytes,
        tap1.b_to_a.bytes - tap0.b_to_a.bytes,
    );
    println!(
        "WAN bandwidth (IPv4): A->B {:.2} Mbit/s, B->A {:.2} Mbit/s; untrunked {:.2} Mbit/s each way",
        wire(bytes_ab, ab),
        wire(bytes_ba, ba),
        untrunked * (164.0 + 28.0) * 8.0 / 1e6
    );
    println!(
        "WAN whole run: {total_frames} trunk frames carrying {total_entries} entries, \
         {entries_per_frame:.2} entries per frame"
    );
    println!("{}", direction_line("tap A->B", &wan.a_to_b));
    println!("{}", direction_line("tap B->A", &wan.b_to_a));
    println!("gateway A: {}", counters_line(&ca));
    println!("gateway B: {}", counters_line(&cb));
    println!("gateway A io: {io_a:?}");
    println!("gateway B io: {io_b:?}");
    let (shares_a, shares_b) = (worker_shares(&workers_a), worker_shares(&workers_b));
    println!("gateway A {}", shares_line(&shares_a));
    println!("gateway B {}", shares_line(&shares_b));
    for (i, w) in workers_a.iter().enumerate() {
        println!("  gateway A worker {i}: {}", counters_line(w));
    }
    for (i, w) in workers_b.iter().enumerate() {
        println!("  gateway B worker {i}: {}", counters_line(w));
    }
    println!("kernel receive-buffer drops: {kernel:?}");
    if let (Some(c0), Some(ct0), Some(ct1), Some(c1)) = (cpu0, cpu_t0, cpu_t1, cpu1) {
        let ours = (ct1 - ct0) / secs;
        print!(
            "CPU: {:.2} s over the whole run, {ours:.2} cores busy in the steady state",
            c1 - c0
        );
        if let (Some((b0, t0)), Some((b1, t1))) = (machine0, machine1) {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let machine = (b1 - b0) / (t1 - t0) * cores;
            let others = (machine - ours).max(0.0);
            print!("; the whole machine ({cores} cores) {machine:.2}, other processes {others:.2}");
            if others >= 0.25 {
                checks.note = format!(
                    "Note: other processes kept {others:.2} of the machine's {cores} cores busy \
                     while this test needed {ours:.2}; it measures loss, so it needs the cores \
                     it uses to itself (see the CPU lines above)."
                );
            }
        }
        println!();
    }
    println!(
        "CPU per thread in the steady state (share of one core): {}",
        thread_load(&threads0, &threads1, secs)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average (whole machine): {}", load.trim());
    }

    // -----------------------------------------------------------------
    // Must-show 2
    // -----------------------------------------------------------------
    println!("\n== checks");
    let n = CALLS as u64;
    checks.check(
        sa.calls_originated == n
            && sa.calls_answered == n
            && sb.calls_incoming == n
            && sb.calls_answered == n,
        format!(
            "all {CALLS} calls answered (A originated {} answered {}, B incoming {} answered {})",
            sa.calls_originated, sa.calls_answered, sb.calls_incoming, sb.calls_answered
        ),
    );
    checks.check(
        sa.calls_ended == n
            && sa.calls_hung_up_locally == n
            && sb.calls_ended == n
            && sb.calls_hung_up_by_peer == n
            && sa.calls_failed + sb.calls_failed == 0
            && sa.calls_rejected_by_peer + sb.calls_rejected_locally == 0,
        "all calls ended cleanly: hung up by A, ended at B by its HANGUP, none failed or rejected",
    );
    let clean_end = |e: &EndedCall, want: fn(u8) -> EndReason| e.stats.end == Some(want(16));
    checks.check(
        ended_a.len() == CALLS
            && ended_b.len() == CALLS
            && ended_a
                .iter()
                .all(|e| clean_end(e, EndReason::HungUpLocally))
            && ended_b
                .iter()
                .all(|e| clean_end(e, EndReason::HungUpByPeer)),
        "every call's end reason is cause 16 (normal clearing) on both sides",
    );
    checks.check(
        sb.calltoken_challenges == n && sb.auth_failures == 0,
        format!(
            "call tokens and MD5 end to end ({} challenges, {} auth failures)",
            sb.calltoken_challenges, sb.auth_failures
        ),
    );
    for (name, s) in [("A", &sa), ("B", &sb)] {
        checks.check(
            s.voice_lost == 0 && s.voice_corrupt == 0 && s.voice_dropped == 0,
            format!(
                "PBX {name}: zero voice loss ({} received, {} lost, {} corrupt, {} dropped)",
                s.voice_received, s.voice_lost, s.voice_corrupt, s.voice_dropped
            ),
        );
        checks.check(
            s.voice_duplicates == 0 && s.malformed == 0 && s.invals_received == 0,
            format!(
                "PBX {name}: no duplicate voice, malformed datagram or INVAL ({} / {} / {})",
                s.voice_duplicates, s.malformed, s.invals_received
            ),
        );
        // Each call stays on one worker at both gateways (steering by call
        // number, trunk entries grouped by call number), so nothing can
        // overtake anything within a call.
        checks.check(
            s.voice_reordered == 0,
            format!(
                "PBX {name}: no voice frame reordered ({})",
                s.voice_reordered
            ),
        );
    }
    for (name, from, to) in [("A->B", &sa, &sb), ("B->A", &sb, &sa)] {
        checks.check(
            to.voice_received == from.voice_sent && to.unknown_call_media == 0,
            format!(
                "{name}: every voice frame sent arrived on its live call ({} sent, {} received, \
                 {} for unknown calls)",
                from.voice_sent, to.voice_received, to.unknown_call_media
            ),
        );
    }
    let min_frames = HOLD.as_secs() * FRAMES_PER_SECOND;
    for (name, ended) in [("A", &ended_a), ("B", &ended_b)] {
        let fewest = ended.iter().map(|e| e.stats.rx.received).min().unwrap_or(0);
        let lost: u64 = ended.iter().map(|e| e.stats.rx.lost()).sum();
        checks.check(
            fewest >= min_frames && lost == 0,
            format!(
                "PBX {name}: every call received >= {min_frames} voice frames (>= {} s; fewest \
                 {fewest}), none lost",
                HOLD.as_secs()
            ),
        );
    }
    checks.check(
        da.send_errors + db.send_errors == 0,
        "no send error at the PBXs",
    );
    checks.check(
        kernel.iter().all(|(_, d)| *d == Some(0)),
        format!("no datagram dropped by a kernel receive buffer: {kernel:?}"),
    );
    checks.check(
        wan.a_to_b.mini_frames + wan.b_to_a.mini_frames == 0,
        format!(
            "no mini frame crossed the WAN (A->B {}, B->A {})",
            wan.a_to_b.mini_frames, wan.b_to_a.mini_frames
        ),
    );
    checks.check(
        wan.a_to_b.trunk_frames > 0 && wan.b_to_a.trunk_frames > 0,
        "trunk frames both ways",
    );
    checks.check(
        entries_per_frame >= MIN_ENTRIES_PER_FRAME,
        format!("{entries_per_frame:.2} >= {MIN_ENTRIES_PER_FRAME} entries per trunk frame"),
    );
    // Every voice frame but each call's first (full) one crossed the WAN
    // as a trunk entry: the gateways flush their trunk buffers at the
    // tick even after a hangup, and no voice is sent after the linger.
    for (name, s, gw, tap_entries) in [
        ("A->B", &sa, &ca, wan.a_to_b.trunk_entries),
        ("B->A", &sb, &cb, wan.b_to_a.trunk_entries),
    ] {
        let minis = s.voice_sent - s.voice_full_sent;
        checks.check(
            tap_entries == minis && gw.tx_trunk_entries == minis,
            format!(
                "WAN {name}: every mini voice frame sent became a trunk entry ({minis} minis, \
                 {} entries sent by the gateway, {tap_entries} seen by the tap)",
                gw.tx_trunk_entries
            ),
        );
    }
    checks.check(
        wan.a_to_b.malformed + wan.b_to_a.malformed + wan.a_to_b.other_meta + wan.b_to_a.other_meta
            == 0
            && wan.a_to_b.strangers + wan.b_to_a.strangers == 0
            && wan.a_to_b.send_errors + wan.b_to_a.send_errors == 0,
        "the tap saw nothing malformed or foreign and forwarded everything",
    );
    for (name, shares) in [("A", &shares_a), ("B", &shares_b)] {
        checks.check(
            shares.len() == 2
                && shares
                    .iter()
                    .all(|&(rx, tx)| rx >= MIN_WORKER_SHARE && tx >= MIN_WORKER_SHARE),
            format!(
                "gateway {name}: both workers carry >= {:.0}% of the datagrams received and sent \
                 ({})",
                MIN_WORKER_SHARE * 100.0,
                shares_line(shares)
            ),
        );
    }
    checks.check(
        invariants.0.is_ok() && invariants.1.is_ok(),
        format!("relay invariants after the linger: {invariants:?}"),
    );
    checks.check(
        ca.calls_created == n && cb.calls_created == n && ca.calls_reaped + cb.calls_reaped == 0,
        format!(
            "each relay created {CALLS} calls and reaped none (A {} / {}, B {} / {})",
            ca.calls_created, ca.calls_reaped, cb.calls_created, cb.calls_reaped
        ),
    );
    // Up to the hangup nothing may be dropped but the ACKs PBX A sends to
    // call number 1 for the stateless CALLTOKEN replies (PROTOCOL.md 17),
    // and at B the second copy of each call's NEW with the token, which A
    // sends twice on the link.
    let unexpected = |c: &CounterSnapshot| {
        c.total_drops() - c.drops(DropReason::StatelessAck) - c.drops(DropReason::LinkCopy)
    };
    checks.check(
        voice_a.drops(DropReason::LinkCopy) == 0 && voice_b.drops(DropReason::LinkCopy) == n,
        format!(
            "one link copy of a NEW dropped at B per call (A {}, B {})",
            voice_a.drops(DropReason::LinkCopy),
            voice_b.drops(DropReason::LinkCopy)
        ),
    );
    checks.check(
        unexpected(&voice_a) + unexpected(&voice_b) == 0,
        format!(
            "no relay drop before the hangup but stateless ACKs: A {}; B {}",
            counters_line(&voice_a),
            counters_line(&voice_b)
        ),
    );
    // The voice stopped before the hangup, so none comes late either.
    checks.check(
        unexpected(&ca) + unexpected(&cb) == 0,
        format!(
            "whole run: no relay drop but stateless ACKs (A {}, B {})",
            unexpected(&ca),
            unexpected(&cb)
        ),
    );

    // -----------------------------------------------------------------
    // Must-show 3: tshark decodes the WAN capture
    // -----------------------------------------------------------------
    let capture = &report.capture;
    let pcap = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loopback-wan.pcap");
    capture.write_pcap(&pcap, Leg::A).unwrap();
    println!(
        "\nWAN capture: {} datagrams ({} not recorded) written to {}",
        capture.len(),
        wan.a_to_b.unrecorded + wan.b_to_a.unrecorded,
        pcap.display()
    );
    tshark_checks(&pcap, capture.tap_port(Leg::A), capture, &mut checks);

    checks.finish();
}

/// Runs tshark over the capture and checks that every packet decodes as
/// IAX2, trunk frames are there, and nothing is malformed.
fn tshark_checks(
    pcap: &Path,
    port: u16,
    capture: &iax2_loadtest::tap::Capture,
    checks: &mut Checks,
) {
    match Command::new("tshark").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        other => {
            if std::env::var("IAX2_SKIP_TSHARK").as_deref() == Ok("1") {
                eprintln!(
                    "\n!!! SKIPPED: tshark checks of the WAN capture (tshark not usable: \
                     {other:?}); IAX2_SKIP_TSHARK=1 is set. Run scripts/install-test-deps.\n"
                );
                return;
            }
            panic!(
                "tshark is required to decode the WAN capture but is not usable ({other:?}). Run \
                 scripts/install-test-deps (CI does), or set IAX2_SKIP_TSHARK=1 to skip."
            );
        }
    }
    // An empty profile, so no personal preference changes the dissection.
    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loopback-tshark-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let decode_as = format!("udp.port=={port},iax2");
    let tshark = |args: &[&str]| -> String {
        let started = std::time::Instant::now();
        let output = Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(pcap)
            .args(["-d", &decode_as])
            .args(args)
            .env("WIRESHARK_CONFIG_DIR", &profile)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tshark {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        println!("tshark {args:?}: {:.2?}", started.elapsed());
        String::from_utf8(output.stdout).unwrap()
    };

    let fields = tshark(&[
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "iax2.packet_type",
        "-e",
        "iax2.trunk.ncalls",
        "-e",
        "_ws.expert.message",
    ]);
    let (mut full, mut mini, mut trunk, mut other) = (0u64, 0u64, 0u64, 0u64);
    let (mut undecoded, mut ncalls) = (0u64, 0u64);
    let mut expert: Vec<String> = Vec::new();
    let mut lines = 0usize;
    for line in fields.lines() {
        lines += 1;
        let mut cols = line.split('|');
        let (ty, calls, msg) = (
            cols.next().unwrap_or(""),
            cols.next().unwrap_or(""),
            cols.next().unwrap_or(""),
        );
        match ty {
            "1" => full += 1,
            "0" => mini += 1,
            "3" => trunk += 1,
            "" => undecoded += 1,
            _ => other += 1,
        }
        ncalls += calls.parse::<u64>().unwrap_or(0);
        if !msg.is_empty() && expert.len() < 20 {
            expert.push(format!("{lines}: {msg}"));
        }
    }
    println!(
        "tshark: {lines} packets: {full} full, {trunk} trunk ({:.2} distinct calls per trunk \
         frame), {mini} mini, {other} other, {undecoded} not IAX2; expert messages: {expert:?}",
        ncalls as f64 / trunk.max(1) as f64
    );
    // Our own classification of the same datagrams.
    let (mut our_full, mut our_trunk) = (0u64, 0u64);
    for d in capture.iter() {
        match d.payload {
            [0, 0, 1, ..] => our_trunk += 1,
            [b0, ..] if b0 & 0x80 != 0 => our_full += 1,
            _ => {}
        }
    }
    checks.check(
        lines == capture.len() && undecoded == 0 && other == 0,
        format!(
            "tshark decodes every captured packet as IAX2 ({lines} of {} packets, {undecoded} not \
             IAX2)",
            capture.len()
        ),
    );
    checks.check(
        trunk > 0 && trunk == our_trunk && full == our_full && mini == 0,
        format!(
            "tshark agrees on the kinds: {trunk} trunk frames (ours {our_trunk}), {full} full \
             frames (ours {our_full}), {mini} mini frames"
        ),
    );
    checks.check(
        expert.iter().all(|m| !m.contains("Malformed")),
        format!("no Malformed Packet in tshark's expert messages: {expert:?}"),
    );
    let malformed = tshark(&["-Y", "_ws.malformed"]);
    checks.check(
        malformed.trim().is_empty(),
        format!(
            "tshark -Y _ws.malformed prints nothing ({} lines)",
            malformed.lines().count()
        ),
    );
    let summary = tshark(&["-q", "-z", "expert"]);
    println!("tshark -z expert:\n{summary}");
    checks.check(
        !summary.contains("Malformed") && !summary.contains("Errors ("),
        "tshark's expert summary has no error and no malformed packet",
    );
}
