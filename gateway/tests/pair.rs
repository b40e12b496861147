//! Two gateways in one process on loopback, with two fake PBXs: a call is
//! set up end to end and its voice crosses the WAN leg in trunk frames.
//! This drives the real relay through the real sockets, batches and
//! worker threads.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use trunk_core::relay::DropReason;
use trunk_core::wire::MiniFrame;

use common::{cn, recv, voice, Pair};

#[test]
fn a_call_crosses_a_gateway_pair_on_loopback() {
    let pair = Pair::start();
    let b_sees = pair.set_up_call();
    let (addr_a, addr_b) = (pair.gw_a.local_addr(), pair.gw_b.local_addr());

    // Voice: 50 mini frames A -> B, carried between the gateways in trunk
    // frames and split back into minis for PBX B.
    for k in 0..50 {
        pair.pbx_a.send_to(&voice(k), addr_a).unwrap();
    }
    let mut stamps = Vec::new();
    for _ in 0..50 {
        let (from, bytes) = recv(&pair.pbx_b);
        assert_eq!(from, addr_b);
        let m = MiniFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(m.source_call_number(), cn(b_sees));
        assert_eq!(m.payload().len(), 160);
        stamps.push(m.timestamp().0);
    }
    // Every frame arrives once (sorted: the order is the kernel's and the
    // trunk's business, not this test's).
    stamps.sort_unstable();
    assert_eq!(stamps, (0..50).map(|k| 1000 + 20 * k).collect::<Vec<_>>());
    assert_eq!(pair.gw_a.relay().active_calls(), 1);

    let a = pair.gw_a.stop();
    let b = pair.gw_b.stop();
    assert_eq!((a.calls_created, b.calls_created), (1, 1));
    assert_eq!(a.tx_trunk_entries, 50, "{a:?}");
    assert!(
        a.tx_trunk_frames >= 1 && a.tx_trunk_frames < 50,
        "voice was batched: {a:?}"
    );
    assert_eq!(b.rx_trunk_entries, 50, "{b:?}");
    assert_eq!(a.total_drops() + b.total_drops(), 0, "{a:?} {b:?}");
    assert_eq!(a.drops(DropReason::QueueFull), 0);
}
