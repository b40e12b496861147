//! The queue of sent full frames waiting for acknowledgement, and their
//! retransmission schedule (PROTOCOL.md 6.1, 6.3).

use std::collections::VecDeque;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::wire::{FullFrame, SeqNo};

/// Transmissions of one frame in total before the call is given up
/// (Asterisk's `max_retries`).
pub(crate) const MAX_TRANSMISSIONS: u8 = 4;
/// Ceiling of one retransmission timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Floor of the initial retransmission timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The first retransmission timeout for a call whose ping time is
/// `ping_time`: twice it, clamped to 100 ms..10 s.
pub(crate) fn initial_timeout(ping_time: Duration) -> Duration {
    (ping_time * 2).clamp(MIN_TIMEOUT, MAX_TIMEOUT)
}

/// One sent full frame not yet acknowledged.
#[derive(Debug)]
struct Pending {
    oseqno: SeqNo,
    bytes: Vec<u8>,
    transmissions: u8,
    timeout: Duration,
    due: Instant,
    /// HANGUP or REJECT: once acknowledged (or given up) the call ends.
    last: bool,
}

/// What acknowledging frames did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) frames: usize,
    /// A frame marked last was among them.
    pub(crate) last: bool,
}

/// What a timer pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Nothing gave up.
    None,
    /// A frame used its last transmission without an acknowledgement;
    /// `last` tells whether it was a HANGUP/REJECT.
    GaveUp { last: bool },
}

/// Sent, unacknowledged full frames in OSeqno order.
#[derive(Debug, Default)]
pub(crate) struct RetransmitQueue {
    frames: VecDeque<Pending>,
}

impl RetransmitQueue {
    /// Queues a frame just sent for the first time.
    pub(crate) fn push(
        &mut self,
        oseqno: SeqNo,
        bytes: Vec<u8>,
        now: Instant,
        timeout: Duration,
        last: bool,
    ) {
        self.frames.push_back(Pending {
            oseqno,
            bytes,
            transmissions: 1,
            timeout,
            due: now + timeout,
            last,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.frames.clear();
    }

    /// Releases every frame the peer's `iseqno` ("next I expect from you")
    /// acknowledges. `next_oseqno` is the OSeqno our next frame will carry;
    /// an ISeqno outside `[oldest, next_oseqno]` is ignored as bogus.
    pub(crate) fn release(&mut self, iseqno: SeqNo, next_oseqno: SeqNo) -> Released {
        let mut r = Released::default();
        let Some(oldest) = self.frames.front().map(|p| p.oseqno) else {
            return r;
        };
        if iseqno.distance_from(oldest) > next_oseqno.distance_from(oldest) {
            return r;
        }
        while let Some(p) = self.frames.front() {
            if !p.oseqno.in_window(oldest, iseqno) {
                break;
            }
            r.frames += 1;
            r.last |= p.last;
            self.frames.pop_front();
        }
        r
    }

    /// The earliest retransmission deadline.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.frames.iter().map(|p| p.due).min()
    }

    /// Retransmits every frame due at `now` through `send` (with the R bit
    /// and a fresh ISeqno, PROTOCOL.md 6.3). Stops at the first frame that
    /// has had all its transmissions.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        iseqno: SeqNo,
        mut send: impl FnMut(&[u8]),
    ) -> Expiry {
        for p in &mut self.frames {
            if p.due > now {
                continue;
            }
            if p.transmissions >= MAX_TRANSMISSIONS {
                return Expiry::GaveUp { last: p.last };
            }
            refresh(&mut p.bytes, iseqno);
            send(&p.bytes);
            p.transmissions += 1;
            p.timeout = (p.timeout * 10).min(MAX_TIMEOUT);
            p.due = now + p.timeout;
        }
        Expiry::None
    }

    /// Sends again at once every frame from `iseqno` on (an incoming VNAK).
    /// Returns how many were sent.
    pub(crate) fn resend_from(
        &mut self,
        from: SeqNo,
        next_oseqno: SeqNo,
        iseqno: SeqNo,
        mut send: impl FnMut(&[u8]),
    ) -> usize {
        let mut n = 0;
        for p in &mut self.frames {
            if p.oseqno.in_window(from, next_oseqno) {
                refresh(&mut p.bytes, iseqno);
                send(&p.bytes);
                n += 1;
            }
        }
        n
    }
}

/// Marks a queued frame as a retransmission carrying our current ISeqno.
fn refresh(bytes: &mut [u8], iseqno: SeqNo) {
    if let Ok(mut f) = FullFrame::new_checked(bytes) {
        f.set_retransmission(true);
        f.set_iseqno(iseqno);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunk_core::wire::{CallNumber, FullFrameRepr, IaxSubclass, IeList};

    fn frame(o: u8) -> Vec<u8> {
        FullFrameRepr::iax(
            CallNumber::new(5).unwrap(),
            CallNumber::new(6).unwrap(),
            0,
            SeqNo(o),
            SeqNo(0),
            IaxSubclass::Ping,
            IeList::new(),
        )
        .to_vec()
    }

    #[test]
    fn asterisk_schedule_0_2_12_22_then_give_up_at_32() {
        let mut q = RetransmitQueue::default();
        let t0 = Instant::ZERO;
        q.push(
            SeqNo(0),
            frame(0),
            t0,
            initial_timeout(Duration::from_secs(1)),
            false,
        );
        let mut sends = Vec::new();
        let now = loop {
            let now = q.next_due().unwrap();
            let mut sent = false;
            match q.on_timeout(now, SeqNo(3), |b| {
                sent = true;
                let f = FullFrame::new_checked(b).unwrap();
                assert!(f.is_retransmission());
                assert_eq!(f.iseqno(), SeqNo(3));
            }) {
                Expiry::None => {}
                Expiry::GaveUp { last } => {
                    assert!(!last);
                    break now;
                }
            }
            if sent {
                sends.push(now.as_millis());
            }
        };
        assert_eq!(sends, vec![2000, 12_000, 22_000]);
        assert_eq!(now.as_millis(), 32_000);
    }

    #[test]
    fn release_by_iseqno_across_wrap_and_bogus_ignored() {
        let mut q = RetransmitQueue::default();
        for o in [254u8, 255, 0, 1] {
            q.push(
                SeqNo(o),
                frame(o),
                Instant::ZERO,
                Duration::from_secs(2),
                o == 1,
            );
        }
        // An ISeqno beyond what we sent is ignored.
        assert_eq!(q.release(SeqNo(5), SeqNo(2)).frames, 0);
        assert_eq!(q.release(SeqNo(0), SeqNo(2)).frames, 2);
        let mut n = 0;
        assert_eq!(q.resend_from(SeqNo(1), SeqNo(2), SeqNo(9), |_| n += 1), 1);
        assert_eq!(n, 1);
        let r = q.release(SeqNo(2), SeqNo(2));
        assert_eq!(
            r,
            Released {
                frames: 2,
                last: true
            }
        );
        assert!(q.next_due().is_none());
    }
}
