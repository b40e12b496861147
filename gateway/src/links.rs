//! Watches the gateway links and the classic NAT traps, and says so in the
//! log: one line per change of a link's state or registration, and
//! rate-limited lines for what may repeat (refused registrations, trunk
//! frames from strangers, one-way calls, a peer whose address keeps
//! changing). Each has a metric too (docs/METRICS.md); the log line names
//! the peer and the cause.
//!
//! The watcher also moves a link that went unreachable to a fresh source
//! port (`crate::rebind`) when this gateway registers with that peer.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use trunk_core::relay::{LinkState, LinkView, RegistrationState, RejectCause};

use crate::admin::AdminState;
use crate::clock;
use crate::link_port::LinkMover;
use crate::ratelimit::LogLimiter;

/// How often the states are read: the probes' own resolution is the
/// relay's housekeeping turn (250 ms).
const PERIOD: Duration = Duration::from_millis(250);

/// Address changes within 10 minutes that make a NAT "inconsistent".
const INCONSISTENT_NAT: u32 = 3;

/// While a registered link stays unreachable, it moves to yet another
/// fresh port this often: the last move may have happened while the WAN
/// was still down, and its new NAT entry may be as bad as the old one.
const MOVE_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A link's probes changed its state.
    Link {
        peer: String,
        state: LinkState,
        rtt_ms: Option<u64>,
        misses: u32,
    },
    /// This gateway's registration with a peer changed state.
    Registration {
        peer: String,
        state: RegistrationState,
        apparent: Option<SocketAddr>,
        cause: Option<String>,
    },
    /// A peer registered here from a new address (the first, or a NAT
    /// rebinding); its calls moved with it.
    PeerMoved {
        peer: String,
        to: Option<SocketAddr>,
        changes: u64,
        calls_moved: u64,
    },
    /// A peer's address changed this many times in 10 minutes.
    InconsistentNat { peer: String, recent: u32 },
    /// Registrations of a peer refused here, by cause, since the last look.
    Refused {
        peer: String,
        cause: RejectCause,
        count: u64,
    },
}

/// What the watcher saw last, per peer.
#[derive(Debug, Default, Clone)]
struct Seen {
    state: Option<LinkState>,
    registration: Option<RegistrationState>,
    address_changes: u64,
    accepted_here: u64,
    rejected_here: [u64; 5],
}

/// Compares the links with what was seen last; returns what changed.
fn diff(seen: &mut HashMap<String, Seen>, links: &[LinkView]) -> Vec<Event> {
    let mut events = Vec::new();
    for l in links {
        let s = seen.entry(l.peer.clone()).or_default();
        if s.state.unwrap_or(LinkState::Unknown) != l.state {
            events.push(Event::Link {
                peer: l.peer.clone(),
                state: l.state,
                rtt_ms: l
                    .rtt
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                misses: l.misses,
            });
        }
        s.state = Some(l.state);
        if let Some(r) = &l.registration {
            if s.registration != Some(r.state) && r.state != RegistrationState::Registering {
                events.push(Event::Registration {
                    peer: l.peer.clone(),
                    state: r.state,
                    apparent: r.apparent,
                    cause: r.cause.clone(),
                });
            }
            if r.state != RegistrationState::Registering {
                s.registration = Some(r.state);
            }
        }
        if let Some(r) = &l.registrar {
            let first = s.accepted_here == 0 && r.accepted > 0;
            if r.address_changes > s.address_changes || first {
                events.push(Event::PeerMoved {
                    peer: l.peer.clone(),
                    to: l.addr,
                    changes: r.address_changes,
                    calls_moved: r.calls_moved,
                });
                if r.address_changes > s.address_changes
                    && r.recent_address_changes >= INCONSISTENT_NAT
                {
                    events.push(Event::InconsistentNat {
                        peer: l.peer.clone(),
                        recent: r.recent_address_changes,
                    });
                }
            }
            for (i, cause) in RejectCause::ALL.iter().enumerate() {
                let count = r.rejected[i].saturating_sub(s.rejected_here[i]);
                if count > 0 {
                    events.push(Event::Refused {
                        peer: l.peer.clone(),
                        cause: *cause,
                        count,
                    });
                }
            }
            s.address_changes = r.address_changes;
            s.accepted_here = r.accepted;
            s.rejected_here = r.rejected;
        }
    }
    events
}

/// Log limits for lines that may repeat.
struct Limits {
    refused: LogLimiter,
    nat: LogLimiter,
    strangers: LogLimiter,
    unknown: LogLimiter,
    one_way: LogLimiter,
}

