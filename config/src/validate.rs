//! From the raw file to the validated [`Config`]: ranges, addresses,
//! names and the rules between keys, each error at its value.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use crate::error::{ConfigError, ErrorKind};
use crate::locate::shorten;
use crate::model::{
    AdminSettings, Admission, CalledPrefix, Config, LogFormat, LogLevel, LogSettings, Peer,
    PeerHost, PeerKind, PeerName, PrivateKeyFile, PublicKeyFile, Route, Secret, Timeouts,
    TrunkFreq, TrunkMtu, TrunkSettings, ADMIN_PORT, DEFAULT_RETRY_MIN, IAX2_PORT,
};
use crate::raw::{
    Paths, RawAdmin, RawAdmission, RawConfig, RawLog, RawPeer, RawRoute, RawTimeouts,
};
use crate::{keyfile, schema};

/// Most worker threads.
const MAX_WORKERS: i64 = 256;
/// Most `maxcalls` (the call-number space of one link).
const MAX_CALLS: i64 = 32767;
/// Longest timeout, one day.
const MAX_TIMEOUT_SECS: i64 = 86_400;
/// `refresh`, seconds.
const REFRESH_SECS: RangeInclusive<i64> = 10..=3600;
/// `qualify`, milliseconds.
const QUALIFY_MS: RangeInclusive<i64> = 100..=60_000;
/// `unreachable_after`, missed probes.
const UNREACHABLE_AFTER: RangeInclusive<i64> = 1..=10;
/// `retry_min`, seconds.
const RETRY_MIN_SECS: RangeInclusive<i64> = 1..=60;
/// `retry_max`, seconds.
const RETRY_MAX_SECS: RangeInclusive<i64> = 1..=3600;
/// Most `inkeys` of one peer.
const MAX_INKEYS: usize = 16;

