//! Registration, both roles (PROTOCOL.md 11.3), the way Asterisk does it.
//!
//! Registrant ([`Endpoint::register`]):
//!
//! ```text
//! REGREQ [USERNAME, REFRESH, CALLTOKEN(empty)]      ->
//!        <- CALLTOKEN from call 1 (not bound)
//! REGREQ again with the token, o0 i0, same number   ->
//!        <- REGAUTH [AUTHMETHODS MD5, CHALLENGE, USERNAME]
//! REGREQ [USERNAME, REFRESH, MD5 RESULT, CALLTOKEN(empty)] ->
//!        <- REGACK [USERNAME, DATETIME, REFRESH, APPARENT ADDR]  (or REGREJ)
//! ACK at once, the transaction is gone on both sides
//! ```
//!
//! and again at 5/6 of the granted REFRESH (with
//! [`EndpointConfig::reregister`](super::EndpointConfig::reregister)).
//! Registrar ([`EndpointConfig::registrar`](super::EndpointConfig::registrar)):
//! the call-token check exactly like NEW, a REGAUTH with a random decimal
//! challenge (also for unknown users, as Asterisk does so that usernames
//! cannot be probed), then REGACK or REGREJ (CAUSE "Registration Refused",
//! CAUSECODE 29), both retransmitted until ACKed. The registry keeps each
//! username's address until 10 s after its REFRESH runs out.
//!
//! A registration transaction is an ordinary call slot (sequencing,
//! retransmission and ACKs are the call code's), but it has no [`CallId`]
//! visible to the application: it never shows in
//! [`Endpoint::call_ids`], the call counters or the call events.

use std::net::SocketAddr;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::transmit::Transmit;
use trunk_core::wire::{
    ApparentAddr, AuthMethods, CallNumber, FullFrame, IaxDateTime, IaxSubclass, Ie, IeBlock,
    IeList, IeLookup, IeType,
};

use super::call::{send_unreliable, Call, Disposition};
use super::{cause_ies, cause_of, md5_response, CallId, CallState, Direction, Endpoint, Event};

/// REFRESH asked for and granted when a frame carries none (Asterisk's
/// default).
pub const DEFAULT_REFRESH: u16 = 60;
/// Seconds a registry entry outlives its REFRESH (Asterisk).
pub const EXPIRY_GRACE_SECS: u64 = 10;
/// CAUSE text of a refused registration.
pub const REFUSED_CAUSE: &str = "Registration Refused";
/// CAUSECODE of a refused registration (Q.850 29, facility rejected).
pub const REFUSED_CAUSE_CODE: u8 = 29;

/// Identifies one registration of the registrant role (it survives its
/// refreshes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(pub u64);

/// The registrar role's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Accepted peers: (username, MD5 secret).
    pub users: Vec<(String, String)>,
    /// Smallest REFRESH granted (Asterisk's `minregexpire`, default 60).
    pub min_refresh: u16,
    /// Largest REFRESH granted (Asterisk's `maxregexpire`, default 60).
    pub max_refresh: u16,
    /// The DATETIME every REGACK carries. The endpoint is sans-IO and reads
    /// no wall clock, so this is a fixed value the caller chooses (Asterisk
    /// sends its local time; registrants only display it).
    pub datetime: IaxDateTime,
}

impl RegistrarConfig {
    /// Asterisk's defaults (REFRESH clamped to 60..=60) for these users,
    /// with DATETIME fixed at 2024-01-01 00:00:00.
    pub fn new(users: Vec<(String, String)>) -> Self {
        Self {
            users,
            min_refresh: DEFAULT_REFRESH,
            max_refresh: DEFAULT_REFRESH,
            datetime: IaxDateTime {
                year: 2024,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            },
        }
    }

    fn secret_of(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, s)| s.as_str())
    }

    /// The REFRESH granted for a requested one (0 or absent: the minimum).
    pub fn clamp_refresh(&self, requested: Option<u16>) -> u16 {
        let lo = self.min_refresh.min(self.max_refresh);
        match requested {
            None | Some(0) => lo,
            Some(r) => r.clamp(lo, self.max_refresh.max(lo)),
        }
    }
}

