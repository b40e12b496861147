//! The impairment model: for each datagram offered at an instant, whether
//! it is dropped (and why) or when it is released, and whether a copy
//! follows it. No clock, no sockets: the caller passes the time, so a
//! virtual clock replays a run exactly.
//!
//! Order of the stages, as on a real path: burst loss (Gilbert-Elliott),
//! then independent loss, then the rate limit (a token bucket whose
//! backlog is a bounded queue; past it the datagram is dropped), then the
//! propagation delay with jitter, plus an extra hold-back for the
//! datagrams picked for reordering. A duplicate leaves the rate limit with
//! its original and gets a delay and jitter of its own.

use std::collections::VecDeque;
use std::time::Duration;

use crate::rng::SplitMix64;
use trunk_core::time::Instant;

/// Gilbert-Elliott burst loss: a two-state chain stepped once per
/// datagram; in the bad state datagrams are lost with `loss_bad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Probability of going from the good state to the bad one.
    pub p_good_bad: f64,
    /// Probability of going from the bad state back to the good one.
    pub p_bad_good: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
}

/// A rate limit: datagrams per second, or bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Datagrams per second.
    Packets(u64),
    /// Bytes (of UDP payload) per second.
    Bytes(u64),
}

/// The shape of the jitter added to the fixed delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitterShape {
    /// Uniform over `0..=jitter`.
    #[default]
    Uniform,
    /// Bell-shaped over `0..=jitter` (the mean of four uniforms: centred
    /// on `jitter / 2`, standard deviation about `jitter / 7`, bounded).
    Normal,
}

/// What one direction of the path does to datagrams. Probabilities are
/// fractions (0.05 is 5%).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Independent loss probability.
    pub loss: f64,
    /// Burst loss, if any.
    pub burst: Option<Burst>,
    /// Probability that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    /// The extra delay of a held-back datagram.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Largest jitter added to the delay.
    pub jitter: Duration,
    /// How the jitter is spread.
    pub jitter_shape: JitterShape,
    /// Rate limit, if any.
    pub rate: Option<Rate>,
    /// Token bucket depth: how much may pass at once after an idle spell,
    /// in datagrams or bytes as `rate` counts (at least one datagram
    /// always fits).
    pub bucket: u64,
    /// Datagrams that may wait for the rate limit; more are dropped.
    pub rate_queue: usize,
}

impl Default for Settings {
    /// A clean path: nothing lost, delayed or limited; a reorder delay of
    /// 50 ms and a rate queue of 1000 datagrams for when those are set.
    fn default() -> Self {
        Self {
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(50),
            duplicate: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_shape: JitterShape::Uniform,
            rate: None,
            bucket: 0,
            rate_queue: 1000,
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// Independent loss.
    Loss,
    /// Loss in the bad state of the burst model.
    Burst,
    /// The rate limit's queue was full.
    Rate,
    /// The delay queue was full (counted by [`crate::impair::Link`]).
    Queue,
}

/// The fate of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Never delivered.
    Drop(DropCause),
    /// Delivered at `at`; a second copy at `copy` if duplicated.
    Deliver {
        /// When it leaves the far end of the path.
        at: Instant,
        /// When its duplicate does, if it has one.
        copy: Option<Instant>,
        /// Whether it was picked for reordering (held back).
        held_back: bool,
    },
}

/// The seeded model of one direction of a path.
#[derive(Debug, Clone)]
pub struct Model {
    settings: Settings,
    rng: SplitMix64,
    /// Gilbert-Elliott state.
    bad: bool,
    /// Token bucket as GCRA: the theoretical arrival time of the next
    /// datagram, microseconds.
    tat_us: f64,
    /// Departure times of the datagrams waiting for the rate limit.
    backlog: VecDeque<Instant>,
}

impl Model {
    /// A model of `settings`, its decisions drawn from `seed`.
    pub fn new(settings: &Settings, seed: u64) -> Self {
        Self {
            settings: settings.clone(),
            rng: SplitMix64::new(seed),
            bad: false,
            tat_us: 0.0,
            backlog: VecDeque::with_capacity(settings.rate_queue.min(65_536)),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the burst model is in its bad state.
    pub fn in_burst(&self) -> bool {
        self.bad
    }

    /// Decides the fate of a datagram of `len` bytes offered at `now`.
    /// Calls must come in order of `now` (the rate limit's clock).
    pub fn decide(&mut self, now: Instant, len: usize) -> Fate {
        if let Some(b) = self.settings.burst {
            self.bad = if self.bad {
                !self.rng.chance(b.p_bad_good)
            } else {
                self.rng.chance(b.p_good_bad)
            };
            if self.bad && self.rng.chance(b.loss_bad) {
                return Fate::Drop(DropCause::Burst);
            }
        }
        if self.rng.chance(self.settings.loss) {
            return Fate::Drop(DropCause::Loss);
        }
        let Some(depart) = self.shape(now, len) else {
            return Fate::Drop(DropCause::Rate);
        };
        let held_back = self.rng.chance(self.settings.reorder);
        let mut at = depart + self.settings.delay + self.jitter();
        if held_back {
            at += self.settings.reorder_delay;
        }
        let copy = self
            .rng
            .chance(self.settings.duplicate)
            .then(|| depart + self.settings.delay + self.jitter());
        Fate::Deliver {
            at,
            copy,
            held_back,
        }
    }

    /// The rate limit: when the datagram leaves it, `None` when its queue
    /// is full.
    fn shape(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.settings.rate else {
            return Some(now);
        };
        let (per_s, cost) = match rate {
            Rate::Packets(n) => (n, 1),
            Rate::Bytes(n) => (n, len.max(1) as u64),
        };
        let per_s = per_s.max(1) as f64;
        while self.backlog.front().is_some_and(|&t| t <= now) {
            self.backlog.pop_front();
        }
        // GCRA: a datagram conforms once the theoretical arrival time is
        // within the bucket's tolerance of it.
        let now_us = now.as_micros() as f64;
        let tolerance_us = self.settings.bucket.saturating_sub(cost) as f64 * 1e6 / per_s;
        let tat = self.tat_us.max(now_us);
        let depart_us = (tat - tolerance_us).max(now_us);
        if depart_us > now_us {
            if self.backlog.len() >= self.settings.rate_queue {
                return None;
            }
            self.backlog
                .push_back(Instant::from_micros(depart_us.ceil() as u64));
        }
        self.tat_us = tat + cost as f64 * 1e6 / per_s;
        Some(Instant::from_micros(depart_us.ceil() as u64))
    }

    fn jitter(&mut self) -> Duration {
        let max = self.settings.jitter.as_micros() as f64;
        if max <= 0.0 {
            return Duration::ZERO;
        }
        let x = match self.settings.jitter_shape {
            JitterShape::Uniform => self.rng.unit(),
            JitterShape::Normal => (0..4).map(|_| self.rng.unit()).sum::<f64>() / 4.0,
        };
        Duration::from_micros((x * max) as u64)
    }
}
