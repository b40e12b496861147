//! Video mini frames (meta video; RFC 5456 section 8.1.3.1, PROTOCOL.md 2.4).
//!
//! ```text
//! +-------------------------------+-+-----------------------------+
//! |         0x0000                |1|  source call number (15)    |
//! +-------------------------------+-+-----------------------------+
//! |M| timestamp low 15 bits       |  video payload ...            |
//! +-+-----------------------------+
//! ```
//!
//! The RFC leaves the top bit of the timestamp word unnamed; Asterisk uses
//! it as the end-of-frame marker M.

use super::call_number::CallNumber;
use super::error::{Result, Structure, WireError};
use super::macros::{emit_target, view_basics};
use super::wrapping::Timestamp15;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const ZERO: Range<usize> = 0..2;
    pub(super) const SOURCE_CALL: Range<usize> = 2..4;
    pub(super) const TIMESTAMP: Range<usize> = 4..6;
    pub(super) const PAYLOAD: RangeFrom<usize> = 6..;
}

/// Bit marking a video meta frame (byte 2).
const VIDEO_BIT: u16 = 0x8000;
/// End-of-frame marker (bytes 4-5).
const MARKER_BIT: u16 = 0x8000;

/// A zero-copy view of a video mini frame.
///
/// After [`VideoMiniFrame::new_checked`] succeeds no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoMiniFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VideoMiniFrame<T> {
    view_basics!(Structure::VideoMiniFrame, 6);

    /// Wraps a buffer holding a video mini frame: 0x0000, then the video bit.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        let b = frame.buffer.as_ref();
        if b.len() >= 3 && (b[0] != 0 || b[1] != 0 || b[2] & 0x80 == 0) {
            return Err(WireError::wrong_kind(Structure::VideoMiniFrame, b));
        }
        frame.check_len()?;
        Ok(frame)
    }

    fn word(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Source call number.
    pub fn source_call_number(&self) -> CallNumber {
        CallNumber::from_field(self.word(field::SOURCE_CALL))
    }

    /// End-of-frame marker.
    pub fn marker(&self) -> bool {
        self.word(field::TIMESTAMP) & MARKER_BIT != 0
    }

    /// Low 15 bits of the call timestamp.
    pub fn timestamp(&self) -> Timestamp15 {
        Timestamp15::new(self.word(field::TIMESTAMP))
    }

    /// The video payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VideoMiniFrame<T> {
    /// Writes the 0x0000 meta marker and the video bit with `n`.
    pub fn set_source_call_number(&mut self, n: CallNumber) {
        let b = self.buffer.as_mut();
        b[field::ZERO].copy_from_slice(&[0, 0]);
        b[field::SOURCE_CALL].copy_from_slice(&(VIDEO_BIT | n.get()).to_be_bytes());
    }

    /// Sets the marker and the 15-bit timestamp.
    pub fn set_timestamp(&mut self, marker: bool, ts: Timestamp15) {
        let m = if marker { MARKER_BIT } else { 0 };
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&(m | ts.get()).to_be_bytes());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// An owned video mini frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VideoMiniFrameRepr {
    /// Source call number.
    pub source_call_number: CallNumber,
    /// End-of-frame marker.
    pub marker: bool,
    /// Low 15 bits of the call timestamp.
    pub timestamp: Timestamp15,
    /// Video payload.
    pub payload: Vec<u8>,
}

impl VideoMiniFrameRepr {
    /// Parses a video mini frame.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let frame = VideoMiniFrame::new_checked(bytes)?;
        Ok(Self {
            source_call_number: frame.source_call_number(),
            marker: frame.marker(),
            timestamp: frame.timestamp(),
            payload: frame.payload().to_vec(),
        })
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        VideoMiniFrame::<&[u8]>::HEADER_LEN + self.payload.len()
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        let mut frame = VideoMiniFrame::new_unchecked(out);
        frame.set_source_call_number(self.source_call_number);
        frame.set_timestamp(self.marker, self.timestamp);
        frame.payload_mut().copy_from_slice(&self.payload);
        Ok(needed)
    }
}
