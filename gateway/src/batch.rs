//! Batched receive and send over one UDP socket.
//!
//! On Linux a [`RecvBatch`] fills many datagrams with one `recvmmsg` and a
//! [`SendBatch`] sends its queue with `sendmmsg`, so the syscall cost is
//! shared by a whole batch (DESIGN.md, "Runtime"). Other unix systems get
//! the same types over plain `recv_from`/`send_to`.
//!
//! Buffers are allocated once, when a batch is built: nothing here
//! allocates per datagram.
//!
//! The send side never blocks and never grows. Datagrams wait in a ring of
//! fixed slots; when the socket says `EAGAIN` the batch keeps them and
//! reports [`Flush::Blocked`] so the caller can wait for `WRITABLE`; a
//! datagram that finds the ring full is dropped and counted as
//! [`DropReason::QueueFull`]. A datagram the kernel refuses for itself
//! (bad address, too large) is dropped alone, counted, and the rest go on.
//!
//! Sockets of the IPv6 family may be dual stack: addresses are normalised
//! so the rest of the gateway only ever sees plain IPv4 for IPv4 peers
//! (v4-mapped sources are unmapped, IPv4 destinations are mapped).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mio::net::UdpSocket;
use trunk_core::relay::{Counters, DropReason};
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};
use trunk_core::wire::MetaTrunkFrame;

use crate::ratelimit::LogLimiter;

/// Receive slots per batch: one `recvmmsg` takes up to this many.
pub const RECV_SLOTS: usize = 64;

/// Send slots per worker: the longest queue a blocked socket may build.
pub const SEND_SLOTS: usize = 256;

/// I/O counters of one worker's socket, beside the relay's own.
#[derive(Debug, Default)]
pub struct IoCounters {
    recv_syscalls: Cell,
    recv_truncated: Cell,
    recv_errors: Cell,
    send_syscalls: Cell,
    sent_datagrams: Cell,
    sent_segmented: Cell,
    send_errors: Cell,
    send_blocked: Cell,
}

/// A plain copy of [`IoCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoSnapshot {
    /// Receive syscalls that returned datagrams.
    pub recv_syscalls: u64,
    /// Datagrams dropped because they were longer than [`MAX_DATAGRAM`].
    pub recv_truncated: u64,
    /// Receive syscalls that failed (other than "nothing to read").
    pub recv_errors: u64,
    /// Send syscalls that sent something.
    pub send_syscalls: u64,
    /// Datagrams the kernel accepted.
    pub sent_datagrams: u64,
    /// Of those, datagrams that went in a segmented send (UDP GSO: one
    /// buffer the kernel cuts into equal datagrams).
    pub sent_segmented: u64,
    /// Datagrams the kernel refused (each dropped alone).
    pub send_errors: u64,
    /// Times the socket's send buffer was full (`EAGAIN`).
    pub send_blocked: u64,
}

impl IoCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> IoSnapshot {
        IoSnapshot {
            recv_syscalls: self.recv_syscalls.get(),
            recv_truncated: self.recv_truncated.get(),
            recv_errors: self.recv_errors.get(),
            send_syscalls: self.send_syscalls.get(),
            sent_datagrams: self.sent_datagrams.get(),
            sent_segmented: self.sent_segmented.get(),
            send_errors: self.send_errors.get(),
            send_blocked: self.send_blocked.get(),
        }
    }

    /// Counts a receive syscall that returned datagrams.
    pub fn count_recv_syscall(&self) {
        self.recv_syscalls.add(1);
    }

    /// Counts a datagram dropped for being cut.
    pub fn count_recv_truncated(&self) {
        self.recv_truncated.add(1);
    }

    /// Counts a failed receive syscall.
    pub fn count_recv_error(&self) {
        self.recv_errors.add(1);
    }
}

impl IoSnapshot {
    /// Adds another worker's values.
    pub fn merge(&mut self, other: &Self) {
        self.recv_syscalls += other.recv_syscalls;
        self.recv_truncated += other.recv_truncated;
        self.recv_errors += other.recv_errors;
        self.send_syscalls += other.send_syscalls;
        self.sent_datagrams += other.sent_datagrams;
        self.sent_segmented += other.sent_segmented;
        self.send_errors += other.send_errors;
        self.send_blocked += other.send_blocked;
    }
}

/// A counter with one writer (the worker that owns the socket), so a
/// relaxed load and store is enough, as in the relay's counters.
#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl Cell {
    fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one received datagram looked like.
#[derive(Clone, Copy, Debug)]
struct Meta {
    from: SocketAddr,
    len: usize,
    truncated: bool,
    /// When the kernel queued it (wall clock), with kernel timestamps on.
    stamp: Option<Duration>,
}

impl Meta {
    const EMPTY: Self = Self {
        from: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        len: 0,
        truncated: false,
        stamp: None,
    };
}

/// One datagram of a [`RecvBatch`].
#[derive(Debug)]
pub struct Received<'a> {
    /// Its source (IPv4 sources on a dual-stack socket come unmapped).
    pub from: SocketAddr,
    /// Its bytes, writable so the relay can rewrite them in place.
    pub data: &'a mut [u8],
    /// The datagram was longer than [`MAX_DATAGRAM`] and was cut (or its
    /// source address could not be read): it must be dropped.
    pub truncated: bool,
    /// When the kernel queued it on the socket (wall clock), for a batch
    /// made with [`RecvBatch::with_kernel_timestamps`] on a socket given
    /// [`enable_kernel_timestamps`]; `None` otherwise.
    pub kernel_time: Option<SystemTime>,
}

/// Receive buffers for up to `capacity` datagrams per syscall.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Box<[u8]>,
    meta: Box<[Meta]>,
    count: usize,
    /// Control-message space per slot, for kernel timestamps; empty
    /// without them.
    control: Box<[u64]>,
    #[cfg(target_os = "linux")]
    sys: mmsg::RecvState,
}

/// Words of control-message space per slot: a `cmsghdr` and a `timespec`
/// (32 bytes on 64-bit Linux), with room to spare.
const CONTROL_WORDS: usize = 8;

/// Asks the kernel to stamp every datagram `socket` receives with the
/// wall-clock time it was queued (`SO_TIMESTAMPNS`), which a
/// [`RecvBatch::with_kernel_timestamps`] then reports. A load generator
/// uses it to measure arrival times that do not depend on when its thread
/// got to read them.
#[cfg(target_os = "linux")]
pub fn enable_kernel_timestamps<S: std::os::fd::AsRawFd>(socket: &S) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kernel timestamps are a Linux feature; elsewhere this says so.
#[cfg(not(target_os = "linux"))]
pub fn enable_kernel_timestamps<S>(_socket: &S) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

