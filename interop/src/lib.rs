//! Interoperability harness: a gateway pair on loopback, emulated PBXs and
//! registrars around it, and drivers for third-party IAX2 software.
//!
//! The tests in `tests/` put IAX2 stacks we did not write (iaxmodem, which
//! is libiax2 and spandsp; the `iax2` crate) and Asterisk's documented
//! trunking behaviour against the gateways.

pub mod lab;
pub mod modem;
pub mod netns;
pub mod process;
pub mod udp_nat;
