//! The configured peers as the relay sees them: who sent a datagram, where
//! a peer is, and the per-peer index from the peer's call numbers to ours.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use iax2_config::{Config, Peer, PeerHost, PeerKind, TrunkSettings};
use parking_lot::{Mutex, RwLock};

use super::counters::DropReason;
use super::link_registration::LinkRegistration;
use crate::peering::liveness::{Liveness, LivenessSettings};
use crate::time::Instant;
use crate::wire::CallNumber;

/// A peer's position in the configuration (its index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u16);

impl PeerId {
    /// The index of the peer in the configuration's peer list.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Slots in a per-peer index: every 15-bit call number.
const INDEX_LEN: usize = 1 << 15;

/// Most peers a relay can know over its life: peers added by reloads take
/// new indexes, and a removed peer keeps its index while calls may still
/// use it.
pub const MAX_PEERS: usize = 256;

/// One peer and its shared state. The state behind the `Arc`s outlives a
/// configuration reload: a peer that keeps its name keeps its call-number
/// index, its call count and its learned address.
#[derive(Debug)]
pub(crate) struct PeerState {
    pub(crate) config: Peer,
    /// No longer in the configuration: its live calls go on, it gets no
    /// new ones.
    pub(crate) retired: bool,
    /// The address learned for a `dynamic` peer.
    learned: Arc<RwLock<Option<SocketAddr>>>,
    /// Calls in the table with a leg on this peer.
    pub(crate) active_calls: Arc<AtomicU32>,
    /// The peer's call number -> our call number (0: none). Written under
    /// the call's slot lock, read without a lock on the media path.
    index: Arc<[AtomicU16]>,
    /// When the peer's trunk clock was anchored (micros + 1; 0: never), for
    /// rebuilding the timestamps of trunk entries sent without one
    /// (PROTOCOL.md 13.3).
    trunk_rx_anchor: Arc<AtomicU64>,
    /// This gateway's own probes of a gateway peer.
    pub(crate) link: Arc<Mutex<LinkProbe>>,
    /// Registration with a gateway peer, either way.
    pub(crate) registration: Arc<Mutex<LinkRegistration>>,
}

/// The probes a gateway sends a gateway peer, and what they say.
#[derive(Debug)]
pub(crate) struct LinkProbe {
    pub(crate) liveness: Liveness,
    /// When the next probe is due (`None`: at once).
    pub(crate) next: Option<Instant>,
}

impl LinkProbe {
    fn new(config: &Peer) -> Self {
        Self {
            liveness: Liveness::new(liveness_settings(config)),
            next: None,
        }
    }
}

/// How the probes of `config`'s link are judged: its `qualify` and
/// `unreachable_after`; a probe counts as missed when the next one is due
/// (or after 3 s with long keepalives).
fn liveness_settings(config: &Peer) -> LivenessSettings {
    let interval = config
        .keepalive_interval()
        .unwrap_or(iax2_config::DEFAULT_KEEPALIVE);
    LivenessSettings {
        lagged_rtt: config.qualify(),
        probe_timeout: interval.min(core::time::Duration::from_secs(3)),
        misses_unreachable: config.unreachable_after(),
    }
}

/// A seed of its own for each peer's registration (challenges, jitter).
fn peer_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PeerState {
    fn new(config: Peer, seed: u64) -> Self {
        let seed = peer_seed(seed, config.name.as_str());
        Self {
            link: Arc::new(Mutex::new(LinkProbe::new(&config))),
            registration: Arc::new(Mutex::new(LinkRegistration::new(&config, seed))),
            config,
            retired: false,
            learned: Arc::new(RwLock::new(None)),
            active_calls: Arc::new(AtomicU32::new(0)),
            index: (0..INDEX_LEN).map(|_| AtomicU16::new(0)).collect(),
            trunk_rx_anchor: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same peer's state under a new configuration (`retired`: the
    /// new configuration no longer names it).
    fn carried(&self, config: Peer, retired: bool, seed: u64) -> Self {
        if config != self.config {
            self.link
                .lock()
                .liveness
                .set_settings(liveness_settings(&config));
            self.registration
                .lock()
                .reconfigure(&config, peer_seed(seed, config.name.as_str()));
        }
        Self {
            config,
            retired,
            learned: Arc::clone(&self.learned),
            active_calls: Arc::clone(&self.active_calls),
            index: Arc::clone(&self.index),
            trunk_rx_anchor: Arc::clone(&self.trunk_rx_anchor),
            link: Arc::clone(&self.link),
            registration: Arc::clone(&self.registration),
        }
    }

    /// Where to send to this peer now.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        match self.config.host {
            PeerHost::Static(a) => Some(a),
            PeerHost::Dynamic => *self.learned.read(),
        }
    }

    pub(crate) fn trunk(&self) -> Option<TrunkSettings> {
        self.config.trunk
    }

    pub(crate) fn kind(&self) -> PeerKind {
        self.config.kind
    }

    /// Our call number for the peer's call number `theirs`, if bound.
    #[inline]
    pub(crate) fn lookup(&self, theirs: CallNumber) -> Option<u16> {
        let ours = self
            .index
            .get(usize::from(theirs.get()))?
            .load(Ordering::Acquire);
        (ours != 0).then_some(ours)
    }

    /// Binds `theirs` to `ours` if it is free; returns the number bound.
    pub(crate) fn bind(&self, theirs: CallNumber, ours: u16) -> Result<(), u16> {
        match self.index.get(usize::from(theirs.get())) {
            Some(slot) => slot
                .compare_exchange(0, ours, Ordering::AcqRel, Ordering::Acquire)
                .map(|_| ()),
            None => Err(0),
        }
    }

    /// Removes the binding of `theirs` if it points at `ours`.
    pub(crate) fn unbind(&self, theirs: CallNumber, ours: u16) {
        if let Some(slot) = self.index.get(usize::from(theirs.get())) {
            let _ = slot.compare_exchange(ours, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Every (theirs, ours) binding, for invariant checks.
    pub(crate) fn bindings(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.index.iter().enumerate().filter_map(|(theirs, s)| {
            let ours = s.load(Ordering::Acquire);
            (ours != 0).then(|| (u16::try_from(theirs).unwrap_or(0), ours))
        })
    }

    /// The instant this peer's trunk clock reads 0, anchoring it at `now`
    /// minus `trunk_ts` on first use or when the peer restarted its clock.
    pub(crate) fn trunk_anchor(&self, now: Instant, trunk_ts: u32) -> Instant {
        let stored = self.trunk_rx_anchor.load(Ordering::Relaxed);
        if stored != 0 && trunk_ts != 0 {
            return Instant::from_micros(stored - 1);
        }
        let anchor = now - core::time::Duration::from_millis(u64::from(trunk_ts));
        self.trunk_rx_anchor
            .store(anchor.as_micros() + 1, Ordering::Relaxed);
        anchor
    }
}

/// How a datagram's source maps to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identified {
    /// A known peer at its known address.
    Peer(PeerId),
    /// An address a `dynamic` peer's rules permit but that is not its
    /// current one: it becomes the current one if the datagram is valid
    /// signalling.
    Candidate(PeerId),
}

/// Static peers by address, each with whether its own rules admit that
/// address (decided once: a static peer's address never changes). A
/// gateway has a handful of peers, and comparing a few addresses is
/// cheaper than hashing one (SipHash showed in profiles of the media
/// path); many peers get a hash map.
#[derive(Debug)]
enum AddrIndex {
    Few(Vec<(SocketAddr, StaticPeer)>),
    Many(HashMap<SocketAddr, StaticPeer>),
}

#[derive(Clone, Copy, Debug)]
struct StaticPeer {
    id: PeerId,
    permitted: bool,
}

impl AddrIndex {
    const FEW: usize = 16;

    fn new(entries: Vec<(SocketAddr, StaticPeer)>) -> Self {
        if entries.len() <= Self::FEW {
            Self::Few(entries)
        } else {
            Self::Many(entries.into_iter().collect())
        }
    }

    #[inline]
    fn get(&self, addr: &SocketAddr) -> Option<StaticPeer> {
        match self {
            Self::Few(v) => v.iter().find(|(a, _)| a == addr).map(|&(_, p)| p),
            Self::Many(m) => m.get(addr).copied(),
        }
    }
}

/// All configured peers.
#[derive(Debug)]
pub(crate) struct Peers {
    list: Vec<PeerState>,
    by_addr: AddrIndex,
    dynamic: Vec<PeerId>,
    /// Seeds each peer's registration state.
    seed: u64,
}

impl Peers {
    pub(crate) fn new(config: &Config, seed: u64) -> Self {
        let list: Vec<PeerState> = config
            .peers
            .iter()
            .map(|p| PeerState::new(p.clone(), seed))
            .collect();
        Self::index(list, seed)
    }

    /// The peers of `config`, carrying over the state of `previous`: a peer
    /// keeps its index and state by name, a peer `config` no longer names
    /// stays (retired) so its live calls go on, a new one is appended.
    pub(crate) fn reloaded(config: &Config, previous: &Self) -> Result<Self, String> {
        let mut list: Vec<PeerState> = previous
            .list
            .iter()
            .map(|old| match config.peer(old.config.name.as_str()) {
                Some(p) => old.carried(p.clone(), false, previous.seed),
                None => old.carried(old.config.clone(), true, previous.seed),
            })
            .collect();
        for p in &config.peers {
            if !list.iter().any(|s| s.config.name == p.name) {
                list.push(PeerState::new(p.clone(), previous.seed));
            }
        }
        if list.len() > MAX_PEERS {
            return Err(format!(
                "{} peers over the gateway's life (removed ones included) is more than {MAX_PEERS}: \
                 restart the gateway to apply this configuration",
                list.len()
            ));
        }
        Ok(Self::index(list, previous.seed))
    }

    fn index(list: Vec<PeerState>, seed: u64) -> Self {
        let mut by_addr: Vec<(SocketAddr, StaticPeer)> = Vec::new();
        let mut dynamic = Vec::new();
        // Current peers first, so a retired peer never shadows a current
        // one that took over its address.
        let order = list
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.retired)
            .chain(list.iter().enumerate().filter(|(_, p)| p.retired));
        for (i, p) in order {
            let id = PeerId(u16::try_from(i).unwrap_or(u16::MAX));
            match p.config.host {
                PeerHost::Static(a) => {
                    if !by_addr.iter().any(|(b, _)| *b == a) {
                        by_addr.push((
                            a,
                            StaticPeer {
                                id,
                                permitted: p.config.permits(a.ip()),
                            },
                        ));
                    }
                }
                PeerHost::Dynamic => dynamic.push(id),
            }
        }
        Self {
            list,
            by_addr: AddrIndex::new(by_addr),
            dynamic,
            seed,
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: PeerId) -> &PeerState {
        // Ids are only made from indexes into `list`.
        &self.list[id.index()]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (PeerId, &PeerState)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, p)| (PeerId(u16::try_from(i).unwrap_or(u16::MAX)), p))
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<PeerId> {
        self.iter()
            .find(|(_, p)| !p.retired && p.config.name.as_str() == name)
            .map(|(id, _)| id)
    }

    /// Which peer sent a datagram from `from`.
    #[inline]
    pub(crate) fn identify(&self, from: SocketAddr) -> Result<Identified, DropReason> {
        if let Some(p) = self.by_addr.get(&from) {
            return if p.permitted {
                Ok(Identified::Peer(p.id))
            } else {
                Err(DropReason::Acl)
            };
        }
        let mut candidate = None;
        for &id in &self.dynamic {
            let p = self.get(id);
            if *p.learned.read() == Some(from) {
                return Ok(Identified::Peer(id));
            }
            // A dynamic peer is claimed only by an address one of its
            // `permit` ranges names: "no rule matches" is not enough here.
            let named = p.config.permit.iter().any(|n| n.contains(&from.ip()));
            if candidate.is_none() && !p.retired && named && p.config.permits(from.ip()) {
                candidate = Some(id);
            }
        }
        candidate
            .map(Identified::Candidate)
            .ok_or(DropReason::Stranger)
    }

    /// Makes `from` the current address of dynamic peer `id`.
    pub(crate) fn learn(&self, id: PeerId, from: SocketAddr) {
        *self.get(id).learned.write() = Some(from);
    }
}
