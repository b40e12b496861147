//! The iax2-trunk gateway: the I/O shell around [`trunk_core`]'s relay.
//!
//! The core decides everything about a datagram; this crate moves bytes
//! and time in and out of it (DESIGN.md, "Runtime"):
//!
//! - [`socket`] opens one `SO_REUSEPORT` UDP socket per worker, so the
//!   kernel spreads flows over the workers, and [`steering`] attaches a
//!   BPF program that spreads one peer's calls by IAX2 call number;
//! - [`batch`] receives and sends with `recvmmsg`/`sendmmsg` over buffers
//!   allocated once, and never blocks on a full socket (it queues a bounded
//!   amount and counts what it drops);
//! - a worker thread per core drives one [`trunk_core::relay::RelayWorker`]
//!   from its own `mio::Poll`, with a bounded receive budget per wakeup;
//! - [`start`] builds the shared [`Relay`](trunk_core::relay::Relay),
//!   spawns the workers and returns a [`GatewayHandle`] that reads the
//!   merged counters and stops them;
//! - [`lifecycle`] drains a gateway (SIGTERM: no new calls, the others
//!   finish) and tells systemd how it is doing (`sd_notify`).
//!
//! Nothing here is process-wide except the clock origin ([`clock`]):
//! several gateways may run in one process (tests do), and signals are
//! the binary's business, not [`start`]'s.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod batch;
pub mod clock;
mod handoff;
pub mod lifecycle;
mod link_port;
mod links;
mod ratelimit;
pub mod reload;
pub mod runtime;
pub mod socket;
pub mod steering;
mod worker;

pub use batch::{IoCounters, IoSnapshot};
pub use lifecycle::{DrainEnd, DrainOutcome};
pub use runtime::{start, GatewayHandle};
