//! The validated configuration: what the rest of the gateway reads.
//!
//! Every value here has passed validation; the newtypes carry their range
//! so code that holds one never re-checks it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use ipnet::IpNet;

use crate::keyfile;

/// The default IAX2 port.
pub const IAX2_PORT: u16 = 4569;

/// The default port of the admin HTTP listener (`admin.listen`).
pub const ADMIN_PORT: u16 = 9569;

/// A whole gateway configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where the gateway receives IAX2 (default `0.0.0.0:4569`).
    pub listen: SocketAddr,
    /// Worker threads (default: the available cores).
    pub workers: NonZeroUsize,
    /// `udp_gso` (default true): a worker sends each run of equal-sized
    /// datagrams to one address (the minis of a trunk frame to its PBX,
    /// the full trunk frames of a tick) as one segmented send, which the
    /// kernel cuts into the same datagrams; off if the kernel refuses.
    pub udp_gso: bool,
    /// The peers, in file order. Names are unique.
    pub peers: Vec<Peer>,
    /// The routes, in file order; the first that matches a NEW wins.
    pub routes: Vec<Route>,
    /// Call timers.
    pub timeouts: Timeouts,
    /// The admin HTTP listener (`admin:`).
    pub admin: AdminSettings,
    /// Logging (`log:`).
    pub log: LogSettings,
}

impl Config {
    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name.as_str() == name)
    }
}

/// A peer name: 1 to 64 characters from `A-Z a-z 0-9 _ - .`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerName(String);

impl PeerName {
    /// The largest name length.
    pub const MAX_LEN: usize = 64;

    /// Checks and wraps a name.
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        ok.then(|| Self(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shared secret: 1 to 128 bytes of printable ASCII, no whitespace and
/// no `;`.
///
/// Its `Debug` shows `Secret(***)`, never the text, and it has no
/// `Display`: read it with [`Secret::expose`] where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The longest secret, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps a secret.
    pub fn new(secret: &str) -> Option<Self> {
        let ok = !secret.is_empty()
            && secret.len() <= Self::MAX_LEN
            && secret.bytes().all(Self::allowed_byte);
        ok.then(|| Self(secret.to_owned()))
    }

    /// Whether `b` may appear in a secret: printable ASCII other than the
    /// space and `;`.
    pub fn allowed_byte(b: u8) -> bool {
        b.is_ascii_graphic() && b != b';'
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An RSA private key read from a PEM file (`outkey`): PKCS#1 `RSA
/// PRIVATE KEY` or PKCS#8 `PRIVATE KEY`, unencrypted, 1024 to 4096 bits.
///
/// Its `Debug` shows `PrivateKeyFile("<path>")`, never key material, and
/// it has no `Display`. The `rsa` key zeroizes itself when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyFile {
    path: String,
    key: rsa::RsaPrivateKey,
}

impl PrivateKeyFile {
    /// The path as written in the configuration.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The key.
    pub fn key(&self) -> &rsa::RsaPrivateKey {
        &self.key
    }

    /// Checks and wraps the key in `pem`, the text of the file at `path`
    /// (used in the message only; nothing is read). The error says what
    /// is wrong and never holds the text.
    pub fn from_pem(path: &str, pem: &str) -> Result<Self, String> {
        keyfile::private_key(path, pem).map(|key| Self {
            path: path.to_owned(),
            key,
        })
    }
}

impl std::fmt::Debug for PrivateKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PrivateKeyFile").field(&self.path).finish()
    }
}

/// An RSA public key read from a PEM file (`inkeys`): SPKI `PUBLIC KEY`
/// or PKCS#1 `RSA PUBLIC KEY`, 1024 to 4096 bits.
///
/// Its `Debug` shows `PublicKeyFile("<path>")` only.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeyFile {
    path: String,
    key: rsa::RsaPublicKey,
}

impl PublicKeyFile {
    /// The path as written in the configuration.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The key.
    pub fn key(&self) -> &rsa::RsaPublicKey {
        &self.key
    }

    /// Checks and wraps the key in `pem`, the text of the file at `path`
    /// (used in the message only; nothing is read).
    pub fn from_pem(path: &str, pem: &str) -> Result<Self, String> {
        keyfile::public_key(path, pem).map(|key| Self {
            path: path.to_owned(),
            key,
        })
    }
}

impl std::fmt::Debug for PublicKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PublicKeyFile").field(&self.path).finish()
    }
}

/// Where a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerHost {
    /// A fixed address (port 4569 when the file gives none).
    Static(SocketAddr),
    /// The address is learned from the peer's traffic (`host: dynamic`).
    Dynamic,
}

