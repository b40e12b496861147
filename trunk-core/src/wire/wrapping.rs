//! Wrapping protocol counters: 8-bit sequence numbers and 16/15-bit
//! timestamps (RFC 5456 sections 8.1.1-8.1.2, PROTOCOL.md 6.1 and 7).
//!
//! None of these types implements `Ord`: on a circle "less than" has no
//! meaning without a reference point. Compare by extending against a known
//! recent value instead.

/// An OSeqno or ISeqno: 8 bits, wrapping mod 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(pub u8);

/// Where a received OSeqno stands relative to the ISeqno we expect next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOrder {
    /// It is the frame we expect.
    InOrder,
    /// An old duplicate (already received): re-ACK and drop.
    OldDuplicate,
    /// From the future (a frame in between is missing): VNAK and drop.
    Future,
}

impl SeqNo {
    /// The next sequence number (wrapping).
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// `self - earlier`, mod 256.
    pub fn distance_from(self, earlier: Self) -> u8 {
        self.0.wrapping_sub(earlier.0)
    }

    /// Classifies a received OSeqno (`self`) against the ISeqno we expect
    /// (`expected`), the way Asterisk does: behind by less than 128 is an old
    /// duplicate, anything else ahead is from the future.
    pub fn classify(self, expected: Self) -> SeqOrder {
        if self == expected {
            SeqOrder::InOrder
        } else if expected.distance_from(self) < 128 {
            SeqOrder::OldDuplicate
        } else {
            SeqOrder::Future
        }
    }

    /// True when `self` lies in the half-open window `[start, end)` on the
    /// circle (used to release frames acknowledged by a received ISeqno).
    pub fn in_window(self, start: Self, end: Self) -> bool {
        self.distance_from(start) < end.distance_from(start)
    }

    /// Extends to the 64-bit value nearest `prev` with the same low 8 bits.
    pub fn extend(self, prev: u64) -> u64 {
        extend_nearest(u64::from(self.0), prev, 8)
    }
}

/// The low 16 bits of a call's 32-bit millisecond timestamp, as carried by
/// mini frames and timestamped trunk entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp16(pub u16);

impl Timestamp16 {
    /// The low 16 bits of a full timestamp.
    pub fn from_full(ts: u32) -> Self {
        // Truncation intended: a mini frame carries the low 16 bits.
        Self(ts as u16)
    }

    /// Extends to the 64-bit value nearest `prev` with the same low 16 bits
    /// (RFC 3550 style; for measurement).
    pub fn extend(self, prev: u64) -> u64 {
        extend_nearest(u64::from(self.0), prev, 16)
    }

    /// Rebuilds the 32-bit call timestamp the way Asterisk does
    /// (PROTOCOL.md 7): take the upper half of `last`, then correct by one
    /// epoch when the result is more than 50 000 ms away from `last`.
    pub fn unwrap_asterisk(self, last: u32) -> u32 {
        unwrap_epoch(u32::from(self.0), last, 16, 50_000)
    }
}

/// The low 15 bits of a video call's timestamp, as carried by video mini
/// frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp15(u16);

impl Timestamp15 {
    /// Builds from a raw value; the top bit is dropped.
    pub fn new(raw: u16) -> Self {
        Self(raw & 0x7fff)
    }

    /// The 15-bit value.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The low 15 bits of a full timestamp.
    pub fn from_full(ts: u32) -> Self {
        Self::new(ts as u16)
    }

    /// Extends to the 64-bit value nearest `prev` with the same low 15 bits.
    pub fn extend(self, prev: u64) -> u64 {
        extend_nearest(u64::from(self.0), prev, 15)
    }

    /// Asterisk's video unwrap: 15-bit epoch, 25 000 ms threshold.
    pub fn unwrap_asterisk(self, last: u32) -> u32 {
        unwrap_epoch(u32::from(self.0), last, 15, 25_000)
    }
}

/// The value congruent to `low` mod 2^bits nearest to `prev` (ties go
/// forward); never below zero.
fn extend_nearest(low: u64, prev: u64, bits: u32) -> u64 {
    let modulus = 1u64 << bits;
    let mask = modulus - 1;
    let forward = low.wrapping_sub(prev) & mask;
    if forward <= modulus / 2 {
        prev + forward
    } else {
        let backward = modulus - forward;
        prev.checked_sub(backward).unwrap_or(prev + forward)
    }
}

