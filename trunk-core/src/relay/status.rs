//! Read-only views of the relay for status pages and metrics: its peers
//! and its calls. They walk shared state (a scrape or a status request),
//! never the packet path.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use iax2_config::PeerKind;

use super::call::{Phase, Purpose};
use super::callno::{FIRST, LAST};
use super::media_stats::LegMediaSnapshot;
use super::{LinkState, RegistrarView, RegistrationView, Relay};
use crate::time::Instant;

/// A peer as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Its index (the one [`Counters::peer`](super::Counters::peer) takes).
    pub index: usize,
    /// Its configured name.
    pub name: String,
    /// `pbx` or `gateway`.
    pub kind: PeerKind,
    /// Where it is (a dynamic peer's learned address; `None` before one).
    pub addr: Option<SocketAddr>,
    /// Whether its voice goes in trunk frames.
    pub trunk: bool,
    /// Table entries with a leg on it.
    pub active_calls: u32,
    /// Removed from the configuration by a reload; its calls go on.
    pub retired: bool,
}

/// A gateway link as this gateway's own probes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// The gateway peer's name.
    pub peer: String,
    /// What its probes say.
    pub state: LinkState,
    /// The last answered probe's round trip.
    pub rtt: Option<Duration>,
    /// Probes missed in a row.
    pub misses: u32,
    /// Where the peer is now (a registered peer's NAT address).
    pub addr: Option<SocketAddr>,
    /// This gateway's registration with the peer (`register: true`).
    pub registration: Option<RegistrationView>,
    /// The peer's registration with this gateway (`host: dynamic` with a
    /// `secret`).
    pub registrar: Option<RegistrarView>,
}

/// What a table entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A call set up by NEW.
    Call,
    /// A relayed POKE.
    Poke,
    /// A relayed registration.
    Registration,
    /// Anything else (FWDOWNL).
    Other,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// NEW sent on; the far side has not replied.
    Setup,
    /// Both sides known; `answered` once ANSWER passed.
    Up {
        /// An ANSWER was relayed.
        answered: bool,
    },
    /// Hung up, rejected or invalidated; lingering.
    Ending,
}

/// One leg of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegView {
    /// The peer's name.
    pub peer: String,
    /// The peer's call number (`None` before its first reply).
    pub their_call_number: Option<u16>,
    /// The voice received from this leg.
    pub media: LegMediaSnapshot,
}

/// One table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    /// Our call number.
    pub call_number: u16,
    /// What it is.
    pub kind: EntryKind,
    /// Where it is.
    pub state: CallState,
    /// Whether it is encrypted end to end.
    pub encrypted: bool,
    /// Milliseconds since the NEW (or POKE, REGREQ).
    pub age_ms: u64,
    /// Leg 0 sent the NEW; leg 1 is where it was routed.
    pub legs: [LegView; 2],
}

impl Relay {
    /// The relay's clock origin (what the per-peer times count from).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Call numbers the relay can hand out.
    pub fn call_number_capacity(&self) -> usize {
        usize::from(LAST - FIRST + 1)
    }

    /// Its peers, in index order.
    pub fn peer_views(&self) -> Vec<PeerView> {
        self.current()
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                index: id.index(),
                name: p.config.name.as_str().to_owned(),
                kind: p.kind(),
                addr: p.addr(),
                trunk: p.trunk().is_some(),
                active_calls: p.active_calls.load(Ordering::Relaxed),
                retired: p.retired,
            })
            .collect()
    }

    /// Its gateway peers' links, in peer order.
    pub fn link_views(&self, now: Instant) -> Vec<LinkView> {
        self.current()
            .peers
            .iter()
            .filter(|(_, p)| p.kind() == PeerKind::Gateway && !p.retired)
            .map(|(_, p)| {
                let (state, rtt, misses) = {
                    let link = p.link.lock();
                    (
                        link.liveness.state(),
                        link.liveness.rtt(),
                        link.liveness.misses(),
                    )
                };
                let reg = p.registration.lock();
                let registrant = super::link_registration::is_registrant(p);
                LinkView {
                    peer: p.config.name.as_str().to_owned(),
                    state,
                    rtt,
                    misses,
                    addr: p.addr(),
                    registration: reg.client_view(),
                    registrar: registrant.then(|| reg.registrar_view(now)),
                }
            })
            .collect()
    }

    /// Every table entry at `now`, by call number.
    pub fn call_views(&self, now: Instant) -> Vec<CallView> {
        let gen = self.current();
        let name = |id: super::PeerId| gen.peers.get(id).config.name.as_str().to_owned();
        let mut out = Vec::with_capacity(self.table.live());
        for ours in self.table.occupied_numbers() {
            let Some(slot) = self.table.slot(ours) else {
                continue;
            };
            let guard = slot.call.read();
            let Some(call) = guard.as_ref() else {
                continue;
            };
            let leg = |i: usize| LegView {
                peer: name(call.legs[i].peer),
                their_call_number: call.legs[i].callno.map(crate::wire::CallNumber::get),
                media: slot.media[i].snapshot(),
            };
            out.push(CallView {
                call_number: ours,
                kind: match call.purpose {
                    Purpose::Call => EntryKind::Call,
                    Purpose::Poke => EntryKind::Poke,
                    Purpose::Registration => EntryKind::Registration,
                    Purpose::Other => EntryKind::Other,
                },
                state: match call.phase {
                    Phase::Setup => CallState::Setup,
                    Phase::Up => CallState::Up {
                        answered: call.answered,
                    },
                    Phase::Ending { .. } => CallState::Ending,
                },
                encrypted: call.encrypted,
                age_ms: u64::try_from((now - call.created).as_millis()).unwrap_or(u64::MAX),
                legs: [leg(0), leg(1)],
            });
        }
        out
    }
}