fn log(event: &Event, limits: &mut Limits) {
    match event {
        Event::Link {
            peer,
            state,
            rtt_ms,
            misses,
        } => match state {
            LinkState::Ok => tracing::info!(peer = %peer, ?rtt_ms, "gateway link up"),
            LinkState::Lagged => tracing::warn!(
                peer = %peer,
                ?rtt_ms,
                "gateway link lagged: probes answered slower than its qualify limit"
            ),
            LinkState::Unreachable => tracing::warn!(
                peer = %peer,
                missed = misses,
                "gateway link unreachable: probes unanswered (see iax2_gateway_link_up)"
            ),
            LinkState::Unknown => {}
        },
        Event::Registration {
            peer,
            state,
            apparent,
            cause,
        } => match state {
            RegistrationState::Registered => tracing::info!(
                peer = %peer,
                apparent = ?apparent,
                "registered with the far gateway; it sees this gateway at the apparent address"
            ),
            RegistrationState::Rejected => tracing::warn!(
                peer = %peer,
                cause = cause.as_deref().unwrap_or("-"),
                "registration with the far gateway refused: check secret and username on both sides (iax2_gateway_registrations_rejected_total)"
            ),
            RegistrationState::Unregistered => tracing::warn!(
                peer = %peer,
                "registration with the far gateway lapsed: no answer to the refreshes"
            ),
            RegistrationState::Registering => {}
        },
        Event::PeerMoved {
            peer,
            to,
            changes,
            calls_moved,
        } => {
            if *changes == 0 {
                tracing::info!(peer = %peer, addr = ?to, "gateway peer registered");
            } else {
                tracing::warn!(
                    peer = %peer,
                    addr = ?to,
                    changes,
                    calls_moved,
                    "gateway peer registered from a new address (NAT rebinding); its calls follow"
                );
            }
        }
        Event::InconsistentNat { peer, recent } => {
            if let Some(held) = limits.nat.allow() {
                tracing::warn!(
                    peer = %peer,
                    changes_10min = recent,
                    held_back = held,
                    "inconsistent NAT: the peer's address keeps changing; give its NAT a longer UDP timeout or a fixed port mapping"
                );
            }
        }
        Event::Refused { peer, cause, count } => {
            if let Some(held) = limits.refused.allow() {
                tracing::warn!(
                    peer = %peer,
                    cause = cause.as_str(),
                    count,
                    held_back = held,
                    "registration refused here"
                );
            }
        }
    }
}

/// Starts the watcher; it ends once `stop` is set.
pub(crate) fn spawn(
    state: Arc<AdminState>,
    stop: Arc<AtomicBool>,
    mover: LinkMover,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("iax2-links".into())
        .spawn(move || {
            let mut seen = HashMap::new();
            let every = || LogLimiter::new(Duration::from_secs(10));
            let mut limits = Limits {
                refused: every(),
                nat: LogLimiter::new(Duration::from_secs(60)),
                strangers: every(),
                unknown: every(),
                one_way: LogLimiter::new(Duration::from_secs(5)),
            };
            let mut last = state.totals();
            let mut moved: HashMap<String, std::time::Instant> = HashMap::new();
            while !stop.load(Ordering::Acquire) {
                let relay = &state.relay;
                let links = relay.link_views(clock::now());
                for e in diff(&mut seen, &links) {
                    log(&e, &mut limits);
                }
                for l in links.iter().filter(|l| l.registration.is_some()) {
                    recover(relay, &mover, &mut moved, l);
                }
                let totals = state.totals();
                let strangers = totals.stranger_trunk_frames - last.stranger_trunk_frames;
                if strangers > 0 {
                    if let Some(held) = limits.strangers.allow() {
                        tracing::warn!(
                            from = ?relay.last_stranger_trunk_source(),
                            frames = strangers,
                            held_back = held,
                            "meta trunk frames from an address that is no peer: a far gateway or Asterisk sending from another address than its peer entry says (iax2_gateway_stranger_trunk_frames_total)"
                        );
                    }
                }
                let unknown = totals.registrations_unknown_peer - last.registrations_unknown_peer;
                if unknown > 0 {
                    if let Some(held) = limits.unknown.allow() {
                        tracing::warn!(
                            count = unknown,
                            held_back = held,
                            "registration from a gateway naming no peer here (its username has no host: dynamic peer with a secret); dropped unanswered"
                        );
                    }
                }
                for call in relay.take_one_way() {
                    if let Some(held) = limits.one_way.allow() {
                        tracing::warn!(
                            call = call.call_number,
                            silent = %call.silent_peer,
                            flowing = %call.flowing_peer,
                            held_back = held,
                            "one-way audio: voice comes from one side only; the silent side may not accept the other as a trunk peer, or a NAT blocks its media (iax2_gateway_calls_one_way_total)"
                        );
                    }
                }
                last = totals;
                thread::sleep(PERIOD);
            }
        })
}

