//! The relay: call-number translation, routing and trunking (DESIGN.md,
//! "The relay model").
//!
//! # Driving contract
//!
//! A [`Relay`] holds what all workers share: the peers of the config and
//! the call table. Each worker thread owns one [`RelayWorker`] over an
//! `Arc<Relay>` and drives it with:
//!
//! 1. [`RelayWorker::handle_datagram`] for every datagram its socket
//!    receives. The datagram is rewritten in place and whatever must leave
//!    is written to the [`Transmit`] at once.
//! 2. [`RelayWorker::handle_timeout`] when the instant given by
//!    [`RelayWorker::poll_timeout`] has come (trunk ticks, and on worker 0
//!    the call timers).
//! 3. After either call, the caller re-reads `poll_timeout`: any input may
//!    move the next deadline.
//!
//! Time comes in as `now`; randomness as the seed given to [`Relay::new`].
//! The same inputs in the same order give the same outputs.
//!
//! # What the relay does with each datagram
//!
//! - Full frames go hop by hop with only the call numbers rewritten; the
//!   relay reads just enough signalling to keep its table right
//!   (`signalling.rs`). A TXREQ goes on as a PING and the PONG answering
//!   it comes back as the TXREJ, so native transfer is refused without
//!   the relay ever adding or removing a sequenced frame.
//! - Mini frames and trunk entries are looked up by (peer, the peer's call
//!   number) and leave as trunk entries towards a `trunk: true` peer, or
//!   as mini frames otherwise, with their 16-bit timestamp and payload
//!   untouched (`media.rs`). The trunk emitter (`trunk_tx.rs`) batches
//!   entries per tick and sends a frame early when it is full.
//! - Anything from a stranger, for an unknown call, or malformed is dropped
//!   before anything is allocated, and counted by [`DropReason`].
//!
//! # Sharing between workers
//!
//! The call table is one slot per call number, each behind its own
//! read-write lock: signalling takes it for writing, media for reading. A
//! per-peer atomic index maps the peer's call numbers to ours. No lock
//! covers the whole table; the call-number pool's mutex is taken only to
//! create and free calls.

mod admission;
mod call;
mod callno;
mod counters;
mod generation;
mod link;
mod link_registration;
mod media;
mod media_stats;
mod one_way;
mod peers;
mod replies;
mod signalling;
mod status;
mod table;
mod trunk_tx;
mod workers;

pub use crate::peering::liveness::LinkState;
pub use crate::peering::registration::RegistrationState;
pub(crate) use callno::SplitMix64;
pub use counters::{
    CallDirection, CallResult, CounterSnapshot, Counters, Direction, DropReason, Histogram,
    HistogramSnapshot, Kind, PeerCounters, PeerSnapshot, JITTER_BUCKETS, SETUP_BUCKETS,
    TRUNK_ENTRY_BUCKETS,
};
pub use generation::ReloadReport;
pub use link_registration::{
    RegistrarView, RegistrationView, RejectCause, ADDRESS_CHANGE_WINDOW, CHALLENGE_LIFETIME,
};
pub use media_stats::LegMediaSnapshot;
pub use one_way::ONE_WAY_AFTER;
pub use peers::{PeerId, MAX_PEERS};
pub use status::{CallState, CallView, EntryKind, LegView, LinkView, PeerView};
pub use workers::WorkerSet;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iax2_config::Config;
use parking_lot::RwLock;

use self::call::Phase;
use self::generation::Generation;
use self::peers::{Identified, Peers};
use self::table::CallTable;
use self::trunk_tx::TrunkSender;
use crate::time::Instant;
use crate::transmit::Transmit;
use crate::wire::{classify, CallNumber, FrameKind};

/// How often worker 0 scans the table for expired calls.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(250);

