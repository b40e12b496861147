//! cargo-fuzz target: `trunk_core::fuzzing::datagram`.
//!
//! Any datagram: classification, views, accessors and strict reprs round-trip.
//! The invariants live in `trunk-core/src/fuzzing.rs`; see `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trunk_core::fuzzing::datagram(data));