impl RecvBatch {
    /// Buffers for `slots` datagrams (at least one) of [`MAX_DATAGRAM`]
    /// bytes each.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            bufs: vec![0; slots * MAX_DATAGRAM].into_boxed_slice(),
            meta: vec![Meta::EMPTY; slots].into_boxed_slice(),
            count: 0,
            control: Box::new([]),
            #[cfg(target_os = "linux")]
            sys: mmsg::RecvState::new(slots),
        }
    }

    /// Like [`new`](Self::new), and also reads the kernel's receive
    /// timestamps ([`Received::kernel_time`]; see
    /// [`enable_kernel_timestamps`]).
    pub fn with_kernel_timestamps(slots: usize) -> Self {
        let mut b = Self::new(slots);
        b.control = vec![0u64; b.meta.len() * CONTROL_WORDS].into_boxed_slice();
        b
    }

    /// How many datagrams one call can receive.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Receives what the socket holds, up to [`capacity`](Self::capacity)
    /// datagrams, and returns how many came. With nothing to read it
    /// fails with [`io::ErrorKind::WouldBlock`]; it never returns `Ok(0)`.
    /// `EINTR` is retried.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        #[cfg(target_os = "linux")]
        let n = {
            use std::os::fd::AsRawFd;
            self.sys.recv(
                socket.as_raw_fd(),
                &mut self.bufs,
                &mut self.meta,
                &mut self.control,
            )?
        };
        #[cfg(not(target_os = "linux"))]
        let n = portable::recv(socket, &mut self.bufs, &mut self.meta)?;
        self.count = n;
        Ok(n)
    }

    /// How many datagrams the last [`recv`](Self::recv) returned.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last [`recv`](Self::recv) returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last [`recv`](Self::recv).
    pub fn get_mut(&mut self, i: usize) -> Option<Received<'_>> {
        if i >= self.count {
            return None;
        }
        let meta = self.meta.get(i)?;
        let start = i * MAX_DATAGRAM;
        let data = self
            .bufs
            .get_mut(start..start + meta.len.min(MAX_DATAGRAM))?;
        Some(Received {
            from: meta.from,
            data,
            truncated: meta.truncated,
            kernel_time: meta.stamp.map(|d| SystemTime::UNIX_EPOCH + d),
        })
    }
}

/// The outcome of a [`SendBatch::flush`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Flush {
    /// Nothing is left to send.
    Done,
    /// The socket's buffer is full; the rest waits for `WRITABLE`.
    Blocked,
}

/// Where a queued datagram goes, how long it is and which buffer slot
/// holds it.
#[derive(Clone, Copy, Debug)]
struct Queued {
    to: SocketAddr,
    len: usize,
    slot: usize,
    /// Its steering class, [`CLASSES`] for a trunk frame spanning classes:
    /// a segmented send only joins datagrams of one class.
    class: usize,
}

/// Send queues per batch: datagrams are queued by the steering class of
/// their call number (modulo this), so that a segmented send holds the
/// datagrams of one class only. A receiver whose steering program picks
/// its worker by call number modulo 1, 2 or 4 (ours, for any of those
/// worker counts) then gets the whole send on the right worker even where
/// the kernel steers it whole (loopback, veth), and each call's datagrams
/// stay in order because they all share a queue.
///
/// A meta trunk frame whose entries span classes (toward a PBX, one frame
/// carries every call) is a barrier: it joins the last queue that holds
/// anything, and so does everything after it until the batch is empty, so
/// nothing overtakes it and it overtakes nothing.
const CLASSES: usize = 4;

/// The steering class of `datagram`, `None` for a trunk frame whose
/// entries span classes.
fn steering_class(datagram: &[u8]) -> Option<usize> {
    let class = |call: u16| usize::from(call) % CLASSES;
    let first = class(crate::steering::steering_call_number(datagram));
    if let Ok(frame) = MetaTrunkFrame::new_checked(datagram) {
        let mixed = frame
            .entries()
            .any(|e| e.map_or(true, |e| class(e.call_number.get()) != first));
        if mixed {
            return None;
        }
    }
    Some(first)
}

/// A bounded queue of outgoing datagrams, sent in batches.
///
/// Build a [`Sender`] over it with [`sender`](Self::sender) to hand to the
/// relay as its [`Transmit`]; call [`flush`](Self::flush) after each batch
/// of work, and [`on_writable`](Self::on_writable) when a blocked socket
/// becomes writable again.
///
/// Datagrams of one steering class leave in the order they were queued;
/// datagrams of different classes (different calls) may overtake each
/// other within a batch.
#[derive(Debug)]
pub struct SendBatch {
    /// `capacity + 1` slots: the last is scratch for datagrams that will
    /// be dropped because every slot is taken.
    bufs: Box<[u8]>,
    /// Free slots, as a stack.
    free: Vec<usize>,
    /// The queued datagrams of each class, oldest first.
    queues: [VecDeque<Queued>; CLASSES],
    /// Queue by steering class; off, one queue in strict order.
    classes: bool,
    /// The queue every datagram joins since a barrier, until the batch is
    /// empty (see [`CLASSES`]).
    barrier: Option<usize>,
    len: usize,
    /// The last `buffer()` handed out the scratch slot.
    overflow: bool,
    /// The socket said `EAGAIN`; wait for `WRITABLE` before trying again.
    blocked: bool,
    /// The socket is IPv6: IPv4 destinations are sent v4-mapped.
    ipv6_socket: bool,
    drops: Arc<Counters>,
    io: Arc<IoCounters>,
    log_errors: LogLimiter,
    log_full: LogLimiter,
    /// Runs of equal datagrams to one destination go as one segmented
    /// send (UDP GSO). Off for good once the kernel says it cannot.
    segmentation: bool,
    /// The last segmented send failed for a reason of its own: send the
    /// head run once more as single datagrams, so each fails or goes alone.
    unsegmented_once: bool,
    log_segmentation: LogLimiter,
    #[cfg(target_os = "linux")]
    sys: mmsg::SendState,
}

/// What one send syscall took.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    datagrams: usize,
    /// Of them, datagrams in segmented sends.
    segmented: usize,
}

impl SendBatch {
    /// A queue of `slots` datagrams (at least one) for a socket bound to
    /// `local` (its family decides how IPv4 destinations are written).
    /// Queue-full drops are counted in `drops`, syscalls in `io`.
    pub fn new(slots: usize, local: SocketAddr, drops: Arc<Counters>, io: Arc<IoCounters>) -> Self {
        let slots = slots.max(1);
        Self {
            bufs: vec![0; (slots + 1) * MAX_DATAGRAM].into_boxed_slice(),
            // Popped from the end: slot 0 first.
            free: (0..slots).rev().collect(),
            queues: std::array::from_fn(|_| VecDeque::with_capacity(slots)),
            classes: true,
            barrier: None,
            len: 0,
            overflow: false,
            blocked: false,
            ipv6_socket: local.is_ipv6(),
            drops,
            io,
            log_errors: LogLimiter::default(),
            log_full: LogLimiter::default(),
            segmentation: cfg!(target_os = "linux"),
            unsegmented_once: false,
            log_segmentation: LogLimiter::default(),
            #[cfg(target_os = "linux")]
            sys: mmsg::SendState::new(slots),
        }
    }

