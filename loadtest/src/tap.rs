//! A userspace UDP "WAN tap" between two gateways.
//!
//! The tap owns two UDP sockets, *side A* and *side B*, and relays between
//! two fixed addresses, gateway A and gateway B:
//!
//! ```text
//!  gateway A  <---->  side A [ tap ] side B  <---->  gateway B
//! ```
//!
//! Gateway A is configured with its far gateway at side A's address, and
//! gateway B with its far gateway at side B's address. A datagram from
//! gateway A arriving on side A leaves from side B towards gateway B, and
//! the other way round, so each gateway sees its peer at one fixed address
//! and the tap sees every datagram of the WAN leg. Datagrams from any other
//! source are counted as strangers and not forwarded.
//!
//! For each direction the tap counts datagrams and bytes and classifies
//! them with trunk-core's codec (full, mini, video mini, meta trunk frames
//! and their entries, other meta, malformed), and it records datagrams
//! (direction, time, bytes) within [`CaptureLimits`], so memory stays
//! bounded however long it runs; what is not recorded is counted. The
//! recording can be written as a classic pcap ([`Capture::write_pcap`])
//! with the real addresses and ports, for tshark.
//!
//! # Use
//!
//! The tap's ports are known before the gateways start (that is its
//! purpose: each gateway's configuration names the tap, not the other
//! gateway), so it is built in two steps: [`Tap::bind`], then, once the
//! gateways' addresses are known, [`Tap::start`].
//!
//! ```no_run
//! use iax2_loadtest::tap::{Leg, Tap, TapConfig};
//!
//! let tap = Tap::bind(&TapConfig::default())?;
//! let (side_a, side_b) = (tap.side_a_addr(), tap.side_b_addr());
//! // ... start gateway A with its far gateway at `side_a`, gateway B
//! // with its far gateway at `side_b`, then:
//! # let (gateway_a, gateway_b) = ("127.0.0.1:4569".parse().unwrap(), "127.0.0.1:4570".parse().unwrap());
//! let tap = tap.start(gateway_a, gateway_b)?;
//! // ... traffic ...
//! println!("{:?}", tap.stats());
//! let report = tap.stop();
//! report.capture.write_pcap("wan.pcap".as_ref(), Leg::A)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Threads
//!
//! One thread per direction, each in a tight blocking `recv_from` /
//! `send_to` loop on its own receive socket, with a short read timeout so
//! it sees the stop flag. Each thread is the only writer of its direction's
//! counters and recording; the capture limits are shared through atomics.
//! Sockets get large buffers (`socket2`; the kernel caps them at
//! `net.core.rmem_max` / `wmem_max`, see [`Tap::socket_buffers`] and
//! [`kernel_udp_drops`]).
//!
//! This module is the base of the impairment proxy (seeded loss, reorder
//! and delay): impairments belong in the private `Pump::forward`, between
//! receiving a datagram and sending it on.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness};
use trunk_core::wire::{classify, FrameKind, MetaTrunkFrame};

/// Largest UDP payload the tap receives whole (IPv4's limit is 65,507).
const MAX_UDP_PAYLOAD: usize = 65_535;

/// Which way a datagram crosses the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From gateway A (received on side A) to gateway B (sent from side B).
    AToB,
    /// From gateway B (received on side B) to gateway A (sent from side A).
    BToA,
}

impl Direction {
    /// Both directions, in index order.
    pub const ALL: [Self; 2] = [Self::AToB, Self::BToA];

    fn index(self) -> usize {
        match self {
            Self::AToB => 0,
            Self::BToA => 1,
        }
    }
}

/// How much the tap records. Counting never stops; recording does, and
/// what is not recorded is counted ([`DirectionStats::unrecorded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Record every datagram for this long after the tap's first datagram
    /// (`Duration::MAX`: for ever, within the caps below).
    pub everything_for: Duration,
    /// After that window, still record full frames (signalling), within
    /// the caps below.
    pub full_frames_after: bool,
    /// Most datagrams recorded, both directions together.
    pub max_datagrams: u64,
    /// Most payload bytes recorded, both directions together.
    pub max_bytes: u64,
}

