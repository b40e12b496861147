//! Exponential backoff with jitter and a cap.
//!
//! The n-th retry waits a random time in `[d/2, d]` where
//! `d = min(cap, base * 2^n)` ("equal jitter"): the wait grows fast enough
//! to stop hammering a peer that is down, never passes the cap, and two
//! gateways that lost their link at the same moment do not retry in step.
//! The random source is seeded by the caller, so a test replays exactly.

use core::time::Duration;

use crate::relay::SplitMix64;

/// Retry timing for one link.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Retries since the last success.
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Waits starting near `base`, doubling per retry up to `cap`
    /// (`cap` below `base` is raised to `base`).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            rng: SplitMix64(seed),
        }
    }

    /// How long to wait before the next retry; counts the retry.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.rng.next() % (spread + 1)
        };
        half + Duration::from_micros(jitter)
    }

    /// The upper bound of the next wait: `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// Retries since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The link works again: the next failure starts from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    const BASE: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(60);

    #[test]
    fn waits_double_within_their_jitter_band_and_stop_at_the_cap() {
        let mut b = Backoff::new(BASE, CAP, 7);
        for n in 0..12u32 {
            let ceiling = (BASE * 2u32.pow(n)).min(CAP);
            assert_eq!(b.ceiling(), ceiling, "retry {n}");
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "retry {n}: {d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(b.attempts(), 12);
        // Far past the cap, and past any overflow of the doubling.
        for _ in 0..100 {
            assert!(b.next_delay() <= CAP);
        }
        b.reset();
        assert_eq!(b.ceiling(), BASE);
    }

    #[test]
    fn retries_on_a_virtual_clock_never_form_a_short_loop() {
        // Ten minutes of a link that never answers: the retries thin out to
        // one per half cap at least, instead of one every few seconds.
        let mut b = Backoff::new(BASE, CAP, 42);
        let start = Instant::ZERO;
        let mut now = start;
        let mut retries = Vec::new();
        while now.saturating_duration_since(start) < Duration::from_secs(600) {
            now += b.next_delay();
            retries.push(now);
        }
        assert!(
            retries.len() < 30,
            "{} retries in 10 minutes",
            retries.len()
        );
        let late: Vec<_> = retries
            .windows(2)
            .filter(|w| w[0].saturating_duration_since(start) > Duration::from_secs(120))
            .map(|w| w[1].saturating_duration_since(w[0]))
            .collect();
        assert!(!late.is_empty());
        assert!(late.iter().all(|gap| *gap >= CAP / 2), "{late:?}");
    }

    #[test]
    fn two_links_that_fail_together_do_not_retry_in_step() {
        let (mut a, mut b) = (Backoff::new(BASE, CAP, 1), Backoff::new(BASE, CAP, 2));
        let same = (0..8).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 2, "{same} of 8 retries at the same moment");
        // The same seed replays the same waits.
        let (mut c, mut d) = (Backoff::new(BASE, CAP, 9), Backoff::new(BASE, CAP, 9));
        assert!((0..8).all(|_| c.next_delay() == d.next_delay()));
    }

    #[test]
    fn a_zero_base_never_divides_by_zero() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 3);
        assert_eq!(b.next_delay(), Duration::ZERO);
        let mut b = Backoff::new(Duration::from_micros(1), Duration::from_micros(1), 3);
        assert!(b.next_delay() <= Duration::from_micros(1));
    }
}
