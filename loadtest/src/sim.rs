//! An in-memory network with a virtual clock for sans-IO nodes.
//!
//! The test owns its nodes (endpoints, and later the relay's core) and
//! lends them to [`SimNet::run_until`], which repeatedly advances the clock
//! to the earliest of the nodes' `poll_timeout`s and the next datagram's
//! delivery time, delivers what is due and runs what timed out. Every
//! datagram takes [`SimNet::latency`] to arrive unless a filter drops or
//! delays it. Nothing depends on the wall clock, so a run is deterministic.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};

use crate::endpoint::Endpoint;

/// A sans-IO participant of a [`SimNet`].
pub trait Node {
    /// The node's address: datagrams to it are delivered to it, datagrams
    /// it sends come from it.
    fn addr(&self) -> SocketAddr;
    /// Handles a datagram.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut dyn Transmit,
    );
    /// Runs what is due.
    fn handle_timeout(&mut self, now: Instant, out: &mut dyn Transmit);
    /// When `handle_timeout` should next run.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Makes a `dyn Transmit` usable where a sized `Transmit` is expected.
pub struct DynTransmit<'a>(pub &'a mut dyn Transmit);

impl Transmit for DynTransmit<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        self.0.buffer()
    }
    fn commit(&mut self, to: SocketAddr, len: usize) {
        self.0.commit(to, len);
    }
}

impl Node for Endpoint {
    fn addr(&self) -> SocketAddr {
        self.config().local
    }
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut dyn Transmit,
    ) {
        Self::handle_datagram(self, now, from, datagram, &mut DynTransmit(out));
    }
    fn handle_timeout(&mut self, now: Instant, out: &mut dyn Transmit) {
        Self::handle_timeout(self, now, &mut DynTransmit(out));
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
}

/// A datagram on the simulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// When it was sent.
    pub sent_at: Instant,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What the network does with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver after the network latency.
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver after the latency plus this much.
    Delay(Duration),
}

/// A filter deciding each datagram's fate.
pub type Filter = Box<dyn FnMut(&Datagram) -> Verdict>;

/// Collects a node's output during one call into the node.
#[derive(Debug)]
struct Outbox {
    scratch: Box<[u8; MAX_DATAGRAM]>,
    sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl Transmit for Outbox {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.scratch[..]
    }
    fn commit(&mut self, to: SocketAddr, len: usize) {
        let len = len.min(MAX_DATAGRAM);
        self.sent.push((to, self.scratch[..len].to_vec()));
    }
}

/// The in-memory network. See the module documentation.
pub struct SimNet {
    now: Instant,
    latency: Duration,
    seq: u64,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    datagrams: HashMap<u64, Datagram>,
    filter: Option<Filter>,
    capture: Option<Vec<(Datagram, Verdict)>>,
    outbox: Outbox,
    /// Datagrams delivered.
    pub delivered: u64,
    /// Datagrams dropped by the filter.
    pub dropped: u64,
    /// Datagrams to an address no node had.
    pub unroutable: u64,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet")
            .field("now", &self.now)
            .field("latency", &self.latency)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl SimNet {
    /// A network whose datagrams take `latency` to arrive; the clock starts
    /// at `start`.
    pub fn new(start: Instant, latency: Duration) -> Self {
        Self {
            now: start,
            latency,
            seq: 0,
            in_flight: BinaryHeap::new(),
            datagrams: HashMap::new(),
            filter: None,
            capture: None,
            outbox: Outbox {
                scratch: Box::new([0; MAX_DATAGRAM]),
                sent: Vec::new(),
            },
            delivered: 0,
            dropped: 0,
            unroutable: 0,
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The one-way latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Installs a filter (replacing any).
    pub fn set_filter(&mut self, f: impl FnMut(&Datagram) -> Verdict + 'static) {
        self.filter = Some(Box::new(f));
    }

    /// Removes the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Starts keeping a copy of every datagram sent, with its verdict.
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Takes the datagrams captured so far.
    pub fn take_capture(&mut self) -> Vec<(Datagram, Verdict)> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A sink for what a node sends outside `run_until` (e.g. the NEW of
    /// `Endpoint::originate`); its datagrams enter the network from `from`.
    pub fn sender(&mut self, from: SocketAddr) -> SimSender<'_> {
        SimSender { net: self, from }
    }

    fn enqueue(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let d = Datagram {
            from,
            to,
            sent_at: self.now,
            bytes,
        };
        let verdict = self.filter.as_mut().map_or(Verdict::Deliver, |f| f(&d));
        if let Some(c) = &mut self.capture {
            c.push((d.clone(), verdict));
        }
        let at = match verdict {
            Verdict::Drop => {
                self.dropped += 1;
                return;
            }
            Verdict::Deliver => self.now + self.latency,
            Verdict::Delay(extra) => self.now + self.latency + extra,
        };
        self.seq += 1;
        self.in_flight.push(Reverse((at, self.seq)));
        self.datagrams.insert(self.seq, d);
    }

    fn flush_outbox(&mut self, from: SocketAddr) {
        let sent = std::mem::take(&mut self.outbox.sent);
        for (to, bytes) in sent {
            self.enqueue(from, to, bytes);
        }
    }

    /// Runs the network and `nodes` until the clock reaches `until`.
    pub fn run_until(&mut self, until: Instant, nodes: &mut [&mut dyn Node]) {
        loop {
            let next_timer = nodes.iter().filter_map(|n| n.poll_timeout()).min();
            let next_datagram = self.in_flight.peek().map(|Reverse((t, _))| *t);
            let next = [next_timer, next_datagram].into_iter().flatten().min();
            let Some(t) = next.filter(|t| *t <= until) else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(t);
            let now = self.now;
            while let Some(&Reverse((at, seq))) = self.in_flight.peek() {
                if at > now {
                    break;
                }
                self.in_flight.pop();
                let Some(d) = self.datagrams.remove(&seq) else {
                    continue;
                };
                match nodes.iter_mut().find(|n| n.addr() == d.to) {
                    Some(node) => {
                        self.delivered += 1;
                        node.handle_datagram(now, d.from, &d.bytes, &mut self.outbox);
                        let from = node.addr();
                        self.flush_outbox(from);
                    }
                    None => self.unroutable += 1,
                }
            }
            for node in nodes.iter_mut() {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now, &mut self.outbox);
                    let from = node.addr();
                    self.flush_outbox(from);
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration, nodes: &mut [&mut dyn Node]) {
        let until = self.now + d;
        self.run_until(until, nodes);
    }
}

/// A [`Transmit`] that puts datagrams on a [`SimNet`].
pub struct SimSender<'a> {
    net: &'a mut SimNet,
    from: SocketAddr,
}

impl Transmit for SimSender<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.net.outbox.scratch[..]
    }
    fn commit(&mut self, to: SocketAddr, len: usize) {
        let len = len.min(MAX_DATAGRAM);
        let bytes = self.net.outbox.scratch[..len].to_vec();
        self.net.enqueue(self.from, to, bytes);
    }
}