impl CaptureLimits {
    /// Records nothing.
    pub const NONE: Self = Self {
        everything_for: Duration::ZERO,
        full_frames_after: false,
        max_datagrams: 0,
        max_bytes: 0,
    };
}

impl Default for CaptureLimits {
    /// The first 3 s of traffic, then full frames only; at most 50,000
    /// datagrams and 64 MiB.
    fn default() -> Self {
        Self {
            everything_for: Duration::from_secs(3),
            full_frames_after: true,
            max_datagrams: 50_000,
            max_bytes: 64 << 20,
        }
    }
}

/// How the tap is set up.
#[derive(Debug, Clone, Copy)]
pub struct TapConfig {
    /// Address of side A (port 0 picks a free port).
    pub side_a: SocketAddr,
    /// Address of side B (port 0 picks a free port).
    pub side_b: SocketAddr,
    /// SO_RCVBUF and SO_SNDBUF to ask for on both sockets.
    pub socket_buffer: usize,
    /// Longest wait in `recv_from` before the stop flag is read again.
    pub poll_interval: Duration,
    /// What is recorded.
    pub capture: CaptureLimits,
}

impl Default for TapConfig {
    /// Both sides on `127.0.0.1` with free ports, 8 MiB buffers, 20 ms
    /// poll interval, default capture limits.
    fn default() -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        Self {
            side_a: any,
            side_b: any,
            socket_buffer: 8 << 20,
            poll_interval: Duration::from_millis(20),
            capture: CaptureLimits::default(),
        }
    }
}

/// A tap whose sockets are bound but which relays nothing yet.
#[derive(Debug)]
pub struct Tap {
    side_a: UdpSocket,
    side_b: UdpSocket,
    config: TapConfig,
}

impl Tap {
    /// Binds both sides with large buffers (a refused or capped buffer
    /// size is not an error; see [`socket_buffers`](Self::socket_buffers)).
    pub fn bind(config: &TapConfig) -> io::Result<Self> {
        let open = |addr: SocketAddr| -> io::Result<UdpSocket> {
            let socket = UdpSocket::bind(addr)?;
            let sock = socket2::SockRef::from(&socket);
            // Best effort: the kernel caps these at net.core.[rw]mem_max.
            let _ = sock.set_recv_buffer_size(config.socket_buffer);
            let _ = sock.set_send_buffer_size(config.socket_buffer);
            socket.set_read_timeout(Some(config.poll_interval.max(Duration::from_millis(1))))?;
            Ok(socket)
        };
        Ok(Self {
            side_a: open(config.side_a)?,
            side_b: open(config.side_b)?,
            config: *config,
        })
    }

    /// Side A's address: configure gateway A's far gateway here.
    pub fn side_a_addr(&self) -> SocketAddr {
        self.side_a
            .local_addr()
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// Side B's address: configure gateway B's far gateway here.
    pub fn side_b_addr(&self) -> SocketAddr {
        self.side_b
            .local_addr()
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// (receive, send) buffer sizes of side A as the kernel reports them
    /// (Linux reports twice the granted size); side B asked for the same.
    pub fn socket_buffers(&self) -> (usize, usize) {
        let sock = socket2::SockRef::from(&self.side_a);
        (
            sock.recv_buffer_size().unwrap_or(0),
            sock.send_buffer_size().unwrap_or(0),
        )
    }

    /// Starts relaying between `gateway_a` (reached through side A) and
    /// `gateway_b` (reached through side B), one thread per direction.
    pub fn start(self, gateway_a: SocketAddr, gateway_b: SocketAddr) -> io::Result<TapHandle> {
        let addrs = Addresses {
            gateway_a,
            side_a: self.side_a_addr(),
            side_b: self.side_b_addr(),
            gateway_b,
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            started: std::time::Instant::now(),
            started_wall: SystemTime::now(),
            first_datagram_us: AtomicU64::new(NOT_YET),
            recorded_datagrams: AtomicU64::new(0),
            recorded_bytes: AtomicU64::new(0),
            limits: self.config.capture,
            counters: [DirCounters::default(), DirCounters::default()],
        });
        let (a_rx, b_rx) = (self.side_a, self.side_b);
        let (a_tx, b_tx) = (a_rx.try_clone()?, b_rx.try_clone()?);
        let pumps = [
            Pump {
                direction: Direction::AToB,
                rx: a_rx,
                tx: b_tx,
                from: gateway_a,
                to: gateway_b,
                shared: Arc::clone(&shared),
            },
            Pump {
                direction: Direction::BToA,
                rx: b_rx,
                tx: a_tx,
                from: gateway_b,
                to: gateway_a,
                shared: Arc::clone(&shared),
            },
        ];
        let mut threads = Vec::with_capacity(2);
        for pump in pumps {
            let name = format!("iax2-tap-{:?}", pump.direction);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || pump.run())
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.stop.store(true, Ordering::Release);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(TapHandle {
            addrs,
            shared,
            threads,
        })
    }
}

/// The four addresses of the WAN leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// Gateway A (talks to side A).
    pub gateway_a: SocketAddr,
    /// The tap's side A.
    pub side_a: SocketAddr,
    /// The tap's side B.
    pub side_b: SocketAddr,
    /// Gateway B (talks to side B).
    pub gateway_b: SocketAddr,
}