/// Where a registration (registrant role) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationState {
    /// A REGREQ is in flight.
    Registering,
    /// The last REGREQ was acknowledged with REGACK.
    Registered,
    /// The last REGREQ drew REGREJ (or a stateless REJECT).
    Rejected,
    /// The last REGREQ went unanswered through every retransmission.
    TimedOut,
    /// The registrar asked for authentication we cannot give.
    NoAuthMethod,
    /// The registrar sent INVAL.
    Invalidated,
    /// A REGREL is in flight.
    Unregistering,
    /// REGREL acknowledged (or stopped locally): nothing more is sent.
    Unregistered,
}

/// Why a registration attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegistrationFailure {
    /// REGREJ or REJECT (stateless or not).
    Rejected {
        /// CAUSECODE (0 when absent).
        cause_code: u8,
        /// CAUSE (empty when absent).
        cause: String,
    },
    /// No reply through the whole retransmission schedule.
    Timeout,
    /// The registrar sent INVAL.
    Invalidated,
    /// REGAUTH offered no method we can answer (or had no challenge).
    NoAuthMethod,
}

/// A registration's state and counters (registrant role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    /// The registration.
    pub id: RegistrationId,
    /// Where REGREQs go.
    pub registrar: SocketAddr,
    /// USERNAME.
    pub username: String,
    /// REFRESH asked for.
    pub requested_refresh: u16,
    /// Current state.
    pub state: RegistrationState,
    /// REFRESH of the last REGACK.
    pub granted_refresh: Option<u16>,
    /// APPARENT ADDR of the last REGACK: where the registrar saw us.
    pub apparent_addr: Option<SocketAddr>,
    /// DATETIME of the last REGACK.
    pub datetime: Option<IaxDateTime>,
    /// When the last REGACK arrived.
    pub registered_at: Option<Instant>,
    /// When the next REGREQ goes out by itself.
    pub next_attempt: Option<Instant>,
    /// REGREQ transactions started (refreshes included).
    pub attempts: u64,
    /// REGACKs received.
    pub successes: u64,
    /// Failed attempts (any [`RegistrationFailure`]).
    pub failures: u64,
    /// The last failure.
    pub last_failure: Option<RegistrationFailure>,
}

/// One registry entry (registrar role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// USERNAME.
    pub username: String,
    /// The address the REGREQ came from (what the REGACK's APPARENT ADDR
    /// said).
    pub addr: SocketAddr,
    /// REFRESH granted.
    pub refresh: u16,
    /// When it was last (re-)registered.
    pub registered_at: Instant,
    /// When the entry goes: REFRESH + 10 s after `registered_at`.
    pub expires: Instant,
}

/// Registration counters of both roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationStats {
    /// Registrant: REGREQ/REGREL transactions started.
    pub attempts: u64,
    /// Registrant: REGACKs received.
    pub regacks_received: u64,
    /// Registrant: failed attempts.
    pub failures: u64,
    /// Registrar: REGREQ/REGREL transactions created (after the token).
    pub requests: u64,
    /// Registrar: REGAUTH challenges sent.
    pub challenges: u64,
    /// Registrar: REGACKs sent for REGREQ.
    pub accepted: u64,
    /// Registrar: REGACKs sent for REGREL.
    pub released: u64,
    /// Registrar: REGREJs sent (unknown user or wrong MD5).
    pub rejected: u64,
    /// Registrar: stateless REGREJs for a missing or bad call token.
    pub calltoken_rejects: u64,
    /// Registrar: entries that expired.
    pub expired: u64,
}

/// What a registration transaction is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegTxn {
    /// We sent the REGREQ (or REGREL with `release`).
    Registrant { reg: RegistrationId, release: bool },
    /// We received it.
    Registrar { release: bool },
}

/// Registrant bookkeeping of one registration.
#[derive(Debug)]
pub(crate) struct Registrant {
    pub(crate) status: RegistrationStatus,
    secret: String,
    /// The live transaction: (its private id, our call number).
    txn: Option<(CallId, u16)>,
}

/// Registry and registrant state of an endpoint.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    registrants: Vec<Registrant>,
    registry: Vec<RegistryEntry>,
    pub(crate) stats: RegistrationStats,
}

