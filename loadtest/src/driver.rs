//! Runs one [`Endpoint`] on a real UDP socket, on its own thread.
//!
//! The thread sleeps in `epoll` (through mio) until the socket is readable,
//! a command comes or the endpoint's next timer is due. Each wakeup drains
//! the socket in `recvmmsg` batches (up to a bounded budget), runs the
//! endpoint's timers once if they are due, and sends everything produced
//! with `sendmmsg` ([`iax2_gateway::batch`]). Timers are run at most once
//! per [`DriverConfig::wake_interval`], so with hundreds of calls whose
//! voice timers are spread over the packet interval the thread wakes a
//! bounded number of times per second, each time for a batch of calls.
//!
//! Other threads talk to the thread through a [`DriverHandle`]: originate
//! calls, hang up, read statistics and events, or run any closure on the
//! endpoint. Buffers are allocated once, so the steady state allocates
//! nothing per packet beyond what the endpoint does.
//!
//! All drivers that measure latency against each other must share one
//! clock origin ([`DriverConfig::origin`]): the endpoint's voice payload
//! carries the send instant, and the receiver subtracts it from its own.
//! The receiving instant is the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`) where the kernel gives one, so a thread that is late
//! to read its socket does not count its own delay as the network's.
//!
//! # One PBX on several threads
//!
//! [`spawn_group`] plays one PBX (one address) with several endpoints, the
//! shards of [`crate::endpoint::shard`], each on its own thread and its own
//! `SO_REUSEPORT` socket bound to the same address. The gateway's steering
//! program spreads incoming datagrams over the sockets by the sender's call
//! number; a datagram that lands on a shard that does not own its call is
//! handed to the owner in batches over a channel (the owner is known from
//! our call number in full frames, and from the shared owner table for
//! mini frames); a meta trunk frame goes to every shard, each taking its
//! own entries. Sends need no handoff: every socket sends from the
//! PBX's address.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use iax2_gateway::batch::{Flush, IoCounters, RecvBatch, SendBatch, RECV_SLOTS};
use mio::{Events, Interest, Poll, Token, Waker};
use trunk_core::relay::{Counters, DropReason};
use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};

use crate::endpoint::{CallId, CallOwners, Endpoint, EndpointStats, Event, Measurements, Shard};

/// How the driver runs.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// The wall-clock instant that maps to `Instant::ZERO`; share it
    /// between drivers whose latencies are compared.
    pub origin: std::time::Instant,
    /// SO_RCVBUF and SO_SNDBUF to ask for (the kernel may cap them).
    pub socket_buffer: usize,
    /// Longest sleep before commands and timers are checked again.
    pub poll_interval: Duration,
    /// Events kept for [`DriverHandle::take_events`] before the oldest are
    /// dropped.
    pub max_events: usize,
    /// Shortest time between two wakeups of the thread: datagrams and
    /// timers that come due meanwhile are handled together, at most this
    /// late. Zero wakes for every one.
    pub wake_interval: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
            socket_buffer: 4 << 20,
            poll_interval: Duration::from_millis(1),
            max_events: 1 << 20,
            wake_interval: Duration::from_micros(500),
        }
    }
}

/// Datagrams received per wakeup before timers and sends get their turn.
const RECV_BUDGET: usize = 16 * RECV_SLOTS;

/// Datagrams queued for one `sendmmsg`; more are sent as the queue fills.
const SEND_SLOTS: usize = 512;

/// How long a send may wait for a full socket buffer to drain before the
/// datagrams that do not fit are dropped (and counted).
const SEND_RETRY: Duration = Duration::from_millis(2);

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Datagrams handed between two shards in one batch, at most.
const HANDOFF_SLOTS: usize = 256;
/// Batches waiting for one shard, at most; past it handoffs are dropped
/// and counted.
const HANDOFF_QUEUE: usize = 64;

