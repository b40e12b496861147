//! The file as written: what serde-saphyr fills before validation.
//!
//! Every value is [`Spanned`] so validation can point at it. Numbers are
//! read as `i64` so an out-of-range value is reported as such, with its
//! location, rather than as a type error.

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
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
    pub(crate) admission: Option<Spanned<RawAdmission>>,
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

/// `admission:`, limits on what may open calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmission {
    pub(crate) maxcallnumbers: Option<Spanned<i64>>,
    pub(crate) new_rate: Option<Spanned<i64>>,
    pub(crate) new_burst: Option<Spanned<i64>>,
    pub(crate) max_unanswered: Option<Spanned<i64>>,
    pub(crate) max_unanswered_per_source: Option<Spanned<i64>>,
    pub(crate) max_calls: Option<Spanned<i64>>,
    pub(crate) control_rate: Option<Spanned<i64>>,
    pub(crate) control_burst: Option<Spanned<i64>>,
    pub(crate) answer_timeout: Option<Spanned<i64>>,
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
    /// As `secret`: `outkey:` with no value is an empty path, an error.
    #[serde(default, deserialize_with = "present")]
    pub(crate) outkey: Option<Spanned<Option<String>>>,
    /// `inkeys:` with no value is an empty list, an error.
    #[serde(default, deserialize_with = "present")]
    pub(crate) inkeys: Option<Spanned<Paths>>,
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

/// A list of paths, or one path (`inkeys: /etc/a.pub` is
/// `inkeys: [/etc/a.pub]`); the one path's location is its `Spanned`'s.
#[derive(Debug)]
pub(crate) enum Paths {
    /// A single string.
    One(String),
    /// A list, each item located.
    Many(Vec<Spanned<String>>),
    /// A number or a boolean, as the error shows it: not a path.
    NotText(String),
}

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathsVisitor;

        impl<'de> Visitor<'de> for PathsVisitor {
            type Value = Paths;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of paths or one path")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Paths, E> {
                Ok(Paths::One(v.to_owned()))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Paths, E> {
                Ok(Paths::Many(Vec::new()))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Paths, E> {
                Ok(Paths::Many(Vec::new()))
            }

            // Validation reports these at the value; serde's own error
            // would point at the key.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Paths, E> {
                Ok(Paths::NotText(v.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Paths, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element()? {
                    paths.push(path);
                }
                Ok(Paths::Many(paths))
            }
        }

        deserializer.deserialize_any(PathsVisitor)
    }
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