impl Endpoint {
    // -----------------------------------------------------------------
    // Public API
    // -----------------------------------------------------------------

    /// Registrant: registers `username` with `registrar` (PROTOCOL.md 11.3)
    /// asking for `refresh_s` seconds, and keeps re-registering at 5/6 of
    /// the REFRESH granted while
    /// [`EndpointConfig::reregister`](super::EndpointConfig::reregister) is
    /// on. The outcome arrives as [`Event::Registered`] or
    /// [`Event::RegistrationFailed`]. `None` when no call number is free.
    pub fn register<T: Transmit>(
        &mut self,
        now: Instant,
        registrar: SocketAddr,
        username: &str,
        secret: &str,
        refresh_s: u16,
        out: &mut T,
    ) -> Option<RegistrationId> {
        let id = RegistrationId(self.regs.registrants.len() as u64 + 1);
        self.regs.registrants.push(Registrant {
            status: RegistrationStatus {
                id,
                registrar,
                username: username.to_owned(),
                requested_refresh: refresh_s,
                state: RegistrationState::Registering,
                granted_refresh: None,
                apparent_addr: None,
                datetime: None,
                registered_at: None,
                next_attempt: None,
                attempts: 0,
                successes: 0,
                failures: 0,
                last_failure: None,
            },
            secret: secret.to_owned(),
            txn: None,
        });
        let started = self.start_reg_txn(id, now, false, out);
        self.prune_timers();
        if started {
            Some(id)
        } else {
            self.regs.registrants.pop();
            None
        }
    }

    /// Registrant: unregisters with a REGREL (same authentication) and stops
    /// refreshing. False when the registration is unknown or no call number
    /// is free.
    pub fn unregister<T: Transmit>(
        &mut self,
        now: Instant,
        reg: RegistrationId,
        out: &mut T,
    ) -> bool {
        let ok = self.start_reg_txn(reg, now, true, out);
        self.prune_timers();
        ok
    }

    /// Registrant: stops refreshing a registration without telling the
    /// registrar (as a PBX that goes away would); a transaction in flight is
    /// dropped. False when the registration is unknown.
    pub fn stop_registration(&mut self, now: Instant, reg: RegistrationId) -> bool {
        let Some(r) = self.registrant_mut(reg) else {
            return false;
        };
        r.status.next_attempt = None;
        r.status.state = RegistrationState::Unregistered;
        let txn = r.txn.take();
        if let Some((id, local)) = txn {
            self.drop_txn(id, local, now);
        }
        self.prune_timers();
        true
    }

    /// Registrant: a registration's state and counters.
    pub fn registration(&self, reg: RegistrationId) -> Option<&RegistrationStatus> {
        self.regs
            .registrants
            .iter()
            .find(|r| r.status.id == reg)
            .map(|r| &r.status)
    }

    /// Registrant: every registration, oldest first.
    pub fn registration_statuses(&self) -> Vec<&RegistrationStatus> {
        self.regs.registrants.iter().map(|r| &r.status).collect()
    }

    /// Registrar: the registry, by username (entries are removed
    /// [`EXPIRY_GRACE_SECS`] after their REFRESH runs out, when
    /// [`handle_timeout`](Self::handle_timeout) runs).
    pub fn registrations(&self) -> &[RegistryEntry] {
        &self.regs.registry
    }

    /// Registrar: the registry entry of `username`.
    pub fn registered(&self, username: &str) -> Option<&RegistryEntry> {
        self.regs.registry.iter().find(|e| e.username == username)
    }