/// What is at the other end of a peer link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// A PBX (Asterisk or any IAX2 endpoint).
    Pbx,
    /// Another iax2-trunk gateway.
    Gateway,
}

impl PeerKind {
    /// The configuration's word for it: `pbx` or `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pbx => "pbx",
            Self::Gateway => "gateway",
        }
    }
}

/// One configured peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its unique name.
    pub name: PeerName,
    /// Its address.
    pub host: PeerHost,
    /// PBX or gateway.
    pub kind: PeerKind,
    /// Trunking towards this peer (`trunk: true`), with its settings.
    pub trunk: Option<TrunkSettings>,
    /// Source ranges this peer may use. See [`Peer::permits`].
    pub permit: Vec<IpNet>,
    /// Source ranges this peer may not use. See [`Peer::permits`].
    pub deny: Vec<IpNet>,
    /// Most concurrent calls through this peer (in and out), if limited.
    pub maxcalls: Option<NonZeroU32>,
    /// `keepalive` (gateway peers): seconds between this gateway's own
    /// probes of the link (POKE), which also hold NAT mappings open;
    /// `None` for the default ([`DEFAULT_KEEPALIVE`]), zero for none.
    pub keepalive: Option<Duration>,
    /// `secret` (gateway peers): the shared secret of gateway registration
    /// (MD5 challenge and response), both when this gateway registers with
    /// the peer and when the peer registers here (`host: dynamic`).
    pub secret: Option<Secret>,
    /// `register: true` with `username` (gateway peers with a static
    /// host): this gateway registers with that peer under this name, the
    /// name the far gateway gives this gateway in its own peers. `None`
    /// when this gateway does not register there.
    pub register: Option<PeerName>,
    /// `outkey` (gateway peers with `register: true`): this gateway's RSA
    /// private key, which signs the registration challenge
    /// (RSASSA-PKCS1-v1_5 with SHA-1) instead of or besides the `secret`.
    pub outkey: Option<PrivateKeyFile>,
    /// `inkeys` (`host: dynamic` gateway peers): RSA public keys, any of
    /// which may sign this peer's registration here; empty when none.
    pub inkeys: Vec<PublicKeyFile>,
    /// `refresh` (gateway peers): the registration lifetime asked for when
    /// registering, and the longest one granted to a registering peer;
    /// `None` for the default ([`DEFAULT_REFRESH`]). See [`Peer::refresh`].
    pub refresh: Option<Duration>,
    /// `qualify` (gateway peers, milliseconds): a probe round trip above
    /// this makes the link lagged; `None` for the default
    /// ([`DEFAULT_QUALIFY`]). See [`Peer::qualify`].
    pub qualify: Option<Duration>,
    /// `unreachable_after` (gateway peers): missed probes in a row that
    /// make the link unreachable and start its recovery; `None` for the
    /// default ([`DEFAULT_UNREACHABLE_AFTER`]).
    pub unreachable_after: Option<u32>,
    /// `retry_min` (gateway peers): the shortest wait before retrying a
    /// failed registration; `None` for [`DEFAULT_RETRY_MIN`].
    pub retry_min: Option<Duration>,
    /// `retry_max` (gateway peers): the longest wait between registration
    /// retries, never below `retry_min`; `None` for [`DEFAULT_RETRY_MAX`].
    pub retry_max: Option<Duration>,
}

/// Probes per gateway link unless `keepalive` says otherwise: well under
/// the 30 s UDP timeout common in NAT devices, and three missed probes
/// find a dead link within half a minute.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

impl Peer {
    /// A peer with every optional setting at its default: no trunking, no
    /// `permit`/`deny`, no call limit, no registration, default link
    /// timers. For code that builds a configuration without a file (tests,
    /// simulations); fields not named here are set on the result.
    pub fn new(name: PeerName, host: PeerHost, kind: PeerKind) -> Self {
        Self {
            name,
            host,
            kind,
            trunk: None,
            permit: Vec::new(),
            deny: Vec::new(),
            maxcalls: None,
            keepalive: None,
            secret: None,
            register: None,
            refresh: None,
            qualify: None,
            unreachable_after: None,
            retry_min: None,
            retry_max: None,
            outkey: None,
            inkeys: Vec::new(),
        }
    }
}

impl Peer {
    /// Seconds between this gateway's probes of the peer; `None` for a PBX
    /// or with `keepalive: 0`.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        match self.kind {
            PeerKind::Gateway => Some(self.keepalive.unwrap_or(DEFAULT_KEEPALIVE)),
            PeerKind::Pbx => None,
        }
        .filter(|d| !d.is_zero())
    }
}

