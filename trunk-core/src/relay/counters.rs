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
    /// A NEW refused because the gateway is draining (after SIGTERM).
    Draining = "draining",
    /// A NEW (or POKE, REGREQ) refused because its source address holds
    /// `admission.maxcallnumbers` table entries already, or the bounded
    /// per-source table had no room for a new address.
    SourceLimit = "source_limit",
    /// A NEW (or POKE, REGREQ) over its source address's rate
    /// (`admission.new_rate`, `new_burst`): dropped unanswered.
    NewRate = "new_rate",
    /// A NEW refused because `admission.max_unanswered` exchanges wait
    /// for the far side's first reply.
    UnansweredLimit = "unanswered_limit",
    /// A NEW refused because the table holds `admission.max_calls`
    /// entries, or no call number is free.
    Capacity = "capacity",
    /// A DTMF, text or control frame over its call leg's rate
    /// (`admission.control_rate`, `control_burst`).
    ControlFlood = "control_flood",
    /// The second copy of a NEW that the far gateway sent twice on the
    /// link (a NEW sent again on a call crosses the link twice): the PBX
    /// gets one. Expected, one per call that a PBX makes with a call token.
    LinkCopy = "link_copy",
}

impl DropReason {
    /// How many reasons there are.
    pub const COUNT: usize = Self::ALL.len();
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug)]
        pub struct Counters {
            $($(#[$doc])* pub $name: Counter,)*
            drops: [Counter; DropReason::COUNT],
            /// By peer index (see [`Counters::peer`]).
            peers: Box<[PeerCounters]>,
            /// NEW to ANSWER of the calls this worker saw answered, seconds.
            pub call_setup: Histogram,
        }

        impl Counters {
            /// Counters with room for `peers` peers.
            pub fn with_peers(peers: usize) -> Self {
                Self {
                    $($name: Counter::default(),)*
                    drops: Default::default(),
                    peers: (0..peers).map(|_| PeerCounters::default()).collect(),
                    call_setup: Histogram::new(SETUP_BUCKETS),
                }
            }
        }

        impl Default for Counters {
            /// No per-peer counters.
            fn default() -> Self {
                Self::with_peers(0)
            }
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
    /// Full and mini frames that reached a worker other than their
    /// call's owner and were handed to it (see `RelayWorker::take_handoff`).
    rx_handed_over,
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
    /// Link REGREQs naming no peer that registers here (dropped unanswered).
    registrations_unknown_peer,
    /// Meta trunk frames from an address that is no peer (dropped).
    stranger_trunk_frames,
    /// Calls whose voice flowed one way only for 5 s (one-way audio).
    calls_one_way,
}

impl Counters {
    /// The counters of peer `index` (`None` past those it has room for).
    #[inline]
    pub fn peer(&self, index: usize) -> Option<&PeerCounters> {
        self.peers.get(index)
    }

    /// How many peers it has counters for.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

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

/// Labelled enums for the per-peer counters.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// Every value, in counter order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The metric label.
            pub fn label(self) -> &'static str {
                match self { $(Self::$variant => $label,)* }
            }
        }
    };
}

label_enum! {
    /// Which way a datagram went.
    Direction {
        /// Received from the peer.
        Rx = "rx",
        /// Sent to the peer.
        Tx = "tx",
    }
}

label_enum! {
    /// What kind of datagram.
    Kind {
        /// Full frame.
        Full = "full",
        /// Mini (voice) frame.
        Mini = "mini",
        /// Meta trunk frame.
        Trunk = "trunk",
        /// Video mini frame.
        Video = "video",
    }
}

label_enum! {
    /// Which side of a call a peer was on.
    CallDirection {
        /// The NEW came from the peer.
        In = "in",
        /// The call was routed to the peer.
        Out = "out",
    }
}

label_enum! {
    /// How a call ended.
    CallResult {
        /// It was answered (ANSWER relayed), then hung up.
        Answered = "answered",
        /// A PBX rejected it.
        Rejected = "rejected",
        /// Hung up before an answer.
        Unanswered = "unanswered",
        /// This gateway refused it (no route, a limit, draining).
        Refused = "refused",
        /// Reaped by a timer: never answered, or silent too long.
        Timeout = "timeout",
    }
}

