//! The mapping between the OS monotonic clock and the core's
//! [`Instant`].
//!
//! The core takes `now` as microseconds since an arbitrary origin. The
//! gateway uses one origin for the whole process, fixed the first time
//! anything asks, so every worker (and every gateway in a test process)
//! shares one timeline and deadlines can be handed between them.

use std::sync::OnceLock;
use std::time::Duration;

use trunk_core::time::Instant;

static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();

fn origin() -> std::time::Instant {
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// The current time on the core's clock.
pub fn now() -> Instant {
    from_std(std::time::Instant::now())
}

/// `t` on the core's clock (instants before the origin map to it).
pub fn from_std(t: std::time::Instant) -> Instant {
    let micros = t.saturating_duration_since(origin()).as_micros();
    Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// `t` on the OS clock.
pub fn to_std(t: Instant) -> std::time::Instant {
    let base = origin();
    base.checked_add(Duration::from_micros(t.as_micros()))
        // Only an absurd deadline (centuries away) overflows: treat it as
        // "far away" rather than failing.
        .unwrap_or(base + Duration::from_secs(86_400 * 365))
}

/// How long from now until `deadline` (zero if it has passed).
pub fn until(deadline: Instant) -> Duration {
    to_std(deadline).saturating_duration_since(std::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_a_microsecond() {
        let a = std::time::Instant::now() + Duration::from_millis(5);
        let core = from_std(a);
        let back = to_std(core);
        assert!(back <= a && a - back < Duration::from_micros(1));
        assert!(now() <= from_std(std::time::Instant::now()));
        assert_eq!(until(Instant::ZERO), Duration::ZERO);
    }
}