/// Datagrams received by one shard for another, with their arrival time.
#[derive(Debug)]
struct Handoff {
    /// The shard that filled it, which gets it back when it is empty.
    origin: usize,
    data: Vec<u8>,
    /// (source, arrival, offset in `data`, length).
    items: Vec<(SocketAddr, Instant, usize, usize)>,
}

impl Handoff {
    fn new(origin: usize) -> Self {
        Self {
            origin,
            data: Vec::with_capacity(HANDOFF_SLOTS * 256),
            items: Vec::with_capacity(HANDOFF_SLOTS),
        }
    }
}

/// Where a received datagram goes, for a shard of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Here,
    To(usize),
    Everyone,
}

/// The shard that owns `datagram`'s call (see the module documentation).
fn route(datagram: &[u8], shard: &Shard) -> Route {
    let here = usize::from(shard.index);
    let word = |i: usize| {
        datagram
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (Some(first), Some(second)) = (word(0), word(2)) else {
        return Route::Here;
    };
    let owner = if first == 0 {
        // Meta frame: trunk frames carry many calls; video ones are ignored.
        return if second & 0x8000 == 0 {
            Route::Everyone
        } else {
            Route::Here
        };
    } else if first & 0x8000 != 0 {
        // Full frame: our call number, unless this starts a transaction;
        // then the shard the steering program picks by the sender's call
        // number, so that a retransmission or a NEW re-sent with its call
        // token meets the same shard even when it arrived inside a
        // segmented send (UDP GSO), which the kernel steers whole.
        match second & 0x7fff {
            0 => usize::from((first & 0x7fff) % shard.count),
            ours => usize::from(shard.owner_of_local(ours)),
        }
    } else {
        shard.owners.owner(first).map_or(here, usize::from)
    };
    if owner == here {
        Route::Here
    } else {
        Route::To(owner)
    }
}

/// A shard's link to the others.
struct Link {
    shard: Shard,
    /// Each shard's inbox and waker, this one's included.
    peers: Arc<[(crossbeam_channel::Sender<Handoff>, Arc<Waker>)]>,
    inbox: crossbeam_channel::Receiver<Handoff>,
    /// Empty batches of this shard, returned by their consumers.
    free: (
        crossbeam_channel::Sender<Handoff>,
        crossbeam_channel::Receiver<Handoff>,
    ),
    /// Every shard's free-batch sender, to return batches to their origin.
    returns: Arc<[crossbeam_channel::Sender<Handoff>]>,
    /// Batches being filled, by target shard.
    open: Vec<Option<Handoff>>,
    counters: Arc<HandoffCounters>,
    /// Datagrams forwarded and trunk frames copied since the counters were
    /// last published: every shard shares them, so they are not touched
    /// per datagram.
    forwarded: u64,
    broadcast: u64,
}

/// Handoff counters of a shard group.
#[derive(Debug, Default)]
pub struct HandoffCounters {
    forwarded: AtomicU64,
    broadcast: AtomicU64,
    dropped: AtomicU64,
}

impl HandoffCounters {
    /// (datagrams forwarded to their owner, trunk frames copied to every
    /// shard, datagrams dropped because the owner's queue was full).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.broadcast.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Link {
    fn index(&self) -> usize {
        usize::from(self.shard.index)
    }

    /// Queues a copy of `data` for shard `to`.
    fn push(&mut self, to: usize, from: SocketAddr, now: Instant, data: &[u8]) {
        let origin = self.index();
        let Some(slot) = self.open.get_mut(to) else {
            return;
        };
        let batch = slot.get_or_insert_with(|| {
            self.free
                .1
                .try_recv()
                .unwrap_or_else(|_| Handoff::new(origin))
        });
        let at = batch.data.len();
        batch.data.extend_from_slice(data);
        batch.items.push((from, now, at, data.len()));
        if batch.items.len() >= HANDOFF_SLOTS {
            self.send(to, true);
        }
    }

    /// Sends the open batch for shard `to`, waking it if `wake`.
    ///
    /// A batch that is not full does not wake its shard: a wakeup costs
    /// more than handling a few datagrams, and the shard reads its inbox
    /// on every turn of its loop, at least every poll interval. The
    /// datagrams carry their arrival time, so the wait does not show in
    /// the latency measured.
    fn send(&mut self, to: usize, wake: bool) {
        let Some(batch) = self.open.get_mut(to).and_then(Option::take) else {
            return;
        };
        let Some((tx, waker)) = self.peers.get(to) else {
            return;
        };
        let n = batch.items.len() as u64;
        match tx.try_send(batch) {
            Ok(()) => {
                if wake {
                    let _ = waker.wake();
                }
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                let mut batch = e.into_inner();
                batch.data.clear();
                batch.items.clear();
                let _ = self.free.0.try_send(batch);
            }
        }
    }

    /// Sends every open batch and publishes the counters.
    fn send_all(&mut self) {
        for to in 0..self.open.len() {
            self.send(to, false);
        }
        let c = &self.counters;
        for (n, counter) in [
            (std::mem::take(&mut self.forwarded), &c.forwarded),
            (std::mem::take(&mut self.broadcast), &c.broadcast),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Hands `data` on if another shard owns it; whether it stays here.
    fn dispatch(&mut self, from: SocketAddr, now: Instant, data: &[u8]) -> bool {
        match route(data, &self.shard) {
            Route::Here => true,
            Route::To(to) => {
                self.forwarded += 1;
                self.push(to, from, now, data);
                false
            }
            Route::Everyone => {
                self.broadcast += 1;
                let here = self.index();
                for to in (0..self.open.len()).filter(|&i| i != here) {
                    self.push(to, from, now, data);
                }
                true
            }
        }
    }
}

/// The outgoing side: a bounded `sendmmsg` queue and its counters.
#[derive(Debug)]
struct Outbox {
    batch: SendBatch,
    drops: Arc<Counters>,
    io: Arc<IoCounters>,
    /// Datagrams still queued when the thread stopped.
    abandoned: u64,
}

impl Outbox {
    fn new(local: SocketAddr) -> Self {
        let drops = Arc::new(Counters::default());
        let io = Arc::new(IoCounters::default());
        Self {
            batch: SendBatch::new(SEND_SLOTS, local, drops.clone(), io.clone()),
            drops,
            io,
            abandoned: 0,
        }
    }

    /// Sends everything queued. A full socket buffer is retried for up to
    /// [`SEND_RETRY`]; what is still queued then waits for the next flush.
    fn flush(&mut self, socket: &mio::net::UdpSocket) -> Flush {
        let mut r = if self.batch.is_blocked() {
            self.batch.on_writable(socket)
        } else {
            self.batch.flush(socket)
        };
        if r == Flush::Blocked {
            let deadline = std::time::Instant::now() + SEND_RETRY;
            while r == Flush::Blocked && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(50));
                r = self.batch.on_writable(socket);
            }
        }
        r
    }

    /// A [`Transmit`] over this queue and `socket`.
    fn sender<'a>(
        &'a mut self,
        socket: &'a mio::net::UdpSocket,
        scratch: &'a mut [u8; MAX_DATAGRAM],
    ) -> Out<'a> {
        Out {
            outbox: self,
            socket,
            scratch,
        }
    }

    fn stats(&self, stats: &mut DriverStats) {
        let io = self.io.snapshot();
        stats.sent = io.sent_datagrams;
        stats.send_errors =
            io.send_errors + self.drops.snapshot().drops(DropReason::QueueFull) + self.abandoned;
    }
}

