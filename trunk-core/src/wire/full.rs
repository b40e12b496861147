//! Full frames (RFC 5456 section 8.1.1; PROTOCOL.md 2.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-----------------------------+-+-----------------------------+
//! |F|   source call number (15)   |R| destination call number (15)|
//! +-+-----------------------------+-+-----------------------------+
//! |                      timestamp (32, ms)                       |
//! +---------------+---------------+---------------+-+-------------+
//! |    OSeqno     |    ISeqno     |  frame type   |C|  subclass   |
//! +---------------+---------------+---------------+-+-------------+
//! |  payload: IEs (type 6) or media/text/control data ...        |
//! ```

use super::call_number::CallNumber;
use super::codes::{ControlSubclass, FrameType, IaxSubclass};
use super::error::{Result, Structure, WireError};
use super::ie::{IeIter, IeList};
use super::macros::{emit_target, view_basics};
use super::subclass::Subclass;
use super::wrapping::SeqNo;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const SOURCE_CALL: Range<usize> = 0..2;
    pub(super) const DEST_CALL: Range<usize> = 2..4;
    pub(super) const TIMESTAMP: Range<usize> = 4..8;
    pub(super) const OSEQNO: usize = 8;
    pub(super) const ISEQNO: usize = 9;
    pub(super) const FRAME_TYPE: usize = 10;
    pub(super) const SUBCLASS: usize = 11;
    pub(super) const PAYLOAD: RangeFrom<usize> = 12..;
}

/// The F bit (bytes 0-1): set on every full frame.
const F_BIT: u16 = 0x8000;
/// The R bit (bytes 2-3): set on retransmissions.
const R_BIT: u16 = 0x8000;
/// Mask of a 15-bit call number field.
const CALL_MASK: u16 = 0x7fff;

/// A zero-copy view of a full frame.
///
/// After [`FullFrame::new_checked`] succeeds no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FullFrame<T> {
    view_basics!(Structure::FullFrame, 12);

    /// Wraps a buffer that holds a full frame: at least 12 bytes, F bit set.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        if frame.buffer.as_ref()[0] & 0x80 == 0 {
            return Err(WireError::wrong_kind(
                Structure::FullFrame,
                frame.buffer.as_ref(),
            ));
        }
        Ok(frame)
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Source call number (the sender's own number for the call).
    pub fn source_call_number(&self) -> CallNumber {
        CallNumber::from_field(self.u16_at(field::SOURCE_CALL))
    }

    /// Destination call number (0 while unknown).
    pub fn dest_call_number(&self) -> CallNumber {
        CallNumber::from_field(self.u16_at(field::DEST_CALL))
    }

    /// The R bit: this is a retransmission.
    pub fn is_retransmission(&self) -> bool {
        self.u16_at(field::DEST_CALL) & R_BIT != 0
    }

    /// Timestamp (ms since the sender's call start).
    pub fn timestamp(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TIMESTAMP];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// OSeqno.
    pub fn oseqno(&self) -> SeqNo {
        SeqNo(self.buffer.as_ref()[field::OSEQNO])
    }

    /// ISeqno.
    pub fn iseqno(&self) -> SeqNo {
        SeqNo(self.buffer.as_ref()[field::ISEQNO])
    }

    /// Frame type.
    pub fn frame_type(&self) -> FrameType {
        FrameType::from(self.buffer.as_ref()[field::FRAME_TYPE])
    }

    /// Raw subclass byte.
    pub fn subclass(&self) -> Subclass {
        Subclass(self.buffer.as_ref()[field::SUBCLASS])
    }

    /// The IAX subclass, when this is an IAX frame.
    pub fn iax_subclass(&self) -> Option<IaxSubclass> {
        iax_subclass_of(self.frame_type(), self.subclass())
    }

    /// The control subclass, when this is a control frame.
    pub fn control_subclass(&self) -> Option<ControlSubclass> {
        control_subclass_of(self.frame_type(), self.subclass())
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// The IEs of the payload (meaningful for IAX frames).
    pub fn ies(&self) -> IeIter<'_> {
        IeIter::new(self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FullFrame<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source call number, keeping the F bit.
    pub fn set_source_call_number(&mut self, n: CallNumber) {
        self.set_u16_at(field::SOURCE_CALL, F_BIT | n.get());
    }

    /// Sets the destination call number, keeping the R bit.
    pub fn set_dest_call_number(&mut self, n: CallNumber) {
        let r = self.u16_at(field::DEST_CALL) & R_BIT;
        self.set_u16_at(field::DEST_CALL, r | n.get());
    }

    /// Rewrites both call numbers in place (the relay's hot operation);
    /// touches bytes 0-3 only and keeps the F and R bits.
    pub fn rewrite_call_numbers(&mut self, source: CallNumber, dest: CallNumber) {
        let r = self.u16_at(field::DEST_CALL) & R_BIT;
        let b = self.buffer.as_mut();
        b[0..2].copy_from_slice(&(F_BIT | source.get()).to_be_bytes());
        b[2..4].copy_from_slice(&(r | dest.get()).to_be_bytes());
    }

    /// Sets or clears the R bit.
    pub fn set_retransmission(&mut self, retransmission: bool) {
        let dest = self.u16_at(field::DEST_CALL) & CALL_MASK;
        let r = if retransmission { R_BIT } else { 0 };
        self.set_u16_at(field::DEST_CALL, r | dest);
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&ts.to_be_bytes());
    }

    /// Sets OSeqno.
    pub fn set_oseqno(&mut self, seq: SeqNo) {
        self.buffer.as_mut()[field::OSEQNO] = seq.0;
    }

    /// Sets ISeqno.
    pub fn set_iseqno(&mut self, seq: SeqNo) {
        self.buffer.as_mut()[field::ISEQNO] = seq.0;
    }

    /// Sets the frame type.
    pub fn set_frame_type(&mut self, frame_type: FrameType) {
        self.buffer.as_mut()[field::FRAME_TYPE] = frame_type.code();
    }

    /// Sets the raw subclass byte.
    pub fn set_subclass(&mut self, subclass: Subclass) {
        self.buffer.as_mut()[field::SUBCLASS] = subclass.0;
    }

    /// Everything after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

pub(crate) fn iax_subclass_of(frame_type: FrameType, subclass: Subclass) -> Option<IaxSubclass> {
    if frame_type != FrameType::Iax {
        return None;
    }
    subclass
        .value()
        .and_then(|v| u8::try_from(v).ok())
        .map(IaxSubclass::from)
}

pub(crate) fn control_subclass_of(
    frame_type: FrameType,
    subclass: Subclass,
) -> Option<ControlSubclass> {
    if frame_type != FrameType::Control {
        return None;
    }
    subclass.small_code().map(ControlSubclass::from)
}

/// The payload of an owned full frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FullFramePayload {
    /// IEs (IAX frames).
    Ies(IeList),
    /// Opaque bytes (every other frame type).
    Raw(Vec<u8>),
}

impl FullFramePayload {
    fn buffer_len(&self) -> usize {
        match self {
            Self::Ies(ies) => ies.buffer_len(),
            Self::Raw(raw) => raw.len(),
        }
    }
}

/// An owned full frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FullFrameRepr {
    /// Source call number.
    pub source_call_number: CallNumber,
    /// Destination call number (0 while unknown).
    pub dest_call_number: CallNumber,
    /// The R bit.
    pub retransmission: bool,
    /// Timestamp (ms).
    pub timestamp: u32,
    /// OSeqno.
    pub oseqno: SeqNo,
    /// ISeqno.
    pub iseqno: SeqNo,
    /// Frame type.
    pub frame_type: FrameType,
    /// Raw subclass byte.
    pub subclass: Subclass,
    /// Payload: IEs for IAX frames, raw bytes otherwise.
    pub payload: FullFramePayload,
}

