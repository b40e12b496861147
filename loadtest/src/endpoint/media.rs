//! The voice payload the emulator sends, and what a receiver measures on it.
//!
//! Every voice payload starts with a header a receiver can check without
//! any shared state: a magic/version byte, the call's 32-bit media sequence
//! number and the send time (the sender's `Instant` in microseconds; both
//! endpoints run on one host clock, so `now - send time` is the one-way
//! latency). The rest is a pattern derived from the sequence number, so a
//! single flipped byte anywhere in the payload is caught.

use trunk_core::time::Instant;

/// Magic and version byte of an emulator voice payload.
pub const MEDIA_MAGIC: u8 = 0xa7;
/// Bytes of the payload header: magic, sequence number, send time.
pub const MEDIA_HEADER_LEN: usize = 13;
/// Smallest payload the emulator sends (G.729 at 20 ms).
pub const MIN_PAYLOAD_LEN: usize = 20;

/// Byte `i` of the pattern that follows the header of frame `seq`.
fn pattern_byte(seq: u32, i: usize) -> u8 {
    // Truncations intended: any deterministic mix of seq and position will do.
    let s = seq.wrapping_mul(0x9e37_79b1);
    ((s >> 24) as u8) ^ (i as u8).wrapping_mul(0x3b) ^ (s >> 8) as u8
}

/// Writes the payload of frame `seq` sent at `sent` into `buf` (its whole
/// length). `buf` must hold at least [`MEDIA_HEADER_LEN`] bytes; a shorter
/// one gets a truncated header.
pub fn write_payload(buf: &mut [u8], seq: u32, sent: Instant) {
    let mut header = [0u8; MEDIA_HEADER_LEN];
    header[0] = MEDIA_MAGIC;
    header[1..5].copy_from_slice(&seq.to_be_bytes());
    header[5..13].copy_from_slice(&sent.as_micros().to_be_bytes());
    let n = buf.len().min(MEDIA_HEADER_LEN);
    buf[..n].copy_from_slice(&header[..n]);
    for (i, b) in buf.iter_mut().enumerate().skip(MEDIA_HEADER_LEN) {
        *b = pattern_byte(seq, i);
    }
}

/// The payload of frame `seq` sent at `sent`, `len` bytes long.
pub fn payload(len: usize, seq: u32, sent: Instant) -> Vec<u8> {
    let mut v = vec![0u8; len];
    write_payload(&mut v, seq, sent);
    v
}

/// The sequence number and send time of a payload whose header and pattern
/// are intact; `None` when anything is off.
pub fn check_payload(payload: &[u8]) -> Option<(u32, Instant)> {
    let header = payload.get(..MEDIA_HEADER_LEN)?;
    if header[0] != MEDIA_MAGIC {
        return None;
    }
    let seq = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&header[5..13]);
    let sent = Instant::from_micros(u64::from_be_bytes(t));
    let intact = payload
        .iter()
        .enumerate()
        .skip(MEDIA_HEADER_LEN)
        .all(|(i, &b)| b == pattern_byte(seq, i));
    intact.then_some((seq, sent))
}

/// Width of the duplicate-detection window, in frames.
const WINDOW: u32 = 1024;

/// What a receiver measured on one call's incoming voice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaRxStats {
    /// Voice frames with an intact payload, duplicates included.
    pub received: u64,
    /// Frames whose sequence number was already received.
    pub duplicates: u64,
    /// Frames that arrived after a later one (not duplicates).
    pub reordered: u64,
    /// Frames whose payload failed the check (wrong length, magic or pattern).
    pub corrupt: u64,
    /// Frames dropped before they could be measured: minis before the first
    /// full voice frame, or before the call started.
    pub dropped: u64,
    /// Highest media sequence number received.
    pub highest_seq: Option<u32>,
    /// Smallest one-way latency, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency, microseconds.
    pub latency_max_us: u64,
    /// Sum of the one-way latencies, microseconds (mean = sum / received).
    pub latency_sum_us: u64,
    /// RFC 3550 interarrival jitter, microseconds.
    pub jitter_us: f64,
    prev_transit_us: Option<i64>,
    window: Box<[u64]>,
}

impl MediaRxStats {
    /// Frames the sender sent up to the highest one received (sequence
    /// numbers start at 0).
    pub fn expected(&self) -> u64 {
        self.highest_seq.map_or(0, |h| u64::from(h) + 1)
    }

