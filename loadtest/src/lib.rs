//! The iax2-trunk call-load generator and PBX emulator.
//!
//! [`endpoint`] is a complete sans-IO IAX2 endpoint that plays an
//! Asterisk-like PBX (NEW, CALLTOKEN, MD5 auth, ACCEPT/RINGING/ANSWER, ACK
//! and retransmission, voice, DTMF, text, HANGUP), built on trunk-core's
//! codec and never on the relay's logic, so a relay bug cannot hide
//! itself. [`sim`] wires endpoints (and anything else sans-IO) through an
//! in-memory network with a virtual clock; [`driver`] runs one endpoint on
//! a real UDP socket.

pub mod driver;
pub mod endpoint;
pub mod sim;

pub use endpoint::{
    md5_response, AnswerMode, CallId, CallState, CallStats, Codec, Direction, EndReason, EndedCall,
    Endpoint, EndpointConfig, EndpointStats, Event, FailReason, RecordedFrame,
};
