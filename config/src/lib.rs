//! Configuration of the iax2-trunk gateway: the YAML schema, its defaults
//! and its validation.
//!
//! [`model`] holds the validated [`Config`] the gateway reads.
#![forbid(unsafe_code)]

pub mod model;

pub use model::{
    CalledPrefix, Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts, TrunkFreq, TrunkMtu,
    TrunkSettings, IAX2_PORT,
};
