//! A gateway link's liveness from its probes (POKE/PONG, LAGRQ/LAGRP).
//!
//! One probe is outstanding at a time. An answer gives the round trip and
//! makes the link OK, or LAGGED when the round trip passes the configured
//! limit; a probe unanswered within its timeout is a miss, and after the
//! configured number of misses in a row the link is UNREACHABLE, which is
//! what triggers recovery (a fresh source port and a new registration).
//! Any answer brings it back.

use core::time::Duration;

use crate::time::Instant;

/// What the probes say about a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No probe answered yet.
    Unknown,
    /// The last probe was answered within the lag limit.
    Ok,
    /// The last probe was answered, slower than the lag limit.
    Lagged,
    /// The last probes went unanswered.
    Unreachable,
}

impl LinkState {
    /// The label used in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ok => "ok",
            Self::Lagged => "lagged",
            Self::Unreachable => "unreachable",
        }
    }
}

/// How a link is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessSettings {
    /// A round trip longer than this makes the link LAGGED.
    pub lagged_rtt: Duration,
    /// How long a probe may go unanswered before it counts as a miss.
    pub probe_timeout: Duration,
    /// Misses in a row that make the link UNREACHABLE (at least 1).
    pub misses_unreachable: u32,
}

impl Default for LivenessSettings {
    /// Asterisk's `qualify` judges a peer lagged past 2 s; three probes
    /// lost in a row rule out a single dropped datagram.
    fn default() -> Self {
        Self {
            lagged_rtt: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(3),
            misses_unreachable: 3,
        }
    }
}

/// One link's liveness.
#[derive(Debug, Clone)]
pub struct Liveness {
    settings: LivenessSettings,
    state: LinkState,
    rtt: Option<Duration>,
    misses: u32,
    /// The probe waiting for its answer: its id and when it left.
    outstanding: Option<(u32, Instant)>,
}

impl Liveness {
    /// A link not yet probed.
    pub fn new(settings: LivenessSettings) -> Self {
        Self {
            settings,
            state: LinkState::Unknown,
            rtt: None,
            misses: 0,
            outstanding: None,
        }
    }

    /// A probe with `id` (its timestamp, or its sequence) left at `now`.
    /// A probe still outstanding is replaced and counts as a miss.
    pub fn probe_sent(&mut self, now: Instant, id: u32) -> Option<LinkState> {
        let change = if self.outstanding.is_some() {
            self.miss()
        } else {
            None
        };
        self.outstanding = Some((id, now));
        change
    }

    /// The answer to probe `id` came at `now`. Returns the new state if
    /// it changed. An answer to another probe (late, or never sent) shows
    /// the link carries traffic but gives no round trip.
    pub fn answered(&mut self, now: Instant, id: u32) -> Option<LinkState> {
        let before = self.state;
        match self.outstanding {
            Some((sent_id, sent)) if sent_id == id => {
                let rtt = now.saturating_duration_since(sent);
                self.outstanding = None;
                self.rtt = Some(rtt);
                self.misses = 0;
                self.state = if rtt > self.settings.lagged_rtt {
                    LinkState::Lagged
                } else {
                    LinkState::Ok
                };
            }
            _ => {
                if matches!(self.state, LinkState::Unreachable | LinkState::Unknown) {
                    self.misses = 0;
                    self.state = LinkState::Ok;
                }
            }
        }
        (self.state != before).then_some(self.state)
    }

    /// When probe `id` left, if it is the one outstanding.
    pub fn outstanding_since(&self, id: u32) -> Option<Instant> {
        self.outstanding
            .and_then(|(sent_id, sent)| (sent_id == id).then_some(sent))
    }

    /// When the outstanding probe times out, if one is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding
            .map(|(_, sent)| sent + self.settings.probe_timeout)
    }

    /// Counts the outstanding probe as missed if its time has come.
    /// Returns the new state if it changed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<LinkState> {
        match self.poll_timeout() {
            Some(deadline) if deadline <= now => {
                self.outstanding = None;
                self.miss()
            }
            _ => None,
        }
    }

    fn miss(&mut self) -> Option<LinkState> {
        self.misses = self.misses.saturating_add(1);
        let before = self.state;
        if self.misses >= self.settings.misses_unreachable.max(1) {
            self.state = LinkState::Unreachable;
        }
        (self.state != before).then_some(self.state)
    }

    /// Takes new settings (a reload); the state and counts stay.
    pub fn set_settings(&mut self, settings: LivenessSettings) {
        self.settings = settings;
    }

    /// The link's state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// The last measured round trip.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Probes missed in a row.
    pub fn misses(&self) -> u32 {
        self.misses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn link() -> Liveness {
        Liveness::new(LivenessSettings {
            lagged_rtt: ms(500),
            probe_timeout: ms(1000),
            misses_unreachable: 3,
        })
    }

    #[test]
    fn answers_make_the_link_ok_or_lagged_with_its_round_trip() {
        let mut l = link();
        let t = Instant::from_millis(1000);
        assert_eq!(l.state(), LinkState::Unknown);
        assert_eq!(l.probe_sent(t, 1), None);
        assert_eq!(l.poll_timeout(), Some(t + ms(1000)));
        assert_eq!(l.answered(t + ms(40), 1), Some(LinkState::Ok));
        assert_eq!((l.rtt(), l.poll_timeout()), (Some(ms(40)), None));
        l.probe_sent(t + ms(2000), 2);
        assert_eq!(l.answered(t + ms(2700), 2), Some(LinkState::Lagged));
        assert_eq!(l.rtt(), Some(ms(700)));
        l.probe_sent(t + ms(4000), 3);
        assert_eq!(l.answered(t + ms(4100), 3), Some(LinkState::Ok));
    }

    #[test]
    fn misses_in_a_row_make_it_unreachable_and_any_answer_brings_it_back() {
        let mut l = link();
        let mut now = Instant::from_millis(0);
        l.probe_sent(now, 1);
        l.answered(now + ms(10), 1);
        let mut changes = Vec::new();
        for id in 2..=4 {
            now += ms(2000);
            l.probe_sent(now, id);
            assert_eq!(l.handle_timeout(now + ms(999)), None, "not yet");
            if let Some(s) = l.handle_timeout(now + ms(1000)) {
                changes.push((id, s));
            }
        }
        assert_eq!(changes, vec![(4, LinkState::Unreachable)]);
        assert_eq!(l.misses(), 3);
        // A late answer to an old probe shows traffic again.
        assert_eq!(l.answered(now + ms(1500), 2), Some(LinkState::Ok));
        assert_eq!(
            (l.misses(), l.rtt()),
            (0, Some(ms(10))),
            "no round trip from it"
        );
    }

    #[test]
    fn a_probe_sent_over_an_unanswered_one_counts_a_miss() {
        let mut l = link();
        let t = Instant::from_millis(0);
        l.probe_sent(t, 1);
        l.probe_sent(t + ms(100), 2);
        l.probe_sent(t + ms(200), 3);
        assert_eq!(l.probe_sent(t + ms(300), 4), Some(LinkState::Unreachable));
        // Only the last probe's answer gives a round trip.
        assert_eq!(l.answered(t + ms(350), 4), Some(LinkState::Ok));
        assert_eq!(l.rtt(), Some(ms(50)));
    }
}
