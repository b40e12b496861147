//! Two gateways in one process on loopback, with two fake PBXs: a call is
//! set up end to end and its voice crosses the WAN leg in trunk frames.
//! This drives the real relay through the real sockets, batches and
//! worker threads.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use iax2_gateway::GatewayHandle;
use trunk_core::relay::DropReason;
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, MiniFrame,
    MiniFrameRepr, SeqNo, Timestamp16,
};

/// A fake PBX: a blocking socket with a read timeout.
fn pbx() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A loopback port free when asked (the gateway binds it right after).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn site(listen: u16, pbx: SocketAddr, far_gateway: u16) -> GatewayHandle {
    let yaml = format!(
        "listen: 127.0.0.1:{listen}
workers: 2
peers:
  pbx:
    host: {pbx}
    kind: pbx
  gw:
    host: 127.0.0.1:{far_gateway}
    kind: gateway
    trunk: true
routes:
  - from: pbx
    to: gw
  - from: gw
    to: pbx
"
    );
    let config = iax2_config::from_yaml_str(&yaml, "pair.yaml").unwrap();
    iax2_gateway::start(&config).unwrap()
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

fn iax(src: u16, dst: u16, ts: u32, o: u8, i: u8, sub: IaxSubclass, ies: IeList) -> Vec<u8> {
    FullFrameRepr::iax(
        cn(src),
        CallNumber::new(dst).unwrap(),
        ts,
        SeqNo(o),
        SeqNo(i),
        sub,
        ies,
    )
    .to_vec()
}

fn recv(sock: &UdpSocket) -> (SocketAddr, Vec<u8>) {
    let mut buf = [0; 4096];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    (from, buf[..n].to_vec())
}

#[test]
fn a_call_crosses_a_gateway_pair_on_loopback() {
    let (pbx_a, pbx_b) = (pbx(), pbx());
    let (port_a, port_b) = (free_port(), free_port());
    let gw_a = site(port_a, pbx_a.local_addr().unwrap(), port_b);
    let gw_b = site(port_b, pbx_b.local_addr().unwrap(), port_a);
    let (addr_a, addr_b) = (gw_a.local_addr(), gw_b.local_addr());

    // NEW from PBX A reaches PBX B from gateway B, call numbers rewritten.
    let ies = IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, "600").unwrap());
    let new = iax(100, 0, 3, 0, 0, IaxSubclass::New, ies);
    pbx_a.send_to(&new, addr_a).unwrap();
    let (from, at_b) = recv(&pbx_b);
    assert_eq!(from, addr_b);
    let f = FullFrame::new_checked(&at_b[..]).unwrap();
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
    let b_sees = f.source_call_number().get();
    assert_eq!(at_b[4..], new[4..], "only the call numbers change");

    // ACCEPT back to PBX A.
    let accept = iax(200, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new());
    pbx_b.send_to(&accept, addr_b).unwrap();
    let (from, at_a) = recv(&pbx_a);
    assert_eq!(from, addr_a);
    let f = FullFrame::new_checked(&at_a[..]).unwrap();
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::Accept));
    assert_eq!(f.dest_call_number(), cn(100));

    // Voice: 50 mini frames A -> B, carried between the gateways in trunk
    // frames and split back into minis for PBX B.
    for k in 0..50u16 {
        let mini = MiniFrameRepr {
            source_call_number: cn(100),
            timestamp: Timestamp16(1000 + 20 * k),
            payload: vec![k as u8; 160],
        };
        let mut buf = vec![0; mini.buffer_len()];
        mini.emit(&mut buf).unwrap();
        pbx_a.send_to(&buf, addr_a).unwrap();
    }
    let mut stamps = Vec::new();
    for _ in 0..50 {
        let (from, bytes) = recv(&pbx_b);
        assert_eq!(from, addr_b);
        let m = MiniFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(m.source_call_number(), cn(b_sees));
        assert_eq!(m.payload().len(), 160);
        stamps.push(m.timestamp().0);
    }
    // Two workers may hand entries to the trunk in either order; every
    // frame arrives once.
    stamps.sort_unstable();
    assert_eq!(stamps, (0..50).map(|k| 1000 + 20 * k).collect::<Vec<_>>());
    assert_eq!(gw_a.relay().active_calls(), 1);

    let a = gw_a.stop();
    let b = gw_b.stop();
    assert_eq!(a.calls_created, 1);
    assert_eq!(b.calls_created, 1);
    assert!(a.tx_trunk_frames >= 1 && a.tx_trunk_entries == 50, "{a:?}");
    assert_eq!(b.rx_trunk_entries, 50, "{b:?}");
    assert!(a.tx_trunk_frames < 50, "voice was batched: {a:?}");
    assert_eq!(a.total_drops() + b.total_drops(), 0, "{a:?} {b:?}");
    assert_eq!(a.drops(DropReason::QueueFull), 0);
}
