//! One worker thread: a `mio::Poll`, a reuseport socket and a relay worker.
//!
//! The loop, once per wakeup:
//!
//! 1. wait in `poll` until the socket is ready, the relay's next deadline
//!    comes, or the waker fires; with a zero timeout if the last wakeup
//!    left the socket unread (the budget ran out);
//! 2. if the socket became writable, retry the blocked send queue;
//! 3. receive up to [`RECV_BUDGET`] batches, handing each datagram to the
//!    relay and flushing the send queue after each batch. A full budget
//!    means the socket may still hold data, and mio (edge-triggered) will
//!    not say so again, so the loop remembers it (STYLE.md lesson 11);
//! 4. run the relay's timers if due;
//! 5. ask for `WRITABLE` only while the send queue is blocked.
//!
//! The stop flag is read at the top of every turn; [`Worker::wake`] makes
//! a sleeping worker take that turn at once.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use trunk_core::relay::{Counters, DropReason, RelayWorker, WorkerSet};
use trunk_core::time::Instant;
use trunk_core::transmit::Transmit;

use crate::batch::{IoCounters, RecvBatch, SendBatch, RECV_SLOTS, SEND_SLOTS};
use crate::clock;
use crate::handoff::Handoff;
use crate::link_port::{LinkCommand, LinkPort, Router};
use crate::ratelimit::LogLimiter;
use crossbeam_channel::Receiver;

/// Receive batches per wakeup before timers and other work get a turn:
/// 8 x 64 datagrams, a few hundred microseconds of relaying.
pub(crate) const RECV_BUDGET: usize = 8;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Link socket `n` (`crate::link_port`) is `Token(LINK_BASE + n)`.
const LINK_BASE: usize = 2;
/// Most link sockets per worker (one per far gateway it registers with).
const MAX_LINKS: usize = 32;

/// What a worker drives: the relay worker, or a stand-in in tests.
pub(crate) trait Driver {
    /// See [`RelayWorker::handle_datagram`].
    fn handle_datagram<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    );

    /// See [`RelayWorker::poll_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;

    /// See [`RelayWorker::handle_timeout`].
    fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T);

    /// See [`RelayWorker::counters`].
    fn counters(&self) -> Arc<Counters>;

    /// See [`RelayWorker::take_handoff`].
    fn take_handoff(&mut self) -> WorkerSet {
        WorkerSet::EMPTY
    }

    /// See [`RelayWorker::handle_handed`].
    fn handle_handed<T: Transmit>(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _datagram: &mut [u8],
        _out: &mut T,
    ) {
    }
}

impl Driver for RelayWorker {
    fn handle_datagram<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        Self::handle_datagram(self, now, from, datagram, out);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }

    fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T) {
        Self::handle_timeout(self, now, out);
    }

    fn counters(&self) -> Arc<Counters> {
        Self::counters(self)
    }

    fn take_handoff(&mut self) -> WorkerSet {
        Self::take_handoff(self)
    }

    fn handle_handed<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        Self::handle_handed(self, now, from, datagram, out);
    }
}

/// A running worker thread, seen from the thread that started it.
#[derive(Debug)]
pub(crate) struct Worker {
    index: usize,
    /// `None` once joined.
    thread: Option<JoinHandle<()>>,
    waker: Arc<Waker>,
    counters: Arc<Counters>,
    io: Arc<IoCounters>,
    /// False once the thread has ended.
    alive: Arc<AtomicBool>,
}