/// The registration lifetime unless `refresh` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The probe round trip above which a link is lagged unless `qualify` says
/// otherwise (Asterisk's `qualify=yes`).
pub const DEFAULT_QUALIFY: Duration = Duration::from_millis(2000);

/// Missed probes in a row that make a link unreachable unless
/// `unreachable_after` says otherwise.
pub const DEFAULT_UNREACHABLE_AFTER: u32 = 3;

/// The first registration retry delay unless `retry_min` says otherwise.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(1);

/// The largest registration retry delay unless `retry_max` says otherwise.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

impl Peer {
    /// The registration lifetime: asked for when this gateway registers
    /// with the peer, the longest granted when the peer registers here.
    pub fn refresh(&self) -> Duration {
        self.refresh.unwrap_or(DEFAULT_REFRESH)
    }

    /// The probe round trip above which the link is lagged.
    pub fn qualify(&self) -> Duration {
        self.qualify.unwrap_or(DEFAULT_QUALIFY)
    }

    /// Missed probes in a row that make the link unreachable.
    pub fn unreachable_after(&self) -> u32 {
        self.unreachable_after.unwrap_or(DEFAULT_UNREACHABLE_AFTER)
    }

    /// The registration retry backoff, `(min, max)` with `min <= max`:
    /// exponential with jitter between the two.
    pub fn retry_range(&self) -> (Duration, Duration) {
        let min = self.retry_min.unwrap_or(DEFAULT_RETRY_MIN);
        let max = self.retry_max.unwrap_or(DEFAULT_RETRY_MAX);
        (min, max.max(min))
    }
}

impl Peer {
    /// Whether a datagram from `ip` may be taken as this peer's.
    ///
    /// The most specific matching `permit` or `deny` range decides; on a
    /// tie `deny` wins; an address no range matches is permitted. So
    /// `deny: [0.0.0.0/0]` with `permit: [10.0.0.0/8]` admits 10/8 only,
    /// whatever the order, as an Asterisk admin means it.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let best = |nets: &[IpNet]| {
            nets.iter()
                .filter(|n| n.contains(&ip))
                .map(IpNet::prefix_len)
                .max()
        };
        match (best(&self.permit), best(&self.deny)) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(p), Some(d)) => p > d,
        }
    }

    /// Whether trunk frames are sent to and accepted from this peer.
    pub fn is_trunk(&self) -> bool {
        self.trunk.is_some()
    }
}

/// Trunking settings of one peer (Asterisk's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrunkSettings {
    /// `trunkfreq`: the trunk tick.
    pub freq: TrunkFreq,
    /// `trunkmtu`: the largest meta trunk frame.
    pub mtu: TrunkMtu,
    /// `trunktimestamps`: entries carry their own 16-bit timestamp.
    pub timestamps: bool,
}

impl Default for TrunkSettings {
    fn default() -> Self {
        Self {
            freq: TrunkFreq::DEFAULT,
            mtu: TrunkMtu::DEFAULT,
            timestamps: true,
        }
    }
}

/// The trunk tick, 10 to 1000 ms (Asterisk's clamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrunkFreq(u16);

impl TrunkFreq {
    /// Allowed milliseconds.
    pub const RANGE: std::ops::RangeInclusive<u16> = 10..=1000;
    /// 20 ms.
    pub const DEFAULT: Self = Self(20);

    /// Checks and wraps a value in milliseconds.
    pub fn from_millis(ms: u64) -> Option<Self> {
        u16::try_from(ms)
            .ok()
            .filter(|v| Self::RANGE.contains(v))
            .map(Self)
    }

    /// Milliseconds.
    pub fn as_millis(self) -> u16 {
        self.0
    }

    /// As a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(u64::from(self.0))
    }
}

/// The largest meta trunk frame in bytes, 172 to 4000.
///
/// Asterisk accepts 172..3999 and reads at most 4096 bytes per datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrunkMtu(u16);

impl TrunkMtu {
    /// Allowed bytes.
    pub const RANGE: std::ops::RangeInclusive<u16> = 172..=4000;
    /// 1240 bytes, Asterisk's default.
    pub const DEFAULT: Self = Self(1240);

    /// Checks and wraps a size in bytes.
    pub fn new(bytes: u64) -> Option<Self> {
        u16::try_from(bytes)
            .ok()
            .filter(|v| Self::RANGE.contains(v))
            .map(Self)
    }

