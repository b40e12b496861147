//! `/status`: the gateway's peers, trunks and calls as JSON, and the
//! tables `iax2-gateway status` prints from it (in the spirit of
//! Asterisk's `iax2 show peers`, `show channels` and `show netstats`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use trunk_core::relay::{
    CallDirection, CallResult, CallState, Direction, DropReason, EntryKind, Kind,
};

use super::state::AdminState;
use crate::clock;

/// A peer counts as up when heard from this recently.
pub(crate) const UP_WINDOW_MS: u64 = 30_000;

/// The whole status document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// The build.
    pub version: String,
    /// The IAX2 listen address.
    pub listen: String,
    /// Seconds since the gateway started.
    pub uptime_s: u64,
    /// Worker threads.
    pub workers: usize,
    /// Whether every worker runs.
    pub healthy: bool,
    /// Call numbers in use, and how many there are.
    pub call_numbers_in_use: usize,
    /// See `call_numbers_in_use`.
    pub call_numbers_capacity: usize,
    /// The peers.
    pub peers: Vec<PeerStatus>,
    /// Registrations between gateways, both ways.
    #[serde(default)]
    pub registrations: Vec<RegistrationStatus>,
    /// Trunk traffic per peer that sends or receives trunk frames.
    pub trunks: Vec<TrunkStatus>,
    /// The calls in the table.
    pub calls: Vec<CallStatus>,
    /// Datagrams dropped, by reason (only reasons with drops).
    pub drops: Vec<(String, u64)>,
}

/// One peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    /// Its name.
    pub name: String,
    /// `pbx` or `gateway`.
    pub kind: String,
    /// Its address (`-` for a dynamic peer not heard from yet).
    pub addr: String,
    /// A PBX: `ok` (heard from in the last 30 s), `silent` (not since),
    /// or `unknown` (never). A gateway: what this gateway's own probes
    /// say: `ok`, `lagged` (answered slower than 2 s), `unreachable` (3
    /// probes missed in a row) or `unknown` (none answered yet).
    pub state: String,
    /// A PBX: the last round trip of a POKE/PING/LAGRQ relayed to it; a
    /// gateway: of this gateway's last answered probe; ms.
    pub rtt_ms: Option<f64>,
    /// Seconds since it was last heard from.
    pub last_seen_s: Option<f64>,
    /// Calls with a leg on it.
    pub calls: u32,
    /// Datagrams received from it.
    pub rx_packets: u64,
    /// Datagrams sent to it.
    pub tx_packets: u64,
    /// Calls that ended, answered.
    pub calls_answered: u64,
    /// Calls that ended any other way.
    pub calls_failed: u64,
}

/// A registration between this gateway and a gateway peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegistrationStatus {
    /// The gateway peer.
    pub peer: String,
    /// `registers` (this gateway registers with the peer) or `registrar`
    /// (the peer registers here).
    pub role: String,
    /// `registered`, `registering`, `rejected` or `unregistered`.
    pub state: String,
    /// The address the registrar sees: this gateway's NAT address
    /// (`registers`) or the peer's (`registrar`); `-` before one.
    pub addr: String,
    /// The lifetime granted, seconds.
    pub granted_s: Option<u64>,
    /// Accepted and refused registrations so far.
    pub accepted: u64,
    /// See `accepted`.
    pub rejected: u64,
    /// The last refusal's cause.
    pub cause: Option<String>,
    /// Times the peer's address changed within 10 minutes (registrar);
    /// more than a couple points at a NAT that keeps rebinding.
    pub recent_address_changes: u32,
    /// The link's own source port after a move to a fresh port
    /// (`registers`; `None`: the listen port).
    #[serde(default)]
    pub local_port: Option<u16>,
    /// Times the link moved to a fresh source port.
    #[serde(default)]
    pub moves: u64,
}

/// Trunk frames to and from one peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrunkStatus {
    /// The peer.
    pub peer: String,
    /// Frames sent.
    pub tx_frames: u64,
    /// Entries sent.
    pub tx_entries: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Entries received.
    pub rx_entries: u64,
}

