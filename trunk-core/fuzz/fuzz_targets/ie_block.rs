//! cargo-fuzz target: `trunk_core::fuzzing::ie_block`.
//!
//! An IE block: owned and borrowed parses agree and re-emit exactly.
//! The invariants live in `trunk-core/src/fuzzing.rs`; see `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trunk_core::fuzzing::ie_block(data));
