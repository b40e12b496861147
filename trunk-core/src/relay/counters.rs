//! Per-worker counters, written by one worker and read by anyone.
//!
//! Each worker owns one [`Counters`]; only that worker increments it (a
//! relaxed load and store, no locked instruction), and the metrics
//! endpoint sums all workers' values when scraped.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident = $label:literal,)*) => {
        /// Why the relay dropped a datagram (or a trunk entry).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason { $($(#[$doc])* $name,)* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// A short snake_case label for logs and metrics.
            pub fn label(self) -> &'static str {
                match self { $(Self::$name => $label,)* }
            }

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// Not a valid IAX2 datagram.
    Malformed = "malformed",
    /// From an address that is no configured peer.
    Stranger = "stranger",
    /// From a peer's address that its permit/deny rules refuse.
    Acl = "acl",
    /// A frame for a call the relay does not know.
    UnknownCall = "unknown_call",
    /// Media for a call whose far side has not answered yet.
    CallNotStarted = "call_not_started",
    /// A meta trunk frame from a peer not configured `trunk: true`.
    TrunkNotAllowed = "trunk_not_allowed",
    /// A NEW that matched no route, or whose egress peer has no address.
    NoRoute = "no_route",
    /// A NEW refused because a call limit was reached.
    CallLimit = "call_limit",
    /// A frame kind the relay never forwards (native transfer).
    Refused = "refused",
    /// An ACK addressed to call number 1 (a stateless reply's).
    StatelessAck = "stateless_ack",
    /// A trunk entry too large for the egress trunk.
    TooBig = "too_big",
    /// The send queue was full.
    QueueFull = "queue_full",
}

impl DropReason {
    /// How many reasons there are.
    pub const COUNT: usize = Self::ALL.len();
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: Counter,)*
            drops: [Counter; DropReason::COUNT],
        }

        /// A plain copy of [`Counters`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct CounterSnapshot {
            $($(#[$doc])* pub $name: u64,)*
            /// Drops by [`DropReason`] (indexed like `DropReason::ALL`).
            pub drops: [u64; DropReason::COUNT],
        }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> CounterSnapshot {
                let mut drops = [0; DropReason::COUNT];
                for (d, c) in drops.iter_mut().zip(&self.drops) {
                    *d = c.get();
                }
                CounterSnapshot { $($name: self.$name.get(),)* drops }
            }
        }

        impl CounterSnapshot {
            /// Adds another worker's values.
            pub fn merge(&mut self, other: &Self) {
                $(self.$name += other.$name;)*
                for (d, o) in self.drops.iter_mut().zip(&other.drops) {
                    *d += o;
                }
            }
        }
    };
}

counters! {
    /// Datagrams received.
    rx_datagrams,
    /// Full frames received.
    rx_full,
    /// Mini (voice) frames received.
    rx_mini,
    /// Video mini frames received.
    rx_video,
    /// Meta trunk frames received.
    rx_trunk_frames,
    /// Trunk entries received.
    rx_trunk_entries,
    /// Datagrams sent.
    tx_datagrams,
    /// Full frames sent.
    tx_full,
    /// Mini frames sent.
    tx_mini,
    /// Video mini frames sent.
    tx_video,
    /// Meta trunk frames sent.
    tx_trunk_frames,
    /// Trunk entries sent.
    tx_trunk_entries,
    /// Calls created by a NEW.
    calls_created,
    /// Calls ended by HANGUP, REJECT or INVAL.
    calls_ended,
    /// Calls reaped by a timer (idle or setup).
    calls_reaped,
    /// TXREQs answered with TXREJ.
    transfers_refused,
    /// Replies the relay built itself (stateless REJECT, PONG, INVAL, TXREJ).
    replies_sent,
}

impl Counters {
    /// Counts a drop.
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason.index()].incr();
    }
}

impl CounterSnapshot {
    /// Drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning worker calls this, so a relaxed load and
    /// store is enough and cheaper than `fetch_add`.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
