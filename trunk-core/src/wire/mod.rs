//! The IAX2 wire codec (RFC 5456, with Asterisk's behaviour where it
//! differs; see PROTOCOL.md).
//!
//! # Views and reprs
//!
//! Each frame kind has a zero-copy view over any `T: AsRef<[u8]>`
//! ([`FullFrame`], [`MiniFrame`], [`VideoMiniFrame`], [`MetaTrunkFrame`],
//! [`MetaFrame`]) and an owned representation ([`FullFrameRepr`], ...) with
//! `parse`, `emit` and `buffer_len`. [`Frame::parse`] and
//! [`FrameRepr::parse`] classify a datagram first (PROTOCOL.md 1).
//! Setters exist only for `T: AsMut<[u8]>`; the relay rewrites call numbers
//! in place with them and sends the same buffer on.
//!
//! # The no-panic contract
//!
//! - Parsing any byte string never panics and allocates at most in
//!   proportion to its length.
//! - Once a view's `new_checked` succeeded, none of its accessors panics.
//!   IEs and trunk entries are checked as they are iterated: the iterators
//!   yield one typed error and stop at the first element cut short.
//! - `new_unchecked` skips the checks; its accessors may panic on a short
//!   buffer. Use it only on buffers this program built.
//! - Codes this codec does not know are kept (`Unknown(n)`, raw subclass
//!   byte, raw IE data), so for every datagram `d` that
//!   [`FrameRepr::parse`] accepts, emitting the result gives `d` again.

mod call_number;
mod codes;
mod error;
mod format;
mod frame;
mod full;
mod ie;
mod ie_values;
mod macros;
mod meta;
mod mini;
mod subclass;
mod trunk;
mod trunk_builder;
mod video;
mod wrapping;

pub use call_number::CallNumber;
pub use codes::{ControlSubclass, FrameType, IaxSubclass, MetaCommand};
pub use error::{Result, Structure, WireError};
pub use format::MediaFormat;
pub use frame::{classify, Frame, FrameKind, FrameRepr, MIN_DATAGRAM_LEN};
pub use full::{FullFrame, FullFramePayload, FullFrameRepr};
pub use ie::{
    decode_str, decode_u16, decode_u32, decode_u8, decode_versioned_u64, Ie, IeBlock, IeIter,
    IeList, IeLookup, IeRef, IeType, IE_HEADER_LEN, IE_MAX_DATA_LEN,
};
pub use ie_values::{
    ApparentAddr, AuthMethods, Encryption, FamilyOrder, IaxDateTime, ReceiverReport,
};
pub use meta::{MetaFrame, MetaFrameRepr};
pub use mini::{MiniFrame, MiniFrameRepr};
pub use subclass::Subclass;
pub use trunk::{
    MetaTrunkFrame, MetaTrunkFrameRepr, TrunkEntries, TrunkEntry, TrunkEntryLocation,
    TrunkEntryRepr, TrunkLayout,
};
pub use trunk_builder::{TrunkFrameBuilder, TrunkPushError};
pub use video::{VideoMiniFrame, VideoMiniFrameRepr};
pub use wrapping::{SeqNo, SeqOrder, Timestamp15, Timestamp16};
