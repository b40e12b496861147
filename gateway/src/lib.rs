//! The iax2-trunk gateway daemon: the I/O shell around trunk-core.
//!
//! Not built yet: sockets, reactors, signals and metrics arrive with the
//! relay. This crate exists so the workspace shows the architecture.
