//! The shared call table: one preallocated slot per call number, so a
//! full frame finds its call by its destination number with no search.
//!
//! Each slot has its own read-write lock: signalling takes it for writing,
//! media for reading (rtpengine's rule). There is no table-wide lock on
//! the media path; the number pool's mutex is taken only to create and
//! free calls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use super::call::Call;
use super::callno::{CallNumberPool, LAST};
use super::media_stats::LegMedia;
use crate::time::Instant;

/// One call number's slot.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) call: RwLock<Option<Call>>,
    /// Milliseconds (on the relay's clock) of the last datagram of the
    /// call, stored by whichever worker saw it.
    pub(crate) last_rx_ms: AtomicU64,
    /// Each leg's voice as received (leg 0: the caller's side).
    pub(crate) media: [LegMedia; 2],
}

impl Slot {
    #[inline]
    pub(crate) fn touch(&self, now: Instant) {
        let ms = now.as_millis();
        // Skip the store when unchanged: keeps the cache line shared when
        // both directions of a call hit it in the same millisecond.
        if self.last_rx_ms.load(Ordering::Relaxed) != ms {
            self.last_rx_ms.store(ms, Ordering::Relaxed);
        }
    }
}

/// All call slots and the number pool.
#[derive(Debug)]
pub(crate) struct CallTable {
    slots: Box<[Slot]>,
    /// One bit per slot, mirroring `call.is_some()` (set and cleared under
    /// the slot's write lock), so the timer scan reads 4 KiB instead of
    /// touching 32 768 slots.
    occupied: Box<[AtomicU64]>,
    pub(crate) pool: Mutex<CallNumberPool>,
    live: AtomicUsize,
}

impl CallTable {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            slots: (0..=usize::from(LAST)).map(|_| Slot::default()).collect(),
            occupied: (0..=usize::from(LAST) / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            pool: Mutex::new(CallNumberPool::new(seed)),
            live: AtomicUsize::new(0),
        }
    }

    #[inline]
    pub(crate) fn slot(&self, ours: u16) -> Option<&Slot> {
        self.slots.get(usize::from(ours))
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = (u16, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (u16::try_from(i).unwrap_or(0), s))
    }

    /// Marks slot `ours` as holding a call or not.
    pub(crate) fn set_occupied(&self, ours: u16, occupied: bool) {
        if let Some(word) = self.occupied.get(usize::from(ours) / 64) {
            let bit = 1u64 << (ours % 64);
            if occupied {
                word.fetch_or(bit, Ordering::Relaxed);
            } else {
                word.fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn is_occupied(&self, ours: u16) -> bool {
        self.occupied
            .get(usize::from(ours) / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (ours % 64)) != 0)
    }

    /// The numbers whose slots hold a call (as flagged).
    pub(crate) fn occupied_numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.occupied.iter().enumerate().flat_map(|(i, w)| {
            let mut bits = w.load(Ordering::Relaxed);
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    u16::try_from(i * 64).unwrap_or(0) + u16::try_from(b).unwrap_or(0)
                })
            })
        })
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn inc_live(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec_live(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}