/// Asterisk's `unwrap_timestamp`: splice the low bits into `last`, then move
/// one epoch if the signed difference passes `threshold`.
fn unwrap_epoch(low: u32, last: u32, bits: u32, threshold: i64) -> u32 {
    let epoch = 1u32 << bits;
    let ts = (last & !(epoch - 1)) | low;
    let diff = i64::from(ts) - i64::from(last);
    if diff < -threshold {
        ts.wrapping_add(epoch)
    } else if diff > threshold {
        ts.wrapping_sub(epoch)
    } else {
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seqno_classify_table() {
        // (received, expected, order)
        let table = [
            (0u8, 0u8, SeqOrder::InOrder),
            (255, 255, SeqOrder::InOrder),
            (254, 255, SeqOrder::OldDuplicate),
            (255, 0, SeqOrder::OldDuplicate),
            (0, 255, SeqOrder::Future),
            (1, 255, SeqOrder::Future),
            (129, 0, SeqOrder::OldDuplicate),
            (128, 0, SeqOrder::Future),
            (127, 255, SeqOrder::Future),
        ];
        for (rx, exp, order) in table {
            assert_eq!(
                SeqNo(rx).classify(SeqNo(exp)),
                order,
                "rx {rx} expected {exp}"
            );
        }
    }

    #[test]
    fn seqno_window_across_wrap() {
        assert!(SeqNo(254).in_window(SeqNo(250), SeqNo(2)));
        assert!(SeqNo(1).in_window(SeqNo(250), SeqNo(2)));
        assert!(!SeqNo(2).in_window(SeqNo(250), SeqNo(2)));
        assert!(!SeqNo(249).in_window(SeqNo(250), SeqNo(2)));
        assert!(!SeqNo(5).in_window(SeqNo(5), SeqNo(5)));
        assert_eq!(SeqNo(255).next(), SeqNo(0));
    }

    #[test]
    fn seqno_extend_table() {
        let table: &[(u8, u64, u64)] = &[
            (0, 255, 256),
            (255, 256, 255),
            (1, 510, 513),
            (250, 3, 250),
            (0, 0, 0),
            (200, 0, 200), // cannot go below zero
            (128, 0, 128),
        ];
        for &(seq, prev, want) in table {
            assert_eq!(SeqNo(seq).extend(prev), want, "seq {seq} prev {prev}");
        }
    }

    #[test]
    fn timestamp16_extend_at_wrap() {
        let table: &[(u16, u64, u64)] = &[
            (0x0000, 0xffff, 0x1_0000),
            (0xffff, 0x1_0000, 0xffff),
            (0x0010, 0x1_fff0, 0x2_0010),
            (0xfff0, 0x2_0010, 0x1_fff0),
            (0x8000, 0, 0x8000),
            (0x1234, 0x5_1200, 0x5_1234),
        ];
        for &(ts, prev, want) in table {
            assert_eq!(
                Timestamp16(ts).extend(prev),
                want,
                "ts {ts:#x} prev {prev:#x}"
            );
        }
    }

    #[test]
    fn timestamp16_unwrap_asterisk_table() {
        // (mini ts, last full ts, result)
        let table: &[(u16, u32, u32)] = &[
            (560, 540, 560),                    // trunk-ts capture: first entry after ts 540
            (0x0014, 0x0000_ffec, 0x0001_0014), // crossing a wrap forwards
            (0xffec, 0x0001_0014, 0x0000_ffec), // a late frame from before the wrap
            (0x4000, 0x0001_0000, 0x0001_4000), // within the threshold: same epoch
            (0xc351, 0x0001_0000, 0x0000_c351), // 50 001 ahead: moves one epoch back
            (0xc350, 0x0001_0000, 0x0001_c350), // exactly 50 000 ahead: stays
        ];
        for &(ts, last, want) in table {
            assert_eq!(
                Timestamp16(ts).unwrap_asterisk(last),
                want,
                "ts {ts:#x} last {last:#x}"
            );
        }
    }

    #[test]
    fn timestamp15_unwrap_asterisk_table() {
        let table: &[(u16, u32, u32)] = &[
            (0x0010, 0x7ff0, 0x8010),
            (0x7ff0, 0x8010, 0x7ff0),
            (0x0100, 0x8000, 0x8100),
        ];
        for &(ts, last, want) in table {
            assert_eq!(Timestamp15::new(ts).unwrap_asterisk(last), want);
        }
        assert_eq!(Timestamp15::new(0xffff).get(), 0x7fff);
    }

    proptest! {
        #[test]
        fn timestamp16_truncate_extend_round_trip(v in any::<u64>(), back in 0u64..=0x7fff, fwd in 0u64..=0x8000) {
            // Any value within half the 16-bit range of prev extends back to itself.
            let v = v >> 2;
            let prev_before = v.saturating_sub(fwd);
            prop_assert_eq!(Timestamp16(v as u16).extend(prev_before), v);
            let prev_after = v + back;
            prop_assert_eq!(Timestamp16(v as u16).extend(prev_after), v);
        }

        #[test]
        fn seqno_truncate_extend_round_trip(v in any::<u64>(), back in 0u64..=127, fwd in 0u64..=128) {
            let v = v >> 2;
            prop_assert_eq!(SeqNo(v as u8).extend(v.saturating_sub(fwd)), v);
            prop_assert_eq!(SeqNo(v as u8).extend(v + back), v);
        }

        #[test]
        fn timestamp16_unwrap_recovers_steps_below_the_ambiguity(last in any::<u32>(), step in -15_535i64..=15_535) {
            let truth = i64::from(last) + step;
            prop_assume!((0..=i64::from(u32::MAX)).contains(&truth));
            let truth = truth as u32;
            prop_assert_eq!(Timestamp16::from_full(truth).unwrap_asterisk(last), truth);
        }

        #[test]
        fn seqno_classify_agrees_with_distance(rx in any::<u8>(), exp in any::<u8>()) {
            let order = SeqNo(rx).classify(SeqNo(exp));
            let behind = exp.wrapping_sub(rx);
            let want = if behind == 0 { SeqOrder::InOrder } else if behind < 128 { SeqOrder::OldDuplicate } else { SeqOrder::Future };
            prop_assert_eq!(order, want);
        }
    }
}
