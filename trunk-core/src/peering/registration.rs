//! A gateway's registration with its registrar (the far gateway), sans-IO:
//! when the next REGREQ is due, what the registrar's answers do to it.
//!
//! A failed or unanswered attempt is retried after a [`Backoff`] wait
//! (exponential, jittered, capped), never in a fixed short loop; an
//! accepted one is refreshed at 5/6 of the lifetime granted, as Asterisk
//! does (PROTOCOL.md 11.3). Recovery (a dead link, a fresh source port, a
//! registrar that no longer knows our address) asks for a new attempt at
//! once, but never more than one per [`MIN_GAP`].

use core::time::Duration;
use std::net::SocketAddr;

use super::backoff::Backoff;
use crate::time::Instant;

/// The shortest time between two attempts, whatever asks for them.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered, no attempt made yet (or the last one lapsed).
    Unregistered,
    /// An attempt is under way and nothing accepted it yet.
    Registering,
    /// Accepted, and the lifetime granted has not run out.
    Registered,
    /// The registrar refused the last attempt.
    Rejected,
}

impl RegistrationState {
    /// The label used in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Rejected => "rejected",
        }
    }
}

/// Settings of one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationSettings {
    /// The lifetime asked for (REFRESH).
    pub refresh: Duration,
    /// The first retry waits about this long.
    pub retry_min: Duration,
    /// No retry waits longer than this.
    pub retry_max: Duration,
}

/// One registration's client side.
#[derive(Debug, Clone)]
pub struct RegistrationClient {
    settings: RegistrationSettings,
    state: RegistrationState,
    backoff: Backoff,
    /// When the next attempt is due (`None`: at once).
    next: Option<Instant>,
    /// When the last attempt started.
    last_attempt: Option<Instant>,
    /// When the lifetime granted runs out.
    expires: Option<Instant>,
    granted: Option<Duration>,
    apparent: Option<SocketAddr>,
    cause: Option<String>,
    attempts: u64,
    accepted: u64,
    rejected: u64,
}

impl RegistrationClient {
    /// A registration not yet attempted; `seed` seeds its retry jitter.
    pub fn new(settings: RegistrationSettings, seed: u64) -> Self {
        Self {
            settings,
            state: RegistrationState::Unregistered,
            backoff: Backoff::new(settings.retry_min, settings.retry_max, seed),
            next: None,
            last_attempt: None,
            expires: None,
            granted: None,
            apparent: None,
            cause: None,
            attempts: 0,
            accepted: 0,
            rejected: 0,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> RegistrationSettings {
        self.settings
    }

    /// Whether an attempt is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// An attempt (the first REGREQ) left at `now`. Until an answer comes,
    /// the next attempt waits the backoff.
    pub fn attempt_started(&mut self, now: Instant) {
        self.attempts += 1;
        self.last_attempt = Some(now);
        if self.state != RegistrationState::Registered {
            self.state = RegistrationState::Registering;
        }
        self.next = Some(now + self.backoff.next_delay());
    }

    /// The registrar accepted, granting `granted` (REFRESH) and seeing us
    /// at `apparent` (APPARENT ADDR).
    pub fn accepted(&mut self, now: Instant, granted: Duration, apparent: Option<SocketAddr>) {
        let granted = granted.max(MIN_GAP);
        self.state = RegistrationState::Registered;
        self.backoff.reset();
        self.accepted += 1;
        self.granted = Some(granted);
        self.expires = Some(now + granted);
        self.apparent = apparent;
        self.cause = None;
        self.next = Some(now + (granted * 5 / 6).max(MIN_GAP));
    }

    /// The registrar refused, with `cause`. The next attempt waits the
    /// backoff, counted from now.
    pub fn rejected(&mut self, now: Instant, cause: &str) {
        self.state = RegistrationState::Rejected;
        self.rejected += 1;
        self.expires = None;
        self.cause = Some(cause.to_owned());
        self.next = Some(now + self.backoff.next_delay());
    }

    /// Something says the registration must be made again now: the link
    /// died, moved to a fresh port, or the registrar does not know our
    /// address. Never sooner than [`MIN_GAP`] after the last attempt.
    pub fn retry_now(&mut self, now: Instant) {
        let earliest = self.last_attempt.map_or(now, |t| t + MIN_GAP);
        let at = earliest.max(now);
        if self.next.is_none_or(|next| next > at) {
            self.next = Some(at);
        }
    }

    /// Lets a lapsed registration go. Returns the new state if it changed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<RegistrationState> {
        match self.expires {
            Some(t) if now >= t && self.state == RegistrationState::Registered => {
                self.state = RegistrationState::Unregistered;
                self.expires = None;
                Some(self.state)
            }
            _ => None,
        }
    }

    /// Where the registration stands.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// The lifetime the registrar granted last.
    pub fn granted(&self) -> Option<Duration> {
        self.granted
    }

    /// The address the registrar saw us at, last time it accepted.
    pub fn apparent(&self) -> Option<SocketAddr> {
        self.apparent
    }

    /// Why the registrar refused the last attempt.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// When the next attempt is due.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next
    }

