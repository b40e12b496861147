//! A bare UDP forwarder pair: the bench's baseline in place of the
//! gateway pair.
//!
//! ```text
//!  PBX A <-> A.lan [fwd A] A.wan <-> B.wan [fwd B] B.lan <-> PBX B
//! ```
//!
//! Everything A.lan receives leaves A.wan for B.wan; everything B.wan
//! receives leaves B.lan for PBX B; the other way likewise (B.lan -> B.wan
//! -> A.wan -> A.lan -> PBX A). There is no IAX2 logic at all: the PBXs
//! see each other at A.lan and B.lan and speak IAX2 end to end, so the
//! difference between a bench run through the gateways and one through
//! this pair is the cost of the relay itself, not of the kernel's UDP path.
//!
//! The I/O is the gateway's own ([`iax2_gateway::batch`]): `recvmmsg` and
//! `sendmmsg` batches over mio, one thread per receiving socket, sending
//! out of the partner socket through its own descriptor (a `dup`). As in
//! the gateway, a send queue whose socket stays full drops and counts what
//! does not fit, and nothing is allocated per datagram. Threads are named
//! `fwd-a-lan`, `fwd-a-wan`, `fwd-b-wan` and `fwd-b-lan`, so their CPU can
//! be found by the prefix [`crate::cpu::FORWARDER_PREFIX`].
//!
//! ```
//! use iax2_loadtest::forwarder::{ForwarderConfig, ForwarderPair};
//!
//! let pbx_a = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let pbx_b = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let pair = ForwarderPair::start(ForwarderConfig {
//!     bind_ip: [127, 0, 0, 1].into(),
//!     pbx_a: pbx_a.local_addr()?,
//!     pbx_b: pbx_b.local_addr()?,
//!     segmentation: false,
//! })?;
//! pbx_a.send_to(b"hello", pair.a_lan_addr())?;
//! let mut buf = [0; 64];
//! let (n, from) = pbx_b.recv_from(&mut buf)?;
//! assert_eq!((&buf[..n], from), (&b"hello"[..], pair.b_lan_addr()));
//! let stats = pair.stop();
//! assert_eq!(stats.wan().a_to_b_bytes, 5);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use iax2_gateway::batch::{Flush, IoCounters, RecvBatch, SendBatch, RECV_SLOTS, SEND_SLOTS};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use trunk_core::relay::{Counters, DropReason};
use trunk_core::transmit::Transmit;

/// SO_RCVBUF and SO_SNDBUF asked for on each socket (the kernel caps them
/// at `net.core.rmem_max` / `wmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Longest sleep before a thread looks at the stop flag again.
const POLL_TIMEOUT: Duration = Duration::from_millis(5);

/// Receive batches per turn, as in the gateway's worker.
const RECV_BUDGET: usize = 8;

const RX: Token = Token(0);
const TX: Token = Token(1);

/// Where the pair binds and where it delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// Address all four sockets bind to (each on a free port).
    pub bind_ip: IpAddr,
    /// PBX A: what A.wan receives goes out of A.lan to here.
    pub pbx_a: SocketAddr,
    /// PBX B: what B.wan receives goes out of B.lan to here.
    pub pbx_b: SocketAddr,
    /// Send runs of equal datagrams as one segmented send (UDP GSO), as
    /// the gateway does. Off for the baseline: a bare `sendmmsg` relay.
    pub segmentation: bool,
}

/// One forwarding hop, named by the socket it receives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// PBX A -> A.lan, out of A.wan to B.wan.
    ALan,
    /// B.wan -> A.wan, out of A.lan to PBX A.
    AWan,
    /// A.wan -> B.wan, out of B.lan to PBX B.
    BWan,
    /// PBX B -> B.lan, out of B.wan to A.wan.
    BLan,
}

impl Hop {
    /// Every hop, in the order of [`ForwarderStats`]' fields.
    pub const ALL: [Self; 4] = [Self::ALan, Self::AWan, Self::BWan, Self::BLan];

