//! Helpers for the in-process tests: fake PBXs, a gateway pair on
//! loopback, and hand-built IAX2 frames.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use iax2_gateway::GatewayHandle;
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, MiniFrameRepr, SeqNo,
    Timestamp16,
};

/// A fake PBX: a blocking loopback socket with a read timeout.
pub fn pbx() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A loopback port free when asked (the gateway binds it right after).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway on `127.0.0.1:listen` with two workers, serving `pbx` and
/// trunking to the gateway on `127.0.0.1:far_gateway`.
pub fn site(listen: u16, pbx: SocketAddr, far_gateway: u16) -> GatewayHandle {
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

/// Two PBXs and the two gateways between them.
pub struct Pair {
    pub pbx_a: UdpSocket,
    pub pbx_b: UdpSocket,
    pub gw_a: GatewayHandle,
    pub gw_b: GatewayHandle,
}

impl Pair {
    pub fn start() -> Self {
        let (pbx_a, pbx_b) = (pbx(), pbx());
        let (port_a, port_b) = (free_port(), free_port());
        let gw_a = site(port_a, pbx_a.local_addr().unwrap(), port_b);
        let gw_b = site(port_b, pbx_b.local_addr().unwrap(), port_a);
        Self {
            pbx_a,
            pbx_b,
            gw_a,
            gw_b,
        }
    }

    /// NEW from PBX A (call number 100), ACCEPT from PBX B (200). Returns
    /// the call number PBX B sees for the call.
    pub fn set_up_call(&self) -> u16 {
        let (addr_a, addr_b) = (self.gw_a.local_addr(), self.gw_b.local_addr());
        let ies = IeList::new()
            .with(Ie::version())
            .with(Ie::string(IeType::CalledNumber, "600").unwrap());
        let new = iax(100, 0, 3, 0, 0, IaxSubclass::New, ies);
        self.pbx_a.send_to(&new, addr_a).unwrap();
        let (from, at_b) = recv(&self.pbx_b);
        assert_eq!(from, addr_b);
        let f = FullFrame::new_checked(&at_b[..]).unwrap();
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
        assert_eq!(at_b[4..], new[4..], "only the call numbers change");
        let b_sees = f.source_call_number().get();

        let accept = iax(200, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new());
        self.pbx_b.send_to(&accept, addr_b).unwrap();
        let (from, at_a) = recv(&self.pbx_a);
        assert_eq!(from, addr_a);
        let f = FullFrame::new_checked(&at_a[..]).unwrap();
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::Accept));
        assert_eq!(f.dest_call_number(), cn(100));
        b_sees
    }
}

pub fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

pub fn iax(src: u16, dst: u16, ts: u32, o: u8, i: u8, sub: IaxSubclass, ies: IeList) -> Vec<u8> {
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

/// Voice frame `k` of call 100: 160 bytes, 20 ms apart.
pub fn voice(k: u16) -> Vec<u8> {
    let mini = MiniFrameRepr {
        source_call_number: cn(100),
        timestamp: Timestamp16(1000 + 20 * k),
        payload: vec![k as u8; 160],
    };
    let mut buf = vec![0; mini.buffer_len()];
    mini.emit(&mut buf).unwrap();
    buf
}

pub fn recv(sock: &UdpSocket) -> (SocketAddr, Vec<u8>) {
    let mut buf = [0; 4096];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    (from, buf[..n].to_vec())
}

/// A process's output as text.
pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Waits for `child` up to `limit` and returns its output and how long it
/// took; kills it and fails, with its stderr, if it overstays.
pub fn wait_within(mut child: Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