/// One leg of a call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LegStatus {
    /// The peer.
    pub peer: String,
    /// The peer's call number, once known.
    pub call_number: Option<u16>,
    /// Voice frames received from it.
    pub frames: u64,
    /// Frames missing from their timestamps.
    pub gaps: u64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
}

/// One table entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallStatus {
    /// Our call number.
    pub call_number: u16,
    /// `call`, `poke`, `registration` or `other`.
    pub kind: String,
    /// `setup`, `ringing`/`up` (before/after ANSWER), or `ending`.
    pub state: String,
    /// End-to-end encryption.
    pub encrypted: bool,
    /// Seconds since it began.
    pub age_s: f64,
    /// The caller's leg, then the callee's.
    pub legs: [LegStatus; 2],
}

/// Builds the document.
pub fn collect(state: &AdminState) -> Status {
    let relay = &state.relay;
    let now = clock::now();
    let now_ms = now.as_millis();
    let peers_counts = state.peers();
    let views = relay.peer_views();
    let links = relay.link_views(now);
    let registrations = links.iter().flat_map(registration_status).collect();
    let mut peers = Vec::with_capacity(views.len());
    let mut trunks = Vec::new();
    for v in &views {
        let Some(c) = peers_counts.get(v.index) else {
            continue;
        };
        let last_seen_ms = (c.last_rx_ms > 0).then(|| now_ms.saturating_sub(c.last_rx_ms - 1));
        let kinds = |d| Kind::ALL.iter().map(|&k| c.packets(d, k)).sum::<u64>();
        let answered = CallDirection::ALL
            .iter()
            .map(|&d| c.calls(d, CallResult::Answered))
            .sum::<u64>();
        let all = CallDirection::ALL
            .iter()
            .flat_map(|&d| CallResult::ALL.iter().map(move |&r| (d, r)))
            .map(|(d, r)| c.calls(d, r))
            .sum::<u64>();
        let link = links.iter().find(|l| l.peer == v.name);
        let heard = match last_seen_ms {
            None => "unknown",
            Some(ms) if ms <= UP_WINDOW_MS => "ok",
            Some(_) => "silent",
        };
        #[allow(clippy::cast_precision_loss)]
        let relayed_rtt_ms = (c.rtt_at_ms > 0).then(|| c.rtt_us as f64 / 1e3);
        peers.push(PeerStatus {
            name: v.name.clone(),
            kind: v.kind.as_str().to_owned(),
            addr: v.addr.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            state: link.map_or(heard, |l| l.state.as_str()).to_owned(),
            rtt_ms: match link {
                Some(l) => l.rtt.map(|d| d.as_secs_f64() * 1e3),
                None => relayed_rtt_ms,
            },
            #[allow(clippy::cast_precision_loss)]
            last_seen_s: last_seen_ms.map(|ms| ms as f64 / 1e3),
            calls: v.active_calls,
            rx_packets: kinds(Direction::Rx),
            tx_packets: kinds(Direction::Tx),
            calls_answered: answered,
            calls_failed: all - answered,
        });
        let (tx_frames, rx_frames) = (
            c.packets(Direction::Tx, Kind::Trunk),
            c.packets(Direction::Rx, Kind::Trunk),
        );
        if v.trunk || tx_frames + rx_frames > 0 {
            trunks.push(TrunkStatus {
                peer: v.name.clone(),
                tx_frames,
                tx_entries: c.trunk_entries(Direction::Tx),
                rx_frames,
                rx_entries: c.trunk_entries(Direction::Rx),
            });
        }
    }
    let calls = relay
        .call_views(now)
        .into_iter()
        .map(|c| {
            let leg = |i: usize| {
                let l = &c.legs[i];
                LegStatus {
                    peer: l.peer.clone(),
                    call_number: l.their_call_number,
                    frames: l.media.frames,
                    gaps: l.media.gaps,
                    #[allow(clippy::cast_precision_loss)]
                    jitter_ms: l.media.jitter_us as f64 / 1e3,
                }
            };
            CallStatus {
                call_number: c.call_number,
                kind: match c.kind {
                    EntryKind::Call => "call",
                    EntryKind::Poke => "poke",
                    EntryKind::Registration => "registration",
                    EntryKind::Other => "other",
                }
                .to_owned(),
                state: match c.state {
                    CallState::Setup => "setup",
                    CallState::Up { answered: false } => "ringing",
                    CallState::Up { answered: true } => "up",
                    CallState::Ending => "ending",
                }
                .to_owned(),
                encrypted: c.encrypted,
                #[allow(clippy::cast_precision_loss)]
                age_s: c.age_ms as f64 / 1e3,
                legs: [leg(0), leg(1)],
            }
        })
        .collect();
    let totals = state.totals();
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        listen: state.listen.to_string(),
        uptime_s: state.started.elapsed().map_or(0, |d| d.as_secs()),
        workers: state.counters.len(),
        healthy: state.healthy(),
        call_numbers_in_use: relay.call_numbers_in_use(),
        call_numbers_capacity: relay.call_number_capacity(),
        peers,
        registrations,
        trunks,
        calls,
        drops: DropReason::ALL
            .iter()
            .map(|&r| (r.label().to_owned(), totals.drops(r)))
            .filter(|(_, n)| *n > 0)
            .collect(),
    }
}

