//! Admission control on a virtual clock with hand-built frames: the
//! per-source limits on NEW rate and table entries, the global caps on
//! unanswered and all entries, the per-call limit on control frames, the
//! lifetime of half-open entries, and replies never larger than requests.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is the test failing

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use iax2_config::{Admission, Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts};
use trunk_core::relay::{DropReason, Relay, RelayWorker};
use trunk_core::time::Instant;
use trunk_core::transmit::VecTransmit;
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeBlock, IeList, IeLookup, IeType, SeqNo,
};

const GW: &str = "127.0.0.1:4569";
const PBX: &str = "127.0.0.1:4570";
const FAR: &str = "127.0.0.2:4569";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A relay with a static PBX, a dynamic PBX that any 10/8 or 2001:db8::/32
/// address may claim (many sources), and a gateway peer both route to.
fn config(admission: Admission) -> Config {
    let name = |n| PeerName::new(n).unwrap();
    let mut roam = Peer::new(name("roam"), PeerHost::Dynamic, PeerKind::Pbx);
    roam.permit = vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    let route = |from, to| Route {
        from: Some(name(from)),
        prefix: None,
        to: name(to),
    };
    Config {
        listen: addr(GW),
        workers: NonZeroUsize::new(1).unwrap(),
        udp_gso: true,
        peers: vec![
            Peer::new(name("pbx"), PeerHost::Static(addr(PBX)), PeerKind::Pbx),
            roam,
            Peer::new(name("gw"), PeerHost::Static(addr(FAR)), PeerKind::Gateway),
        ],
        routes: vec![route("pbx", "gw"), route("roam", "gw"), route("gw", "pbx")],
        timeouts: Timeouts {
            admission,
            ..Timeouts::default()
        },
        admin: Default::default(),
        log: Default::default(),
    }
}

fn relay(admission: Admission) -> (RelayWorker, Instant) {
    let now = Instant::from_millis(5);
    let relay = Relay::new(&config(admission), now, 11);
    (RelayWorker::new(Arc::new(relay), 0), now)
}

fn feed(
    w: &mut RelayWorker,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut data = bytes.to_vec();
    let mut tx = VecTransmit::new();
    w.handle_datagram(now, from, &mut data, &mut tx);
    tx.take()
}

fn tick(w: &mut RelayWorker, now: Instant) {
    let mut tx = VecTransmit::new();
    w.handle_timeout(now, &mut tx);
}

/// Runs the timers every 250 ms from `from` for `ms`.
fn run_timers(w: &mut RelayWorker, from: Instant, ms: u64) -> Instant {
    let mut now = from;
    for _ in 0..ms / 250 {
        now += Duration::from_millis(250);
        tick(w, now);
    }
    now
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

fn iax(src: u16, dst: u16, ts: u32, o: u8, i: u8, sub: IaxSubclass, ies: IeList) -> Vec<u8> {
    FullFrameRepr::iax(cn(src), cn(dst), ts, SeqNo(o), SeqNo(i), sub, ies).to_vec()
}

fn new_frame(src: u16) -> Vec<u8> {
    let ies = IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, "600").unwrap());
    iax(src, 0, 3, 0, 0, IaxSubclass::New, ies)
}

/// A full frame of any type, built byte by byte.
fn raw_full(src: u16, dst: u16, ts: u32, o: u8, ftype: u8, sub: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + payload.len());
    v.extend_from_slice(&(0x8000 | src).to_be_bytes());
    v.extend_from_slice(&dst.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&[o, 0, ftype, sub]);
    v.extend_from_slice(payload);
    v
}

fn full(bytes: &[u8]) -> FullFrame<&[u8]> {
    FullFrame::new_checked(bytes).unwrap()
}

fn drops(w: &RelayWorker, reason: DropReason) -> u64 {
    w.counters().snapshot().drops(reason)
}

