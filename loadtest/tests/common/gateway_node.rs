//! A gateway core as a node of the simulated network, shared by the
//! simulation tests. Included with
//! `#[path = "common/gateway_node.rs"] mod gateway_node;`.
#![allow(dead_code)] // each test binary uses a part

use std::net::SocketAddr;
use std::sync::Arc;

use iax2_config::Config;
use iax2_loadtest::sim::{DynTransmit, Node};
use trunk_core::relay::{CounterSnapshot, Relay, RelayWorker};
use trunk_core::time::Instant;
use trunk_core::transmit::Transmit;

/// Which worker gets a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// By source address, as `SO_REUSEPORT` hashing does: one source
    /// always reaches the same worker.
    BySource,
    /// By call number, as the gateway's reuseport CBPF program steers
    /// (gateway/src/steering.rs): the source call number of full and mini
    /// frames, the first entry's of trunk frames.
    CallNumber,
    /// Each datagram to the next worker: every call is handled by both.
    RoundRobin,
}

/// A gateway core: one `Relay` and its workers behind one address.
pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) workers: Vec<RelayWorker>,
    dispatch: Dispatch,
    next: usize,
    scratch: Vec<u8>,
}

impl Gateway {
    pub(crate) fn new(
        listen: SocketAddr,
        config: &Config,
        epoch: Instant,
        seed: u64,
        workers: usize,
        dispatch: Dispatch,
    ) -> Self {
        // The relay assigns trunk entries to workers by their count.
        let mut config = config.clone();
        config.workers = std::num::NonZeroUsize::new(workers).unwrap();
        let relay = Arc::new(Relay::new(&config, epoch, seed));
        Self {
            addr: listen,
            workers: (0..workers)
                .map(|i| RelayWorker::new(Arc::clone(&relay), i))
                .collect(),
            dispatch,
            next: 0,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn relay(&self) -> &Relay {
        self.workers[0].relay()
    }

    /// The counters of all workers, summed.
    pub(crate) fn counters(&self) -> CounterSnapshot {
        let mut total = CounterSnapshot::default();
        for w in &self.workers {
            total.merge(&w.counters().snapshot());
        }
        total
    }

    fn worker_for(&mut self, from: SocketAddr, datagram: &[u8]) -> usize {
        let n = self.workers.len();
        match self.dispatch {
            Dispatch::BySource => source_hash(from) % n,
            Dispatch::CallNumber => steer(datagram) % n,
            Dispatch::RoundRobin => {
                self.next = (self.next + 1) % n;
                self.next
            }
        }
    }

    pub(crate) fn check(&self) {
        if let Err(e) = self.relay().check_invariants() {
            panic!("gateway {}: {e}", self.addr);
        }
    }
}

/// A fixed, documented hash of a source address (IPv4 address plus port).
fn source_hash(a: SocketAddr) -> usize {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(_) => 0,
    };
    usize::try_from(ip).unwrap() + usize::from(a.port())
}

/// The call number the gateway's steering program reads (0 when the
/// datagram is too short, as the kernel's program then returns 0).
fn steer(datagram: &[u8]) -> usize {
    let word = |at: usize| {
        datagram.get(at..at + 2).map_or(0, |b| {
            usize::from(u16::from_be_bytes([b[0], b[1]]) & 0x7fff)
        })
    };
    match datagram {
        [0, 0, video, ..] if video & 0x80 != 0 => word(2),
        [0, 0, _, data, ..] if data & 1 != 0 => word(10),
        [0, 0, ..] => word(8),
        _ => word(0),
    }
}

impl Node for Gateway {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut dyn Transmit,
    ) {
        let i = self.worker_for(from, datagram);
        self.scratch.clear();
        self.scratch.extend_from_slice(datagram);
        self.workers[i].handle_datagram(now, from, &mut self.scratch, &mut DynTransmit(out));
        // Entries of other workers' calls go to them, as the gateway's
        // handoff does (reading a trunk frame leaves it unchanged).
        let others = self.workers[i].take_handoff();
        for j in others.iter() {
            self.scratch.clear();
            self.scratch.extend_from_slice(datagram);
            self.workers[j].handle_handed(now, from, &mut self.scratch, &mut DynTransmit(out));
        }
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut dyn Transmit) {
        for w in &mut self.workers {
            if w.poll_timeout().is_some_and(|t| t <= now) {
                w.handle_timeout(now, &mut DynTransmit(out));
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.workers
            .iter()
            .filter_map(RelayWorker::poll_timeout)
            .min()
    }
}
