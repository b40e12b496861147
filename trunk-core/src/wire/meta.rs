//! Meta frames other than trunk and video (RFC 5456 section 8.1.3).
//!
//! ```text
//! +-------------------------------+-+-------------+---------------+
//! |         0x0000                |0| meta command| command data  |
//! +-------------------------------+-+-------------+---------------+
//! |  data ...                                                     |
//! ```
//!
//! Asterisk drops every meta command but trunk (0x01); we keep the others
//! as opaque bytes so they can be counted and re-emitted.

use super::codes::MetaCommand;
use super::error::{Result, Structure, WireError};
use super::macros::{emit_target, view_basics};

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const ZERO: Range<usize> = 0..2;
    pub(super) const COMMAND: usize = 2;
    pub(super) const COMMAND_DATA: usize = 3;
    pub(super) const PAYLOAD: RangeFrom<usize> = 4..;
}

/// A zero-copy view of a meta frame (any command).
///
/// After [`MetaFrame::new_checked`] succeeds no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MetaFrame<T> {
    view_basics!(Structure::MetaFrame, 4);

    /// Wraps a buffer holding a meta frame: 0x0000, video bit clear.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        let b = frame.buffer.as_ref();
        if b[0] != 0 || b[1] != 0 || b[2] & 0x80 != 0 {
            return Err(WireError::wrong_kind(Structure::MetaFrame, b));
        }
        Ok(frame)
    }

    /// The meta command.
    pub fn meta_command(&self) -> MetaCommand {
        MetaCommand::from(self.buffer.as_ref()[field::COMMAND])
    }

    /// The command data byte.
    pub fn command_data(&self) -> u8 {
        self.buffer.as_ref()[field::COMMAND_DATA]
    }

    /// Everything after the meta header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

/// An owned meta frame of a command this codec does not interpret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetaFrameRepr {
    /// The meta command (7 bits).
    pub meta_command: MetaCommand,
    /// The command data byte.
    pub command_data: u8,
    /// Everything after the meta header.
    pub payload: Vec<u8>,
}

impl MetaFrameRepr {
    /// Parses a meta frame of a command other than trunk (0x01, which
    /// [`super::MetaTrunkFrameRepr`] parses).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let frame = MetaFrame::new_checked(bytes)?;
        if frame.meta_command() == MetaCommand::Trunk {
            return Err(WireError::InvalidField {
                field: "meta command",
                why: "0x01 is a meta trunk frame; use MetaTrunkFrameRepr",
            });
        }
        Ok(Self {
            meta_command: frame.meta_command(),
            command_data: frame.command_data(),
            payload: frame.payload().to_vec(),
        })
    }

    /// Bytes the frame takes on the wire.
    pub fn buffer_len(&self) -> usize {
        MetaFrame::<&[u8]>::HEADER_LEN + self.payload.len()
    }

    /// Writes the frame to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        let command = self.meta_command.code();
        if command & 0x80 != 0 {
            return Err(WireError::InvalidField {
                field: "meta command",
                why: "the top bit marks a video mini frame",
            });
        }
        if self.meta_command == MetaCommand::Trunk {
            return Err(WireError::InvalidField {
                field: "meta command",
                why: "0x01 is a meta trunk frame; use MetaTrunkFrameRepr",
            });
        }
        out[field::ZERO].copy_from_slice(&[0, 0]);
        out[field::COMMAND] = command;
        out[field::COMMAND_DATA] = self.command_data;
        out[field::PAYLOAD].copy_from_slice(&self.payload);
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_command_belongs_to_the_trunk_repr() {
        let bytes = [0, 0, 0x01, 0, 0, 0, 0, 0];
        assert!(MetaFrame::new_checked(&bytes[..]).is_ok());
        assert!(matches!(
            MetaFrameRepr::parse(&bytes),
            Err(WireError::InvalidField { .. })
        ));
        let repr = MetaFrameRepr {
            meta_command: MetaCommand::Trunk,
            command_data: 0,
            payload: vec![],
        };
        let mut buf = [0xa5u8; 8];
        assert!(repr.emit(&mut buf).is_err());
        assert_eq!(buf, [0xa5; 8]);
    }
}
