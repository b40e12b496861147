//! The admin endpoints of a gateway pair carrying calls: `/metrics` is
//! scraped over HTTP and parsed, and its counters must agree with the
//! traffic the emulated PBXs sent and received; no label may carry an
//! address or a call number; `/status` and `/healthz` answer.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use iax2_gateway::admin::status::Status;
use iax2_gateway::admin::{client, AdminServer};
use iax2_interop::lab::{emulated_pbx, mute_all, two_sites, wait_for};
use iax2_loadtest::driver::DriverHandle;

const CALLS: usize = 20;

fn pbx(socket: UdpSocket, seed: u64, callee: bool) -> DriverHandle {
    emulated_pbx(socket, seed, callee, |c| {
        c.secret = Some("metrics-secret".into());
        // One PING per call while it is up, for the RTT.
        c.ping_interval = Some(Duration::from_secs(1));
    })
}

/// One sample: labels and value.
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Parses the text exposition (OpenMetrics) into samples by name.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap();
                let labels = rest
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").unwrap();
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        out.entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    out
}

/// The value of `name` with exactly these labels (0 when absent).
fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    s.get(name)
        .and_then(|v| v.iter().find(|(l, _)| *l == want))
        .map_or(0.0, |(_, v)| *v)
}

#[allow(clippy::cast_precision_loss)]
fn f(n: u64) -> f64 {
    n as f64
}

