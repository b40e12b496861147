//! A gateway pair on loopback with PBXs around it.
//!
//! [`SiteSpec`] names what stands at each site; [`Pair::start`] writes each
//! gateway's YAML (so the config parser and validator are in the loop, as
//! an operator's file would be), starts both gateways in this process, and
//! keeps them until dropped.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use iax2_gateway::runtime::{self, GatewayHandle};
use iax2_loadtest::driver::{spawn_udp, DriverConfig, DriverGroup, DriverHandle};
use iax2_loadtest::endpoint::{EndpointStats, RegistryEntry};
use iax2_loadtest::load::answer::{self, AnswerOptions};
use iax2_loadtest::{AnswerMode, Endpoint, EndpointConfig};

/// A UDP port free on every local address at the time of the call: for
/// peers (iaxmodem, the far gateway) whose address must be written into a
/// configuration before they start.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

/// `127.0.0.1:port` on a free port.
pub fn free_loopback_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()))
}

/// Polls `ready` every 20 ms until it is true; panics naming `what` when
/// `limit` passes first. Waiting bounds a test, it measures nothing.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PBX-side peer of one gateway.
#[derive(Debug, Clone)]
pub struct Local {
    /// Peer name in the gateway's configuration.
    pub name: String,
    /// Its IAX2 address.
    pub addr: SocketAddr,
    /// Calls from the far gateway whose called number starts with this go
    /// to it (`None`: every call). Routes are written in the order the
    /// locals are given, and the first route from the far gateway also
    /// takes its POKEs and REGREQs.
    pub prefix: Option<String>,
    /// Extra keys for its peer entry, one `key: value` per line (e.g.
    /// `trunk: true` for an Asterisk with `trunk=yes` towards the gateway).
    pub keys: Vec<String>,
}

impl Local {
    /// A local peer.
    pub fn new(name: &str, addr: SocketAddr, prefix: Option<&str>) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            prefix: prefix.map(str::to_owned),
            keys: Vec::new(),
        }
    }

    /// The same peer with extra keys in its entry.
    pub fn with_keys(mut self, keys: &[&str]) -> Self {
        self.keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }
}

/// One site of the pair.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    /// The gateway's listen address.
    pub listen: SocketAddr,
    /// Its PBX-side peers.
    pub locals: Vec<Local>,
    /// Extra keys for the far gateway's peer entry, one `key: value` per
    /// line (e.g. `trunktimestamps: false`); `trunk: true` is always set.
    pub far_peer_keys: Vec<String>,
    /// Extra top-level keys, one `key: value` per line (e.g.
    /// `trunkfreq: 10`); nested maps may span lines.
    pub top_keys: Vec<String>,
    /// Worker threads.
    pub workers: usize,
}

impl SiteSpec {
    /// A site on a free loopback port with these locals, one worker, and
    /// a hangup linger of 1 s (so that tables empty soon after a call).
    pub fn new(locals: Vec<Local>) -> Self {
        Self {
            listen: free_loopback_addr(),
            locals,
            far_peer_keys: Vec::new(),
            top_keys: vec!["timeouts:\n  hangup_linger: 1".to_owned()],
            workers: 1,
        }
    }

    /// The gateway's YAML, `far` being the other gateway's address.
    pub fn yaml(&self, far: SocketAddr) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "listen: {}", self.listen);
        let _ = writeln!(y, "workers: {}", self.workers);
        for key in &self.top_keys {
            let _ = writeln!(y, "{key}");
        }
        y.push_str("peers:\n");
        for l in &self.locals {
            let _ = writeln!(y, "  {}:\n    host: {}\n    kind: pbx", l.name, l.addr);
            for key in &l.keys {
                let _ = writeln!(y, "    {key}");
            }
        }
        let _ = writeln!(
            y,
            "  far:\n    host: {far}\n    kind: gateway\n    trunk: true"
        );
        for key in &self.far_peer_keys {
            let _ = writeln!(y, "    {key}");
        }
        y.push_str("routes:\n");
        for l in &self.locals {
            let _ = writeln!(y, "  - from: far");
            if let Some(p) = &l.prefix {
                let _ = writeln!(y, "    prefix: \"{p}\"");
            }
            let _ = writeln!(y, "    to: {}", l.name);
        }
        for l in &self.locals {
            let _ = writeln!(y, "  - from: {}\n    to: far", l.name);
        }
        y
    }
}

/// A running gateway pair.
pub struct Pair {
    /// Site A's gateway.
    pub a: GatewayHandle,
    /// Site B's gateway.
    pub b: GatewayHandle,
}

impl Pair {
    /// Starts both gateways; panics with the config error if a YAML is
    /// refused (a harness bug) or a socket cannot be bound.
    pub fn start(site_a: &SiteSpec, site_b: &SiteSpec) -> Self {
        let a = start_gateway(&site_a.yaml(site_b.listen), "site-a.yaml");
        let b = start_gateway(&site_b.yaml(site_a.listen), "site-b.yaml");
        Self { a, b }
    }

    /// Calls in both gateways' tables.
    pub fn active_calls(&self) -> (usize, usize) {
        (self.a.relay().active_calls(), self.b.relay().active_calls())
    }
}