/// Upper bounds of the call setup time buckets, seconds.
pub const SETUP_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds of the entries-per-trunk-frame buckets.
pub const TRUNK_ENTRY_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 7.0, 10.0, 20.0, 50.0, 100.0];
/// Upper bounds of the jitter buckets, seconds.
pub const JITTER_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16];

/// A histogram with fixed buckets and one writer.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for above the last bound.
    counts: Box<[Counter]>,
    /// Sum of the observations, in millionths.
    sum_micro: Counter,
}

/// A reading of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds.
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative); one more than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with these bucket bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| Counter::default()).collect(),
            sum_micro: Counter::default(),
        }
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.incr();
        }
        // Saturating float-to-int: a negative value adds nothing.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.sum_micro.add((value * 1e6) as u64);
    }

    /// Reads it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(Counter::get).collect(),
            #[allow(clippy::cast_precision_loss)]
            sum: self.sum_micro.get() as f64 / 1e6,
        }
    }
}

impl HistogramSnapshot {
    /// Observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another worker's reading (same bounds).
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }

    /// Cumulative (upper bound, count) pairs, the last at +Inf.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c;
                (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total)
            })
            .collect()
    }
}

/// One worker's counters for one peer.
#[derive(Debug)]
pub struct PeerCounters {
    packets: [[Counter; 4]; 2],
    bytes: [[Counter; 4]; 2],
    trunk_entries: [Counter; 2],
    calls: [[Counter; 5]; 2],
    /// Voice frames (minis and trunk entries) of calls received from it.
    pub voice_frames: Counter,
    /// Voice frames missing in calls' timestamps as received from it.
    pub voice_gaps: Counter,
    /// Voice frames of calls received from it that were older than one
    /// already relayed for their call: reordered on the way here, or
    /// between this gateway's workers.
    pub voice_reordered: Counter,
    /// Entries per trunk frame sent to it.
    pub trunk_frame_entries: Histogram,
    /// Each ended call's jitter as received from it, seconds.
    pub jitter: Histogram,
    /// Relay-clock milliseconds + 1 of its last datagram (0: none).
    last_rx_ms: Counter,
    /// Round trip of the last answered POKE/PING/LAGRQ, microseconds, and
    /// when it was measured (relay-clock ms + 1; 0: never).
    rtt_us: Counter,
    rtt_at_ms: Counter,
}

/// A reading of [`PeerCounters`], summed over workers.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSnapshot {
    /// Datagrams by [`Direction`] and [`Kind`].
    pub packets: [[u64; 4]; 2],
    /// Their bytes.
    pub bytes: [[u64; 4]; 2],
    /// Trunk entries by [`Direction`].
    pub trunk_entries: [u64; 2],
    /// Ended calls by [`CallDirection`] and [`CallResult`].
    pub calls: [[u64; 5]; 2],
    /// See [`PeerCounters::voice_frames`].
    pub voice_frames: u64,
    /// See [`PeerCounters::voice_gaps`].
    pub voice_gaps: u64,
    /// See [`PeerCounters::voice_reordered`].
    pub voice_reordered: u64,
    /// See [`PeerCounters::trunk_frame_entries`].
    pub trunk_frame_entries: HistogramSnapshot,
    /// See [`PeerCounters::jitter`].
    pub jitter: HistogramSnapshot,
    /// Relay-clock ms + 1 of the last datagram (0: none); the latest of
    /// the workers'.
    pub last_rx_ms: u64,
    /// The latest round trip, microseconds, and when (ms + 1; 0: none).
    pub rtt_us: u64,
    /// See `rtt_us`.
    pub rtt_at_ms: u64,
}

impl Default for PeerCounters {
    fn default() -> Self {
        Self {
            packets: Default::default(),
            bytes: Default::default(),
            trunk_entries: Default::default(),
            calls: Default::default(),
            voice_frames: Counter::default(),
            voice_gaps: Counter::default(),
            voice_reordered: Counter::default(),
            trunk_frame_entries: Histogram::new(TRUNK_ENTRY_BUCKETS),
            jitter: Histogram::new(JITTER_BUCKETS),
            last_rx_ms: Counter::default(),
            rtt_us: Counter::default(),
            rtt_at_ms: Counter::default(),
        }
    }
}

