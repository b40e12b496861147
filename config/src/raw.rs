//! The file as written: what serde-saphyr fills before validation.
//!
//! Every value is [`Spanned`] so validation can point at it. Numbers are
//! read as `i64` so an out-of-range value is reported as such, with its
//! location, rather than as a type error.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) workers: Option<Spanned<i64>>,
    pub(crate) trunkfreq: Option<Spanned<i64>>,
    pub(crate) trunkmtu: Option<Spanned<i64>>,
    pub(crate) trunktimestamps: Option<Spanned<bool>>,
    pub(crate) udp_gso: Option<Spanned<bool>>,
    pub(crate) timeouts: Option<Spanned<RawTimeouts>>,
    pub(crate) admin: Option<Spanned<RawAdmin>>,
    pub(crate) log: Option<Spanned<RawLog>>,
    pub(crate) peers: Spanned<PeerMap>,
    pub(crate) routes: Spanned<Vec<Spanned<RawRoute>>>,
}

/// `timeouts:`, seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) call_idle: Option<Spanned<i64>>,
    pub(crate) setup: Option<Spanned<i64>>,
    pub(crate) hangup_linger: Option<Spanned<i64>>,
    pub(crate) callno_quarantine: Option<Spanned<i64>>,
    pub(crate) drain: Option<Spanned<i64>>,
}

/// `admin:`, the admin HTTP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    /// An address, or `none`.
    pub(crate) listen: Option<Spanned<String>>,
}

/// `log:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) level: Option<Spanned<String>>,
}

/// One entry under `peers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub(crate) host: Spanned<String>,
    pub(crate) kind: Spanned<String>,
    pub(crate) trunk: Option<Spanned<bool>>,
    pub(crate) trunkfreq: Option<Spanned<i64>>,
    pub(crate) trunkmtu: Option<Spanned<i64>>,
    pub(crate) trunktimestamps: Option<Spanned<bool>>,
    pub(crate) permit: Option<Vec<Spanned<String>>>,
    pub(crate) deny: Option<Vec<Spanned<String>>>,
    pub(crate) maxcalls: Option<Spanned<i64>>,
    pub(crate) keepalive: Option<Spanned<i64>>,
    /// `secret:` with no value is `Some` with `None` inside, so an empty
    /// secret is an error rather than no secret.
    #[serde(default, deserialize_with = "present")]
    pub(crate) secret: Option<Spanned<Option<String>>>,
    pub(crate) register: Option<Spanned<bool>>,
    pub(crate) username: Option<Spanned<String>>,
    pub(crate) refresh: Option<Spanned<i64>>,
    pub(crate) qualify: Option<Spanned<i64>>,
    pub(crate) unreachable_after: Option<Spanned<i64>>,
    pub(crate) retry_min: Option<Spanned<i64>>,
    pub(crate) retry_max: Option<Spanned<i64>>,
}

/// A key that is present, even with an empty (null) value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// One item under `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) from: Option<Spanned<String>>,
    /// A YAML integer (`prefix: 2`) arrives here as its text, as written.
    pub(crate) prefix: Option<Spanned<String>>,
    pub(crate) to: Spanned<String>,
}

/// `peers:` in file order, names with their locations.
///
/// A map type would lose the order (or need another dependency); this
/// keeps the entries as a list. Duplicate names are refused by the
/// deserializer's duplicate-key policy and checked again in validation.
#[derive(Debug)]
pub(crate) struct PeerMap(pub(crate) Vec<(Spanned<String>, Spanned<RawPeer>)>);

impl<'de> Deserialize<'de> for PeerMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PeerMapVisitor;

        impl<'de> Visitor<'de> for PeerMapVisitor {
            type Value = PeerMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of peer names to peers")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PeerMap, A::Error> {
                let mut peers = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    peers.push(entry);
                }
                Ok(PeerMap(peers))
            }
        }

        deserializer.deserialize_map(PeerMapVisitor)
    }
}
