//! Every kind of configuration error, with its exact position, key path and
//! wording; the defaults; the example files.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iax2_config::{
    from_yaml_str, load, AdminSettings, CalledPrefix, Config, ConfigError, ErrorKind, LogFormat,
    LogLevel, LogSettings, PeerHost, PeerKind, PeerName, Secret, Timeouts, TrunkFreq, TrunkMtu,
    TrunkSettings, DEFAULT_QUALIFY, DEFAULT_REFRESH, DEFAULT_RETRY_MAX, DEFAULT_RETRY_MIN,
    DEFAULT_UNREACHABLE_AFTER, MAX_FILE_BYTES,
};

/// A small valid file the cases below break one key at a time.
const BASE: &str = "\
peers:
  pbx:
    host: 10.0.0.1
    kind: pbx
  gw:
    host: 10.0.0.2:4570
    kind: gateway
    trunk: true
routes:
  - from: pbx
    to: gw
";

fn err(text: &str) -> ConfigError {
    match from_yaml_str(text, "site.yaml") {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e,
    }
}

/// `text` with `old` replaced once (which must be there).
fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "{old:?} not in BASE");
    BASE.replacen(old, new, 1)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn unknown_top_level_key() {
    let e = err(&format!("listen: 0.0.0.0\nbogus: 1\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:1: bogus: unknown key `bogus`; allowed: the keys listen, workers, \
         trunkfreq, trunkmtu, trunktimestamps, udp_gso, timeouts, admission, admin, log, peers, routes"
    );
    assert_eq!((e.line, e.column), (2, 1));
    assert_eq!(e.key_path, "bogus");
    assert_eq!(e.kind, ErrorKind::UnknownKey);
}

#[test]
fn keepalive_is_for_gateway_peers_in_range() {
    let ok = from_yaml_str(
        &with("kind: gateway", "kind: gateway\n    keepalive: 4"),
        "site.yaml",
    )
    .unwrap();
    let gw = ok.peer("gw").unwrap();
    assert_eq!(gw.keepalive_interval(), Some(Duration::from_secs(4)));
    let off = from_yaml_str(
        &with("kind: gateway", "kind: gateway\n    keepalive: 0"),
        "site.yaml",
    )
    .unwrap();
    assert_eq!(off.peer("gw").unwrap().keepalive_interval(), None);
    let default = from_yaml_str(BASE, "site.yaml").unwrap();
    assert_eq!(
        default.peer("gw").unwrap().keepalive_interval(),
        Some(iax2_config::DEFAULT_KEEPALIVE)
    );
    assert_eq!(default.peer("pbx").unwrap().keepalive_interval(), None);
    let e = err(&with("kind: pbx", "kind: pbx\n    keepalive: 10"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:16: peers.pbx.keepalive: keepalive applies to gateway peers only (a gateway \
         probes its gateway links); allowed: kind: gateway on this peer, or no keepalive"
    );
    let e = err(&with("kind: gateway", "kind: gateway\n    keepalive: 301"));
    assert_eq!(e.key_path, "peers.gw.keepalive");
    assert!(
        e.to_string().contains("0 (no probes) to 300 (seconds)"),
        "{e}"
    );
}

/// `BASE` with `lines` (each `key: value`) added to the gateway peer `gw`,
/// from line 8 on, each key at column 5.
fn gw_with(lines: &[&str]) -> String {
    let extra: String = lines.iter().map(|l| format!("\n    {l}")).collect();
    with("kind: gateway", &format!("kind: gateway{extra}"))
}

/// `BASE` with `lines` added to the PBX peer `pbx`, from line 5 on.
fn pbx_with(lines: &[&str]) -> String {
    let extra: String = lines.iter().map(|l| format!("\n    {l}")).collect();
    with("kind: pbx", &format!("kind: pbx{extra}"))
}

/// The registering side, every key set.
const REGISTERING: &[&str] = &[
    "secret: s3cr3t!Xy",
    "register: true",
    "username: site-a",
    "refresh: 120",
    "qualify: 500",
    "unreachable_after: 5",
    "retry_min: 2",
    "retry_max: 300",
];

#[test]
fn gateway_registration_keys_in_the_model() {
    let c = from_yaml_str(&gw_with(REGISTERING), "site.yaml").unwrap();
    let gw = c.peer("gw").unwrap();
    assert_eq!(gw.secret.as_ref().map(Secret::expose), Some("s3cr3t!Xy"));
    assert_eq!(gw.secret, Secret::new("s3cr3t!Xy"));
    assert_eq!(gw.register, PeerName::new("site-a"));
    assert_eq!(gw.refresh, Some(Duration::from_secs(120)));
    assert_eq!(gw.refresh(), Duration::from_secs(120));
    assert_eq!(gw.qualify, Some(Duration::from_millis(500)));
    assert_eq!(gw.qualify(), Duration::from_millis(500));
    assert_eq!(gw.unreachable_after, Some(5));
    assert_eq!(gw.unreachable_after(), 5);
    assert_eq!(gw.retry_min, Some(Duration::from_secs(2)));
    assert_eq!(gw.retry_max, Some(Duration::from_secs(300)));
    assert_eq!(
        gw.retry_range(),
        (Duration::from_secs(2), Duration::from_secs(300))
    );
    // The bounds of each range are accepted.
    for lines in [
        [
            "refresh: 10",
            "qualify: 100",
            "unreachable_after: 1",
            "retry_min: 1",
            "retry_max: 1",
        ],
        [
            "refresh: 3600",
            "qualify: 60000",
            "unreachable_after: 10",
            "retry_min: 60",
            "retry_max: 3600",
        ],
    ] {
        let c = from_yaml_str(&gw_with(&lines), "site.yaml").unwrap();
        let gw = c.peer("gw").unwrap();
        assert!(gw.refresh.is_some() && gw.qualify.is_some(), "{lines:?}");
        let (min, max) = gw.retry_range();
        assert!(min <= max && gw.retry_max == Some(max), "{lines:?}");
    }
    // Equal retry bounds are fine; so is register: false with a secret.
    let c = from_yaml_str(
        &gw_with(&[
            "retry_min: 30",
            "retry_max: 30",
            "secret: x",
            "register: no",
        ]),
        "site.yaml",
    )
    .unwrap();
    let gw = c.peer("gw").unwrap();
    assert_eq!(
        gw.retry_range(),
        (Duration::from_secs(30), Duration::from_secs(30))
    );
    assert_eq!(gw.register, None);
    assert_eq!(gw.secret.as_ref().map(Secret::expose), Some("x"));
    // A secret that YAML would read as a number or a boolean is its text.
    let c = from_yaml_str(
        &gw_with(&["secret: 0123", "register: true", "username: a"]),
        "s",
    )
    .unwrap();
    assert_eq!(
        c.peer("gw").unwrap().secret.as_ref().map(Secret::expose),
        Some("0123")
    );
    let c = from_yaml_str(&gw_with(&["secret: yes"]), "s").unwrap();
    assert_eq!(
        c.peer("gw").unwrap().secret.as_ref().map(Secret::expose),
        Some("yes")
    );
}

#[test]
fn gateway_registration_defaults() {
    let c = from_yaml_str(BASE, "site.yaml").unwrap();
    for name in ["gw", "pbx"] {
        let p = c.peer(name).unwrap();
        assert_eq!(p.secret, None);
        assert_eq!(p.register, None);
        assert_eq!(
            (
                p.refresh,
                p.qualify,
                p.unreachable_after,
                p.retry_min,
                p.retry_max
            ),
            (None, None, None, None, None)
        );
        assert_eq!(p.refresh(), Duration::from_secs(60));
        assert_eq!(p.qualify(), Duration::from_millis(2000));
        assert_eq!(p.unreachable_after(), 3);
        assert_eq!(
            p.retry_range(),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
    }
    assert_eq!(DEFAULT_REFRESH, Duration::from_secs(60));
    assert_eq!(DEFAULT_QUALIFY, Duration::from_millis(2000));
    assert_eq!(DEFAULT_UNREACHABLE_AFTER, 3);
    assert_eq!(DEFAULT_RETRY_MIN, Duration::from_secs(1));
    assert_eq!(DEFAULT_RETRY_MAX, Duration::from_secs(60));
    // retry_min alone: retry_max stays at its default.
    let c = from_yaml_str(&gw_with(&["retry_min: 60"]), "site.yaml").unwrap();
    assert_eq!(
        c.peer("gw").unwrap().retry_range(),
        (Duration::from_secs(60), DEFAULT_RETRY_MAX)
    );
}

#[test]
fn gateway_registration_ranges() {
    let cases = [
        ("refresh: 9", 14, "10 to 3600 (seconds), on gateway peers"),
        (
            "refresh: 3601",
            14,
            "10 to 3600 (seconds), on gateway peers",
        ),
        (
            "qualify: 99",
            14,
            "100 to 60000 (milliseconds), on gateway peers",
        ),
        (
            "qualify: 60001",
            14,
            "100 to 60000 (milliseconds), on gateway peers",
        ),
        (
            "unreachable_after: 0",
            24,
            "1 to 10 (missed probes), on gateway peers",
        ),
        (
            "unreachable_after: 11",
            24,
            "1 to 10 (missed probes), on gateway peers",
        ),
        ("retry_min: 0", 16, "1 to 60 (seconds), on gateway peers"),
        ("retry_min: 61", 16, "1 to 60 (seconds), on gateway peers"),
        (
            "retry_max: 0",
            16,
            "1 to 3600 (seconds), at least retry_min, on gateway peers",
        ),
        (
            "retry_max: 3601",
            16,
            "1 to 3600 (seconds), at least retry_min, on gateway peers",
        ),
    ];
    for (line, column, allowed) in cases {
        let (key, value) = line.split_once(": ").unwrap();
        let e = err(&gw_with(&[line]));
        assert_eq!(
            e.to_string(),
            format!(
                "site.yaml:8:{column}: peers.gw.{key}: {value} is out of range; allowed: {allowed}"
            )
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
    let e = err(&gw_with(&["qualify: -1"]));
    assert_eq!(e.message, "-1 is out of range");
    let e = err(&gw_with(&["qualify: fast"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:14: peers.gw.qualify: expected a whole number, found `fast`; allowed: 100 \
         to 60000 (milliseconds), on gateway peers"
    );
    assert_eq!(e.kind, ErrorKind::WrongType);
    let e = err(&gw_with(&["register: maybe"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:15: peers.gw.register: expected a boolean, found `maybe`; allowed: true \
         or false (also yes/no, on/off), on gateway peers with a static host"
    );
}

#[test]
fn retry_max_below_retry_min() {
    let e = err(&gw_with(&["retry_min: 10", "retry_max: 5"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:9:16: peers.gw.retry_max: retry_max 5 is below retry_min 10; allowed: 10 to \
         3600 (seconds): at least retry_min"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    // Pointed at retry_max whichever comes first.
    let e = err(&gw_with(&["retry_max: 59", "retry_min: 60"]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (8, 16, "peers.gw.retry_max")
    );
    assert_eq!(e.message, "retry_max 59 is below retry_min 60");
}

#[test]
fn gateway_registration_keys_are_for_gateway_peers_only() {
    let cases = [
        (
            "secret: x",
            13,
            "gateways authenticate each other's registrations with it",
        ),
        (
            "register: true",
            15,
            "a gateway registers with another gateway",
        ),
        (
            "register: false",
            15,
            "a gateway registers with another gateway",
        ),
        (
            "username: site-a",
            15,
            "it is the name a gateway registers under with another gateway",
        ),
        (
            "refresh: 60",
            14,
            "it is the lifetime of a registration between gateways",
        ),
        ("qualify: 2000", 14, "a gateway probes its gateway links"),
        (
            "unreachable_after: 3",
            24,
            "a gateway probes its gateway links",
        ),
        (
            "retry_min: 1",
            16,
            "they pace a gateway's registration retries",
        ),
        (
            "retry_max: 60",
            16,
            "they pace a gateway's registration retries",
        ),
    ];
    for (line, column, why) in cases {
        let key = line.split_once(':').unwrap().0;
        let e = err(&pbx_with(&[line]));
        assert_eq!(
            e.to_string(),
            format!(
                "site.yaml:5:{column}: peers.pbx.{key}: {key} applies to gateway peers only \
                 ({why}); allowed: kind: gateway on this peer, or no {key}"
            )
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
    // Even out of range, the kind is the error.
    let e = err(&pbx_with(&["qualify: 1"]));
    assert!(
        e.message
            .starts_with("qualify applies to gateway peers only"),
        "{e}"
    );
    // A bad secret on a PBX is not shown either.
    let e = err(&pbx_with(&["secret: \"hunter 2\""]));
    assert!(!e.to_string().contains("hunter"), "{e}");
}

#[test]
fn register_needs_a_static_host_a_secret_and_a_username() {
    let e = err(&gw_with(&["register: true", "username: site-a"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:15: peers.gw.register: register: true needs a secret, the one the far \
         gateway has for this gateway, or an outkey, this gateway's RSA private key whose public \
         key the far gateway has in its inkeys; allowed: secret: the shared secret, or outkey: \
         the private key file, on this peer; or no register"
    );
    let e = err(&gw_with(&["secret: x", "register: true"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:9:15: peers.gw.register: register: true needs a username, the name the far \
         gateway gives this gateway in its peers; allowed: username: this gateway's peer name at \
         the far gateway, or no register"
    );
    let dynamic = with("10.0.0.2:4570", "dynamic").replace(
        "kind: gateway",
        "kind: gateway\n    secret: x\n    register: yes\n    username: site-a",
    );
    let e = err(&dynamic);
    assert_eq!(
        e.to_string(),
        "site.yaml:9:15: peers.gw.register: register: true with host: dynamic: a dynamic peer \
         has no address to register with; allowed: a static host (an IP address) on this peer, \
         or no register"
    );
    let e = err(&gw_with(&[
        "secret: x",
        "register: true",
        "username: site a",
    ]));
    assert_eq!(
        e.to_string(),
        "site.yaml:10:15: peers.gw.username: `site a` is not a valid peer name; allowed: 1 to 64 \
         characters from A-Z a-z 0-9 _ - ., with register: true"
    );
}

#[test]
fn username_needs_register_true() {
    let e = err(&gw_with(&["secret: x", "username: site-a"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:9:15: peers.gw.username: username is the name this gateway registers under, \
         and this peer has no register: true; allowed: register: true on this peer, or no \
         username"
    );
    let e = err(&gw_with(&["register: false", "username: site-a"]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (9, 15, "peers.gw.username")
    );
    assert_eq!(
        e.allowed.as_deref(),
        Some("register: true on this peer, or no username")
    );
}

#[test]
fn bad_secrets_are_located_but_never_shown() {
    let long = format!("secret: {}", "k".repeat(129));
    let cases = [
        ("secret: \"\"", "the secret is empty"),
        ("secret:", "the secret is empty"),
        ("secret: ~", "the secret is empty"),
        ("secret: \"pa ss\"", "the secret has a space at character 3"),
        ("secret: \"pa\\tss\"", "the secret has a tab at character 3"),
        ("secret: pa;ss", "the secret has `;` at character 3"),
        (
            "secret: pässword",
            "the secret has a character that is not ASCII at character 2",
        ),
        (
            "secret: \"pa\\u0007ss\"",
            "the secret has a control character at character 3",
        ),
        (long.as_str(), "the secret is 129 bytes long"),
    ];
    for (line, message) in cases {
        let e = err(&gw_with(&[line]));
        let column = if line == "secret:" { 11 } else { 13 };
        assert_eq!(
            e.to_string(),
            format!(
                "site.yaml:8:{column}: peers.gw.secret: {message}; allowed: 1 to 128 printable \
                 ASCII characters, no whitespace and no ;, on gateway peers"
            ),
            "{line}"
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            !e.to_string().contains("ss") && !e.to_string().contains("kkk"),
            "{e}"
        );
    }
    // 128 bytes is the most.
    let c = from_yaml_str(&gw_with(&[&format!("secret: {}", "k".repeat(128))]), "s").unwrap();
    assert_eq!(
        c.peer("gw")
            .unwrap()
            .secret
            .as_ref()
            .unwrap()
            .expose()
            .len(),
        128
    );
    // Of the wrong type: neither shown.
    let e = err(&gw_with(&["secret: !!int 4711"]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:19: peers.gw.secret: expected a single value, found a tagged value (not \
         shown); allowed: 1 to 128 printable ASCII characters, no whitespace and no ;, on \
         gateway peers"
    );
    assert_eq!(e.kind, ErrorKind::WrongType);
    let e = err(&gw_with(&["secret: [a]"]));
    assert_eq!(e.message, "expected a single value, found a list");
}

#[test]
fn the_secret_is_not_in_debug_output() {
    let c = from_yaml_str(&gw_with(REGISTERING), "site.yaml").unwrap();
    let gw = c.peer("gw").unwrap();
    for shown in [format!("{gw:?}"), format!("{gw:#?}"), format!("{c:?}")] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }
    assert_eq!(format!("{:?}", gw.secret), "Some(Secret(***))");
    assert_eq!(gw.secret.as_ref().unwrap().expose(), "s3cr3t!Xy");
}

#[test]
fn registrar_side_dynamic_gateway_peer() {
    // A dynamic gateway peer with a secret registers its address: no ACL
    // needed.
    let text = with("10.0.0.2:4570", "dynamic").replace(
        "kind: gateway",
        "kind: gateway\n    secret: s3cr3t\n    refresh: 300",
    );
    let c = from_yaml_str(&text, "site.yaml").unwrap();
    let gw = c.peer("gw").unwrap();
    assert_eq!(gw.host, PeerHost::Dynamic);
    assert!(gw.permit.is_empty() && gw.deny.is_empty());
    assert_eq!(gw.register, None);
    assert_eq!(gw.refresh(), Duration::from_secs(300));
    assert_eq!(gw.secret.as_ref().map(Secret::expose), Some("s3cr3t"));
    // An ACL next to the secret must still be whole.
    let e = err(&text.replace("refresh: 300", "permit: [192.0.2.0/24]"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (6, 11, "peers.gw.host")
    );
    assert!(e.message.contains("no deny"), "{e}");
    let c = from_yaml_str(
        &text.replace(
            "refresh: 300",
            "permit: [192.0.2.0/24]\n    deny: [0.0.0.0/0]",
        ),
        "site.yaml",
    )
    .unwrap();
    assert!(!c
        .peer("gw")
        .unwrap()
        .permits("198.51.100.1".parse().unwrap()));
    // Without a secret the permit rule stands, and says a secret would do.
    let e = err(&with("10.0.0.2:4570", "dynamic"));
    assert_eq!(
        e.to_string(),
        "site.yaml:6:11: peers.gw.host: host: dynamic needs a permit range, otherwise any \
         address on the internet could claim this peer; allowed: permit: [the peer's source \
         ranges] with deny: [0.0.0.0/0, ::/0], or a secret or inkeys (the peer then registers \
         its address)"
    );
    // A PBX cannot use a secret to stand in for the ACL.
    let e = err(&with("10.0.0.1", "dynamic\n    secret: x"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (4, 13, "peers.pbx.secret")
    );
}

#[test]
fn unknown_key_in_a_peer() {
    let e = err(&with("kind: gateway", "kind: gateway\n    password: x"));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:5: peers.gw.password: unknown key `password`; allowed: the keys host, \
         kind, trunk, trunkfreq, trunkmtu, trunktimestamps, permit, deny, maxcalls, keepalive, \
         secret, register, username, outkey, inkeys, refresh, qualify, unreachable_after, \
         retry_min, retry_max"
    );
    assert_eq!(e.file, "site.yaml");
    assert_eq!(e.message, "unknown key `password`");
}

#[test]
fn unknown_key_in_timeouts_and_routes() {
    let e = err(&format!("timeouts:\n  idle: 5\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (2, 3, "timeouts.idle")
    );
    assert!(e
        .allowed
        .unwrap()
        .contains("call_idle, setup, hangup_linger, callno_quarantine, drain"));
    let e = err(&with("    to: gw", "    to: gw\n    via: pbx"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (12, 5, "routes[0].via")
    );
    assert_eq!(e.allowed.as_deref(), Some("the keys from, prefix, to"));
}

#[test]
fn bad_addresses() {
    let e = err(&with("10.0.0.1", "pbx.example.com"));
    assert_eq!(
        e.to_string(),
        "site.yaml:3:11: peers.pbx.host: `pbx.example.com` is not an IP address (host names \
         are not resolved); allowed: an IP address with optional :port, or dynamic"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);

    let e = err(&with("10.0.0.1", "10.0.0.1:0"));
    assert_eq!((e.line, e.column), (3, 11));
    assert!(e.message.contains("port 0"), "{e}");

    let e = err(&with("10.0.0.2:4570", "10.0.0.2:70000"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (6, 11, "peers.gw.host")
    );

    let e = err(&format!("listen: 0.0.0.0:x\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:1:9: listen: `0.0.0.0:x` is not an IP address with optional port; \
         allowed: an IP address with optional :port, e.g. 0.0.0.0:4569 or \"[::]:4569\" (quoted)"
    );

    let e = err(&with(
        "kind: pbx",
        "kind: pbx\n    permit: [10.0.0.0/8, 10.0.0.0/33]",
    ));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:26: peers.pbx.permit[1]: `10.0.0.0/33` is not an IP range; allowed: an \
         IP range such as 10.0.0.0/8 or 2001:db8::/32, or one IP address"
    );
}

#[test]
fn route_to_a_missing_peer() {
    let e = err(&with("to: gw", "to: gw-b"));
    assert_eq!(
        e.to_string(),
        "site.yaml:11:9: routes[0].to: there is no peer named `gw-b`; allowed: the name of a \
         peer under peers: pbx, gw"
    );
    let e = err(&with("from: pbx", "from: nobody"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (10, 11, "routes[0].from")
    );
}

#[test]
fn route_back_to_its_source() {
    let e = err(&with("from: pbx", "from: gw"));
    assert_eq!(
        e.to_string(),
        "site.yaml:11:9: routes[0].to: the route sends calls from `gw` back to `gw`; allowed: \
         a to peer other than the from peer"
    );
}

#[test]
fn trunkfreq_out_of_range() {
    let e = err(&with("trunk: true", "trunk: true\n    trunkfreq: 5"));
    assert_eq!(
        e.to_string(),
        "site.yaml:9:16: peers.gw.trunkfreq: 5 is out of range; allowed: 10 to 1000 (milliseconds)"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.message, "5 is out of range");
    assert_eq!(e.allowed.as_deref(), Some("10 to 1000 (milliseconds)"));

    let e = err(&format!("trunkfreq: 1001\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (1, 12, "trunkfreq")
    );
    let e = err(&format!("trunkmtu: -1\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:1:11: trunkmtu: -1 is out of range; allowed: 172 to 4000 (bytes)"
    );
}

#[test]
fn trunk_keys_need_trunk_true() {
    let e = err(&with("kind: pbx", "kind: pbx\n    trunkmtu: 1400"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:15: peers.pbx.trunkmtu: trunkmtu applies to trunk peers only, and this \
         peer has no trunk: true; allowed: trunk: true on this peer, or no trunkmtu"
    );
}

#[test]
fn other_ranges() {
    let cases = [
        ("workers: 0\n", 1, 10, "workers", "1 to 256 (threads)"),
        ("workers: 257\n", 1, 10, "workers", "1 to 256 (threads)"),
        (
            "timeouts:\n  setup: 0\n",
            2,
            10,
            "timeouts.setup",
            "1 to 86400 (seconds)",
        ),
        (
            "timeouts:\n  call_idle: 86401\n",
            2,
            14,
            "timeouts.call_idle",
            "1 to 86400 (seconds)",
        ),
    ];
    for (head, line, column, path, allowed) in cases {
        let e = err(&format!("{head}{BASE}"));
        assert_eq!(
            (e.line, e.column, e.key_path.as_str()),
            (line, column, path),
            "{e}"
        );
        assert_eq!(e.allowed.as_deref(), Some(allowed));
    }
    let e = err(&with("kind: pbx", "kind: pbx\n    maxcalls: 32768"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:15: peers.pbx.maxcalls: 32768 is out of range; allowed: 1 to 32767 (calls)"
    );
}

#[test]
fn drain_timeout() {
    let c = from_yaml_str(&format!("timeouts:\n  drain: 1\n{BASE}"), "site.yaml").unwrap();
    assert_eq!(c.timeouts.drain, Duration::from_secs(1));
    assert_eq!(c.timeouts.setup, Timeouts::default().setup);
    let e = err(&format!("timeouts:\n  drain: 0\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:10: timeouts.drain: 0 is out of range; allowed: 1 to 86400 (seconds)"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = err(&format!("timeouts:\n  drain: 86401\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (2, 10, "timeouts.drain")
    );
    let e = err(&format!("timeouts:\n  drain: soon\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:10: timeouts.drain: expected a whole number, found `soon`; allowed: 1 to \
         86400 (seconds)"
    );
}

#[test]
fn admin_listener() {
    let listen = |yaml: &str| {
        from_yaml_str(&format!("{yaml}{BASE}"), "site.yaml")
            .unwrap()
            .admin
            .listen
    };
    let addr = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    assert_eq!(listen(""), addr("127.0.0.1:9569"));
    assert_eq!(listen("admin: {}\n"), addr("127.0.0.1:9569"));
    assert_eq!(
        listen("admin:\n  listen: 0.0.0.0:8080\n"),
        addr("0.0.0.0:8080")
    );
    // The port defaults to 9569, not the IAX2 port.
    assert_eq!(
        listen("admin:\n  listen: 10.0.0.5\n"),
        addr("10.0.0.5:9569")
    );
    assert_eq!(listen("admin:\n  listen: \"[::1]\"\n"), addr("[::1]:9569"));
    // The same address as the IAX2 listener is fine: TCP, not UDP.
    assert_eq!(
        listen("listen: 127.0.0.1:9569\nadmin:\n  listen: 127.0.0.1:9569\n"),
        addr("127.0.0.1:9569")
    );
    // `none`, in any case, turns it off.
    assert_eq!(listen("admin:\n  listen: none\n"), None);
    assert_eq!(listen("admin: {listen: None}\n"), None);
    assert_eq!(
        from_yaml_str(&format!("admin: {{listen: none}}\n{BASE}"), "s.yaml")
            .unwrap()
            .admin,
        AdminSettings::DISABLED
    );

    let e = err(&format!("admin:\n  listen: localhost:9569\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:11: admin.listen: `localhost:9569` is not an IP address with optional \
         port, nor none; allowed: an IP address with optional :port (default 9569), e.g. \
         127.0.0.1:9569, or none (no admin listener)"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = err(&format!("admin:\n  listen: off\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (2, 11, "admin.listen")
    );
    let e = err(&format!("admin:\n  listen: [127.0.0.1]\n{BASE}"));
    assert_eq!(e.kind, ErrorKind::WrongType);
    assert_eq!(
        e.to_string(),
        "site.yaml:2:11: admin.listen: expected a single value, found a list; allowed: an IP \
         address with optional :port (default 9569), e.g. 127.0.0.1:9569, or none (no admin \
         listener)"
    );
    let e = err(&format!("admin:\n  enabled: false\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:3: admin.enabled: unknown key `enabled`; allowed: the keys listen"
    );
    assert_eq!(e.kind, ErrorKind::UnknownKey);
    let e = err(&format!("admin: 127.0.0.1:9569\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:1:8: admin: expected a map, found `127.0.0.1:9569`; allowed: a map with listen"
    );
}

#[test]
fn log_settings() {
    let log = |yaml: &str| {
        from_yaml_str(&format!("{yaml}{BASE}"), "site.yaml")
            .unwrap()
            .log
    };
    assert_eq!(log("log: {}\n"), LogSettings::default());
    assert_eq!(
        log("log:\n  format: json\n"),
        LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Info,
        }
    );
    assert_eq!(
        log("log:\n  level: WARN\n  format: Human\n"),
        LogSettings {
            format: LogFormat::Human,
            level: LogLevel::Warn,
        }
    );
    for level in LogLevel::ALL {
        let got = log(&format!("log: {{level: {}}}\n", level.as_str())).level;
        assert_eq!(got, level);
    }

    let e = err(&format!("log:\n  format: logfmt\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:11: log.format: `logfmt` is not a log format; allowed: human or json"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = err(&format!("log:\n  level: verbose\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:10: log.level: `verbose` is not a log level; allowed: error, warn, info, \
         debug or trace"
    );
    let e = err(&format!("log:\n  level: [info]\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str(), e.kind),
        (2, 10, "log.level", ErrorKind::WrongType)
    );
    assert_eq!(
        e.allowed.as_deref(),
        Some("error, warn, info, debug or trace")
    );
    let e = err(&format!("log:\n  file: /var/log/gw.log\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:3: log.file: unknown key `file`; allowed: the keys format, level"
    );
    let e = err(&format!("log: json\n{BASE}"));
    assert_eq!((e.line, e.column, e.key_path.as_str()), (1, 6, "log"));
    assert_eq!(e.message, "expected a map, found `json`");
    assert_eq!(e.allowed.as_deref(), Some("a map with format and level"));
}

#[test]
fn wrong_types() {
    let e = err(&with("trunk: true", "trunk: maybe"));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:12: peers.gw.trunk: expected a boolean, found `maybe`; allowed: true or \
         false (also yes/no, on/off)"
    );
    assert_eq!(e.kind, ErrorKind::WrongType);

    let e = err(&with("kind: pbx", "kind: pbx\n    maxcalls: lots"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:15: peers.pbx.maxcalls: expected a whole number, found `lots`; allowed: 1 \
         to 32767 (calls)"
    );

    let e = err(&with("kind: pbx", "kind: pbx\n    permit: 10.0.0.0/8"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:13: peers.pbx.permit: expected a list, found `10.0.0.0/8`; allowed: a \
         list of IP ranges, e.g. [10.0.0.0/8, 192.0.2.7]"
    );

    let e = err(&format!("timeouts: 5\n{BASE}"));
    assert_eq!((e.line, e.column, e.key_path.as_str()), (1, 11, "timeouts"));
    assert_eq!(e.message, "expected a map, found `5`");

    let e = err("peers: [pbx]\nroutes: [{to: pbx}]\n");
    assert_eq!(
        e.to_string(),
        "site.yaml:1:8: peers: expected a map, found a list; allowed: a map of peer names to \
         peer settings, at least one peer"
    );

    let e = err("- peers\n");
    assert_eq!(e.key_path, "");
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e
        .to_string()
        .starts_with("site.yaml:1:1: expected a map, found a list"));

    let e = err(&format!("listen: [::]:4569\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:1:9: listen: expected a single value, found a list; allowed: an IP address \
         with optional :port, e.g. 0.0.0.0:4569 or \"[::]:4569\" (quoted)"
    );

    let e = err(&with("kind: pbx", "kind: [pbx]"));
    assert_eq!(
        e.to_string(),
        "site.yaml:4:11: peers.pbx.kind: expected a single value, found a list; allowed: pbx \
         or gateway"
    );
    let e = err(&with("kind: pbx", "kind: pabx"));
    assert_eq!(
        e.to_string(),
        "site.yaml:4:11: peers.pbx.kind: `pabx` is not a peer kind; allowed: pbx or gateway"
    );
}

#[test]
fn missing_keys() {
    let e = err(&with("    host: 10.0.0.1\n", ""));
    assert_eq!(
        e.to_string(),
        "site.yaml:3:5: peers.pbx.host: this required key is missing; allowed: an IP address \
         with optional :port, or dynamic"
    );
    assert_eq!(e.kind, ErrorKind::MissingKey);
    let e = err("peers:\n  a:\n    host: 10.0.0.1\n    kind: pbx\n");
    assert_eq!((e.line, e.column, e.key_path.as_str()), (1, 1, "routes"));
}

#[test]
fn duplicate_peer() {
    let e = err(&with("  gw:\n", "  pbx:\n"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:3: peers.pbx: peer name `pbx` is defined twice; allowed: each peer name once"
    );
    assert_eq!(e.kind, ErrorKind::DuplicateKey);
    let e = err(&with("kind: pbx", "kind: pbx\n    kind: gateway"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (5, 5, "peers.pbx.kind")
    );
}

#[test]
fn bad_peer_name() {
    let e = err(&with("  gw:\n", "  \"gw b\":\n"));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:3: peers.gw b: `gw b` is not a valid peer name; allowed: 1 to 64 \
         characters from A-Z a-z 0-9 _ - ."
    );
}

#[test]
fn duplicate_static_address() {
    let e = err(&with("10.0.0.2:4570", "10.0.0.1:4569"));
    assert_eq!(
        e.to_string(),
        "site.yaml:6:11: peers.gw.host: 10.0.0.1:4569 is also the host of peer `pbx` (line 3); \
         allowed: one peer per address: the gateway tells peers apart by source address"
    );
    let e = err(&format!("listen: 10.0.0.1\n{BASE}"));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (4, 11, "peers.pbx.host")
    );
    assert!(e.message.contains("own listen address"), "{e}");
}

#[test]
fn dynamic_without_permit() {
    let e = err(&with("10.0.0.1", "dynamic"));
    assert_eq!(
        e.to_string(),
        "site.yaml:3:11: peers.pbx.host: host: dynamic needs a permit range, otherwise any \
         address on the internet could claim this peer; allowed: permit: [the peer's source \
         ranges] with deny: [0.0.0.0/0, ::/0]"
    );
    // A permit alone admits everyone (no range matching means admitted).
    let e = err(&with("10.0.0.1", "dynamic\n    permit: [192.0.2.0/24]"));
    assert_eq!((e.line, e.column), (3, 11));
    assert!(e.message.contains("no deny"), "{e}");
    // With both it loads, and the ACL works as meant.
    let c = from_yaml_str(
        &with(
            "10.0.0.1",
            "dynamic\n    permit: [192.0.2.0/24]\n    deny: [0.0.0.0/0, \"::/0\"]",
        ),
        "site.yaml",
    )
    .unwrap();
    let pbx = c.peer("pbx").unwrap();
    assert_eq!(pbx.host, PeerHost::Dynamic);
    assert!(pbx.permits("192.0.2.9".parse().unwrap()));
    assert!(!pbx.permits("198.51.100.1".parse().unwrap()));
    assert!(!pbx.permits("2001:db8::1".parse().unwrap()));
}

#[test]
fn empty_peers_and_routes() {
    let e = err("peers: {}\nroutes:\n  - to: a\n");
    assert_eq!(
        e.to_string(),
        "site.yaml:1:8: peers: no peers are defined; allowed: at least one peer"
    );
    let e = err("peers:\nroutes:\n  - to: a\n");
    assert_eq!((e.line, e.column, e.key_path.as_str()), (1, 6, "peers"));
    assert_eq!(e.message, "expected a map, found an empty value");
    let e = err(&with(
        "routes:\n  - from: pbx\n    to: gw\n",
        "routes: []\n",
    ));
    assert_eq!(
        e.to_string(),
        "site.yaml:9:9: routes: no routes are defined; allowed: at least one route"
    );
}

#[test]
fn empty_and_broken_files() {
    for text in ["", "# nothing here\n", "\n\n"] {
        let e = err(text);
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.message, "the file holds no settings", "{e}");
        assert!(e.line >= 1 && e.column >= 1);
    }
    let e = err("listen: 10.0.0.1\n  bad: indent\npeers: {}\n");
    assert_eq!(
        e.to_string(),
        "site.yaml:2:6: listen: invalid YAML: mapping values are not allowed in this context"
    );
    assert_eq!(e.kind, ErrorKind::Syntax);
    let e = err("listen: \"10.0.0.1\npeers: {}\n");
    assert_eq!((e.line, e.column, e.kind), (1, 9, ErrorKind::Syntax), "{e}");
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
    let e = err(&format!("{BASE}---\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:12:1: more than one YAML document (a second `---`); allowed: one document"
    );
}

#[test]
fn file_too_large() {
    let big = format!("{BASE}#{}\n", "x".repeat(MAX_FILE_BYTES));
    let e = err(&big);
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:1:1: the file is too large ({} bytes); allowed: at most 1048576 bytes (1 MiB)",
            big.len()
        )
    );
    // Through load too, named by its path.
    let dir = std::env::temp_dir().join(format!("iax2-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.yaml");
    std::fs::write(&path, &big).unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(e.file, path.display().to_string());
    assert!(e
        .to_string()
        .starts_with(&format!("{}:1:1: ", path.display())));
    std::fs::write(&path, b"peers:\n  a\xff: 1\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!((e.line, e.column, e.kind), (2, 4, ErrorKind::Syntax));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file() {
    let e = load(Path::new("/nonexistent/site-z.yaml")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert_eq!(e.file, "/nonexistent/site-z.yaml");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/site-z.yaml: cannot open the file: "),
        "{e}"
    );
}

#[test]
fn parser_limits() {
    // 10 001 aliases: over the alias budget.
    let aliases = vec!["*a"; 10_001].join(",");
    let e = err(&with(
        "kind: pbx",
        &format!("kind: pbx\n    permit: [&a 10.0.0.1, {aliases}]"),
    ));
    assert_eq!(e.kind, ErrorKind::Limit);
    assert_eq!(e.line, 5);
    assert!(e.message.contains("10001 aliases"), "{e}");
    // Deep nesting.
    let deep = format!("{}1{}\n", "[".repeat(100), "]".repeat(100));
    let e = err(&deep);
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert_eq!(e.line, 1);
    // An exponential bomb of merge keys, every level ten times the last.
    let mut bomb =
        String::from("peers:\n  p0: &p0 {host: 10.0.0.1, kind: pbx, permit: [1.1.1.1, 1.1.1.2]}\n");
    for i in 1..10 {
        let prev = format!("*p{}", i - 1);
        let merges = [prev.as_str(); 10].join(", ");
        bomb.push_str(&format!("  p{i}: &p{i} {{<<: [{merges}]}}\n"));
    }
    bomb.push_str("routes: [{to: p0}]\n");
    let e = err(&bomb);
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.line > 2 && e.key_path.starts_with("peers.p"), "{e}");
}

#[test]
fn defaults() {
    let c = from_yaml_str(BASE, "site.yaml").unwrap();
    assert_eq!(c.listen, "0.0.0.0:4569".parse::<SocketAddr>().unwrap());
    let cores = std::thread::available_parallelism().unwrap().get().min(256);
    assert_eq!(c.workers.get(), cores);
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.timeouts.call_idle, Duration::from_secs(60));
    assert_eq!(c.timeouts.setup, Duration::from_secs(40));
    assert_eq!(c.timeouts.hangup_linger, Duration::from_secs(10));
    assert_eq!(c.timeouts.callno_quarantine, Duration::from_secs(60));
    assert_eq!(c.timeouts.drain, Duration::from_secs(60));
    assert_eq!(c.admin, AdminSettings::default());
    assert_eq!(
        c.admin.listen,
        Some("127.0.0.1:9569".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(c.log, LogSettings::default());
    assert_eq!(
        (c.log.format, c.log.level),
        (LogFormat::Human, LogLevel::Info)
    );

    assert_eq!(c.peers.len(), 2);
    let pbx = &c.peers[0];
    assert_eq!(pbx.name.as_str(), "pbx");
    assert_eq!(pbx.host, PeerHost::Static("10.0.0.1:4569".parse().unwrap()));
    assert_eq!(pbx.kind, PeerKind::Pbx);
    assert_eq!(pbx.trunk, None);
    assert!(pbx.permit.is_empty() && pbx.deny.is_empty());
    assert_eq!(pbx.maxcalls, None);
    let gw = &c.peers[1];
    assert_eq!(gw.host, PeerHost::Static("10.0.0.2:4570".parse().unwrap()));
    assert_eq!(gw.kind, PeerKind::Gateway);
    assert_eq!(gw.trunk, Some(TrunkSettings::default()));
    assert_eq!(
        gw.trunk,
        Some(TrunkSettings {
            freq: TrunkFreq::from_millis(20).unwrap(),
            mtu: TrunkMtu::new(1240).unwrap(),
            timestamps: true,
        })
    );
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].from, PeerName::new("pbx"));
    assert_eq!(c.routes[0].prefix, None);
    assert_eq!(c.routes[0].to, PeerName::new("gw").unwrap());
}

#[test]
fn every_key_set() {
    let text = "\
listen: \"[::]:5000\"
workers: 3
trunkfreq: 30
trunkmtu: 1400
trunktimestamps: no
timeouts: {call_idle: 61, setup: 41, hangup_linger: 11, callno_quarantine: 62, drain: 63}
admin:
  listen: \"[::1]:9000\"
log: {format: JSON, level: debug}
peers:
  a:
    host: \"::1\"
    kind: PBX
    permit: [10.1.2.3/8, 192.0.2.7]
    deny: [0.0.0.0/0]
    maxcalls: 100
  b:
    host: 192.0.2.1
    kind: gateway
    trunk: yes
    trunkfreq: 10
    trunktimestamps: on
  c:
    host: 192.0.2.2
    kind: gateway
    trunk: true
routes:
  - prefix: 0044
    to: b
  - from: b
    prefix: \"*9#\"
    to: a
  - prefix: 2
    to: c
";
    let c: Config = from_yaml_str(text, "all.yaml").unwrap();
    assert_eq!(c.listen, "[::]:5000".parse::<SocketAddr>().unwrap());
    assert_eq!(c.workers.get(), 3);
    assert_eq!(c.timeouts.call_idle, Duration::from_secs(61));
    assert_eq!(c.timeouts.callno_quarantine, Duration::from_secs(62));
    assert_eq!(c.timeouts.drain, Duration::from_secs(63));
    assert_eq!(c.admin.listen, Some("[::1]:9000".parse().unwrap()));
    assert_eq!(
        c.log,
        LogSettings {
            format: LogFormat::Json,
            level: LogLevel::Debug,
        }
    );
    let a = c.peer("a").unwrap();
    assert_eq!(a.host, PeerHost::Static("[::1]:4569".parse().unwrap()));
    assert_eq!(a.kind, PeerKind::Pbx);
    // Host bits are cleared; a bare address is one host.
    assert_eq!(
        a.permit,
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap()
        ]
    );
    assert_eq!(a.maxcalls.map(|n| n.get()), Some(100));
    let b = c.peer("b").unwrap().trunk.unwrap();
    assert_eq!(b.freq.as_millis(), 10);
    assert_eq!(b.mtu.get(), 1400);
    assert!(b.timestamps);
    let cc = c.peer("c").unwrap().trunk.unwrap();
    assert_eq!(
        (cc.freq.as_millis(), cc.mtu.get(), cc.timestamps),
        (30, 1400, false)
    );
    assert_eq!(c.routes[0].prefix, CalledPrefix::new("0044"));
    assert_eq!(c.routes[1].prefix, CalledPrefix::new("*9#"));
    assert_eq!(c.routes[2].prefix, CalledPrefix::new("2"));
}

#[test]
fn example_files_load() {
    let a = load(&example("site-a.yaml")).unwrap();
    let b = load(&example("site-b.yaml")).unwrap();
    assert_eq!(a.listen, "127.0.0.1:14569".parse::<SocketAddr>().unwrap());
    assert_eq!(b.listen, "127.0.0.1:24569".parse::<SocketAddr>().unwrap());
    // Two gateways on one host: an admin port each.
    assert_eq!(a.admin.listen, Some("127.0.0.1:19569".parse().unwrap()));
    assert_eq!(b.admin.listen, Some("127.0.0.1:29569".parse().unwrap()));
    for c in [&a, &b] {
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.log, LogSettings::default());
    }
    let names = |c: &Config| {
        c.peers
            .iter()
            .map(|p| p.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), ["pbx-a", "gw-b"]);
    assert_eq!(names(&b), ["pbx-b", "gw-a"]);
    let host = |c: &Config, n: &str| c.peer(n).unwrap().host;
    assert_eq!(
        host(&a, "pbx-a"),
        PeerHost::Static("127.0.0.1:14570".parse().unwrap())
    );
    assert_eq!(host(&a, "gw-b"), PeerHost::Static(b.listen));
    assert_eq!(
        host(&b, "pbx-b"),
        PeerHost::Static("127.0.0.1:24570".parse().unwrap())
    );
    assert_eq!(host(&b, "gw-a"), PeerHost::Static(a.listen));
    assert_eq!(a.peer("pbx-a").unwrap().kind, PeerKind::Pbx);
    assert_eq!(a.peer("gw-b").unwrap().kind, PeerKind::Gateway);
    assert!(a.peer("gw-b").unwrap().is_trunk() && b.peer("gw-a").unwrap().is_trunk());
    assert!(!a.peer("pbx-a").unwrap().is_trunk() && !b.peer("pbx-b").unwrap().is_trunk());
    for (c, pbx, gw) in [(&a, "pbx-a", "gw-b"), (&b, "pbx-b", "gw-a")] {
        let pbx = PeerName::new(pbx).unwrap();
        let gw = PeerName::new(gw).unwrap();
        assert_eq!(c.routes.len(), 2);
        assert_eq!(
            (c.routes[0].from.as_ref(), &c.routes[0].to),
            (Some(&pbx), &gw)
        );
        assert_eq!(
            (c.routes[1].from.as_ref(), &c.routes[1].to),
            (Some(&gw), &pbx)
        );
        // The PBX's ACL admits loopback only.
        let p = c.peer(pbx.as_str()).unwrap();
        assert!(p.permits("127.0.0.1".parse().unwrap()));
        assert!(!p.permits("192.0.2.1".parse().unwrap()));
    }
}
