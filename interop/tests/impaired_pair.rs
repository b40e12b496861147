//! Calls between the gateways through the impairment proxy
//! (`iax2_loadtest::impair`): 5% loss, 2% reordering, 1% duplication and
//! 30 ms of jitter each way on the WAN. Gateway A registers with B through
//! the proxy (B's peer for A is `host: dynamic`, so B takes A's traffic
//! from the proxy's upstream socket). Every call must set up (the PBXs
//! retransmit full frames end to end), the voice lost at each far PBX
//! must be no worse than the loss injected, no call may be left up, and
//! both call tables must empty after the hangups. A call that does not
//! set up fails the test with both PBXs', both gateways' and the WAN's
//! counters.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use iax2_interop::lab::{
    emulated_pbx, free_loopback_addr, linked_gateway_yaml, mute_all, start_gateway, wait_for,
};
use iax2_loadtest::endpoint::EndpointStats;
use iax2_loadtest::impair::{Proxy, ProxyConfig, Settings};
use trunk_core::relay::RegistrationState;

const CALLS: usize = 30;
const SECRET: &str = "impaired-link-1";
const LOSS: f64 = 0.05;
/// Voice carried after every call is up.
const MEDIA: Duration = Duration::from_secs(12);

fn gateway_yaml(listen: SocketAddr, pbx: SocketAddr, far: &str) -> String {
    linked_gateway_yaml(listen, pbx, &format!("    secret: {SECRET}\n{far}"))
}

/// Share of the voice frames a PBX should have received that never came.
fn loss(s: &EndpointStats) -> f64 {
    let unique = s.voice_received - s.voice_duplicates;
    s.voice_lost as f64 / (unique + s.voice_lost) as f64
}