/// A source address of the dynamic peer: IP `10.0.0.0` plus `n`, any port.
fn src(n: u32, port: u16) -> SocketAddr {
    let ip = std::net::Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff));
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Sends a NEW from `from` and returns the call number the far side sees.
fn call_to_far(w: &mut RelayWorker, now: Instant, from: SocketAddr, theirs: u16) -> u16 {
    let out = feed(w, now, from, &new_frame(theirs));
    assert_eq!(out.len(), 1, "the NEW goes on");
    assert_eq!(out[0].0, addr(FAR));
    full(&out[0].1).source_call_number().get()
}

/// The far side accepts call `ours` (from its number `far`).
fn accept(w: &mut RelayWorker, now: Instant, ours: u16, far: u16) {
    let out = feed(
        w,
        now,
        addr(FAR),
        &iax(far, ours, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    assert_eq!(out.len(), 1);
}

fn assert_congestion_reject(out: &[(SocketAddr, Vec<u8>)], to: SocketAddr, request_len: usize) {
    assert_eq!(out.len(), 1, "one refusal");
    assert_eq!(out[0].0, to);
    let f = full(&out[0].1);
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::Reject));
    let ies = IeBlock::new_checked(f.payload()).unwrap();
    assert_eq!(ies.causecode(), Ok(Some(34)));
    assert!(
        out[0].1.len() <= request_len,
        "never larger than the request"
    );
}

