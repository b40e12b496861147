//! Rate-limited logging for errors that may repeat once per packet.

use std::time::{Duration, Instant};

/// Lets one message through per interval and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// One message per `interval`.
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a message may be logged now, `n` being how many were
    /// held back since the last one; `None` when this one must be skipped.
    /// Reads the clock, so call it on error paths only.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.next {
            Some(next) if now < next => {
                self.suppressed += 1;
                None
            }
            Some(_) | None => {
                self.next = Some(now + self.interval);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_and_counts() {
        let mut l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        l.next = Some(Instant::now());
        assert_eq!(l.allow(), Some(2));
    }
}
