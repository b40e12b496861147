//! `/metrics`: Prometheus exposition built at scrape time from every
//! worker's counters (docs/METRICS.md is the contract). Nothing here runs
//! on the packet path.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use trunk_core::relay::{
    CallDirection, CallResult, Direction, DropReason, HistogramSnapshot, Kind, LinkState,
    RegistrationState, RejectCause,
};

use super::process;
use super::state::AdminState;
use super::status::UP_WINDOW_MS;
use crate::clock;

/// The prefix of every gateway metric.
const PREFIX: &str = "iax2_gateway_";

/// Reads the gateway's state at each scrape.
#[derive(Debug)]
struct GatewayCollector(Arc<AdminState>);

/// Writes one family: a descriptor, then its labelled samples.
struct Family<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl Family<'_, '_> {
    /// One prefixed family of `kind`: each sample's labels, then its value
    /// written by `write`.
    fn family<const N: usize, V>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = ([(&'static str, String); N], V)>,
        write: impl Fn(V, MetricEncoder<'_>) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        let full = format!("{PREFIX}{name}");
        let mut m = self.encoder.encode_descriptor(&full, help, None, kind)?;
        for (labels, v) in samples {
            write(v, m.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn counter<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'static str, String); N], u64)>,
    ) -> Result<(), std::fmt::Error> {
        self.family(name, help, MetricType::Counter, samples, |v, m| {
            ConstCounter::new(v).encode(m)
        })
    }

    fn gauge<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'static str, String); N], f64)>,
    ) -> Result<(), std::fmt::Error> {
        self.family(name, help, MetricType::Gauge, samples, |v, m| {
            ConstGauge::new(v).encode(m)
        })
    }

    fn histogram<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'static str, String); N], HistogramSnapshot)>,
    ) -> Result<(), std::fmt::Error> {
        self.family(name, help, MetricType::Histogram, samples, |h, mut m| {
            m.encode_histogram::<NoLabelSet>(h.sum, h.count(), &h.cumulative(), None)
        })
    }

    /// A process metric: standard name, no prefix, no labels.
    fn process(
        &mut self,
        name: &str,
        help: &str,
        counter: bool,
        v: f64,
    ) -> Result<(), std::fmt::Error> {
        if counter {
            let m = self
                .encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)
        } else {
            let m = self
                .encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)
        }
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = &*self.0;
        let relay = &state.relay;
        let views = relay.peer_views();
        let peers = state.peers();
        let totals = state.totals();
        let now_ms = clock::now().as_millis();
        let named: Vec<_> = views
            .iter()
            .filter_map(|v| peers.get(v.index).map(|c| (v, c)))
            .collect();
        let mut f = Family {
            encoder: &mut encoder,
        };

        f.gauge(
            "build_info",
            "The running build (always 1).",
            [([("version", s(env!("CARGO_PKG_VERSION")))], 1.0)],
        )?;
        f.gauge(
            "workers",
            "Worker threads.",
            [([], state.counters.len() as f64)],
        )?;
        f.gauge(
            "draining",
            "1 after SIGTERM while the calls in progress finish.",
            [([], if relay.is_draining() { 1.0 } else { 0.0 })],
        )?;
        #[allow(clippy::cast_precision_loss)]
        f.gauge(
            "calls_active",
            "Calls in the table with a leg on this peer.",
            named
                .iter()
                .map(|(v, _)| ([("peer", v.name.clone())], f64::from(v.active_calls))),
        )?;
        f.gauge(
            "peer_info",
            "The configured peers (always 1), with their kind.",
            named.iter().map(|(v, _)| {
                (
                    [("peer", v.name.clone()), ("kind", s(v.kind.as_str()))],
                    1.0,
                )
            }),
        )?;
        f.counter(
            "calls",
            "Calls that ended, by peer, side and result.",
            named.iter().flat_map(|(v, c)| {
                CallDirection::ALL.iter().flat_map(move |&d| {
                    CallResult::ALL.iter().map(move |&r| {
                        (
                            [
                                ("peer", v.name.clone()),
                                ("direction", s(d.label())),
                                ("result", s(r.label())),
                            ],
                            c.calls(d, r),
                        )
                    })
                })
            }),
        )?;
        f.histogram(
            "call_setup_seconds",
            "NEW to ANSWER, as relayed.",
            [([], state.call_setup())],
        )?;
        let per_kind = |bytes: bool| {
            named.iter().flat_map(move |(v, c)| {
                Direction::ALL.iter().flat_map(move |&d| {
                    Kind::ALL.iter().map(move |&k| {
                        (
                            [
                                ("peer", v.name.clone()),
                                ("direction", s(d.label())),
                                ("kind", s(k.label())),
                            ],
                            if bytes {
                                c.bytes(d, k)
                            } else {
                                c.packets(d, k)
                            },
                        )
                    })
                })
            })
        };
        f.counter(
            "packets",
            "Datagrams by peer, direction and kind.",
            per_kind(false),
        )?;
        f.counter(
            "bytes",
            "UDP payload bytes by peer, direction and kind.",
            per_kind(true),
        )?;
        let per_dir = |value: &dyn Fn(&trunk_core::relay::PeerSnapshot, Direction) -> u64| {
            named
                .iter()
                .flat_map(|(v, c)| {
                    Direction::ALL.iter().map(move |&d| {
                        (
                            [("peer", v.name.clone()), ("direction", s(d.label()))],
                            value(c, d),
                        )
                    })
                })
                .collect::<Vec<_>>()
        };
        f.counter(
            "trunk_frames",
            "Meta trunk frames by peer and direction.",
            per_dir(&|c, d| c.packets(d, Kind::Trunk)),
        )?;
        f.counter(
            "trunk_entries",
            "Entries of meta trunk frames by peer and direction.",
            per_dir(&|c, d| c.trunk_entries(d)),
        )?;
        f.histogram(
            "trunk_frame_entries",
            "Entries per trunk frame sent, by peer.",
            named
                .iter()
                .map(|(v, c)| ([("peer", v.name.clone())], c.trunk_frame_entries.clone())),
        )?;
        f.counter(
            "voice_frames",
            "Voice frames (mini frames and trunk entries) of calls received from the peer.",
            named
                .iter()
                .map(|(v, c)| ([("peer", v.name.clone())], c.voice_frames)),
        )?;
        f.counter(
            "voice_gaps",
            "Voice frames missing from calls' timestamps as received from the peer.",
            named
                .iter()
                .map(|(v, c)| ([("peer", v.name.clone())], c.voice_gaps)),
        )?;
        f.counter(
            "voice_reordered",
            "Voice frames of calls received from the peer that were older than one already relayed for their call.",
            named
                .iter()
                .map(|(v, c)| ([("peer", v.name.clone())], c.voice_reordered)),
        )?;
        f.histogram(
            "jitter_seconds",
            "Each ended call's interarrival jitter as received from the peer.",
            named
                .iter()
                .map(|(v, c)| ([("peer", v.name.clone())], c.jitter.clone())),
        )?;
        f.counter(
            "drops",
            "Datagrams dropped, by reason.",
            DropReason::ALL
                .iter()
                .map(|&r| ([("reason", s(r.label()))], totals.drops(r))),
        )?;
        f.counter(
            "handed_over",
            "Full and mini frames that reached a worker other than their call's owner and were handed to it.",
            [([], totals.rx_handed_over)],
        )?;
        let seen = |c: &trunk_core::relay::PeerSnapshot| {
            (c.last_rx_ms > 0).then(|| now_ms.saturating_sub(c.last_rx_ms - 1))
        };
        f.gauge(
            "peer_up",
            "1 when the peer was heard from in the last 30 s.",
            named.iter().map(|(v, c)| {
                let up = seen(c).is_some_and(|ms| ms <= UP_WINDOW_MS);
                ([("peer", v.name.clone())], if up { 1.0 } else { 0.0 })
            }),
        )?;
        let links = relay.link_views(crate::clock::now());
        f.gauge(
            "link_up",
            "1 while this gateway's own probes of a gateway peer are answered (OK or LAGGED), 0 when unreachable or not yet answered.",
            links.iter().map(|l| {
                let up = matches!(l.state, LinkState::Ok | LinkState::Lagged);
                ([("peer", l.peer.clone())], if up { 1.0 } else { 0.0 })
            }),
        )?;
        f.gauge(
            "link_lagged",
            "1 while the last probe of a gateway peer was answered slower than 2 s.",
            links.iter().map(|l| {
                let lagged = l.state == LinkState::Lagged;
                ([("peer", l.peer.clone())], if lagged { 1.0 } else { 0.0 })
            }),
        )?;
        f.gauge(
            "link_rtt_seconds",
            "Round trip of the last answered probe of a gateway peer (NaN before one).",
            links.iter().map(|l| {
                let rtt = l.rtt.map_or(f64::NAN, |d| d.as_secs_f64());
                ([("peer", l.peer.clone())], rtt)
            }),
        )?;
        f.gauge(
            "registered",
            "1 while a registration between this gateway and a gateway peer is in force (role: registers, or registrar for a peer that registers here).",
            links.iter().flat_map(|l| {
                let mine = l.registration.as_ref().map(|r| {
                    let up = r.state == RegistrationState::Registered;
                    (
                        [("peer", l.peer.clone()), ("role", "registers".to_owned())],
                        if up { 1.0 } else { 0.0 },
                    )
                });
                let theirs = l.registrar.as_ref().map(|r| {
                    (
                        [("peer", l.peer.clone()), ("role", "registrar".to_owned())],
                        if r.registered { 1.0 } else { 0.0 },
                    )
                });
                mine.into_iter().chain(theirs)
            }),
        )?;
        f.counter(
            "registrations_rejected",
            "Registrations between gateways refused, by cause: bad_secret, acl (source refused by permit/deny), unknown_peer (a USERNAME no peer has; dropped unanswered), refused (the far registrar refused ours), no_method.",
            links
                .iter()
                .flat_map(|l| {
                    let mut rows: Vec<([(&'static str, String); 2], u64)> = Vec::new();
                    if let Some(r) = &l.registrar {
                        for (cause, n) in RejectCause::ALL.iter().zip(r.rejected) {
                            rows.push(([("peer", l.peer.clone()), ("cause", cause.as_str().to_owned())], n));
                        }
                    }
                    if let Some(r) = &l.registration {
                        rows.push((
                            [("peer", l.peer.clone()), ("cause", RejectCause::Refused.as_str().to_owned())],
                            r.rejected,
                        ));
                    }
                    rows
                })
                .chain(std::iter::once((
                    [("peer", "-".to_owned()), ("cause", RejectCause::UnknownPeer.as_str().to_owned())],
                    totals.registrations_unknown_peer,
                ))),
        )?;
        f.counter(
            "link_port_moves",
            "Times this gateway moved its link to a gateway peer it registers with to a fresh source port (the link was unreachable).",
            links.iter().filter_map(|l| {
                l.registration
                    .as_ref()
                    .map(|r| ([("peer", l.peer.clone())], r.moves))
            }),
        )?;
        f.counter(
            "link_address_changes",
            "Times a registered gateway peer's address changed (NAT rebinding); calls follow it.",
            links.iter().filter_map(|l| {
                l.registrar
                    .as_ref()
                    .map(|r| ([("peer", l.peer.clone())], r.address_changes))
            }),
        )?;
        f.gauge(
            "link_address_changes_recent",
            "Address changes of a registered gateway peer in the last 10 minutes: more than 2 points at a NAT that keeps rebinding (inconsistent NAT).",
            links.iter().filter_map(|l| {
                l.registrar
                    .as_ref()
                    .map(|r| ([("peer", l.peer.clone())], f64::from(r.recent_address_changes)))
            }),
        )?;
        f.counter(
            "calls_moved",
            "Calls moved to a registered gateway peer's new address.",
            links.iter().filter_map(|l| {
                l.registrar
                    .as_ref()
                    .map(|r| ([("peer", l.peer.clone())], r.calls_moved))
            }),
        )?;
        f.counter(
            "stranger_trunk_frames",
            "Meta trunk frames from an address that is no peer (dropped): a far gateway or Asterisk sending from another address than configured.",
            [([], totals.stranger_trunk_frames)],
        )?;
        f.counter(
            "calls_one_way",
            "Calls whose voice came from one side only for 5 s while the other sent none (one-way audio).",
            [([], totals.calls_one_way)],
        )?;
        f.gauge(
            "link_missed_probes",
            "Probes of a gateway peer missed in a row (3 make it unreachable).",
            links
                .iter()
                .map(|l| ([("peer", l.peer.clone())], f64::from(l.misses))),
        )?;
        #[allow(clippy::cast_precision_loss)]
        f.gauge(
            "peer_rtt_seconds",
            "Round trip of the last POKE, PING or LAGRQ relayed to the peer and answered.",
            named.iter().map(|(v, c)| {
                let rtt = if c.rtt_at_ms > 0 {
                    c.rtt_us as f64 / 1e6
                } else {
                    f64::NAN
                };
                ([("peer", v.name.clone())], rtt)
            }),
        )?;
        #[allow(clippy::cast_precision_loss)]
        f.gauge(
            "peer_last_seen_seconds",
            "Seconds since a datagram last came from the peer (NaN: never).",
            named.iter().map(|(v, c)| {
                (
                    [("peer", v.name.clone())],
                    seen(c).map_or(f64::NAN, |ms| ms as f64 / 1e3),
                )
            }),
        )?;
        #[allow(clippy::cast_precision_loss)]
        {
            f.gauge(
                "call_numbers_in_use",
                "Call numbers neither free nor quarantined.",
                [([], relay.call_numbers_in_use() as f64)],
            )?;
            f.gauge(
                "call_numbers_capacity",
                "Call numbers the gateway can hand out.",
                [([], relay.call_number_capacity() as f64)],
            )?;
            f.gauge(
                "unanswered_entries",
                "Table entries waiting for the far side's first reply (admission.max_unanswered).",
                [([], relay.unanswered_entries() as f64)],
            )?;
            f.gauge(
                "admission_sources_tracked",
                "Source addresses in the bounded per-source admission table (at most 65536).",
                [([], relay.tracked_sources() as f64)],
            )?;
        }
        let (ok, failed, last) = state.reloads();
        f.gauge(
            "config_last_reload_successful",
            "1 when the last configuration reload succeeded (or none failed yet).",
            [([], if state.last_reload_failed() { 0.0 } else { 1.0 })],
        )?;
        f.counter(
            "config_reloads",
            "Configuration reloads by result.",
            [
                ([("result", s("ok"))], ok),
                ([("result", s("error"))], failed),
            ],
        )?;
        #[allow(clippy::cast_precision_loss)]
        f.gauge(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            [([], last as f64)],
        )?;

        let p = process::read();
        f.process(
            "process_cpu_seconds",
            "User and system CPU time, seconds.",
            true,
            p.cpu_seconds,
        )?;
        #[allow(clippy::cast_precision_loss)]
        {
            f.process(
                "process_resident_memory_bytes",
                "Resident memory, bytes.",
                false,
                p.resident_bytes as f64,
            )?;
            f.process(
                "process_open_fds",
                "Open file descriptors.",
                false,
                p.open_fds as f64,
            )?;
            f.process(
                "process_max_fds",
                "The file descriptor limit.",
                false,
                p.max_fds as f64,
            )?;
        }
        f.process(
            "process_start_time_seconds",
            "Unix time the process started.",
            false,
            p.start_time,
        )?;
        Ok(())
    }
}

/// A registry serving the gateway's metrics.
pub(crate) fn registry(state: Arc<AdminState>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(GatewayCollector(state)));
    r
}

/// The exposition text (OpenMetrics).
pub fn encode(state: Arc<AdminState>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(state));
    out
}
