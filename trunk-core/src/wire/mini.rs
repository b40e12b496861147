//! Mini (voice) frames (RFC 5456 section 8.1.2; PROTOCOL.md 2.3).
//!
//! ```text
//! +-+-----------------------------+-------------------------------+
//! |0|   source call number (15)   |   timestamp, low 16 bits      |
//! +-+-----------------------------+-------------------------------+
//! |  voice payload ...                                           |
//! ```

use super::call_number::CallNumber;
use super::error::{Result, Structure, WireError};
use super::macros::{emit_target, view_basics};
use super::wrapping::Timestamp16;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const SOURCE_CALL: Range<usize> = 0..2;
    pub(super) const TIMESTAMP: Range<usize> = 2..4;
    pub(super) const PAYLOAD: RangeFrom<usize> = 4..;
}

/// A zero-copy view of a mini frame.
///
/// After [`MiniFrame::new_checked`] succeeds no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MiniFrame<T> {
    view_basics!(Structure::MiniFrame, 4);

    /// Wraps a buffer that holds a mini frame: at least 4 bytes, top bit
    /// clear, and not starting with 0x0000 (that is a meta frame).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        let b = frame.buffer.as_ref();
        if b[0] & 0x80 != 0 || (b[0] == 0 && b[1] == 0) {
            return Err(WireError::wrong_kind(Structure::MiniFrame, b));
        }
        Ok(frame)
    }

    /// Source call number.
    pub fn source_call_number(&self) -> CallNumber {
        let b = &self.buffer.as_ref()[field::SOURCE_CALL];
        CallNumber::from_field(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Low 16 bits of the call timestamp.
    pub fn timestamp(&self) -> Timestamp16 {
        let b = &self.buffer.as_ref()[field::TIMESTAMP];
        Timestamp16(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The voice payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MiniFrame<T> {
    /// Rewrites the source call number in place (bytes 0-1 only). The call
    /// number must not be 0, or the frame would read as a meta frame.
    pub fn set_source_call_number(&mut self, n: CallNumber) -> Result<()> {
        if n == CallNumber::UNKNOWN {
            return Err(WireError::InvalidField {
                field: "mini frame source call number",
                why: "0 would make the datagram a meta frame",
            });
        }
        self.buffer.as_mut()[field::SOURCE_CALL].copy_from_slice(&n.get().to_be_bytes());
        Ok(())
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: Timestamp16) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&ts.0.to_be_bytes());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// An owned mini frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MiniFrameRepr {
    /// Source call number (1..=32767).
    pub source_call_number: CallNumber,
    /// Low 16 bits of the call timestamp.
    pub timestamp: Timestamp16,
    /// Voice payload.
    pub payload: Vec<u8>,
}

impl MiniFrameRepr {
    /// Parses a mini frame.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let frame = MiniFrame::new_checked(bytes)?;
        Ok(Self {
            source_call_number: frame.source_call_number(),
            timestamp: frame.timestamp(),
            payload: frame.payload().to_vec(),
        })
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        MiniFrame::<&[u8]>::HEADER_LEN + self.payload.len()
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        let mut frame = MiniFrame::new_unchecked(out);
        frame.set_source_call_number(self.source_call_number)?;
        frame.set_timestamp(self.timestamp);
        frame.payload_mut().copy_from_slice(&self.payload);
        Ok(needed)
    }
}
