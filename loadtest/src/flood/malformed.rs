//! The malformed flood: a seeded mix of datagrams, each breaking the
//! IAX2 rules (PROTOCOL.md 1, 2, 9) in one known way, so that a receiver
//! that follows them must drop every one. The categories, in turn:
//!
//! | Category | What |
//! |---|---|
//! | `runt` | 0 to 3 bytes: shorter than any frame |
//! | `truncated_full` | F bit set, 4 to 11 bytes: a full frame cut inside its header |
//! | `zero_source` | a full frame whose source call number is 0 |
//! | `ie_overlong` | a NEW whose last IE says it is longer than what is left |
//! | `ie_cut` | a NEW whose IE block ends one byte into an IE header |
//! | `meta_unknown` | a meta frame with a command other than trunk, then random bytes |
//! | `trunk_truncated` | a meta trunk frame cut inside its 8-byte header |
//! | `trunk_overlong` | a meta trunk frame whose first entry is longer than what is left (lengths up to 0xffff, -1 as a signed word) |
//! | `video_truncated` | a video mini frame cut inside its 6-byte header |

use trunk_core::wire::{CallNumber, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, SeqNo};

use super::Datagrams;
use crate::rng::SplitMix64;
use crate::Codec;

/// The category names, in the order of the table above.
pub const CATEGORIES: [&str; 9] = [
    "runt",
    "truncated_full",
    "zero_source",
    "ie_overlong",
    "ie_cut",
    "meta_unknown",
    "trunk_truncated",
    "trunk_overlong",
    "video_truncated",
];

/// Categories that are meta trunk frames: from a peer that may not send
/// trunk frames, a gateway drops them as that before it reads them.
pub const TRUNK_CATEGORIES: [&str; 2] = ["trunk_truncated", "trunk_overlong"];

/// The malformed mix.
#[derive(Debug)]
pub struct Malformed {
    rng: SplitMix64,
    /// A valid NEW's IE block, spoiled per datagram.
    new_ies: Vec<u8>,
    next: usize,
}

impl Malformed {
    /// The mix drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let f = Codec::Ulaw.format();
        let ies = IeList::new()
            .with(Ie::version())
            .with(Ie::string(IeType::CalledNumber, "2001").unwrap_or_else(|_| Ie::version()))
            .with(Ie::format(f))
            .with(Ie::capability(f));
        let frame = FullFrameRepr::iax(
            CallNumber::new(2).unwrap_or(CallNumber::UNKNOWN),
            CallNumber::UNKNOWN,
            3,
            SeqNo(0),
            SeqNo(0),
            IaxSubclass::New,
            ies,
        )
        .to_vec();
        Self {
            rng: SplitMix64::new(seed),
            new_ies: frame,
            next: 0,
        }
    }

    /// A NEW header from a random call number (2..=32766) and the valid
    /// IE block; returns its length.
    fn new_frame(&mut self, buf: &mut [u8]) -> usize {
        let n = self.new_ies.len();
        buf[..n].copy_from_slice(&self.new_ies);
        let callno = u16::try_from(self.rng.range_usize(2, 32766)).unwrap_or(2);
        buf[..2].copy_from_slice(&(0x8000 | callno).to_be_bytes());
        n
    }
}

