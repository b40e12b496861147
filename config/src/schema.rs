//! What each key of the file accepts, in words, for error messages.

use crate::locate::Segment;

/// The expected shape of a value and what is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expect {
    /// A noun phrase: "a whole number", "a list", ...
    pub(crate) noun: &'static str,
    /// The allowed values, in words.
    pub(crate) allowed: &'static str,
}

const fn expect(noun: &'static str, allowed: &'static str) -> Expect {
    Expect { noun, allowed }
}

pub(crate) const LISTEN: &str =
    "an IP address with optional :port, e.g. 0.0.0.0:4569 or \"[::]:4569\" (quoted)";
pub(crate) const HOST: &str = "an IP address with optional :port, or dynamic";
pub(crate) const WORKERS: &str = "1 to 256 (threads)";
pub(crate) const TRUNKFREQ: &str = "10 to 1000 (milliseconds)";
pub(crate) const TRUNKMTU: &str = "172 to 4000 (bytes)";
pub(crate) const BOOL: &str = "true or false (also yes/no, on/off)";
pub(crate) const SECONDS: &str = "1 to 86400 (seconds)";
pub(crate) const KIND: &str = "pbx or gateway";
pub(crate) const NET: &str = "an IP range such as 10.0.0.0/8 or 2001:db8::/32, or one IP address";
pub(crate) const NETS: &str = "a list of IP ranges, e.g. [10.0.0.0/8, 192.0.2.7]";
pub(crate) const MAXCALLS: &str = "1 to 32767 (calls)";
pub(crate) const KEEPALIVE: &str = "0 (no probes) to 300 (seconds), on gateway peers";
pub(crate) const SECRET: &str =
    "1 to 128 printable ASCII characters, no whitespace and no ;, on gateway peers";
pub(crate) const REGISTER: &str =
    "true or false (also yes/no, on/off), on gateway peers with a static host";
pub(crate) const USERNAME: &str = "1 to 64 characters from A-Z a-z 0-9 _ - ., with register: true";
pub(crate) const OUTKEY: &str =
    "the path of this gateway's PEM RSA private key file (RSA PRIVATE KEY or PRIVATE KEY, unencrypted, 1024 to 4096 bits), best absolute, with register: true";
pub(crate) const INKEYS: &str =
    "a list of 1 to 16 paths of PEM RSA public key files (PUBLIC KEY or RSA PUBLIC KEY, 1024 to 4096 bits), or one path, best absolute, on host: dynamic gateway peers";
pub(crate) const INKEY: &str =
    "the path of a PEM RSA public key file (PUBLIC KEY or RSA PUBLIC KEY, 1024 to 4096 bits), best absolute";
pub(crate) const REFRESH: &str = "10 to 3600 (seconds), on gateway peers";
pub(crate) const QUALIFY: &str = "100 to 60000 (milliseconds), on gateway peers";
pub(crate) const UNREACHABLE_AFTER: &str = "1 to 10 (missed probes), on gateway peers";
pub(crate) const RETRY_MIN: &str = "1 to 60 (seconds), on gateway peers";
pub(crate) const RETRY_MAX: &str = "1 to 3600 (seconds), at least retry_min, on gateway peers";
pub(crate) const PEER_NAME: &str = "1 to 64 characters from A-Z a-z 0-9 _ - .";
pub(crate) const PEER_REF: &str = "the name of a peer under peers";
pub(crate) const PREFIX: &str = "1 to 80 characters from 0-9 A-Z a-z * # + _ -";
pub(crate) const PEERS: &str = "a map of peer names to peer settings, at least one peer";
pub(crate) const PEER: &str =
    "a map with host and kind, and optionally trunk, trunkfreq, trunkmtu, trunktimestamps, permit, deny, maxcalls, keepalive, secret, register, username, outkey, inkeys, refresh, qualify, unreachable_after, retry_min, retry_max";
pub(crate) const ROUTES: &str = "a list of routes, at least one";
pub(crate) const ROUTE: &str = "a map with to, and optionally from and prefix";
pub(crate) const TIMEOUTS: &str =
    "a map with call_idle, setup, hangup_linger, callno_quarantine, drain";