    /// Registration transactions (either role) holding a call number
    /// right now. Scans every slot: for tests and reports, not per packet.
    pub fn registration_transactions(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|c| c.reg.is_some())
            .count()
    }

    /// Registration counters of both roles.
    pub fn registration_stats(&self) -> &RegistrationStats {
        &self.regs.stats
    }

    // -----------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------

    /// The earliest re-registration or registry expiry.
    pub(crate) fn reg_deadline(&self) -> Option<Instant> {
        let attempts = self
            .regs
            .registrants
            .iter()
            .filter_map(|r| r.status.next_attempt);
        let expiries = self.regs.registry.iter().map(|e| e.expires);
        attempts.chain(expiries).min()
    }

    /// Re-registers what is due and expires old registry entries.
    pub(crate) fn reg_timers(&mut self, now: Instant, out: &mut dyn Transmit) {
        let before = self.regs.registry.len();
        self.regs.registry.retain(|e| e.expires > now);
        self.regs.stats.expired += (before - self.regs.registry.len()) as u64;
        let due: Vec<RegistrationId> = self
            .regs
            .registrants
            .iter()
            .filter(|r| r.status.next_attempt.is_some_and(|t| t <= now))
            .map(|r| r.status.id)
            .collect();
        for id in due {
            if let Some(r) = self.registrant_mut(id) {
                r.status.next_attempt = None;
            }
            if !self.start_reg_txn(id, now, false, out) {
                // No call number: try again in a second.
                if let Some(r) = self.registrant_mut(id) {
                    r.status.next_attempt = Some(now + Duration::from_secs(1));
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // Registrant
    // -----------------------------------------------------------------

    fn registrant_mut(&mut self, reg: RegistrationId) -> Option<&mut Registrant> {
        find_mut(&mut self.regs.registrants, reg)
    }

    /// A call slot for a registration transaction: never in `by_id`, so it
    /// is invisible to the call API.
    fn new_txn(
        &mut self,
        local: CallNumber,
        peer: SocketAddr,
        direction: Direction,
        now: Instant,
        txn: RegTxn,
    ) -> Box<Call> {
        let id = CallId(self.next_id);
        self.next_id += 1;
        let mut call = Box::new(Call::new(
            id,
            local,
            peer,
            direction,
            self.cfg.codec,
            self.payload_len,
            now,
            String::new(),
        ));
        call.reg = Some(txn);
        call
    }

    /// Drops a live transaction without a word to the peer.
    fn drop_txn(&mut self, id: CallId, local: u16, now: Instant) {
        let slot = usize::from(local);
        if self.slots[slot].as_ref().is_some_and(|c| c.id == id) {
            if let Some(call) = self.slots[slot].take() {
                self.destroy(call, now);
            }
        }
    }

    /// Sends the first REGREQ (or REGREL) of a new transaction; a previous
    /// one still in flight is dropped.
    fn start_reg_txn(
        &mut self,
        reg: RegistrationId,
        now: Instant,
        release: bool,
        out: &mut dyn Transmit,
    ) -> bool {
        let Some(r) = self.registrant_mut(reg) else {
            return false;
        };
        let old = r.txn.take();
        if let Some((id, local)) = old {
            self.drop_txn(id, local, now);
        }
        let Some(local) = self.allocate_call_number() else {
            return false;
        };
        let reregister = self.cfg.reregister;
        let Some(r) = self.registrant_mut(reg) else {
            return false;
        };
        let ies = reg_ies(&r.status.username, r.status.requested_refresh, None);
        let registrar = r.status.registrar;
        r.status.attempts += 1;
        r.status.state = if release {
            RegistrationState::Unregistering
        } else {
            RegistrationState::Registering
        };
        // Asterisk schedules the next attempt when it sends (so a timeout or
        // REGREJ is retried too); a REGACK moves it to 5/6 of the grant.
        r.status.next_attempt =
            (reregister && !release).then(|| now + refresh_interval(r.status.requested_refresh));
        let mut call = self.new_txn(
            local,
            registrar,
            Direction::Outgoing,
            now,
            RegTxn::Registrant { reg, release },
        );
        call.request = if release {
            IaxSubclass::RegRel
        } else {
            IaxSubclass::RegReq
        };
        call.send_iax(now, out, call.request, &ies);
        call.new_ies = Some(ies);
        if let Some(r) = self.registrant_mut(reg) {
            r.txn = Some((call.id, local.get()));
        }
        self.regs.stats.attempts += 1;
        self.put_back(call, Disposition::Keep, now);
        true
    }

    /// Registrant: the transaction failed.
    fn reg_failed(&mut self, reg: RegistrationId, failure: RegistrationFailure) {
        self.regs.stats.failures += 1;
        if let Some(r) = self.registrant_mut(reg) {
            r.status.failures += 1;
            r.status.state = match &failure {
                RegistrationFailure::Rejected { .. } => RegistrationState::Rejected,
                RegistrationFailure::Timeout => RegistrationState::TimedOut,
                RegistrationFailure::Invalidated => RegistrationState::Invalidated,
                RegistrationFailure::NoAuthMethod => RegistrationState::NoAuthMethod,
            };
            r.status.last_failure = Some(failure.clone());
        }
        self.events
            .push_back(Event::RegistrationFailed { reg, failure });
    }

    /// A transaction's retransmissions ran out (`last`: it was our REGACK
    /// or REGREJ, which just ends it).
    pub(crate) fn reg_gave_up(&mut self, call: &Call, last: bool) {
        if let Some(RegTxn::Registrant { reg, .. }) = call.reg {
            if !last {
                self.reg_failed(reg, RegistrationFailure::Timeout);
            }
        }
    }

    /// A stateless REJECT or REGREJ (bad token, no call number) for our
    /// REGREQ: ACK it to call 1 (ignored, but Asterisk sends it) and fail.
    pub(crate) fn reg_stateless_reject(
        &mut self,
        call: &mut Call,
        f: &FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        let ies = IeBlock::new_checked(f.payload()).ok();
        let (cause_code, cause) = cause_of(ies.as_ref());
        send_unreliable(
            out,
            call.peer,
            call.local,
            CallNumber::STATELESS,
            f.timestamp(),
            f.iseqno(),
            f.oseqno().next(),
            IaxSubclass::Ack,
            &IeList::new(),
        );
        self.stats.acks_sent += 1;
        if let Some(RegTxn::Registrant { reg, .. }) = call.reg {
            self.reg_failed(reg, RegistrationFailure::Rejected { cause_code, cause });
        }
        Disposition::Destroy
    }

    /// A sequenced IAX frame on a registration transaction.
    pub(crate) fn on_reg_iax(
        &mut self,
        call: &mut Call,
        now: Instant,
        f: &FullFrame<&[u8]>,
        sub: IaxSubclass,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        match (call.reg.clone(), sub) {
            (_, IaxSubclass::Inval) => {
                self.stats.invals_received += 1;
                if let Some(RegTxn::Registrant { reg, .. }) = call.reg {
                    self.reg_failed(reg, RegistrationFailure::Invalidated);
                }
                Disposition::Destroy
            }
            (Some(RegTxn::Registrant { reg, .. }), IaxSubclass::RegAuth) => {
                self.answer_regauth(call, now, reg, ies, out)
            }
            (Some(RegTxn::Registrant { reg, release }), IaxSubclass::RegAck) => {
                self.stats.acks_sent += 1;
                call.send_ack(out, f.timestamp(), f.iseqno());
                self.on_regack(reg, release, now, ies);
                Disposition::Destroy
            }
            (Some(RegTxn::Registrant { reg, .. }), IaxSubclass::RegRej | IaxSubclass::Reject) => {
                self.stats.acks_sent += 1;
                call.send_ack(out, f.timestamp(), f.iseqno());
                let (cause_code, cause) = cause_of(Some(ies));
                self.reg_failed(reg, RegistrationFailure::Rejected { cause_code, cause });
                Disposition::Destroy
            }
            (Some(RegTxn::Registrar { .. }), IaxSubclass::RegReq | IaxSubclass::RegRel)
                if matches!(call.state, CallState::Calling | CallState::Authenticating) =>
            {
                self.registrar_request(call, now, ies, out);
                Disposition::Keep
            }
            (Some(RegTxn::Registrar { .. }), IaxSubclass::Ping) => {
                call.send_iax_ts(now, out, IaxSubclass::Pong, &IeList::new(), f.timestamp());
                Disposition::Keep
            }
            _ => Disposition::Keep,
        }
    }

    /// Registrant: REGAUTH -> REGREQ (or REGREL) with the MD5 RESULT and an
    /// empty CALLTOKEN, as Asterisk's `registry_rerequest` does.
    fn answer_regauth(
        &mut self,
        call: &mut Call,
        now: Instant,
        reg: RegistrationId,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        if call.auth_answered {
            return Disposition::Keep;
        }
        let Some(r) = self.registrant_mut(reg) else {
            return Disposition::Destroy;
        };
        let methods = ies.auth_methods().ok().flatten().unwrap_or_default();
        let challenge = ies.challenge().and_then(|c| core::str::from_utf8(c).ok());
        match challenge {
            Some(ch) if methods.contains(AuthMethods::MD5) => {
                let result = md5_response(ch, &r.secret);
                let reply = reg_ies(
                    &r.status.username,
                    r.status.requested_refresh,
                    Some(&result),
                );
                call.auth_answered = true;
                call.set_state(CallState::Authenticating);
                call.send_iax(now, out, call.request, &reply);
                Disposition::Keep
            }
            _ => {
                self.reg_failed(reg, RegistrationFailure::NoAuthMethod);
                Disposition::Destroy
            }
        }
    }

    /// Registrant: REGACK arrived (already ACKed).
    fn on_regack(&mut self, reg: RegistrationId, release: bool, now: Instant, ies: &IeBlock<'_>) {
        self.regs.stats.regacks_received += 1;
        let reregister = self.cfg.reregister;
        let Some(r) = find_mut(&mut self.regs.registrants, reg) else {
            return;
        };
        r.txn = None;
        if release {
            r.status.state = RegistrationState::Unregistered;
            r.status.next_attempt = None;
            self.events.push_back(Event::Unregistered { reg });
            return;
        }
        let refresh = ies
            .refresh()
            .ok()
            .flatten()
            .filter(|&s| s > 0)
            .unwrap_or(DEFAULT_REFRESH);
        let apparent_addr = ies.apparent_addr().ok().flatten().map(|a| a.addr);
        r.status.state = RegistrationState::Registered;
        r.status.successes += 1;
        r.status.granted_refresh = Some(refresh);
        r.status.apparent_addr = apparent_addr;
        r.status.datetime = ies.datetime().ok().flatten();
        r.status.registered_at = Some(now);
        r.status.next_attempt = reregister.then(|| now + refresh_interval(refresh));
        self.events.push_back(Event::Registered {
            reg,
            refresh,
            apparent_addr,
        });
    }

    /// Clears the registrant's pointer to a transaction that is going.
    pub(crate) fn forget_txn(&mut self, call: &Call) {
        if let Some(RegTxn::Registrant { reg, .. }) = call.reg {
            let id = call.id;
            if let Some(r) = self.registrant_mut(reg) {
                if r.txn.is_some_and(|(t, _)| t == id) {
                    r.txn = None;
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // Registrar
    // -----------------------------------------------------------------

    /// A REGREQ or REGREL for no known call: the call-token check exactly
    /// like NEW, then a transaction.
    pub(crate) fn on_regreq(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) {
        let Ok(ies) = IeBlock::new_checked(f.payload()) else {
            self.stats.malformed += 1;
            return;
        };
        if f.source_call_number().get() <= 1 {
            self.stats.malformed += 1;
            return;
        }
        let refused = || cause_ies(REFUSED_CAUSE, REFUSED_CAUSE_CODE);
        if self.cfg.registrar.is_none() {
            // Not a registrar: refuse at once, without state.
            self.stateless(out, from, &f, IaxSubclass::RegRej, &refused());
            return;
        }
        if self.cfg.require_calltoken {
            let secs = now.as_millis() / 1000;
            match ies.calltoken() {
                Some([]) => {
                    self.stats.calltoken_challenges += 1;
                    let token = self.tokens.mint(from, secs);
                    let reply = Ie::calltoken(token.as_bytes())
                        .map(|ie| IeList::new().with(ie))
                        .unwrap_or_default();
                    self.stateless(out, from, &f, IaxSubclass::CallToken, &reply);
                    return;
                }
                Some(token) if self.tokens.verify(token, from, secs) => {}
                Some(_) | None => {
                    self.stats.calltoken_rejects += 1;
                    self.regs.stats.calltoken_rejects += 1;
                    let ies = cause_ies("Call token required or invalid", REFUSED_CAUSE_CODE);
                    self.stateless(out, from, &f, IaxSubclass::RegRej, &ies);
                    return;
                }
            }
        }
        let Some(local) = self.allocate_call_number() else {
            self.stateless(out, from, &f, IaxSubclass::RegRej, &refused());
            return;
        };
        let release = f.iax_subclass() == Some(IaxSubclass::RegRel);
        let mut call = self.new_txn(
            local,
            from,
            Direction::Incoming,
            now,
            RegTxn::Registrar { release },
        );
        self.regs.stats.requests += 1;
        self.bind_peer_call(&mut call, f.source_call_number());
        let d = self.on_call_frame(&mut call, now, f, out);
        self.put_back(call, d, now);
    }

    /// Registrar: a REGREQ/REGREL in sequence on a transaction. Without an
    /// MD5 RESULT to check: REGAUTH; otherwise REGACK or REGREJ.
    fn registrar_request(
        &mut self,
        call: &mut Call,
        now: Instant,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) {
        let Some(rc) = self.cfg.registrar.as_ref() else {
            return;
        };
        let user = ies.username().ok().flatten().unwrap_or("").to_owned();
        let result = ies.md5_result().ok().flatten();
        let (Some(challenge), Some(result)) = (call.challenge.as_deref(), result) else {
            // Unknown users get a plausible challenge too (Asterisk).
            let challenge = self.rng.range(0, 0x7fff_ffff).to_string();
            let mut reply = IeList::new().with(Ie::auth_methods(AuthMethods::MD5));
            if let Ok(ie) = Ie::string(IeType::Challenge, &challenge) {
                reply.push(ie);
            }
            if let Ok(ie) = Ie::string(IeType::Username, &user) {
                reply.push(ie);
            }
            call.challenge = Some(challenge);
            call.set_state(CallState::Authenticating);
            self.regs.stats.challenges += 1;
            call.send_iax(now, out, IaxSubclass::RegAuth, &reply);
            return;
        };
        let ok = rc
            .secret_of(&user)
            .is_some_and(|s| result.eq_ignore_ascii_case(&md5_response(challenge, s)));
        call.set_state(CallState::Ending);
        if !ok {
            self.stats.auth_failures += 1;
            self.regs.stats.rejected += 1;
            let reply = cause_ies(REFUSED_CAUSE, REFUSED_CAUSE_CODE);
            call.send_iax(now, out, IaxSubclass::RegRej, &reply);
            return;
        }
        let release = matches!(call.reg, Some(RegTxn::Registrar { release: true }));
        let refresh = if release {
            0
        } else {
            rc.clamp_refresh(ies.refresh().ok().flatten())
        };
        let mut reply = IeList::new();
        if let Ok(ie) = Ie::string(IeType::Username, &user) {
            reply.push(ie);
        }
        reply
            .push(Ie::datetime(rc.datetime))
            .push(Ie::u16(IeType::Refresh, refresh))
            .push(Ie::apparent_addr(ApparentAddr::new(call.peer)));
        let registry = &mut self.regs.registry;
        registry.retain(|e| e.username != user);
        if release {
            self.regs.stats.released += 1;
        } else {
            self.regs.stats.accepted += 1;
            registry.push(RegistryEntry {
                username: user,
                addr: call.peer,
                refresh,
                registered_at: now,
                expires: now + Duration::from_secs(u64::from(refresh) + EXPIRY_GRACE_SECS),
            });
        }
        call.send_iax(now, out, IaxSubclass::RegAck, &reply);
    }
}

fn find_mut(v: &mut [Registrant], reg: RegistrationId) -> Option<&mut Registrant> {
    v.iter_mut().find(|r| r.status.id == reg)
}

/// 5/6 of a REFRESH, when Asterisk re-registers.
fn refresh_interval(refresh: u16) -> Duration {
    Duration::from_millis(u64::from(refresh) * 1000 * 5 / 6)
}

/// REGREQ IEs in Asterisk's order: USERNAME, REFRESH, (MD5 RESULT), empty
/// CALLTOKEN last.
fn reg_ies(username: &str, refresh: u16, md5: Option<&str>) -> IeList {
    let mut ies = IeList::new();
    if let Ok(ie) = Ie::string(IeType::Username, username) {
        ies.push(ie);
    }
    ies.push(Ie::u16(IeType::Refresh, refresh));
    if let Some(ie) = md5.and_then(|m| Ie::string(IeType::Md5Result, m).ok()) {
        ies.push(ie);
    }
    ies.push(Ie::empty(IeType::CallToken));
    ies
}