    /// Turns segmented sends (UDP GSO) on or off; on by default on Linux,
    /// where the batch turns it off by itself if the kernel refuses it.
    /// Datagrams leave the same either way: off costs one trip through the
    /// network stack per datagram instead of per run.
    pub fn set_segmentation(&mut self, on: bool) {
        self.segmentation = on && cfg!(target_os = "linux");
    }

    /// Whether segmented sends are in use.
    pub fn segmentation(&self) -> bool {
        self.segmentation
    }

    /// Queues by steering class (the default, for IAX2 traffic), or keeps
    /// one queue in the exact order of the commits (a plain UDP relay).
    pub fn set_steering_classes(&mut self, on: bool) {
        self.classes = on;
    }

    /// The most datagrams the queue holds.
    pub fn capacity(&self) -> usize {
        self.bufs.len() / MAX_DATAGRAM - 1
    }

    /// Datagrams waiting to be sent.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Whether the socket said `EAGAIN` and no `WRITABLE` came since.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// A [`Transmit`] that queues into this batch and sends on `socket`.
    pub fn sender<'a>(&'a mut self, socket: &'a UdpSocket) -> Sender<'a> {
        Sender {
            batch: self,
            socket,
        }
    }

    /// Sends what is queued, unless the socket is known to be full: the
    /// queues one after the other, in one `sendmmsg` while they fit.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flush {
        while self.len > 0 {
            if self.blocked {
                return Flush::Blocked;
            }
            match self.send_some(socket) {
                Ok(Sent { datagrams: 0, .. }) => {
                    // Not expected with datagrams queued; drop the head so
                    // the loop always makes progress.
                    self.io.send_errors.add(1);
                    self.advance(1);
                }
                Ok(sent) => {
                    self.io.send_syscalls.add(1);
                    self.io.sent_datagrams.add(sent.datagrams as u64);
                    self.io.sent_segmented.add(sent.segmented as u64);
                    self.advance(sent.datagrams);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    self.io.send_blocked.add(1);
                }
                Err(e) if self.head_was_segmented() => self.segmented_send_failed(&e),
                Err(e) => {
                    // The error is the head datagram's own (sendmmsg
                    // reports an error only when the first message fails):
                    // drop it alone so the others still go.
                    let to = self.queues.iter().find_map(|q| q.front()).map(|q| q.to);
                    self.io.send_errors.add(1);
                    if let Some(suppressed) = self.log_errors.allow() {
                        tracing::warn!(?to, error = %e, suppressed, "send failed, datagram dropped");
                    }
                    self.advance(1);
                }
            }
        }
        Flush::Done
    }

    /// Whether the head of the last failed send was a segmented run.
    fn head_was_segmented(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.sys.head_segments() > 1;
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// A segmented send failed. If the kernel or the route cannot segment
    /// (no UDP GSO, no checksum offload on the device, a segment larger
    /// than the path's MTU), segmentation is turned off for good; any other
    /// error is the datagrams' own, so the run is sent again one by one and
    /// each fails or goes alone.
    fn segmented_send_failed(&mut self, e: &io::Error) {
        let cannot = matches!(
            e.raw_os_error(),
            Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT | libc::EMSGSIZE)
        );
        if cannot {
            self.segmentation = false;
            if let Some(suppressed) = self.log_segmentation.allow() {
                tracing::warn!(error = %e, suppressed, "segmented sends (UDP GSO) refused, sending datagrams one by one");
            }
        } else {
            self.unsegmented_once = true;
        }
    }

    /// The socket became writable: try the queue again.
    pub fn on_writable(&mut self, socket: &UdpSocket) -> Flush {
        self.blocked = false;
        self.flush(socket)
    }

    /// Forgets the first `n` queued datagrams (queue after queue, the
    /// order they are sent in), freeing their slots.
    fn advance(&mut self, mut n: usize) {
        for queue in &mut self.queues {
            let k = n.min(queue.len());
            for q in queue.drain(..k) {
                self.free.push(q.slot);
                self.len -= 1;
            }
            n -= k;
        }
        if self.len == 0 {
            self.barrier = None;
        }
    }

    /// One send syscall over the head of the queues.
    #[cfg(target_os = "linux")]
    fn send_some(&mut self, socket: &UdpSocket) -> io::Result<Sent> {
        use std::os::fd::AsRawFd;
        let segment = self.segmentation && !std::mem::take(&mut self.unsegmented_once);
        self.sys
            .send(socket.as_raw_fd(), queue(&self.bufs, &self.queues), segment)
    }

    #[cfg(not(target_os = "linux"))]
    fn send_some(&mut self, socket: &UdpSocket) -> io::Result<Sent> {
        let datagrams = match queue(&self.bufs, &self.queues).next() {
            Some((to, data, _)) => portable::send(socket, to, data)?,
            None => 0,
        };
        Ok(Sent {
            datagrams,
            segmented: 0,
        })
    }

    fn slot_mut(&mut self, slot: usize) -> &mut [u8] {
        let start = slot * MAX_DATAGRAM;
        // The range is in bounds: `bufs` has `capacity + 1` slots and
        // `slot <= capacity`; the fallback keeps this from ever panicking.
        let end = (start + MAX_DATAGRAM).min(self.bufs.len());
        let start = start.min(end);
        &mut self.bufs[start..end]
    }

    #[cfg(test)]
    fn force_blocked(&mut self) {
        self.blocked = true;
    }
}

/// The [`Transmit`] the relay writes into: a [`SendBatch`] and its socket.
#[derive(Debug)]
pub struct Sender<'a> {
    batch: &'a mut SendBatch,
    socket: &'a UdpSocket,
}

impl Sender<'_> {
    /// The first `len` bytes of the buffer the last
    /// [`buffer`](Transmit::buffer) handed out, without queueing them: the
    /// caller sends them elsewhere (`crate::link_port`) and then calls
    /// [`forget`](Self::forget).
    pub fn peek(&self, len: usize) -> &[u8] {
        let batch = &*self.batch;
        let slot = if batch.overflow {
            batch.capacity()
        } else {
            batch
                .free
                .last()
                .copied()
                .unwrap_or_else(|| batch.capacity())
        };
        let start = slot * MAX_DATAGRAM;
        batch
            .bufs
            .get(start..start + len.min(MAX_DATAGRAM))
            .unwrap_or(&[])
    }

    /// Drops what the last [`buffer`](Transmit::buffer) handed out: it
    /// was sent elsewhere.
    pub fn forget(&mut self) {
        self.batch.overflow = false;
    }
}

