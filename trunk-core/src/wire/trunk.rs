//! Meta trunk frames (RFC 5456 section 8.1.3.2; PROTOCOL.md 2.5 and 13).
//!
//! ```text
//! +-------------------------------+-+-------------+---------------+
//! |         0x0000                |0| meta cmd = 1| cmd data      |
//! +-------------------------------+-+-------------+---------------+
//! |               trunk timestamp (32, ms, sender's trunk clock)  |
//! +---------------------------------------------------------------+
//! |  entries ... until the end of the datagram                    |
//! ```
//!
//! Entry layouts, chosen by bit 0 of the command data:
//!
//! ```text
//! cmd data 0 (no timestamps, "supermini"; Asterisk's default):
//! |R|  source call number (15)    |  data length (16)             | data ...
//! cmd data 1 (trunk timestamps):
//! |  data length (16)             |0|  source call number (15)    |
//! |  call timestamp low 16 bits   | data ...
//! ```
//!
//! A timestamped entry is a length followed by exactly a mini frame, and a
//! supermini entry header is as long as a mini frame header, so every entry
//! can be turned into a mini frame in place
//! ([`MetaTrunkFrame::entry_to_mini_frame`]): splitting copies nothing.

use core::ops::Range;

use super::call_number::CallNumber;
use super::codes::MetaCommand;
use super::error::{Result, Structure, WireError};
use super::macros::{emit_target, view_basics};
use super::wrapping::Timestamp16;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const ZERO: Range<usize> = 0..2;
    pub(super) const COMMAND: usize = 2;
    pub(super) const COMMAND_DATA: usize = 3;
    pub(super) const TRUNK_TIMESTAMP: Range<usize> = 4..8;
    pub(super) const ENTRIES: RangeFrom<usize> = 8..;
}

/// Command data bit selecting the timestamped entry layout.
const TIMESTAMPS_BIT: u8 = 0x01;
/// Flag bit of an entry's call number word.
const FLAG_BIT: u16 = 0x8000;

/// Which entry layout a meta trunk frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkLayout {
    /// Command data 0: `call number | length | data` (Asterisk
    /// `trunktimestamps=no`, its default).
    NoTimestamps,
    /// Command data 1: `length | call number | timestamp | data` (Asterisk
    /// `trunktimestamps=yes`).
    Timestamps,
}

impl TrunkLayout {
    /// The layout a command data byte selects.
    pub fn from_command_data(command_data: u8) -> Self {
        if command_data & TIMESTAMPS_BIT != 0 {
            Self::Timestamps
        } else {
            Self::NoTimestamps
        }
    }

    /// The command data byte for this layout (other bits 0).
    pub fn command_data(self) -> u8 {
        match self {
            Self::NoTimestamps => 0,
            Self::Timestamps => TIMESTAMPS_BIT,
        }
    }

    /// Length of an entry header: 4 without timestamps, 6 with.
    pub const fn entry_header_len(self) -> usize {
        match self {
            Self::NoTimestamps => 4,
            Self::Timestamps => 6,
        }
    }
}

/// Where an entry lies in its datagram (plain data, no borrow), so the
/// caller can rewrite the entry in place after reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrunkEntryLocation {
    /// Offset of the entry header in the datagram.
    pub offset: usize,
    /// The frame's entry layout.
    pub layout: TrunkLayout,
    /// Payload length (the entry's length field).
    pub payload_len: usize,
}

impl TrunkEntryLocation {
    /// Range of the payload in the datagram.
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.offset + self.layout.entry_header_len();
        start..start + self.payload_len
    }

    /// Offset just past the entry (where the next entry starts).
    pub fn end(&self) -> usize {
        self.payload_range().end
    }
}

/// One entry of a received meta trunk frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkEntry<'a> {
    /// The sender's source call number of the call.
    pub call_number: CallNumber,
    /// The top bit of the call number word (RFC "R"; Asterisk never sets
    /// it and ignores it). Kept so frames round-trip.
    pub flag: bool,
    /// Low 16 bits of the call timestamp (timestamped layout only).
    pub timestamp: Option<Timestamp16>,
    /// The voice payload.
    pub payload: &'a [u8],
    /// Where the entry lies in the datagram.
    pub location: TrunkEntryLocation,
}

