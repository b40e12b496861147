//! Draining a gateway under load: 100 calls with voice through a gateway
//! pair, then gateway A drains (what SIGTERM does in the binary).
//!
//! ```text
//! PBX A (caller) <-> gateway A (draining) <=trunk=> gateway B <-> PBX B (callee)
//! ```
//!
//! What the test shows (issue: operating the gateway):
//! - new calls are refused at once, from either side: PBX A's NEWs and
//!   PBX B's are answered with REJECT, cause 42, and counted as
//!   `draining` drops; no call is created for them;
//! - the calls already up keep their voice both ways, with no loss, until
//!   PBX A hangs them up;
//! - the drain does not end while calls are up, and ends (no call left)
//!   once they have been hung up and their linger has passed.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::time::Duration;

use iax2_gateway::{DrainEnd, DrainOutcome};
use iax2_interop::lab::{
    assert_no_stray_drops, emulated_pbx, mute_all, wait_for, Local, Pair, SiteSpec,
};
use iax2_loadtest::driver::DriverHandle;
use iax2_loadtest::endpoint::Event;
use trunk_core::relay::DropReason;

/// Calls up when the drain begins.
const CALLS: usize = 100;
/// Calls each PBX tries while the gateway drains.
const REFUSED: usize = 10;

fn pbx(socket: UdpSocket, seed: u64, callee: bool) -> DriverHandle {
    emulated_pbx(socket, seed, callee, |c| {
        c.secret = Some("drain-secret".into());
    })
}

/// The cause codes of the REJECTs `pbx` received since the last call.
fn reject_causes(pbx: &DriverHandle) -> Vec<u8> {
    pbx.take_events()
        .into_iter()
        .filter_map(|e| {
            if let Event::Rejected { cause_code, .. } = e {
                Some(cause_code)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn a_draining_gateway_refuses_new_calls_and_carries_the_rest_to_their_end() {
    let sock_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (addr_a, addr_b) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());
    let mut site_a = SiteSpec::new(vec![Local::new("pbx-a", addr_a, None)]);
    let mut site_b = SiteSpec::new(vec![Local::new("pbx-b", addr_b, None)]);
    site_a.workers = 2;
    site_b.workers = 2;
    // `drain` is the deadline; the hangup linger (1 s) is the lab's.
    site_a.top_keys = vec!["timeouts:\n  hangup_linger: 1\n  drain: 60".to_owned()];
    let pair = Pair::start(&site_a, &site_b);
    let a = pbx(sock_a, 31, false);
    let b = pbx(sock_b, 32, true);

    assert_eq!(a.originate(pair.a.local_addr(), "700", CALLS).len(), CALLS);
    wait_for("every call answered", Duration::from_secs(30), || {
        a.stats().calls_answered == CALLS as u64 && b.stats().calls_answered == CALLS as u64
    });
    std::thread::sleep(Duration::from_millis(1000));
    drop(reject_causes(&a));
    drop(reject_causes(&b));

    std::thread::scope(|s| {
        let drain = s.spawn(|| pair.a.drain(Duration::from_secs(60)));
        wait_for("the drain to begin", Duration::from_secs(5), || {
            pair.a.is_draining()
        });

        // New calls from both sides are refused by gateway A, cause 42.
        assert_eq!(
            a.originate(pair.a.local_addr(), "700", REFUSED).len(),
            REFUSED
        );
        assert_eq!(
            b.originate(pair.b.local_addr(), "800", REFUSED).len(),
            REFUSED
        );
        wait_for("the new calls refused", Duration::from_secs(10), || {
            a.stats().calls_rejected_by_peer == REFUSED as u64
                && b.stats().calls_rejected_by_peer == REFUSED as u64
        });
        for (name, pbx) in [("PBX A", &a), ("PBX B", &b)] {
            let causes = reject_causes(pbx);
            assert!(
                causes.len() >= REFUSED && causes.iter().all(|&c| c == 42),
                "{name}: {causes:?}"
            );
        }
        // At least: a NEW retransmitted before its REJECT landed (a
        // starved machine) is refused again.
        let ca = pair.a.counters();
        assert!(ca.drops(DropReason::Draining) >= 2 * REFUSED as u64);
        assert_eq!(
            ca.calls_created, CALLS as u64,
            "no call created while draining"
        );
        assert_eq!(b.stats().calls_incoming, CALLS as u64);

        // The calls up go on talking; the drain waits for them.
        std::thread::sleep(Duration::from_millis(2000));
        assert!(!drain.is_finished(), "the drain ended with calls up");
        assert_eq!(pair.a.relay().call_entries(), CALLS);
        assert_eq!((a.active_calls(), b.active_calls()), (CALLS, CALLS));

        // PBX A stops talking, the voice in flight lands, then it hangs
        // up every call.
        assert_eq!((mute_all(&a), mute_all(&b)), (Some(CALLS), Some(CALLS)));
        std::thread::sleep(Duration::from_millis(500));
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!(a.hangup_all(16), CALLS);

        let outcome: DrainOutcome = drain.join().unwrap();
        assert_eq!(
            (outcome.end, outcome.calls_at_start, outcome.calls_left),
            (DrainEnd::Drained, CALLS, 0),
            "{outcome:?}"
        );
        assert!(outcome.waited < Duration::from_secs(60), "{outcome:?}");

        // Not a frame of voice lost, either way, across the drain.
        for (name, st) in [("PBX A", &sa), ("PBX B", &sb)] {
            assert!(st.voice_received > 0, "{name}");
            assert_eq!(
                (st.voice_lost, st.voice_corrupt, st.unknown_call_media),
                (0, 0, 0),
                "{name}: {st:?}"
            );
        }
        assert_eq!(sa.voice_sent, sb.voice_received, "A -> B");
        assert_eq!(sb.voice_sent, sa.voice_received, "B -> A");
        // Every call ended by PBX A's hangup, none cut by the gateway.
        wait_for("PBX B saw every hangup", Duration::from_secs(10), || {
            b.stats().calls_hung_up_by_peer == CALLS as u64
        });
    });
    let (ca, cb) = (pair.a.counters(), pair.b.counters());
    assert_eq!(ca.calls_reaped, 0);
    assert_no_stray_drops("gateway A", &ca);
    assert_no_stray_drops("gateway B", &cb);
    // The invariants are a consistent reading only while no worker frees
    // a call: once the lingering entries are gone.
    wait_for("both tables empty", Duration::from_secs(10), || {
        pair.active_calls() == (0, 0)
    });
    pair.a.relay().check_invariants().unwrap();
    pair.b.relay().check_invariants().unwrap();
    drop((a.stop(), b.stop()));
}