impl FullFrameRepr {
    /// Parses a full frame. An IAX frame's payload must be a whole number
    /// of IEs; any other payload is kept as raw bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let frame = FullFrame::new_checked(bytes)?;
        let payload = if frame.frame_type() == FrameType::Iax {
            let ies = IeList::parse(frame.payload()).map_err(|e| {
                // Report offsets within the datagram, not the IE block.
                if let WireError::Truncated {
                    what,
                    offset,
                    needed,
                    got,
                } = e
                {
                    WireError::truncated(what, offset + FullFrame::<&[u8]>::HEADER_LEN, needed, got)
                } else {
                    e
                }
            })?;
            FullFramePayload::Ies(ies)
        } else {
            FullFramePayload::Raw(frame.payload().to_vec())
        };
        Ok(Self::from_view_header(&frame, payload))
    }

    fn from_view_header(frame: &FullFrame<&[u8]>, payload: FullFramePayload) -> Self {
        Self {
            source_call_number: frame.source_call_number(),
            dest_call_number: frame.dest_call_number(),
            retransmission: frame.is_retransmission(),
            timestamp: frame.timestamp(),
            oseqno: frame.oseqno(),
            iseqno: frame.iseqno(),
            frame_type: frame.frame_type(),
            subclass: frame.subclass(),
            payload,
        }
    }

    /// An IAX frame (retransmission bit clear).
    #[allow(clippy::too_many_arguments)]
    pub fn iax(
        source: CallNumber,
        dest: CallNumber,
        timestamp: u32,
        oseqno: SeqNo,
        iseqno: SeqNo,
        subclass: IaxSubclass,
        ies: IeList,
    ) -> Self {
        Self {
            source_call_number: source,
            dest_call_number: dest,
            retransmission: false,
            timestamp,
            oseqno,
            iseqno,
            frame_type: FrameType::Iax,
            // IAX subclasses are below 0x80 except unknown ones, sent as-is.
            subclass: Subclass(subclass.code()),
            payload: FullFramePayload::Ies(ies),
        }
    }

    /// The IAX subclass, when this is an IAX frame.
    pub fn iax_subclass(&self) -> Option<IaxSubclass> {
        iax_subclass_of(self.frame_type, self.subclass)
    }

    /// The control subclass, when this is a control frame.
    pub fn control_subclass(&self) -> Option<ControlSubclass> {
        control_subclass_of(self.frame_type, self.subclass)
    }

    /// The IEs, when the payload holds IEs.
    pub fn ies(&self) -> Option<&IeList> {
        match &self.payload {
            FullFramePayload::Ies(ies) => Some(ies),
            FullFramePayload::Raw(_) => None,
        }
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        FullFrame::<&[u8]>::HEADER_LEN + self.payload.buffer_len()
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        let mut frame = FullFrame::new_unchecked(&mut *out);
        frame.rewrite_call_numbers(self.source_call_number, self.dest_call_number);
        frame.set_retransmission(self.retransmission);
        frame.set_timestamp(self.timestamp);
        frame.set_oseqno(self.oseqno);
        frame.set_iseqno(self.iseqno);
        frame.set_frame_type(self.frame_type);
        frame.set_subclass(self.subclass);
        match &self.payload {
            FullFramePayload::Ies(ies) => {
                ies.emit(frame.payload_mut())?;
            }
            FullFramePayload::Raw(raw) => frame.payload_mut().copy_from_slice(raw),
        }
        Ok(needed)
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        // The buffer is exactly `buffer_len` bytes, so emit cannot fail.
        let _ = self.emit(&mut buf);
        buf
    }
}
