//! The relay: call-number translation, routing and trunking (DESIGN.md,
//! "The relay model").
//!
//! # Driving contract
//!
//! A [`Relay`] holds what all workers share: the peers of the config and
//! the call table. Each worker thread owns one [`RelayWorker`] over an
//! `Arc<Relay>` and drives it with:
//!
//! 1. [`RelayWorker::handle_datagram`] for every datagram its socket
//!    receives. The datagram is rewritten in place and whatever must leave
//!    is written to the [`Transmit`] at once.
//! 2. [`RelayWorker::handle_timeout`] when the instant given by
//!    [`RelayWorker::poll_timeout`] has come (trunk ticks, and on worker 0
//!    the call timers).
//! 3. After either call, the caller re-reads `poll_timeout`: any input may
//!    move the next deadline.
//!
//! Time comes in as `now`; randomness as the seed given to [`Relay::new`].
//! The same inputs in the same order give the same outputs.

mod counters;

pub use counters::{CounterSnapshot, Counters, DropReason};

use std::net::SocketAddr;
use std::sync::Arc;

use iax2_config::Config;

use crate::time::Instant;
use crate::transmit::Transmit;

/// What every worker shares: peers, routes and the call table.
#[derive(Debug)]
pub struct Relay {
    _private: (),
}

impl Relay {
    /// Builds the relay for `config`. `now` anchors the trunk clocks;
    /// `seed` drives call-number allocation.
    pub fn new(config: &Config, now: Instant, seed: u64) -> Self {
        let _ = (config, now, seed);
        unimplemented!()
    }

    /// Calls in the table (set up, up or lingering).
    pub fn active_calls(&self) -> usize {
        unimplemented!()
    }
}

/// One worker's side of the relay: its trunk buffers, its timers and its
/// counters.
#[derive(Debug)]
pub struct RelayWorker {
    _private: (),
}

impl RelayWorker {
    /// Worker `index` of the relay. Worker 0 also runs the call timers.
    pub fn new(relay: Arc<Relay>, index: usize) -> Self {
        let _ = (relay, index);
        unimplemented!()
    }

    /// Handles one received datagram. `datagram` is rewritten in place.
    pub fn handle_datagram<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        let _ = (now, from, datagram, out);
        unimplemented!()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!()
    }

    /// Runs what is due at `now`: trunk flushes and call timers.
    pub fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T) {
        let _ = (now, out);
        unimplemented!()
    }

    /// This worker's counters (shared so metrics can read them).
    pub fn counters(&self) -> Arc<Counters> {
        unimplemented!()
    }
}
