//! Packing meta trunk frames into a caller-provided buffer without
//! allocating (PROTOCOL.md 13.2).
//!
//! One copy per payload: the headers are written in place and each entry's
//! payload is copied once into the buffer. The caller owns the buffer
//! (one per egress trunk peer, allocated once) and flushes when
//! [`TrunkFrameBuilder::push`] says the next entry does not fit.

use super::call_number::CallNumber;
use super::error::{Result, WireError};
use super::trunk::{MetaTrunkFrame, TrunkLayout};
use super::wrapping::Timestamp16;

/// Why an entry was not packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrunkPushError {
    /// The frame is full: send it, start a new one and push again.
    #[error("trunk frame full: entry of {entry_len} bytes would pass the limit of {limit}")]
    Full {
        /// Bytes the entry needs.
        entry_len: usize,
        /// The frame size limit (MTU or buffer length).
        limit: usize,
    },
    /// The entry cannot fit even an empty frame (payload too large for the
    /// MTU or the 16-bit length field); it must be dropped or sent another
    /// way.
    #[error("trunk entry of {entry_len} bytes can never fit a frame of {limit}")]
    TooLarge {
        /// Bytes the entry needs.
        entry_len: usize,
        /// The frame size limit.
        limit: usize,
    },
    /// Call number 0 cannot be carried (it would read as a meta frame once
    /// split into a mini frame).
    #[error("call number 0 cannot be trunked")]
    ZeroCallNumber,
}

/// Packs entries into one meta trunk frame in a borrowed buffer.
#[derive(Debug)]
pub struct TrunkFrameBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    limit: usize,
    layout: TrunkLayout,
    entries: usize,
}

impl<'b> TrunkFrameBuilder<'b> {
    /// Starts a frame in `buf` whose total size stays at or below `mtu`
    /// bytes (or `buf.len()`, if smaller). Errors when not even the 8-byte
    /// header fits.
    pub fn new(
        buf: &'b mut [u8],
        mtu: usize,
        layout: TrunkLayout,
        trunk_timestamp: u32,
    ) -> Result<Self> {
        let limit = mtu.min(buf.len());
        let header = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        if limit < header {
            return Err(WireError::BufferTooSmall {
                needed: header,
                got: limit,
            });
        }
        MetaTrunkFrame::new_unchecked(&mut buf[..header]).set_header(layout, trunk_timestamp);
        Ok(Self {
            buf,
            len: header,
            limit,
            layout,
            entries: 0,
        })
    }

    /// Continues a frame that an earlier builder over the same buffer left
    /// at `len` bytes and `entries` entries, so a caller can keep a frame
    /// open across calls without holding the borrow. Errors when `len` is
    /// not a possible length for that buffer and MTU.
    pub fn resume(
        buf: &'b mut [u8],
        mtu: usize,
        layout: TrunkLayout,
        len: usize,
        entries: usize,
    ) -> Result<Self> {
        let limit = mtu.min(buf.len());
        let header = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        if len < header || len > limit {
            return Err(WireError::InvalidField {
                field: "trunk frame length",
                why: "a resumed frame must hold its header and fit the limit",
            });
        }
        Ok(Self {
            buf,
            len,
            limit,
            layout,
            entries,
        })
    }

    /// Appends an entry. In the no-timestamp layout `timestamp` is not
    /// carried.
    pub fn push(
        &mut self,
        call_number: CallNumber,
        timestamp: Timestamp16,
        payload: &[u8],
    ) -> core::result::Result<(), TrunkPushError> {
        if call_number == CallNumber::UNKNOWN {
            return Err(TrunkPushError::ZeroCallNumber);
        }
        let header = self.layout.entry_header_len();
        let entry_len = header + payload.len();
        let Ok(len16) = u16::try_from(payload.len()) else {
            return Err(TrunkPushError::TooLarge {
                entry_len,
                limit: self.limit,
            });
        };
        if MetaTrunkFrame::<&[u8]>::HEADER_LEN + entry_len > self.limit {
            return Err(TrunkPushError::TooLarge {
                entry_len,
                limit: self.limit,
            });
        }
        if self.len + entry_len > self.limit {
            return Err(TrunkPushError::Full {
                entry_len,
                limit: self.limit,
            });
        }
        let out = &mut self.buf[self.len..self.len + entry_len];
        let call = call_number.get().to_be_bytes();
        match self.layout {
            TrunkLayout::NoTimestamps => {
                out[0..2].copy_from_slice(&call);
                out[2..4].copy_from_slice(&len16.to_be_bytes());
            }
            TrunkLayout::Timestamps => {
                out[0..2].copy_from_slice(&len16.to_be_bytes());
                out[2..4].copy_from_slice(&call);
                out[4..6].copy_from_slice(&timestamp.0.to_be_bytes());
            }
        }
        out[header..].copy_from_slice(payload);
        self.len += entry_len;
        self.entries += 1;
        Ok(())
    }

    /// True when an entry with a payload of `payload_len` bytes fits (the
    /// payload must also fit the 16-bit length field).
    pub fn fits(&self, payload_len: usize) -> bool {
        u16::try_from(payload_len).is_ok()
            && self.len + self.layout.entry_header_len() + payload_len <= self.limit
    }

    /// Entries packed so far.
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    /// True when no entry is packed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes used so far (headers included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// The entry layout.
    pub fn layout(&self) -> TrunkLayout {
        self.layout
    }

    /// The frame built so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Empties the frame to start the next one in the same buffer.
    pub fn reset(&mut self, trunk_timestamp: u32) {
        let header = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        MetaTrunkFrame::new_unchecked(&mut self.buf[..header])
            .set_header(self.layout, trunk_timestamp);
        self.len = header;
        self.entries = 0;
    }

    /// Ends the frame; returns its length (the frame is `buf[..len]`).
    pub fn finish(self) -> usize {
        self.len
    }
}
