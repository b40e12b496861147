//! Starting and stopping a whole gateway: the relay and its workers.
//!
//! [`start`] is what the binary, the tests and the load generator's demo
//! call. It keeps no process-wide state and installs no signal handlers,
//! so one process may run several gateways (a test runs a pair on two
//! loopback ports); each is stopped through its [`GatewayHandle`].

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use iax2_config::Config;
use trunk_core::relay::{CounterSnapshot, Relay, RelayWorker};

use crate::admin::AdminState;
use crate::batch::IoSnapshot;
use crate::clock;
use crate::link_port::LinkMover;
use crate::socket::{self, DEFAULT_BUFFER_BYTES};
use crate::worker::Worker;

/// A running gateway. Dropping it stops it too (see [`stop`](Self::stop)).
#[derive(Debug)]
pub struct GatewayHandle {
    relay: Arc<Relay>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
    /// Set once every worker runs.
    admin: Option<Arc<AdminState>>,
    /// Logs gateway link state changes (`crate::links`).
    links: Option<std::thread::JoinHandle<()>>,
}

/// Builds the relay for `config`, binds `config.workers` reuseport
/// sockets to `config.listen` and starts one worker thread on each.
///
/// A listen port of 0 picks a free port for the first socket and binds the
/// others to the same one; [`GatewayHandle::local_addr`] tells which.
/// Errors are those of binding (address in use, permission) or of starting
/// a thread; on error, workers already started are stopped.
pub fn start(config: &Config) -> io::Result<GatewayHandle> {
    let seed = os_seed()?;
    let relay = Arc::new(Relay::new(config, clock::now(), seed));
    let first = socket::bind(config.listen, DEFAULT_BUFFER_BYTES)?;
    let local_addr = first.socket.local_addr()?;
    let (recv_buffer, send_buffer) = (granted(first.recv_buffer), granted(first.send_buffer));
    if recv_buffer < DEFAULT_BUFFER_BYTES {
        tracing::warn!(
            requested = DEFAULT_BUFFER_BYTES,
            granted = recv_buffer,
            "socket receive buffer smaller than requested; raise net.core.rmem_max"
        );
    }
    let workers = config.workers.get();
    if workers > 1 {
        if let Err(e) = crate::steering::attach(&first.socket, workers) {
            // Still correct without it, only less balanced for big peers.
            tracing::warn!(error = %e, "cannot attach the call-number steering program");
        }
    }
    let mut handle = GatewayHandle {
        relay,
        local_addr,
        stop: Arc::new(AtomicBool::new(false)),
        workers: Vec::with_capacity(workers),
        admin: None,
        links: None,
    };
    let mut polls = (0..workers)
        .map(|_| Worker::poll())
        .collect::<io::Result<Vec<_>>>()?;
    let mut handoffs = crate::handoff::link(polls.iter().map(|(_, w)| Arc::clone(w)).collect());
    let (link_txs, mut link_rxs) = LinkMover::channels(workers);
    let mover = LinkMover::new(
        local_addr.ip(),
        link_txs
            .into_iter()
            .zip(polls.iter().map(|(_, w)| Arc::clone(w)))
            .collect(),
    );
    let mut next_socket = Some(first.socket);
    for index in 0..workers {
        let socket = match next_socket.take() {
            Some(s) => s,
            None => socket::bind(local_addr, DEFAULT_BUFFER_BYTES)?.socket,
        };
        let relay = Arc::clone(&handle.relay);
        let poll = polls.remove(0);
        // Alone, a worker owns every entry and hands nothing over.
        let handoff = (workers > 1).then(|| handoffs.remove(0));
        let worker = Worker::spawn_linked(
            index,
            socket,
            Arc::clone(&handle.stop),
            poll,
            handoff,
            Some(link_rxs.remove(0)),
            config.udp_gso,
            move || RelayWorker::new(relay, index),
        )?;
        handle.workers.push(worker);
    }
    let admin = Arc::new(AdminState::new(
        Arc::clone(&handle.relay),
        handle
            .workers
            .iter()
            .map(|w| Arc::clone(w.counters()))
            .collect(),
        handle
            .workers
            .iter()
            .map(|w| Arc::clone(w.alive()))
            .collect(),
        local_addr,
    ));
    handle.links = Some(crate::links::spawn(
        Arc::clone(&admin),
        Arc::clone(&handle.stop),
        mover,
    )?);
    handle.admin = Some(admin);
    tracing::info!(
        listen = %local_addr,
        workers,
        peers = config.peers.len(),
        routes = config.routes.len(),
        recv_buffer,
        send_buffer,
        "gateway started"
    );
    Ok(handle)
}

impl GatewayHandle {
    /// The address the workers' sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the admin endpoints read (metrics, status, health).
    pub fn admin_state(&self) -> Arc<AdminState> {
        match &self.admin {
            Some(a) => Arc::clone(a),
            // Not reachable: `start` sets it before returning the handle.
            None => Arc::new(AdminState::new(
                Arc::clone(&self.relay),
                Vec::new(),
                Vec::new(),
                self.local_addr,
            )),
        }
    }

    /// The relay the workers share (call table, peers).
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// How many workers were started.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The relay counters, summed over the workers.
    pub fn counters(&self) -> CounterSnapshot {
        let mut total = CounterSnapshot::default();
        for w in &self.workers {
            total.merge(&w.counters().snapshot());
        }
        total
    }

    /// Each worker's relay counters, in worker order (to see how the
    /// kernel and the reuseport program spread the load).
    pub fn worker_counters(&self) -> Vec<CounterSnapshot> {
        self.workers
            .iter()
            .map(|w| w.counters().snapshot())
            .collect()
    }

    /// The socket counters, summed over the workers.
    pub fn io_counters(&self) -> IoSnapshot {
        let mut total = IoSnapshot::default();
        for w in &self.workers {
            total.merge(&w.io().snapshot());
        }
        total
    }

    /// Stops every worker (each sends what it had queued) and waits for
    /// them. Returns the final counters.
    pub fn stop(mut self) -> CounterSnapshot {
        self.shutdown();
        self.counters()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.workers {
            w.wake();
        }
        for w in &mut self.workers {
            w.join();
        }
        if let Some(links) = self.links.take() {
            let _ = links.join();
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if !self.stop.load(Ordering::Acquire) {
            self.shutdown();
        }
    }
}

/// The buffer size the kernel granted, from the one it reports: Linux
/// reports twice the grant (the other half is its bookkeeping allowance).
fn granted(reported: usize) -> usize {
    if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    }
}

/// Eight random bytes for the relay's call-number allocation, so call
/// numbers are not predictable from outside.
fn os_seed() -> io::Result<u64> {
    let mut bytes = [0; 8];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_ne_bytes(bytes))
}