#[test]
fn a_new_flood_from_one_address_many_ports_is_dropped_unanswered_and_refills() {
    let (mut w, now) = relay(Admission {
        new_rate: 10,
        new_burst: 20,
        ..Admission::default()
    });
    let mut passed = 0;
    for k in 0..100u16 {
        let out = feed(&mut w, now, src(1, 1000 + k), &new_frame(100 + k));
        assert!(out.iter().all(|(to, _)| *to == addr(FAR)), "nothing back");
        passed += out.len();
    }
    assert_eq!(passed, 20, "the burst");
    assert_eq!(drops(&w, DropReason::NewRate), 80);
    // Half a second later, five more tokens.
    let later = now + Duration::from_millis(500);
    let mut passed = 0;
    for k in 0..10u16 {
        passed += feed(&mut w, later, src(1, 2000 + k), &new_frame(300 + k)).len();
    }
    assert_eq!(passed, 5);
    // Another address of the same peer has its own bucket.
    assert_eq!(feed(&mut w, later, src(2, 1000), &new_frame(999)).len(), 1);
    // So does the static PBX.
    call_to_far(&mut w, later, addr(PBX), 100);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_source_over_its_call_numbers_gets_a_congestion_reject_until_its_calls_end() {
    let (mut w, now) = relay(Admission {
        maxcallnumbers: 3,
        ..Admission::default()
    });
    let one = src(7, 0).ip();
    for k in 0..3u16 {
        call_to_far(&mut w, now, src(7, 5000 + k), 100 + k);
    }
    assert_eq!(w.relay().source_entries(one), 3);
    let req = new_frame(200);
    let out = feed(&mut w, now, src(7, 6000), &req);
    assert_congestion_reject(&out, src(7, 6000), req.len());
    assert_eq!(drops(&w, DropReason::SourceLimit), 1);
    // Other sources are not concerned.
    call_to_far(&mut w, now, src(8, 5000), 300);
    call_to_far(&mut w, now, addr(PBX), 100);
    // The three calls are never answered: reaped after timeouts.setup,
    // and the source's numbers come back.
    let now = run_timers(&mut w, now, 41_000);
    assert_eq!(w.relay().source_entries(one), 0);
    assert_eq!(w.relay().active_calls(), 0);
    call_to_far(&mut w, now, src(7, 6000), 400);
    w.relay().check_invariants().unwrap();
}

#[test]
fn unanswered_and_total_caps_refuse_with_congestion() {
    let (mut w, now) = relay(Admission {
        max_unanswered: 2,
        max_calls: 3,
        ..Admission::default()
    });
    let a = call_to_far(&mut w, now, addr(PBX), 100);
    call_to_far(&mut w, now, addr(PBX), 101);
    assert_eq!(w.relay().unanswered_entries(), 2);
    let req = new_frame(102);
    assert_congestion_reject(&feed(&mut w, now, addr(PBX), &req), addr(PBX), req.len());
    assert_eq!(drops(&w, DropReason::UnansweredLimit), 1);
    // The far side answers one: it no longer waits, one more may wait.
    accept(&mut w, now, a, 500);
    assert_eq!(w.relay().unanswered_entries(), 1);
    call_to_far(&mut w, now, addr(PBX), 102);
    // Three entries: the table is full for this configuration.
    let req = new_frame(103);
    assert_congestion_reject(&feed(&mut w, now, src(3, 1), &req), src(3, 1), req.len());
    assert_eq!(drops(&w, DropReason::Capacity), 1);
    w.relay().check_invariants().unwrap();
}

#[test]
fn one_source_holds_at_most_its_share_of_the_unanswered_entries() {
    let (mut w, now) = relay(Admission {
        max_unanswered: 10,
        max_unanswered_per_source: 3,
        ..Admission::default()
    });
    let one = src(7, 0).ip();
    let first = call_to_far(&mut w, now, src(7, 5000), 100);
    call_to_far(&mut w, now, src(7, 5001), 101);
    call_to_far(&mut w, now, src(7, 5002), 102);
    let req = new_frame(103);
    let out = feed(&mut w, now, src(7, 6000), &req);
    assert_congestion_reject(&out, src(7, 6000), req.len());
    assert_eq!(drops(&w, DropReason::SourceLimit), 1);
    // The other sources keep their room in the whole gateway's cap.
    call_to_far(&mut w, now, src(8, 5000), 300);
    call_to_far(&mut w, now, addr(PBX), 100);
    assert_eq!(w.relay().unanswered_entries(), 5);
    // The far side replies to one of the source's calls: it waits no
    // more, so the source may open one more that waits.
    accept(&mut w, now, first, 500);
    call_to_far(&mut w, now, src(7, 6000), 103);
    assert_eq!(w.relay().source_entries(one), 4);
    let req = new_frame(104);
    let out = feed(&mut w, now, src(7, 6001), &req);
    assert_congestion_reject(&out, src(7, 6001), req.len());
    assert_eq!(drops(&w, DropReason::SourceLimit), 2);
    w.relay().check_invariants().unwrap();
    // The unanswered ones are reaped after timeouts.setup and give back
    // their share; the answered one stays.
    let now = run_timers(&mut w, now, 41_000);
    assert_eq!(w.relay().source_entries(one), 1);
    w.relay().check_invariants().unwrap();
    call_to_far(&mut w, now, src(7, 7000), 105);
    call_to_far(&mut w, now, src(7, 7001), 106);
    call_to_far(&mut w, now, src(7, 7002), 107);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_refusal_is_never_longer_than_its_request() {
    let (mut w, now) = relay(Admission {
        max_calls: 1,
        ..Admission::default()
    });
    call_to_far(&mut w, now, addr(PBX), 100);
    // NEWs from 12 bytes (no IE) upwards; the full REJECT is 45 bytes.
    let called = |s: &str| Ie::string(IeType::CalledNumber, s).unwrap();
    let mut replied = 0;
    for extra in 0..40usize {
        let ies = if extra < 2 {
            IeList::new()
        } else {
            IeList::new().with(called(&"6".repeat(extra - 2)))
        };
        let req = iax(200 + extra as u16, 0, 3, 0, 0, IaxSubclass::New, ies);
        let out = feed(&mut w, now, addr(PBX), &req);
        for (_, reply) in &out {
            assert!(reply.len() <= req.len(), "{} > {}", reply.len(), req.len());
            let f = full(reply);
            assert_eq!(f.iax_subclass(), Some(IaxSubclass::Reject));
            let ies = IeBlock::new_checked(f.payload()).unwrap();
            assert_eq!(ies.causecode(), Ok(Some(34)));
            replied += 1;
        }
        if req.len() < 15 {
            assert!(out.is_empty(), "no room even for the cause code");
        } else {
            assert_eq!(out.len(), 1);
        }
        if req.len() >= 45 {
            let f = full(&out[0].1);
            let ies = IeBlock::new_checked(f.payload()).unwrap();
            assert!(ies.cause().unwrap().is_some(), "room for the text too");
        }
    }
    assert!(replied > 0);
    assert_eq!(drops(&w, DropReason::Capacity), 40, "every refusal counted");
}

#[test]
fn the_per_source_table_stays_bounded_under_100k_source_addresses() {
    let (mut w, now) = relay(Admission::default());
    let mut now = now;
    for n in 0..100_000u32 {
        if n % 1000 == 0 {
            now += Duration::from_millis(1);
        }
        let theirs = 2 + u16::try_from(n % 30_000).unwrap();
        let port = 1024 + u16::try_from(n % 60_000).unwrap();
        let _ = feed(&mut w, now, src(n + 1, port), &new_frame(theirs));
    }
    let tracked = w.relay().tracked_sources();
    assert!(tracked <= 65_536, "{tracked} addresses tracked");
    assert!(tracked > 4096);
    // The global cap on unanswered entries held.
    assert_eq!(w.relay().unanswered_entries(), 4096);
    assert!(drops(&w, DropReason::UnansweredLimit) > 90_000);
    w.relay().check_invariants().unwrap();
    // They are all reaped; every source's count comes back to zero and
    // a legitimate call connects again.
    let now = run_timers(&mut w, now, 41_000);
    assert_eq!(w.relay().active_calls(), 0);
    assert_eq!(w.relay().source_entries(src(1, 0).ip()), 0);
    assert_eq!(w.relay().unanswered_entries(), 0);
    call_to_far(&mut w, now, addr(PBX), 100);
    // IPv6 sources are keyed too.
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    call_to_far(&mut w, now, v6, 101);
    assert_eq!(w.relay().source_entries(v6.ip()), 1);
    w.relay().check_invariants().unwrap();
}

#[test]
fn legitimate_calls_connect_during_a_flood_from_one_address() {
    let (mut w, mut now) = relay(Admission::default());
    let mut back_to_flood = 0u64;
    let mut connected = 0;
    // 50,000 NEW/s for a second from one address, many ports; a
    // legitimate call from the PBX every 10 ms.
    for ms in 0..1000u32 {
        now += Duration::from_millis(1);
        for k in 0..50u32 {
            let n = ms * 50 + k;
            let port = 1024 + u16::try_from(n % 60_000).unwrap();
            let theirs = 2 + u16::try_from(n % 30_000).unwrap();
            let out = feed(&mut w, now, src(99, port), &new_frame(theirs));
            for (to, reply) in &out {
                if to.ip() == src(99, 0).ip() {
                    assert!(reply.len() <= new_frame(theirs).len());
                    back_to_flood += 1;
                }
            }
        }
        if ms % 10 == 0 {
            let theirs = 20_000 + u16::try_from(ms / 10).unwrap();
            let out = feed(&mut w, now, addr(PBX), &new_frame(theirs));
            if out.len() == 1 && out[0].0 == addr(FAR) {
                connected += 1;
            }
        }
    }
    assert_eq!(connected, 100, "every legitimate call connected");
    // The burst and a second's refill passed; the rest was dropped
    // unanswered.
    let rate = drops(&w, DropReason::NewRate);
    assert!((46_900..=47_100).contains(&rate), "{rate}");
    // Of those that passed, the source's share of unanswered entries
    // opened; the others had a REJECT, each no larger than its NEW.
    let share = Admission::default().max_unanswered_per_source;
    assert_eq!(w.relay().source_entries(src(99, 0).ip()), share);
    assert_eq!(back_to_flood, drops(&w, DropReason::SourceLimit));
    assert_eq!(u64::from(share) + back_to_flood + rate, 50_000);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_new_sent_again_and_again_on_a_call_is_cut_to_the_control_rate() {
    let (mut w, now) = relay(Admission::default());
    call_to_far(&mut w, now, addr(PBX), 100);
    // Toward a gateway peer a NEW sent again crosses the link twice, so
    // a flood of them would be doubled: they pass the leg's control
    // allowance, the burst of 100 (two copies each), and no more.
    let mut sent_on = 0;
    for _ in 0..1000 {
        let out = feed(&mut w, now, addr(PBX), &new_frame(100));
        assert!(out.iter().all(|(to, _)| *to == addr(FAR)));
        sent_on += out.len();
    }
    assert_eq!(sent_on, 200);
    assert_eq!(drops(&w, DropReason::ControlFlood), 900);
    assert_eq!(w.relay().active_calls(), 1);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_dtmf_flood_is_cut_to_the_limit_and_the_hangup_still_ends_the_call() {
    let (mut w, now) = relay(Admission::default());
    let ours = call_to_far(&mut w, now, addr(PBX), 100);
    accept(&mut w, now, ours, 500);
    // 1000 DTMF end (type 1), DTMF begin (12) and text (7) frames at once.
    let mut passed = 0;
    for k in 0..1000u32 {
        let ftype = [1u8, 12, 7][k as usize % 3];
        let f = raw_full(100, ours, 20 + k, 2, ftype, b'5', b"");
        passed += feed(&mut w, now, addr(PBX), &f).len();
    }
    assert_eq!(passed, 100, "the burst");
    assert_eq!(drops(&w, DropReason::ControlFlood), 900);
    // Voice full frames and IAX frames are never limited.
    let voice = raw_full(100, ours, 2000, 3, 2, 4, &[0u8; 160]);
    assert_eq!(feed(&mut w, now, addr(PBX), &voice).len(), 1);
    let ping = iax(100, ours, 2001, 4, 1, IaxSubclass::Ping, IeList::new());
    assert_eq!(feed(&mut w, now, addr(PBX), &ping).len(), 1);
    // The far leg has its own allowance.
    let dtmf = raw_full(500, 0, 30, 1, 1, b'1', b"");
    let mut dtmf = dtmf;
    dtmf[2..4].copy_from_slice(&ours.to_be_bytes());
    assert_eq!(feed(&mut w, now, addr(FAR), &dtmf).len(), 1);
    // A second later, 50 more.
    let later = now + Duration::from_secs(1);
    let mut passed = 0;
    for k in 0..100u32 {
        let f = raw_full(100, ours, 3000 + k, 5, 1, b'5', b"");
        passed += feed(&mut w, later, addr(PBX), &f).len();
    }
    assert_eq!(passed, 50);
    // The bucket is empty, yet a control HANGUP and the IAX HANGUP pass.
    let ctl_hangup = raw_full(100, ours, 4000, 6, 4, 1, b"");
    assert_eq!(feed(&mut w, later, addr(PBX), &ctl_hangup).len(), 1);
    let hangup = iax(100, ours, 4001, 7, 1, IaxSubclass::Hangup, IeList::new());
    let out = feed(&mut w, later, addr(PBX), &hangup);
    assert_eq!(out.len(), 1);
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Hangup));
    assert_eq!(w.counters().snapshot().calls_ended, 1);
    // After the linger, the call is gone.
    run_timers(&mut w, later, 11_000);
    assert_eq!(w.relay().active_calls(), 0);
    w.relay().check_invariants().unwrap();
}

#[test]
fn half_open_entries_have_a_bounded_lifetime() {
    let (mut w, now) = relay(Admission {
        answer_timeout: Duration::from_secs(30),
        ..Admission::default()
    });
    // A call accepted but never answered, kept busy with PINGs.
    let ringing = call_to_far(&mut w, now, addr(PBX), 100);
    accept(&mut w, now, ringing, 500);
    // A call answered.
    let answered = call_to_far(&mut w, now, addr(PBX), 101);
    accept(&mut w, now, answered, 501);
    let answer = raw_full(501, answered, 50, 1, 4, 4, b"");
    assert_eq!(feed(&mut w, now, addr(FAR), &answer).len(), 1);
    // A registration the far side challenged, never completed.
    let regreq = iax(
        102,
        0,
        3,
        0,
        0,
        IaxSubclass::RegReq,
        IeList::new().with(Ie::string(IeType::Username, "a").unwrap()),
    );
    let out = feed(&mut w, now, addr(PBX), &regreq);
    let reg = full(&out[0].1).source_call_number().get();
    let regauth = iax(502, reg, 4, 0, 1, IaxSubclass::RegAuth, IeList::new());
    assert_eq!(feed(&mut w, now, addr(FAR), &regauth).len(), 1);
    assert_eq!(w.relay().active_calls(), 3);

    // Keep everything busy for 29 s: nothing is reaped.
    let mut t = now;
    for s in 0..29u32 {
        t = run_timers(&mut w, t, 1000);
        for (theirs, ours) in [(100, ringing), (101, answered), (102, reg)] {
            let ping = iax(
                theirs,
                ours,
                100 + s,
                1,
                1,
                IaxSubclass::Ping,
                IeList::new(),
            );
            let _ = feed(&mut w, t, addr(PBX), &ping);
        }
    }
    assert_eq!(w.relay().active_calls(), 3);
    // Past 30 s from their creation the half-open ones go, busy or not.
    let t = run_timers(&mut w, t, 1500);
    assert_eq!(w.relay().active_calls(), 1, "only the answered call stays");
    assert_eq!(w.counters().snapshot().calls_reaped, 2);
    let ping = iax(101, answered, 500, 2, 1, IaxSubclass::Ping, IeList::new());
    assert_eq!(feed(&mut w, t, addr(PBX), &ping).len(), 1);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_reload_applies_new_limits_at_once() {
    let (mut w, now) = relay(Admission {
        new_rate: 1,
        new_burst: 1,
        ..Admission::default()
    });
    call_to_far(&mut w, now, addr(PBX), 100);
    assert!(feed(&mut w, now, addr(PBX), &new_frame(101)).is_empty());
    assert_eq!(drops(&w, DropReason::NewRate), 1);
    let config = config(Admission {
        new_rate: 1,
        new_burst: 10,
        ..Admission::default()
    });
    let report = w.relay().reload(&config).unwrap();
    assert!(report.to_string().contains("admission"), "{report}");
    // The source's bucket keeps its level; the new rate refills it.
    let later = now + Duration::from_secs(5);
    for k in 0..5 {
        call_to_far(&mut w, later, addr(PBX), 200 + k);
    }
}

#[test]
fn an_exchange_whose_ies_do_not_parse_is_dropped_as_malformed_and_takes_no_token() {
    let (mut w, now) = relay(Admission {
        new_rate: 1,
        new_burst: 1,
        ..Admission::default()
    });
    let good = new_frame(100);
    // An IE whose length runs past the end, and an IE block cut one byte
    // into an IE header; as NEW, POKE and REGREQ.
    let mut overlong = good.clone();
    overlong.extend_from_slice(&[5, 200, b'x']);
    let mut cut = good.clone();
    cut.push(6);
    let poke = raw_full(101, 0, 3, 0, 6, IaxSubclass::Poke.code(), &[11]);
    let regreq = raw_full(102, 0, 3, 0, 6, IaxSubclass::RegReq.code(), &[6, 4, b'a']);
    for bad in [&overlong, &cut, &poke, &regreq] {
        assert!(FullFrame::new_checked(&bad[..]).is_ok());
        assert!(IeBlock::new_checked(full(bad).payload()).is_err());
        assert_eq!(feed(&mut w, now, addr(PBX), bad), Vec::new());
    }
    assert_eq!(drops(&w, DropReason::Malformed), 4);
    assert_eq!(drops(&w, DropReason::NewRate), 0);
    assert_eq!(w.relay().active_calls(), 0);
    // The PBX's one token is still there for a NEW that parses.
    let out = feed(&mut w, now, addr(PBX), &good);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(FAR));
    w.relay().check_invariants().unwrap();
}