/// The registrations of one gateway link, either way.
fn registration_status(l: &trunk_core::relay::LinkView) -> Vec<RegistrationStatus> {
    let addr =
        |a: Option<std::net::SocketAddr>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
    let mut out = Vec::new();
    if let Some(r) = &l.registration {
        out.push(RegistrationStatus {
            peer: l.peer.clone(),
            role: "registers".to_owned(),
            state: r.state.as_str().to_owned(),
            addr: addr(r.apparent),
            granted_s: r.granted.map(|d| d.as_secs()),
            accepted: r.accepted,
            rejected: r.rejected,
            cause: r.cause.clone(),
            recent_address_changes: 0,
            local_port: r.local_port,
            moves: r.moves,
        });
    }
    if let Some(r) = &l.registrar {
        out.push(RegistrationStatus {
            peer: l.peer.clone(),
            role: "registrar".to_owned(),
            state: if r.registered {
                "registered"
            } else if r.last_reject.is_some() && r.accepted == 0 {
                "rejected"
            } else {
                "unregistered"
            }
            .to_owned(),
            addr: addr(l.addr),
            granted_s: r.granted.map(|d| d.as_secs()),
            accepted: r.accepted,
            rejected: r.rejected.iter().sum(),
            cause: r.last_reject.map(|c| c.as_str().to_owned()),
            recent_address_changes: r.recent_address_changes,
            local_port: None,
            moves: 0,
        });
    }
    out
}

