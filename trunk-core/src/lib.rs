//! Sans-IO core of iax2-trunk.
//!
//! This crate holds no sockets, threads or clocks: bytes and a clock go in,
//! bytes and timers come out. It holds the IAX2 wire codec ([`wire`]) and
//! the relay built on it ([`relay`]: call table, call-number translation,
//! routing, the trunk emitter and splitter, call timers). Time is
//! [`time::Instant`], passed in by the caller; outgoing datagrams go to a
//! [`transmit::Transmit`] the caller provides.
//!
//! # The wire codec in one paragraph
//!
//! Every frame kind of RFC 5456 (with Asterisk's extensions) has a
//! zero-copy *view* over a byte slice (`FullFrame<T>`, `MiniFrame<T>`,
//! `VideoMiniFrame<T>`, `MetaTrunkFrame<T>`) whose accessors never panic
//! once the view was built with `new_checked`, and an owned *repr*
//! (`FullFrameRepr`, ...) with `parse`, `emit` and `buffer_len`. Unknown
//! codes are kept as `Unknown(n)` and re-emitted unchanged, so
//! `emit(parse(bytes)) == bytes` for every datagram that parses.
#![forbid(unsafe_code)]

pub mod fuzzing;
pub mod peering;
pub mod relay;
pub mod time;
pub mod transmit;
pub mod wire;
