//! Configuration of the iax2-trunk gateway.
//!
//! Not built yet: the YAML schema, defaults and validation arrive with the
//! relay. This crate exists so the workspace shows the architecture.
#![forbid(unsafe_code)]
