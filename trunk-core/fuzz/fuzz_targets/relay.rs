//! cargo-fuzz target: `trunk_core::fuzzing::relay`.
//!
//! Byte programs of datagrams from peers and strangers into one relay
//! core; the call table's invariants hold and no call is left behind.
//! The invariants live in `trunk-core/src/fuzzing.rs`; see `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trunk_core::fuzzing::relay(data));