/// The configuration of one gateway of a linked pair: two workers, a
/// one-second hangup linger, its site's PBX as peer `pbx`, and the other
/// gateway as trunk peer `far` with the keys `far_keys` (lines indented by
/// four spaces, each ending in a newline), routed both ways.
pub fn linked_gateway_yaml(listen: SocketAddr, pbx: SocketAddr, far_keys: &str) -> String {
    format!(
        "listen: {listen}
workers: 2
timeouts:
  hangup_linger: 1
peers:
  pbx:
    host: {pbx}
    kind: pbx
  far:
    kind: gateway
    trunk: true
{far_keys}routes:
  - from: far
    to: pbx
  - from: pbx
    to: far
"
    )
}

/// Parses `yaml` (named `origin` in errors) and starts a gateway on it.
pub fn start_gateway(yaml: &str, origin: &str) -> GatewayHandle {
    let config = iax2_config::from_yaml_str(yaml, origin)
        .unwrap_or_else(|e| panic!("{origin} refused: {e}\n{yaml}"));
    runtime::start(&config).unwrap_or_else(|e| panic!("{origin}: cannot start: {e}"))
}

/// The load generator's answerer as a far PBX: answers calls, and with
/// users is a registrar (MD5, REGACK with APPARENT ADDR).
pub struct Answerer {
    group: DriverGroup,
}

impl Answerer {
    /// Starts an answerer on `listen` with one thread; `configure` sets the
    /// rest of the options (secret, call token, echo, users).
    pub fn start(listen: SocketAddr, configure: impl FnOnce(&mut AnswerOptions)) -> Self {
        let mut opts = AnswerOptions {
            listen,
            echo: false,
            secret: None,
            calltoken: false,
            codec: iax2_loadtest::endpoint::Codec::Ulaw,
            ptime_ms: 20,
            duration: None,
            threads: 1,
            users: Vec::new(),
        };
        configure(&mut opts);
        let group =
            answer::start_answerer(&opts).unwrap_or_else(|e| panic!("answerer on {listen}: {e}"));
        Self { group }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.group.local_addr()
    }

    /// Who is registered, and from where.
    pub fn registry(&self) -> Vec<RegistryEntry> {
        answer::registry(&self.group)
    }

    /// Call and media counters.
    pub fn stats(&self) -> EndpointStats {
        self.group.stats()
    }

    /// The driver group, for anything else.
    pub fn group(&self) -> &DriverGroup {
        &self.group
    }
}

/// An emulated PBX on `socket` (the load generator's endpoint on its own
/// thread): u-law 20 ms, answers at once; as callee it demands a call
/// token. `configure` changes the rest (secret, trunking, PINGs).
pub fn emulated_pbx(
    socket: UdpSocket,
    seed: u64,
    callee: bool,
    configure: impl FnOnce(&mut EndpointConfig),
) -> DriverHandle {
    let local = socket.local_addr().expect("the PBX socket's address");
    let mut cfg = EndpointConfig::new(local, seed);
    cfg.codec = iax2_loadtest::endpoint::Codec::Ulaw;
    cfg.require_calltoken = callee;
    cfg.answer = AnswerMode::Answer;
    configure(&mut cfg);
    spawn_udp(Endpoint::new(cfg), socket, DriverConfig::default())
        .unwrap_or_else(|e| panic!("emulated PBX on {local}: {e}"))
}

/// Stops the voice of every call of `pbx` (before a hangup, so that every
/// frame sent is counted where it lands); how many calls, or `None` if
/// the PBX's thread has gone.
pub fn mute_all(pbx: &DriverHandle) -> Option<usize> {
    pbx.with(|ep, now, _| {
        let ids = ep.call_ids();
        ids.into_iter().filter(|&id| ep.stop_media(now, id)).count()
    })
}

/// One PBX per site (`pbx-a` at site A, `pbx-b` at site B, every call
/// routed across) on bound loopback sockets, and the pair started with
/// `workers` workers per gateway: the pair, both sites' specs, and the
/// two PBX sockets for [`emulated_pbx`].
pub fn two_sites(workers: usize) -> (Pair, SiteSpec, SiteSpec, UdpSocket, UdpSocket) {
    let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a PBX socket");
    let (sock_a, sock_b) = (bind(), bind());
    let addr = |s: &UdpSocket| s.local_addr().expect("the PBX socket's address");
    let mut site_a = SiteSpec::new(vec![Local::new("pbx-a", addr(&sock_a), None)]);
    let mut site_b = SiteSpec::new(vec![Local::new("pbx-b", addr(&sock_b), None)]);
    site_a.workers = workers;
    site_b.workers = workers;
    let pair = Pair::start(&site_a, &site_b);
    (pair, site_a, site_b, sock_a, sock_b)
}

/// Fails, naming the gateway, if it dropped anything as malformed, from a
/// stranger, for an unknown call or before a call started.
pub fn assert_no_stray_drops(name: &str, c: &trunk_core::relay::CounterSnapshot) {
    use trunk_core::relay::DropReason;
    for r in [
        DropReason::Malformed,
        DropReason::UnknownCall,
        DropReason::Stranger,
        DropReason::CallNotStarted,
    ] {
        assert_eq!(c.drops(r), 0, "{name}: {r:?}");
    }
}

/// The value of a counter a gateway exports with a `peer` label, read from
/// its `/metrics` text as a scrape would. Panics if it is not there.
pub fn peer_counter(gateway: &GatewayHandle, name: &str, peer: &str) -> u64 {
    let text = iax2_gateway::admin::metrics::encode(gateway.admin_state());
    let head = format!("{name}{{peer=\"{peer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {head}in the metrics:\n{text}"))
}
