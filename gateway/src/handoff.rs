//! Handing trunk frames between workers.
//!
//! A meta trunk frame reaches the worker its first entry steers it to
//! (`steering`), but an Asterisk peer mixes calls in one frame. Each
//! worker relays only its own calls' entries (`RelayWorker::take_handoff`)
//! and hands the datagram to the workers owning the others, so that all
//! of a call's media goes through one worker and one trunk buffer and
//! stays in order. Frames from our own gateway peers are grouped by
//! call number and need no handoff.
//!
//! Each worker has a bounded inbox. Buffers are the sender's, boxed once
//! and recycled through a return channel, so a handoff allocates nothing
//! after warm-up and memory stays bounded: when a sender has no buffer
//! left or an inbox is full, the datagram's remaining entries are dropped
//! and counted (`queue_full`). A worker is woken once per receive batch
//! that handed it something, not per datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use mio::Waker;
use trunk_core::relay::{Counters, DropReason, WorkerSet};
use trunk_core::time::Instant;
use trunk_core::transmit::MAX_DATAGRAM;

/// Datagrams a worker's inbox holds.
const INBOX: usize = 1024;
/// Buffers each worker may have in flight towards the others.
const BUFFERS: usize = 1024;

/// A trunk frame handed to another worker.
#[derive(Debug)]
pub(crate) struct Handed {
    /// The worker whose buffer this is (it gets it back).
    origin: usize,
    /// When the datagram arrived.
    at: Instant,
    from: SocketAddr,
    len: usize,
    buf: Box<[u8]>,
}

/// What every worker can reach of the others.
#[derive(Debug)]
struct Links {
    inboxes: Vec<Sender<Handed>>,
    returns: Vec<Sender<Box<[u8]>>>,
    wakers: Vec<Arc<Waker>>,
}

/// One worker's end of the handoff.
#[derive(Debug)]
pub(crate) struct Handoff {
    index: usize,
    links: Arc<Links>,
    inbox: Receiver<Handed>,
    returned: Receiver<Box<[u8]>>,
    pool: Vec<Box<[u8]>>,
    allocated: usize,
    /// Workers handed something since the last wake.
    to_wake: WorkerSet,
}

/// Builds the handoff ends of `wakers.len()` workers, in worker order.
pub(crate) fn link(wakers: Vec<Arc<Waker>>) -> Vec<Handoff> {
    let n = wakers.len();
    let (inboxes, inbox_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| bounded(INBOX)).unzip();
    let (returns, returns_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| bounded(BUFFERS)).unzip();
    let links = Arc::new(Links {
        inboxes,
        returns,
        wakers,
    });
    inbox_rx
        .into_iter()
        .zip(returns_rx)
        .enumerate()
        .map(|(index, (inbox, returned))| Handoff {
            index,
            links: Arc::clone(&links),
            inbox,
            returned,
            pool: Vec::new(),
            allocated: 0,
            to_wake: WorkerSet::EMPTY,
        })
        .collect()
}

impl Handoff {
    /// A free buffer of this worker's, if any is left.
    fn buffer(&mut self) -> Option<Box<[u8]>> {
        if let Some(b) = self.pool.pop() {
            return Some(b);
        }
        if let Ok(b) = self.returned.try_recv() {
            return Some(b);
        }
        (self.allocated < BUFFERS).then(|| {
            self.allocated += 1;
            vec![0; MAX_DATAGRAM].into_boxed_slice()
        })
    }