#[test]
fn calls_through_a_lossy_reordering_duplicating_jittery_wan_set_up_and_end_cleanly() {
    let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (sock_a, sock_b) = (bind(), bind());
    let (pbx_a, pbx_b) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());
    let (listen_a, listen_b) = (free_loopback_addr(), free_loopback_addr());
    let b = start_gateway(
        &gateway_yaml(listen_b, pbx_b, "    host: dynamic\n"),
        "site-b.yaml",
    );
    let settings = Settings {
        loss: LOSS,
        reorder: 0.02,
        reorder_delay: Duration::from_millis(50),
        duplicate: 0.01,
        jitter: Duration::from_millis(30),
        ..Settings::default()
    };
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), b.local_addr(), settings);
    // IMPAIR_SEED picks other decisions, to explore.
    config.seed = std::env::var("IMPAIR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let proxy = Proxy::start(&config).unwrap();
    let a = start_gateway(
        &gateway_yaml(
            listen_a,
            pbx_a,
            &format!(
                "    host: {}\n    register: true\n    username: far\n",
                proxy.local_addr()
            ),
        ),
        "site-a.yaml",
    );
    let now = trunk_core::time::Instant::from_micros;
    wait_for(
        "A registered through the proxy",
        Duration::from_secs(15),
        || {
            a.relay()
                .link_views(now(u64::MAX / 4))
                .remove(0)
                .registration
                .is_some_and(|r| r.state == RegistrationState::Registered)
        },
    );

    let pa = emulated_pbx(sock_a, 41, false, |_| {});
    let pb = emulated_pbx(sock_b, 42, true, |_| {});
    assert_eq!(pa.originate(a.local_addr(), "700", CALLS).len(), CALLS);
    let all_answered =
        || pa.stats().calls_answered == CALLS as u64 && pb.stats().calls_answered == CALLS as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !all_answered() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        all_answered(),
        "not every call answered in 20 s (seed {})\nPBX A {:#?}\nPBX B {:#?}\n\
         gateway A {:#?}\ngateway B {:#?}\nWAN {:#?}\ntables {:?}",
        config.seed,
        pa.stats(),
        pb.stats(),
        a.counters(),
        b.counters(),
        proxy.stats(),
        (a.relay().active_calls(), b.relay().active_calls()),
    );
    std::thread::sleep(MEDIA);
    assert_eq!((mute_all(&pa), mute_all(&pb)), (Some(CALLS), Some(CALLS)));
    // Let what is in flight (up to 80 ms behind) land before counting.
    std::thread::sleep(Duration::from_millis(500));
    let (sa, sb) = (pa.stats(), pb.stats());
    let wan = proxy.stats();

    assert_eq!(
        (pa.stats().active_calls, pb.stats().active_calls),
        (CALLS, CALLS)
    );
    assert_eq!(pa.hangup_all(16), CALLS);
    wait_for("calls ended on both PBXs", Duration::from_secs(20), || {
        pa.stats().active_calls == 0 && pb.stats().active_calls == 0
    });
    wait_for("both call tables empty", Duration::from_secs(20), || {
        a.relay().active_calls() == 0 && b.relay().active_calls() == 0
    });

    let injected = |c: &iax2_loadtest::impair::Counters| c.dropped() as f64 / c.received as f64;
    let (a_to_b, b_to_a) = (loss(&sb), loss(&sa));
    eprintln!(
        "{CALLS} calls: {} answered at A's PBX, {} failed; voice A->B {} frames received at B's PBX, \
         loss {:.2}% (WAN dropped {:.2}% of {} datagrams, duplicated {}, held back {}); \
         voice B->A {} frames at A's PBX, loss {:.2}% (WAN dropped {:.2}% of {}, duplicated {}, \
         held back {}); duplicates seen {} / {}, reordered seen {} / {}",
        sa.calls_answered,
        sa.calls_failed + sb.calls_failed,
        sb.voice_received,
        a_to_b * 100.0,
        injected(&wan.to_upstream) * 100.0,
        wan.to_upstream.received,
        wan.to_upstream.duplicated,
        wan.to_upstream.reordered,
        sa.voice_received,
        b_to_a * 100.0,
        injected(&wan.to_client) * 100.0,
        wan.to_client.received,
        wan.to_client.duplicated,
        wan.to_client.reordered,
        sb.voice_duplicates,
        sa.voice_duplicates,
        sb.voice_reordered,
        sa.voice_reordered,
    );
    assert_eq!(sa.calls_answered, CALLS as u64);
    assert_eq!(sa.calls_failed + sb.calls_failed, 0);
    assert!(sa.voice_received > 10_000 && sb.voice_received > 10_000);
    // The bound: the injected 5% plus 2 points of slack. Voice crosses the
    // WAN packed into trunk frames, several calls' frames in each datagram,
    // so the samples are the WAN datagrams, not the voice frames: some
    // 6,000 each way in 12 s (printed above), whose lost share has a
    // standard deviation near 0.3 point at 5%. Two points is several of
    // them, and also covers the voice a PBX discards while a call's first
    // full voice frame, lost on the WAN, waits for its retransmission.
    // Against what the WAN really dropped in this run, the sampling
    // noise is gone: only the discarded voice is left, so one point.
    for (dir, measured, dropped) in [
        ("A->B", a_to_b, injected(&wan.to_upstream)),
        ("B->A", b_to_a, injected(&wan.to_client)),
    ] {
        assert!(
            measured <= LOSS + 0.02,
            "{dir}: {:.2}% of the voice lost, more than {:.0}% injected + 2 points",
            measured * 100.0,
            LOSS * 100.0
        );
        assert!(
            measured <= dropped + 0.01,
            "{dir}: {:.2}% of the voice lost, the WAN dropped {:.2}% of its datagrams",
            measured * 100.0,
            dropped * 100.0
        );
    }
    // Duplicated and reordered datagrams reached the PBXs and were
    // recognised as such, not counted as loss.
    assert!(wan.to_upstream.duplicated > 0 && wan.to_client.reordered > 0);
}