pub(crate) const ADMISSION: &str =
    "a map with maxcallnumbers, new_rate, new_burst, max_unanswered, max_unanswered_per_source, max_calls, control_rate, control_burst, answer_timeout";
pub(crate) const MAXCALLNUMBERS: &str = "1 to 32765 (table entries per source address)";
pub(crate) const NEW_RATE: &str = "1 to 100000 (per second, per source address)";
pub(crate) const NEW_BURST: &str = "1 to 100000 (at once, per source address)";
pub(crate) const MAX_UNANSWERED: &str = "1 to 32765 (exchanges waiting for a first reply)";
pub(crate) const MAX_UNANSWERED_PER_SOURCE: &str =
    "1 to 32765 (exchanges waiting for a first reply, per source address)";
pub(crate) const MAX_CALLS_ALL: &str = "1 to 32765 (table entries)";
pub(crate) const CONTROL_RATE: &str = "1 to 10000 (frames per second, per call leg)";
pub(crate) const CONTROL_BURST: &str = "1 to 10000 (frames at once, per call leg)";
pub(crate) const ANSWER_TIMEOUT: &str = "10 to 86400 (seconds)";
pub(crate) const ADMIN: &str = "a map with listen";
pub(crate) const ADMIN_LISTEN: &str =
    "an IP address with optional :port (default 9569), e.g. 127.0.0.1:9569, or none (no admin listener)";
pub(crate) const LOG: &str = "a map with format and level";
pub(crate) const LOG_FORMAT: &str = "human or json";
pub(crate) const LOG_LEVEL: &str = "error, warn, info, debug or trace";
pub(crate) const TOP: &str =
    "a map with peers and routes, and optionally listen, workers, trunkfreq, trunkmtu, trunktimestamps, udp_gso, timeouts, admission, admin, log";

const NUMBER: &str = "a whole number";
const BOOLEAN: &str = "a boolean";
const TEXT: &str = "a single value";
const MAP: &str = "a map";
const LIST: &str = "a list";
const PATHS: &str = "a list of paths";

/// Whether `path` is a peer's `secret`, whose text errors must not show.
pub(crate) fn is_secret(path: &[Segment]) -> bool {
    matches!(path, [Segment::Key(top), Segment::Key(_), Segment::Key(k)] if top == "peers" && k == "secret")
}

