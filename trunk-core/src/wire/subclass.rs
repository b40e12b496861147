//! The subclass byte of a full frame (RFC 5456 section 8.1.1; PROTOCOL.md 2.2).
//!
//! With the C bit clear the byte is a plain number 0..=127; with it set it is
//! `1 << (byte & 0x3f)`. Asterisk sends every value below 0x80 literally,
//! even a power of two, and 0xFF stands for its -1. We keep the raw byte so
//! that both encodings of a small power of two re-emit exactly as received.

use super::format::MediaFormat;

/// The raw subclass byte of a full frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subclass(pub u8);

/// The C ("compressed") bit of the subclass byte.
const COMPRESSED: u8 = 0x80;
/// Mask of the shift count in a compressed subclass (Asterisk masks 0x3f).
const SHIFT_MASK: u8 = 0x3f;
/// Video frames only: end-of-frame marker bit.
const VIDEO_MARKER: u8 = 0x40;

impl Subclass {
    /// Asterisk's -1 (control "stop sounds").
    pub const MINUS_ONE: Self = Self(0xff);

    /// Encodes a subclass value the way Asterisk does: values below 0x80 are
    /// literal, larger powers of two are compressed; anything else has no
    /// encoding.
    pub fn from_value(value: u64) -> Option<Self> {
        if value < u64::from(COMPRESSED) {
            // Checked just above: fits in 7 bits.
            Some(Self(value as u8))
        } else if value.is_power_of_two() {
            Some(Self(COMPRESSED | value.trailing_zeros() as u8))
        } else {
            None
        }
    }

    /// Encodes a media format (voice/video subclass) the Asterisk way.
    pub fn from_format(format: MediaFormat) -> Option<Self> {
        Self::from_value(format.bits())
    }

    /// Encodes a video frame's subclass: the format, plus the end-of-frame
    /// marker in bit 0x40. `None` when the format has no encoding or is a
    /// literal value that already uses bit 0x40.
    pub fn video(format: MediaFormat, marker: bool) -> Option<Self> {
        let base = Self::from_format(format)?;
        if base.0 & VIDEO_MARKER != 0 {
            return None;
        }
        Some(if marker {
            Self(base.0 | VIDEO_MARKER)
        } else {
            base
        })
    }

    /// True when the C bit is set.
    pub fn is_compressed(self) -> bool {
        self.0 & COMPRESSED != 0
    }

    /// The value this byte encodes; `None` for 0xFF (Asterisk's -1).
    pub fn value(self) -> Option<u64> {
        if self == Self::MINUS_ONE {
            None
        } else if self.is_compressed() {
            Some(1u64 << (self.0 & SHIFT_MASK))
        } else {
            Some(u64::from(self.0))
        }
    }

    /// The value as a small code (IAX and control subclasses), if it fits in
    /// a byte. 0xFF maps to 0xFF (Asterisk's -1).
    pub fn small_code(self) -> Option<u8> {
        match self.value() {
            None => Some(0xff),
            Some(v) => u8::try_from(v).ok(),
        }
    }

    /// The media format of a voice frame.
    pub fn voice_format(self) -> Option<MediaFormat> {
        self.value().map(MediaFormat::from_bits)
    }

    /// The media format of a video frame: the 0x40 marker bit is removed
    /// first, then the byte decodes as usual (Asterisk's order).
    pub fn video_format(self) -> MediaFormat {
        let byte = self.0 & !VIDEO_MARKER;
        if byte & COMPRESSED != 0 {
            MediaFormat::from_bits(1u64 << (byte & SHIFT_MASK))
        } else {
            MediaFormat::from_bits(u64::from(byte))
        }
    }

    /// The end-of-frame marker of a video frame.
    pub fn video_marker(self) -> bool {
        self.0 & VIDEO_MARKER != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asterisk_encoder_rule() {
        // PROTOCOL.md 2.2: u-law 0x04, GSM 0x02, slinear 0x40 literal;
        // G.729 0x88, iLBC 0x8a, G.722 0x8c, Opus 0xa2, H.264 0x95.
        let cases: &[(u64, u8)] = &[
            (0x4, 0x04),
            (0x2, 0x02),
            (0x40, 0x40),
            (0x100, 0x88),
            (0x400, 0x8a),
            (0x1000, 0x8c),
            (1 << 34, 0xa2),
            (1 << 21, 0x95),
            (0x7f, 0x7f),
            (0x80, 0x87),
        ];
        for &(value, byte) in cases {
            assert_eq!(
                Subclass::from_value(value),
                Some(Subclass(byte)),
                "{value:#x}"
            );
            assert_eq!(Subclass(byte).value(), Some(value));
        }
        assert_eq!(Subclass::from_value(0x180), None);
    }

    #[test]
    fn both_encodings_of_small_powers_decode() {
        assert_eq!(Subclass(0x82).value(), Some(4));
        assert_eq!(Subclass(0x04).value(), Some(4));
        assert_eq!(Subclass(0xff).value(), None);
        assert_eq!(Subclass(0xff).small_code(), Some(0xff));
        assert_eq!(Subclass(0x88).small_code(), None);
        assert_eq!(Subclass(0x85).small_code(), Some(32));
    }

    #[test]
    fn video_marker_and_codec() {
        // H.264 (bit 21) with the marker: 0x80 | 0x40 | 21.
        let s = Subclass(0xd5);
        assert!(s.video_marker());
        assert_eq!(s.video_format(), MediaFormat::H264);
        assert!(!Subclass(0x95).video_marker());
        assert_eq!(Subclass(0x95).video_format(), MediaFormat::H264);
        // A literal (C clear) video byte with the marker: value 0x04.
        assert_eq!(Subclass(0x44).video_format(), MediaFormat::from_bits(0x04));
        assert!(Subclass(0x44).video_marker());
        assert_eq!(
            Subclass::video(MediaFormat::H264, true),
            Some(Subclass(0xd5))
        );
        assert_eq!(
            Subclass::video(MediaFormat::H264, false),
            Some(Subclass(0x95))
        );
        assert_eq!(Subclass::video(MediaFormat::SLINEAR, false), None);
    }
}