/// What every worker shares: the configuration in force (peers, routes,
/// timers) and the call table.
#[derive(Debug)]
pub struct Relay {
    /// Swapped whole by a reload (see `generation`).
    current: RwLock<Arc<Generation>>,
    /// The number of the generation in `current`, which workers compare
    /// with their own before each datagram (a load, no lock).
    generation: AtomicU64,
    table: CallTable,
    epoch: Instant,
    /// Workers sharing the relay: entry `n` of a trunk frame belongs to
    /// worker `n % workers`, the one the gateway's steering gives that
    /// call's own frames.
    workers: usize,
    /// Set while the gateway drains: NEWs are refused (see
    /// [`Relay::set_draining`]).
    draining: std::sync::atomic::AtomicBool,
    /// The last address a meta trunk frame came from that is no peer.
    last_stranger_trunk: parking_lot::Mutex<Option<SocketAddr>>,
    /// Calls found one-way, not yet taken by [`Relay::take_one_way`].
    one_way: parking_lot::Mutex<std::collections::VecDeque<OneWayCall>>,
    /// Table entries and NEW rates per source address (bounded).
    sources: admission::Sources,
    /// Entries in the Setup phase (waiting for the far side's first
    /// reply), for `admission.max_unanswered`.
    setup_entries: std::sync::atomic::AtomicUsize,
}

/// A call found carrying voice one way only (see [`ONE_WAY_AFTER`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneWayCall {
    /// Our call number.
    pub call_number: u16,
    /// The peer whose side sent no voice.
    pub silent_peer: String,
    /// The peer whose side kept sending.
    pub flowing_peer: String,
}

/// The most one-way reports kept for the log: the counter has them all.
const ONE_WAY_KEPT: usize = 64;

fn gen_name(gen: &Generation, id: self::peers::PeerId) -> String {
    gen.peers.get(id).config.name.as_str().to_owned()
}

