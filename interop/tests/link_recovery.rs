//! Gateway A registers with gateway B through a NAT (in user space, on
//! loopback: `iax2_interop::udp_nat`). The NAT's mapping is then poisoned,
//! as a stale conntrack entry left from a WAN outage is: everything
//! through it is lost, and only a new 5-tuple gets through. Gateway A
//! finds its link unreachable, moves it to a fresh source port, registers
//! again at once; B accepts the new address and moves the calls; the
//! calls that were up carry on.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use iax2_interop::lab::{
    emulated_pbx, free_loopback_addr, linked_gateway_yaml, mute_all, start_gateway, wait_for,
};
use iax2_interop::udp_nat::UdpNat;
use trunk_core::relay::{LinkState, RegistrationState};

const CALLS: usize = 10;
const SECRET: &str = "link-secret-1";

fn gateway_yaml(listen: SocketAddr, pbx: SocketAddr, far: &str) -> String {
    // Probes every second, unreachable after two misses, quick retries.
    let keys = format!(
        "    keepalive: 1\n    unreachable_after: 2\n    retry_min: 1\n    retry_max: 4\n    \
         secret: {SECRET}\n{far}"
    );
    linked_gateway_yaml(listen, pbx, &keys)
}

#[test]
fn a_poisoned_nat_mapping_is_escaped_on_a_fresh_port_and_the_calls_carry_on() {
    let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (sock_a, sock_b) = (bind(), bind());
    let (pbx_a, pbx_b) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());
    let (listen_a, listen_b) = (free_loopback_addr(), free_loopback_addr());
    let b = start_gateway(
        &gateway_yaml(listen_b, pbx_b, "    host: dynamic\n"),
        "site-b.yaml",
    );
    let nat = UdpNat::start(b.local_addr());
    let a = start_gateway(
        &gateway_yaml(
            listen_a,
            pbx_a,
            &format!(
                "    host: {}\n    register: true\n    username: far\n",
                nat.inside()
            ),
        ),
        "site-a.yaml",
    );
    let now = trunk_core::time::Instant::from_micros;
    let link = |g: &iax2_gateway::runtime::GatewayHandle| {
        g.relay().link_views(now(u64::MAX / 4)).remove(0)
    };
    wait_for(
        "A registered through the NAT",
        Duration::from_secs(10),
        || {
            link(&a)
                .registration
                .is_some_and(|r| r.state == RegistrationState::Registered)
        },
    );
    let first = nat.mappings();
    assert_eq!(first.len(), 1, "one mapping: A's listen port");
    assert_eq!(first[0].0, a.local_addr());
    let public_1 = first[0].1;
    assert_eq!(link(&b).addr, Some(public_1), "B sees the NAT's address");
    assert_eq!(
        link(&a).registration.unwrap().apparent,
        Some(public_1),
        "and tells A so"
    );

    let pa = emulated_pbx(sock_a, 31, false, |_| {});
    let pb = emulated_pbx(sock_b, 32, true, |_| {});
    assert_eq!(pa.originate(a.local_addr(), "700", CALLS).len(), CALLS);
    wait_for("every call answered", Duration::from_secs(20), || {
        pa.stats().calls_answered == CALLS as u64 && pb.stats().calls_answered == CALLS as u64
    });
    std::thread::sleep(Duration::from_secs(1));

    // The NAT's entry goes bad: nothing through it arrives any more.
    let poisoned_at = Instant::now();
    assert_eq!(nat.poison_all(), 1);
    let before = (pa.stats().voice_received, pb.stats().voice_received);
    std::thread::sleep(Duration::from_millis(500));
    let stalled = (pa.stats().voice_received, pb.stats().voice_received);
    assert!(
        stalled.0 - before.0 < 100 && stalled.1 - before.1 < 100,
        "media stopped: {before:?} -> {stalled:?}"
    );
    // A's probes go unanswered: unreachable, a fresh port, a new
    // registration, and B moves the calls to the new address.
    wait_for("media back both ways", Duration::from_secs(20), || {
        let now = (pa.stats().voice_received, pb.stats().voice_received);
        now.0 > stalled.0 + 100 && now.1 > stalled.1 + 100
    });
    let outage = poisoned_at.elapsed();
    let reg = link(&a).registration.unwrap();
    assert_eq!(reg.state, RegistrationState::Registered);
    assert_eq!(reg.moves, 1, "{reg:?}");
    let port = reg.local_port.unwrap();
    assert_ne!(port, a.local_addr().port());
    let mappings = nat.mappings();
    assert_eq!(mappings.len(), 2, "{mappings:?}");
    let public_2 = mappings
        .iter()
        .find(|(inside, _)| inside.port() == port)
        .unwrap()
        .1;
    assert_eq!(link(&b).addr, Some(public_2));
    assert_eq!(reg.apparent, Some(public_2));
    let r = link(&b).registrar.unwrap();
    assert_eq!((r.address_changes, r.calls_moved), (1, CALLS as u64));
    wait_for("A's probes answered again", Duration::from_secs(5), || {
        link(&a).state == LinkState::Ok
    });
    eprintln!(
        "media resumed {:.1} s after the NAT entry was poisoned; {} datagrams lost at the NAT",
        outage.as_secs_f64(),
        nat.lost()
    );
    // Keepalive 1 s x 2 misses, then the move and one exchange.
    assert!(outage < Duration::from_secs(8), "{outage:?}");

    // The same, as an operator sees it.
    let metrics_a = iax2_gateway::admin::metrics::encode(a.admin_state());
    let metrics_b = iax2_gateway::admin::metrics::encode(b.admin_state());
    for line in [
        "iax2_gateway_link_port_moves_total{peer=\"far\"} 1",
        "iax2_gateway_registered{peer=\"far\",role=\"registers\"} 1",
    ] {
        assert!(metrics_a.contains(line), "A lacks {line}:\n{metrics_a}");
    }
    for line in [
        "iax2_gateway_registered{peer=\"far\",role=\"registrar\"} 1",
        "iax2_gateway_link_address_changes_total{peer=\"far\"} 1",
        &format!("iax2_gateway_calls_moved_total{{peer=\"far\"}} {CALLS}"),
    ] {
        assert!(metrics_b.contains(line), "B lacks {line}:\n{metrics_b}");
    }

    // Every call is still the same call, up on both sides.
    assert_eq!(pa.stats().active_calls, CALLS);
    assert_eq!(pb.stats().active_calls, CALLS);
    assert_eq!(pa.stats().calls_ended + pb.stats().calls_ended, 0);
    assert_eq!(
        (a.relay().active_calls(), b.relay().active_calls()),
        (CALLS, CALLS)
    );

    assert_eq!((mute_all(&pa), mute_all(&pb)), (Some(CALLS), Some(CALLS)));
    assert_eq!(pa.hangup_all(16), CALLS);
    wait_for("calls ended on both PBXs", Duration::from_secs(10), || {
        pa.stats().active_calls == 0 && pb.stats().active_calls == 0
    });
    wait_for("tables empty", Duration::from_secs(10), || {
        a.relay().active_calls() == 0 && b.relay().active_calls() == 0
    });
}
