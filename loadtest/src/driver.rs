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

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use iax2_gateway::batch::{Flush, IoCounters, RecvBatch, SendBatch, RECV_SLOTS};
use mio::{Events, Interest, Poll, Token};
use trunk_core::relay::{Counters, DropReason};
use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};

use crate::endpoint::{CallId, Endpoint, EndpointStats, Event};

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
    let local = socket.local_addr()?;
    let mut socket = mio::net::UdpSocket::from_std(socket);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("iax2-endpoint-{local}"))
        .spawn(move || run(endpoint, &socket, poll, &rx, cfg))?;
    Ok(DriverHandle {
        local,
        origin: cfg.origin,
        commands: tx,
        thread: Some(thread),
    })
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
) -> (Endpoint, DriverStats) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)));
    let mut outbox = Outbox::new(local);
    let mut scratch = Box::new([0u8; MAX_DATAGRAM]);
    let mut recv = RecvBatch::new(RECV_SLOTS);
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
                                ep.handle_datagram(now, d.from, d.data, &mut out);
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
            Ok(()) => readable = retry || !poll_events.is_empty(),
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
