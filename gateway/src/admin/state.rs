//! What the admin endpoints read: the relay and every worker's counters,
//! shared with the workers, read only at scrape or status time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use trunk_core::relay::{
    CounterSnapshot, Counters, Histogram, HistogramSnapshot, PeerSnapshot, Relay, SETUP_BUCKETS,
};

/// The gateway as the admin endpoints see it.
pub struct AdminState {
    pub(crate) relay: Arc<Relay>,
    pub(crate) counters: Vec<Arc<Counters>>,
    /// One per worker: false once its thread has ended.
    pub(crate) alive: Vec<Arc<AtomicBool>>,
    pub(crate) listen: SocketAddr,
    pub(crate) started: SystemTime,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// The last reload was refused.
    last_failed: AtomicBool,
    /// Unix seconds of the last successful load (the start, then reloads).
    last_load: AtomicU64,
    /// What `POST /reload` runs (set by the binary, which knows the file).
    reload: Mutex<Option<ReloadHook>>,
}

/// Reloads the configuration; a report or an error, as text.
pub type ReloadHook = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("listen", &self.listen)
            .field("workers", &self.counters.len())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AdminState {
    pub(crate) fn new(
        relay: Arc<Relay>,
        counters: Vec<Arc<Counters>>,
        alive: Vec<Arc<AtomicBool>>,
        listen: SocketAddr,
    ) -> Self {
        Self {
            relay,
            counters,
            alive,
            listen,
            started: SystemTime::now(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            last_load: AtomicU64::new(unix_now()),
            reload: Mutex::new(None),
        }
    }

    /// Sets what `POST /reload` runs.
    pub fn set_reload_hook(&self, hook: ReloadHook) {
        *self.reload.lock() = Some(hook);
    }

    /// Runs the reload hook; `None` when none is set.
    pub(crate) fn run_reload(&self) -> Option<Result<String, String>> {
        self.reload.lock().as_ref().map(|hook| hook())
    }

    /// Workers.
    pub(crate) fn counters_len(&self) -> usize {
        self.counters.len()
    }

    /// Whether a drain has begun.
    pub fn draining(&self) -> bool {
        self.relay.is_draining()
    }

    /// The relay.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// Counts a configuration reload.
    pub fn count_reload(&self, ok: bool) {
        self.last_failed.store(!ok, Ordering::Relaxed);
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.last_load.store(unix_now(), Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reloads (ok, failed) and the Unix time of the last good load.
    pub(crate) fn reloads(&self) -> (u64, u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
            self.last_load.load(Ordering::Relaxed),
        )
    }

    /// Whether the last reload was refused.
    pub(crate) fn last_reload_failed(&self) -> bool {
        self.last_failed.load(Ordering::Relaxed)
    }

    /// Whether every worker still runs (a draining gateway is healthy,
    /// though `/healthz` turns it away from new traffic).
    pub fn healthy(&self) -> bool {
        self.alive.iter().all(|a| a.load(Ordering::Relaxed))
    }

    /// The relay counters summed over the workers.
    pub(crate) fn totals(&self) -> CounterSnapshot {
        let mut t = CounterSnapshot::default();
        for c in &self.counters {
            t.merge(&c.snapshot());
        }
        t
    }

    /// Each peer's counters summed over the workers, by peer index.
    pub(crate) fn peers(&self) -> Vec<PeerSnapshot> {
        let n = self
            .counters
            .iter()
            .map(|c| c.peer_count())
            .max()
            .unwrap_or(0);
        (0..n)
            .filter_map(|i| {
                let mut it = self.counters.iter().filter_map(|c| c.peer(i));
                let mut total = it.next()?.snapshot();
                for p in it {
                    total.merge(&p.snapshot());
                }
                Some(total)
            })
            .collect()
    }

    /// The setup-time histogram summed over the workers.
    pub(crate) fn call_setup(&self) -> HistogramSnapshot {
        let mut h = Histogram::new(SETUP_BUCKETS).snapshot();
        for c in &self.counters {
            h.merge(&c.call_setup.snapshot());
        }
        h
    }
}
