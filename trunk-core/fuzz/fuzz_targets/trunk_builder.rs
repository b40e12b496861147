//! cargo-fuzz target: `trunk_core::fuzzing::trunk_builder`.
//!
//! The trunk frame builder: packed frames parse back and split into mini frames.
//! The invariants live in `trunk-core/src/fuzzing.rs`; see `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trunk_core::fuzzing::trunk_builder(data));