/// Moves a registered link that is unreachable to a fresh source port,
/// at once and then every [`MOVE_AGAIN_AFTER`] while it stays down.
fn recover(
    relay: &trunk_core::relay::Relay,
    mover: &LinkMover,
    moved: &mut HashMap<String, std::time::Instant>,
    link: &LinkView,
) {
    if link.state != LinkState::Unreachable {
        moved.remove(&link.peer);
        return;
    }
    let Some(dest) = link.addr else {
        return;
    };
    let now = std::time::Instant::now();
    if moved
        .get(&link.peer)
        .is_some_and(|t| now.duration_since(*t) < MOVE_AGAIN_AFTER)
    {
        return;
    }
    moved.insert(link.peer.clone(), now);
    match mover.move_link(dest) {
        Ok(port) => {
            relay.link_moved(&link.peer, clock::now(), port);
            tracing::warn!(
                peer = %link.peer,
                port,
                "gateway link unreachable: moved to a fresh source port (a new NAT mapping) and registering again"
            );
        }
        Err(e) => {
            tracing::error!(peer = %link.peer, error = %e, "cannot move the gateway link to a fresh port")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunk_core::relay::{RegistrarView, RegistrationView};

    fn link(state: LinkState) -> LinkView {
        LinkView {
            peer: "gw".into(),
            state,
            rtt: Some(Duration::from_millis(12)),
            misses: 0,
            addr: None,
            registration: None,
            registrar: None,
        }
    }

    fn registrar(accepted: u64, changes: u64, recent: u32, bad_secret: u64) -> RegistrarView {
        RegistrarView {
            registered: accepted > 0,
            granted: None,
            accepted,
            rejected: [0, 0, bad_secret, 0, 0],
            last_reject: None,
            address_changes: changes,
            recent_address_changes: recent,
            calls_moved: changes,
        }
    }

    #[test]
    fn each_link_state_change_is_one_event() {
        let mut seen = HashMap::new();
        assert_eq!(diff(&mut seen, &[link(LinkState::Unknown)]), vec![]);
        let up = diff(&mut seen, &[link(LinkState::Ok)]);
        assert!(matches!(
            up[..],
            [Event::Link {
                state: LinkState::Ok,
                rtt_ms: Some(12),
                ..
            }]
        ));
        assert_eq!(diff(&mut seen, &[link(LinkState::Ok)]), vec![]);
        let down = diff(&mut seen, &[link(LinkState::Unreachable)]);
        assert!(matches!(
            down[..],
            [Event::Link {
                state: LinkState::Unreachable,
                ..
            }]
        ));
    }

    #[test]
    fn registration_outcomes_moves_inconsistent_nat_and_refusals_are_reported() {
        let mut seen = HashMap::new();
        let mut l = link(LinkState::Ok);
        l.registration = Some(RegistrationView {
            state: RegistrationState::Rejected,
            granted: None,
            apparent: None,
            cause: Some("Registration Refused".into()),
            attempts: 1,
            accepted: 0,
            rejected: 1,
            moves: 0,
            local_port: None,
        });
        let e = diff(&mut seen, &[l.clone()]);
        assert!(e.iter().any(|e| matches!(e, Event::Registration { state: RegistrationState::Rejected, cause: Some(c), .. } if c == "Registration Refused")));
        // Still refused: no new line.
        assert!(diff(&mut seen, &[l]).is_empty());

        let mut seen = HashMap::new();
        let mut l = link(LinkState::Ok);
        assert_eq!(diff(&mut seen, &[l.clone()]).len(), 1, "the link came up");
        l.registrar = Some(registrar(1, 0, 0, 0));
        let e = diff(&mut seen, &[l.clone()]);
        assert!(
            matches!(e[..], [Event::PeerMoved { changes: 0, .. }]),
            "first registration"
        );
        l.registrar = Some(registrar(2, 1, 1, 0));
        let e = diff(&mut seen, &[l.clone()]);
        assert!(matches!(
            e[..],
            [Event::PeerMoved {
                changes: 1,
                calls_moved: 1,
                ..
            }]
        ));
        l.registrar = Some(registrar(4, 3, 3, 2));
        let e = diff(&mut seen, &[l.clone()]);
        assert!(e.contains(&Event::InconsistentNat {
            peer: "gw".into(),
            recent: 3
        }));
        assert!(e.contains(&Event::Refused {
            peer: "gw".into(),
            cause: RejectCause::BadSecret,
            count: 2
        }));
        assert!(diff(&mut seen, &[l]).is_empty(), "nothing new");
    }
}