    /// Hands `datagram`, received at `at` from `from`, to every worker in
    /// `to`; drops (counted) where no buffer or inbox space is left.
    pub(crate) fn hand(
        &mut self,
        to: WorkerSet,
        at: Instant,
        from: SocketAddr,
        datagram: &[u8],
        counters: &Counters,
    ) {
        for target in to.iter() {
            if target >= self.links.inboxes.len() {
                continue;
            }
            let Some(mut buf) = self.buffer() else {
                counters.count_drop(DropReason::QueueFull);
                continue;
            };
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            let handed = Handed {
                origin: self.index,
                at,
                from,
                len,
                buf,
            };
            match self.links.inboxes[target].try_send(handed) {
                Ok(()) => self.to_wake.insert(target),
                Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                    counters.count_drop(DropReason::QueueFull);
                    self.pool.push(h.buf);
                }
            }
        }
    }

    /// Wakes the workers handed something since the last call.
    pub(crate) fn wake(&mut self) {
        for target in self.to_wake.iter() {
            if let Some(w) = self.links.wakers.get(target) {
                // A failed wake only delays the frames to that worker's
                // next turn (its own traffic or timers).
                let _ = w.wake();
            }
        }
        self.to_wake = WorkerSet::EMPTY;
    }

    /// Passes up to `budget` datagrams handed to this worker to `relay`
    /// (arrival time, source, bytes) and returns their buffers. Returns
    /// whether the inbox may hold more.
    pub(crate) fn drain(
        &mut self,
        budget: usize,
        mut relay: impl FnMut(Instant, SocketAddr, &mut [u8]),
    ) -> bool {
        for _ in 0..budget {
            let Ok(mut h) = self.inbox.try_recv() else {
                return false;
            };
            let len = h.len.min(h.buf.len());
            relay(h.at, h.from, &mut h.buf[..len]);
            if let Some(back) = self.links.returns.get(h.origin) {
                // The origin's return channel holds all its buffers, so
                // this only fails once the origin has stopped.
                let _ = back.try_send(h.buf);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Poll, Token};

    fn two() -> (Vec<Handoff>, Vec<Poll>) {
        let polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let wakers = polls
            .iter()
            .map(|p| Arc::new(Waker::new(p.registry(), Token(1)).unwrap()))
            .collect();
        (link(wakers), polls)
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:4569".parse().unwrap()
    }

    #[test]
    fn handed_datagrams_arrive_in_order_and_buffers_come_back() {
        let (mut ends, _polls) = two();
        let counters = Counters::default();
        let mut to = WorkerSet::EMPTY;
        to.insert(1);
        for k in 0..10u8 {
            ends[0].hand(
                to,
                Instant::from_millis(u64::from(k)),
                addr(),
                &[k; 30],
                &counters,
            );
        }
        ends[0].wake();
        let mut got = Vec::new();
        let more = ends[1].drain(100, |at, from, bytes| {
            got.push((at, from, bytes.to_vec()));
        });
        assert!(!more);
        assert_eq!(got.len(), 10);
        for (k, (at, from, bytes)) in got.iter().enumerate() {
            let k = u8::try_from(k).unwrap();
            assert_eq!((*at, *from), (Instant::from_millis(u64::from(k)), addr()));
            assert_eq!(bytes, &vec![k; 30]);
        }
        // Worker 0 reuses the returned buffers instead of allocating more.
        assert_eq!(ends[0].allocated, 10);
        ends[0].hand(to, Instant::from_millis(99), addr(), &[1], &counters);
        assert_eq!(ends[0].allocated, 10);
        assert_eq!(counters.snapshot().drops(DropReason::QueueFull), 0);
    }

    #[test]
    fn a_full_inbox_drops_and_counts_and_memory_stays_bounded() {
        let (mut ends, _polls) = two();
        let counters = Counters::default();
        let mut to = WorkerSet::EMPTY;
        to.insert(1);
        let extra = 500;
        for _ in 0..INBOX + extra {
            ends[0].hand(to, Instant::from_millis(1), addr(), &[7; 100], &counters);
        }
        assert_eq!(
            counters.snapshot().drops(DropReason::QueueFull),
            u64::try_from(extra).unwrap()
        );
        assert!(ends[0].allocated <= BUFFERS);
        let mut n = 0;
        while ends[1].drain(64, |_, _, _| n += 1) {}
        assert_eq!(n, INBOX);
    }
}