/// Clears a flag when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Worker {
    /// Starts worker `index` on `socket`. The driver is built by `make` on
    /// the new thread (so it need not be `Send`); this returns once it is
    /// built, or fails if building it panicked.
    #[cfg(test)]
    pub(crate) fn spawn<D, F>(
        index: usize,
        socket: UdpSocket,
        stop: Arc<AtomicBool>,
        make: F,
    ) -> io::Result<Self>
    where
        D: Driver,
        F: FnOnce() -> D + Send + 'static,
    {
        let (poll, waker) = Self::poll()?;
        Self::spawn_linked(index, socket, stop, (poll, waker), None, None, true, make)
    }

    /// A worker's poll and the waker that interrupts it, made before the
    /// workers start so that each can wake the others (`handoff`).
    pub(crate) fn poll() -> io::Result<(Poll, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((poll, waker))
    }

    /// Like `spawn`, on a poll made by [`Worker::poll`], with this
    /// worker's end of the handoff, where its link sockets come from
    /// (`crate::link_port`), and segmented sends (UDP GSO) on or off.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn_linked<D, F>(
        index: usize,
        mut socket: UdpSocket,
        stop: Arc<AtomicBool>,
        (poll, waker): (Poll, Arc<Waker>),
        handoff: Option<Handoff>,
        link_commands: Option<Receiver<LinkCommand>>,
        segmentation: bool,
        make: F,
    ) -> io::Result<Self>
    where
        D: Driver,
        F: FnOnce() -> D + Send + 'static,
    {
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let local = socket.local_addr()?;
        let io = Arc::new(IoCounters::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_io = Arc::clone(&io);
        let alive = Arc::new(AtomicBool::new(true));
        let thread_alive = Arc::clone(&alive);
        let thread = thread::Builder::new()
            .name(format!("iax2-worker-{index}"))
            .spawn(move || {
                // Cleared however the thread ends, a panic included.
                let _alive = ClearOnDrop(thread_alive);
                let driver = make();
                let counters = driver.counters();
                // The receiver waits for this; if it is gone, so is the
                // gateway, and the stop flag ends the loop.
                let _ = ready_tx.send(Arc::clone(&counters));
                let mut send = SendBatch::new(
                    SEND_SLOTS,
                    local,
                    Arc::clone(&counters),
                    Arc::clone(&thread_io),
                );
                send.set_segmentation(segmentation);
                EventLoop {
                    index,
                    driver,
                    poll,
                    socket,
                    recv: RecvBatch::new(RECV_SLOTS),
                    send,
                    counters,
                    io: thread_io,
                    stop,
                    write_interest: false,
                    handoff,
                    links: Vec::new(),
                    link_commands,
                    links_readable: 0,
                    segmentation,
                    log_poll: LogLimiter::default(),
                    log_recv: LogLimiter::default(),
                }
                .run();
            })?;
        match ready_rx.recv() {
            Ok(counters) => Ok(Self {
                index,
                thread: Some(thread),
                waker,
                counters,
                io,
                alive,
            }),
            Err(_) => {
                // The thread ended before reporting: building the driver
                // panicked (the panic message went to stderr).
                let _ = thread.join();
                Err(io::Error::other(format!("worker {index} failed to start")))
            }
        }
    }

    /// The relay counters of this worker.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The socket counters of this worker.
    pub(crate) fn io(&self) -> &Arc<IoCounters> {
        &self.io
    }

    /// True while the thread runs.
    pub(crate) fn alive(&self) -> &Arc<AtomicBool> {
        &self.alive
    }

    /// Interrupts the worker's `poll` so it reads the stop flag.
    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::warn!(worker = self.index, error = %e, "cannot wake worker");
        }
    }

    /// Waits for the thread to end (at once if it was joined before).
    /// `false` if it panicked.
    pub(crate) fn join(&mut self) -> bool {
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(())) => true,
            Some(Err(_)) => {
                tracing::error!(worker = self.index, "worker thread panicked");
                false
            }
        }
    }
}

/// The state of one worker thread.
struct EventLoop<D> {
    index: usize,
    driver: D,
    poll: Poll,
    socket: UdpSocket,
    recv: RecvBatch,
    send: SendBatch,
    counters: Arc<Counters>,
    io: Arc<IoCounters>,
    stop: Arc<AtomicBool>,
    /// The socket is registered for `WRITABLE` too.
    write_interest: bool,
    /// Trunk frames to and from the other workers (none when alone).
    handoff: Option<Handoff>,
    /// Far gateways on a source port of their own (`crate::link_port`).
    links: Vec<LinkPort>,
    link_commands: Option<Receiver<LinkCommand>>,
    /// Link sockets that may hold data, by index (bit n: link n).
    links_readable: u64,
    segmentation: bool,
    log_poll: LogLimiter,
    log_recv: LogLimiter,
}

