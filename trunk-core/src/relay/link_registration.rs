//! Registration between gateways (PROTOCOL.md 11.3, MD5 as in 14.2).
//!
//! The gateway behind a NAT (`register: true` on its far gateway peer)
//! registers; the far gateway, whose peer for it is `host: dynamic` with a
//! `secret`, is the registrar. The exchange runs between the two
//! gateways' reserved link call numbers ([`LINK_PROBE`]), never through
//! the call table:
//!
//! ```text
//! REGREQ  s=32767 d=0     o0 i0 [USERNAME, REFRESH]            ->
//!      <- REGAUTH s=32767 d=32767 o0 i1 [AUTHMETHODS=MD5, CHALLENGE, USERNAME]
//! REGREQ  s=32767 d=32767 o1 i1 [USERNAME, REFRESH, MD5 RESULT] ->
//!      <- REGACK  o1 i2 [USERNAME, REFRESH, APPARENT ADDR]   (or REGREJ)
//! ACK     o2 i2                                                 ->
//! ```
//!
//! The registrar keeps no call state: a few recent challenges per peer,
//! each good for [`CHALLENGE_LIFETIME`]. An accepted registration from a
//! new address moves the peer there, and every live call with a leg on
//! that peer with it. A link POKE from an address the registrar does not
//! know draws an INVAL to the link number, which tells a registered
//! gateway whose NAT mapping changed to register again at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use core::time::Duration;

use iax2_config::{Peer, PeerHost, PeerKind};

use super::callno::{SplitMix64, LINK_PROBE};
use super::counters::{DropReason, Kind};
use super::peers::{PeerId, PeerState};
use super::replies::Header;
use super::{Relay, RelayWorker};
use crate::peering::auth::{self, SignerRng};
use crate::peering::registration::{RegistrationClient, RegistrationSettings, RegistrationState};
use crate::time::Instant;
use crate::transmit::Transmit;
use crate::wire::{
    ApparentAddr, AuthMethods, CallNumber, FullFrame, IaxSubclass, Ie, IeBlock, IeList, IeLookup,
    IeType,
};

/// How long a challenge may be answered.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(10);
/// Challenges kept per peer: a spoofed REGREQ cannot push out the one a
/// real registration is answering.
const CHALLENGES_KEPT: usize = 4;
/// The registrar keeps a registration this long past its lifetime
/// (Asterisk: 10 s), so a refresh a little late loses nothing.
const GRACE: Duration = Duration::from_secs(10);
/// The shortest lifetime granted.
const MIN_REFRESH: Duration = Duration::from_secs(10);
/// The window in which address changes count towards "inconsistent NAT".
pub const ADDRESS_CHANGE_WINDOW: Duration = Duration::from_secs(600);
/// The Q.850 cause of a refused registration (Asterisk's).
const REFUSED_CAUSE: &str = "Registration Refused";
const REFUSED_CAUSECODE: u8 = 29;

/// Why a registration was refused (the `cause` label of
/// `iax2_gateway_registrations_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectCause {
    /// No dynamic gateway peer with a secret has that USERNAME (no reply).
    UnknownPeer,
    /// The peer's permit/deny rules refuse the source (no reply).
    Acl,
    /// The MD5 or RSA RESULT matches no challenge still open (a wrong
    /// secret or key).
    BadSecret,
    /// The far registrar refused ours (REGREJ), with its cause.
    Refused,
    /// The registrar offered no method this gateway can answer.
    NoMethod,
}

impl RejectCause {
    /// Every cause, for metrics.
    pub const ALL: [Self; 5] = [
        Self::UnknownPeer,
        Self::Acl,
        Self::BadSecret,
        Self::Refused,
        Self::NoMethod,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownPeer => "unknown_peer",
            Self::Acl => "acl",
            Self::BadSecret => "bad_secret",
            Self::Refused => "refused",
            Self::NoMethod => "no_method",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::UnknownPeer => 0,
            Self::Acl => 1,
            Self::BadSecret => 2,
            Self::Refused => 3,
            Self::NoMethod => 4,
        }
    }
}

