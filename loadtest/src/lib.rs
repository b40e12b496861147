//! The iax2-trunk call-load generator and PBX emulator.
//!
//! [`endpoint`] is a complete sans-IO IAX2 endpoint that plays an
//! Asterisk-like PBX (NEW, CALLTOKEN, MD5 auth, ACCEPT/RINGING/ANSWER, ACK
//! and retransmission, voice, DTMF, text, HANGUP), built on trunk-core's
//! codec and never on the relay's logic, so a relay bug cannot hide
//! itself. [`sim`] wires endpoints (and anything else sans-IO that
//! implements [`sim::Node`], such as the relay) through an in-memory
//! network with a virtual clock; [`driver`] runs endpoints on real UDP
//! sockets, one PBX on several threads. [`load`] holds the `loadtest`
//! commands (`demo`, `run`, `answer`, `bench`) and their reports;
//! [`forwarder`] is the bench's bare UDP baseline, [`flood`] the floods
//! of `loadtest flood`, [`impair`] the UDP
//! impairment proxy (`loadtest impair`), [`tap`] the counting WAN
//! tap, [`cpu`] the per-thread CPU accounting and [`plot`] the bench's SVG.
//!
//! # A call between two emulated PBXs
//!
//! ```
//! use std::time::Duration;
//! use iax2_loadtest::sim::SimNet;
//! use iax2_loadtest::{Endpoint, EndpointConfig, Event};
//! use trunk_core::time::Instant;
//!
//! let (a_addr, b_addr) = ("10.0.0.1:4569".parse().unwrap(), "10.0.0.2:4569".parse().unwrap());
//! let mut a_cfg = EndpointConfig::new(a_addr, 1);
//! a_cfg.secret = Some("s3cret".into());
//! let mut b_cfg = EndpointConfig::new(b_addr, 2);
//! b_cfg.secret = Some("s3cret".into());
//! b_cfg.require_calltoken = true;
//! let (mut a, mut b) = (Endpoint::new(a_cfg), Endpoint::new(b_cfg));
//!
//! let mut net = SimNet::new(Instant::ZERO, Duration::from_millis(5));
//! let now = net.now();
//! let call = a.originate(now, b_addr, "2001", &mut net.sender(a_addr)).unwrap();
//! net.run_for(Duration::from_secs(2), &mut [&mut a, &mut b]);
//!
//! let events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
//! assert!(events.contains(&Event::Answered { call }));
//! let rx = &a.call_stats(call).unwrap().rx;
//! assert!(rx.received > 90 && rx.lost() == 0 && rx.corrupt == 0);
//! ```

pub mod cpu;
pub mod driver;
pub mod endpoint;
pub mod flood;
pub mod forwarder;
pub mod impair;
pub mod load;
pub mod plot;
pub mod rng;
pub mod sim;
pub mod tap;

pub use endpoint::{
    md5_response, AnswerMode, CallId, CallOwners, CallState, CallStats, Codec, Direction,
    EndReason, EndedCall, Endpoint, EndpointConfig, EndpointStats, Event, FailReason, Measurements,
    RecordedFrame, Shard,
};
