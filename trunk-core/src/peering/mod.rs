//! Gateway-to-gateway peering, sans-IO: the timing rules a gateway applies
//! to its own links (registration retries, liveness probes), kept apart
//! from the relay so each can be tested on a virtual clock.
//!
//! - [`auth`]: the MD5 and RSA answers to a registration challenge.
//! - [`backoff`]: exponential backoff with jitter and a cap, for retries
//!   that must never become a fixed short loop (Asterisk's registration
//!   "panic mode" resends every few seconds with no setting to change it).
//! - [`liveness`]: a link's state (OK, LAGGED, UNREACHABLE) and round-trip
//!   time from the probes sent on it and the answers that came back.
//! - [`registration`]: when a gateway registers with its registrar, and
//!   what the answers do (refresh, backoff, recovery at once).

pub mod auth;
pub mod backoff;
pub mod liveness;
pub mod registration;
