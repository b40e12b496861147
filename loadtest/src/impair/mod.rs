//! A user-space UDP impairment proxy, for networks `tc netem` cannot
//! shape: seeded loss, burst loss, reordering, duplication, delay with
//! jitter and a rate limit.
//!
//! [`model`] decides each datagram's fate on a caller's clock (sans-IO:
//! the same seed and arrivals give the same decisions); [`link`] holds the
//! datagrams it delays in a bounded queue of recycled buffers and counts
//! what happened; [`proxy`] is the socket shell (one upstream socket per
//! client source, as a NAT gives each an entry, both directions impaired
//! independently); [`cmd`] is `loadtest impair`.
//!
//! ```
//! use std::time::Duration;
//! use iax2_loadtest::impair::{Fate, Model, Settings};
//! use trunk_core::time::Instant;
//!
//! let settings = Settings { loss: 0.05, delay: Duration::from_millis(10), ..Settings::default() };
//! let mut model = Model::new(&settings, 7);
//! let mut lost = 0;
//! for i in 0..10_000u64 {
//!     match model.decide(Instant::from_millis(i), 200) {
//!         Fate::Drop(_) => lost += 1,
//!         Fate::Deliver { at, .. } => assert!(at >= Instant::from_millis(i + 10)),
//!     }
//! }
//! assert!((400..600).contains(&lost));
//! ```

pub mod cmd;
pub mod link;
pub mod model;
pub mod proxy;

pub use link::{Counters, Link};
pub use model::{Burst, DropCause, Fate, JitterShape, Model, Rate, Settings};
pub use proxy::{Proxy, ProxyConfig};
