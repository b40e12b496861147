//! Classifying a datagram and dispatching to the right frame type
//! (PROTOCOL.md 1).

use super::codes::MetaCommand;
use super::error::{Result, Structure, WireError};
use super::full::{FullFrame, FullFrameRepr};
use super::meta::{MetaFrame, MetaFrameRepr};
use super::mini::{MiniFrame, MiniFrameRepr};
use super::trunk::{MetaTrunkFrame, MetaTrunkFrameRepr};
use super::video::{VideoMiniFrame, VideoMiniFrameRepr};

/// Shortest datagram worth looking at; Asterisk drops shorter ones as
/// "midget packets".
pub const MIN_DATAGRAM_LEN: usize = 4;

/// The kind of an IAX2 datagram, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Full frame (F bit set).
    Full,
    /// Mini voice frame.
    Mini,
    /// Video mini frame (meta, video bit set).
    VideoMini,
    /// Meta trunk frame (meta command 0x01).
    MetaTrunk,
    /// Any other meta frame.
    Meta,
}

/// Classifies a datagram by its first bytes, in Asterisk's order: meta
/// video, other meta, full, mini. Errors on datagrams shorter than 4 bytes;
/// the length of the chosen kind is checked when its view is built.
pub fn classify(bytes: &[u8]) -> Result<FrameKind> {
    match bytes {
        [0, 0, b2, _, ..] if b2 & 0x80 != 0 => Ok(FrameKind::VideoMini),
        [0, 0, b2, _, ..] if *b2 == MetaCommand::Trunk.code() => Ok(FrameKind::MetaTrunk),
        [0, 0, _, _, ..] => Ok(FrameKind::Meta),
        [b0, _, _, _, ..] if b0 & 0x80 != 0 => Ok(FrameKind::Full),
        [_, _, _, _, ..] => Ok(FrameKind::Mini),
        _ => Err(WireError::truncated(
            Structure::Datagram,
            0,
            MIN_DATAGRAM_LEN,
            bytes.len(),
        )),
    }
}

/// The kind of a `Frame` or `FrameRepr`, whose variants share names.
macro_rules! kind_of {
    ($frame:expr) => {
        match $frame {
            Self::Full(_) => FrameKind::Full,
            Self::Mini(_) => FrameKind::Mini,
            Self::VideoMini(_) => FrameKind::VideoMini,
            Self::MetaTrunk(_) => FrameKind::MetaTrunk,
            Self::Meta(_) => FrameKind::Meta,
        }
    };
}

/// A received datagram as a checked view of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Full frame.
    Full(FullFrame<&'a [u8]>),
    /// Mini voice frame.
    Mini(MiniFrame<&'a [u8]>),
    /// Video mini frame.
    VideoMini(VideoMiniFrame<&'a [u8]>),
    /// Meta trunk frame.
    MetaTrunk(MetaTrunkFrame<&'a [u8]>),
    /// Other meta frame.
    Meta(MetaFrame<&'a [u8]>),
}

impl<'a> Frame<'a> {
    /// Classifies `bytes` and builds the checked view.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        Ok(match classify(bytes)? {
            FrameKind::Full => Self::Full(FullFrame::new_checked(bytes)?),
            FrameKind::Mini => Self::Mini(MiniFrame::new_checked(bytes)?),
            FrameKind::VideoMini => Self::VideoMini(VideoMiniFrame::new_checked(bytes)?),
            FrameKind::MetaTrunk => Self::MetaTrunk(MetaTrunkFrame::new_checked(bytes)?),
            FrameKind::Meta => Self::Meta(MetaFrame::new_checked(bytes)?),
        })
    }

    /// The kind.
    pub fn kind(&self) -> FrameKind {
        kind_of!(self)
    }
}

/// An owned frame of any kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FrameRepr {
    /// Full frame.
    Full(FullFrameRepr),
    /// Mini voice frame.
    Mini(MiniFrameRepr),
    /// Video mini frame.
    VideoMini(VideoMiniFrameRepr),
    /// Meta trunk frame.
    MetaTrunk(MetaTrunkFrameRepr),
    /// Other meta frame.
    Meta(MetaFrameRepr),
}

impl FrameRepr {
    /// Classifies and parses a datagram strictly: an IAX frame's IEs and a
    /// trunk frame's entries must all be whole.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Ok(match classify(bytes)? {
            FrameKind::Full => Self::Full(FullFrameRepr::parse(bytes)?),
            FrameKind::Mini => Self::Mini(MiniFrameRepr::parse(bytes)?),
            FrameKind::VideoMini => Self::VideoMini(VideoMiniFrameRepr::parse(bytes)?),
            FrameKind::MetaTrunk => Self::MetaTrunk(MetaTrunkFrameRepr::parse(bytes)?),
            FrameKind::Meta => Self::Meta(MetaFrameRepr::parse(bytes)?),
        })
    }

    /// The kind.
    pub fn kind(&self) -> FrameKind {
        kind_of!(self)
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Full(f) => f.buffer_len(),
            Self::Mini(f) => f.buffer_len(),
            Self::VideoMini(f) => f.buffer_len(),
            Self::MetaTrunk(f) => f.buffer_len(),
            Self::Meta(f) => f.buffer_len(),
        }
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Self::Full(f) => f.emit(buf),
            Self::Mini(f) => f.emit(buf),
            Self::VideoMini(f) => f.emit(buf),
            Self::MetaTrunk(f) => f.emit(buf),
            Self::Meta(f) => f.emit(buf),
        }
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}