    /// Bytes.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// A called-number prefix: 1 to 80 characters from `0-9 * # + A-D a-z _ -`
/// (dialstring characters; Asterisk extensions may be names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalledPrefix(String);

impl CalledPrefix {
    /// The longest prefix.
    pub const MAX_LEN: usize = 80;

    /// Checks and wraps a prefix.
    pub fn new(prefix: &str) -> Option<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= Self::MAX_LEN
            && prefix.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'*' | b'#' | b'+' | b'_' | b'-')
            });
        ok.then(|| Self(prefix.to_owned()))
    }

    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `called` starts with this prefix.
    pub fn matches(&self, called: &str) -> bool {
        called.starts_with(&self.0)
    }
}

/// One route: a NEW that matches goes to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Only NEWs arriving from this peer (any peer when `None`).
    pub from: Option<PeerName>,
    /// Only called numbers starting with this (any when `None`).
    pub prefix: Option<CalledPrefix>,
    /// The egress peer.
    pub to: PeerName,
}

impl Route {
    /// Whether a NEW from `ingress` for `called` takes this route.
    pub fn matches(&self, ingress: &PeerName, called: &str) -> bool {
        self.from.as_ref().is_none_or(|f| f == ingress)
            && self.prefix.as_ref().is_none_or(|p| p.matches(called))
    }
}

/// Call timers (seconds in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `call_idle`: a call with no frame either way for this long is
    /// reaped (default 60 s: Asterisk PINGs every 21 s and LAGRQs every
    /// 10 s, so a live call is never this quiet, even on hold).
    pub call_idle: Duration,
    /// `setup`: a NEW whose far side never answered is dropped after this
    /// (default 40 s: Asterisk gives up retransmitting at 32 s).
    pub setup: Duration,
    /// `hangup_linger`: a call is kept this long after HANGUP or REJECT
    /// so the final ACK and retransmissions still pass (default 10 s, as
    /// Asterisk's forced destroy).
    pub hangup_linger: Duration,
    /// `callno_quarantine`: a freed call number is not reused for this
    /// long (default 60 s, as Asterisk).
    pub callno_quarantine: Duration,
    /// `drain`: after SIGTERM the gateway refuses new calls and waits this
    /// long at most for the calls in its table to end (default 60 s).
    pub drain: Duration,
    /// The limits of the top-level `admission:` map. Carried here, with
    /// the other settings every configuration built in code takes from
    /// `Timeouts::default()`, so such configurations need no new field.
    pub admission: Admission,
}

/// Admission control (`admission:`): what a source, a call or the whole
/// gateway may open, and for how long a call may stay unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// `maxcallnumbers`: table entries (calls, POKE and registration
    /// exchanges, lingering calls) opened from one source IP address,
    /// any port, at once (default 4096, as Asterisk's per-address
    /// `maxcallnumbers`). Gateway peers are not limited per source.
    pub maxcallnumbers: u32,
    /// `new_rate`: NEW, POKE and REGREQ per second from one source IP
    /// address (default 1000); the excess is dropped unanswered.
    pub new_rate: u32,
    /// `new_burst`: how many of those may come at once (default 2000).
    pub new_burst: u32,
    /// `max_unanswered`: exchanges in the whole table waiting for the far
    /// side's first reply (default 4096).
    pub max_unanswered: u32,
    /// `max_unanswered_per_source`: of those, how many one source IP
    /// address may hold (default 1024), so that one address cannot take
    /// the whole `max_unanswered`. Gateway peers are not limited per source.
    pub max_unanswered_per_source: u32,
    /// `max_calls`: table entries in all (default: the whole table,
    /// 32765 call numbers).
    pub max_calls: u32,
    /// `control_rate`: DTMF, text and control frames per second from one
    /// leg of a call (default 50); the excess is dropped, HANGUP never.
    pub control_rate: u32,
    /// `control_burst`: how many of those may come at once (default 100).
    pub control_burst: u32,
    /// `answer_timeout`: a call not answered this long after its NEW, or
    /// a POKE or registration exchange not complete, is reaped (default
    /// 600 s). Encrypted calls, whose ANSWER the gateway cannot read, keep
    /// only the idle timer.
    pub answer_timeout: Duration,
}

impl Admission {
    /// Call numbers the table has (2 to 32766).
    pub const TABLE_SIZE: u32 = 32765;
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            maxcallnumbers: 4096,
            new_rate: 1000,
            new_burst: 2000,
            max_unanswered: 4096,
            max_unanswered_per_source: 1024,
            max_calls: Self::TABLE_SIZE,
            control_rate: 50,
            control_burst: 100,
            answer_timeout: Duration::from_secs(600),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            call_idle: Duration::from_secs(60),
            setup: Duration::from_secs(40),
            hangup_linger: Duration::from_secs(10),
            callno_quarantine: Duration::from_secs(60),
            drain: Duration::from_secs(60),
            admission: Admission::default(),
        }
    }
}