/// "No datagram yet" in [`Shared::first_datagram_us`].
const NOT_YET: u64 = u64::MAX;

/// What both pump threads and the handle share.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    started: std::time::Instant,
    started_wall: SystemTime,
    /// Microseconds from `started` to the first datagram, either way.
    first_datagram_us: AtomicU64,
    recorded_datagrams: AtomicU64,
    recorded_bytes: AtomicU64,
    limits: CaptureLimits,
    counters: [DirCounters; 2],
}

impl Shared {
    /// Reserves room for one recorded datagram of `len` bytes.
    fn reserve(&self, len: usize) -> bool {
        let len = len as u64;
        let n = self.recorded_datagrams.fetch_add(1, Ordering::Relaxed);
        let b = self.recorded_bytes.fetch_add(len, Ordering::Relaxed);
        if n < self.limits.max_datagrams && b.saturating_add(len) <= self.limits.max_bytes {
            return true;
        }
        self.recorded_datagrams.fetch_sub(1, Ordering::Relaxed);
        self.recorded_bytes.fetch_sub(len, Ordering::Relaxed);
        false
    }
}

macro_rules! direction_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One direction's counters; only that direction's thread writes.
        #[derive(Debug, Default)]
        struct DirCounters {
            $($name: AtomicU64,)*
            /// Microseconds from the tap's start to the first datagram, + 1
            /// (0: none yet).
            first_us: AtomicU64,
            /// Same for the last datagram.
            last_us: AtomicU64,
        }

        /// One direction's counts.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct DirectionStats {
            $($(#[$doc])* pub $name: u64,)*
            /// When the first datagram arrived, from the tap's start.
            pub first: Option<Duration>,
            /// When the last datagram arrived, from the tap's start.
            pub last: Option<Duration>,
        }

        impl DirCounters {
            fn snapshot(&self) -> DirectionStats {
                let at = |c: &AtomicU64| match c.load(Ordering::Relaxed) {
                    0 => None,
                    us => Some(Duration::from_micros(us - 1)),
                };
                DirectionStats {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    first: at(&self.first_us),
                    last: at(&self.last_us),
                }
            }
        }
    };
}

direction_counters! {
    /// Datagrams received from the expected gateway.
    datagrams,
    /// Their UDP payload bytes.
    bytes,
    /// Datagrams sent on.
    forwarded,
    /// `send_to` failures (the datagram is lost).
    send_errors,
    /// `recv_from` failures other than timeouts.
    recv_errors,
    /// Datagrams from any other address (counted here only, not forwarded).
    strangers,
    /// Full frames.
    full_frames,
    /// Mini voice frames.
    mini_frames,
    /// Video mini frames.
    video_frames,
    /// Meta trunk frames.
    trunk_frames,
    /// Entries of the meta trunk frames.
    trunk_entries,
    /// Largest number of entries in one trunk frame.
    max_trunk_entries,
    /// Meta frames other than trunk frames.
    other_meta,
    /// Datagrams that do not parse (shorter than 4 bytes, a short full
    /// frame or trunk header, a trunk entry running past the end).
    malformed,
    /// Datagrams recorded.
    recorded,
    /// Datagrams not recorded (outside the window, or over a cap).
    unrecorded,
    /// Payload bytes not recorded.
    unrecorded_bytes,
}