#[test]
fn metrics_agree_with_the_traffic_and_carry_no_addresses() {
    let (pair, _, _, sock_a, sock_b) = two_sites(2);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let admin_a = AdminServer::start(any, pair.a.admin_state()).unwrap();
    let admin_b = AdminServer::start(any, pair.b.admin_state()).unwrap();
    let a = pbx(sock_a, 21, false);
    let b = pbx(sock_b, 22, true);

    assert_eq!(
        client::get(admin_a.local_addr(), "/healthz").unwrap(),
        "ok\n"
    );
    assert_eq!(a.originate(pair.a.local_addr(), "700", CALLS).len(), CALLS);
    wait_for("every call answered", Duration::from_secs(20), || {
        a.stats().calls_answered == CALLS as u64 && b.stats().calls_answered == CALLS as u64
    });
    std::thread::sleep(Duration::from_millis(2500));

    // While the calls are up: /status lists them with both legs.
    let status: Status =
        serde_json::from_str(&client::get(admin_a.local_addr(), "/status").unwrap()).unwrap();
    let up: Vec<_> = status.calls.iter().filter(|c| c.kind == "call").collect();
    assert_eq!(up.len(), CALLS, "{status:#?}");
    for c in &up {
        assert_eq!(c.state, "up");
        assert_eq!(
            (c.legs[0].peer.as_str(), c.legs[1].peer.as_str()),
            ("pbx-a", "far")
        );
        assert!(c.legs[0].frames > 50 && c.legs[1].frames > 50, "{c:?}");
        assert_eq!((c.legs[0].gaps, c.legs[1].gaps), (0, 0));
    }
    let text = iax2_gateway::admin::status::render(&status);
    assert!(text.contains("Peers") && text.contains("Trunks") && text.contains("pbx-a"));

    assert_eq!((mute_all(&a), mute_all(&b)), (Some(CALLS), Some(CALLS)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.hangup_all(16), CALLS);
    wait_for("both tables empty", Duration::from_secs(10), || {
        pair.active_calls() == (0, 0)
    });
    let (sa, sb) = (a.stats(), b.stats());
    let ma = parse(&client::get(admin_a.local_addr(), "/metrics").unwrap());
    let mb = parse(&client::get(admin_b.local_addr(), "/metrics").unwrap());

    // Calls: every call ended answered, in from PBX A, out to the far
    // gateway, and the mirror at B.
    let calls = |m: &Samples, peer, dir, result| {
        value(
            m,
            "iax2_gateway_calls_total",
            &[("peer", peer), ("direction", dir), ("result", result)],
        )
    };
    let n = f(CALLS as u64);
    assert_eq!(calls(&ma, "pbx-a", "in", "answered"), n);
    assert_eq!(calls(&ma, "far", "out", "answered"), n);
    assert_eq!(calls(&mb, "far", "in", "answered"), n);
    assert_eq!(calls(&mb, "pbx-b", "out", "answered"), n);
    assert_eq!(value(&ma, "iax2_gateway_call_setup_seconds_count", &[]), n);

    // Packets: PBX A's voice minis all reached gateway A, 164 bytes each,
    // and left in trunk frames whose entries gateway B received.
    let packets = |m: &Samples, name: &str, peer, dir, kind| {
        value(
            m,
            name,
            &[("peer", peer), ("direction", dir), ("kind", kind)],
        )
    };
    let minis_a = f(sa.voice_sent - sa.voice_full_sent);
    assert_eq!(
        packets(&ma, "iax2_gateway_packets_total", "pbx-a", "rx", "mini"),
        minis_a
    );
    assert_eq!(
        packets(&ma, "iax2_gateway_bytes_total", "pbx-a", "rx", "mini"),
        minis_a * 164.0
    );
    let entries = |m: &Samples, peer, dir| {
        value(
            m,
            "iax2_gateway_trunk_entries_total",
            &[("peer", peer), ("direction", dir)],
        )
    };
    let frames = |m: &Samples, peer, dir| {
        value(
            m,
            "iax2_gateway_trunk_frames_total",
            &[("peer", peer), ("direction", dir)],
        )
    };
    assert_eq!(
        entries(&ma, "far", "tx"),
        minis_a,
        "every mini became an entry"
    );
    assert_eq!(entries(&mb, "far", "rx"), minis_a);
    assert_eq!(frames(&ma, "far", "tx"), frames(&mb, "far", "rx"));
    assert_eq!(
        frames(&ma, "far", "tx"),
        packets(&ma, "iax2_gateway_packets_total", "far", "tx", "trunk")
    );
    assert!(
        frames(&ma, "far", "tx") > 0.0
            && entries(&ma, "far", "tx") > 2.0 * frames(&ma, "far", "tx")
    );
    assert_eq!(
        value(
            &ma,
            "iax2_gateway_trunk_frame_entries_count",
            &[("peer", "far")]
        ),
        frames(&ma, "far", "tx")
    );
    assert_eq!(
        value(
            &ma,
            "iax2_gateway_trunk_frame_entries_sum",
            &[("peer", "far")]
        ),
        entries(&ma, "far", "tx")
    );
    // At B the entries became minis to PBX B, which received them all.
    let minis_b_rx = packets(&mb, "iax2_gateway_packets_total", "pbx-b", "tx", "mini");
    assert_eq!(minis_b_rx, minis_a);
    assert_eq!(f(sb.voice_received), minis_a + f(sa.voice_full_sent));
    // Every voice frame from PBX A was a mini, and seen in its call.
    assert_eq!(
        value(&ma, "iax2_gateway_voice_frames_total", &[("peer", "pbx-a")]),
        minis_a
    );
    assert_eq!(
        value(
            &ma,
            "iax2_gateway_peer_info",
            &[("peer", "far"), ("kind", "gateway")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &ma,
            "iax2_gateway_peer_info",
            &[("peer", "pbx-a"), ("kind", "pbx")]
        ),
        1.0
    );
    // Nothing was lost on the way, so no gaps; and nothing reordered: each
    // call's minis are steered to one worker and the gateways' trunk
    // entries are grouped by worker, so no handoff is in the way. Both
    // peers up; RTTs known.
    for m in [&ma, &mb] {
        for peer in ["far", "pbx-a", "pbx-b"] {
            for name in [
                "iax2_gateway_voice_gaps_total",
                "iax2_gateway_voice_reordered_total",
            ] {
                assert_eq!(value(m, name, &[("peer", peer)]), 0.0, "{name} {peer}");
            }
        }
    }
    assert_eq!(
        value(&ma, "iax2_gateway_peer_up", &[("peer", "pbx-a")]),
        1.0
    );
    assert_eq!(value(&ma, "iax2_gateway_peer_up", &[("peer", "far")]), 1.0);
    let rtt = value(&ma, "iax2_gateway_peer_rtt_seconds", &[("peer", "far")]);
    assert!(
        rtt > 0.0 && rtt < 1.0,
        "PINGs relayed to the far gateway were answered: {rtt}"
    );
    // Each gateway's own probes of the other are answered.
    for m in [&ma, &mb] {
        assert_eq!(value(m, "iax2_gateway_link_up", &[("peer", "far")]), 1.0);
        assert_eq!(
            value(m, "iax2_gateway_link_lagged", &[("peer", "far")]),
            0.0
        );
        assert_eq!(
            value(m, "iax2_gateway_link_missed_probes", &[("peer", "far")]),
            0.0
        );
        let rtt = value(m, "iax2_gateway_link_rtt_seconds", &[("peer", "far")]);
        assert!(rtt > 0.0 && rtt < 1.0, "link probe round trip {rtt}");
    }
    assert_eq!(
        value(&ma, "iax2_gateway_drops_total", &[("reason", "malformed")]),
        0.0
    );
    assert!(value(&ma, "process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(value(&ma, "iax2_gateway_workers", &[]), 2.0);

    // Labels: only the documented keys; no value that is an address, a
    // port or a call number.
    let allowed: BTreeSet<&str> = [
        "peer",
        "direction",
        "kind",
        "result",
        "reason",
        "version",
        "le",
        "cause",
        "role",
    ]
    .into_iter()
    .collect();
    for (name, samples) in ma.iter().chain(mb.iter()) {
        for (labels, _) in samples {
            for (k, v) in labels {
                assert!(allowed.contains(k.as_str()), "{name}: label {k}");
                assert!(
                    v.parse::<SocketAddr>().is_err() && v.parse::<std::net::IpAddr>().is_err(),
                    "{name}: {k}={v}"
                );
                if k != "le" && k != "version" {
                    assert!(
                        v.parse::<f64>().is_err(),
                        "{name}: {k}={v} looks like a number"
                    );
                }
            }
        }
    }
    drop((a.stop(), b.stop()));
}
