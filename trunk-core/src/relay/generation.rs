//! The reloadable part of the relay: peers, routes and timers, as one
//! generation. A reload builds the next generation from a validated
//! configuration and swaps it in at once; each worker adopts it before
//! its next datagram. The call table is not part of it: live calls go on.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use iax2_config::{CalledPrefix, Config, Peer, Timeouts};

use super::peers::{PeerId, Peers};
use super::Relay;

#[derive(Debug)]
struct RouteEntry {
    from: Option<PeerId>,
    prefix: Option<CalledPrefix>,
    to: PeerId,
}

/// One configuration's peers, routes and timers.
#[derive(Debug)]
pub(crate) struct Generation {
    /// Counts from 0 at start, one per reload.
    pub(crate) number: u64,
    pub(crate) peers: Peers,
    routes: Vec<RouteEntry>,
    pub(crate) timeouts: Timeouts,
    /// What it was built from (to tell what a reload changes).
    config: Config,
}

impl Generation {
    pub(crate) fn new(number: u64, config: &Config, peers: Peers) -> Self {
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                // The config was validated: every name resolves.
                Some(RouteEntry {
                    from: match &r.from {
                        Some(n) => Some(peers.by_name(n.as_str())?),
                        None => None,
                    },
                    prefix: r.prefix.clone(),
                    to: peers.by_name(r.to.as_str())?,
                })
            })
            .collect();
        Self {
            number,
            peers,
            routes,
            timeouts: config.timeouts,
            config: config.clone(),
        }
    }

    /// The egress peer for an exchange from `ingress`: a NEW to `called`,
    /// or, with `None`, an exchange that names no number (POKE, REGREQ).
    /// Those take the first route from the ingress peer whatever its
    /// prefix, so a PBX whose routes all have prefixes can still qualify
    /// and register with the far side. A peer the configuration no longer
    /// names starts nothing.
    pub(crate) fn route(&self, ingress: PeerId, called: Option<&str>) -> Option<PeerId> {
        if self.peers.get(ingress).retired {
            return None;
        }
        self.routes
            .iter()
            .find(|r| {
                r.to != ingress
                    && r.from.is_none_or(|f| f == ingress)
                    && match (&r.prefix, called) {
                        (Some(p), Some(called)) => p.matches(called),
                        (None, _) | (Some(_), None) => true,
                    }
            })
            .map(|r| r.to)
    }
}

/// What a reload did, for the log and the reply to `iax2-gateway reload`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The generation now in force.
    pub generation: u64,
    /// Peers added.
    pub added: Vec<String>,
    /// Peers the configuration no longer names (their calls go on).
    pub removed: Vec<String>,
    /// Peers whose settings changed, with what changed and when it applies.
    pub changed: Vec<String>,
    /// Other changes, and when they apply.
    pub notes: Vec<String>,
    /// Settings that changed but need a restart (not applied).
    pub need_restart: Vec<String>,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = format!("configuration generation {}", self.generation);
        let list = |s: &mut String, what: &str, v: &[String]| {
            if !v.is_empty() {
                let _ = write!(s, "; {what}: {}", v.join(", "));
            }
        };
        list(&mut s, "peers added", &self.added);
        list(&mut s, "peers removed (their calls go on)", &self.removed);
        list(&mut s, "peers changed", &self.changed);
        list(&mut s, "also", &self.notes);
        list(&mut s, "NOT applied, restart needed", &self.need_restart);
        if self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.notes.is_empty()
            && self.need_restart.is_empty()
        {
            s.push_str("; nothing changed");
        }
        f.write_str(&s)
    }
}

/// What changed in one peer, and when each change applies.
fn peer_changes(old: &Peer, new: &Peer) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.host != new.host {
        v.push("host (new calls; live calls keep the old address)");
    }
    if old.kind != new.kind {
        v.push("kind (new calls)");
    }
    if old.trunk != new.trunk {
        v.push("trunk settings (at once)");
    }
    if old.permit != new.permit || old.deny != new.deny {
        v.push("permit/deny (at once)");
    }
    if old.maxcalls != new.maxcalls {
        v.push("maxcalls (new calls)");
    }
    v
}

impl Relay {
    /// The generation in force.
    pub(crate) fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read())
    }

    /// The timers of the configuration in force (the last one loaded).
    pub fn timeouts(&self) -> Timeouts {
        self.current.read().timeouts
    }

    /// Applies a new configuration (already validated): peers, routes and
    /// timers change at once for every worker; live calls go on. Settings
    /// that need new sockets or threads (`listen`, `workers`) are reported,
    /// not applied. Fails, changing nothing, when the peers would exceed
    /// what the relay can count.
    pub fn reload(&self, config: &Config) -> Result<ReloadReport, String> {
        let mut current = self.current.write();
        let old = Arc::clone(&current);
        let peers = Peers::reloaded(config, &old.peers)?;
        let mut report = ReloadReport {
            generation: old.number + 1,
            ..ReloadReport::default()
        };
        for p in &config.peers {
            match old.config.peer(p.name.as_str()) {
                None => report.added.push(p.name.as_str().to_owned()),
                Some(o) => {
                    let c = peer_changes(o, p);
                    if !c.is_empty() {
                        report
                            .changed
                            .push(format!("{} ({})", p.name.as_str(), c.join(", ")));
                    }
                }
            }
        }
        for o in &old.config.peers {
            if config.peer(o.name.as_str()).is_none() {
                report.removed.push(o.name.as_str().to_owned());
            }
        }
        if old.config.routes != config.routes {
            report.notes.push("routes (new calls)".to_owned());
        }
        if old.config.timeouts.admission != config.timeouts.admission {
            report
                .notes
                .push("admission (at once; calls in progress keep their place)".to_owned());
        }
        let mut old_timers = old.config.timeouts;
        old_timers.admission = config.timeouts.admission;
        if old_timers != config.timeouts {
            report
                .notes
                .push("timeouts (at once; a lingering call keeps its end time)".to_owned());
        }
        if old.config.listen != config.listen {
            report
                .need_restart
                .push(format!("listen {}", config.listen));
        }
        if old.config.workers != config.workers {
            report
                .need_restart
                .push(format!("workers {}", config.workers));
        }
        if old.config.udp_gso != config.udp_gso {
            report
                .need_restart
                .push(format!("udp_gso {}", config.udp_gso));
        }
        // Keep what cannot change in place as it was, so the next reload
        // compares against what really runs.
        let mut applied = config.clone();
        applied.listen = old.config.listen;
        applied.workers = old.config.workers;
        applied.udp_gso = old.config.udp_gso;
        *current = Arc::new(Generation::new(report.generation, &applied, peers));
        self.generation.store(report.generation, Ordering::Release);
        Ok(report)
    }
}
