//! The iax2-trunk call-load generator and PBX emulator.
//!
//! Not built yet: the endpoint, load driver and reports arrive with the load
//! generator. This crate exists so the workspace shows the architecture.
