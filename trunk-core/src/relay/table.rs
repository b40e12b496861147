//! The shared call table: one preallocated slot per call number, so a
//! full frame finds its call by its destination number with no search.
//!
//! Each slot has its own read-write lock: signalling takes it for writing,
//! media for reading (rtpengine's rule). There is no table-wide lock on
//! the media path; the number pool's mutex is taken only to create and
//! free calls.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use super::call::Call;
use super::callno::{CallNumberPool, LAST};
use crate::time::Instant;

/// One call number's slot.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) call: RwLock<Option<Call>>,
    /// Mirrors `call.is_some()` so the timer scan skips empty slots
    /// without touching their locks.
    pub(crate) occupied: AtomicBool,
    /// Milliseconds (on the relay's clock) of the last datagram of the
    /// call, stored by whichever worker saw it.
    pub(crate) last_rx_ms: AtomicU64,
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
    pub(crate) pool: Mutex<CallNumberPool>,
    live: AtomicUsize,
}

impl CallTable {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            slots: (0..=usize::from(LAST)).map(|_| Slot::default()).collect(),
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