    /// The name of the hop's thread.
    pub fn thread_name(self) -> &'static str {
        match self {
            Self::ALan => "fwd-a-lan",
            Self::AWan => "fwd-a-wan",
            Self::BWan => "fwd-b-wan",
            Self::BLan => "fwd-b-lan",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ALan => 0,
            Self::AWan => 1,
            Self::BWan => 2,
            Self::BLan => 3,
        }
    }
}

/// Counters of one hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HopStats {
    /// Datagrams received on the hop's socket.
    pub received: u64,
    /// Their bytes (UDP payload).
    pub received_bytes: u64,
    /// Datagrams the kernel accepted on the partner socket.
    pub forwarded: u64,
    /// Bytes queued for sending on the partner socket; this includes the
    /// rare datagrams the kernel then refused ([`send_errors`](Self::send_errors)).
    pub forwarded_bytes: u64,
    /// Datagrams dropped because the send queue was full (the partner
    /// socket's buffer stayed full), or still queued when the pair stopped.
    pub dropped_queue_full: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Datagrams dropped for being longer than the receive buffers.
    pub truncated: u64,
    /// Receive syscalls that failed (other than "nothing to read").
    pub recv_errors: u64,
}

impl HopStats {
    /// Datagrams received but not forwarded.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.send_errors + self.truncated
    }
}

/// Counters of the whole pair, per hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderStats {
    /// PBX A -> A.lan -> A.wan.
    pub a_lan: HopStats,
    /// B.wan -> A.wan -> A.lan -> PBX A.
    pub a_wan: HopStats,
    /// A.wan -> B.wan -> B.lan -> PBX B.
    pub b_wan: HopStats,
    /// PBX B -> B.lan -> B.wan.
    pub b_lan: HopStats,
}

/// The traffic between A.wan and B.wan, as the gateways' WAN is reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WanStats {
    /// Datagrams sent from A.wan to B.wan.
    pub a_to_b_datagrams: u64,
    /// Their bytes (UDP payload).
    pub a_to_b_bytes: u64,
    /// Datagrams sent from B.wan to A.wan.
    pub b_to_a_datagrams: u64,
    /// Their bytes (UDP payload).
    pub b_to_a_bytes: u64,
}

/// The traffic of one direction, end to end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Datagrams the first hop received from the sending PBX.
    pub from_pbx: u64,
    /// Datagrams the last hop delivered to the receiving PBX.
    pub to_pbx: u64,
    /// Datagrams either hop dropped.
    pub dropped: u64,
}

impl ForwarderStats {
    /// One hop's counters.
    pub fn hop(&self, hop: Hop) -> &HopStats {
        match hop {
            Hop::ALan => &self.a_lan,
            Hop::AWan => &self.a_wan,
            Hop::BWan => &self.b_wan,
            Hop::BLan => &self.b_lan,
        }
    }

    /// The WAN traffic between A.wan and B.wan.
    pub fn wan(&self) -> WanStats {
        WanStats {
            a_to_b_datagrams: self.a_lan.forwarded,
            a_to_b_bytes: self.a_lan.forwarded_bytes,
            b_to_a_datagrams: self.b_lan.forwarded,
            b_to_a_bytes: self.b_lan.forwarded_bytes,
        }
    }

    /// PBX A to PBX B.
    pub fn a_to_b(&self) -> PathStats {
        PathStats {
            from_pbx: self.a_lan.received,
            to_pbx: self.b_wan.forwarded,
            dropped: self.a_lan.dropped() + self.b_wan.dropped(),
        }
    }

    /// PBX B to PBX A.
    pub fn b_to_a(&self) -> PathStats {
        PathStats {
            from_pbx: self.b_lan.received,
            to_pbx: self.a_wan.forwarded,
            dropped: self.b_lan.dropped() + self.a_wan.dropped(),
        }
    }

    /// Datagrams dropped by any hop.
    pub fn dropped(&self) -> u64 {
        Hop::ALL.iter().map(|&h| self.hop(h).dropped()).sum()
    }
}

/// The counters one hop's thread writes and [`ForwarderPair::stats`] reads.
#[derive(Debug, Default)]
struct Shared {
    received: AtomicU64,
    received_bytes: AtomicU64,
    queued_bytes: AtomicU64,
    /// Queue-full drops counted here (the batch counts its own in `drops`).
    queue_full: AtomicU64,
    truncated: AtomicU64,
    recv_errors: AtomicU64,
    abandoned: AtomicU64,
    io: Arc<IoCounters>,
    drops: Arc<Counters>,
}