impl DirectionStats {
    /// Mean entries per meta trunk frame (0 without trunk frames).
    pub fn entries_per_trunk_frame(&self) -> f64 {
        if self.trunk_frames == 0 {
            0.0
        } else {
            self.trunk_entries as f64 / self.trunk_frames as f64
        }
    }

    /// Datagrams per second between the first and the last datagram.
    pub fn datagrams_per_second(&self) -> f64 {
        match (self.first, self.last) {
            (Some(f), Some(l)) if l > f => self.datagrams as f64 / (l - f).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Both directions' counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Gateway A to gateway B.
    pub a_to_b: DirectionStats,
    /// Gateway B to gateway A.
    pub b_to_a: DirectionStats,
}

impl TapStats {
    /// The counts of one direction.
    pub fn direction(&self, d: Direction) -> &DirectionStats {
        match d {
            Direction::AToB => &self.a_to_b,
            Direction::BToA => &self.b_to_a,
        }
    }
}

/// What one datagram is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Full,
    Mini,
    Video,
    Trunk { entries: u64 },
    OtherMeta,
    Malformed,
}

/// Classifies a datagram with trunk-core's codec. A trunk frame whose
/// entries cannot all be delimited is malformed.
fn classify_datagram(datagram: &[u8]) -> Class {
    match classify(datagram) {
        Err(_) => Class::Malformed,
        Ok(FrameKind::Full) if datagram.len() < 12 => Class::Malformed,
        Ok(FrameKind::Full) => Class::Full,
        Ok(FrameKind::Mini) => Class::Mini,
        Ok(FrameKind::VideoMini) if datagram.len() < 6 => Class::Malformed,
        Ok(FrameKind::VideoMini) => Class::Video,
        Ok(FrameKind::Meta) => Class::OtherMeta,
        Ok(FrameKind::MetaTrunk) => match MetaTrunkFrame::new_checked(datagram) {
            Err(_) => Class::Malformed,
            Ok(frame) => {
                let mut entries = 0;
                for entry in frame.entries() {
                    if entry.is_err() {
                        return Class::Malformed;
                    }
                    entries += 1;
                }
                Class::Trunk { entries }
            }
        },
    }
}

/// One direction's recording: records in arrival order over one arena.
#[derive(Debug, Default)]
struct Recording {
    records: Vec<(Duration, Range<usize>)>,
    arena: Vec<u8>,
}

/// One direction's relay loop.
#[derive(Debug)]
struct Pump {
    direction: Direction,
    rx: UdpSocket,
    tx: UdpSocket,
    /// The only source accepted on `rx`.
    from: SocketAddr,
    /// Where datagrams go from `tx`.
    to: SocketAddr,
    shared: Arc<Shared>,
}

impl Pump {
    fn run(self) -> Recording {
        let mut rec = Recording::default();
        let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
        let counters = &self.shared.counters[self.direction.index()];
        while !self.shared.stop.load(Ordering::Acquire) {
            let (len, from) = match self.rx.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => {
                    bump(&counters.recv_errors, 1);
                    continue;
                }
            };
            let at = self.shared.started.elapsed();
            if from != self.from {
                bump(&counters.strangers, 1);
                continue;
            }
            let datagram = &buf[..len];
            self.forward(datagram, counters);
            self.account(at, datagram, counters, &mut rec);
        }
        rec
    }

    /// Sends one datagram on. Impairments (loss, delay, reordering) go
    /// here when the tap becomes the impairment proxy.
    fn forward(&self, datagram: &[u8], counters: &DirCounters) {
        match self.tx.send_to(datagram, self.to) {
            Ok(_) => bump(&counters.forwarded, 1),
            Err(_) => bump(&counters.send_errors, 1),
        }
    }