    /// Distinct frames received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    /// Frames never received (up to the highest one received).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.unique())
    }

    /// Mean one-way latency in microseconds.
    pub fn latency_mean_us(&self) -> Option<u64> {
        (self.received > 0).then(|| self.latency_sum_us / self.received)
    }

    fn bit(&mut self, seq: u32) -> (&mut u64, u64) {
        if self.window.is_empty() {
            self.window = vec![0u64; (WINDOW / 64) as usize].into_boxed_slice();
        }
        let idx = (seq % WINDOW) as usize;
        let len = self.window.len();
        (&mut self.window[(idx / 64) % len], 1u64 << (idx % 64))
    }

    /// Records a frame with an intact payload: `seq` and `sent` from its
    /// header, `ts` its reconstructed call timestamp, `now` the arrival.
    /// Returns the frame's one-way latency in microseconds, `None` for a
    /// duplicate.
    pub(crate) fn record(&mut self, seq: u32, sent: Instant, ts: u32, now: Instant) -> Option<u64> {
        self.received += 1;
        match self.highest_seq {
            Some(h) if seq <= h => {
                let behind = h - seq;
                let dup = behind < WINDOW && {
                    let (word, mask) = self.bit(seq);
                    let seen = *word & mask != 0;
                    *word |= mask;
                    seen
                };
                if dup {
                    self.duplicates += 1;
                    return None;
                }
                self.reordered += 1;
            }
            prev => {
                // Clear the window slots of the sequence numbers skipped over.
                let from = prev.map_or(0, |h| h.wrapping_add(1));
                if seq - from >= WINDOW || prev.is_none() {
                    self.window = vec![0u64; (WINDOW / 64) as usize].into_boxed_slice();
                } else {
                    for s in from..seq {
                        let (word, mask) = self.bit(s);
                        *word &= !mask;
                    }
                }
                let (word, mask) = self.bit(seq);
                *word |= mask;
                self.highest_seq = Some(seq);
            }
        }
        let latency = now.as_micros().saturating_sub(sent.as_micros());
        if self.received - self.duplicates == 1 {
            self.latency_min_us = latency;
        }
        self.latency_min_us = self.latency_min_us.min(latency);
        self.latency_max_us = self.latency_max_us.max(latency);
        self.latency_sum_us += latency;
        // RFC 3550 6.4.1, in microseconds: transit = arrival - media time.
        let transit = i64::try_from(now.as_micros()).unwrap_or(i64::MAX) - i64::from(ts) * 1000;
        if let Some(prev) = self.prev_transit_us {
            let d = (transit - prev).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.prev_transit_us = Some(transit);
        Some(latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_detects_flips() {
        for len in [20usize, 33, 160] {
            let p = payload(len, 77, Instant::from_micros(123_456));
            assert_eq!(check_payload(&p), Some((77, Instant::from_micros(123_456))));
            for i in 0..len {
                let mut q = p.clone();
                q[i] ^= 0x10;
                let r = check_payload(&q);
                // Flipping a header byte may still parse, but never as the same frame.
                assert_ne!(r, Some((77, Instant::from_micros(123_456))), "byte {i}");
            }
        }
        assert_eq!(check_payload(&[MEDIA_MAGIC; 5]), None);
    }

    #[test]
    fn loss_duplicates_reordering() {
        let mut s = MediaRxStats::default();
        let t = Instant::from_millis(1000);
        for seq in [0u32, 1, 3, 2, 3, 6] {
            s.record(seq, Instant::from_millis(990), seq * 20, t);
        }
        assert_eq!(s.received, 6);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.expected(), 7);
        assert_eq!(s.lost(), 2); // 4 and 5
        assert_eq!(s.latency_min_us, 10_000);
        assert_eq!(s.latency_max_us, 10_000);
        // A sequence number far ahead clears the window: old ones are not duplicates.
        s.record(5000, t, 0, t);
        s.record(6, t, 0, t);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 2);
    }

    #[test]
    fn jitter_zero_for_perfect_pacing() {
        let mut s = MediaRxStats::default();
        for k in 0..100u32 {
            let now = Instant::from_millis(5 + u64::from(k) * 20);
            s.record(k, Instant::from_millis(u64::from(k) * 20), k * 20, now);
        }
        assert!(s.jitter_us.abs() < 1e-9);
        assert_eq!(s.lost(), 0);
    }
}