/// What the value at `path` should be, if the path is in the schema.
pub(crate) fn expected_at(path: &[Segment]) -> Option<Expect> {
    use Segment::{Index, Key};
    fn key(s: &Segment) -> Option<&str> {
        match s {
            Key(k) => Some(k.as_str()),
            Index(_) => None,
        }
    }
    let e = match path {
        [] => expect(MAP, TOP),
        [top] => match key(top)? {
            "listen" => expect(TEXT, LISTEN),
            "workers" => expect(NUMBER, WORKERS),
            "trunkfreq" => expect(NUMBER, TRUNKFREQ),
            "trunkmtu" => expect(NUMBER, TRUNKMTU),
            "trunktimestamps" => expect(BOOLEAN, BOOL),
            "udp_gso" => expect(BOOLEAN, BOOL),
            "timeouts" => expect(MAP, TIMEOUTS),
            "admission" => expect(MAP, ADMISSION),
            "admin" => expect(MAP, ADMIN),
            "log" => expect(MAP, LOG),
            "peers" => expect(MAP, PEERS),
            "routes" => expect(LIST, ROUTES),
            _ => return None,
        },
        [top, Key(_)] if key(top)? == "timeouts" => expect(NUMBER, SECONDS),
        [top, Key(k)] if key(top)? == "admission" => match k.as_str() {
            "maxcallnumbers" => expect(NUMBER, MAXCALLNUMBERS),
            "new_rate" => expect(NUMBER, NEW_RATE),
            "new_burst" => expect(NUMBER, NEW_BURST),
            "max_unanswered" => expect(NUMBER, MAX_UNANSWERED),
            "max_unanswered_per_source" => expect(NUMBER, MAX_UNANSWERED_PER_SOURCE),
            "max_calls" => expect(NUMBER, MAX_CALLS_ALL),
            "control_rate" => expect(NUMBER, CONTROL_RATE),
            "control_burst" => expect(NUMBER, CONTROL_BURST),
            "answer_timeout" => expect(NUMBER, ANSWER_TIMEOUT),
            _ => return None,
        },
        [top, Key(k)] if key(top)? == "admin" && k == "listen" => expect(TEXT, ADMIN_LISTEN),
        [top, Key(k)] if key(top)? == "log" => match k.as_str() {
            "format" => expect(TEXT, LOG_FORMAT),
            "level" => expect(TEXT, LOG_LEVEL),
            _ => return None,
        },
        [top, Key(_)] if key(top)? == "peers" => expect(MAP, PEER),
        [top, Index(_)] if key(top)? == "routes" => expect(MAP, ROUTE),
        [top, Key(_), Key(k)] if key(top)? == "peers" => match k.as_str() {
            "host" => expect(TEXT, HOST),
            "kind" => expect(TEXT, KIND),
            "trunk" | "trunktimestamps" => expect(BOOLEAN, BOOL),
            "trunkfreq" => expect(NUMBER, TRUNKFREQ),
            "trunkmtu" => expect(NUMBER, TRUNKMTU),
            "permit" | "deny" => expect(LIST, NETS),
            "maxcalls" => expect(NUMBER, MAXCALLS),
            "keepalive" => expect(NUMBER, KEEPALIVE),
            "secret" => expect(TEXT, SECRET),
            "register" => expect(BOOLEAN, REGISTER),
            "username" => expect(TEXT, USERNAME),
            "outkey" => expect(TEXT, OUTKEY),
            "inkeys" => expect(PATHS, INKEYS),
            "refresh" => expect(NUMBER, REFRESH),
            "qualify" => expect(NUMBER, QUALIFY),
            "unreachable_after" => expect(NUMBER, UNREACHABLE_AFTER),
            "retry_min" => expect(NUMBER, RETRY_MIN),
            "retry_max" => expect(NUMBER, RETRY_MAX),
            _ => return None,
        },
        [top, Key(_), Key(k), Index(_)]
            if key(top)? == "peers" && (k == "permit" || k == "deny") =>
        {
            expect(TEXT, NET)
        }
        [top, Key(_), Key(k), Index(_)] if key(top)? == "peers" && k == "inkeys" => {
            expect(TEXT, INKEY)
        }
        [top, Index(_), Key(k)] if key(top)? == "routes" => match k.as_str() {
            "from" | "to" => expect(TEXT, PEER_REF),
            "prefix" => expect(TEXT, PREFIX),
            _ => return None,
        },
        _ => return None,
    };
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &[&str]) -> Vec<Segment> {
        path.iter()
            .map(|s| match s.parse() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn lookups() {
        let at = |p: &[&str]| expected_at(&keys(p)).map(|e| e.allowed);
        assert_eq!(at(&[]), Some(TOP));
        assert_eq!(at(&["peers", "a", "trunkfreq"]), Some(TRUNKFREQ));
        assert_eq!(at(&["peers", "a", "deny", "3"]), Some(NET));
        assert_eq!(at(&["routes", "0", "prefix"]), Some(PREFIX));
        assert_eq!(at(&["timeouts", "setup"]), Some(SECONDS));
        assert_eq!(at(&["timeouts", "drain"]), Some(SECONDS));
        assert_eq!(at(&["admin"]), Some(ADMIN));
        assert_eq!(at(&["admission"]), Some(ADMISSION));
        assert_eq!(at(&["admission", "new_rate"]), Some(NEW_RATE));
        assert_eq!(at(&["admission", "nope"]), None);
        assert_eq!(at(&["admin", "listen"]), Some(ADMIN_LISTEN));
        assert_eq!(at(&["log", "level"]), Some(LOG_LEVEL));
        assert_eq!(at(&["log", "nope"]), None);
        assert_eq!(at(&["nope"]), None);
        assert_eq!(at(&["peers", "a", "nope"]), None);
        assert_eq!(at(&["peers", "a", "secret"]), Some(SECRET));
        assert_eq!(at(&["peers", "a", "retry_max"]), Some(RETRY_MAX));
        assert_eq!(at(&["peers", "a", "outkey"]), Some(OUTKEY));
        assert_eq!(at(&["peers", "a", "inkeys"]), Some(INKEYS));
        assert_eq!(at(&["peers", "a", "inkeys", "1"]), Some(INKEY));
    }
}
