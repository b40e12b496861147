//! cargo-fuzz target: `iax2_config::fuzzing::key_file`.
//!
//! Any key file text: read as a private and a public RSA key, or refused
//! with one line that repeats nothing of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| iax2_config::fuzzing::key_file(data));