/// The admin HTTP listener: `/metrics`, `/status`, `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where it listens (TCP); `None` when the file says `listen: none`.
    /// Default `127.0.0.1:9569`: loopback only.
    pub listen: Option<SocketAddr>,
}

impl AdminSettings {
    /// The default listen address, `127.0.0.1:9569`.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ADMIN_PORT);

    /// No admin listener.
    pub const DISABLED: Self = Self { listen: None };
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: Some(Self::DEFAULT_LISTEN),
        }
    }
}

/// Logging settings (`log:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `format`: human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// `level`: the most verbose level logged. `RUST_LOG`, when set,
    /// overrides it.
    pub level: LogLevel,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `human`: one readable line per event (the default).
    #[default]
    Human,
    /// `json`: one JSON object per line, for a log collector.
    Json,
}

impl LogFormat {
    /// Every format, in the order the file documents them.
    pub const ALL: [Self; 2] = [Self::Human, Self::Json];

    /// The name used in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }

    /// The format called `name` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// The most verbose level logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `error`.
    Error,
    /// `warn`.
    Warn,
    /// `info` (the default).
    #[default]
    Info,
    /// `debug`.
    Debug,
    /// `trace`.
    Trace,
}

impl LogLevel {
    /// Every level, least verbose first.
    pub const ALL: [Self; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// The name used in the file (and by `RUST_LOG`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }

    /// The level called `name` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(permit: &[&str], deny: &[&str]) -> Peer {
        Peer {
            name: PeerName::new("p").unwrap(),
            host: PeerHost::Dynamic,
            kind: PeerKind::Pbx,
            trunk: None,
            permit: permit.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
            maxcalls: None,
            keepalive: None,
            secret: None,
            register: None,
            outkey: None,
            inkeys: Vec::new(),
            refresh: None,
            qualify: None,
            unreachable_after: None,
            retry_min: None,
            retry_max: None,
        }
    }

    #[test]
    fn most_specific_acl_entry_wins() {
        let p = peer(&["10.0.0.0/8"], &["0.0.0.0/0"]);
        assert!(p.permits("10.1.2.3".parse().unwrap()));
        assert!(!p.permits("192.0.2.1".parse().unwrap()));
        let p = peer(&["0.0.0.0/0"], &["10.9.0.0/16"]);
        assert!(p.permits("10.1.2.3".parse().unwrap()));
        assert!(!p.permits("10.9.2.3".parse().unwrap()));
        let p = peer(&["10.0.0.0/8"], &["10.0.0.0/8"]);
        assert!(!p.permits("10.1.2.3".parse().unwrap()));
        assert!(peer(&[], &[]).permits("::1".parse().unwrap()));
    }

    #[test]
    fn secrets() {
        let s = Secret::new("a!~Z09\"'#").unwrap();
        assert_eq!(s.expose(), "a!~Z09\"'#");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.clone(), s);
        assert!(Secret::new(&"x".repeat(Secret::MAX_LEN)).is_some());
        for bad in ["", "a b", "a;b", "a\tb", "é", "a\u{7f}"] {
            assert_eq!(Secret::new(bad), None, "{bad:?}");
        }
        assert_eq!(Secret::new(&"x".repeat(Secret::MAX_LEN + 1)), None);
        let mut p = peer(&[], &[]);
        p.retry_min = Some(Duration::from_secs(90));
        assert_eq!(
            p.retry_range(),
            (Duration::from_secs(90), Duration::from_secs(90))
        );
    }

    #[test]
    fn names_and_ranges() {
        assert!(PeerName::new("site-a.pbx_1").is_some());
        assert!(PeerName::new("").is_none());
        assert!(PeerName::new("a b").is_none());
        assert_eq!(TrunkFreq::from_millis(9), None);
        assert_eq!(
            TrunkFreq::from_millis(1000).map(TrunkFreq::as_millis),
            Some(1000)
        );
        assert_eq!(TrunkMtu::new(171), None);
        let r = Route {
            from: None,
            prefix: CalledPrefix::new("2"),
            to: PeerName::new("b").unwrap(),
        };
        assert!(r.matches(&PeerName::new("a").unwrap(), "2001"));
        assert!(!r.matches(&PeerName::new("a").unwrap(), "3001"));
    }
}