/// Validation context: the file name for errors.
struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    /// An [`ErrorKind::Invalid`] error at `at`.
    fn error<T>(
        &self,
        at: &Spanned<T>,
        path: &str,
        message: String,
        allowed: Option<&str>,
    ) -> ConfigError {
        // `referenced` is where the value is used (an alias site for an
        // aliased value); fall back to the definition, then to the top.
        let loc = if at.referenced.line() > 0 {
            at.referenced
        } else {
            at.defined
        };
        ConfigError {
            file: self.file.to_owned(),
            line: loc.line().max(1),
            column: loc.column().max(1),
            key_path: path.to_owned(),
            message,
            allowed: allowed.map(str::to_owned),
            kind: ErrorKind::Invalid,
        }
    }

    /// An integer within `range`.
    fn ranged(
        &self,
        value: &Spanned<i64>,
        range: RangeInclusive<i64>,
        path: &str,
        allowed: &str,
    ) -> Result<i64, ConfigError> {
        if range.contains(&value.value) {
            Ok(value.value)
        } else {
            Err(self.error(
                value,
                path,
                format!("{} is out of range", value.value),
                Some(allowed),
            ))
        }
    }

    /// An error unless the peer is a gateway or `value` is absent; `why`
    /// says what the key is for.
    fn gateway_only<T>(
        &self,
        kind: PeerKind,
        value: Option<&Spanned<T>>,
        path: &str,
        key: &str,
        why: &str,
    ) -> Result<(), ConfigError> {
        match value {
            Some(v) if kind != PeerKind::Gateway => Err(self.error(
                v,
                path,
                format!("{key} applies to gateway peers only ({why})"),
                Some(&format!("kind: gateway on this peer, or no {key}")),
            )),
            Some(_) | None => Ok(()),
        }
    }

    /// An optional gateway-peer number within `range`, as a duration of
    /// `unit`s.
    #[allow(clippy::too_many_arguments)]
    fn gateway_duration(
        &self,
        kind: PeerKind,
        value: Option<&Spanned<i64>>,
        range: RangeInclusive<i64>,
        unit: fn(u64) -> Duration,
        path: &str,
        key: &str,
        why: &str,
        allowed: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        self.gateway_only(kind, value, path, key, why)?;
        value
            .map(|v| {
                let n = self.ranged(v, range, path, allowed)?;
                Ok(unit(n.unsigned_abs()))
            })
            .transpose()
    }

    /// A valid `secret`, located; its text is never put in the error.
    fn secret(&self, raw: &Spanned<Option<String>>, path: &str) -> Result<Secret, ConfigError> {
        let text = raw.value.as_deref().unwrap_or_default();
        if let Some(secret) = Secret::new(text) {
            return Ok(secret);
        }
        let what = if text.is_empty() {
            "the secret is empty".to_owned()
        } else if text.len() > Secret::MAX_LEN {
            format!("the secret is {} bytes long", text.len())
        } else {
            let (i, c) = text
                .chars()
                .enumerate()
                .find(|&(_, c)| u8::try_from(c).map_or(true, |b| !Secret::allowed_byte(b)))
                .unwrap_or((0, '\0'));
            let c = match c {
                ' ' => "a space".to_owned(),
                '\t' => "a tab".to_owned(),
                '\n' | '\r' => "a line break".to_owned(),
                ';' => "`;`".to_owned(),
                c if c.is_whitespace() => "whitespace".to_owned(),
                c if c.is_control() => "a control character".to_owned(),
                _ => "a character that is not ASCII".to_owned(),
            };
            format!("the secret has {c} at character {}", i + 1)
        };
        Err(self.error(raw, path, what, Some(schema::SECRET)))
    }

    /// The `outkey` file: read, parsed and checked; an error is at the
    /// path and never holds the file's content.
    fn outkey(
        &self,
        raw: &Spanned<Option<String>>,
        path: &str,
    ) -> Result<PrivateKeyFile, ConfigError> {
        let file = raw.value.as_deref().unwrap_or_default();
        let invalid = |message| self.error(raw, path, message, Some(schema::OUTKEY));
        let mut bytes = keyfile::read(file).map_err(invalid)?;
        let key = keyfile::text(file, &bytes).and_then(|pem| PrivateKeyFile::from_pem(file, pem));
        keyfile::wipe(&mut bytes);
        key.map_err(invalid)
    }

    /// One `inkeys` file, `file`, written at `at`.
    fn inkey<T>(
        &self,
        at: &Spanned<T>,
        file: &str,
        path: &str,
    ) -> Result<PublicKeyFile, ConfigError> {
        let invalid = |message| self.error(at, path, message, Some(schema::INKEY));
        let bytes = keyfile::read(file).map_err(invalid)?;
        keyfile::text(file, &bytes)
            .and_then(|pem| PublicKeyFile::from_pem(file, pem))
            .map_err(invalid)
    }

    /// The `inkeys` files: a list of 1 to [`MAX_INKEYS`] paths, or one.
    fn inkeys(
        &self,
        raw: Option<&Spanned<Paths>>,
        path: &str,
    ) -> Result<Vec<PublicKeyFile>, ConfigError> {
        match raw.map(|r| (r, &r.value)) {
            None => Ok(Vec::new()),
            Some((at, Paths::One(file))) => Ok(vec![self.inkey(at, file, path)?]),
            Some((at, Paths::NotText(found))) => Err(ConfigError {
                kind: ErrorKind::WrongType,
                ..self.error(
                    at,
                    path,
                    format!("expected a list of paths, found `{}`", shorten(found, 40)),
                    Some(schema::INKEYS),
                )
            }),
            Some((at, Paths::Many(files))) if files.is_empty() => Err(self.error(
                at,
                path,
                "the list of inkeys is empty".to_owned(),
                Some(schema::INKEYS),
            )),
            Some((_, Paths::Many(files))) => files
                .iter()
                .enumerate()
                .map(|(i, file)| {
                    let item = format!("{path}[{i}]");
                    if i >= MAX_INKEYS {
                        return Err(self.error(
                            file,
                            &item,
                            format!("more than {MAX_INKEYS} inkeys"),
                            Some(schema::INKEYS),
                        ));
                    }
                    self.inkey(file, &file.value, &item)
                })
                .collect(),
        }
    }

    fn trunkfreq(&self, value: &Spanned<i64>, path: &str) -> Result<TrunkFreq, ConfigError> {
        let out_of_range = || {
            self.error(
                value,
                path,
                format!("{} is out of range", value.value),
                Some(schema::TRUNKFREQ),
            )
        };
        let ms = u64::try_from(value.value).map_err(|_| out_of_range())?;
        TrunkFreq::from_millis(ms).ok_or_else(out_of_range)
    }

    fn trunkmtu(&self, value: &Spanned<i64>, path: &str) -> Result<TrunkMtu, ConfigError> {
        let out_of_range = || {
            self.error(
                value,
                path,
                format!("{} is out of range", value.value),
                Some(schema::TRUNKMTU),
            )
        };
        let bytes = u64::try_from(value.value).map_err(|_| out_of_range())?;
        TrunkMtu::new(bytes).ok_or_else(out_of_range)
    }

    fn seconds(
        &self,
        value: Option<&Spanned<i64>>,
        path: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let secs = self.ranged(value, 1..=MAX_TIMEOUT_SECS, path, schema::SECONDS)?;
        Ok(Duration::from_secs(secs.unsigned_abs()))
    }

    fn timeouts(&self, raw: Option<&Spanned<RawTimeouts>>) -> Result<Timeouts, ConfigError> {
        let default = Timeouts::default();
        let Some(raw) = raw else {
            return Ok(default);
        };
        let t = &raw.value;
        Ok(Timeouts {
            call_idle: self.seconds(
                t.call_idle.as_ref(),
                "timeouts.call_idle",
                default.call_idle,
            )?,
            setup: self.seconds(t.setup.as_ref(), "timeouts.setup", default.setup)?,
            hangup_linger: self.seconds(
                t.hangup_linger.as_ref(),
                "timeouts.hangup_linger",
                default.hangup_linger,
            )?,
            callno_quarantine: self.seconds(
                t.callno_quarantine.as_ref(),
                "timeouts.callno_quarantine",
                default.callno_quarantine,
            )?,
            drain: self.seconds(t.drain.as_ref(), "timeouts.drain", default.drain)?,
            admission: default.admission,
        })
    }

    /// `admission:`, each key in its range, defaults for the rest.
    fn admission(&self, raw: Option<&Spanned<RawAdmission>>) -> Result<Admission, ConfigError> {
        let mut a = Admission::default();
        let Some(raw) = raw else {
            return Ok(a);
        };
        let r = &raw.value;
        let table = i64::from(Admission::TABLE_SIZE);
        // Each count: its field, its value in the file, its key, its range
        // and how an error states the range.
        #[rustfmt::skip]
        let counts = [
            (&mut a.maxcallnumbers, &r.maxcallnumbers, "maxcallnumbers", 1..=table, schema::MAXCALLNUMBERS),
            (&mut a.new_rate, &r.new_rate, "new_rate", 1..=100_000, schema::NEW_RATE),
            (&mut a.new_burst, &r.new_burst, "new_burst", 1..=100_000, schema::NEW_BURST),
            (&mut a.max_unanswered, &r.max_unanswered, "max_unanswered", 1..=table, schema::MAX_UNANSWERED),
            (&mut a.max_unanswered_per_source, &r.max_unanswered_per_source, "max_unanswered_per_source", 1..=table, schema::MAX_UNANSWERED_PER_SOURCE),
            (&mut a.max_calls, &r.max_calls, "max_calls", 1..=table, schema::MAX_CALLS_ALL),
            (&mut a.control_rate, &r.control_rate, "control_rate", 1..=10_000, schema::CONTROL_RATE),
            (&mut a.control_burst, &r.control_burst, "control_burst", 1..=10_000, schema::CONTROL_BURST),
        ];
        for (field, value, key, range, allowed) in counts {
            if let Some(v) = value {
                let n = self.ranged(v, range, &format!("admission.{key}"), allowed)?;
                *field = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        if let Some(v) = &r.answer_timeout {
            let secs = self.ranged(
                v,
                10..=MAX_TIMEOUT_SECS,
                "admission.answer_timeout",
                schema::ANSWER_TIMEOUT,
            )?;
            a.answer_timeout = Duration::from_secs(secs.unsigned_abs());
        }
        Ok(a)
    }

    fn admin(&self, raw: Option<&Spanned<RawAdmin>>) -> Result<AdminSettings, ConfigError> {
        let Some(listen) = raw.and_then(|a| a.value.listen.as_ref()) else {
            return Ok(AdminSettings::default());
        };
        let text = listen.value.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(AdminSettings::DISABLED);
        }
        match parse_addr_or_port(text, ADMIN_PORT) {
            Some(addr) => Ok(AdminSettings { listen: Some(addr) }),
            None => Err(self.error(
                listen,
                "admin.listen",
                format!(
                    "`{}` is not an IP address with optional port, nor none",
                    shorten(text, 60)
                ),
                Some(schema::ADMIN_LISTEN),
            )),
        }
    }

    fn log(&self, raw: Option<&Spanned<RawLog>>) -> Result<LogSettings, ConfigError> {
        let mut settings = LogSettings::default();
        let Some(raw) = raw else {
            return Ok(settings);
        };
        if let Some(format) = &raw.value.format {
            settings.format = LogFormat::from_name(&format.value).ok_or_else(|| {
                self.error(
                    format,
                    "log.format",
                    format!("`{}` is not a log format", shorten(&format.value, 60)),
                    Some(schema::LOG_FORMAT),
                )
            })?;
        }
        if let Some(level) = &raw.value.level {
            settings.level = LogLevel::from_name(&level.value).ok_or_else(|| {
                self.error(
                    level,
                    "log.level",
                    format!("`{}` is not a log level", shorten(&level.value, 60)),
                    Some(schema::LOG_LEVEL),
                )
            })?;
        }
        Ok(settings)
    }

    fn listen(&self, raw: Option<&Spanned<String>>) -> Result<SocketAddr, ConfigError> {
        let Some(raw) = raw else {
            return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), IAX2_PORT));
        };
        parse_addr(raw.value.trim()).ok_or_else(|| {
            self.error(
                raw,
                "listen",
                format!(
                    "`{}` is not an IP address with optional port",
                    shorten(&raw.value, 60)
                ),
                Some(schema::LISTEN),
            )
        })
    }

    fn host(&self, raw: &Spanned<String>, path: &str) -> Result<PeerHost, ConfigError> {
        let text = raw.value.trim();
        if text.eq_ignore_ascii_case("dynamic") {
            return Ok(PeerHost::Dynamic);
        }
        match parse_addr(text) {
            Some(addr) if addr.port() == 0 => Err(self.error(
                raw,
                path,
                format!("`{}` has port 0, which no peer can use", shorten(text, 60)),
                Some(schema::HOST),
            )),
            Some(addr) => Ok(PeerHost::Static(addr)),
            None => Err(self.error(
                raw,
                path,
                format!(
                    "`{}` is not an IP address (host names are not resolved)",
                    shorten(text, 60)
                ),
                Some(schema::HOST),
            )),
        }
    }

    fn nets(
        &self,
        raw: Option<&Vec<Spanned<String>>>,
        path: &str,
    ) -> Result<Vec<IpNet>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        raw.iter()
            .enumerate()
            .map(|(i, item)| {
                let text = item.value.trim();
                let net = text
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
                net.map(|n| n.trunc()).ok_or_else(|| {
                    self.error(
                        item,
                        &format!("{path}[{i}]"),
                        format!("`{}` is not an IP range", shorten(text, 60)),
                        Some(schema::NET),
                    )
                })
            })
            .collect()
    }

    fn peer(
        &self,
        name: &Spanned<String>,
        raw: &Spanned<RawPeer>,
        global_trunk: TrunkSettings,
    ) -> Result<Peer, ConfigError> {
        let shown = shorten(&name.value, 64);
        let peer_name = PeerName::new(&name.value).ok_or_else(|| {
            self.error(
                name,
                &format!("peers.{shown}"),
                format!("`{shown}` is not a valid peer name"),
                Some(schema::PEER_NAME),
            )
        })?;
        let path = |key: &str| format!("peers.{shown}.{key}");
        let p = &raw.value;
        let host = self.host(&p.host, &path("host"))?;
        let kind = match p.kind.value.trim() {
            k if k.eq_ignore_ascii_case("pbx") => PeerKind::Pbx,
            k if k.eq_ignore_ascii_case("gateway") => PeerKind::Gateway,
            other => {
                return Err(self.error(
                    &p.kind,
                    &path("kind"),
                    format!("`{}` is not a peer kind", shorten(other, 60)),
                    Some(schema::KIND),
                ))
            }
        };
        let trunk_on = p.trunk.as_ref().is_some_and(|t| t.value);
        let trunk = if trunk_on {
            Some(TrunkSettings {
                freq: match &p.trunkfreq {
                    Some(v) => self.trunkfreq(v, &path("trunkfreq"))?,
                    None => global_trunk.freq,
                },
                mtu: match &p.trunkmtu {
                    Some(v) => self.trunkmtu(v, &path("trunkmtu"))?,
                    None => global_trunk.mtu,
                },
                timestamps: p
                    .trunktimestamps
                    .as_ref()
                    .map_or(global_trunk.timestamps, |t| t.value),
            })
        } else {
            let needs_trunk = |key: &str| {
                format!("{key} applies to trunk peers only, and this peer has no trunk: true")
            };
            let allowed = |key: &str| format!("trunk: true on this peer, or no {key}");
            if let Some(v) = &p.trunkfreq {
                let key = "trunkfreq";
                return Err(self.error(v, &path(key), needs_trunk(key), Some(&allowed(key))));
            }
            if let Some(v) = &p.trunkmtu {
                let key = "trunkmtu";
                return Err(self.error(v, &path(key), needs_trunk(key), Some(&allowed(key))));
            }
            if let Some(v) = &p.trunktimestamps {
                let key = "trunktimestamps";
                return Err(self.error(v, &path(key), needs_trunk(key), Some(&allowed(key))));
            }
            None
        };
        let permit = self.nets(p.permit.as_ref(), &path("permit"))?;
        let deny = self.nets(p.deny.as_ref(), &path("deny"))?;
        self.gateway_only(
            kind,
            p.secret.as_ref(),
            &path("secret"),
            "secret",
            "gateways authenticate each other's registrations with it",
        )?;
        let secret = p
            .secret
            .as_ref()
            .map(|s| self.secret(s, &path("secret")))
            .transpose()?;
        self.gateway_only(
            kind,
            p.outkey.as_ref(),
            &path("outkey"),
            "outkey",
            "it signs a gateway's registration with another gateway",
        )?;
        self.gateway_only(
            kind,
            p.inkeys.as_ref(),
            &path("inkeys"),
            "inkeys",
            "they check the signature of a gateway that registers here",
        )?;
        if let Some(inkeys) = p.inkeys.as_ref().filter(|_| host != PeerHost::Dynamic) {
            return Err(self.error(
                inkeys,
                &path("inkeys"),
                "inkeys check the signature of a peer that registers here; only a host: dynamic peer registers".to_owned(),
                Some("host: dynamic on this peer, or no inkeys"),
            ));
        }
        if host == PeerHost::Dynamic {
            // A dynamic gateway peer with a secret or inkeys is a
            // registrar-side peer: its address comes from its
            // authenticated registration, so it needs no ACL (one given
            // must still be complete).
            if permit.is_empty() && secret.is_none() && p.inkeys.is_none() {
                let allowed = match kind {
                    PeerKind::Pbx => "permit: [the peer's source ranges] with deny: [0.0.0.0/0, ::/0]",
                    PeerKind::Gateway => "permit: [the peer's source ranges] with deny: [0.0.0.0/0, ::/0], or a secret or inkeys (the peer then registers its address)",
                };
                return Err(self.error(
                    &p.host,
                    &path("host"),
                    "host: dynamic needs a permit range, otherwise any address on the internet could claim this peer".to_owned(),
                    Some(allowed),
                ));
            }
            if !permit.is_empty() && deny.is_empty() {
                return Err(self.error(
                    &p.host,
                    &path("host"),
                    "host: dynamic with permit but no deny admits every address (an address no range matches is permitted)".to_owned(),
                    Some("deny: [0.0.0.0/0, ::/0] next to permit, so only the permit ranges are admitted"),
                ));
            }
        }
        let maxcalls = match &p.maxcalls {
            Some(v) => {
                let n = self.ranged(v, 1..=MAX_CALLS, &path("maxcalls"), schema::MAXCALLS)?;
                u32::try_from(n).ok().and_then(NonZeroU32::new)
            }
            None => None,
        };
        let keepalive = match &p.keepalive {
            Some(v) if kind != PeerKind::Gateway => {
                return Err(self.error(
                    v,
                    &path("keepalive"),
                    "keepalive applies to gateway peers only (a gateway probes its gateway links)"
                        .to_owned(),
                    Some("kind: gateway on this peer, or no keepalive"),
                ));
            }
            Some(v) => {
                let n = self.ranged(v, 0..=300, &path("keepalive"), schema::KEEPALIVE)?;
                Some(Duration::from_secs(u64::try_from(n).unwrap_or(0)))
            }
            None => None,
        };
        let register = self.register(p, kind, host, secret.is_some(), &path)?;
        let outkey = p
            .outkey
            .as_ref()
            .map(|k| self.outkey(k, &path("outkey")))
            .transpose()?;
        let inkeys = self.inkeys(p.inkeys.as_ref(), &path("inkeys"))?;
        let refresh = self.gateway_duration(
            kind,
            p.refresh.as_ref(),
            REFRESH_SECS,
            Duration::from_secs,
            &path("refresh"),
            "refresh",
            "it is the lifetime of a registration between gateways",
            schema::REFRESH,
        )?;
        let qualify = self.gateway_duration(
            kind,
            p.qualify.as_ref(),
            QUALIFY_MS,
            Duration::from_millis,
            &path("qualify"),
            "qualify",
            "a gateway probes its gateway links",
            schema::QUALIFY,
        )?;
        self.gateway_only(
            kind,
            p.unreachable_after.as_ref(),
            &path("unreachable_after"),
            "unreachable_after",
            "a gateway probes its gateway links",
        )?;
        let unreachable_after = p
            .unreachable_after
            .as_ref()
            .map(|v| {
                let n = self.ranged(
                    v,
                    UNREACHABLE_AFTER,
                    &path("unreachable_after"),
                    schema::UNREACHABLE_AFTER,
                )?;
                Ok(u32::try_from(n).unwrap_or(1))
            })
            .transpose()?;
        let retry_why = "they pace a gateway's registration retries";
        let retry_min = self.gateway_duration(
            kind,
            p.retry_min.as_ref(),
            RETRY_MIN_SECS,
            Duration::from_secs,
            &path("retry_min"),
            "retry_min",
            retry_why,
            schema::RETRY_MIN,
        )?;
        let retry_max = self.gateway_duration(
            kind,
            p.retry_max.as_ref(),
            RETRY_MAX_SECS,
            Duration::from_secs,
            &path("retry_max"),
            "retry_max",
            retry_why,
            schema::RETRY_MAX,
        )?;
        if let (Some(max), Some(raw_max)) = (retry_max, &p.retry_max) {
            let min = retry_min.unwrap_or(DEFAULT_RETRY_MIN);
            if max < min {
                return Err(self.error(
                    raw_max,
                    &path("retry_max"),
                    format!(
                        "retry_max {} is below retry_min {}",
                        max.as_secs(),
                        min.as_secs()
                    ),
                    Some(&format!(
                        "{} to 3600 (seconds): at least retry_min",
                        min.as_secs()
                    )),
                ));
            }
        }
        Ok(Peer {
            name: peer_name,
            host,
            kind,
            trunk,
            permit,
            deny,
            maxcalls,
            keepalive,
            secret,
            register,
            outkey,
            inkeys,
            refresh,
            qualify,
            unreachable_after,
            retry_min,
            retry_max,
        })
    }

    /// `register` and `username`: the name this gateway registers under
    /// with the peer, when it does. Also the rules of `outkey`, which
    /// needs `register: true`, and of `register: true`, which needs a
    /// `secret` or an `outkey`.
    fn register(
        &self,
        p: &RawPeer,
        kind: PeerKind,
        host: PeerHost,
        has_secret: bool,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Option<PeerName>, ConfigError> {
        self.gateway_only(
            kind,
            p.register.as_ref(),
            &path("register"),
            "register",
            "a gateway registers with another gateway",
        )?;
        self.gateway_only(
            kind,
            p.username.as_ref(),
            &path("username"),
            "username",
            "it is the name a gateway registers under with another gateway",
        )?;
        let Some(register) = p.register.as_ref().filter(|r| r.value) else {
            if let Some(username) = &p.username {
                return Err(self.error(
                    username,
                    &path("username"),
                    "username is the name this gateway registers under, and this peer has no register: true".to_owned(),
                    Some("register: true on this peer, or no username"),
                ));
            }
            if let Some(outkey) = &p.outkey {
                return Err(self.error(
                    outkey,
                    &path("outkey"),
                    "outkey signs this gateway's registration; this peer has no register: true"
                        .to_owned(),
                    Some("register: true on this peer, or no outkey"),
                ));
            }
            return Ok(None);
        };
        if host == PeerHost::Dynamic {
            return Err(self.error(
                register,
                &path("register"),
                "register: true with host: dynamic: a dynamic peer has no address to register with"
                    .to_owned(),
                Some("a static host (an IP address) on this peer, or no register"),
            ));
        }
        if !has_secret && p.outkey.is_none() {
            return Err(self.error(
                register,
                &path("register"),
                "register: true needs a secret, the one the far gateway has for this gateway, or an outkey, this gateway's RSA private key whose public key the far gateway has in its inkeys"
                    .to_owned(),
                Some("secret: the shared secret, or outkey: the private key file, on this peer; or no register"),
            ));
        }
        let Some(username) = &p.username else {
            return Err(self.error(
                register,
                &path("register"),
                "register: true needs a username, the name the far gateway gives this gateway in its peers"
                    .to_owned(),
                Some("username: this gateway's peer name at the far gateway, or no register"),
            ));
        };
        PeerName::new(&username.value).map(Some).ok_or_else(|| {
            self.error(
                username,
                &path("username"),
                format!(
                    "`{}` is not a valid peer name",
                    shorten(&username.value, 64)
                ),
                Some(schema::USERNAME),
            )
        })
    }

    fn route(&self, i: usize, raw: &RawRoute, peers: &[Peer]) -> Result<Route, ConfigError> {
        let names = || {
            let list: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
            let mut list = list.join(", ");
            if list.len() > 200 {
                list = shorten(&list, 200);
            }
            format!("{}: {list}", schema::PEER_REF)
        };
        let peer_ref = |s: &Spanned<String>, key: &str| {
            let text = s.value.trim();
            peers
                .iter()
                .find(|p| p.name.as_str() == text)
                .map(|p| p.name.clone())
                .ok_or_else(|| {
                    self.error(
                        s,
                        &format!("routes[{i}].{key}"),
                        format!("there is no peer named `{}`", shorten(text, 64)),
                        Some(&names()),
                    )
                })
        };
        let from = raw.from.as_ref().map(|f| peer_ref(f, "from")).transpose()?;
        let to = peer_ref(&raw.to, "to")?;
        if from.as_ref() == Some(&to) {
            return Err(self.error(
                &raw.to,
                &format!("routes[{i}].to"),
                format!("the route sends calls from `{to}` back to `{to}`"),
                Some("a to peer other than the from peer"),
            ));
        }
        let prefix = match &raw.prefix {
            Some(p) => Some(CalledPrefix::new(p.value.trim()).ok_or_else(|| {
                self.error(
                    p,
                    &format!("routes[{i}].prefix"),
                    format!(
                        "`{}` is not a valid called-number prefix",
                        shorten(&p.value, 60)
                    ),
                    Some(schema::PREFIX),
                )
            })?),
            None => None,
        };
        Ok(Route { from, prefix, to })
    }
}