/// The endpoint's [`Transmit`]: datagrams are written into a scratch
/// buffer and queued on commit; a full queue is flushed first.
struct Out<'a> {
    outbox: &'a mut Outbox,
    socket: &'a mio::net::UdpSocket,
    scratch: &'a mut [u8; MAX_DATAGRAM],
}

impl Transmit for Out<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.scratch[..]
    }

    fn commit(&mut self, to: SocketAddr, len: usize) {
        let Some(datagram) = self.scratch.get(..len) else {
            self.outbox.drops.count_drop(DropReason::QueueFull);
            return;
        };
        if self.outbox.batch.pending() >= self.outbox.batch.capacity() {
            // Full: make room, waiting briefly if the socket is. If it
            // stays full the queue drops this datagram and counts it.
            let _ = self.outbox.flush(self.socket);
        }
        self.outbox.batch.sender(self.socket).send(to, datagram);
    }
}

/// A job for the driver thread: runs with the endpoint, the current
/// instant and the outgoing batch.
type Job = Box<dyn FnOnce(&mut Endpoint, Instant, &mut dyn Transmit, &mut Vec<Event>) + Send>;

enum Command {
    Run(Job),
    Stop,
}

/// Counters of the driver itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams received from the socket.
    pub received: u64,
    /// Datagrams the kernel accepted for sending.
    pub sent: u64,
    /// Datagrams not sent: refused by the kernel, or dropped because the
    /// socket stayed full.
    pub send_errors: u64,
    /// Receive errors other than "nothing to read".
    pub recv_errors: u64,
    /// Events dropped because nobody took them.
    pub events_dropped: u64,
    /// Datagrams other shards of the group received for this one.
    pub handed_in: u64,
}

