//! One direction of an impaired path: the [`Model`]'s decisions applied to
//! real bytes. Datagrams wait for their release time in a bounded queue
//! whose buffers are recycled (no allocation per datagram once the pool
//! has grown to the traffic); a full queue is a counted drop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;
use trunk_core::time::Instant;

use super::model::{DropCause, Fate, Model, Settings};

/// What one direction did, in datagrams. `received + duplicated ==
/// forwarded + dropped() + queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Offered to the link.
    pub received: u64,
    /// Released at the far end (copies included).
    pub forwarded: u64,
    /// Dropped by independent loss.
    pub dropped_loss: u64,
    /// Dropped in a loss burst.
    pub dropped_burst: u64,
    /// Dropped by the rate limit's full queue.
    pub dropped_rate: u64,
    /// Dropped because the delay queue was full (originals or copies).
    pub dropped_queue: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back to be reordered (jitter larger than the
    /// spacing of datagrams reorders others too; those are not counted).
    pub reordered: u64,
}

impl Counters {
    /// Every drop, whatever the cause.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_burst + self.dropped_rate + self.dropped_queue
    }

    /// Adds `o` to these (the links of several proxies, or directions).
    pub fn add(&mut self, o: &Self) {
        self.received += o.received;
        self.forwarded += o.forwarded;
        self.dropped_loss += o.dropped_loss;
        self.dropped_burst += o.dropped_burst;
        self.dropped_rate += o.dropped_rate;
        self.dropped_queue += o.dropped_queue;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
    }

    fn count_drop(&mut self, cause: DropCause) {
        match cause {
            DropCause::Loss => self.dropped_loss += 1,
            DropCause::Burst => self.dropped_burst += 1,
            DropCause::Rate => self.dropped_rate += 1,
            DropCause::Queue => self.dropped_queue += 1,
        }
    }
}

/// A datagram waiting for its release: its bytes and the caller's tag
/// (where it goes).
#[derive(Debug)]
struct Slot<T> {
    bytes: Vec<u8>,
    tag: T,
}

/// One impaired direction, datagrams tagged with `T` (e.g. which
/// socket sends them on).
#[derive(Debug)]
pub struct Link<T> {
    model: Model,
    /// Release time, arrival order (ties keep the order of arrival), slot.
    due: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    order: u64,
    limit: usize,
    counters: Counters,
}

impl<T: Copy + Default> Link<T> {
    /// A link with `settings`, decisions from `seed`, and room for `limit`
    /// datagrams in flight (at least 1).
    pub fn new(settings: &Settings, seed: u64, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            model: Model::new(settings, seed),
            due: BinaryHeap::with_capacity(limit),
            slots: Vec::new(),
            free: Vec::new(),
            order: 0,
            limit,
            counters: Counters::default(),
        }
    }

    /// Offers `datagram`, to be released with `tag`, at `now`; its fate.
    pub fn offer(&mut self, now: Instant, tag: T, datagram: &[u8]) -> Fate {
        self.counters.received += 1;
        let fate = self.model.decide(now, datagram.len());
        match fate {
            Fate::Drop(cause) => {
                self.counters.count_drop(cause);
                return fate;
            }
            Fate::Deliver {
                at,
                copy,
                held_back,
            } => {
                if !self.enqueue(at, tag, datagram) {
                    self.counters.count_drop(DropCause::Queue);
                    return Fate::Drop(DropCause::Queue);
                }
                if held_back {
                    self.counters.reordered += 1;
                }
                if let Some(c) = copy {
                    self.counters.duplicated += 1;
                    if !self.enqueue(c, tag, datagram) {
                        self.counters.count_drop(DropCause::Queue);
                    }
                }
            }
        }
        fate
    }

    fn enqueue(&mut self, at: Instant, tag: T, datagram: &[u8]) -> bool {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.limit => {
                self.slots.push(Slot {
                    bytes: Vec::new(),
                    tag: T::default(),
                });
                self.slots.len() - 1
            }
            None => return false,
        };
        let slot = &mut self.slots[idx];
        slot.bytes.clear();
        slot.bytes.extend_from_slice(datagram);
        slot.tag = tag;
        self.due.push(Reverse((at, self.order, idx)));
        self.order += 1;
        true
    }

    /// When the next datagram is due, if any waits.
    pub fn next_release(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Hands every datagram due by `now` to `send`, earliest first;
    /// how many.
    pub fn release_due(&mut self, now: Instant, mut send: impl FnMut(T, &[u8])) -> usize {
        let mut n = 0;
        while let Some(&Reverse((at, _, idx))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let slot = &self.slots[idx];
            send(slot.tag, &slot.bytes);
            self.free.push(idx);
            self.counters.forwarded += 1;
            n += 1;
        }
        n
    }

    /// Datagrams waiting.
    pub fn queued(&self) -> usize {
        self.due.len()
    }

    /// What the link did so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The model, for its settings and state.
    pub fn model(&self) -> &Model {
        &self.model
    }
}
