//! One-way audio: a call whose voice flows from one side only.
//!
//! The classic cause between IAX2 peers is one side not accepting the
//! other's media (a trunk peer it does not know, a NAT that lets
//! signalling through but not media). The relay sees both directions, so
//! it can tell: voice keeps coming from one leg while the other leg has
//! sent none for [`ONE_WAY_AFTER`]. Each call is reported once.

use core::time::Duration;

use crate::time::Instant;

/// How long one direction must stay silent while the other flows.
pub const ONE_WAY_AFTER: Duration = Duration::from_secs(5);
/// "Flows": a frame came within this long.
const FLOWING: Duration = Duration::from_secs(1);

/// What the relay remembers of a call's voice, per leg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OneWayWatch {
    frames: [u64; 2],
    /// When each leg's frame count last grew (`None`: not yet).
    advanced: [Option<Instant>; 2],
    /// When watching began (the call was first seen up).
    since: Option<Instant>,
    reported: bool,
}

impl OneWayWatch {
    /// Takes the legs' voice frame counts at `now`; returns the silent
    /// leg the first time the call is seen one-way.
    pub(crate) fn observe(&mut self, now: Instant, frames: [u64; 2]) -> Option<usize> {
        let since = *self.since.get_or_insert(now);
        for ((seen, advanced), now_frames) in
            self.frames.iter_mut().zip(&mut self.advanced).zip(frames)
        {
            if now_frames > *seen {
                *seen = now_frames;
                *advanced = Some(now);
            }
        }
        if self.reported {
            return None;
        }
        let flowing = |i: usize| {
            self.advanced[i].is_some_and(|t| now.saturating_duration_since(t) <= FLOWING)
        };
        let silent = |i: usize| {
            let quiet_since = self.advanced[i].unwrap_or(since);
            now.saturating_duration_since(quiet_since) >= ONE_WAY_AFTER
        };
        let leg = (0..2).find(|&i| silent(i) && flowing(1 - i))?;
        self.reported = true;
        Some(leg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a call for `secs` seconds with each leg sending 50 frames/s
    /// while its flag says so; returns when (ms) and which leg is reported.
    fn run(secs: u64, sends: impl Fn(u64) -> [bool; 2]) -> Option<(u64, usize)> {
        let mut w = OneWayWatch::default();
        let mut frames = [0u64; 2];
        for ms in (0..secs * 1000).step_by(250) {
            for (i, on) in sends(ms).into_iter().enumerate() {
                if on {
                    frames[i] += 12;
                }
            }
            if let Some(leg) = w.observe(Instant::from_millis(ms), frames) {
                return Some((ms, leg));
            }
        }
        None
    }

    #[test]
    fn voice_both_ways_is_never_reported() {
        assert_eq!(run(60, |_| [true, true]), None);
    }

    #[test]
    fn a_side_that_never_sends_is_reported_after_five_seconds() {
        assert_eq!(run(60, |_| [true, false]), Some((5_000, 1)));
        assert_eq!(run(60, |_| [false, true]), Some((5_000, 0)));
    }

    #[test]
    fn a_side_that_stops_is_reported_five_seconds_later_and_only_once() {
        let got = run(60, |ms| [true, ms < 10_000]);
        // The last frame came at 9.75 s.
        assert_eq!(got, Some((14_750, 1)));
    }

    #[test]
    fn silence_both_ways_or_a_short_gap_is_not_one_way() {
        assert_eq!(run(60, |_| [false, false]), None, "hold, or no media yet");
        assert_eq!(
            run(60, |ms| [true, !(10_000..14_000).contains(&ms)]),
            None,
            "a 4 s gap"
        );
    }
}