impl<D: Driver> EventLoop<D> {
    fn run(mut self) {
        tracing::debug!(worker = self.index, "worker running");
        // Allocated once; two tokens never fill more than a few entries.
        let mut events = Events::with_capacity(16);
        // Data may have arrived between bind and register: look once.
        let mut readable = true;
        while !self.stop.load(Ordering::Acquire) {
            self.take_link_commands();
            let timeout = if readable || self.links_readable != 0 {
                Some(Duration::ZERO)
            } else {
                self.driver.poll_timeout().map(clock::until)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    if let Some(suppressed) = self.log_poll.allow() {
                        tracing::error!(worker = self.index, error = %e, suppressed, "poll failed");
                    }
                    // Do not spin on a broken poll; timers lag a little.
                    thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let mut writable = false;
            for event in events.iter() {
                // The waker needs no handling: the stop flag is read at
                // the top of the loop.
                if event.token() == SOCKET {
                    readable |= event.is_readable() || event.is_error();
                    writable |= event.is_writable();
                } else if let Some(n) = event.token().0.checked_sub(LINK_BASE) {
                    if let Some(link) = self.links.get_mut(n) {
                        if event.is_readable() || event.is_error() {
                            self.links_readable |= 1 << n;
                        }
                        if event.is_writable() && link.send.is_blocked() {
                            let _ = link.send.on_writable(&link.socket);
                        }
                    }
                }
            }
            if writable && self.send.is_blocked() {
                let _ = self.send.on_writable(&self.socket);
            }
            // Handed frames first: they arrived before what the socket
            // holds now, and a call's media must stay in order. They are
            // read every turn; a wake only shortens the wait for them.
            let more_handed = self.receive_handed();
            if readable {
                readable = self.receive(None);
            }
            for n in 0..self.links.len() {
                if self.links_readable & (1 << n) != 0 && !self.receive(Some(n)) {
                    self.links_readable &= !(1 << n);
                }
            }
            readable |= more_handed;
            self.run_timers();
            self.update_interest();
        }
        // What the relay already handed over should still leave.
        self.flush();
        tracing::debug!(worker = self.index, "worker stopped");
    }

    /// Sends what is queued, on the listen socket and the link sockets.
    fn flush(&mut self) {
        let _ = self.send.flush(&self.socket);
        for link in &mut self.links {
            let _ = link.send.flush(&link.socket);
        }
    }

    /// Installs the link sockets the gateway sent (a link moved to a fresh
    /// port): a new one for a far gateway replaces its old one.
    fn take_link_commands(&mut self) {
        let Some(rx) = self.link_commands.as_ref() else {
            return;
        };
        while let Ok(LinkCommand { dest, mut socket }) = rx.try_recv() {
            let n = match self.links.iter().position(|l| l.dest == dest) {
                Some(n) => {
                    let old = &mut self.links[n];
                    let _ = old.send.flush(&old.socket);
                    let _ = self.poll.registry().deregister(&mut old.socket);
                    n
                }
                None if self.links.len() < MAX_LINKS => self.links.len(),
                None => {
                    tracing::warn!(worker = self.index, %dest, "too many link sockets; link stays on the listen port");
                    continue;
                }
            };
            let token = Token(LINK_BASE + n);
            if let Err(e) = self.poll.registry().register(
                &mut socket,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::error!(worker = self.index, %dest, error = %e, "cannot register a link socket");
                continue;
            }
            let local = socket.local_addr().unwrap_or(dest);
            let mut send = SendBatch::new(
                SEND_SLOTS,
                local,
                Arc::clone(&self.counters),
                Arc::clone(&self.io),
            );
            send.set_segmentation(self.segmentation);
            let link = LinkPort { dest, socket, send };
            if n == self.links.len() {
                self.links.push(link);
            } else {
                self.links[n] = link;
            }
            // Anything already waiting raised no edge we saw.
            self.links_readable |= 1 << n;
        }
    }

    /// Receives up to the budget. Returns whether the socket may still
    /// hold datagrams (the budget ran out, or an error cut the turn short).
    /// `link`: on that link socket instead of the listen socket.
    fn receive(&mut self, link: Option<usize>) -> bool {
        for _ in 0..RECV_BUDGET {
            let socket = match link {
                None => &self.socket,
                Some(n) => match self.links.get(n) {
                    Some(l) => &l.socket,
                    None => return false,
                },
            };
            let n = match self.recv.recv(socket) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.io.count_recv_error();
                    if let Some(suppressed) = self.log_recv.allow() {
                        tracing::warn!(worker = self.index, error = %e, suppressed, "receive failed");
                    }
                    // Come back after timers: a pending socket error is
                    // reported once, so the next call usually succeeds.
                    return true;
                }
            };
            self.io.count_recv_syscall();
            let now = clock::now();
            let mut out = Router::new(self.send.sender(&self.socket), &mut self.links);
            for i in 0..n {
                let Some(d) = self.recv.get_mut(i) else {
                    break;
                };
                if d.truncated {
                    // Longer than any IAX2 datagram Asterisk reads.
                    self.io.count_recv_truncated();
                    self.counters.count_drop(DropReason::Malformed);
                    continue;
                }
                self.driver.handle_datagram(now, d.from, d.data, &mut out);
                let others = self.driver.take_handoff();
                if let Some(h) = self.handoff.as_mut().filter(|_| !others.is_empty()) {
                    h.hand(others, now, d.from, d.data, &self.counters);
                }
            }
            self.flush();
            if let Some(h) = self.handoff.as_mut() {
                h.wake();
            }
            if n < self.recv.capacity() {
                // A short batch means the queue was empty when the kernel
                // looked; anything arriving later raises a new edge.
                return false;
            }
        }
        true
    }

    /// Relays the trunk frames other workers handed over, up to the
    /// receive budget. Returns whether more may wait.
    fn receive_handed(&mut self) -> bool {
        let Some(h) = self.handoff.as_mut() else {
            return false;
        };
        let mut out = Router::new(self.send.sender(&self.socket), &mut self.links);
        let driver = &mut self.driver;
        let more = h.drain(RECV_BUDGET * RECV_SLOTS, |at, from, datagram| {
            driver.handle_handed(at, from, datagram, &mut out);
        });
        self.flush();
        more
    }

    fn run_timers(&mut self) {
        let Some(deadline) = self.driver.poll_timeout() else {
            return;
        };
        let now = clock::now();
        if deadline > now {
            return;
        }
        let mut out = Router::new(self.send.sender(&self.socket), &mut self.links);
        self.driver.handle_timeout(now, &mut out);
        self.flush();
    }

    /// Asks for `WRITABLE` only while sends are blocked, so an idle socket
    /// with free buffer space does not wake the loop.
    fn update_interest(&mut self) {
        let want = self.send.is_blocked();
        if want == self.write_interest {
            return;
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .poll
            .registry()
            .reregister(&mut self.socket, SOCKET, interest)
        {
            Ok(()) => self.write_interest = want,
            Err(e) => {
                if let Some(suppressed) = self.log_poll.allow() {
                    tracing::error!(worker = self.index, error = %e, suppressed, "reregister failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;
    use crate::socket;

    /// Echoes every datagram to its sender, and on each timer sends a
    /// "tick" to the last sender seen.
    struct Echo {
        counters: Arc<Counters>,
        tick_every: Option<Duration>,
        next_tick: Option<Instant>,
        last_from: Option<SocketAddr>,
        /// Holds the first datagram until the test says go, so the socket
        /// fills up meanwhile.
        gate: Option<mpsc::Receiver<()>>,
    }

    impl Driver for Echo {
        fn handle_datagram<T: Transmit>(
            &mut self,
            now: Instant,
            from: SocketAddr,
            datagram: &mut [u8],
            out: &mut T,
        ) {
            if let Some(gate) = self.gate.take() {
                gate.recv().unwrap();
            }
            self.counters.rx_datagrams.incr();
            out.send(from, datagram);
            self.last_from = Some(from);
            if self.next_tick.is_none() {
                self.next_tick = self.tick_every.map(|d| now + d);
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.next_tick
        }

        fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T) {
            if let (Some(to), Some(every)) = (self.last_from, self.tick_every) {
                out.send(to, b"tick");
                self.next_tick = Some(now + every);
            }
        }

        fn counters(&self) -> Arc<Counters> {
            Arc::clone(&self.counters)
        }
    }

    fn echo_worker(
        tick_every: Option<Duration>,
        gate: Option<mpsc::Receiver<()>>,
    ) -> (Worker, SocketAddr, Arc<AtomicBool>) {
        let bound = socket::bind("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let addr = bound.socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker::spawn(0, bound.socket, Arc::clone(&stop), move || Echo {
            counters: Arc::new(Counters::default()),
            tick_every,
            next_tick: None,
            last_from: None,
            gate,
        })
        .unwrap();
        (worker, addr, stop)
    }

    /// A blocking client socket with room for a whole burst of echoes.
    fn client() -> std::net::UdpSocket {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_recv_buffer_size(4 << 20).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let c = std::net::UdpSocket::from(s);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    fn stop_within(mut worker: Worker, stop: &AtomicBool, bound: Duration) {
        let t = StdInstant::now();
        stop.store(true, Ordering::Release);
        worker.wake();
        assert!(worker.join());
        assert!(t.elapsed() < bound, "stop took {:?}", t.elapsed());
    }

    #[test]
    fn echoes_bursts_larger_than_the_budget() {
        let (go, gate) = mpsc::channel();
        let (worker, addr, stop) = echo_worker(None, Some(gate));
        let c = client();
        // The worker holds the first datagram while the rest queue up:
        // more than one wakeup's budget, with no new edge after it, so
        // the loop must come back for the rest by itself.
        let total = RECV_BUDGET * RECV_SLOTS * 2 + 1;
        c.send_to(&0u32.to_be_bytes(), addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        for i in 1..total {
            c.send_to(&(i as u32).to_be_bytes(), addr).unwrap();
        }
        go.send(()).unwrap();
        let mut buf = [0; 64];
        for i in 0..total {
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&(i as u32).to_be_bytes()[..], addr));
        }
        // Read the counters once the thread ended: an echo can reach the
        // client before the worker stores its count.
        let (counters, io) = (Arc::clone(worker.counters()), Arc::clone(worker.io()));
        stop_within(worker, &stop, Duration::from_secs(2));
        assert_eq!(counters.snapshot().rx_datagrams, total as u64);
        let io = io.snapshot();
        assert_eq!(io.sent_datagrams, total as u64);
        // Batched: far fewer syscalls than datagrams.
        assert!(io.recv_syscalls < total as u64 / 8, "{io:?}");
    }

    #[test]
    fn timers_fire_and_stop_is_prompt_while_idle() {
        let (worker, addr, stop) = echo_worker(Some(Duration::from_millis(10)), None);
        let c = client();
        c.send_to(b"hello", addr).unwrap();
        let mut buf = [0; 16];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        for _ in 0..3 {
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"tick");
        }
        stop_within(worker, &stop, Duration::from_secs(1));
    }

    #[test]
    fn a_driver_that_panics_at_start_is_an_error() {
        let bound = socket::bind("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let r = Worker::spawn(3, bound.socket, stop, || -> Echo {
            panic!("deliberate test panic: a driver that cannot start");
        });
        assert!(r.is_err());
    }
}