/// Reads the entry at `offset`; `None` at the end of the datagram, an error
/// when the entry is cut short.
fn read_entry(buf: &[u8], offset: usize, layout: TrunkLayout) -> Option<Result<TrunkEntry<'_>>> {
    let rest = buf.get(offset..)?;
    if rest.is_empty() {
        return None;
    }
    let header_len = layout.entry_header_len();
    let truncated = |needed| {
        Some(Err(WireError::truncated(
            Structure::TrunkEntry,
            offset,
            needed,
            rest.len(),
        )))
    };
    let Some(header) = rest.get(..header_len) else {
        return truncated(header_len);
    };
    let w0 = u16::from_be_bytes([header[0], header[1]]);
    let w1 = u16::from_be_bytes([header[2], header[3]]);
    let (call_word, payload_len, timestamp) = match layout {
        TrunkLayout::NoTimestamps => (w0, usize::from(w1), None),
        TrunkLayout::Timestamps => (
            w1,
            usize::from(w0),
            Some(Timestamp16(u16::from_be_bytes([header[4], header[5]]))),
        ),
    };
    let Some(payload) = rest.get(header_len..header_len + payload_len) else {
        return truncated(header_len + payload_len);
    };
    Some(Ok(TrunkEntry {
        call_number: CallNumber::from_field(call_word),
        flag: call_word & FLAG_BIT != 0,
        timestamp,
        payload,
        location: TrunkEntryLocation {
            offset,
            layout,
            payload_len,
        },
    }))
}

/// Iterator over the entries of a meta trunk frame. Yields one error and
/// stops at an entry longer than the bytes left (as Asterisk stops).
#[derive(Debug, Clone)]
pub struct TrunkEntries<'a> {
    buf: &'a [u8],
    pos: usize,
    layout: TrunkLayout,
    done: bool,
}

impl<'a> Iterator for TrunkEntries<'a> {
    type Item = Result<TrunkEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match read_entry(self.buf, self.pos, self.layout) {
            None => {
                self.done = true;
                None
            }
            Some(Ok(entry)) => {
                self.pos = entry.location.end();
                Some(Ok(entry))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A zero-copy view of a meta trunk frame.
///
/// After [`MetaTrunkFrame::new_checked`] succeeds no accessor panics; the
/// entries are checked one by one as they are iterated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaTrunkFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MetaTrunkFrame<T> {
    view_basics!(Structure::MetaFrame, 8);

    /// Wraps a buffer holding a meta trunk frame: 0x0000, meta command 0x01,
    /// at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        let b = frame.buffer.as_ref();
        if b.len() >= 3 {
            if b[0] != 0 || b[1] != 0 || b[2] & 0x80 != 0 {
                return Err(WireError::wrong_kind(Structure::MetaFrame, b));
            }
            if b[2] != MetaCommand::Trunk.code() {
                return Err(WireError::WrongMetaCommand {
                    expected: MetaCommand::Trunk.code(),
                    found: b[2],
                });
            }
        }
        frame.check_len()?;
        Ok(frame)
    }

    /// The command data byte.
    pub fn command_data(&self) -> u8 {
        self.buffer.as_ref()[field::COMMAND_DATA]
    }

    /// The entry layout (bit 0 of the command data).
    pub fn layout(&self) -> TrunkLayout {
        TrunkLayout::from_command_data(self.command_data())
    }

    /// The trunk timestamp (ms on the sender's trunk clock).
    pub fn trunk_timestamp(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TRUNK_TIMESTAMP];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The raw entry bytes.
    pub fn entry_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::ENTRIES]
    }

    /// The entries, in order.
    pub fn entries(&self) -> TrunkEntries<'_> {
        TrunkEntries {
            buf: self.buffer.as_ref(),
            pos: Self::HEADER_LEN,
            layout: self.layout(),
            done: false,
        }
    }

    /// The entry starting at `offset` (from [`TrunkEntryLocation::end`] of
    /// the previous one, or [`Self::HEADER_LEN`] for the first); `None` at
    /// the end of the frame.
    pub fn entry_at(&self, offset: usize) -> Option<Result<TrunkEntry<'_>>> {
        read_entry(
            self.buffer.as_ref(),
            offset.max(Self::HEADER_LEN),
            self.layout(),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MetaTrunkFrame<T> {
    /// Writes the meta and trunk headers.
    pub fn set_header(&mut self, layout: TrunkLayout, trunk_timestamp: u32) {
        let b = self.buffer.as_mut();
        b[field::ZERO].copy_from_slice(&[0, 0]);
        b[field::COMMAND] = MetaCommand::Trunk.code();
        b[field::COMMAND_DATA] = layout.command_data();
        b[field::TRUNK_TIMESTAMP].copy_from_slice(&trunk_timestamp.to_be_bytes());
    }

    /// Sets the trunk timestamp.
    pub fn set_trunk_timestamp(&mut self, ts: u32) {
        self.buffer.as_mut()[field::TRUNK_TIMESTAMP].copy_from_slice(&ts.to_be_bytes());
    }

    /// Turns the entry at `location` into a mini frame in place, carrying
    /// `call_number` and `timestamp`, and returns the mini frame's range in
    /// the buffer. Copies nothing: a timestamped entry already ends in a mini
    /// frame; a supermini entry's 4-byte header is overwritten by the mini
    /// header. The entry is unusable as an entry afterwards, so read the
    /// next location first.
    pub fn entry_to_mini_frame(
        &mut self,
        location: TrunkEntryLocation,
        call_number: CallNumber,
        timestamp: Timestamp16,
    ) -> Result<Range<usize>> {
        if call_number == CallNumber::UNKNOWN {
            return Err(WireError::InvalidField {
                field: "mini frame source call number",
                why: "0 would make the datagram a meta frame",
            });
        }
        let start = match location.layout {
            TrunkLayout::NoTimestamps => location.offset,
            TrunkLayout::Timestamps => location.offset + 2,
        };
        let end = location.end();
        let len = self.buffer.as_ref().len();
        let b = self
            .buffer
            .as_mut()
            .get_mut(start..end)
            .filter(|b| b.len() >= 4)
            .ok_or_else(|| {
                WireError::truncated(
                    Structure::TrunkEntry,
                    start,
                    end - start,
                    len.saturating_sub(start),
                )
            })?;
        b[0..2].copy_from_slice(&call_number.get().to_be_bytes());
        b[2..4].copy_from_slice(&timestamp.0.to_be_bytes());
        Ok(start..end)
    }
}

/// An owned trunk entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrunkEntryRepr {
    /// The sender's source call number of the call.
    pub call_number: CallNumber,
    /// The top bit of the call number word (normally clear).
    pub flag: bool,
    /// Low 16 bits of the call timestamp; `Some` exactly in the timestamped
    /// layout.
    pub timestamp: Option<Timestamp16>,
    /// The voice payload (at most 65535 bytes).
    pub payload: Vec<u8>,
}

