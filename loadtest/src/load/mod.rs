//! The load generator's commands: `demo`, `run`, `answer`, `bench` and
//! `soak`,
//! on top of the sharded drivers ([`crate::driver`]).

pub mod answer;
pub mod bench;
pub mod demo;
pub mod report;
pub mod run;
pub mod soak;
