//! Stopping without cutting calls: the drain that follows SIGTERM, and
//! what the service manager is told along the way.
//!
//! A drain sets the relay's draining flag
//! ([`Relay::set_draining`](trunk_core::relay::Relay::set_draining)): every
//! NEW is refused at once (REJECT, cause 42) while the calls in the table
//! go on. [`GatewayHandle::drain`] then waits until no call is left in the
//! table or the deadline (`timeouts.drain`) has passed; the caller stops
//! the workers after it. Calls that ended linger in the table for
//! `timeouts.hangup_linger` so their last ACKs pass, so a drain ends that
//! long after the last hangup. POKE and registration exchanges are not
//! waited for ([`Relay::call_entries`](trunk_core::relay::Relay::call_entries)):
//! PBXs qualifying through the gateway would keep the table from emptying,
//! and cutting one costs a PBX a retry.
//!
//! [`notify`] speaks systemd's `sd_notify` protocol (`Type=notify`):
//! `READY=1` once every worker runs, `STATUS=...` lines, `STOPPING=1` when
//! the drain begins. Without `NOTIFY_SOCKET` (not under systemd) it does
//! nothing.

use std::time::{Duration, Instant};

use crate::runtime::GatewayHandle;

/// How often a drain looks at the call table.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainEnd {
    /// The call table emptied.
    Drained,
    /// The deadline passed with calls left.
    Deadline,
    /// The caller cut the wait short (a second SIGTERM, or SIGINT).
    Interrupted,
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Calls in the table (setting up, up or lingering) when the drain
    /// began.
    pub calls_at_start: usize,
    /// Calls still in the table when the wait ended: 0 after a complete
    /// drain; these are cut when the workers stop.
    pub calls_left: usize,
    /// How long the wait took.
    pub waited: Duration,
    /// Why it ended.
    pub end: DrainEnd,
}

impl GatewayHandle {
    /// Starts a drain: from now on the relay refuses new calls (REJECT
    /// with cause 42) and lets the calls in its table go on. Returns how
    /// many calls the table holds. Idempotent.
    pub fn begin_drain(&self) -> usize {
        self.relay().set_draining(true);
        self.relay().call_entries()
    }

    /// Whether a drain has begun.
    pub fn is_draining(&self) -> bool {
        self.relay().is_draining()
    }

    /// Drains: refuses new calls and waits until no call is left in the
    /// table or `deadline` has passed. The workers keep running; stop them
    /// with [`stop`](Self::stop) afterwards.
    pub fn drain(&self, deadline: Duration) -> DrainOutcome {
        self.drain_until(deadline, |_| false)
    }

    /// As [`drain`](Self::drain), asking `interrupt` every 50 ms with the
    /// calls left; when it returns `true` the wait ends at once
    /// ([`DrainEnd::Interrupted`]). The binary reads its pending signals
    /// there, and updates systemd's status line.
    pub fn drain_until(
        &self,
        deadline: Duration,
        mut interrupt: impl FnMut(usize) -> bool,
    ) -> DrainOutcome {
        let calls_at_start = self.begin_drain();
        let start = Instant::now();
        let end_at = start + deadline;
        loop {
            let calls_left = self.relay().call_entries();
            let end = if calls_left == 0 {
                Some(DrainEnd::Drained)
            } else if interrupt(calls_left) {
                Some(DrainEnd::Interrupted)
            } else if Instant::now() >= end_at {
                Some(DrainEnd::Deadline)
            } else {
                None
            };
            if let Some(end) = end {
                return DrainOutcome {
                    calls_at_start,
                    calls_left,
                    waited: start.elapsed(),
                    end,
                };
            }
            let left = end_at.saturating_duration_since(Instant::now());
            std::thread::sleep(DRAIN_POLL.min(left));
        }
    }
}

/// Telling systemd how the gateway is doing (`sd_notify`).
pub mod notify {
    use sd_notify::NotifyState;

    /// Every worker runs: `READY=1` and a status line.
    pub fn ready(workers: usize) {
        send(&[
            NotifyState::Ready,
            NotifyState::Status(&format!("relaying, {workers} workers")),
        ]);
    }

    /// The drain began: `STOPPING=1` and a status line.
    pub fn stopping(calls: usize) {
        send(&[
            NotifyState::Stopping,
            NotifyState::Status(&draining_status(calls)),
        ]);
    }

    /// A reload begins: `RELOADING=1` with the monotonic time systemd
    /// wants beside it.
    pub fn reloading() {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// The reload is over (done or refused): `READY=1` again.
    pub fn reloaded(workers: usize) {
        ready(workers);
    }

    /// A status line alone.
    pub fn status(text: &str) {
        send(&[NotifyState::Status(text)]);
    }

    /// The status line while draining.
    pub fn draining_status(calls: usize) -> String {
        format!("draining {calls} calls")
    }

    /// Sends `states`; a no-op without `NOTIFY_SOCKET`. A failure is
    /// logged, never fatal: the gateway relays whether or not systemd
    /// hears of it.
    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
    }
}