/// A gateway peer's registration state, on either side.
#[derive(Debug)]
pub(crate) struct LinkRegistration {
    /// This gateway registers with the peer (`register: true`).
    pub(crate) client: Option<RegistrationClient>,
    /// The peer registers with this gateway (`host: dynamic` + `secret`).
    pub(crate) registrar: RegistrarState,
    /// Times the gateway moved the link to a fresh source port, and the
    /// port it uses now (`None`: the listen port).
    pub(crate) moves: u64,
    pub(crate) local_port: Option<u16>,
    /// Blinding for this gateway's RSA signatures (`outkey`).
    signer: SignerRng,
}

/// What the registrar side keeps per peer.
#[derive(Debug)]
pub(crate) struct RegistrarState {
    challenges: VecDeque<(u32, Instant)>,
    rng: SplitMix64,
    /// When the registration in force lapses (lifetime + grace).
    pub(crate) until: Option<Instant>,
    /// The lifetime granted last.
    pub(crate) granted: Option<Duration>,
    pub(crate) accepted: u64,
    /// When the peer's address changed, within [`ADDRESS_CHANGE_WINDOW`].
    pub(crate) changes: VecDeque<Instant>,
    pub(crate) address_changes: u64,
    /// Calls moved to a new address of the peer.
    pub(crate) calls_moved: u64,
    /// Refusals, by [`RejectCause`], and the last one.
    pub(crate) rejected: [u64; 5],
    pub(crate) last_reject: Option<RejectCause>,
}

impl LinkRegistration {
    pub(crate) fn new(config: &Peer, seed: u64) -> Self {
        Self {
            client: client_for(config, seed),
            registrar: RegistrarState {
                challenges: VecDeque::with_capacity(CHALLENGES_KEPT),
                rng: SplitMix64(seed ^ 0x005e_ed0f_c4a1),
                until: None,
                granted: None,
                accepted: 0,
                changes: VecDeque::new(),
                address_changes: 0,
                calls_moved: 0,
                rejected: [0; 5],
                last_reject: None,
            },
            moves: 0,
            local_port: None,
            signer: SignerRng::new(seed ^ 0x0051_6e00_b11d),
        }
    }

    /// Takes a reloaded configuration: a registration whose settings did
    /// not change keeps its state.
    pub(crate) fn reconfigure(&mut self, config: &Peer, seed: u64) {
        let wanted = settings_of(config);
        let same = match (&self.client, wanted) {
            (Some(c), Some(w)) => c.settings() == w,
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.client = client_for(config, seed);
        }
    }

    fn reject(&mut self, cause: RejectCause) {
        let r = &mut self.registrar;
        r.rejected[cause.index()] += 1;
        r.last_reject = Some(cause);
    }
}

fn settings_of(config: &Peer) -> Option<RegistrationSettings> {
    config.register.as_ref()?;
    let (retry_min, retry_max) = config.retry_range();
    Some(RegistrationSettings {
        refresh: config.refresh(),
        retry_min,
        retry_max,
    })
}

fn client_for(config: &Peer, seed: u64) -> Option<RegistrationClient> {
    settings_of(config).map(|s| RegistrationClient::new(s, seed))
}

/// Whether `p` is a peer that registers with this gateway: a dynamic
/// gateway peer with a `secret` or `inkeys` to check it by.
pub(crate) fn is_registrant(p: &PeerState) -> bool {
    !p.retired
        && p.config.kind == PeerKind::Gateway
        && p.config.host == PeerHost::Dynamic
        && (p.config.secret.is_some() || !p.config.inkeys.is_empty())
}

/// The registration view of one gateway peer (see
/// [`Relay::link_views`](super::Relay::link_views)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationView {
    /// Where this gateway's registration with the peer stands.
    pub state: RegistrationState,
    /// The lifetime the registrar granted.
    pub granted: Option<Duration>,
    /// The address the registrar saw this gateway at (its NAT's public
    /// address and port).
    pub apparent: Option<SocketAddr>,
    /// The registrar's refusal cause, while refused.
    pub cause: Option<String>,
    /// Attempts, acceptances and refusals so far.
    pub attempts: u64,
    /// Accepted registrations.
    pub accepted: u64,
    /// Refused registrations.
    pub rejected: u64,
    /// Times the link moved to a fresh source port.
    pub moves: u64,
    /// The link's source port (`None`: the listen port).
    pub local_port: Option<u16>,
}

