//! What the relay learns of each call leg's voice as it passes: frames,
//! gaps in the timestamps (voice lost before the gateway) and the RFC 3550
//! interarrival jitter. Kept in the call's table slot in atomics that only
//! the worker owning the leg writes (the steering and the trunk handoff
//! give each leg's media to one worker), and read by anyone for status.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::time::Instant;
use crate::wire::Timestamp16;

/// Longest timestamp step still read as voice lost rather than a pause
/// (silence suppression, hold): one second.
const MAX_GAP_MS: u64 = 1_000;

/// One leg's voice, as received from its peer. Two words change per
/// frame: `last` packs what the next frame is compared with, and
/// `counts` packs the frame count with the jitter.
#[derive(Debug, Default)]
pub(crate) struct LegMedia {
    /// 0 before the first frame; then bit 63 set, the last timestamp in
    /// bits 40..56, the frame interval (ms, up to 255) in bits 32..40, and
    /// the low 32 bits of its arrival time in microseconds.
    last: AtomicU64,
    /// Frames received in bits 24..64; the RFC 3550 jitter in microseconds
    /// times 16 (the estimator's scale, capped) in bits 0..24.
    counts: AtomicU64,
    /// Frames missing from the timestamps so far.
    gaps: AtomicU64,
}

const VALID: u64 = 1 << 63;
const JITTER_BITS: u32 = 24;
const JITTER_MAX: u64 = (1 << JITTER_BITS) - 1;

/// What the relay saw of one call leg's voice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegMediaSnapshot {
    /// Voice frames received.
    pub frames: u64,
    /// Frames missing from the timestamps (an estimate of loss upstream).
    pub gaps: u64,
    /// Interarrival jitter, microseconds.
    pub jitter_us: u64,
}

fn set(a: &AtomicU64, v: u64) {
    a.store(v, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// How a voice frame's timestamp stands to the newest one of its leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Newer: `missing` frames its timestamp says went missing before it.
    InOrder { missing: u64 },
    /// The same timestamp again.
    Repeat,
    /// Older than one already seen: reordered before it was relayed.
    Late,
}

impl Arrival {
    /// Frames missing before this one.
    pub(crate) fn missing(self) -> u64 {
        match self {
            Self::InOrder { missing } => missing,
            Self::Repeat | Self::Late => 0,
        }
    }
}

impl LegMedia {
    /// Notes a voice frame with timestamp `ts` arriving at `now`.
    #[inline]
    pub(crate) fn record(&self, now: Instant, ts: Timestamp16) -> Arrival {
        #[allow(clippy::cast_possible_truncation)]
        let arrival = now.as_micros() as u32;
        let last = get(&self.last);
        let counts = get(&self.counts);
        let pack =
            |interval: u64| VALID | (u64::from(ts.0) << 40) | (interval << 32) | u64::from(arrival);
        if last & VALID == 0 {
            set(&self.last, pack(0));
            set(&self.counts, counts + (1 << JITTER_BITS));
            return Arrival::InOrder { missing: 0 };
        }
        #[allow(clippy::cast_possible_truncation)]
        let (last_ts, interval, last_arrival) =
            ((last >> 40) as u16, (last >> 32) & 0xff, last as u32);
        let step = ts.0.wrapping_sub(last_ts);
        if step == 0 || step >= 0x8000 {
            // A repeat, or a frame from the past (reordered): it neither
            // moves the newest timestamp nor says anything of loss.
            set(&self.counts, counts + (1 << JITTER_BITS));
            return if step == 0 {
                Arrival::Repeat
            } else {
                Arrival::Late
            };
        }
        let step = u64::from(step);
        // RFC 3550 A.8: D is the change in transit time; J += (|D| - J)/16,
        // kept scaled by 16. Arrival times wrap at 2^32 us (71 minutes);
        // only their difference counts.
        let elapsed = u64::from(arrival.wrapping_sub(last_arrival));
        let d = elapsed.abs_diff(step * 1_000);
        let j = counts & JITTER_MAX;
        let j = (j + d).saturating_sub((j + 8) >> 4).min(JITTER_MAX);
        set(
            &self.counts,
            ((counts >> JITTER_BITS) + 1) << JITTER_BITS | j,
        );
        let mut missing = 0;
        let mut interval = interval;
        if step <= MAX_GAP_MS {
            interval = match interval {
                0 => step.min(0xff),
                i => i.min(step),
            };
            missing = (step / interval.max(1)).saturating_sub(1);
            if missing > 0 {
                set(&self.gaps, get(&self.gaps) + missing);
            }
        }
        set(&self.last, pack(interval));
        Arrival::InOrder { missing }
    }

    /// What has been seen so far.
    pub(crate) fn snapshot(&self) -> LegMediaSnapshot {
        let counts = get(&self.counts);
        LegMediaSnapshot {
            frames: counts >> JITTER_BITS,
            gaps: get(&self.gaps),
            jitter_us: (counts & JITTER_MAX) / 16,
        }
    }

    /// Forgets everything (the slot is reused by another call).
    pub(crate) fn reset(&self) {
        for a in [&self.last, &self.counts, &self.gaps] {
            set(a, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn gaps_are_counted_from_the_timestamps() {
        let m = LegMedia::default();
        // 20 ms voice; frames 3 and 4 (ts 60, 80) never arrive.
        for (ms, ts) in [(0, 0), (20, 20), (40, 40), (100, 100), (120, 120)] {
            m.record(at(1000 + ms), Timestamp16(ts));
        }
        let s = m.snapshot();
        assert_eq!((s.frames, s.gaps), (5, 2));
        assert_eq!(s.jitter_us, 0, "arrivals exactly on time");
        // A pause longer than a second is not loss; wrap-around is fine.
        m.record(at(4000), Timestamp16(3000));
        m.record(at(4020), Timestamp16(3020));
        assert_eq!(m.snapshot().gaps, 2);
        let w = LegMedia::default();
        w.record(at(0), Timestamp16(65_520));
        w.record(at(20), Timestamp16(4));
        w.record(at(40), Timestamp16(24));
        assert_eq!(w.snapshot().gaps, 0);
        // A reordered frame is neither a gap nor a new interval, and a
        // repeat is not reordered.
        assert_eq!(w.record(at(45), Timestamp16(4)), Arrival::Late);
        assert_eq!(w.record(at(50), Timestamp16(24)), Arrival::Repeat);
        assert_eq!(
            w.record(at(60), Timestamp16(44)),
            Arrival::InOrder { missing: 0 }
        );
        assert_eq!(w.snapshot().gaps, 0);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let m = LegMedia::default();
        // Every other frame 10 ms late: |D| alternates 10 ms; J converges
        // towards 10 ms.
        let mut t = 0;
        for k in 0..400u16 {
            let late = if k % 2 == 1 { 10 } else { 0 };
            t = u64::from(k) * 20 + late;
            m.record(at(t), Timestamp16(k * 20));
        }
        let j = m.snapshot().jitter_us;
        assert!((9_000..=10_500).contains(&j), "{j}");
        let _ = t;
        m.reset();
        assert_eq!(m.snapshot(), LegMediaSnapshot::default());
    }
}
