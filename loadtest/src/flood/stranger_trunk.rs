//! The stranger-trunk flood: well-formed meta trunk frames (PROTOCOL.md
//! 2.5), both layouts in turn, each with 1 to 8 entries of 160 bytes of
//! u-law for random call numbers, as a far gateway or an Asterisk with
//! `trunk=yes` would send them, but from addresses that are no peer of
//! the gateway (a misconfigured far side, or a spoofer).

use super::Datagrams;
use crate::rng::SplitMix64;

/// Voice payload per entry: 20 ms of u-law.
const PAYLOAD: usize = 160;

/// Well-formed meta trunk frames.
#[derive(Debug)]
pub struct StrangerTrunk {
    rng: SplitMix64,
    frames: u64,
}

impl StrangerTrunk {
    /// Frames drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            frames: 0,
        }
    }
}

impl Datagrams for StrangerTrunk {
    fn categories(&self) -> &'static [&'static str] {
        &["trunk"]
    }

    fn write(&mut self, buf: &mut [u8]) -> (usize, usize) {
        let timestamps = self.frames & 1 == 1;
        let trunk_ts = u32::try_from((self.frames * 20) % (1 << 32)).unwrap_or(0);
        self.frames += 1;
        buf[..4].copy_from_slice(&[0, 0, 1, u8::from(timestamps)]);
        buf[4..8].copy_from_slice(&trunk_ts.to_be_bytes());
        let mut at = 8;
        let entries = self.rng.range_usize(1, 8);
        for _ in 0..entries {
            let callno = u16::try_from(self.rng.range_usize(2, 32766)).unwrap_or(2);
            let len = u16::try_from(PAYLOAD).unwrap_or(160).to_be_bytes();
            if timestamps {
                buf[at..at + 2].copy_from_slice(&len);
                buf[at + 2..at + 4].copy_from_slice(&callno.to_be_bytes());
                buf[at + 4..at + 6].copy_from_slice(&(trunk_ts as u16).to_be_bytes());
                at += 6;
            } else {
                buf[at..at + 2].copy_from_slice(&callno.to_be_bytes());
                buf[at + 2..at + 4].copy_from_slice(&len);
                at += 4;
            }
            buf[at..at + PAYLOAD].fill(0xff);
            at += PAYLOAD;
        }
        (at, 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use trunk_core::wire::{MetaTrunkFrameRepr, TrunkLayout};

    #[test]
    fn every_frame_is_well_formed() {
        let mut g = StrangerTrunk::new(5);
        let mut buf = [0u8; 1500];
        let mut layouts = [0; 2];
        for _ in 0..1000 {
            let (len, _) = g.write(&mut buf);
            let f = MetaTrunkFrameRepr::parse(&buf[..len]).unwrap();
            assert!((1..=8).contains(&f.entries.len()));
            assert!(f.entries.iter().all(|e| e.payload.len() == PAYLOAD));
            layouts[usize::from(f.layout() == TrunkLayout::Timestamps)] += 1;
        }
        assert_eq!(layouts, [500, 500]);
    }
}