impl Transmit for Sender<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        let batch = &mut *self.batch;
        if batch.free.is_empty() {
            // Full: make room if the socket takes it; if not, the next
            // datagram goes to the scratch slot and is dropped on commit.
            let _ = batch.flush(self.socket);
        }
        let slot = batch.free.last().copied();
        batch.overflow = slot.is_none();
        let slot = slot.unwrap_or_else(|| batch.capacity());
        batch.slot_mut(slot)
    }

    fn commit(&mut self, to: SocketAddr, len: usize) {
        let batch = &mut *self.batch;
        if batch.overflow {
            batch.overflow = false;
            batch.drops.count_drop(DropReason::QueueFull);
            if let Some(suppressed) = batch.log_full.allow() {
                tracing::warn!(%to, suppressed, "send queue full, datagram dropped");
            }
            return;
        }
        if len > MAX_DATAGRAM {
            // The core never asks this (it writes into a MAX_DATAGRAM
            // buffer); refuse rather than send garbage.
            batch.io.send_errors.add(1);
            return;
        }
        let Some(slot) = batch.free.pop() else {
            return;
        };
        let start = slot * MAX_DATAGRAM;
        let class = match batch.bufs.get(start..start + len) {
            Some(d) if batch.classes => steering_class(d),
            _ => Some(0),
        };
        let index = match (batch.barrier, class) {
            (Some(b), _) => b,
            (None, Some(c)) => c,
            (None, None) => {
                let b = batch
                    .queues
                    .iter()
                    .rposition(|q| !q.is_empty())
                    .unwrap_or(0);
                batch.barrier = Some(b);
                b
            }
        };
        if let Some(queue) = batch.queues.get_mut(index) {
            queue.push_back(Queued {
                to: for_socket(to, batch.ipv6_socket),
                len,
                slot,
                class: class.unwrap_or(CLASSES),
            });
            batch.len += 1;
        }
        if batch.free.is_empty() {
            let _ = batch.flush(self.socket);
        }
    }
}

/// The queued datagrams in sending order (queue after queue): each one's
/// destination, bytes and steering class. A free function so it can
/// borrow the buffers while the caller holds the syscall state mutably.
fn queue<'a>(
    bufs: &'a [u8],
    queues: &'a [VecDeque<Queued>; CLASSES],
) -> impl Iterator<Item = (SocketAddr, &'a [u8], usize)> + 'a {
    queues.iter().flatten().filter_map(move |q| {
        let start = q.slot * MAX_DATAGRAM;
        Some((q.to, bufs.get(start..start + q.len)?, q.class))
    })
}

/// A source address as the gateway sees it: v4-mapped IPv6 is IPv4.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// A destination as the socket needs it: IPv4 is v4-mapped on IPv6
/// sockets (dual stack), unchanged otherwise.
fn for_socket(to: SocketAddr, ipv6_socket: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(a) if ipv6_socket => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        SocketAddr::V4(_) | SocketAddr::V6(_) => to,
    }
}

/// `recvmmsg`/`sendmmsg` through `libc`.
#[cfg(target_os = "linux")]
mod mmsg {
    use std::io;
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::RawFd;
    use std::ptr;

    use trunk_core::transmit::MAX_DATAGRAM;

    use super::{unmap, Meta, Sent, CONTROL_WORDS};

    /// Most datagrams in one segmented send: the kernel's `UDP_MAX_SEGMENTS`
    /// was 64 before Linux 6.9.
    pub(super) const MAX_SEGMENTS: usize = 64;

    /// Most bytes in one segmented send: what fits one IPv6 or IPv4 packet
    /// of at most 64 KiB with its headers.
    pub(super) const MAX_SEGMENTED_BYTES: usize = 65_000;

    /// Words of one `UDP_SEGMENT` control message (`CMSG_SPACE(2)`).
    const SEGMENT_CONTROL_WORDS: usize = 3;

    /// Headers for `recvmmsg` or `sendmmsg`. They hold raw pointers into
    /// the batch's buffers, rewritten before every call, so moving the
    /// batch is fine.
    pub(super) struct Headers {
        addrs: Box<[libc::sockaddr_storage]>,
        iovecs: Box<[libc::iovec]>,
        hdrs: Box<[libc::mmsghdr]>,
        /// Datagrams each header of the last send carried (send side).
        segments: Box<[usize]>,
        /// One `UDP_SEGMENT` control message per header (send side).
        segment_control: Box<[u64]>,
    }

    /// The receive side's headers.
    pub(super) type RecvState = Headers;
    /// The send side's headers.
    pub(super) type SendState = Headers;

