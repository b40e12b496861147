//! Runs one [`Endpoint`] on a real UDP socket, on its own thread.
//!
//! The thread drains the socket into the endpoint, runs its timers when
//! due and sends what it produced with `send_to`. Other threads talk to it
//! through a [`DriverHandle`]: originate calls, hang up, read statistics and
//! events, or run any closure on the endpoint. Buffers are reused, so the
//! steady state allocates nothing per packet beyond what the endpoint does.
//!
//! All drivers that measure latency against each other must share one
//! clock origin ([`DriverConfig::origin`]): the endpoint's voice payload
//! carries the send instant, and the receiver subtracts it from its own.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Longest wait for a datagram before timers are checked again.
    pub poll_interval: Duration,
    /// Events kept for [`DriverHandle::take_events`] before the oldest are
    /// dropped.
    pub max_events: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
            socket_buffer: 4 << 20,
            poll_interval: Duration::from_millis(1),
            max_events: 1 << 20,
        }
    }
}

/// Datagrams sent in one batch, backed by one reused byte arena.
#[derive(Debug)]
struct Outbox {
    scratch: Box<[u8; MAX_DATAGRAM]>,
    arena: Vec<u8>,
    queue: Vec<(SocketAddr, Range<usize>)>,
}

impl Outbox {
    fn new() -> Self {
        Self {
            scratch: Box::new([0; MAX_DATAGRAM]),
            arena: Vec::with_capacity(1 << 20),
            queue: Vec::with_capacity(4096),
        }
    }

    /// Sends everything queued; returns the number of send errors.
    fn flush(&mut self, socket: &UdpSocket) -> u64 {
        let mut errors = 0;
        for (to, range) in self.queue.drain(..) {
            if socket.send_to(&self.arena[range], to).is_err() {
                errors += 1;
            }
        }
        self.arena.clear();
        errors
    }
}

impl Transmit for Outbox {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.scratch[..]
    }
    fn commit(&mut self, to: SocketAddr, len: usize) {
        let len = len.min(MAX_DATAGRAM);
        let start = self.arena.len();
        self.arena.extend_from_slice(&self.scratch[..len]);
        self.queue.push((to, start..start + len));
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
    /// Datagrams handed to `send_to`.
    pub sent: u64,
    /// `send_to` errors.
    pub send_errors: u64,
    /// Receive errors other than timeouts.
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
    socket.set_read_timeout(Some(cfg.poll_interval.max(Duration::from_micros(100))))?;
    let local = socket.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("iax2-endpoint-{local}"))
        .spawn(move || run(endpoint, &socket, &rx, cfg))?;
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

fn run(
    mut ep: Endpoint,
    socket: &UdpSocket,
    commands: &mpsc::Receiver<Command>,
    cfg: DriverConfig,
) -> (Endpoint, DriverStats) {
    let mut out = Outbox::new();
    let mut events = Vec::new();
    let mut stats = DriverStats::default();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Run(job)) => job(&mut ep, clock(cfg.origin), &mut out, &mut events),
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    stats.sent += out.queue.len() as u64;
                    stats.send_errors += out.flush(socket);
                    return (ep, stats);
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        // Receive a batch: the first read waits up to the poll interval.
        for _ in 0..256 {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    stats.received += 1;
                    ep.handle_datagram(clock(cfg.origin), from, &buf[..n], &mut out);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(_) => {
                    stats.recv_errors += 1;
                    break;
                }
            }
            if ep.poll_timeout().is_some_and(|t| t <= clock(cfg.origin)) {
                break;
            }
        }
        let now = clock(cfg.origin);
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now, &mut out);
        }
        stats.sent += out.queue.len() as u64;
        stats.send_errors += out.flush(socket);
        while let Some(e) = ep.poll_event() {
            if events.len() >= cfg.max_events {
                stats.events_dropped += 1;
                continue;
            }
            events.push(e);
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
