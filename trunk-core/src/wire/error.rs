//! Typed errors of the wire codec.
//!
//! Every error says what was wrong and where, so a gateway can count the drop
//! under a precise reason and an operator can read why.

use super::ie::IeType;

/// What kind of datagram or structure an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// Any IAX2 datagram (before classification).
    Datagram,
    /// A full frame (12-byte header).
    FullFrame,
    /// A mini (voice) frame (4-byte header).
    MiniFrame,
    /// A video mini frame (6-byte header).
    VideoMiniFrame,
    /// A meta frame (4-byte meta header, trunk header for meta trunk frames).
    MetaFrame,
    /// An entry of a meta trunk frame.
    TrunkEntry,
    /// An information element.
    Ie,
}

impl core::fmt::Display for Structure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Datagram => "datagram",
            Self::FullFrame => "full frame",
            Self::MiniFrame => "mini frame",
            Self::VideoMiniFrame => "video mini frame",
            Self::MetaFrame => "meta frame",
            Self::TrunkEntry => "trunk entry",
            Self::Ie => "information element",
        })
    }
}

/// An error of the wire codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes end before the structure does.
    #[error("truncated {what}: needs {needed} bytes at offset {offset}, {got} present")]
    Truncated {
        /// What was being read.
        what: Structure,
        /// Offset in the datagram where the structure starts.
        offset: usize,
        /// Bytes the structure needs from `offset`.
        needed: usize,
        /// Bytes present from `offset`.
        got: usize,
    },
    /// The datagram is not of the kind the caller asked for.
    #[error("not a {expected}: first bytes {first:02x?}")]
    WrongKind {
        /// The kind asked for.
        expected: Structure,
        /// Up to the first four bytes, for diagnosis.
        first: [u8; 4],
    },
    /// A meta frame carries a meta command other than the one expected.
    #[error("meta command {found:#04x} where {expected:#04x} was expected")]
    WrongMetaCommand {
        /// The command expected (0x01 for trunk).
        expected: u8,
        /// The command found.
        found: u8,
    },
    /// A call number does not fit in 15 bits.
    #[error("call number {0} is out of range (0..=32767)")]
    CallNumberOutOfRange(u16),
    /// An IE's data is longer than its one-byte length field can say.
    #[error("{ie} data is {len} bytes, at most 255 fit")]
    IeTooLong {
        /// The IE.
        ie: IeType,
        /// The data length asked for.
        len: usize,
    },
    /// A fixed-size IE has the wrong length.
    #[error("{ie} must be {expected} bytes, found {got}")]
    IeBadLength {
        /// The IE.
        ie: IeType,
        /// What the IE's definition allows, in words.
        expected: &'static str,
        /// The length found.
        got: usize,
    },
    /// An IE holds a value its definition does not allow.
    #[error("{ie} holds an invalid value: {why}")]
    IeBadValue {
        /// The IE.
        ie: IeType,
        /// What is wrong.
        why: &'static str,
    },
    /// A trunk entry payload is longer than the 16-bit length field allows.
    #[error("trunk entry payload of {len} bytes exceeds 65535")]
    TrunkEntryTooLong {
        /// The payload length.
        len: usize,
    },
    /// A field holds a value its frame cannot carry.
    #[error("invalid {field}: {why}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The output buffer is too small for what is to be emitted.
    #[error("buffer of {got} bytes is too small, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}

impl WireError {
    pub(crate) fn truncated(what: Structure, offset: usize, needed: usize, got: usize) -> Self {
        Self::Truncated {
            what,
            offset,
            needed,
            got,
        }
    }

    pub(crate) fn wrong_kind(expected: Structure, bytes: &[u8]) -> Self {
        let mut first = [0u8; 4];
        let n = bytes.len().min(4);
        first[..n].copy_from_slice(&bytes[..n]);
        Self::WrongKind { expected, first }
    }
}

/// Result type of the wire codec.
pub type Result<T> = core::result::Result<T, WireError>;
