//! Call numbers (RFC 5456 section 8.1.1; PROTOCOL.md 8).

use super::error::{Result, WireError};

/// A 15-bit IAX2 call number as it appears on the wire.
///
/// 0 in a destination field means "not known yet"; 0 is never a valid
/// source call number (a datagram starting with 0x0000 is a meta frame), and
/// 1 is the source of Asterisk's stateless replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CallNumber(u16);

impl CallNumber {
    /// "Not known yet" (destination of NEW, POKE, REGREQ).
    pub const UNKNOWN: Self = Self(0);
    /// Source call number of stateless replies (CALLTOKEN, PONG to POKE, ...).
    pub const STATELESS: Self = Self(1);
    /// Largest call number.
    pub const MAX: Self = Self(0x7fff);

    /// A call number; errors when `n` does not fit in 15 bits.
    pub fn new(n: u16) -> Result<Self> {
        if n <= Self::MAX.0 {
            Ok(Self(n))
        } else {
            Err(WireError::CallNumberOutOfRange(n))
        }
    }

    /// The low 15 bits of a wire field (the flag bit dropped).
    pub(crate) fn from_field(field: u16) -> Self {
        Self(field & 0x7fff)
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl core::fmt::Display for CallNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u16> for CallNumber {
    type Error = WireError;
    fn try_from(n: u16) -> Result<Self> {
        Self::new(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert_eq!(CallNumber::new(0x7fff).map(CallNumber::get), Ok(0x7fff));
        assert_eq!(
            CallNumber::new(0x8000),
            Err(WireError::CallNumberOutOfRange(0x8000))
        );
        assert_eq!(CallNumber::from_field(0xc269).get(), 0x4269);
    }
}