/// Lays out rows under a header, each column as wide as its widest cell.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, w) in cells.zip(&widths) {
            if !first {
                out.push_str("  ");
            }
            first = false;
            let _ = write!(out, "{cell:<w$}");
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    for r in rows {
        line(out, &mut r.iter().map(String::as_str));
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The document as text tables.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "iax2-gateway {} on {}: up {} s, {} workers{}, call numbers {} of {} in use\n",
        s.version,
        s.listen,
        s.uptime_s,
        s.workers,
        if s.healthy {
            ""
        } else {
            " (a worker has stopped)"
        },
        s.call_numbers_in_use,
        s.call_numbers_capacity
    );
    out.push_str("Peers\n");
    let rows: Vec<Vec<String>> = s
        .peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.kind.clone(),
                p.addr.clone(),
                p.state.clone(),
                opt(p.rtt_ms, 1),
                opt(p.last_seen_s, 1),
                p.calls.to_string(),
                p.calls_answered.to_string(),
                p.calls_failed.to_string(),
                p.rx_packets.to_string(),
                p.tx_packets.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "NAME",
            "KIND",
            "ADDRESS",
            "STATE",
            "RTT MS",
            "SEEN S AGO",
            "CALLS",
            "ANSWERED",
            "FAILED",
            "RX PKTS",
            "TX PKTS",
        ],
        &rows,
    );
    if !s.registrations.is_empty() {
        out.push_str("\nRegistrations\n");
        let rows: Vec<Vec<String>> = s
            .registrations
            .iter()
            .map(|r| {
                vec![
                    r.peer.clone(),
                    r.role.clone(),
                    r.state.clone(),
                    r.addr.clone(),
                    r.granted_s
                        .map_or_else(|| "-".to_owned(), |g| g.to_string()),
                    r.accepted.to_string(),
                    r.rejected.to_string(),
                    r.recent_address_changes.to_string(),
                    r.local_port
                        .map_or_else(|| "listen".to_owned(), |p| p.to_string()),
                    r.moves.to_string(),
                    r.cause.clone().unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "PEER",
                "ROLE",
                "STATE",
                "ADDRESS SEEN",
                "REFRESH S",
                "ACCEPTED",
                "REFUSED",
                "MOVES 10 MIN",
                "SOURCE PORT",
                "PORT MOVES",
                "LAST CAUSE",
            ],
            &rows,
        );
    }
    out.push_str("\nTrunks\n");
    let per = |e: u64, f: u64| {
        #[allow(clippy::cast_precision_loss)]
        opt((f > 0).then(|| e as f64 / f as f64), 2)
    };
    let rows: Vec<Vec<String>> = s
        .trunks
        .iter()
        .map(|t| {
            vec![
                t.peer.clone(),
                t.tx_frames.to_string(),
                t.tx_entries.to_string(),
                per(t.tx_entries, t.tx_frames),
                t.rx_frames.to_string(),
                t.rx_entries.to_string(),
                per(t.rx_entries, t.rx_frames),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "PEER",
            "FRAMES OUT",
            "ENTRIES OUT",
            "PER FRAME",
            "FRAMES IN",
            "ENTRIES IN",
            "PER FRAME",
        ],
        &rows,
    );
    let _ = writeln!(out, "\nCalls ({})", s.calls.len());
    let loss = |l: &LegStatus| {
        let expected = l.frames + l.gaps;
        #[allow(clippy::cast_precision_loss)]
        opt(
            (expected > 0).then(|| 100.0 * l.gaps as f64 / expected as f64),
            2,
        )
    };
    let leg = |l: &LegStatus| {
        format!(
            "{}/{}",
            l.peer,
            l.call_number
                .map_or_else(|| "-".to_owned(), |n| n.to_string())
        )
    };
    let rows: Vec<Vec<String>> = s
        .calls
        .iter()
        .map(|c| {
            let [a, b] = &c.legs;
            vec![
                c.call_number.to_string(),
                c.kind.clone(),
                c.state.clone(),
                format!("{:.0}", c.age_s),
                leg(a),
                leg(b),
                a.frames.to_string(),
                b.frames.to_string(),
                loss(a),
                loss(b),
                format!("{:.1}", a.jitter_ms),
                format!("{:.1}", b.jitter_ms),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "CALL",
            "KIND",
            "STATE",
            "AGE S",
            "CALLER",
            "CALLEE",
            "FROM CALLER",
            "FROM CALLEE",
            "LOSS% CALLER",
            "LOSS% CALLEE",
            "JITTER MS CALLER",
            "JITTER MS CALLEE",
        ],
        &rows,
    );
    if !s.drops.is_empty() {
        out.push_str("\nDrops\n");
        let rows: Vec<Vec<String>> = s
            .drops
            .iter()
            .map(|(r, n)| vec![r.clone(), n.to_string()])
            .collect();
        table(&mut out, &["REASON", "DATAGRAMS"], &rows);
    }
    out
}
