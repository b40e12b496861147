//! cargo-fuzz target: `trunk_core::fuzzing::rewrite`.
//!
//! In-place call number rewriting touches only the call number bits.
//! The invariants live in `trunk-core/src/fuzzing.rs`; see `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trunk_core::fuzzing::rewrite(data));
