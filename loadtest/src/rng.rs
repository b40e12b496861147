//! The load generator's one seeded generator (SplitMix64): the endpoints,
//! floods, impairment model and soak draw call numbers, challenges, holds,
//! fates and test data from a seed, never from the OS, so a run replays
//! exactly.

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, good enough for
/// call numbers and test data, not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole sequence `seed` decides.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi` (slightly biased; fine for test data).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// [`range`](Self::range) for sizes and indexes.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.range(wide(lo), wide(hi))).unwrap_or(lo)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`; draws nothing when `p` is zero, so a
    /// disabled choice does not shift the others' draws.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.range(2, 32767);
            assert_eq!(x, b.range(2, 32767));
            assert!((2..=32767).contains(&x));
            let i = a.range_usize(4, 11);
            assert_eq!(i, b.range_usize(4, 11));
            assert!((4..=11).contains(&i));
            let u = a.unit();
            assert_eq!(u, b.unit());
            assert!((0.0..1.0).contains(&u));
        }
        // Reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        // A zero chance draws nothing.
        let mut c = SplitMix64::new(7);
        assert!(!c.chance(0.0));
        assert_eq!(c.next_u64(), SplitMix64::new(7).next_u64());
        let mut buf = [0u8; 13];
        c.fill(&mut buf);
        assert_ne!(buf, [0u8; 13]);
    }
}