/// The registrar's view of a peer that registers with this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarView {
    /// A registration is in force.
    pub registered: bool,
    /// The lifetime granted last.
    pub granted: Option<Duration>,
    /// Registrations accepted.
    pub accepted: u64,
    /// Refusals by cause ([`RejectCause::ALL`] order).
    pub rejected: [u64; 5],
    /// The last refusal's cause.
    pub last_reject: Option<RejectCause>,
    /// Times the peer's address changed.
    pub address_changes: u64,
    /// Address changes within the last [`ADDRESS_CHANGE_WINDOW`]: more
    /// than a couple means a NAT that keeps rebinding (inconsistent NAT).
    pub recent_address_changes: u32,
    /// Calls moved to a new address of the peer.
    pub calls_moved: u64,
}

impl LinkRegistration {
    pub(crate) fn client_view(&self) -> Option<RegistrationView> {
        self.client.as_ref().map(|c| {
            let (attempts, accepted, rejected) = c.totals();
            RegistrationView {
                state: c.state(),
                granted: c.granted(),
                apparent: c.apparent(),
                cause: c.cause().map(str::to_owned),
                attempts,
                accepted,
                rejected,
                moves: self.moves,
                local_port: self.local_port,
            }
        })
    }

    pub(crate) fn registrar_view(&self, now: Instant) -> RegistrarView {
        let r = &self.registrar;
        RegistrarView {
            registered: r.until.is_some_and(|u| now < u),
            granted: r.granted,
            accepted: r.accepted,
            rejected: r.rejected,
            last_reject: r.last_reject,
            address_changes: r.address_changes,
            recent_address_changes: u32::try_from(
                r.changes
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < ADDRESS_CHANGE_WINDOW)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            calls_moved: r.calls_moved,
        }
    }
}

fn link_number() -> CallNumber {
    CallNumber::from_field(LINK_PROBE)
}

/// Writes a full IAX frame of `header` and `ies` and sends it to `to`.
fn send_frame<T: Transmit>(out: &mut T, to: SocketAddr, header: Header, ies: &IeList) {
    let buf = out.buffer();
    buf[..12].copy_from_slice(&header.bytes());
    if let Ok(n) = ies.emit(&mut buf[12..]) {
        out.commit(to, 12 + n);
    }
}

fn string_ie(ie: IeType, value: &str) -> Option<Ie> {
    Ie::string(ie, value).ok()
}

