//! Our call numbers: random, never 0 or 1, quarantined after use
//! (PROTOCOL.md 8.1).

use std::collections::VecDeque;

use crate::time::Instant;

/// The lowest call number we hand out (0 means "unknown", 1 is the source
/// of stateless replies).
pub(crate) const FIRST: u16 = 2;
/// The highest 15-bit call number.
pub(crate) const LAST: u16 = 0x7ffe;

/// The source call number of a gateway's own link probes (POKE to a
/// gateway peer), never handed to a call: a gateway answers a POKE from
/// this number itself instead of relaying it, and takes a PONG to it as
/// its link's answer.
pub(crate) const LINK_PROBE: u16 = 0x7fff;

/// The free call numbers.
#[derive(Debug)]
pub(crate) struct CallNumberPool {
    free: Vec<u16>,
    quarantine: VecDeque<(Instant, u16)>,
    rng: SplitMix64,
}

impl CallNumberPool {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            free: (FIRST..=LAST).collect(),
            quarantine: VecDeque::new(),
            rng: SplitMix64(seed),
        }
    }

    /// A random free number, after releasing the quarantined ones whose
    /// time has come. Random so numbers say nothing about call volume and a
    /// stale frame rarely hits a new call.
    pub(crate) fn allocate(&mut self, now: Instant) -> Option<u16> {
        while let Some(&(until, n)) = self.quarantine.front() {
            if until > now {
                break;
            }
            self.quarantine.pop_front();
            self.free.push(n);
        }
        if self.free.is_empty() {
            return None;
        }
        let len = u64::try_from(self.free.len()).unwrap_or(u64::MAX);
        let i = usize::try_from(self.rng.next() % len).unwrap_or(0);
        Some(self.free.swap_remove(i))
    }

    /// Returns `n` for reuse after `until`. Release times must not go
    /// backwards (they are `now + a fixed quarantine`).
    pub(crate) fn release(&mut self, n: u16, until: Instant) {
        self.quarantine.push_back((until, n));
    }

    /// Returns `n` for immediate reuse (it never reached the wire).
    pub(crate) fn release_unused(&mut self, n: u16) {
        self.free.push(n);
    }

    /// Numbers neither free nor quarantined.
    pub(crate) fn in_use(&self) -> usize {
        usize::from(LAST - FIRST + 1) - self.free.len() - self.quarantine.len()
    }
}

/// A small, fast, seedable generator (Steele, Lea, Flood 2014); the core
/// takes no OS randomness so simulations replay exactly.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn numbers_are_unique_in_range_and_quarantined() {
        let mut pool = CallNumberPool::new(7);
        let t0 = Instant::ZERO;
        let mut seen = std::collections::HashSet::new();
        for _ in FIRST..=LAST {
            let n = pool.allocate(t0).unwrap();
            assert!((FIRST..=LAST).contains(&n));
            assert!(seen.insert(n));
        }
        assert_eq!(pool.allocate(t0), None);
        pool.release(100, t0 + Duration::from_secs(60));
        assert_eq!(pool.allocate(t0 + Duration::from_secs(59)), None);
        assert_eq!(pool.allocate(t0 + Duration::from_secs(60)), Some(100));
        pool.release_unused(5);
        assert_eq!(pool.allocate(t0), Some(5));
    }
}
