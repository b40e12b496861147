//! cargo-fuzz target: `iax2_config::fuzzing::yaml`.
//!
//! Any configuration file text: loaded or refused with one located error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| iax2_config::fuzzing::yaml(data));