    /// Counts, classifies and maybe records one datagram received at `at`.
    fn account(&self, at: Duration, datagram: &[u8], c: &DirCounters, rec: &mut Recording) {
        let at_us = u64::try_from(at.as_micros()).unwrap_or(u64::MAX - 1);
        if c.first_us.load(Ordering::Relaxed) == 0 {
            c.first_us.store(at_us + 1, Ordering::Relaxed);
        }
        c.last_us.store(at_us + 1, Ordering::Relaxed);
        let _ = self.shared.first_datagram_us.compare_exchange(
            NOT_YET,
            at_us,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        bump(&c.datagrams, 1);
        bump(&c.bytes, datagram.len() as u64);
        let class = classify_datagram(datagram);
        match class {
            Class::Full => bump(&c.full_frames, 1),
            Class::Mini => bump(&c.mini_frames, 1),
            Class::Video => bump(&c.video_frames, 1),
            Class::OtherMeta => bump(&c.other_meta, 1),
            Class::Malformed => bump(&c.malformed, 1),
            Class::Trunk { entries } => {
                bump(&c.trunk_frames, 1);
                bump(&c.trunk_entries, entries);
                if entries > c.max_trunk_entries.load(Ordering::Relaxed) {
                    c.max_trunk_entries.store(entries, Ordering::Relaxed);
                }
            }
        }
        let limits = &self.shared.limits;
        let first = self.shared.first_datagram_us.load(Ordering::Relaxed);
        let in_window = Duration::from_micros(at_us.saturating_sub(first)) < limits.everything_for;
        let wanted = in_window || (limits.full_frames_after && class == Class::Full);
        if wanted && self.shared.reserve(datagram.len()) {
            let start = rec.arena.len();
            rec.arena.extend_from_slice(datagram);
            rec.records.push((at, start..rec.arena.len()));
            bump(&c.recorded, 1);
        } else {
            bump(&c.unrecorded, 1);
            bump(&c.unrecorded_bytes, datagram.len() as u64);
        }
    }
}

/// Adds `n` to a counter that has one writer.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A running tap. Dropping it stops it too.
#[derive(Debug)]
pub struct TapHandle {
    addrs: Addresses,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Recording>>,
}

impl TapHandle {
    /// The four addresses of the WAN leg.
    pub fn addresses(&self) -> Addresses {
        self.addrs
    }

    /// Time since the tap started.
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// The counts so far (each counter is exact; the two directions and
    /// the counters within one are read one after the other).
    pub fn stats(&self) -> TapStats {
        TapStats {
            a_to_b: self.shared.counters[0].snapshot(),
            b_to_a: self.shared.counters[1].snapshot(),
        }
    }

    /// Datagrams the kernel dropped on the tap's two receive sockets
    /// because their buffers were full (Linux; `None` elsewhere).
    pub fn kernel_drops(&self) -> Option<u64> {
        Some(kernel_udp_drops(self.addrs.side_a)? + kernel_udp_drops(self.addrs.side_b)?)
    }

    /// Stops both threads, waits for them, and returns the final counts
    /// and the recording.
    pub fn stop(mut self) -> TapReport {
        let recordings = self.shutdown();
        let stats = self.stats();
        let mut capture = Capture {
            addrs: self.addrs,
            started_wall: self.shared.started_wall,
            order: Vec::new(),
            recordings,
        };
        let mut order: Vec<(Duration, Direction, usize)> = Vec::new();
        for d in Direction::ALL {
            let records = &capture.recordings[d.index()].records;
            order.extend(records.iter().enumerate().map(|(i, r)| (r.0, d, i)));
        }
        // Stable: each direction's own order is kept on equal times.
        order.sort_by_key(|&(at, _, _)| at);
        capture.order = order.into_iter().map(|(_, d, i)| (d, i)).collect();
        TapReport { stats, capture }
    }

    fn shutdown(&mut self) -> [Recording; 2] {
        self.shared.stop.store(true, Ordering::Release);
        let mut out = [Recording::default(), Recording::default()];
        for (i, t) in self.threads.drain(..).enumerate() {
            if let Ok(rec) = t.join() {
                out[i] = rec;
            }
        }
        out
    }
}

impl Drop for TapHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.shutdown();
        }
    }
}

