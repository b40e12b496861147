//! Two endpoints on real loopback UDP sockets, each run by a driver thread.

use std::net::UdpSocket;
use std::time::Duration;

use iax2_loadtest::driver::{spawn_group, spawn_udp, DriverConfig, DriverGroup, DriverHandle};
use iax2_loadtest::{Endpoint, EndpointConfig, Event};

/// Polls `cond` until it holds; fails the test after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A driver on a fresh loopback socket. Both ends know the secret; the
/// callee also demands call tokens.
fn driver(seed: u64, callee: bool, origin: std::time::Instant) -> DriverHandle {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let mut cfg = EndpointConfig::new(socket.local_addr().expect("local addr"), seed);
    cfg.secret = Some("s3cret".into());
    cfg.require_calltoken = callee;
    let dc = DriverConfig {
        origin,
        ..DriverConfig::default()
    };
    spawn_udp(Endpoint::new(cfg), socket, dc).expect("spawn driver")
}

#[test]
fn twenty_calls_for_two_seconds_over_loopback() {
    // One clock origin for both, so one-way latency is measurable.
    let origin = std::time::Instant::now();
    let a = driver(1, false, origin);
    let b = driver(2, true, origin);

    let ids = a.originate(b.local_addr(), "2001", 20);
    assert_eq!(ids.len(), 20);
    wait_for("20 answered calls", Duration::from_secs(20), || {
        a.stats().calls_answered == 20 && b.stats().calls_answered == 20
    });
    // The workload: two seconds of voice both ways.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.hangup_all(16), 20);
    wait_for("all calls released", Duration::from_secs(20), || {
        a.active_calls() == 0 && b.active_calls() == 0
    });
    let (ev_a, ev_b) = (a.take_events(), b.take_events());
    let answered = |ev: &[Event]| {
        ev.iter()
            .filter(|e| matches!(e, Event::Answered { .. }))
            .count()
    };
    let hung_up = ev_b
        .iter()
        .filter(|e| matches!(e, Event::HungUp { cause_code: 16, .. }))
        .count();
    assert_eq!((answered(&ev_a), answered(&ev_b), hung_up), (20, 20, 20));
    for s in [a.stats(), b.stats()] {
        assert_eq!(s.calls_ended, 20);
        assert!(s.voice_received > 20 * 50, "{}", s.voice_received);
        assert_eq!(s.voice_corrupt, 0);
        assert_eq!(s.voice_duplicates, 0);
        assert_eq!(s.voice_lost, 0);
        assert_eq!(s.malformed, 0);
    }
    assert_eq!(b.stats().calltoken_challenges, 20);
    let (ep, ds) = a.stop().expect("driver thread joined");
    assert_eq!(ep.active_calls(), 0);
    assert_eq!(ds.send_errors, 0);
    assert!(ds.received > 0);
}

/// One PBX played by `shards` endpoints sharing one loopback address.
fn group(seed: u64, shards: usize, callee: bool, origin: std::time::Instant) -> DriverGroup {
    let dc = DriverConfig {
        origin,
        ..DriverConfig::default()
    };
    let addr = "127.0.0.1:0".parse().expect("address");
    spawn_group(addr, shards, dc, |shard| {
        let mut cfg = EndpointConfig::new(addr, seed + u64::from(shard.index));
        cfg.secret = Some("s3cret".into());
        cfg.require_calltoken = callee;
        cfg.shard = Some(shard);
        Endpoint::new(cfg)
    })
    .expect("spawn group")
}

#[test]
fn a_pbx_on_three_threads_calls_a_pbx_on_two() {
    let origin = std::time::Instant::now();
    let mut a = group(10, 3, false, origin);
    let b = group(20, 2, true, origin);
    assert_eq!(a.shards().len(), 3);
    assert!(a.shards().iter().all(|s| s.local_addr() == a.local_addr()));

    assert_eq!(a.originate(b.local_addr(), "2001", 60), 60);
    wait_for("60 answered calls", Duration::from_secs(20), || {
        a.stats().calls_answered == 60 && b.stats().calls_answered == 60
    });
    // Every shard of A carries a share of the calls.
    let per_shard: Vec<usize> = a.shards().iter().map(DriverHandle::active_calls).collect();
    assert_eq!(per_shard, vec![20, 20, 20]);
    std::thread::sleep(Duration::from_secs(2));
    let m = a.measurements(true);
    assert!(m.latency_us.len() > 60 * 50, "{}", m.latency_us.len());
    assert_eq!(m.setup_us.len(), 60);
    assert_eq!(a.hangup_all(16), 60);
    wait_for("all calls released", Duration::from_secs(20), || {
        a.active_calls() == 0 && b.active_calls() == 0
    });
    for s in [a.stats(), b.stats()] {
        assert_eq!(s.calls_ended, 60);
        assert!(s.voice_received > 60 * 90, "{}", s.voice_received);
        assert_eq!(
            (s.voice_lost, s.voice_corrupt, s.voice_duplicates),
            (0, 0, 0)
        );
        assert_eq!((s.unknown_call_media, s.malformed), (0, 0));
    }
    // B's call numbers are spread over A's three sockets by the steering
    // program, so most of A's voice reached a shard that handed it on.
    let (forwarded, _, dropped) = a.handoffs();
    assert!(forwarded > 60 * 50, "{forwarded}");
    assert_eq!(dropped, 0);
    let (_, ds) = a.stop();
    assert_eq!(ds.send_errors, 0);
    assert_eq!(ds.handed_in, forwarded);
}

/// Latency is measured from when a frame reached the PBX's socket (the
/// kernel's receive timestamp), not from when the PBX's thread got to it:
/// a thread held up for 600 ms still measures the network's few ms.
#[test]
fn latency_is_measured_at_the_socket_not_when_the_thread_reads() {
    let origin = std::time::Instant::now();
    let a = driver(5, false, origin);
    let b = driver(6, true, origin);
    a.originate(b.local_addr(), "2001", 1);
    wait_for("the call answered", Duration::from_secs(20), || {
        a.stats().calls_answered == 1 && b.stats().calls_answered == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    // A new window, then A's thread is busy while B's voice queues up.
    a.with(|ep, _, _| ep.take_measurements()).unwrap();
    let received = a.stats().voice_received;
    a.with(|_, _, _| std::thread::sleep(Duration::from_millis(600)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let m = a.with(|ep, _, _| ep.take_measurements()).unwrap();
    // About 35 frames arrived while A slept, and were read in one go.
    assert!(a.stats().voice_received >= received + 25);
    let worst = iax2_loadtest::endpoint::measure::max_ms(&m.latency_us);
    assert!(worst < 150.0, "worst latency {worst} ms");
    a.hangup_all(16);
}