    impl std::fmt::Debug for Headers {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Headers({} slots)", self.hdrs.len())
        }
    }

    /// Points one header at its address slot and one buffer.
    fn point(
        hdr: &mut libc::mmsghdr,
        iov: &mut libc::iovec,
        addr: &mut libc::sockaddr_storage,
        base: *mut libc::c_void,
        len: usize,
        namelen: libc::socklen_t,
    ) {
        iov.iov_base = base;
        iov.iov_len = len;
        let h = &mut hdr.msg_hdr;
        h.msg_name = ptr::from_mut(addr).cast();
        h.msg_namelen = namelen;
        h.msg_iov = ptr::from_mut(iov);
        h.msg_iovlen = 1;
        h.msg_control = ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
        hdr.msg_len = 0;
    }

    /// Runs a syscall returning a count or -1, again after EINTR.
    fn retry_eintr(mut call: impl FnMut() -> libc::c_int) -> io::Result<usize> {
        loop {
            match usize::try_from(call()) {
                Ok(n) => return Ok(n),
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    impl Headers {
        pub(super) fn new(slots: usize) -> Self {
            Self {
                addrs: (0..slots).map(|_| zeroed_storage()).collect(),
                iovecs: (0..slots).map(|_| empty_iovec()).collect(),
                hdrs: (0..slots).map(|_| zeroed_mmsghdr()).collect(),
                segments: vec![0; slots].into_boxed_slice(),
                segment_control: vec![0; slots * SEGMENT_CONTROL_WORDS].into_boxed_slice(),
            }
        }

        /// Datagrams in the first message of the last send: more than one
        /// if it was a segmented run.
        pub(super) fn head_segments(&self) -> usize {
            self.segments.first().copied().unwrap_or(0)
        }

        /// One `recvmmsg` into `bufs`; with a non-empty `control`
        /// ([`CONTROL_WORDS`] per slot) it also reads kernel timestamps.
        pub(super) fn recv(
            &mut self,
            fd: RawFd,
            bufs: &mut [u8],
            meta: &mut [Meta],
            control: &mut [u64],
        ) -> io::Result<usize> {
            let slots = bufs
                .chunks_exact_mut(MAX_DATAGRAM)
                .zip(self.iovecs.iter_mut())
                .zip(self.addrs.iter_mut())
                .zip(self.hdrs.iter_mut());
            let mut controls = control.chunks_exact_mut(CONTROL_WORDS);
            let mut n = 0;
            for (((buf, iov), addr), hdr) in slots {
                point(
                    hdr,
                    iov,
                    addr,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    STORAGE_LEN,
                );
                if let Some(c) = controls.next() {
                    hdr.msg_hdr.msg_control = c.as_mut_ptr().cast();
                    hdr.msg_hdr.msg_controllen = mem::size_of_val(c) as _;
                }
                n += 1;
            }
            let n = n.min(meta.len());
            let hdrs = self.hdrs.as_mut_ptr();
            // SAFETY: the first `n` headers were just pointed at live
            // memory: each at its own sockaddr_storage (msg_namelen is its
            // size) and its own iovec, each iovec at its own
            // MAX_DATAGRAM-byte chunk of `bufs`, and, with timestamps, at
            // its own CONTROL_WORDS-word chunk of `control` (msg_controllen
            // is its size; u64 is aligned for cmsghdr). All of it is
            // borrowed mutably for this call and nothing else aliases it;
            // the kernel writes within those bounds only.
            let got =
                retry_eintr(|| unsafe { libc::recvmmsg(fd, hdrs, c_len(n), 0, ptr::null_mut()) })?;
            let results = self.hdrs.iter().zip(self.addrs.iter()).zip(meta.iter_mut());
            for ((hdr, addr), m) in results.take(got) {
                let from = read_sockaddr(addr, hdr.msg_hdr.msg_namelen);
                *m = Meta {
                    from: from.map_or(Meta::EMPTY.from, unmap),
                    len: hdr.msg_len as usize,
                    truncated: from.is_none() || hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                    stamp: timestamp(&hdr.msg_hdr),
                };
            }
            if got == 0 {
                // Not expected from a datagram socket, but keep the
                // contract: Ok means at least one datagram.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        }

        /// One `sendmmsg` of the first datagrams of `queue`: how many the
        /// kernel took. An error is the first message's.
        ///
        /// With `segment`, each run of datagrams of one steering class to
        /// one destination that are all as long as the first (the last may
        /// be shorter) goes as
        /// one message whose iovecs the kernel cuts back into those
        /// datagrams (`UDP_SEGMENT`): one trip through the network stack
        /// for the run. Datagrams stay in order either way.
        pub(super) fn send<'q>(
            &mut self,
            fd: RawFd,
            queue: impl Iterator<Item = (SocketAddr, &'q [u8], usize)>,
            segment: bool,
        ) -> io::Result<Sent> {
            let mut queue = queue.peekable();
            let slots = self.hdrs.len();
            let (mut messages, mut used) = (0, 0);
            while let Some((to, data, class)) = queue.next() {
                let (Some(hdr), Some(addr), Some(segments)) = (
                    self.hdrs.get_mut(messages),
                    self.addrs.get_mut(messages),
                    self.segments.get_mut(messages),
                ) else {
                    break;
                };
                let first = used;
                let Some(iov) = self.iovecs.get_mut(first) else {
                    break;
                };
                // The kernel only reads through these pointers (sendmmsg
                // takes the same iovec type as recvmmsg, hence `mut`).
                *iov = libc::iovec {
                    iov_base: data.as_ptr().cast_mut().cast(),
                    iov_len: data.len(),
                };
                used += 1;
                let size = data.len();
                let mut count = 1;
                let mut bytes = size;
                while segment && size > 0 && count < MAX_SEGMENTS && used < slots {
                    let next = match queue.peek() {
                        Some(&(next_to, next, next_class))
                            if next_to == to
                                && next_class == class
                                && !next.is_empty()
                                && next.len() <= size
                                && bytes + next.len() <= MAX_SEGMENTED_BYTES =>
                        {
                            next
                        }
                        _ => break,
                    };
                    let Some(iov) = self.iovecs.get_mut(used) else {
                        break;
                    };
                    *iov = libc::iovec {
                        iov_base: next.as_ptr().cast_mut().cast(),
                        iov_len: next.len(),
                    };
                    queue.next();
                    used += 1;
                    count += 1;
                    bytes += next.len();
                    if next.len() < size {
                        // Only the last segment may be shorter.
                        break;
                    }
                }
                let namelen = write_sockaddr(to, addr);
                let h = &mut hdr.msg_hdr;
                h.msg_name = ptr::from_mut(addr).cast();
                h.msg_namelen = namelen;
                h.msg_iov = self.iovecs[first..].as_mut_ptr();
                h.msg_iovlen = count as _;
                h.msg_control = ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                hdr.msg_len = 0;
                if count > 1 {
                    let control = self
                        .segment_control
                        .chunks_exact_mut(SEGMENT_CONTROL_WORDS)
                        .nth(messages);
                    if let Some(control) = control {
                        write_segment_size(h, control, size);
                    }
                }
                *segments = count;
                messages += 1;
                if used == slots {
                    break;
                }
            }
            if let Some(rest) = self.segments.get_mut(messages..) {
                // A failed call reads `head_segments`: never a stale count.
                rest.iter_mut().for_each(|s| *s = 0);
            }
            if messages == 0 {
                return Ok(Sent::default());
            }
            let hdrs = self.hdrs.as_mut_ptr();
            // SAFETY: the first `messages` headers were just pointed at
            // live memory: each at its own sockaddr_storage holding
            // `msg_namelen` initialised bytes, at `msg_iovlen` consecutive
            // iovecs over queued datagrams that `queue` borrows for this
            // call, and, when segmented, at its own control buffer holding
            // one complete UDP_SEGMENT message (`msg_controllen` bytes).
            // The kernel reads within those bounds only.
            let took = retry_eintr(|| unsafe { libc::sendmmsg(fd, hdrs, c_len(messages), 0) })?;
            let mut sent = Sent::default();
            for &count in self.segments.iter().take(took) {
                sent.datagrams += count;
                if count > 1 {
                    sent.segmented += count;
                }
            }
            Ok(sent)
        }
    }

    /// Puts one `UDP_SEGMENT` control message saying `size` into
    /// `control` and points `h` at it.
    fn write_segment_size(h: &mut libc::msghdr, control: &mut [u64], size: usize) {
        let Ok(size) = u16::try_from(size) else {
            return;
        };
        h.msg_control = control.as_mut_ptr().cast();
        h.msg_controllen = mem::size_of_val(control) as _;
        // SAFETY: `control` is SEGMENT_CONTROL_WORDS u64s, which is at
        // least CMSG_SPACE(2) bytes and aligned for cmsghdr, and `h` points
        // at it with that length, so CMSG_FIRSTHDR is non-null and the
        // header and its two data bytes lie inside `control`.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(h);
            if c.is_null() {
                h.msg_control = ptr::null_mut();
                h.msg_controllen = 0;
                return;
            }
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(2) as _;
            ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
            h.msg_controllen = libc::CMSG_SPACE(2) as _;
        }
    }

    /// The `SCM_TIMESTAMPNS` the kernel put in `h`'s control messages.
    fn timestamp(h: &libc::msghdr) -> Option<std::time::Duration> {
        if h.msg_control.is_null() || h.msg_flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        // SAFETY: `h` came back from recvmmsg with msg_control pointing at
        // the slot's control buffer and msg_controllen set by the kernel to
        // the bytes it wrote there; the CMSG_* helpers stay within them.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    let secs = u64::try_from(ts.tv_sec).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec).ok()?;
                    return Some(std::time::Duration::new(secs, nanos));
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    const STORAGE_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as _;

    fn c_len(n: usize) -> libc::c_uint {
        libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX)
    }

    fn zeroed_storage() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain integers; all zeroes is a valid
        // (AF_UNSPEC) value.
        unsafe { mem::zeroed() }
    }

    fn zeroed_mmsghdr() -> libc::mmsghdr {
        // SAFETY: mmsghdr is integers and raw pointers (and, on some libcs,
        // private padding); all zeroes is valid: null pointers, no iovecs.
        unsafe { mem::zeroed() }
    }

    fn empty_iovec() -> libc::iovec {
        libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        }
    }

    /// Writes `addr` into `storage` and returns its length.
    fn write_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is large enough and aligned for
                // every socket address type, sockaddr_in included.
                unsafe { ptr::write(ptr::from_mut(storage).cast::<libc::sockaddr_in>(), sin) };
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { ptr::write(ptr::from_mut(storage).cast::<libc::sockaddr_in6>(), sin6) };
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The address the kernel wrote into `storage` (`len` bytes).
    fn read_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the kernel wrote a sockaddr_in,
                // and sockaddr_storage is aligned for it.
                let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the kernel wrote a sockaddr_in6.
                let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(
                    SocketAddrV6::new(
                        ip,
                        u16::from_be(sin6.sin6_port),
                        u32::from_be(sin6.sin6_flowinfo),
                        sin6.sin6_scope_id,
                    )
                    .into(),
                )
            }
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sockaddr_round_trip() {
            for s in ["192.0.2.7:4569", "[2001:db8::1]:65535", "[fe80::1%3]:1"] {
                let a: SocketAddr = s.parse().unwrap();
                let mut st = zeroed_storage();
                let len = write_sockaddr(a, &mut st);
                assert_eq!(read_sockaddr(&st, len), Some(a));
                assert_eq!(read_sockaddr(&st, 2), None);
            }
            assert_eq!(read_sockaddr(&zeroed_storage(), STORAGE_LEN), None);
        }
    }
}