/// What [`TapHandle::stop`] returns.
#[derive(Debug)]
pub struct TapReport {
    /// The final counts.
    pub stats: TapStats,
    /// The recorded datagrams.
    pub capture: Capture,
}

/// One recorded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedDatagram<'a> {
    /// Which way it went.
    pub direction: Direction,
    /// When the tap received it, from the tap's start.
    pub at: Duration,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Which leg of the WAN path a pcap shows, i.e. where the capture would
/// have been taken on a real network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// Between gateway A and side A: gateway A to side A, side A to
    /// gateway A (what gateway A's interface sees).
    A,
    /// Between side B and gateway B (what gateway B's interface sees).
    B,
}

/// The tap's recording, both directions in arrival order.
#[derive(Debug)]
pub struct Capture {
    addrs: Addresses,
    started_wall: SystemTime,
    /// (direction, index into that direction's records), by time.
    order: Vec<(Direction, usize)>,
    recordings: [Recording; 2],
}

impl Capture {
    /// Recorded datagrams.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The four addresses of the WAN leg.
    pub fn addresses(&self) -> Addresses {
        self.addrs
    }

    /// The recorded datagrams in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = CapturedDatagram<'_>> + '_ {
        self.order.iter().filter_map(move |&(direction, i)| {
            let rec = &self.recordings[direction.index()];
            let (at, range) = rec.records.get(i)?;
            Some(CapturedDatagram {
                direction,
                at: *at,
                payload: rec.arena.get(range.clone())?,
            })
        })
    }

    /// The source and destination a datagram has on `leg`.
    fn endpoints(&self, leg: Leg, direction: Direction) -> (SocketAddr, SocketAddr) {
        let a = &self.addrs;
        match (leg, direction) {
            (Leg::A, Direction::AToB) => (a.gateway_a, a.side_a),
            (Leg::A, Direction::BToA) => (a.side_a, a.gateway_a),
            (Leg::B, Direction::AToB) => (a.side_b, a.gateway_b),
            (Leg::B, Direction::BToA) => (a.gateway_b, a.side_b),
        }
    }

    /// The port tshark must decode as IAX2 for a pcap of `leg`
    /// (`-d udp.port==PORT,iax2`): the tap's side of that leg.
    pub fn tap_port(&self, leg: Leg) -> u16 {
        match leg {
            Leg::A => self.addrs.side_a.port(),
            Leg::B => self.addrs.side_b.port(),
        }
    }

    /// Writes the recording as a classic pcap (link type 101, raw IP)
    /// with the real addresses and ports of `leg`, IPv4 or IPv6 headers
    /// with correct checksums, and the wall-clock time each datagram
    /// reached the tap.
    pub fn write_pcap(&self, path: &Path, leg: Leg) -> io::Result<()> {
        let file = File::create(path)?;
        let header = PcapHeader {
            datalink: DataLink::RAW,
            snaplen: 65_535 + 48,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let mut writer =
            PcapWriter::with_header(BufWriter::new(file), header).map_err(pcap_error)?;
        let mut packet = Vec::with_capacity(MAX_UDP_PAYLOAD + 48);
        for (id, d) in self.iter().enumerate() {
            let (src, dst) = self.endpoints(leg, d.direction);
            packet.clear();
            ip_udp_packet(&mut packet, src, dst, d.payload, id as u16)?;
            let when = self
                .started_wall
                .checked_add(d.at)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .unwrap_or_default();
            let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
            writer
                .write_packet(&PcapPacket::new(when, len, &packet))
                .map_err(pcap_error)?;
        }
        writer
            .into_writer()
            .into_inner()
            .map_err(|e| e.into_error())?;
        Ok(())
    }
}

fn pcap_error(e: pcap_file::PcapError) -> io::Error {
    io::Error::other(e)
}

