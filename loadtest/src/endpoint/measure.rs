//! Distributions an endpoint measures: one-way latency of every voice
//! frame, call setup time, and the RFC 3550 jitter of each ended call.
//!
//! Histograms (HdrHistogram, 3 significant digits) rather than sums, so a
//! load run can report p50/p99/max; they cost a few nanoseconds per
//! record and never allocate after creation.

use hdrhistogram::Histogram;

/// Largest value kept, in microseconds (one minute); larger ones saturate.
const MAX_US: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant bounds are valid")
}

/// The endpoint's histograms, all in microseconds.
#[derive(Debug, Clone)]
pub struct Measurements {
    /// One-way latency of each voice frame received (duplicates excluded).
    pub latency_us: Histogram<u64>,
    /// NEW sent to ANSWER received, for each call this endpoint originated.
    pub setup_us: Histogram<u64>,
    /// Interarrival jitter of each call that received voice, read when the
    /// call ended.
    pub jitter_us: Histogram<u64>,
}

impl Default for Measurements {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            setup_us: histogram(),
            jitter_us: histogram(),
        }
    }
}

impl Measurements {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn record_latency(&mut self, us: u64) {
        self.latency_us.saturating_record(us.clamp(1, MAX_US));
    }

    pub(crate) fn record_setup(&mut self, us: u64) {
        self.setup_us.saturating_record(us.clamp(1, MAX_US));
    }

    pub(crate) fn record_jitter(&mut self, us: f64) {
        // Truncation intended: sub-microsecond jitter is noise here.
        self.jitter_us
            .saturating_record((us as u64).clamp(1, MAX_US));
    }

    /// Adds another endpoint's (or window's) measurements.
    pub fn add(&mut self, other: &Self) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.setup_us.add(&other.setup_us);
        let _ = self.jitter_us.add(&other.jitter_us);
    }

    /// Empties every histogram (keeps their memory).
    pub fn reset(&mut self) {
        self.latency_us.reset();
        self.setup_us.reset();
        self.jitter_us.reset();
    }
}

/// `q` (0..=1) of `h` in milliseconds, or 0 when empty.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The largest value of `h` in milliseconds, or 0 when empty.
pub fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.max() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_recorded_values() {
        let mut m = Measurements::new();
        for us in 1..=1000u64 {
            m.record_latency(us * 100);
        }
        let p50 = quantile_ms(&m.latency_us, 0.5);
        let p99 = quantile_ms(&m.latency_us, 0.99);
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert!((98.9..=99.1).contains(&p99), "{p99}");
        assert!((99.9..=100.1).contains(&max_ms(&m.latency_us)));
        let mut sum = Measurements::new();
        sum.add(&m);
        sum.add(&m);
        assert_eq!(sum.latency_us.len(), 2000);
        sum.reset();
        assert_eq!(quantile_ms(&sum.latency_us, 0.99), 0.0);
        // Out of range values saturate instead of failing.
        m.record_latency(u64::MAX);
        m.record_jitter(f64::NAN);
        assert_eq!(m.jitter_us.len(), 1);
    }
}