impl From<TrunkEntry<'_>> for TrunkEntryRepr {
    fn from(e: TrunkEntry<'_>) -> Self {
        Self {
            call_number: e.call_number,
            flag: e.flag,
            timestamp: e.timestamp,
            payload: e.payload.to_vec(),
        }
    }
}

/// An owned meta trunk frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetaTrunkFrameRepr {
    /// The command data byte (bit 0 selects the layout; others kept).
    pub command_data: u8,
    /// The trunk timestamp.
    pub trunk_timestamp: u32,
    /// The entries.
    pub entries: Vec<TrunkEntryRepr>,
}

impl MetaTrunkFrameRepr {
    /// Parses a meta trunk frame; every entry must be whole.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let frame = MetaTrunkFrame::new_checked(bytes)?;
        let entries = frame
            .entries()
            .map(|e| e.map(TrunkEntryRepr::from))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            command_data: frame.command_data(),
            trunk_timestamp: frame.trunk_timestamp(),
            entries,
        })
    }

    /// The entry layout.
    pub fn layout(&self) -> TrunkLayout {
        TrunkLayout::from_command_data(self.command_data)
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        let header = self.layout().entry_header_len();
        MetaTrunkFrame::<&[u8]>::HEADER_LEN
            + self
                .entries
                .iter()
                .map(|e| header + e.payload.len())
                .sum::<usize>()
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        let layout = self.layout();
        // Validate every entry first so a refused frame writes nothing.
        for e in &self.entries {
            if u16::try_from(e.payload.len()).is_err() {
                return Err(WireError::TrunkEntryTooLong {
                    len: e.payload.len(),
                });
            }
            if e.timestamp.is_some() != (layout == TrunkLayout::Timestamps) {
                return Err(WireError::InvalidField {
                    field: "trunk entry timestamp",
                    why: "present exactly when the command data selects trunk timestamps",
                });
            }
        }
        out[field::ZERO].copy_from_slice(&[0, 0]);
        out[field::COMMAND] = MetaCommand::Trunk.code();
        out[field::COMMAND_DATA] = self.command_data;
        out[field::TRUNK_TIMESTAMP].copy_from_slice(&self.trunk_timestamp.to_be_bytes());
        let mut pos = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        for e in &self.entries {
            let len = u16::try_from(e.payload.len()).map_err(|_| WireError::TrunkEntryTooLong {
                len: e.payload.len(),
            })?;
            let call = e.call_number.get() | if e.flag { FLAG_BIT } else { 0 };
            match (layout, e.timestamp) {
                (TrunkLayout::NoTimestamps, None) => {
                    out[pos..pos + 2].copy_from_slice(&call.to_be_bytes());
                    out[pos + 2..pos + 4].copy_from_slice(&len.to_be_bytes());
                }
                (TrunkLayout::Timestamps, Some(ts)) => {
                    out[pos..pos + 2].copy_from_slice(&len.to_be_bytes());
                    out[pos + 2..pos + 4].copy_from_slice(&call.to_be_bytes());
                    out[pos + 4..pos + 6].copy_from_slice(&ts.0.to_be_bytes());
                }
                (TrunkLayout::NoTimestamps, Some(_)) | (TrunkLayout::Timestamps, None) => {
                    return Err(WireError::InvalidField {
                        field: "trunk entry timestamp",
                        why: "present exactly when the command data selects trunk timestamps",
                    })
                }
            }
            pos += layout.entry_header_len();
            out[pos..pos + e.payload.len()].copy_from_slice(&e.payload);
            pos += e.payload.len();
        }
        Ok(needed)
    }
}