impl Shared {
    fn snapshot(&self) -> HopStats {
        let io = self.io.snapshot();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HopStats {
            received: get(&self.received),
            received_bytes: get(&self.received_bytes),
            forwarded: io.sent_datagrams,
            forwarded_bytes: get(&self.queued_bytes),
            dropped_queue_full: get(&self.queue_full)
                + get(&self.abandoned)
                + self.drops.snapshot().drops(DropReason::QueueFull),
            send_errors: io.send_errors,
            truncated: get(&self.truncated),
            recv_errors: get(&self.recv_errors) + io.recv_errors,
        }
    }
}

/// A running forwarder pair: four sockets, four threads. Dropping it stops
/// the threads.
#[derive(Debug)]
pub struct ForwarderPair {
    addrs: [SocketAddr; 4],
    buffers: (usize, usize),
    shared: [Arc<Shared>; 4],
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ForwarderPair {
    /// Binds the four sockets on free ports of `cfg.bind_ip` and starts
    /// forwarding.
    pub fn start(cfg: ForwarderConfig) -> io::Result<Self> {
        let ip = cfg.bind_ip;
        let sockets = [bind(ip)?, bind(ip)?, bind(ip)?, bind(ip)?];
        let mut addrs = [SocketAddr::new(ip, 0); 4];
        let mut buffers = (usize::MAX, usize::MAX);
        for (addr, s) in addrs.iter_mut().zip(&sockets) {
            *addr = s.local_addr()?;
            let s = socket2::SockRef::from(s);
            buffers.0 = buffers.0.min(s.recv_buffer_size()?);
            buffers.1 = buffers.1.min(s.send_buffer_size()?);
        }
        let mut pair = Self {
            addrs,
            buffers,
            shared: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::with_capacity(4),
        };
        let [_, a_wan_addr, b_wan_addr, _] = addrs;
        // (receiving hop, partner socket it sends out of, destination)
        let routes = [
            (Hop::ALan, Hop::AWan, b_wan_addr),
            (Hop::AWan, Hop::ALan, cfg.pbx_a),
            (Hop::BWan, Hop::BLan, cfg.pbx_b),
            (Hop::BLan, Hop::BWan, a_wan_addr),
        ];
        let segmentation = cfg.segmentation;
        for (hop, partner, to) in routes {
            let mut rx = clone(&sockets, hop)?;
            let tx = clone(&sockets, partner)?;
            let poll = Poll::new()?;
            poll.registry().register(&mut rx, RX, Interest::READABLE)?;
            let local = tx.local_addr()?;
            let shared = pair.shared[hop.index()].clone();
            let stop = pair.stop.clone();
            // The batches are built on the thread: they hold raw pointers
            // for the syscalls and are not `Send`. On error `pair` is
            // dropped, which stops the threads already started.
            let thread = std::thread::Builder::new()
                .name(hop.thread_name().into())
                .spawn(move || {
                    let mut send =
                        SendBatch::new(SEND_SLOTS, local, shared.drops.clone(), shared.io.clone());
                    send.set_segmentation(segmentation);
                    // A plain UDP relay: strict order, whatever the bytes.
                    send.set_steering_classes(false);
                    Forward {
                        poll,
                        rx,
                        tx,
                        to,
                        recv: RecvBatch::new(RECV_SLOTS),
                        send,
                        shared,
                        stop,
                        write_interest: false,
                    }
                    .run();
                })?;
            pair.threads.push(thread);
        }
        Ok(pair)
    }

    /// A.lan: where PBX A sends, and where PBX A sees PBX B.
    pub fn a_lan_addr(&self) -> SocketAddr {
        self.addrs[Hop::ALan.index()]
    }

    /// A.wan: A's WAN socket.
    pub fn a_wan_addr(&self) -> SocketAddr {
        self.addrs[Hop::AWan.index()]
    }

    /// B.wan: B's WAN socket.
    pub fn b_wan_addr(&self) -> SocketAddr {
        self.addrs[Hop::BWan.index()]
    }

    /// B.lan: where PBX B sends, and where PBX B sees PBX A.
    pub fn b_lan_addr(&self) -> SocketAddr {
        self.addrs[Hop::BLan.index()]
    }

    /// The smallest receive and send buffer the kernel granted over the
    /// four sockets (Linux reports twice the usable size).
    pub fn socket_buffers(&self) -> (usize, usize) {
        self.buffers
    }

    /// The counters so far.
    pub fn stats(&self) -> ForwarderStats {
        let [a_lan, a_wan, b_wan, b_lan] = &self.shared;
        ForwarderStats {
            a_lan: a_lan.snapshot(),
            a_wan: a_wan.snapshot(),
            b_wan: b_wan.snapshot(),
            b_lan: b_lan.snapshot(),
        }
    }

    /// Datagrams the kernel dropped on the four sockets because a receive
    /// buffer was full (see [`crate::tap::kernel_udp_drops`]); `None` when
    /// they cannot be read.
    pub fn kernel_drops(&self) -> Option<u64> {
        self.addrs
            .iter()
            .map(|&a| crate::tap::kernel_udp_drops(a))
            .sum()
    }

    /// Stops the threads (within a few milliseconds) and returns the final
    /// counters.
    pub fn stop(mut self) -> ForwarderStats {
        self.stop_threads();
        self.stats()
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ForwarderPair {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn bind(ip: IpAddr) -> io::Result<std::net::UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: Linux clamps to the system maximum; a smaller buffer
    // still works, it only drops sooner.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A second descriptor for a hop's socket, so one thread can receive on
/// it while another sends out of it, each with its own poll registration.
fn clone(sockets: &[std::net::UdpSocket; 4], hop: Hop) -> io::Result<UdpSocket> {
    let s = sockets
        .get(hop.index())
        .ok_or_else(|| io::Error::other("no such socket"))?;
    Ok(UdpSocket::from_std(s.try_clone()?))
}

/// One hop's thread: receives on `rx`, sends everything to `to` out of
/// `tx`.
struct Forward {
    poll: Poll,
    rx: UdpSocket,
    tx: UdpSocket,
    to: SocketAddr,
    recv: RecvBatch,
    send: SendBatch,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// `tx` is registered for `WRITABLE` (only while sends are blocked, so
    /// a socket with free buffer space does not wake the thread).
    write_interest: bool,
}

impl Forward {
    fn run(mut self) {
        let mut events = Events::with_capacity(8);
        // Data may have come before the socket was registered.
        let mut readable = true;
        while !self.stop.load(Ordering::Acquire) {
            let timeout = if readable {
                Duration::ZERO
            } else {
                POLL_TIMEOUT
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // Do not spin on a broken poll.
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let mut writable = events.is_empty();
            for event in events.iter() {
                match event.token() {
                    RX => readable |= event.is_readable() || event.is_error(),
                    _ => writable = true,
                }
            }
            if writable && self.send.is_blocked() {
                let _ = self.send.on_writable(&self.tx);
            }
            if readable {
                readable = self.receive();
            }
            self.update_interest();
        }
        let r = if self.send.is_blocked() {
            self.send.on_writable(&self.tx)
        } else {
            self.send.flush(&self.tx)
        };
        if r == Flush::Blocked {
            let left = self.send.pending() as u64;
            self.shared.abandoned.fetch_add(left, Ordering::Relaxed);
        }
    }

    /// Receives up to the budget and queues every datagram for `tx`.
    /// Returns whether the socket may still hold datagrams.
    fn receive(&mut self) -> bool {
        for _ in 0..RECV_BUDGET {
            let n = match self.recv.recv(&self.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    // A pending socket error is reported once: come back.
                    self.shared.recv_errors.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            };
            let (mut bytes, mut queued_bytes, mut full, mut truncated) = (0, 0, 0, 0);
            for i in 0..n {
                let Some(d) = self.recv.get_mut(i) else {
                    break;
                };
                bytes += d.data.len() as u64;
                if d.truncated {
                    truncated += 1;
                    continue;
                }
                if self.send.pending() >= self.send.capacity() {
                    let _ = self.send.flush(&self.tx);
                    if self.send.pending() >= self.send.capacity() {
                        full += 1;
                        continue;
                    }
                }
                queued_bytes += d.data.len() as u64;
                self.send.sender(&self.tx).send(self.to, d.data);
            }
            let _ = self.send.flush(&self.tx);
            let s = &self.shared;
            s.received.fetch_add(n as u64, Ordering::Relaxed);
            s.received_bytes.fetch_add(bytes, Ordering::Relaxed);
            s.queued_bytes.fetch_add(queued_bytes, Ordering::Relaxed);
            s.queue_full.fetch_add(full, Ordering::Relaxed);
            s.truncated.fetch_add(truncated, Ordering::Relaxed);
            if n < self.recv.capacity() {
                // A short batch emptied the queue; later data raises a new
                // edge.
                return false;
            }
        }
        true
    }

    fn update_interest(&mut self) {
        let want = self.send.is_blocked();
        if want == self.write_interest {
            return;
        }
        let registry = self.poll.registry();
        let r = if want {
            registry.register(&mut self.tx, TX, Interest::WRITABLE)
        } else {
            registry.deregister(&mut self.tx)
        };
        if r.is_ok() {
            self.write_interest = want;
        }
    }
}

/// The pair between two plain UDP sockets standing in for the PBXs.
#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::UdpSocket;
    use std::time::Instant;

    use super::*;
    use crate::cpu;

    fn pbx() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        s.set_nonblocking(true).expect("non-blocking");
        s
    }

    /// Datagram `i` of a stream: its index, then a pattern; lengths vary from
    /// 4 to 1400 bytes.
    fn datagram(tag: u8, i: u32) -> Vec<u8> {
        let len = 4 + (i as usize * 53) % 1397;
        let mut d = i.to_be_bytes().to_vec();
        d.extend((4..len).map(|k| (k as u8).wrapping_mul(tag).wrapping_add(i as u8)));
        d
    }

    /// Datagrams a PBX received: (source, bytes).
    type Received = Vec<(SocketAddr, Vec<u8>)>;

    /// Everything `sock` holds now: (source, bytes).
    fn drain(sock: &UdpSocket, into: &mut Received) {
        let mut buf = [0u8; 2048];
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => into.push((from, buf[..n].to_vec())),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// Sends `count` datagrams each way at once, never more than `window`
    /// unanswered per direction (64 of the largest fit in Linux's default
    /// receive buffer, so none is lost on a machine with small buffer limits),
    /// and returns what each PBX received.
    fn exchange(
        pair: &ForwarderPair,
        a: &UdpSocket,
        b: &UdpSocket,
        count: u32,
        window: usize,
    ) -> (Received, Received) {
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        let (mut sent_ab, mut sent_ba) = (0u32, 0u32);
        let deadline = Instant::now() + Duration::from_secs(30);
        while at_b.len() < count as usize || at_a.len() < count as usize {
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {count} at B, {} at A; {:?}",
                at_b.len(),
                at_a.len(),
                pair.stats()
            );
            while sent_ab < count && (sent_ab as usize) < at_b.len() + window {
                a.send_to(&datagram(1, sent_ab), pair.a_lan_addr())
                    .expect("send to A.lan");
                sent_ab += 1;
            }
            while sent_ba < count && (sent_ba as usize) < at_a.len() + window {
                b.send_to(&datagram(2, sent_ba), pair.b_lan_addr())
                    .expect("send to B.lan");
                sent_ba += 1;
            }
            let before = at_a.len() + at_b.len();
            drain(b, &mut at_b);
            drain(a, &mut at_a);
            if at_a.len() + at_b.len() == before {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (at_a, at_b)
    }

    fn check_stream(got: &[(SocketAddr, Vec<u8>)], from: SocketAddr, tag: u8, count: u32) {
        assert_eq!(got.len(), count as usize);
        for (i, (src, bytes)) in got.iter().enumerate() {
            assert_eq!(*src, from, "datagram {i}");
            assert!(*bytes == datagram(tag, i as u32), "datagram {i} differs");
        }
    }

    /// A pair on loopback between the PBX sockets `a` and `b`.
    fn start(a: &UdpSocket, b: &UdpSocket) -> ForwarderPair {
        ForwarderPair::start(ForwarderConfig {
            bind_ip: [127, 0, 0, 1].into(),
            pbx_a: a.local_addr().unwrap(),
            pbx_b: b.local_addr().unwrap(),
            segmentation: false,
        })
        .unwrap()
    }

    /// The counters lag the datagrams by a syscall: wait until they settle.
    fn settled(pair: &ForwarderPair, ok: impl Fn(&ForwarderStats) -> bool) -> ForwarderStats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = pair.stats();
            if ok(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn forwards_both_ways_intact_in_order_and_counts() {
        let (a, b) = (pbx(), pbx());
        let pair = start(&a, &b);
        let addrs = [
            pair.a_lan_addr(),
            pair.a_wan_addr(),
            pair.b_wan_addr(),
            pair.b_lan_addr(),
        ];
        for (i, x) in addrs.iter().enumerate() {
            assert!(x.ip().is_loopback() && x.port() != 0);
            assert!(!addrs[..i].contains(x));
        }
        let (rcvbuf, sndbuf) = pair.socket_buffers();
        assert!(rcvbuf > 0 && sndbuf > 0);

        // A few, then a burst of thousands, each way at once.
        let (at_a, at_b) = exchange(&pair, &a, &b, 5, 1);
        check_stream(&at_b, pair.b_lan_addr(), 1, 5);
        check_stream(&at_a, pair.a_lan_addr(), 2, 5);
        let (at_a, at_b) = exchange(&pair, &a, &b, 3000, 64);
        check_stream(&at_b, pair.b_lan_addr(), 1, 3000);
        check_stream(&at_a, pair.a_lan_addr(), 2, 3000);

        let n = 3005;
        let bytes: u64 = (0..5)
            .chain(0..3000)
            .map(|i| datagram(1, i).len() as u64)
            .sum();
        let s = settled(&pair, |s| Hop::ALL.iter().all(|&h| s.hop(h).forwarded == n));
        for hop in Hop::ALL {
            let h = s.hop(hop);
            assert_eq!((h.received, h.forwarded), (n, n), "{hop:?}: {h:?}");
            assert_eq!(h.received_bytes, bytes, "{hop:?}: {h:?}");
            assert_eq!(h.forwarded_bytes, bytes, "{hop:?}: {h:?}");
            assert_eq!((h.dropped(), h.recv_errors), (0, 0), "{hop:?}: {h:?}");
        }
        let wan = s.wan();
        assert_eq!((wan.a_to_b_datagrams, wan.a_to_b_bytes), (n, bytes));
        assert_eq!((wan.b_to_a_datagrams, wan.b_to_a_bytes), (n, bytes));
        assert_eq!((s.a_to_b().from_pbx, s.a_to_b().to_pbx), (n, n));
        assert_eq!((s.b_to_a().from_pbx, s.b_to_a().to_pbx), (n, n));
        assert_eq!(s.dropped(), 0);
        if let Some(drops) = pair.kernel_drops() {
            assert_eq!(drops, 0);
        }

        // The threads carry their names, for CPU attribution.
        let threads = cpu::thread_cpu();
        if !threads.is_empty() {
            for hop in Hop::ALL {
                assert!(
                    threads.iter().any(|t| t.name == hop.thread_name()),
                    "{} not among {threads:?}",
                    hop.thread_name()
                );
            }
        }

        let stopping = Instant::now();
        let last = pair.stop();
        assert!(stopping.elapsed() < Duration::from_secs(1));
        assert_eq!(last.a_lan.forwarded, n);
    }

    #[test]
    fn dropping_the_pair_stops_it() {
        let (a, b) = (pbx(), pbx());
        let pair = start(&a, &b);
        let a_lan = pair.a_lan_addr();
        let stopping = Instant::now();
        drop(pair);
        assert!(stopping.elapsed() < Duration::from_secs(1));
        // Its sockets are closed: the datagram goes nowhere.
        let _ = a.send_to(b"late", a_lan);
        std::thread::sleep(Duration::from_millis(50));
        let mut got = Vec::new();
        drain(&b, &mut got);
        assert!(got.is_empty());
    }
}