impl PeerCounters {
    /// Counts one datagram.
    #[inline]
    pub fn packet(&self, dir: Direction, kind: Kind, bytes: usize) {
        let (d, k) = (dir as usize, kind as usize);
        self.packets[d][k].incr();
        self.bytes[d][k].add(u64::try_from(bytes).unwrap_or(0));
    }

    /// Counts trunk entries.
    #[inline]
    pub fn trunk_entries(&self, dir: Direction, n: u64) {
        self.trunk_entries[dir as usize].add(n);
    }

    /// Counts an ended call.
    pub fn call(&self, dir: CallDirection, result: CallResult) {
        self.calls[dir as usize][result as usize].incr();
    }

    /// Notes that a datagram came at relay-clock `ms`. Stored at most
    /// every 256 ms: a read per datagram, a write a few times a second.
    #[inline]
    pub fn heard(&self, ms: u64) {
        if (self.last_rx_ms.get() ^ (ms + 1)) >> 8 != 0 {
            self.last_rx_ms.set(ms + 1);
        }
    }

    /// Notes a round trip measured at relay-clock `ms`.
    pub fn rtt(&self, rtt_us: u64, ms: u64) {
        self.rtt_us.set(rtt_us);
        self.rtt_at_ms.set(ms + 1);
    }

    /// Reads it.
    pub fn snapshot(&self) -> PeerSnapshot {
        let grid4 = |g: &[[Counter; 4]; 2]| g.each_ref().map(|r| r.each_ref().map(Counter::get));
        PeerSnapshot {
            packets: grid4(&self.packets),
            bytes: grid4(&self.bytes),
            trunk_entries: self.trunk_entries.each_ref().map(Counter::get),
            calls: self
                .calls
                .each_ref()
                .map(|r| r.each_ref().map(Counter::get)),
            voice_frames: self.voice_frames.get(),
            voice_gaps: self.voice_gaps.get(),
            voice_reordered: self.voice_reordered.get(),
            trunk_frame_entries: self.trunk_frame_entries.snapshot(),
            jitter: self.jitter.snapshot(),
            last_rx_ms: self.last_rx_ms.get(),
            rtt_us: self.rtt_us.get(),
            rtt_at_ms: self.rtt_at_ms.get(),
        }
    }
}

impl PeerSnapshot {
    /// Adds another worker's reading: sums, and the latest of the times.
    pub fn merge(&mut self, o: &Self) {
        for d in 0..2 {
            for k in 0..4 {
                self.packets[d][k] += o.packets[d][k];
                self.bytes[d][k] += o.bytes[d][k];
            }
            self.trunk_entries[d] += o.trunk_entries[d];
            for r in 0..5 {
                self.calls[d][r] += o.calls[d][r];
            }
        }
        self.voice_frames += o.voice_frames;
        self.voice_gaps += o.voice_gaps;
        self.voice_reordered += o.voice_reordered;
        self.trunk_frame_entries.merge(&o.trunk_frame_entries);
        self.jitter.merge(&o.jitter);
        self.last_rx_ms = self.last_rx_ms.max(o.last_rx_ms);
        if o.rtt_at_ms > self.rtt_at_ms {
            self.rtt_us = o.rtt_us;
            self.rtt_at_ms = o.rtt_at_ms;
        }
    }

    /// Datagrams one way of one kind.
    pub fn packets(&self, dir: Direction, kind: Kind) -> u64 {
        self.packets[dir as usize][kind as usize]
    }

    /// Their bytes.
    pub fn bytes(&self, dir: Direction, kind: Kind) -> u64 {
        self.bytes[dir as usize][kind as usize]
    }

    /// Trunk entries one way.
    pub fn trunk_entries(&self, dir: Direction) -> u64 {
        self.trunk_entries[dir as usize]
    }

    /// Ended calls.
    pub fn calls(&self, dir: CallDirection, result: CallResult) -> u64 {
        self.calls[dir as usize][result as usize]
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

    /// Sets the value (for readings such as a last time).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}