fn refresh_secs(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

impl RelayWorker {
    /// Worker 0, on its housekeeping turn: lapses registrations and sends
    /// the REGREQs that are due. `unreachable`: the link's probes just
    /// went unanswered, so register again now.
    pub(super) fn register_link<T: Transmit>(
        &mut self,
        now: Instant,
        id: PeerId,
        to: SocketAddr,
        unreachable: bool,
        out: &mut T,
    ) {
        let gen = Arc::clone(&self.gen);
        let peer = gen.peers.get(id);
        let Some(username) = peer.config.register.as_ref() else {
            return;
        };
        let mut reg = peer.registration.lock();
        let Some(client) = reg.client.as_mut() else {
            return;
        };
        let _ = client.handle_timeout(now);
        if unreachable {
            client.retry_now(now);
        }
        if !client.due(now) {
            return;
        }
        client.attempt_started(now);
        let refresh = client.settings().refresh;
        drop(reg);
        let mut ies = IeList::new();
        ies.extend(string_ie(IeType::Username, username.as_str()));
        ies.push(Ie::u16(IeType::Refresh, refresh_secs(refresh)));
        let header = Header {
            source: link_number(),
            dest: CallNumber::UNKNOWN,
            timestamp: stamp(now),
            oseqno: 0,
            iseqno: 0,
            subclass: IaxSubclass::RegReq,
        };
        self.send_link(out, id, to, header, &ies);
    }

    fn send_link<T: Transmit>(
        &mut self,
        out: &mut T,
        peer: PeerId,
        to: SocketAddr,
        header: Header,
        ies: &IeList,
    ) {
        send_frame(out, to, header, ies);
        self.counters.replies_sent.incr();
        self.count_tx(peer, Kind::Full, 12 + ies.buffer_len());
        self.counters.tx_full.incr();
    }

    /// The registrar's answers to our REGREQ, and an INVAL from a registrar
    /// that no longer knows our address. `true`: taken here.
    pub(super) fn handle_registration_answer<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        from: SocketAddr,
        frame: &FullFrame<&[u8]>,
        iax: Option<IaxSubclass>,
        out: &mut T,
    ) -> bool {
        let gen = Arc::clone(&self.gen);
        let state = gen.peers.get(peer);
        let Some(username) = state.config.register.as_ref() else {
            return false;
        };
        let ies = IeBlock::new_checked(frame.payload()).ok();
        let ack = |worker: &mut Self, out: &mut T| {
            let header = Header {
                source: link_number(),
                dest: frame.source_call_number(),
                timestamp: frame.timestamp(),
                oseqno: frame.iseqno().0,
                iseqno: frame.oseqno().0.wrapping_add(1),
                subclass: IaxSubclass::Ack,
            };
            worker.send_link(out, peer, from, header, &IeList::new());
        };
        match iax {
            Some(IaxSubclass::RegAuth) => {
                let methods = ies
                    .as_ref()
                    .and_then(|i| i.auth_methods().ok().flatten())
                    .unwrap_or_default();
                let challenge = ies.as_ref().and_then(IeLookup::challenge);
                // RSA when both sides have keys for it, else MD5 (the
                // order Asterisk's client uses).
                let answer = challenge.and_then(|challenge| {
                    let rsa = methods.contains(AuthMethods::RSA);
                    let md5 = methods.contains(AuthMethods::MD5);
                    match (&state.config.outkey, &state.config.secret) {
                        (Some(key), _) if rsa => {
                            let mut reg = state.registration.lock();
                            let result = auth::rsa_result(key.key(), &mut reg.signer, challenge);
                            string_ie(IeType::RsaResult, &result)
                        }
                        (_, Some(secret)) if md5 => string_ie(
                            IeType::Md5Result,
                            &auth::md5_result(challenge, secret.expose()),
                        ),
                        _ => None,
                    }
                });
                let Some(answer) = answer else {
                    let mut reg = state.registration.lock();
                    if let Some(c) = reg.client.as_mut() {
                        c.rejected(
                            now,
                            "the registrar offers no method this gateway has a key for",
                        );
                    }
                    reg.reject(RejectCause::NoMethod);
                    return true;
                };
                let Some(refresh) = state
                    .registration
                    .lock()
                    .client
                    .as_ref()
                    .map(|c| c.settings().refresh)
                else {
                    return true;
                };
                let mut reply = IeList::new();
                reply.extend(string_ie(IeType::Username, username.as_str()));
                reply.push(Ie::u16(IeType::Refresh, refresh_secs(refresh)));
                reply.push(answer);
                let header = Header {
                    source: link_number(),
                    dest: frame.source_call_number(),
                    timestamp: stamp(now),
                    oseqno: frame.iseqno().0,
                    iseqno: frame.oseqno().0.wrapping_add(1),
                    subclass: IaxSubclass::RegReq,
                };
                self.send_link(out, peer, from, header, &reply);
                true
            }
            Some(IaxSubclass::RegAck) => {
                ack(self, out);
                let granted = ies
                    .as_ref()
                    .and_then(|i| i.refresh().ok().flatten())
                    .map_or(Duration::from_secs(60), |s| {
                        Duration::from_secs(u64::from(s))
                    });
                let apparent = ies
                    .as_ref()
                    .and_then(|i| i.apparent_addr().ok().flatten())
                    .map(|a| a.addr);
                if let Some(c) = state.registration.lock().client.as_mut() {
                    c.accepted(now, granted, apparent);
                }
                true
            }
            Some(IaxSubclass::RegRej) => {
                ack(self, out);
                let cause = ies
                    .as_ref()
                    .and_then(|i| i.cause().ok().flatten())
                    .unwrap_or(REFUSED_CAUSE)
                    .to_owned();
                let mut reg = state.registration.lock();
                if let Some(c) = reg.client.as_mut() {
                    c.rejected(now, &cause);
                }
                reg.reject(RejectCause::Refused);
                true
            }
            Some(IaxSubclass::Inval) => {
                // Only a registration we hold can have been forgotten; one
                // under way or refused keeps its backoff.
                if let Some(c) = state.registration.lock().client.as_mut() {
                    if c.state() == RegistrationState::Registered {
                        c.retry_now(now);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// A REGREQ from a gateway's link number, from any address: the
    /// registrar side. Returns whether it was one.
    pub(super) fn handle_link_regreq<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        frame: &FullFrame<&[u8]>,
        out: &mut T,
    ) -> bool {
        if frame.source_call_number() != link_number()
            || frame.iax_subclass() != Some(IaxSubclass::RegReq)
        {
            return false;
        }
        let gen = Arc::clone(&self.gen);
        let Ok(ies) = IeBlock::new_checked(frame.payload()) else {
            self.counters.count_drop(DropReason::Malformed);
            return true;
        };
        let username = ies.username().ok().flatten();
        let found = username.and_then(|name| {
            gen.peers
                .iter()
                .find(|(_, p)| is_registrant(p) && p.config.name.as_str() == name)
        });
        let Some((id, peer)) = found else {
            // No reply: a stranger learns nothing, and gets nothing to
            // amplify. The registrar's metrics show it.
            self.counters.count_drop(DropReason::Stranger);
            self.counters.registrations_unknown_peer.incr();
            return true;
        };
        if !peer.config.permits(from.ip()) {
            peer.registration.lock().reject(RejectCause::Acl);
            self.counters.count_drop(DropReason::Acl);
            return true;
        }
        let reply_header = |subclass: IaxSubclass, step: u8| Header {
            source: link_number(),
            dest: frame.source_call_number(),
            timestamp: frame.timestamp(),
            oseqno: step,
            iseqno: frame.oseqno().0.wrapping_add(1),
            subclass,
        };
        let md5 = ies.md5_result().ok().flatten();
        let rsa = ies.rsa_result().ok().flatten();
        if md5.is_none() && rsa.is_none() {
            // First step: a challenge.
            let challenge = {
                let mut reg = peer.registration.lock();
                let r = &mut reg.registrar;
                let c = u32::try_from(r.rng.next() % 1_000_000_000).unwrap_or(0);
                while r.challenges.len() >= CHALLENGES_KEPT {
                    r.challenges.pop_front();
                }
                r.challenges.push_back((c, now));
                c
            };
            let mut methods = AuthMethods::default();
            if peer.config.secret.is_some() {
                methods = methods | AuthMethods::MD5;
            }
            if !peer.config.inkeys.is_empty() {
                methods = methods | AuthMethods::RSA;
            }
            let mut reply = IeList::new();
            reply.push(Ie::auth_methods(methods));
            reply.extend(string_ie(IeType::Challenge, &challenge.to_string()));
            reply.extend(string_ie(IeType::Username, peer.config.name.as_str()));
            self.send_link(out, id, from, reply_header(IaxSubclass::RegAuth, 0), &reply);
            return true;
        }
        let matched = {
            let mut reg = peer.registration.lock();
            let r = &mut reg.registrar;
            r.challenges
                .retain(|(_, t)| now.saturating_duration_since(*t) < CHALLENGE_LIFETIME);
            let hit = r.challenges.iter().position(|(c, _)| {
                let challenge = c.to_string();
                let by_rsa = rsa.is_some_and(|result| {
                    auth::rsa_matches(
                        peer.config.inkeys.iter().map(|k| k.key()),
                        challenge.as_bytes(),
                        result,
                    )
                });
                let by_md5 = match (md5, &peer.config.secret) {
                    (Some(result), Some(secret)) => {
                        auth::md5_matches(challenge.as_bytes(), secret.expose(), result)
                    }
                    _ => false,
                };
                by_rsa || by_md5
            });
            if let Some(i) = hit {
                r.challenges.remove(i);
            }
            hit.is_some()
        };
        if !matched {
            peer.registration.lock().reject(RejectCause::BadSecret);
            let mut reply = IeList::new();
            reply.extend(string_ie(IeType::Cause, REFUSED_CAUSE));
            reply.push(Ie::u8(IeType::CauseCode, REFUSED_CAUSECODE));
            self.send_link(out, id, from, reply_header(IaxSubclass::RegRej, 1), &reply);
            return true;
        }
        let asked = ies
            .refresh()
            .ok()
            .flatten()
            .map_or(peer.config.refresh(), |s| Duration::from_secs(u64::from(s)));
        let granted = asked.min(peer.config.refresh()).max(MIN_REFRESH);
        let moved_from = peer.addr().filter(|old| *old != from);
        let first = peer.addr().is_none();
        {
            let mut reg = peer.registration.lock();
            let r = &mut reg.registrar;
            r.until = Some(now + granted + GRACE);
            r.granted = Some(granted);
            r.accepted += 1;
            if moved_from.is_some() {
                r.address_changes += 1;
                r.changes.push_back(now);
                while r
                    .changes
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= ADDRESS_CHANGE_WINDOW)
                {
                    r.changes.pop_front();
                }
            }
        }
        if moved_from.is_some() || first {
            let moved = self.relocate_peer(id, from);
            peer.registration.lock().registrar.calls_moved += moved;
        }
        let mut reply = IeList::new();
        reply.extend(string_ie(IeType::Username, peer.config.name.as_str()));
        reply.push(Ie::u16(IeType::Refresh, refresh_secs(granted)));
        reply.push(Ie::apparent_addr(ApparentAddr::new(from)));
        self.send_link(out, id, from, reply_header(IaxSubclass::RegAck, 1), &reply);
        true
    }

    /// A full frame from a link number at an address no peer has: a
    /// REGREQ (the registrar side), or a link POKE from a registered
    /// gateway whose address changed, which is told with an INVAL to
    /// register again. `true`: taken here.
    #[cold]
    pub(super) fn handle_stranger_link_frame<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut T,
    ) -> bool {
        let Ok(frame) = FullFrame::new_checked(datagram) else {
            return false;
        };
        if frame.source_call_number() != link_number() {
            return false;
        }
        if self.handle_link_regreq(now, from, &frame, out) {
            return true;
        }
        let any_registrant = self.gen.peers.iter().any(|(_, p)| is_registrant(p));
        if any_registrant && frame.iax_subclass() == Some(IaxSubclass::Poke) {
            // The same size as the POKE: nothing to amplify.
            let header = Header {
                source: link_number(),
                dest: link_number(),
                timestamp: frame.timestamp(),
                oseqno: 0,
                iseqno: frame.oseqno().0.wrapping_add(1),
                subclass: IaxSubclass::Inval,
            };
            send_frame(out, from, header, &IeList::new());
            self.counters.replies_sent.incr();
            self.counters.tx_datagrams.incr();
            self.counters.tx_full.incr();
        }
        self.counters.count_drop(DropReason::Stranger);
        true
    }

    /// Moves peer `id` to `to`, and every call with a leg on it: the
    /// registrar accepted it there. Returns the calls moved.
    pub(super) fn relocate_peer(&self, id: PeerId, to: SocketAddr) -> u64 {
        self.gen.peers.learn(id, to);
        let mut moved = 0;
        for ours in self.relay.table.occupied_numbers() {
            let Some(slot) = self.relay.table.slot(ours) else {
                continue;
            };
            let mut guard = slot.call.write();
            if let Some(call) = guard.as_mut() {
                let mut any = false;
                for leg in call
                    .legs
                    .iter_mut()
                    .filter(|l| l.peer == id && l.addr != to)
                {
                    leg.addr = to;
                    any = true;
                }
                moved += u64::from(any);
            }
        }
        moved
    }
}

impl Relay {
    /// The gateway moved its link to gateway peer `name` to source port
    /// `port` (a new NAT mapping): its registration goes again and the
    /// link is probed on the next housekeeping turn. `false`: no such peer.
    pub fn link_moved(&self, name: &str, now: Instant, port: u16) -> bool {
        let gen = self.current();
        let Some(id) = gen.peers.by_name(name) else {
            return false;
        };
        let peer = gen.peers.get(id);
        {
            let mut reg = peer.registration.lock();
            reg.moves += 1;
            reg.local_port = Some(port);
            if let Some(c) = reg.client.as_mut() {
                c.retry_now(now);
            }
        }
        peer.link.lock().next = None;
        true
    }
}

/// A timestamp for our own link frames: milliseconds, wrapping.
fn stamp(now: Instant) -> u32 {
    u32::try_from(now.as_millis() % (1 << 32)).unwrap_or(0)
}
