//! Criterion micro-benchmarks of the relay's per-datagram work, with 500
//! calls up through one gateway core.
//!
//! Run: `cargo bench -p trunk-core --bench relay`. Each group has a
//! baseline measured in the same run: what a bare forwarder does in user
//! space for the same datagrams (copy them into the send buffer), so the
//! ratio is the cost of the IAX2 logic. BENCHMARKS.md records them.

use std::hint::black_box;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iax2_config::{Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts, TrunkSettings};
use trunk_core::relay::{Relay, RelayWorker};
use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, SeqNo, Timestamp16,
    TrunkFrameBuilder, TrunkLayout,
};

const CALLS: u16 = 500;

/// A send buffer that keeps nothing: what the gateway's batch does minus
/// the syscall.
struct Sink {
    buf: Vec<u8>,
    sent: u64,
}

impl Transmit for Sink {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn commit(&mut self, _to: SocketAddr, len: usize) {
        self.sent += 1;
        black_box(&self.buf[..len]);
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).expect("15-bit literal")
}

struct Setup {
    worker: RelayWorker,
    now: Instant,
    pbx: SocketAddr,
    gw: SocketAddr,
    /// Our call number of each call, in the order the PBX numbers them.
    ours: Vec<u16>,
    sink: Sink,
}

fn setup() -> Setup {
    let (pbx, gw) = (addr("10.0.0.1:4569"), addr("10.0.0.2:4569"));
    let name = |s: &str| PeerName::new(s).expect("literal name");
    let peer = |n: &str, host, kind, trunk| Peer {
        trunk,
        ..Peer::new(name(n), PeerHost::Static(host), kind)
    };
    let config = Config {
        listen: addr("10.0.0.9:4569"),
        workers: NonZeroUsize::MIN,
        udp_gso: true,
        peers: vec![
            peer("pbx", pbx, PeerKind::Pbx, None),
            peer("gw", gw, PeerKind::Gateway, Some(TrunkSettings::default())),
        ],
        routes: vec![Route {
            from: Some(name("pbx")),
            prefix: None,
            to: name("gw"),
        }],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    };
    let now = Instant::from_millis(10);
    let mut worker = RelayWorker::new(Arc::new(Relay::new(&config, now, 5)), 0);
    let mut sink = Sink {
        buf: vec![0; MAX_DATAGRAM],
        sent: 0,
    };
    let mut ours = Vec::new();
    for k in 0..CALLS {
        let ies = IeList::new().with(Ie::string(IeType::CalledNumber, "600").expect("short"));
        let mut new = FullFrameRepr::iax(
            cn(100 + k),
            cn(0),
            1,
            SeqNo(0),
            SeqNo(0),
            IaxSubclass::New,
            ies,
        )
        .to_vec();
        worker.handle_datagram(now, pbx, &mut new, &mut sink);
        let g = FullFrame::new_checked(&sink.buf[..12])
            .expect("the NEW went on")
            .source_call_number();
        let mut accept = FullFrameRepr::iax(
            cn(1000 + k),
            g,
            2,
            SeqNo(0),
            SeqNo(1),
            IaxSubclass::Accept,
            IeList::new(),
        )
        .to_vec();
        worker.handle_datagram(now, gw, &mut accept, &mut sink);
        ours.push(g.get());
    }
    Setup {
        worker,
        now,
        pbx,
        gw,
        ours,
        sink,
    }
}

fn mini(call: u16) -> Vec<u8> {
    let mut m = vec![0x55u8; 164];
    m[0..2].copy_from_slice(&call.to_be_bytes());
    m[2..4].copy_from_slice(&20u16.to_be_bytes());
    m
}

fn bench_relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay");

    // A tick's worth of voice from the PBX: 500 mini frames become trunk
    // entries, then the tick sends them (72 frames of 7).
    let mut s = setup();
    let minis: Vec<Vec<u8>> = (0..CALLS).map(|k| mini(100 + k)).collect();
    let mut scratch = minis.clone();
    g.throughput(Throughput::Elements(u64::from(CALLS)));
    g.bench_function("mini_to_trunk_entries_and_tick/500_calls", |b| {
        b.iter(|| {
            for (m, src) in scratch.iter_mut().zip(&minis) {
                m.copy_from_slice(src);
                s.worker.handle_datagram(s.now, s.pbx, m, &mut s.sink);
            }
            s.now += Duration::from_millis(20);
            s.worker.handle_timeout(s.now, &mut s.sink);
        });
    });
    let mut sink = Sink {
        buf: vec![0; MAX_DATAGRAM],
        sent: 0,
    };
    g.bench_function("baseline_copy_500_minis", |b| {
        b.iter(|| {
            for (m, src) in scratch.iter_mut().zip(&minis) {
                m.copy_from_slice(src);
                sink.send(s.pbx, black_box(m));
            }
        });
    });

    // A trunk frame from the far gateway with 7 entries becomes 7 minis.
    let mut frame = vec![0u8; 1240];
    let len = {
        let mut b =
            TrunkFrameBuilder::new(&mut frame, 1240, TrunkLayout::Timestamps, 40).expect("room");
        for k in 0..7 {
            b.push(cn(1000 + k), Timestamp16(40), &[7; 160])
                .expect("fits");
        }
        b.finish()
    };
    let template = frame[..len].to_vec();
    let mut rx = template.clone();
    g.throughput(Throughput::Elements(7));
    g.bench_function("trunk_frame_to_minis/7_entries", |b| {
        b.iter(|| {
            rx.copy_from_slice(&template);
            s.worker.handle_datagram(s.now, s.gw, &mut rx, &mut s.sink);
        });
    });
    g.bench_function("baseline_copy_7_minis", |b| {
        b.iter(|| {
            rx.copy_from_slice(&template);
            for k in 0..7 {
                let at = 8 + k * 166 + 2;
                sink.send(s.pbx, black_box(&rx[at..at + 164]));
            }
        });
    });

    // A full frame on an up call (an ACK from the PBX), renumbered and sent.
    let ack = FullFrameRepr::iax(
        cn(100),
        cn(s.ours[0]),
        77,
        SeqNo(1),
        SeqNo(1),
        IaxSubclass::Ack,
        IeList::new(),
    )
    .to_vec();
    let mut rx = ack.clone();
    g.throughput(Throughput::Elements(1));
    g.bench_function("full_frame_forward", |b| {
        b.iter(|| {
            rx.copy_from_slice(&ack);
            s.worker.handle_datagram(s.now, s.pbx, &mut rx, &mut s.sink);
        });
    });
    g.bench_function("baseline_copy_full_frame", |b| {
        b.iter(|| {
            rx.copy_from_slice(&ack);
            sink.send(s.gw, black_box(&rx));
        });
    });
    g.finish();
    assert!(
        s.worker.counters().snapshot().total_drops() == 0,
        "the benchmark traffic was dropped"
    );
    black_box((s.sink.sent, sink.sent));
}

criterion_group!(benches, bench_relay);
criterion_main!(benches);
