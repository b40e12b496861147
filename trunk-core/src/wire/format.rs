//! Media format bitmask (FORMAT, CAPABILITY, voice/video subclass;
//! RFC 5456 section 8.7, PROTOCOL.md 10).

/// A media format bitmask: one bit per codec, 64 bits wide (FORMAT2 /
/// CAPABILITY2 carry the full width; FORMAT / CAPABILITY the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MediaFormat(u64);

impl MediaFormat {
    /// G.723.1.
    pub const G723_1: Self = Self(0x1);
    /// GSM full rate.
    pub const GSM: Self = Self(0x2);
    /// G.711 u-law.
    pub const ULAW: Self = Self(0x4);
    /// G.711 a-law.
    pub const ALAW: Self = Self(0x8);
    /// G.726 with AAL2 packing (Asterisk's meaning of bit 4).
    pub const G726_AAL2: Self = Self(0x10);
    /// IMA ADPCM.
    pub const ADPCM: Self = Self(0x20);
    /// 16-bit signed linear, 8 kHz (Asterisk sends it big-endian).
    pub const SLINEAR: Self = Self(0x40);
    /// LPC10.
    pub const LPC10: Self = Self(0x80);
    /// G.729.
    pub const G729: Self = Self(0x100);
    /// Speex.
    pub const SPEEX: Self = Self(0x200);
    /// iLBC.
    pub const ILBC: Self = Self(0x400);
    /// G.726 with RFC 3551 packing (Asterisk's meaning of bit 11).
    pub const G726: Self = Self(0x800);
    /// G.722.
    pub const G722: Self = Self(0x1000);
    /// Siren7 (G.722.1).
    pub const SIREN7: Self = Self(0x2000);
    /// Siren14 (G.722.1 annex C).
    pub const SIREN14: Self = Self(0x4000);
    /// 16-bit signed linear, 16 kHz.
    pub const SLINEAR16: Self = Self(0x8000);
    /// JPEG image.
    pub const JPEG: Self = Self(0x1_0000);
    /// PNG image.
    pub const PNG: Self = Self(0x2_0000);
    /// H.261 video.
    pub const H261: Self = Self(0x4_0000);
    /// H.263 video.
    pub const H263: Self = Self(0x8_0000);
    /// H.263+ video.
    pub const H263P: Self = Self(0x10_0000);
    /// H.264 video.
    pub const H264: Self = Self(0x20_0000);
    /// MPEG-4 video.
    pub const MP4: Self = Self(0x40_0000);
    /// VP8 video.
    pub const VP8: Self = Self(0x80_0000);
    /// T.140 with redundancy.
    pub const T140_RED: Self = Self(0x400_0000);
    /// T.140 real-time text.
    pub const T140: Self = Self(0x800_0000);
    /// G.719.
    pub const G719: Self = Self(1 << 32);
    /// Speex 16 kHz.
    pub const SPEEX16: Self = Self(1 << 33);
    /// Opus.
    pub const OPUS: Self = Self(1 << 34);

    /// The bitmask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A format from a raw bitmask (unknown bits kept).
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The low 32 bits, as carried by FORMAT and CAPABILITY.
    pub const fn low_bits(self) -> u32 {
        // Truncation intended: the 32-bit IEs carry the low half.
        self.0 as u32
    }

    /// Payload bytes of one frame of `ptime_ms` for the constant-rate codecs
    /// a trunk carries most (G.711 u/a-law, GSM, G.729, G.722, slinear);
    /// `None` for variable-rate or unknown formats.
    pub fn payload_len(self, ptime_ms: u32) -> Option<usize> {
        let bytes_per_10ms: u32 = match self {
            Self::ULAW | Self::ALAW | Self::G722 => 80,
            Self::G729 => 10,
            Self::SLINEAR => 160,
            Self::SLINEAR16 => 320,
            Self::GSM => {
                // GSM frames are 33 bytes per 20 ms and do not split.
                return ptime_ms
                    .is_multiple_of(20)
                    .then(|| 33 * (ptime_ms / 20) as usize);
            }
            _ => return None,
        };
        ptime_ms
            .is_multiple_of(10)
            .then(|| (bytes_per_10ms * (ptime_ms / 10)) as usize)
    }
}

impl core::ops::BitOr for MediaFormat {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes() {
        assert_eq!(MediaFormat::ULAW.payload_len(20), Some(160));
        assert_eq!(MediaFormat::ALAW.payload_len(30), Some(240));
        assert_eq!(MediaFormat::G729.payload_len(20), Some(20));
        assert_eq!(MediaFormat::GSM.payload_len(20), Some(33));
        assert_eq!(MediaFormat::GSM.payload_len(30), None);
        assert_eq!(MediaFormat::OPUS.payload_len(20), None);
    }

    #[test]
    fn bitmask_ops() {
        let caps = MediaFormat::ULAW | MediaFormat::ALAW;
        assert!(caps.contains(MediaFormat::ULAW));
        assert!(!caps.contains(MediaFormat::G729));
        assert_eq!(MediaFormat::OPUS.low_bits(), 0);
    }
}
