//! The impairment proxy's socket shell: clients send to its listen
//! address; each distinct client source gets an upstream socket of its
//! own (as a NAT gives each source an entry), which sends to the upstream
//! address and carries the replies back to that client from the listen
//! address. Everything towards the upstream goes through one [`Link`],
//! everything back through another, each with its own settings and seed.
//! One thread, a mio poll that wakes for the next release.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use trunk_core::time::Instant;

use super::link::{Counters, Link};
use super::model::Settings;

/// How a proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients send.
    pub listen: SocketAddr,
    /// Where their datagrams go.
    pub upstream: SocketAddr,
    /// Impairment of the datagrams towards the upstream.
    pub to_upstream: Settings,
    /// Impairment of the datagrams back to the clients.
    pub to_client: Settings,
    /// Seed of the decisions (the way back draws from a seed derived
    /// from it, so the two directions are independent).
    pub seed: u64,
    /// Datagrams that may wait in each direction; past it, counted drops.
    pub queue_limit: usize,
    /// Most client sources mapped; datagrams from more are refused.
    pub max_clients: usize,
    /// Stop by itself after this long.
    pub run_for: Option<Duration>,
}

impl ProxyConfig {
    /// A proxy from `listen` to `upstream` with `settings` both ways,
    /// seed 1, 4096 datagrams of queue each way, up to 1024 clients.
    pub fn new(listen: SocketAddr, upstream: SocketAddr, settings: Settings) -> Self {
        Self {
            listen,
            upstream,
            to_upstream: settings.clone(),
            to_client: settings,
            seed: 1,
            queue_limit: 4096,
            max_clients: 1024,
            run_for: None,
        }
    }
}

/// A proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Towards the upstream.
    pub to_upstream: Counters,
    /// Back to the clients.
    pub to_client: Counters,
    /// Client sources mapped.
    pub clients: usize,
    /// Datagrams from sources past `max_clients`.
    pub refused: u64,
    /// Releases the socket would not take (a full send buffer).
    pub send_failures: u64,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stats: ProxyStats,
    mappings: Vec<(SocketAddr, SocketAddr)>,
    done: bool,
}

/// One client source and its upstream socket.
#[derive(Debug)]
struct Client {
    addr: SocketAddr,
    socket: UdpSocket,
}

const LISTEN: Token = Token(0);
/// Longest sleep between looks at the stop flag.
const TICK: Duration = Duration::from_millis(20);

impl Proxy {
    /// Binds the listen socket and starts the proxy's thread.
    pub fn start(config: &ProxyConfig) -> io::Result<Self> {
        let listen = UdpSocket::bind(config.listen)?;
        let local = listen.local_addr()?;
        let poll = Poll::new()?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut state = Loop {
            poll,
            listen,
            clients: Vec::new(),
            by_addr: HashMap::new(),
            up: Link::new(&config.to_upstream, config.seed, config.queue_limit),
            down: Link::new(
                &config.to_client,
                config.seed ^ 0x5eed_d0e5_0000_0001,
                config.queue_limit,
            ),
            config: config.clone(),
            epoch: std::time::Instant::now(),
            stats: ProxyStats::default(),
        };
        state
            .poll
            .registry()
            .register(&mut state.listen, LISTEN, Interest::READABLE)?;
        let (flag, sh) = (Arc::clone(&stop), Arc::clone(&shared));
        let thread = thread::Builder::new()
            .name("impair".into())
            .spawn(move || state.run(&flag, &sh))?;
        Ok(Self {
            local,
            stop,
            shared,
            thread: Some(thread),
        })
    }

    /// The listen address (with the port the OS chose, if it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.lock().stats
    }

    /// Each client source and the address of its upstream socket (the
    /// address the upstream sees it from).
    pub fn mappings(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.lock().mappings.clone()
    }

    /// Whether the proxy still runs (false once `run_for` has passed).
    pub fn is_running(&self) -> bool {
        !self.lock().done
    }

    /// Stops the proxy and returns its final counters.
    pub fn stop(mut self) -> ProxyStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The proxy thread's state.
struct Loop {
    poll: Poll,
    listen: UdpSocket,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    up: Link<usize>,
    down: Link<usize>,
    config: ProxyConfig,
    epoch: std::time::Instant,
    stats: ProxyStats,
}

impl Loop {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn run(mut self, stop: &AtomicBool, shared: &Mutex<Shared>) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed)
            && self.config.run_for.is_none_or(|d| self.epoch.elapsed() < d)
        {
            let now = self.now();
            let next = [self.up.next_release(), self.down.next_release()]
                .into_iter()
                .flatten()
                .min();
            let timeout = next.map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            for event in &events {
                match event.token() {
                    LISTEN => self.read_clients(&mut buf),
                    Token(i) => self.read_upstream(i - 1, &mut buf),
                }
            }
            self.release();
            let mut sh = shared.lock().unwrap_or_else(PoisonError::into_inner);
            self.stats.to_upstream = self.up.counters();
            self.stats.to_client = self.down.counters();
            self.stats.clients = self.clients.len();
            sh.stats = self.stats;
            if sh.mappings.len() != self.clients.len() {
                sh.mappings = self
                    .clients
                    .iter()
                    .filter_map(|c| Some((c.addr, c.socket.local_addr().ok()?)))
                    .collect();
            }
        }
        shared.lock().unwrap_or_else(PoisonError::into_inner).done = true;
    }

    /// Drains the listen socket into the link towards the upstream.
    fn read_clients(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.listen.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let Some(idx) = self.client(from) else {
                self.stats.refused += 1;
                continue;
            };
            let now = self.now();
            self.up.offer(now, idx, &buf[..n]);
        }
    }

    /// Drains client `i`'s upstream socket into the link back.
    fn read_upstream(&mut self, i: usize, buf: &mut [u8]) {
        let Some(c) = self.clients.get(i) else {
            return;
        };
        loop {
            let n = match c.socket.recv_from(buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let now = self.now();
            self.down.offer(now, i, &buf[..n]);
        }
    }

    /// The index of `from`'s mapping, made on its first datagram.
    fn client(&mut self, from: SocketAddr) -> Option<usize> {
        if let Some(&i) = self.by_addr.get(&from) {
            return Some(i);
        }
        if self.clients.len() >= self.config.max_clients {
            return None;
        }
        let ip = match self.config.upstream.ip() {
            IpAddr::V4(a) if a.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(a) if a.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let mut socket = UdpSocket::bind(SocketAddr::new(ip, 0)).ok()?;
        let i = self.clients.len();
        self.poll
            .registry()
            .register(&mut socket, Token(i + 1), Interest::READABLE)
            .ok()?;
        self.clients.push(Client { addr: from, socket });
        self.by_addr.insert(from, i);
        Some(i)
    }

    /// Sends everything due.
    fn release(&mut self) {
        let now = self.now();
        let (clients, upstream, listen) = (&self.clients, self.config.upstream, &self.listen);
        let mut failures = 0;
        self.up.release_due(now, |i, bytes| {
            if clients[i].socket.send_to(bytes, upstream).is_err() {
                failures += 1;
            }
        });
        self.down.release_due(now, |i, bytes| {
            if listen.send_to(bytes, clients[i].addr).is_err() {
                failures += 1;
            }
        });
        self.stats.send_failures += failures;
    }
}