/// `recv_from`/`send_to` one datagram at a time, for systems without
/// `recvmmsg`/`sendmmsg` (built on Linux too, for its tests).
#[cfg(any(not(target_os = "linux"), test))]
mod portable {
    use std::io;
    use std::net::SocketAddr;

    use mio::net::UdpSocket;
    use trunk_core::transmit::MAX_DATAGRAM;

    use super::{unmap, Meta};

    /// Receives into consecutive slots until the socket is empty or the
    /// slots are used up. Truncation cannot be seen through `recv_from`;
    /// a datagram of exactly [`MAX_DATAGRAM`] bytes may have been cut.
    pub(super) fn recv(
        socket: &UdpSocket,
        bufs: &mut [u8],
        meta: &mut [Meta],
    ) -> io::Result<usize> {
        let mut n = 0;
        for (buf, m) in bufs.chunks_exact_mut(MAX_DATAGRAM).zip(meta.iter_mut()) {
            let (len, from) = loop {
                match socket.recv_from(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
                    r => break r?,
                }
            };
            *m = Meta {
                from: unmap(from),
                len,
                truncated: false,
                stamp: None,
            };
            n += 1;
        }
        Ok(n)
    }

    /// Sends one datagram: `Ok(1)` once the kernel took it.
    pub(super) fn send(socket: &UdpSocket, to: SocketAddr, data: &[u8]) -> io::Result<usize> {
        loop {
            match socket.send_to(data, to) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map(|_| 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::socket;

    fn bind(addr: &str) -> UdpSocket {
        socket::bind(addr.parse().unwrap(), 1 << 20).unwrap().socket
    }

    fn batch_for(sock: &UdpSocket, slots: usize) -> (SendBatch, Arc<Counters>, Arc<IoCounters>) {
        let drops = Arc::new(Counters::default());
        let io = Arc::new(IoCounters::default());
        let b = SendBatch::new(slots, sock.local_addr().unwrap(), drops.clone(), io.clone());
        (b, drops, io)
    }

    /// Waits until `sock` has something to read (a few ms on loopback).
    fn recv_some(batch: &mut RecvBatch, sock: &UdpSocket) -> usize {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match batch.recv(sock) {
                Ok(n) => return n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_timestamps_when_asked_for() {
        let rx = bind("127.0.0.1:0");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        enable_kernel_timestamps(&rx).unwrap();
        let before = SystemTime::now();
        for i in 0..3u8 {
            tx.send_to(&[i; 40], to).unwrap();
        }
        let mut stamped = RecvBatch::with_kernel_timestamps(8);
        let mut got = 0;
        while got < 3 {
            let n = recv_some(&mut stamped, &rx);
            for i in 0..n {
                let d = stamped.get_mut(i).unwrap();
                assert_eq!(d.data, &[got as u8; 40][..]);
                let t = d.kernel_time.expect("a kernel timestamp");
                // Queued after the first send and before it is read.
                assert!(t >= before - Duration::from_millis(1), "{t:?} < {before:?}");
                assert!(t <= SystemTime::now());
                got += 1;
            }
        }
        // A plain batch on the same socket reads no timestamps.
        tx.send_to(&[9; 10], to).unwrap();
        let mut plain = RecvBatch::new(8);
        assert_eq!(recv_some(&mut plain, &rx), 1);
        assert_eq!(plain.get_mut(0).unwrap().kernel_time, None);
        // And a stamped batch on a socket without the option gets none.
        let quiet = bind("127.0.0.1:0");
        tx.send_to(&[7; 10], quiet.local_addr().unwrap()).unwrap();
        assert_eq!(recv_some(&mut stamped, &quiet), 1);
        assert_eq!(stamped.get_mut(0).unwrap().kernel_time, None);
    }

    /// Datagram `i` of the test stream: its index, then a pattern; sizes
    /// vary from 4 bytes to the largest datagram.
    fn payload(i: usize, buf: &mut [u8]) -> usize {
        let len = if i % 100 == 99 {
            MAX_DATAGRAM
        } else {
            6 + (i * 37) % 1400
        };
        // One call's mini frames: one steering class, so one order.
        buf[..2].copy_from_slice(&1u16.to_be_bytes());
        buf[2..6].copy_from_slice(&(i as u32).to_be_bytes());
        for (k, b) in buf[6..len].iter_mut().enumerate() {
            *b = (i + k) as u8;
        }
        len
    }

    /// Receives until `want` datagrams came (or a generous deadline).
    fn recv_n(rx: &UdpSocket, batch: &mut RecvBatch, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < want && Instant::now() < deadline {
            match batch.recv(rx) {
                Ok(n) => {
                    for i in 0..n {
                        let d = batch.get_mut(i).unwrap();
                        assert!(!d.truncated);
                        got.push((d.from, d.data.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        got
    }

    #[test]
    fn thousand_datagrams_through_mmsg_on_loopback() {
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (mut send, drops, io) = batch_for(&tx, SEND_SLOTS);
        let mut recv = RecvBatch::new(RECV_SLOTS);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        // In chunks, so the receiver's buffer never overflows on a machine
        // with a small rmem_max.
        for chunk in 0..10 {
            let mut out = send.sender(&tx);
            for i in chunk * 100..(chunk + 1) * 100 {
                let buf = out.buffer();
                let len = payload(i, buf);
                expected.push(buf[..len].to_vec());
                out.commit(to, len);
            }
            assert_eq!(send.flush(&tx), Flush::Done);
            got.extend(recv_n(&rx, &mut recv, 100));
        }
        assert_eq!(got.len(), 1000);
        let from = tx.local_addr().unwrap();
        for (i, ((src, bytes), want)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(*src, from, "datagram {i}");
            assert_eq!(bytes, want, "datagram {i}");
        }
        let io = io.snapshot();
        assert_eq!(io.sent_datagrams, 1000);
        assert!(io.send_syscalls <= 20, "{io:?}");
        assert_eq!(drops.snapshot().total_drops(), 0);
    }

    /// Runs of equal mini frames of 8 calls to one receiver, cut by a
    /// shorter one, a longer one and a datagram to another receiver: each
    /// receiver gets exactly its datagrams, each call's in order, whether
    /// the runs went segmented or not.
    fn mixed_runs(segmentation: bool) -> IoSnapshot {
        let tx = bind("127.0.0.1:0");
        let (rx_a, rx_b) = (bind("127.0.0.1:0"), bind("127.0.0.1:0"));
        let (a, b) = (rx_a.local_addr().unwrap(), rx_b.local_addr().unwrap());
        let (mut send, drops, io) = batch_for(&tx, SEND_SLOTS);
        send.set_segmentation(segmentation);
        let mut recv = RecvBatch::new(RECV_SLOTS);
        let (mut want_a, mut want_b) = (Vec::new(), Vec::new());
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        for round in 0..4u32 {
            let mut out = send.sender(&tx);
            // 150 minis (more than one segmented send holds), then one
            // shorter, one longer, one elsewhere, and 3 more minis.
            let sizes = (0..150).map(|_| 164).chain([100, 1240, 164, 164, 164, 164]);
            for (i, len) in sizes.enumerate() {
                let to = if i == 152 { b } else { a };
                let call = 1 + (i as u16 % 8);
                let buf = out.buffer();
                buf[..2].copy_from_slice(&call.to_be_bytes());
                buf[2..6].copy_from_slice(&(round * 1000 + i as u32).to_be_bytes());
                buf[6..len].fill(i as u8);
                let data = buf[..len].to_vec();
                out.commit(to, len);
                if to == a {
                    want_a.push(data);
                } else {
                    want_b.push(data);
                }
            }
            assert_eq!(send.flush(&tx), Flush::Done);
            got_a.extend(recv_n(&rx_a, &mut recv, 155).into_iter().map(|(_, d)| d));
            got_b.extend(recv_n(&rx_b, &mut recv, 1).into_iter().map(|(_, d)| d));
        }
        // Each call's datagrams in the order sent; calls may interleave.
        let per_call = |v: &[Vec<u8>]| {
            let mut calls: std::collections::BTreeMap<[u8; 2], Vec<Vec<u8>>> = Default::default();
            for d in v {
                calls.entry([d[0], d[1]]).or_default().push(d.clone());
            }
            calls
        };
        assert_eq!(per_call(&got_a), per_call(&want_a));
        assert_eq!(got_b, want_b);
        assert_eq!(drops.snapshot().total_drops(), 0);
        let io = io.snapshot();
        assert_eq!((io.sent_datagrams, io.send_errors), (4 * 156, 0));
        io
    }

    #[test]
    fn segmented_sends_deliver_each_calls_datagrams_in_order() {
        let io = mixed_runs(true);
        // The 150 minis of a round fall in 4 steering classes of 37 or 38
        // (calls 4 and 8, 1 and 5, ...), each sent as one segmented run.
        assert!(io.sent_segmented >= 4 * 148, "{io:?}");
        assert!(io.send_syscalls <= 4 * 4, "{io:?}");
        let plain = mixed_runs(false);
        assert_eq!(plain.sent_segmented, 0, "{plain:?}");
    }

    #[test]
    fn a_segmented_send_holds_one_steering_class() {
        // Minis of calls 1..=8 to one receiver, then trunk frames whose
        // first entries are those calls: one segmented send per class.
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (mut send, _, io) = batch_for(&tx, SEND_SLOTS);
        let mut out = send.sender(&tx);
        for i in 0..64u16 {
            let mut mini = [0u8; 164];
            mini[..2].copy_from_slice(&(1 + i % 8).to_be_bytes());
            out.send(to, &mini);
        }
        assert_eq!(send.flush(&tx), Flush::Done);
        let got = recv_n(&rx, &mut RecvBatch::new(RECV_SLOTS), 64);
        assert_eq!(got.len(), 64);
        // Received in class order: every class's datagrams together.
        let classes: Vec<u16> = got
            .iter()
            .map(|(_, d)| crate::steering::steering_call_number(d) % 4)
            .collect();
        let mut changes = classes.windows(2).filter(|w| w[0] != w[1]).count();
        changes += 1;
        assert_eq!(changes, 4, "{classes:?}");
        let io = io.snapshot();
        assert_eq!((io.send_syscalls, io.sent_segmented), (1, 64), "{io:?}");
    }

    #[test]
    fn a_trunk_frame_spanning_classes_keeps_its_place_in_the_order() {
        use trunk_core::wire::{CallNumber, Timestamp16, TrunkFrameBuilder, TrunkLayout};
        // Toward a PBX one trunk frame carries every call: nothing queued
        // before it may leave after it, nothing queued after it before it,
        // whatever the classes, also across a blocked socket.
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (mut send, _, _) = batch_for(&tx, SEND_SLOTS);
        let mini = |call: u16, tag: u8| {
            let mut m = vec![tag; 24];
            m[..2].copy_from_slice(&call.to_be_bytes());
            m
        };
        let mut trunk = vec![0; 1400];
        let mut b = TrunkFrameBuilder::new(&mut trunk, 1400, TrunkLayout::Timestamps, 40).unwrap();
        for call in [3u16, 2, 1] {
            b.push(CallNumber::new(call).unwrap(), Timestamp16(40), &[9; 20])
                .unwrap();
        }
        let len = b.len();
        trunk.truncate(len);
        assert_eq!(steering_class(&trunk), None);
        send.force_blocked();
        let mut out = send.sender(&tx);
        for call in [1u16, 2, 3, 4] {
            out.send(to, &mini(call, 1));
        }
        out.send(to, &trunk);
        for call in [4u16, 3, 2, 1] {
            out.send(to, &mini(call, 2));
        }
        assert_eq!(send.on_writable(&tx), Flush::Done);
        let got = recv_n(&rx, &mut RecvBatch::new(RECV_SLOTS), 9);
        let at = got.iter().position(|(_, d)| *d == trunk).unwrap();
        assert_eq!(at, 4, "four minis before it");
        assert!(got[..4].iter().all(|(_, d)| d.len() == 24 && d[2] == 1));
        assert!(got[5..].iter().all(|(_, d)| d.len() == 24 && d[2] == 2));
        // The batch is empty again: classes apply anew.
        assert_eq!(send.barrier, None);
    }

    #[test]
    fn a_refused_datagram_is_dropped_alone() {
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (mut send, _, io) = batch_for(&tx, 8);
        let mut out = send.sender(&tx);
        out.send(to, b"one");
        // An IPv6 destination on an IPv4 socket: the kernel refuses it.
        out.send("[::1]:9".parse().unwrap(), b"bad");
        out.send(to, b"two");
        assert_eq!(send.flush(&tx), Flush::Done);
        let got = recv_n(&rx, &mut RecvBatch::new(4), 2);
        let bodies: Vec<_> = got.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(bodies, [b"one".as_slice(), b"two"]);
        let io = io.snapshot();
        assert_eq!((io.send_errors, io.sent_datagrams), (1, 2));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_growing() {
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (mut send, drops, _) = batch_for(&tx, 4);
        send.force_blocked();
        let mut out = send.sender(&tx);
        for i in 0..6u8 {
            out.send(to, &[i]);
        }
        assert_eq!(send.pending(), 4);
        assert_eq!(send.flush(&tx), Flush::Blocked);
        assert_eq!(drops.snapshot().drops(DropReason::QueueFull), 2);
        assert_eq!(send.on_writable(&tx), Flush::Done);
        let got = recv_n(&rx, &mut RecvBatch::new(8), 4);
        let bodies: Vec<_> = got.iter().map(|(_, b)| b[0]).collect();
        assert_eq!(bodies, [0, 1, 2, 3]);
        // The ring wraps: fill it again past the old head.
        let mut out = send.sender(&tx);
        for i in 10..19u8 {
            out.send(to, &[i]);
        }
        assert_eq!(send.flush(&tx), Flush::Done);
        let got = recv_n(&rx, &mut RecvBatch::new(16), 9);
        let bodies: Vec<_> = got.iter().map(|(_, b)| b[0]).collect();
        assert_eq!(bodies, (10..19).collect::<Vec<_>>());
    }

    #[test]
    fn oversize_datagrams_are_marked_truncated() {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = bind("127.0.0.1:0");
        tx.send_to(&[7; MAX_DATAGRAM + 10], rx.local_addr().unwrap())
            .unwrap();
        tx.send_to(&[8; 3], rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(4);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.len() < 2 && Instant::now() < deadline {
            if let Ok(n) = batch.recv(&rx) {
                for i in 0..n {
                    let d = batch.get_mut(i).unwrap();
                    seen.push((d.truncated, d.data.len()));
                }
            }
        }
        #[cfg(target_os = "linux")]
        assert_eq!(seen, [(true, MAX_DATAGRAM), (false, 3)]);
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn dual_stack_sockets_speak_plain_ipv4() {
        // Skip where the sandbox has no IPv6.
        let Ok(v6) = socket::bind("[::]:0".parse().unwrap(), 1 << 20) else {
            return;
        };
        let v6 = v6.socket;
        let port = v6.local_addr().unwrap().port();
        let v4 = bind("127.0.0.1:0");
        let v4_addr = v4.local_addr().unwrap();
        v4.send_to(b"hi", SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        let got = recv_n(&v6, &mut RecvBatch::new(2), 1);
        assert_eq!(got, [(v4_addr, b"hi".to_vec())]);
        let (mut send, _, _) = batch_for(&v6, 2);
        send.sender(&v6).send(v4_addr, b"ho");
        assert_eq!(send.flush(&v6), Flush::Done);
        let got = recv_n(&v4, &mut RecvBatch::new(2), 1);
        assert_eq!(
            got,
            [(SocketAddr::from(([127, 0, 0, 1], port)), b"ho".to_vec())]
        );
    }

    #[test]
    fn portable_fallback_round_trip() {
        let tx = bind("127.0.0.1:0");
        let rx = bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        for i in 0..5u8 {
            assert_eq!(portable::send(&tx, to, &[i; 9]).unwrap(), 1);
        }
        let mut bufs = vec![0; 8 * MAX_DATAGRAM];
        let mut meta = vec![Meta::EMPTY; 8];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 5 && Instant::now() < deadline {
            if let Ok(n) = portable::recv(&rx, &mut bufs, &mut meta) {
                for (k, m) in meta[..n].iter().enumerate() {
                    assert_eq!(m.from, tx.local_addr().unwrap());
                    got.push(bufs[k * MAX_DATAGRAM..][..m.len].to_vec());
                }
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 9]).collect::<Vec<_>>());
        assert!(portable::recv(&rx, &mut bufs, &mut meta).is_err());
    }
}