/// Appends an IPv4 or IPv6 packet carrying one UDP datagram to `out`, with
/// the IPv4 header checksum and the UDP checksum computed.
fn ip_udp_packet(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    id: u16,
) -> io::Result<()> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "datagram too large for IP");
    let udp_len = u16::try_from(8 + payload.len()).map_err(|_| too_big())?;
    // The pseudo-header sum for the UDP checksum.
    let mut sum: u32 = u32::from(udp_len) + 17;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + 8 + payload.len()).map_err(|_| too_big())?;
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let csum = !fold(add_words(0, &out[start..]));
            out[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());
            sum = add_words(add_words(sum, &s.octets()), &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            sum = add_words(add_words(sum, &s.octets()), &d.octets());
        }
        (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different IP versions",
            ))
        }
    }
    let udp = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let csum = match !fold(add_words(sum, &out[udp..])) {
        // A computed 0 is sent as all ones (0 means "no checksum").
        0 => 0xffff,
        c => c,
    };
    out[udp + 6..udp + 8].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// Adds `bytes` as big-endian 16-bit words (a trailing odd byte padded
/// with zero) to a one's-complement running sum.
fn add_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum = fold32(sum + u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = fold32(sum + (u32::from(*last) << 8));
    }
    sum
}

/// Keeps a running sum below 2^17 so additions cannot overflow.
fn fold32(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

/// Folds a running sum to 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Datagrams the kernel dropped on the UDP socket(s) bound to `local`
/// (all reuseport sockets of that address together), because a receive
/// buffer was full or a checksum was bad: the `drops` column of
/// `/proc/net/udp` or `/proc/net/udp6`. `None` off Linux or when no socket
/// is bound there. A socket bound to the wildcard address is matched only
/// by the wildcard address.
pub fn kernel_udp_drops(local: SocketAddr) -> Option<u64> {
    let (table, want) = match local {
        SocketAddr::V4(a) => (
            "/proc/net/udp",
            format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(a.ip().octets()),
                a.port()
            ),
        ),
        SocketAddr::V6(a) => {
            let o = a.ip().octets();
            let mut hex = String::with_capacity(37);
            for w in o.chunks_exact(4) {
                hex.push_str(&format!(
                    "{:08X}",
                    u32::from_ne_bytes([w[0], w[1], w[2], w[3]])
                ));
            }
            hex.push_str(&format!(":{:04X}", a.port()));
            ("/proc/net/udp6", hex)
        }
    };
    let text = std::fs::read_to_string(table).ok()?;
    let mut found = None;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&want.as_str()) {
            let drops: u64 = fields.last()?.parse().ok()?;
            *found.get_or_insert(0) += drops;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ipv4_checksums_verify() {
        let mut p = Vec::new();
        let (src, dst) = (
            "127.0.0.1:4569".parse().unwrap(),
            "127.0.0.2:5000".parse().unwrap(),
        );
        ip_udp_packet(&mut p, src, dst, b"hello", 7).unwrap();
        assert_eq!(p.len(), 20 + 8 + 5);
        // The header sums to all ones with its checksum in.
        assert_eq!(fold(add_words(0, &p[..20])), 0xffff);
        // So does the UDP pseudo-header + datagram.
        let pseudo = add_words(add_words(17 + 13, &[127, 0, 0, 1]), &[127, 0, 0, 2]);
        assert_eq!(fold(add_words(pseudo, &p[20..])), 0xffff);
    }

    #[test]
    fn ipv6_checksum_verifies() {
        let mut p = Vec::new();
        let (src, dst) = ("[::1]:4569".parse().unwrap(), "[::1]:5000".parse().unwrap());
        ip_udp_packet(&mut p, src, dst, b"odd", 0).unwrap();
        assert_eq!(p.len(), 40 + 8 + 3);
        let one = std::net::Ipv6Addr::LOCALHOST.octets();
        let pseudo = add_words(add_words(17 + 11, &one), &one);
        assert_eq!(fold(add_words(pseudo, &p[40..])), 0xffff);
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut p = Vec::new();
        let (src, dst) = ("127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert!(ip_udp_packet(&mut p, src, dst, b"x", 0).is_err());
    }

    #[test]
    fn classifies_every_kind() {
        assert_eq!(classify_datagram(&[0, 1]), Class::Malformed);
        assert_eq!(classify_datagram(&[0x80, 1, 0, 0]), Class::Malformed);
        assert_eq!(
            classify_datagram(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1]),
            Class::Full
        );
        assert_eq!(classify_datagram(&[0, 5, 0, 20, 1, 2]), Class::Mini);
        assert_eq!(classify_datagram(&[0, 0, 0x80, 5, 0, 0, 1]), Class::Video);
        assert_eq!(
            classify_datagram(&[0, 0, 0x02, 0, 0, 0, 0, 0]),
            Class::OtherMeta
        );
        // Timestamped layout: len 2, call 5, ts 9, two payload bytes; twice.
        let mut trunk = vec![0, 0, 1, 1, 0, 0, 0, 40];
        for _ in 0..2 {
            trunk.extend_from_slice(&[0, 2, 0, 5, 0, 9, 0xaa, 0xbb]);
        }
        assert_eq!(classify_datagram(&trunk), Class::Trunk { entries: 2 });
        trunk.pop();
        assert_eq!(classify_datagram(&trunk), Class::Malformed);
    }

    #[test]
    fn reserve_respects_both_caps() {
        let shared = Shared {
            stop: AtomicBool::new(false),
            started: std::time::Instant::now(),
            started_wall: SystemTime::now(),
            first_datagram_us: AtomicU64::new(NOT_YET),
            recorded_datagrams: AtomicU64::new(0),
            recorded_bytes: AtomicU64::new(0),
            limits: CaptureLimits {
                max_datagrams: 3,
                max_bytes: 100,
                ..CaptureLimits::default()
            },
            counters: [DirCounters::default(), DirCounters::default()],
        };
        assert!(shared.reserve(60));
        assert!(!shared.reserve(41), "over the byte cap");
        assert!(shared.reserve(40));
        assert!(shared.reserve(0));
        assert!(!shared.reserve(0), "over the datagram cap");
        assert_eq!(shared.recorded_datagrams.load(Ordering::Relaxed), 3);
        assert_eq!(shared.recorded_bytes.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn relays_counts_and_records_both_ways() {
        let config = TapConfig {
            poll_interval: Duration::from_millis(5),
            ..TapConfig::default()
        };
        let tap = Tap::bind(&config).unwrap();
        let (side_a, side_b) = (tap.side_a_addr(), tap.side_b_addr());
        let gw_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let gw_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&gw_a, &gw_b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let tap = tap
            .start(gw_a.local_addr().unwrap(), gw_b.local_addr().unwrap())
            .unwrap();
        let mini = [0, 5, 0, 20, 1, 2, 3];
        let full = [0x80, 1, 0, 2, 0, 0, 0, 9, 0, 0, 6, 1];
        gw_a.send_to(&mini, side_a).unwrap();
        stranger.send_to(&mini, side_a).unwrap();
        gw_b.send_to(&full, side_b).unwrap();
        let mut buf = [0; 64];
        let (n, from) = gw_b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&mini[..], side_b));
        let (n, from) = gw_a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&full[..], side_a));
        // The stranger's datagram is counted before the thread reads the
        // next one; wait for the counts to settle.
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while tap.stats().a_to_b.strangers == 0 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        let report = tap.stop();
        let (ab, ba) = (report.stats.a_to_b, report.stats.b_to_a);
        assert_eq!(
            (ab.datagrams, ab.mini_frames, ab.forwarded, ab.strangers),
            (1, 1, 1, 1)
        );
        assert_eq!((ba.datagrams, ba.full_frames, ba.bytes), (1, 1, 12));
        let got: Vec<_> = report
            .capture
            .iter()
            .map(|d| (d.direction, d.payload))
            .collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(Direction::AToB, &mini[..])));
        assert!(got.contains(&(Direction::BToA, &full[..])));

        let path = std::env::temp_dir().join(format!("iax2-tap-{}.pcap", std::process::id()));
        report.capture.write_pcap(&path, Leg::A).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        // Global header (24) + 2 x (record header 16 + IPv4 20 + UDP 8) + payloads.
        assert_eq!(bytes.len(), 24 + 2 * (16 + 28) + mini.len() + full.len());
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 101);
    }

    #[test]
    fn kernel_drops_of_a_bound_socket() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(kernel_udp_drops(s.local_addr().unwrap()), Some(0));
        }
    }
}