    /// Attempts started, accepted and rejected so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        (self.attempts, self.accepted, self.rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn client() -> RegistrationClient {
        RegistrationClient::new(
            RegistrationSettings {
                refresh: secs(60),
                retry_min: secs(1),
                retry_max: secs(60),
            },
            7,
        )
    }

    #[test]
    fn accepted_registrations_refresh_at_five_sixths_of_the_lifetime() {
        let mut c = client();
        let t = Instant::from_millis(5_000);
        assert!(c.due(t), "the first attempt is due at once");
        c.attempt_started(t);
        assert_eq!(c.state(), RegistrationState::Registering);
        assert!(!c.due(t));
        c.accepted(t + Duration::from_millis(30), secs(60), None);
        assert_eq!(c.state(), RegistrationState::Registered);
        let refresh = t + Duration::from_millis(30) + secs(50);
        assert_eq!(c.next_attempt(), Some(refresh));
        assert!(!c.due(refresh - Duration::from_millis(1)));
        assert!(c.due(refresh));
        // Unrefreshed, it lapses when the lifetime runs out.
        assert_eq!(c.handle_timeout(refresh), None);
        assert_eq!(
            c.handle_timeout(t + Duration::from_millis(30) + secs(60)),
            Some(RegistrationState::Unregistered)
        );
    }

    #[test]
    fn unanswered_attempts_back_off_to_the_cap_and_never_loop_fast() {
        let mut c = client();
        let mut now = Instant::from_millis(0);
        let end = now + secs(600);
        while now < end {
            if c.due(now) {
                c.attempt_started(now);
            }
            now += Duration::from_millis(100);
        }
        let attempts = c.totals().0;
        assert!(
            attempts < 30,
            "{attempts} attempts in 10 minutes against a dead registrar"
        );
        let waits: Vec<Duration> = {
            let mut c = client();
            (0..12)
                .map(|_| {
                    c.attempt_started(Instant::from_millis(0));
                    c.next_attempt()
                        .map_or(Duration::ZERO, |n| n - Instant::from_millis(0))
                })
                .collect()
        };
        assert!(waits[0] <= secs(1) && waits[0] >= Duration::from_millis(500));
        assert!(waits.windows(2).take(5).all(|w| w[1] >= w[0] / 2));
        assert!(waits.iter().all(|w| *w <= secs(60)));
        assert!(waits[11] >= secs(30), "capped waits stay at least cap/2");
    }

    #[test]
    fn a_rejection_waits_the_backoff_and_keeps_its_cause() {
        let mut c = client();
        let t = Instant::from_millis(0);
        c.attempt_started(t);
        c.rejected(t + secs(1), "Registration Refused");
        assert_eq!(c.state(), RegistrationState::Rejected);
        assert_eq!(c.cause(), Some("Registration Refused"));
        let next = c.next_attempt().unwrap();
        assert!(next > t + secs(1), "not at once after a refusal");
        assert_eq!(c.totals(), (1, 0, 1));
    }

    #[test]
    fn retry_now_is_immediate_but_never_within_a_second_of_the_last_attempt() {
        let mut c = client();
        let t = Instant::from_millis(10_000);
        c.attempt_started(t);
        c.accepted(t, secs(60), None);
        c.retry_now(t + Duration::from_millis(200));
        assert_eq!(c.next_attempt(), Some(t + MIN_GAP));
        c.retry_now(t + secs(5));
        assert_eq!(c.next_attempt(), Some(t + MIN_GAP), "an earlier one stays");
        c.attempt_started(t + MIN_GAP);
        c.accepted(t + MIN_GAP, secs(60), None);
        c.retry_now(t + secs(30));
        assert_eq!(c.next_attempt(), Some(t + secs(30)));
        assert!(c.due(t + secs(30)));
    }
}
