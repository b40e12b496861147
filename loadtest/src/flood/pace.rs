//! Pacing a flood: how many datagrams are due at a rate since the start.

use std::time::{Duration, Instant};

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Send this many now (at least one, at most the batch asked for).
    Send(usize),
    /// Ahead of the rate: wait [`Pacer::idle`].
    Wait,
    /// The flood's time is over.
    Done,
}

/// Keeps a flood at `rate` datagrams per second for its duration.
#[derive(Debug)]
pub(crate) struct Pacer {
    start: Instant,
    rate: f64,
    duration: Duration,
    written: u64,
}

impl Pacer {
    /// Starts now.
    pub(crate) fn new(rate: u64, duration: Duration) -> Self {
        Self {
            start: Instant::now(),
            rate: rate.max(1) as f64,
            duration,
            written: 0,
        }
    }

    /// What is due now, in batches of at most `batch`.
    pub(crate) fn next(&self, batch: usize) -> Pace {
        let elapsed = self.start.elapsed();
        if elapsed >= self.duration {
            return Pace::Done;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let due = (elapsed.as_secs_f64() * self.rate) as u64;
        if self.written >= due {
            return Pace::Wait;
        }
        Pace::Send(
            usize::try_from(due - self.written)
                .unwrap_or(batch)
                .min(batch),
        )
    }

    /// Counts `n` datagrams sent.
    pub(crate) fn sent(&mut self, n: usize) {
        self.written += n as u64;
    }

    /// Datagrams sent so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Seconds since the start.
    pub(crate) fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// How long to wait when ahead: one datagram's time, between 20 and
    /// 500 µs, and never past the end.
    pub(crate) fn idle(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
            .clamp(Duration::from_micros(20), Duration::from_micros(500))
            .min(self.duration.saturating_sub(self.start.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_due_at_the_start_and_all_is_done_at_the_end() {
        let p = Pacer::new(1000, Duration::ZERO);
        assert_eq!(p.next(64), Pace::Done);
        let mut p = Pacer::new(1_000_000, Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(2));
        // About 2,000 are due: one batch at a time.
        assert_eq!(p.next(64), Pace::Send(64));
        p.sent(1_000_000);
        assert_eq!(p.next(64), Pace::Wait);
        assert_eq!(p.written(), 1_000_000);
        assert!(p.idle() <= Duration::from_micros(500));
    }
}