impl DriverStats {
    /// Adds another driver's counters.
    pub fn add(&mut self, o: &Self) {
        self.received += o.received;
        self.sent += o.sent;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.events_dropped += o.events_dropped;
        self.handed_in += o.handed_in;
    }
}

/// Controls a driver thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct DriverHandle {
    local: SocketAddr,
    origin: std::time::Instant,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<(Endpoint, DriverStats)>>,
}

/// Runs `endpoint` on `socket` in a new thread.
pub fn spawn_udp(
    endpoint: Endpoint,
    socket: UdpSocket,
    cfg: DriverConfig,
) -> io::Result<DriverHandle> {
    let sock = socket2::SockRef::from(&socket);
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = sock.set_recv_buffer_size(cfg.socket_buffer);
    let _ = sock.set_send_buffer_size(cfg.socket_buffer);
    socket.set_nonblocking(true)?;
    // Without them arrival is when the thread reads: less exact, still right.
    let _ = iax2_gateway::batch::enable_kernel_timestamps(&socket);
    let local = socket.local_addr()?;
    let mut socket = mio::net::UdpSocket::from_std(socket);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("iax2-ep-{}", local.port()))
        .spawn(move || run(endpoint, &socket, poll, &rx, cfg, None))?;
    Ok(DriverHandle {
        local,
        origin: cfg.origin,
        commands: tx,
        thread: Some(thread),
    })
}

