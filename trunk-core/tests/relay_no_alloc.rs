//! The relay's media path allocates nothing once warm: a mini frame into
//! a trunk entry, the tick that sends the trunk frame, and a received trunk
//! frame split back into mini frames.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is the test failing

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use iax2_config::{Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts, TrunkSettings};
use trunk_core::relay::{Relay, RelayWorker};
use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, SeqNo, Timestamp16,
    TrunkFrameBuilder, TrunkLayout,
};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;

/// A transmit sink over one preallocated buffer that only counts.
struct CountingSink {
    buf: Vec<u8>,
    sent: usize,
    last_to: Option<SocketAddr>,
}

impl Transmit for CountingSink {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn commit(&mut self, to: SocketAddr, _len: usize) {
        self.sent += 1;
        self.last_to = Some(to);
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

#[test]
fn relay_media_path_does_not_allocate() {
    let (pbx, gw) = (addr("127.0.0.1:5000"), addr("127.0.0.2:4569"));
    let peer = |name: &str, host, kind, trunk| Peer {
        trunk,
        ..Peer::new(PeerName::new(name).unwrap(), PeerHost::Static(host), kind)
    };
    let config = Config {
        listen: addr("127.0.0.1:4569"),
        workers: NonZeroUsize::new(1).unwrap(),
        udp_gso: true,
        peers: vec![
            peer("pbx", pbx, PeerKind::Pbx, None),
            peer("gw", gw, PeerKind::Gateway, Some(TrunkSettings::default())),
        ],
        routes: vec![Route {
            from: Some(PeerName::new("pbx").unwrap()),
            prefix: None,
            to: PeerName::new("gw").unwrap(),
        }],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    };
    let mut now = Instant::from_millis(10);
    let mut worker = RelayWorker::new(Arc::new(Relay::new(&config, now, 3)), 0);
    let mut sink = CountingSink {
        buf: vec![0; MAX_DATAGRAM],
        sent: 0,
        last_to: None,
    };

    // Set up 50 calls: NEW from the PBX, ACCEPT from the far gateway.
    let mut ours = Vec::new();
    for k in 0..50u16 {
        let ies = IeList::new().with(Ie::string(IeType::CalledNumber, "600").unwrap());
        let new = FullFrameRepr::iax(
            cn(100 + k),
            CallNumber::UNKNOWN,
            1,
            SeqNo(0),
            SeqNo(0),
            IaxSubclass::New,
            ies,
        );
        let mut bytes = new.to_vec();
        worker.handle_datagram(now, pbx, &mut bytes, &mut sink);
        let g = FullFrame::new_checked(&sink.buf[..12])
            .unwrap()
            .source_call_number();
        let accept = FullFrameRepr::iax(
            cn(1000 + k),
            g,
            2,
            SeqNo(0),
            SeqNo(1),
            IaxSubclass::Accept,
            IeList::new(),
        );
        let mut bytes = accept.to_vec();
        worker.handle_datagram(now, gw, &mut bytes, &mut sink);
        ours.push(g);
    }

    let mini = |k: u16, ts: u16| {
        let mut m = vec![0u8; 164];
        m[0..2].copy_from_slice(&(100 + k).to_be_bytes());
        m[2..4].copy_from_slice(&ts.to_be_bytes());
        m
    };
    let mut minis: Vec<Vec<u8>> = (0..50).map(|k| mini(k, 20)).collect();
    let mut trunk = vec![0u8; 1240];
    let trunk_len = {
        let mut b = TrunkFrameBuilder::new(&mut trunk, 1240, TrunkLayout::Timestamps, 40).unwrap();
        for k in 0..7u16 {
            b.push(cn(1000 + k), Timestamp16(40), &[7; 160]).unwrap();
        }
        b.finish()
    };
    let mut received = trunk.clone();

    let mut round = |now: &mut Instant,
                     worker: &mut RelayWorker,
                     sink: &mut CountingSink,
                     minis: &mut Vec<Vec<u8>>| {
        for m in minis.iter_mut() {
            worker.handle_datagram(*now, pbx, m, sink);
        }
        *now += Duration::from_millis(20);
        worker.handle_timeout(*now, sink);
        received[..trunk_len].copy_from_slice(&trunk[..trunk_len]);
        worker.handle_datagram(*now, gw, &mut received[..trunk_len], sink);
    };
    // Warm up: the trunk emitter grows its frame buffers once.
    round(&mut now, &mut worker, &mut sink, &mut minis);
    let before = worker.counters().snapshot();
    let n = allocations_during(|| {
        for _ in 0..10 {
            round(&mut now, &mut worker, &mut sink, &mut minis);
        }
    });
    let after = worker.counters().snapshot();
    assert_eq!(n, 0, "the relay's media path allocated {n} times");
    // And the work was really done: 500 entries out (toward a gateway the
    // entries of each call-number group, call modulo 4, fill their own
    // frames of 7), 70 minis back to the PBX.
    let frames_per_round: u64 = (0..4u16)
        .map(|g| {
            let n = ours.iter().filter(|c| c.get() % 4 == g).count() as u64;
            n.div_ceil(7)
        })
        .sum();
    assert_eq!(after.tx_trunk_entries - before.tx_trunk_entries, 500);
    assert_eq!(
        after.tx_trunk_frames - before.tx_trunk_frames,
        10 * frames_per_round
    );
    assert_eq!(after.tx_mini - before.tx_mini, 70);
    assert_eq!(after.total_drops(), 0);
    assert_eq!(ours.len(), 50);
}