impl Relay {
    /// Builds the relay for `config`. `now` anchors the trunk clocks;
    /// `seed` drives call-number allocation.
    pub fn new(config: &Config, now: Instant, seed: u64) -> Self {
        Self {
            current: RwLock::new(Arc::new(Generation::new(
                0,
                config,
                Peers::new(config, seed),
            ))),
            generation: AtomicU64::new(0),
            table: CallTable::new(seed),
            epoch: now,
            workers: config.workers.get(),
            draining: std::sync::atomic::AtomicBool::new(false),
            last_stranger_trunk: parking_lot::Mutex::new(None),
            one_way: parking_lot::Mutex::new(std::collections::VecDeque::new()),
            sources: admission::Sources::new(seed),
            setup_entries: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Table entries waiting for the far side's first reply (Setup).
    pub fn unanswered_entries(&self) -> usize {
        self.setup_entries.load(Ordering::Relaxed)
    }

    /// Table entries counted for source address `ip` (see
    /// `admission.maxcallnumbers`).
    pub fn source_entries(&self, ip: std::net::IpAddr) -> u32 {
        self.sources.entries_of(ip)
    }

    /// Source addresses the bounded per-source table holds now: never
    /// more than 65 536, however many addresses send.
    pub fn tracked_sources(&self) -> usize {
        self.sources.tracked()
    }

    fn note_one_way(&self, call: OneWayCall) {
        let mut q = self.one_way.lock();
        if q.len() < ONE_WAY_KEPT {
            q.push_back(call);
        }
    }

    /// The calls found one-way since the last call, for the log (at most
    /// 64; `calls_one_way` counts them all).
    pub fn take_one_way(&self) -> Vec<OneWayCall> {
        self.one_way.lock().drain(..).collect()
    }

    /// The last address that sent a meta trunk frame without being a peer
    /// (counted in `stranger_trunk_frames`): often a far gateway or
    /// Asterisk whose traffic comes from another address than configured.
    pub fn last_stranger_trunk_source(&self) -> Option<SocketAddr> {
        *self.last_stranger_trunk.lock()
    }

    /// Starts (`true`) or ends a drain. While draining, a NEW is refused
    /// at once with a stateless REJECT, Q.850 cause 42 (switching
    /// equipment congestion, so it tells apart from a `maxcalls` refusal,
    /// 34), and counted as [`DropReason::Draining`]; it creates nothing.
    /// Calls already in the table go on; POKE and REGREQ still pass, so
    /// the PBXs keep qualifying and registering while calls finish.
    pub fn set_draining(&self, draining: bool) {
        self.draining
            .store(draining, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the relay is draining (see [`set_draining`](Self::set_draining)).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls (opened by a NEW: setting up, up or lingering) in the table,
    /// without the POKE and registration exchanges that
    /// [`active_calls`](Self::active_calls) counts too. A drain waits for
    /// these alone: PBXs qualifying and registering through the gateway
    /// would otherwise keep the table from emptying. Walks the table with
    /// each entry's read lock: for a drain's wait, not the packet path.
    pub fn call_entries(&self) -> usize {
        self.table
            .occupied_numbers()
            .filter(|&ours| {
                self.table.slot(ours).is_some_and(|slot| {
                    slot.call
                        .read()
                        .as_ref()
                        .is_some_and(|c| c.purpose == call::Purpose::Call)
                })
            })
            .count()
    }

    /// The worker that owns the media a peer sends with call number
    /// `call`: the one the gateway's steering program picks for that
    /// call's full and mini frames (source call number modulo workers).
    pub fn owner(&self, call: CallNumber) -> usize {
        usize::from(call.get()) % self.workers.max(1)
    }

    /// Calls in the table (set up, up or lingering).
    pub fn active_calls(&self) -> usize {
        self.table.live()
    }

    /// Call numbers neither free nor quarantined.
    pub fn call_numbers_in_use(&self) -> usize {
        self.table.pool.lock().in_use()
    }

    /// Checks every cross-reference of the table: each call's bound legs
    /// are in their peer's index, each index entry points at a live call
    /// with that leg, and the counts agree. Returns the first violation.
    /// For tests and debug builds; it walks the whole table, and reads
    /// consistently only while no worker creates or frees a call.
    pub fn check_invariants(&self) -> Result<(), String> {
        let gen = self.current();
        let mut occupied = 0;
        let mut setup = 0;
        let mut per_source = std::collections::BTreeMap::<[u64; 2], (u32, u16)>::new();
        let mut per_peer = vec![0u32; gen.peers.iter().count()];
        for (ours, slot) in self.table.slots() {
            let guard = slot.call.read();
            let flag = self.table.is_occupied(ours);
            match &*guard {
                None if flag => return Err(format!("slot {ours} flagged occupied but empty")),
                None => {}
                Some(call) => {
                    if !flag {
                        return Err(format!("slot {ours} holds a call but is not flagged"));
                    }
                    occupied += 1;
                    let waiting = call.phase == Phase::Setup;
                    setup += usize::from(waiting);
                    if let Some(ip) = call.admitted_from {
                        let e = per_source.entry(admission::key_of(ip)).or_default();
                        e.0 += 1;
                        e.1 += u16::from(waiting);
                    }
                    signalling::check_call(&gen.peers, ours, call)?;
                    for leg in &call.legs {
                        per_peer[leg.peer.index()] += 1;
                    }
                }
            }
        }
        for (id, peer) in gen.peers.iter() {
            for (theirs, ours) in peer.bindings() {
                let slot = self
                    .table
                    .slot(ours)
                    .ok_or_else(|| format!("index entry {theirs}->{ours} out of range"))?;
                let guard = slot.call.read();
                let ok = guard.as_ref().is_some_and(|c| {
                    c.legs
                        .iter()
                        .any(|l| l.peer == id && l.callno.map(CallNumber::get) == Some(theirs))
                });
                if !ok {
                    return Err(format!(
                        "peer {} index {theirs}->{ours} has no matching call leg",
                        peer.config.name
                    ));
                }
            }
            let active = peer.active_calls.load(std::sync::atomic::Ordering::Relaxed);
            if active != per_peer[id.index()] {
                return Err(format!(
                    "peer {} counts {active} calls, table has {}",
                    peer.config.name,
                    per_peer[id.index()]
                ));
            }
        }
        if occupied != self.table.live() {
            return Err(format!(
                "{occupied} occupied slots, live count {}",
                self.table.live()
            ));
        }
        let waiting = self.unanswered_entries();
        if waiting != setup {
            return Err(format!("{setup} calls wait for a reply, count {waiting}"));
        }
        let counted: std::collections::BTreeMap<_, _> = self
            .sources
            .holding()
            .into_iter()
            .map(|(key, calls, unanswered)| (key, (calls, unanswered)))
            .collect();
        if counted != per_source {
            return Err(format!(
                "per-source counts {counted:?}, table has {per_source:?}"
            ));
        }
        let in_use = self.call_numbers_in_use();
        if in_use != occupied {
            return Err(format!("{in_use} numbers in use, {occupied} calls"));
        }
        Ok(())
    }
}

/// One worker's side of the relay: its trunk buffers, its timers and its
/// counters.
#[derive(Debug)]
pub struct RelayWorker {
    relay: Arc<Relay>,
    /// The configuration this worker runs on (see `refresh`).
    gen: Arc<Generation>,
    index: usize,
    counters: Arc<Counters>,
    /// One emitter per peer index, for trunk peers.
    trunks: Vec<Option<TrunkSender>>,
    next_housekeeping: Instant,
    /// Other workers owning entries of the trunk frame just handled.
    handoff: WorkerSet,
}

impl RelayWorker {
    /// Worker `index` of the relay. Worker 0 also runs the call timers.
    pub fn new(relay: Arc<Relay>, index: usize) -> Self {
        let gen = relay.current();
        let trunks = gen
            .peers
            .iter()
            .map(|(id, p)| {
                p.trunk()
                    .map(|t| TrunkSender::new(id.index(), t, p.kind(), relay.epoch))
            })
            .collect();
        let next_housekeeping = relay.epoch + HOUSEKEEPING_PERIOD;
        Self {
            relay,
            gen,
            index,
            // Room for the peers reloads may add.
            counters: Arc::new(Counters::with_peers(MAX_PEERS)),
            trunks,
            next_housekeeping,
            handoff: WorkerSet::EMPTY,
        }
    }

    /// The shared relay.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// Handles one received datagram. `datagram` is rewritten in place.
    pub fn handle_datagram<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.refresh(out);
        self.counters.rx_datagrams.incr();
        let identified = match self.gen.peers.identify(from) {
            Ok(i) => i,
            Err(DropReason::Stranger) if self.handle_stranger(now, from, datagram, out) => return,
            Err(reason) => return self.counters.count_drop(reason),
        };
        let kind = match classify(datagram) {
            Ok(k) => k,
            Err(_) => return self.counters.count_drop(DropReason::Malformed),
        };
        let peer = match (identified, kind) {
            (Identified::Peer(p), _) => p,
            // A dynamic peer's new address must first say something
            // valid in signalling; media alone never moves a peer.
            (Identified::Candidate(p), FrameKind::Full) => {
                self.count_rx(now, p, FrameKind::Full, datagram.len());
                if self.hand_to_owner(kind, datagram) {
                    return;
                }
                return self.handle_full(now, p, Some(from), from, datagram, out);
            }
            (
                Identified::Candidate(_),
                FrameKind::Mini | FrameKind::VideoMini | FrameKind::MetaTrunk | FrameKind::Meta,
            ) => return self.counters.count_drop(DropReason::Stranger),
        };
        self.count_rx(now, peer, kind, datagram.len());
        if self.hand_to_owner(kind, datagram) {
            return;
        }
        match kind {
            FrameKind::Full => self.handle_full(now, peer, None, from, datagram, out),
            FrameKind::Mini => self.handle_mini(now, peer, datagram, out),
            FrameKind::VideoMini => self.handle_video(now, peer, datagram, out),
            FrameKind::MetaTrunk => self.handle_trunk(now, peer, datagram, out),
            FrameKind::Meta => self.counters.count_drop(DropReason::Malformed),
        }
    }

    /// A datagram from an address that is no peer: a gateway's link
    /// registration or probe (`link_registration.rs`), or a meta trunk
    /// frame, noted for the diagnostics. `false`: drop it as a stranger's.
    #[cold]
    fn handle_stranger<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut T,
    ) -> bool {
        match classify(datagram) {
            Ok(FrameKind::Full) => self.handle_stranger_link_frame(now, from, datagram, out),
            Ok(FrameKind::MetaTrunk) => {
                self.counters.stranger_trunk_frames.incr();
                if let Some(mut last) = self.relay.last_stranger_trunk.try_lock() {
                    *last = Some(from);
                }
                false
            }
            _ => false,
        }
    }

    /// Notes the worker that owns a full or mini frame's call, if it is
    /// not this one. The steering program sends each such frame to its
    /// owner, but the kernel steers a segmented send (UDP GSO) that stays
    /// whole up to the socket (loopback, veth) by its first datagram
    /// alone; relaying a call's frames on two workers could reorder them.
    #[inline]
    fn hand_to_owner(&mut self, kind: FrameKind, datagram: &[u8]) -> bool {
        self.relay.workers > 1 && self.hand_to_other_owner(kind, datagram)
    }

    /// [`hand_to_owner`](Self::hand_to_owner) with several workers; kept
    /// out of line so the single-worker path stays as short as before.
    #[inline(never)]
    fn hand_to_other_owner(&mut self, kind: FrameKind, datagram: &[u8]) -> bool {
        let call = match (kind, datagram) {
            (FrameKind::Full | FrameKind::Mini, [hi, lo, ..]) => u16::from_be_bytes([*hi, *lo]),
            (FrameKind::VideoMini, [_, _, hi, lo, ..]) => u16::from_be_bytes([*hi, *lo]),
            _ => return false,
        };
        let owner = self.relay.owner(CallNumber::from_field(call));
        if owner == self.index {
            return false;
        }
        self.counters.rx_handed_over.incr();
        self.handoff.insert(owner);
        true
    }

    /// The other workers that own the datagram the last
    /// [`handle_datagram`](Self::handle_datagram) read, or entries of it,
    /// and clears the set.
    ///
    /// Each worker relays only its own calls, so that all of a call's
    /// media is relayed by one worker and stays in order (two workers'
    /// trunk buffers leave at the same tick in either order). The steering
    /// program mostly delivers to the owner, but a trunk frame reaches the
    /// worker its first entry's call steers it to while an Asterisk peer
    /// mixes calls in a frame, and a segmented send arrives whole at the
    /// worker of its first datagram. The gateway hands the datagram,
    /// unchanged (a datagram handed over was not rewritten), to each worker
    /// in the set, which passes it to
    /// [`handle_handed`](Self::handle_handed).
    pub fn take_handoff(&mut self) -> WorkerSet {
        std::mem::replace(&mut self.handoff, WorkerSet::EMPTY)
    }

    /// Relays a datagram another worker handed over (see
    /// [`take_handoff`](Self::take_handoff)): this worker's entries of a
    /// trunk frame, or a full or mini frame of one of its calls. `now` is
    /// when the datagram arrived; it was counted where it was received.
    /// `datagram` is rewritten in place.
    pub fn handle_handed<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.refresh(out);
        let (Ok(identified), Ok(kind)) = (self.gen.peers.identify(from), classify(datagram)) else {
            return;
        };
        match (identified, kind) {
            (Identified::Peer(peer), FrameKind::MetaTrunk) => {
                self.trunk_entries(now, peer, datagram, false, out);
            }
            (Identified::Peer(peer), FrameKind::Full) => {
                self.handle_full(now, peer, None, from, datagram, out);
            }
            (Identified::Candidate(peer), FrameKind::Full) => {
                self.handle_full(now, peer, Some(from), from, datagram, out);
            }
            (Identified::Peer(peer), FrameKind::Mini) => self.handle_mini(now, peer, datagram, out),
            (Identified::Peer(peer), FrameKind::VideoMini) => {
                self.handle_video(now, peer, datagram, out);
            }
            _ => {}
        }
    }

    /// Adopts the configuration in force if a reload replaced this
    /// worker's: one atomic load per call when nothing changed.
    #[inline]
    fn refresh<T: Transmit>(&mut self, out: &mut T) {
        if self.relay.generation.load(Ordering::Acquire) != self.gen.number {
            self.adopt(out);
        }
    }

    /// Sends what waits in the trunk buffers (to the addresses they were
    /// built for), then takes the new generation and builds its trunk
    /// buffers: trunk settings apply at once.
    #[cold]
    fn adopt<T: Transmit>(&mut self, out: &mut T) {
        for (i, sender) in self.trunks.iter_mut().enumerate() {
            if let Some(sender) = sender {
                let to = u16::try_from(i)
                    .ok()
                    .and_then(|i| self.gen.peers.get(PeerId(i)).addr());
                sender.flush_now(to, &self.counters, out);
            }
        }
        self.gen = self.relay.current();
        let epoch = self.relay.epoch;
        self.trunks = self
            .gen
            .peers
            .iter()
            .map(|(id, p)| {
                p.trunk()
                    .map(|t| TrunkSender::new(id.index(), t, p.kind(), epoch))
            })
            .collect();
    }

    /// Counts a datagram received from `peer`.
    #[inline]
    fn count_rx(&self, now: Instant, peer: PeerId, kind: FrameKind, len: usize) {
        let kind = match kind {
            FrameKind::Full => Kind::Full,
            FrameKind::Mini => Kind::Mini,
            FrameKind::VideoMini => Kind::Video,
            FrameKind::MetaTrunk => Kind::Trunk,
            FrameKind::Meta => return,
        };
        if let Some(c) = self.counters.peer(peer.index()) {
            c.packet(Direction::Rx, kind, len);
            c.heard(now.as_millis());
        }
    }

    /// Counts a datagram sent to `peer`.
    #[inline]
    pub(crate) fn count_tx(&self, peer: PeerId, kind: Kind, len: usize) {
        self.counters.tx_datagrams.incr();
        if let Some(c) = self.counters.peer(peer.index()) {
            c.packet(Direction::Tx, kind, len);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let trunk = self
            .trunks
            .iter()
            .flatten()
            .filter_map(TrunkSender::deadline)
            .min();
        let house = (self.index == 0).then_some(self.next_housekeeping);
        match (trunk, house) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs what is due at `now`: trunk flushes and call timers.
    pub fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T) {
        self.refresh(out);
        for (i, sender) in self.trunks.iter_mut().enumerate() {
            if let Some(sender) = sender {
                let to = u16::try_from(i)
                    .ok()
                    .and_then(|i| self.gen.peers.get(PeerId(i)).addr());
                sender.flush_due(now, to, &self.counters, out);
            }
        }
        if self.index == 0 && now >= self.next_housekeeping {
            self.housekeeping(now);
            self.probe_links(now, out);
            self.next_housekeeping = now + HOUSEKEEPING_PERIOD;
        }
    }

    /// This worker's counters (shared so metrics can read them).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Frees calls whose linger ended, whose far side never replied
    /// (`timeouts.setup`), that were never answered
    /// (`admission.answer_timeout`), or that went quiet.
    fn housekeeping(&mut self, now: Instant) {
        let relay = Arc::clone(&self.relay);
        let timeouts = self.gen.timeouts;
        let idle_ms = u64::try_from(timeouts.call_idle.as_millis()).unwrap_or(u64::MAX);
        for ours in relay.table.occupied_numbers() {
            let Some(slot) = relay.table.slot(ours) else {
                continue;
            };
            let last = slot.last_rx_ms.load(std::sync::atomic::Ordering::Relaxed);
            let verdict = {
                let mut guard = slot.call.write();
                guard.as_mut().and_then(|call| {
                    if call.phase == Phase::Up && call.purpose == call::Purpose::Call {
                        let frames = [0, 1].map(|i| slot.media[i].snapshot().frames);
                        if let Some(silent) = call.one_way.observe(now, frames) {
                            self.counters.calls_one_way.incr();
                            relay.note_one_way(OneWayCall {
                                call_number: ours,
                                silent_peer: gen_name(&self.gen, call.legs[silent].peer),
                                flowing_peer: gen_name(&self.gen, call.legs[1 - silent].peer),
                            });
                        }
                    }
                    match call.phase {
                        Phase::Ending { until } => (now >= until).then_some(false),
                        Phase::Setup if now - call.created >= timeouts.setup => Some(true),
                        // Half-open: up but never answered (a call still
                        // ringing, an exchange never completed). Encrypted
                        // calls hide their ANSWER and keep the idle timer.
                        Phase::Up
                            if !call.answered
                                && !call.encrypted
                                && now - call.created >= timeouts.admission.answer_timeout =>
                        {
                            Some(true)
                        }
                        Phase::Setup | Phase::Up => {
                            (now.as_millis().saturating_sub(last) >= idle_ms).then_some(true)
                        }
                    }
                })
            };
            if let Some(reaped) = verdict {
                if self.free_call(now, ours) && reaped {
                    self.counters.calls_reaped.incr();
                }
            }
        }
    }
}