/// Plays one PBX at `addr` with `shards` endpoints on as many threads
/// (see the module documentation). `make` builds each shard's endpoint
/// from its [`Shard`], which it must put in the endpoint's configuration.
/// Port 0 picks a free port for all of them.
pub fn spawn_group(
    addr: SocketAddr,
    shards: usize,
    cfg: DriverConfig,
    mut make: impl FnMut(Shard) -> Endpoint,
) -> io::Result<DriverGroup> {
    let count = shards.clamp(1, 255);
    let owners = Arc::new(CallOwners::default());
    let first = iax2_gateway::socket::bind(addr, cfg.socket_buffer)?;
    let addr = first.socket.local_addr()?;
    if count > 1 {
        iax2_gateway::steering::attach(&first.socket, count)?;
    }
    let mut sockets = vec![first.socket];
    for _ in 1..count {
        sockets.push(iax2_gateway::socket::bind(addr, cfg.socket_buffer)?.socket);
    }
    for socket in &sockets {
        // Without them arrival is when the thread reads: less exact, still right.
        let _ = iax2_gateway::batch::enable_kernel_timestamps(socket);
    }
    let mut polls = Vec::with_capacity(count);
    let mut peers = Vec::with_capacity(count);
    let mut inboxes = Vec::with_capacity(count);
    let mut frees = Vec::with_capacity(count);
    for socket in &mut sockets {
        let poll = Poll::new()?;
        poll.registry()
            .register(socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(HANDOFF_QUEUE);
        peers.push((tx, waker));
        inboxes.push(rx);
        frees.push(crossbeam_channel::bounded(HANDOFF_QUEUE * count));
        polls.push(poll);
    }
    let peers: Arc<[_]> = peers.into();
    let returns: Arc<[_]> = frees.iter().map(|f| f.0.clone()).collect();
    let counters = Arc::new(HandoffCounters::default());
    let mut handles = Vec::with_capacity(count);
    for (i, ((socket, poll), (inbox, free))) in sockets
        .into_iter()
        .zip(polls)
        .zip(inboxes.into_iter().zip(frees))
        .enumerate()
    {
        let index = u16::try_from(i).unwrap_or(0);
        let total = u16::try_from(count).unwrap_or(1);
        let shard = Shard::new(index, total, owners.clone());
        let endpoint = make(shard.clone());
        let link = (count > 1).then(|| Link {
            shard,
            peers: peers.clone(),
            inbox,
            free,
            returns: returns.clone(),
            open: (0..count).map(|_| None).collect(),
            counters: counters.clone(),
            forwarded: 0,
            broadcast: 0,
        });
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("iax2-ep-{}-{i}", addr.port()))
            .spawn(move || run(endpoint, &socket, poll, &rx, cfg, link))?;
        handles.push(DriverHandle {
            local: addr,
            origin: cfg.origin,
            commands: tx,
            thread: Some(thread),
        });
    }
    Ok(DriverGroup {
        shards: handles,
        handoffs: counters,
        next: 0,
    })
}

/// One PBX played by several driver threads ([`spawn_group`]). Dropping
/// it stops them.
#[derive(Debug)]
pub struct DriverGroup {
    shards: Vec<DriverHandle>,
    handoffs: Arc<HandoffCounters>,
    /// The shard that gets the next originated call.
    next: usize,
}

impl DriverGroup {
    /// The PBX's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shards.first().map_or_else(
            || SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
            DriverHandle::local_addr,
        )
    }

    /// Each shard's driver.
    pub fn shards(&self) -> &[DriverHandle] {
        &self.shards
    }

    /// The endpoint clock's current reading.
    pub fn now(&self) -> Instant {
        self.shards.first().map_or(Instant::ZERO, DriverHandle::now)
    }

    /// Originates `count` calls to `peer` for `called`, spread over the
    /// shards in turn; returns how many started.
    pub fn originate(&mut self, peer: SocketAddr, called: &str, count: usize) -> usize {
        let n = self.shards.len().max(1);
        let mut started = 0;
        for k in 0..n {
            let i = (self.next + k) % n;
            let share = count / n + usize::from(k < count % n);
            if share > 0 {
                if let Some(s) = self.shards.get(i) {
                    started += s.originate(peer, called, share).len();
                }
            }
        }
        self.next = (self.next + count) % n;
        started
    }

    /// Runs `f` on every shard (one after the other); returns the results.
    pub fn each<R, F>(&self, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&mut Endpoint, Instant, &mut dyn Transmit) -> R + Send + Sync + Clone + 'static,
    {
        self.shards
            .iter()
            .filter_map(|s| s.with(f.clone()))
            .collect()
    }

    /// Hangs up every call with `cause_code`; returns how many.
    pub fn hangup_all(&self, cause_code: u8) -> usize {
        self.shards.iter().map(|s| s.hangup_all(cause_code)).sum()
    }

    /// The endpoints' statistics, added up.
    pub fn stats(&self) -> EndpointStats {
        let mut total = EndpointStats::default();
        for s in &self.shards {
            total.add(&s.stats());
        }
        total
    }

    /// The endpoints' distributions, added up; with `reset` each shard
    /// starts a new window.
    pub fn measurements(&self, reset: bool) -> Measurements {
        let mut total = Measurements::new();
        for m in self.each(move |ep, _, _| {
            if reset {
                ep.take_measurements()
            } else {
                ep.measurements()
            }
        }) {
            total.add(&m);
        }
        total
    }

    /// Calls holding state, all shards.
    pub fn active_calls(&self) -> usize {
        self.shards.iter().map(DriverHandle::active_calls).sum()
    }

    /// Datagrams handed between shards: (forwarded to their owner, trunk
    /// frames copied to every shard, dropped on a full queue).
    pub fn handoffs(&self) -> (u64, u64, u64) {
        self.handoffs.snapshot()
    }

    /// Stops every shard; returns their endpoints and the drivers'
    /// counters added up.
    pub fn stop(self) -> (Vec<Endpoint>, DriverStats) {
        let mut total = DriverStats::default();
        let mut eps = Vec::new();
        for s in self.shards {
            if let Some((ep, st)) = s.stop() {
                total.add(&st);
                eps.push(ep);
            }
        }
        (eps, total)
    }
}