/// `IP`, `IP:port`, `[IPv6]` or `[IPv6]:port`; port 4569 when absent.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    parse_addr_or_port(text, IAX2_PORT)
}

/// As [`parse_addr`], with `port` when the text has none.
fn parse_addr_or_port(text: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// The default worker count: the available cores, at most 256.
fn default_workers() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    NonZeroUsize::new(cores.clamp(1, 256)).unwrap_or(NonZeroUsize::MIN)
}

/// Validates the raw file.
pub(crate) fn validate(raw: RawConfig, file: &str) -> Result<Config, ConfigError> {
    let c = Check { file };
    let listen = c.listen(raw.listen.as_ref())?;
    let workers = match &raw.workers {
        Some(w) => {
            let n = c.ranged(w, 1..=MAX_WORKERS, "workers", schema::WORKERS)?;
            usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .unwrap_or(NonZeroUsize::MIN)
        }
        None => default_workers(),
    };
    let defaults = TrunkSettings::default();
    let global_trunk = TrunkSettings {
        freq: match &raw.trunkfreq {
            Some(v) => c.trunkfreq(v, "trunkfreq")?,
            None => defaults.freq,
        },
        mtu: match &raw.trunkmtu {
            Some(v) => c.trunkmtu(v, "trunkmtu")?,
            None => defaults.mtu,
        },
        timestamps: raw
            .trunktimestamps
            .as_ref()
            .map_or(defaults.timestamps, |t| t.value),
    };
    let mut timeouts = c.timeouts(raw.timeouts.as_ref())?;
    timeouts.admission = c.admission(raw.admission.as_ref())?;
    let admin = c.admin(raw.admin.as_ref())?;
    let log = c.log(raw.log.as_ref())?;

    if raw.peers.value.0.is_empty() {
        return Err(c.error(
            &raw.peers,
            "peers",
            "no peers are defined".to_owned(),
            Some("at least one peer"),
        ));
    }
    let mut peers: Vec<Peer> = Vec::with_capacity(raw.peers.value.0.len());
    // Name -> line of its definition; address -> (peer, line).
    let mut names: HashMap<&str, u64> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, (String, u64)> = HashMap::new();
    for (name, raw_peer) in &raw.peers.value.0 {
        let peer = c.peer(name, raw_peer, global_trunk)?;
        if let Some(line) = names.insert(name.value.as_str(), name.referenced.line()) {
            return Err(c.error(
                name,
                &format!("peers.{}", peer.name),
                format!(
                    "peer name `{}` is defined twice (first at line {line})",
                    peer.name
                ),
                Some("each peer name once"),
            ));
        }
        if let PeerHost::Static(addr) = peer.host {
            let host_path = format!("peers.{}.host", peer.name);
            if addr == listen {
                return Err(c.error(
                    &raw_peer.value.host,
                    &host_path,
                    format!("{addr} is this gateway's own listen address"),
                    Some("the address of another host or gateway"),
                ));
            }
            let line = raw_peer.value.host.referenced.line();
            if let Some((other, other_line)) = addresses.insert(addr, (peer.name.to_string(), line))
            {
                return Err(c.error(
                    &raw_peer.value.host,
                    &host_path,
                    format!("{addr} is also the host of peer `{other}` (line {other_line})"),
                    Some("one peer per address: the gateway tells peers apart by source address"),
                ));
            }
        }
        peers.push(peer);
    }

    if raw.routes.value.is_empty() {
        return Err(c.error(
            &raw.routes,
            "routes",
            "no routes are defined".to_owned(),
            Some("at least one route"),
        ));
    }
    let routes = raw
        .routes
        .value
        .iter()
        .enumerate()
        .map(|(i, r)| c.route(i, &r.value, &peers))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Config {
        listen,
        workers,
        udp_gso: raw.udp_gso.as_ref().is_none_or(|v| v.value),
        peers,
        routes,
        timeouts,
        admin,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = |s: &str| parse_addr(s).map(|a| a.to_string());
        assert_eq!(a("127.0.0.1"), Some("127.0.0.1:4569".into()));
        assert_eq!(a("127.0.0.1:4570"), Some("127.0.0.1:4570".into()));
        assert_eq!(a("::1"), Some("[::1]:4569".into()));
        assert_eq!(a("[::1]"), Some("[::1]:4569".into()));
        assert_eq!(a("[::]:5000"), Some("[::]:5000".into()));
        assert_eq!(a("pbx.example.com"), None);
        assert_eq!(a("pbx.example.com:4569"), None);
        assert_eq!(a("127.0.0.1:99999"), None);
        assert_eq!(a(""), None);
    }

    #[test]
    fn default_workers_in_range() {
        let n = default_workers().get();
        assert!((1..=256).contains(&n));
    }
}