impl Datagrams for Malformed {
    fn categories(&self) -> &'static [&'static str] {
        &CATEGORIES
    }

    fn write(&mut self, buf: &mut [u8]) -> (usize, usize) {
        let category = self.next;
        self.next = (self.next + 1) % CATEGORIES.len();
        let r = &mut self.rng;
        let len = match category {
            0 => {
                let n = r.range_usize(0, 3);
                r.fill(&mut buf[..n]);
                n
            }
            1 => {
                let n = r.range_usize(4, 11);
                r.fill(&mut buf[..n]);
                buf[0] |= 0x80;
                n
            }
            2 => {
                let n = r.range_usize(12, 60);
                r.fill(&mut buf[..n]);
                buf[0] = 0x80;
                buf[1] = 0;
                n
            }
            3 => {
                let n = self.new_frame(buf);
                // CALLED CONTEXT saying 200 bytes, followed by fewer.
                let have = self.rng.range_usize(0, 199);
                buf[n] = 5;
                buf[n + 1] = 200;
                self.rng.fill(&mut buf[n + 2..n + 2 + have]);
                n + 2 + have
            }
            4 => {
                let n = self.new_frame(buf);
                buf[n] = 6;
                n + 1
            }
            5 => {
                let n = r.range_usize(4, 200);
                r.fill(&mut buf[..n]);
                buf[0] = 0;
                buf[1] = 0;
                // 0 or 2..=0x7f: not trunk (1), not video (top bit).
                let cmd = u8::try_from(r.range_usize(1, 0x7f)).unwrap_or(2);
                buf[2] = if cmd == 1 { 0 } else { cmd };
                n
            }
            6 => {
                let n = r.range_usize(4, 7);
                r.fill(&mut buf[..n]);
                buf[..3].copy_from_slice(&[0, 0, 1]);
                buf[3] &= 1;
                n
            }
            7 => {
                let timestamps = r.next_u64() & 1 == 1;
                let header = if timestamps { 6 } else { 4 };
                let have = r.range_usize(0, 400);
                let n = 8 + header + have;
                r.fill(&mut buf[..n]);
                buf[..4].copy_from_slice(&[0, 0, 1, u8::from(timestamps)]);
                let too_long = u16::try_from(r.range_usize(have + 1, 0xffff)).unwrap_or(0xffff);
                let callno = u16::try_from(r.range_usize(2, 32766)).unwrap_or(2);
                if timestamps {
                    buf[8..10].copy_from_slice(&too_long.to_be_bytes());
                    buf[10..12].copy_from_slice(&callno.to_be_bytes());
                } else {
                    buf[8..10].copy_from_slice(&callno.to_be_bytes());
                    buf[10..12].copy_from_slice(&too_long.to_be_bytes());
                }
                n
            }
            _ => {
                let n = r.range_usize(4, 5);
                r.fill(&mut buf[..n]);
                buf[0] = 0;
                buf[1] = 0;
                buf[2] |= 0x80;
                n
            }
        };
        (len, category)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use trunk_core::wire::{
        classify, FrameKind, FullFrame, IeBlock, MetaTrunkFrame, VideoMiniFrame,
    };

    /// Each category breaks the rule it names, by trunk-core's parsers.
    #[test]
    fn every_datagram_breaks_its_rule() {
        let mut g = Malformed::new(7);
        let mut buf = [0u8; 1500];
        let mut seen = [0u64; 9];
        for _ in 0..9 * 2000 {
            let (len, cat) = g.write(&mut buf);
            seen[cat] += 1;
            let d = &buf[..len];
            match CATEGORIES[cat] {
                "runt" => assert!(len < 4 && classify(d).is_err()),
                "truncated_full" => {
                    assert_eq!(classify(d).unwrap(), FrameKind::Full);
                    assert!(FullFrame::new_checked(d).is_err());
                }
                "zero_source" => {
                    let f = FullFrame::new_checked(d).unwrap();
                    assert_eq!(f.source_call_number(), CallNumber::UNKNOWN);
                }
                "ie_overlong" | "ie_cut" => {
                    let f = FullFrame::new_checked(d).unwrap();
                    assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
                    assert!((2..=32766).contains(&f.source_call_number().get()));
                    assert_eq!(f.dest_call_number(), CallNumber::UNKNOWN);
                    assert!(IeBlock::new_checked(f.payload()).is_err());
                }
                "meta_unknown" => assert_eq!(classify(d).unwrap(), FrameKind::Meta),
                "trunk_truncated" => {
                    assert_eq!(classify(d).unwrap(), FrameKind::MetaTrunk);
                    assert!(MetaTrunkFrame::new_checked(d).is_err());
                }
                "trunk_overlong" => {
                    assert_eq!(classify(d).unwrap(), FrameKind::MetaTrunk);
                    let f = MetaTrunkFrame::new_checked(d).unwrap();
                    assert!(matches!(f.entry_at(8), Some(Err(_))));
                }
                "video_truncated" => {
                    assert_eq!(classify(d).unwrap(), FrameKind::VideoMini);
                    assert!(VideoMiniFrame::new_checked(d).is_err());
                }
                other => panic!("{other}"),
            }
        }
        assert!(seen.iter().all(|&n| n == 2000));
        // The same seed, the same datagrams.
        let (mut a, mut b) = (Malformed::new(3), Malformed::new(3));
        let (mut x, mut y) = ([0u8; 1500], [0u8; 1500]);
        for _ in 0..1000 {
            let (la, _) = a.write(&mut x);
            let (lb, _) = b.write(&mut y);
            assert_eq!(x[..la], y[..lb]);
        }
    }
}