fn clock(origin: std::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// The wall-clock instant of endpoint instant `t`.
fn wall(origin: std::time::Instant, t: Instant) -> std::time::Instant {
    origin + Duration::from_micros(t.as_micros())
}

fn run(
    mut ep: Endpoint,
    socket: &mio::net::UdpSocket,
    mut poll: Poll,
    commands: &mpsc::Receiver<Command>,
    cfg: DriverConfig,
    mut link: Option<Link>,
) -> (Endpoint, DriverStats) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)));
    let mut outbox = Outbox::new(local);
    let mut scratch = Box::new([0u8; MAX_DATAGRAM]);
    // Arrival times come from the kernel's receive timestamps when it
    // gives them, so that the latency measured does not include how long
    // this thread took to get to the socket. They are wall-clock times:
    // `wall_origin` is the wall-clock reading of `cfg.origin`.
    let mut recv = RecvBatch::with_kernel_timestamps(RECV_SLOTS);
    let wall_origin = std::time::SystemTime::now() - cfg.origin.elapsed();
    let arrival = |d: &iax2_gateway::batch::Received<'_>, now: Instant| {
        d.kernel_time
            .and_then(|t| t.duration_since(wall_origin).ok())
            .and_then(|e| u64::try_from(e.as_micros()).ok())
            .map_or(now, |us| Instant::from_micros(us).min(now))
    };
    let mut poll_events = Events::with_capacity(4);
    let mut events = Vec::new();
    let mut stats = DriverStats::default();
    // The socket may hold more than the last wakeup's budget took.
    let mut readable = true;
    // The last read failed: try again even without a readable event.
    let mut retry = false;
    loop {
        let woke = std::time::Instant::now();
        loop {
            match commands.try_recv() {
                Ok(Command::Run(job)) => {
                    let mut out = outbox.sender(socket, &mut scratch);
                    job(&mut ep, clock(cfg.origin), &mut out, &mut events);
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    if outbox.flush(socket) == Flush::Blocked {
                        outbox.abandoned += outbox.batch.pending() as u64;
                    }
                    outbox.stats(&mut stats);
                    return (ep, stats);
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        // Drain the socket, up to the budget.
        if readable {
            let mut taken = 0;
            readable = false;
            retry = false;
            while taken < RECV_BUDGET {
                match recv.recv(socket) {
                    Ok(n) => {
                        let now = clock(cfg.origin);
                        let mut out = outbox.sender(socket, &mut scratch);
                        for i in 0..n {
                            if let Some(d) = recv.get_mut(i) {
                                let at = arrival(&d, now);
                                let here =
                                    link.as_mut().is_none_or(|l| l.dispatch(d.from, at, d.data));
                                if here {
                                    ep.handle_datagram_at(now, at, d.from, d.data, &mut out);
                                }
                            }
                        }
                        stats.received += n as u64;
                        taken += n;
                        readable = taken >= RECV_BUDGET;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // An error (an ICMP report, say) may hide datagrams
                        // behind it: read again after the next sleep.
                        stats.recv_errors += 1;
                        retry = true;
                        break;
                    }
                }
            }
        }
        if let Some(l) = link.as_mut() {
            l.send_all();
            // Datagrams other shards received for our calls.
            while let Ok(mut batch) = l.inbox.try_recv() {
                let now = clock(cfg.origin);
                let mut out = outbox.sender(socket, &mut scratch);
                for &(from, at, off, len) in &batch.items {
                    if let Some(d) = batch.data.get(off..off + len) {
                        ep.handle_datagram_at(now, at, from, d, &mut out);
                    }
                }
                stats.handed_in += batch.items.len() as u64;
                batch.data.clear();
                batch.items.clear();
                if let Some(back) = l.returns.get(batch.origin) {
                    let _ = back.try_send(batch);
                }
            }
        }
        let now = clock(cfg.origin);
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now, &mut outbox.sender(socket, &mut scratch));
        }
        let _ = outbox.flush(socket);
        while let Some(e) = ep.poll_event() {
            if events.len() >= cfg.max_events {
                stats.events_dropped += 1;
                continue;
            }
            events.push(e);
        }
        if readable {
            continue;
        }
        // Sleep: not before the wake interval is over, then until the
        // socket is readable, the next timer or the poll interval.
        let earliest = woke + cfg.wake_interval;
        let mut at = std::time::Instant::now();
        if at < earliest {
            std::thread::sleep(earliest - at);
            at = std::time::Instant::now();
        }
        let timeout = match ep.poll_timeout() {
            Some(t) => wall(cfg.origin, t).saturating_duration_since(at),
            None => cfg.poll_interval,
        }
        .min(cfg.poll_interval);
        match poll.poll(&mut poll_events, Some(timeout)) {
            Ok(()) => readable = retry || poll_events.iter().any(|e| e.token() == SOCKET),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => readable = true,
            Err(_) => {
                stats.recv_errors += 1;
                readable = true;
            }
        }
    }
}

impl DriverHandle {
    /// The socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The endpoint clock's current reading.
    pub fn now(&self) -> Instant {
        clock(self.origin)
    }

    /// Runs `f` on the driver thread with the endpoint, the current
    /// instant and the outgoing batch (sent right after), and returns its
    /// result. `None` when the thread is gone.
    pub fn with<R, F>(&self, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Endpoint, Instant, &mut dyn Transmit) -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |ep, now, out, _| {
            let _ = tx.send(f(ep, now, out));
        });
        self.commands.send(Command::Run(job)).ok()?;
        rx.recv().ok()
    }

    /// Originates `count` calls to `peer` for `called`; returns their ids.
    pub fn originate(&self, peer: SocketAddr, called: &str, count: usize) -> Vec<CallId> {
        let called = called.to_owned();
        self.with(move |ep, now, out| {
            let mut out = crate::sim::DynTransmit(out);
            (0..count)
                .filter_map(|_| ep.originate(now, peer, &called, &mut out))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Hangs up every call with `cause_code`; returns how many.
    pub fn hangup_all(&self, cause_code: u8) -> usize {
        self.with(move |ep, now, out| {
            ep.hangup_all(now, cause_code, &mut crate::sim::DynTransmit(out))
        })
        .unwrap_or(0)
    }

    /// The endpoint's statistics.
    pub fn stats(&self) -> EndpointStats {
        self.with(|ep, _, _| ep.stats()).unwrap_or_default()
    }

    /// Calls holding state.
    pub fn active_calls(&self) -> usize {
        self.with(|ep, _, _| ep.active_calls()).unwrap_or(0)
    }

    /// Takes the events collected so far.
    pub fn take_events(&self) -> Vec<Event> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |_, _, _, events| {
            let _ = tx.send(std::mem::take(events));
        });
        if self.commands.send(Command::Run(job)).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// Stops the thread and returns the endpoint and the driver's counters.
    pub fn stop(mut self) -> Option<(Endpoint, DriverStats)> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Option<(Endpoint, DriverStats)> {
        let _ = self.commands.send(Command::Stop);
        self.thread.take()?.join().ok()
    }
}

impl Drop for DriverHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
