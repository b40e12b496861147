//! `outkey` and `inkeys`: RSA key files for gateway registration, read and
//! checked at load; every error at the path, none with key material.
#![allow(clippy::unwrap_used)]

use iax2_config::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use iax2_config::rsa::Pkcs1v15Sign;
use iax2_config::{from_yaml_str, Config, ConfigError, ErrorKind, PrivateKeyFile, PublicKeyFile};

/// The directory of the test keys, with its final `/`.
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
const GW_A_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-a.key");
const GW_A_PKCS8_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-a-pkcs8.key");
const GW_A_PUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-a.pub");
const GW_A_PKCS1_PUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-a-pkcs1.pub");
const GW_OTHER_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-other.key");
const GW_OTHER_PUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/gw-other.pub");
const SMALL_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/small-512.key");
const SMALL_PUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/small-512.pub");
const BIG_PUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/big-4608.pub");
const NOT_A_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/not-a-key.txt");
const MISSING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/missing.key");

const OUTKEY_ALLOWED: &str = "the path of this gateway's PEM RSA private key file (RSA PRIVATE \
    KEY or PRIVATE KEY, unencrypted, 1024 to 4096 bits), best absolute, with register: true";
const INKEY_ALLOWED: &str = "the path of a PEM RSA public key file (PUBLIC KEY or RSA PUBLIC \
    KEY, 1024 to 4096 bits), best absolute";
const INKEYS_ALLOWED: &str = "a list of 1 to 16 paths of PEM RSA public key files (PUBLIC KEY \
    or RSA PUBLIC KEY, 1024 to 4096 bits), or one path, best absolute, on host: dynamic gateway \
    peers";

/// A small valid file; the gateway peer `gw` gets the keys under test.
const BASE: &str = "\
peers:
  pbx:
    host: 10.0.0.1
    kind: pbx
  gw:
    host: 10.0.0.2:4570
    kind: gateway
routes:
  - from: pbx
    to: gw
";

/// `BASE` with `lines` added to `gw` from line 8 on, each key at column 5.
fn gw_with(lines: &[&str]) -> String {
    let extra: String = lines.iter().map(|l| format!("\n    {l}")).collect();
    BASE.replacen("kind: gateway", &format!("kind: gateway{extra}"), 1)
}

/// As [`gw_with`] with `gw` at `host: dynamic` (its ACL left out).
fn dynamic_gw_with(lines: &[&str]) -> String {
    gw_with(lines).replacen("10.0.0.2:4570", "dynamic", 1)
}

/// The registering side with `outkey: "<path>"` (the path at column 13 of
/// line 10) and no secret.
fn registering(outkey: &str) -> String {
    gw_with(&[
        "register: true",
        "username: site-a",
        &format!("outkey: \"{outkey}\""),
    ])
}

/// `key: "<path>"`.
fn quoted(key: &str, path: &str) -> String {
    format!("{key}: \"{path}\"")
}

fn ok(text: &str) -> Config {
    match from_yaml_str(text, "site.yaml") {
        Ok(c) => c,
        Err(e) => panic!("refused:\n{text}\nwith {e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match from_yaml_str(text, "site.yaml") {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e,
    }
}

/// The error line with the key directory shown as `KEYS/`.
fn line(e: &ConfigError) -> String {
    e.to_string().replace(KEYS, "KEYS/")
}

/// The base64 lines of a file (its key material).
fn material(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

#[test]
fn outkey_in_both_private_key_formats() {
    let pkcs1 = ok(&registering(GW_A_KEY));
    let gw = pkcs1.peer("gw").unwrap();
    assert_eq!(gw.secret, None);
    assert_eq!(gw.register.as_ref().map(|n| n.as_str()), Some("site-a"));
    let outkey = gw.outkey.as_ref().unwrap();
    assert_eq!(outkey.path(), GW_A_KEY);
    assert_eq!(outkey.key().size(), 128);
    assert!(gw.inkeys.is_empty());

    let pkcs8 = ok(&registering(GW_A_PKCS8_KEY));
    let outkey8 = pkcs8.peer("gw").unwrap().outkey.as_ref().unwrap();
    assert_eq!(outkey8.path(), GW_A_PKCS8_KEY);
    // The same key in both files, and the same as the text gives.
    assert_eq!(outkey8.key(), outkey.key());
    assert_ne!(outkey8, outkey, "the paths differ");
    let text = std::fs::read_to_string(GW_A_KEY).unwrap();
    assert_eq!(&PrivateKeyFile::from_pem(GW_A_KEY, &text).unwrap(), outkey);

    // With a secret too: both ways of authenticating are configured.
    let both = ok(&gw_with(&[
        "secret: s3cr3t",
        "register: true",
        "username: site-a",
        &quoted("outkey", GW_A_KEY),
    ]));
    let gw = both.peer("gw").unwrap();
    assert!(gw.secret.is_some() && gw.outkey.is_some());
}

#[test]
fn inkeys_in_both_public_key_formats() {
    // One path, as a string.
    let c = ok(&dynamic_gw_with(&[&quoted("inkeys", GW_A_PUB)]));
    let gw = c.peer("gw").unwrap();
    assert_eq!(gw.inkeys.len(), 1);
    assert_eq!(gw.inkeys[0].path(), GW_A_PUB);
    assert_eq!(gw.secret, None);
    assert!(gw.permit.is_empty() && gw.deny.is_empty());
    assert_eq!(gw.outkey, None);

    // A list of two formats of the same key, in order.
    let c = ok(&dynamic_gw_with(&[&format!(
        "inkeys: [\"{GW_A_PUB}\", \"{GW_A_PKCS1_PUB}\"]"
    )]));
    let keys = &c.peer("gw").unwrap().inkeys;
    let paths: Vec<&str> = keys.iter().map(PublicKeyFile::path).collect();
    assert_eq!(paths, [GW_A_PUB, GW_A_PKCS1_PUB]);
    assert_eq!(keys[0].key(), keys[1].key());

    // A block list of two different keys.
    let c = ok(&dynamic_gw_with(&[
        "inkeys:",
        &format!("  - \"{GW_A_PUB}\""),
        &format!("  - \"{GW_OTHER_PUB}\""),
    ]));
    let keys = &c.peer("gw").unwrap().inkeys;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].path(), GW_OTHER_PUB);
    assert_ne!(keys[0].key(), keys[1].key());

    // With a secret, and with a complete ACL: still fine.
    ok(&dynamic_gw_with(&[
        "secret: s3cr3t",
        &quoted("inkeys", GW_A_PUB),
        "permit: [192.0.2.0/24]",
        "deny: [0.0.0.0/0]",
    ]));

    // 16 is the most.
    let sixteen = vec![format!("\"{GW_A_PUB}\""); 16].join(", ");
    let c = ok(&dynamic_gw_with(&[&format!("inkeys: [{sixteen}]")]));
    assert_eq!(c.peer("gw").unwrap().inkeys.len(), 16);
}

#[test]
fn a_relative_path_is_taken_from_the_working_directory() {
    // `cargo test` runs in the crate's directory.
    let c = ok(&dynamic_gw_with(&["inkeys: tests/keys/gw-a.pub"]));
    assert_eq!(
        c.peer("gw").unwrap().inkeys[0].path(),
        "tests/keys/gw-a.pub"
    );
    let e = err(&dynamic_gw_with(&["inkeys: keys/gw-a.pub"]));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        e.message,
        format!(
            "cannot read `keys/gw-a.pub` (relative to the working directory `{}`): No such \
             file or directory (os error 2)",
            cwd.display()
        )
    );
}

#[test]
fn the_pair_signs_and_verifies_with_the_reexported_rsa() {
    let a = ok(&registering(GW_A_KEY));
    let outkey = a.peer("gw").unwrap().outkey.clone().unwrap();
    let b = ok(&dynamic_gw_with(&[&format!(
        "inkeys: [\"{GW_OTHER_PUB}\", \"{GW_A_PUB}\"]"
    )]));
    let inkeys = &b.peer("gw").unwrap().inkeys;
    let digest = [7u8; 20];
    let signature = outkey
        .key()
        .sign(Pkcs1v15Sign::new_unprefixed(), &digest)
        .unwrap();
    let verifies = |k: &PublicKeyFile| {
        k.key()
            .verify(Pkcs1v15Sign::new_unprefixed(), &digest, &signature)
            .is_ok()
    };
    assert!(!verifies(&inkeys[0]));
    assert!(verifies(&inkeys[1]));
    assert_eq!(outkey.key().to_public_key(), *inkeys[1].key());
}

#[test]
fn unreadable_key_files() {
    let e = err(&registering(MISSING));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:10:13: peers.gw.outkey: cannot read `KEYS/missing.key`: No such file or \
             directory (os error 2); allowed: {OUTKEY_ALLOWED}"
        )
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    // A list element: located at that element.
    let e = err(&dynamic_gw_with(&[
        "inkeys:",
        &format!("  - \"{GW_A_PUB}\""),
        &format!("  - \"{MISSING}\""),
    ]));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:10:9: peers.gw.inkeys[1]: cannot read `KEYS/missing.key`: No such file \
             or directory (os error 2); allowed: {INKEY_ALLOWED}"
        )
    );
    // A directory, and an endless file.
    let e = err(&dynamic_gw_with(&[&quoted("inkeys", KEYS)]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (8, 13, "peers.gw.inkeys")
    );
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:8:13: peers.gw.inkeys: cannot read `KEYS/`: Is a directory (os error \
             21); allowed: {INKEY_ALLOWED}"
        )
    );
    let e = err(&registering("/dev/zero"));
    assert_eq!(
        e.message,
        "`/dev/zero` is over 64 KiB, too large for a PEM key file"
    );
    // No path at all.
    for empty in ["outkey:", "outkey: \"\""] {
        let e = err(&gw_with(&["register: true", "username: a", empty]));
        assert_eq!(e.message, "the path is empty", "{empty}");
        assert_eq!(e.key_path, "peers.gw.outkey");
    }
}

#[test]
fn files_that_are_not_rsa_keys() {
    let e = err(&registering(NOT_A_KEY));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:10:13: peers.gw.outkey: `KEYS/not-a-key.txt` is not a PEM key file (it \
             has no -----BEGIN line); allowed: {OUTKEY_ALLOWED}"
        )
    );
    let e = err(&dynamic_gw_with(&[&format!("inkeys: [\"{NOT_A_KEY}\"]")]));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:8:14: peers.gw.inkeys[0]: `KEYS/not-a-key.txt` is not a PEM key file (it \
             has no -----BEGIN line); allowed: {INKEY_ALLOWED}"
        )
    );
    // The wrong half of the pair, each way.
    let e = err(&registering(GW_A_PUB));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:10:13: peers.gw.outkey: `KEYS/gw-a.pub` holds a public key (`PUBLIC \
             KEY`), not this gateway's private key (the public key goes in the far gateway's \
             inkeys); allowed: {OUTKEY_ALLOWED}"
        )
    );
    let e = err(&dynamic_gw_with(&[&quoted("inkeys", GW_OTHER_KEY)]));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:8:13: peers.gw.inkeys: `KEYS/gw-other.key` holds a private key (`RSA \
             PRIVATE KEY`): inkeys take the peer's public key (openssl rsa -in KEY -pubout \
             writes it), and a private key belongs on its own gateway only; allowed: \
             {INKEY_ALLOWED}"
        )
    );
    for line in material(GW_OTHER_KEY) {
        assert!(!e.to_string().contains(&line), "{e}");
    }
}

#[test]
fn key_sizes_outside_1024_to_4096_bits() {
    let e = err(&registering(SMALL_KEY));
    assert_eq!(
        line(&e),
        format!(
            "site.yaml:10:13: peers.gw.outkey: `KEYS/small-512.key` holds a 512-bit RSA key, \
             outside 1024 to 4096 bits; allowed: {OUTKEY_ALLOWED}"
        )
    );
    let e = err(&dynamic_gw_with(&[&format!(
        "inkeys: [\"{GW_A_PUB}\", \"{SMALL_PUB}\"]"
    )]));
    assert_eq!((e.line, e.key_path.as_str()), (8, "peers.gw.inkeys[1]"));
    assert_eq!(
        e.message.replace(KEYS, "KEYS/"),
        "`KEYS/small-512.pub` holds a 512-bit RSA key, outside 1024 to 4096 bits"
    );
    let e = err(&dynamic_gw_with(&[&quoted("inkeys", BIG_PUB)]));
    assert_eq!(
        e.message.replace(KEYS, "KEYS/"),
        "`KEYS/big-4608.pub` holds a 4608-bit RSA key, outside 1024 to 4096 bits"
    );
    assert_eq!(e.allowed.as_deref(), Some(INKEY_ALLOWED));
}

#[test]
fn outkey_needs_register_true() {
    let e = err(&gw_with(&[&quoted("outkey", GW_A_KEY)]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:13: peers.gw.outkey: outkey signs this gateway's registration; this peer \
         has no register: true; allowed: register: true on this peer, or no outkey"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    // The rule comes before the file: a missing file is not the error.
    let e = err(&gw_with(&["register: no", &quoted("outkey", MISSING)]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (9, 13, "peers.gw.outkey")
    );
    assert!(e.message.starts_with("outkey signs"), "{e}");
}

#[test]
fn register_needs_a_secret_or_an_outkey() {
    // Neither: errors.rs, register_needs_a_static_host_a_secret_and_a_username.
    // Either one will do.
    ok(&registering(GW_A_KEY));
    ok(&gw_with(&[
        "register: true",
        "username: site-a",
        "secret: x",
    ]));
}

#[test]
fn inkeys_only_on_a_dynamic_peer() {
    let e = err(&gw_with(&[&quoted("inkeys", GW_A_PUB)]));
    assert_eq!(
        e.to_string(),
        "site.yaml:8:13: peers.gw.inkeys: inkeys check the signature of a peer that registers \
         here; only a host: dynamic peer registers; allowed: host: dynamic on this peer, or no \
         inkeys"
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = err(&gw_with(&[
        "secret: x",
        &format!("inkeys: [\"{GW_A_PUB}\"]"),
    ]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (9, 13, "peers.gw.inkeys")
    );
}

#[test]
fn a_dynamic_gateway_needs_permit_secret_or_inkeys() {
    let e = err(&dynamic_gw_with(&[]));
    assert_eq!(
        e.to_string(),
        "site.yaml:6:11: peers.gw.host: host: dynamic needs a permit range, otherwise any \
         address on the internet could claim this peer; allowed: permit: [the peer's source \
         ranges] with deny: [0.0.0.0/0, ::/0], or a secret or inkeys (the peer then registers \
         its address)"
    );
    ok(&dynamic_gw_with(&["secret: x"]));
    ok(&dynamic_gw_with(&[&quoted("inkeys", GW_A_PKCS1_PUB)]));
    ok(&dynamic_gw_with(&[
        "permit: [192.0.2.0/24]",
        "deny: [0.0.0.0/0, \"::/0\"]",
    ]));
    // An ACL next to inkeys must still be whole.
    let e = err(&dynamic_gw_with(&[
        &quoted("inkeys", GW_A_PUB),
        "permit: [192.0.2.0/24]",
    ]));
    assert_eq!(
        (e.line, e.column, e.key_path.as_str()),
        (6, 11, "peers.gw.host")
    );
    assert!(e.message.contains("no deny"), "{e}");
}

#[test]
fn keys_are_for_gateway_peers_only() {
    let pbx = |line: &str| BASE.replacen("kind: pbx", &format!("kind: pbx\n    {line}"), 1);
    let e = err(&pbx(&quoted("outkey", GW_A_KEY)));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:13: peers.pbx.outkey: outkey applies to gateway peers only (it signs a \
         gateway's registration with another gateway); allowed: kind: gateway on this peer, or \
         no outkey"
    );
    let e = err(&pbx(&quoted("inkeys", GW_A_PUB)));
    assert_eq!(
        e.to_string(),
        "site.yaml:5:13: peers.pbx.inkeys: inkeys applies to gateway peers only (they check \
         the signature of a gateway that registers here); allowed: kind: gateway on this peer, \
         or no inkeys"
    );
}

#[test]
fn inkeys_list_shape() {
    let e = err(&dynamic_gw_with(&["inkeys: []"]));
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:8:13: peers.gw.inkeys: the list of inkeys is empty; allowed: \
             {INKEYS_ALLOWED}"
        )
    );
    let e = err(&dynamic_gw_with(&["inkeys:"]));
    assert_eq!(
        (e.line, e.key_path.as_str(), e.message.as_str()),
        (8, "peers.gw.inkeys", "the list of inkeys is empty")
    );
    let seventeen = vec![format!("\"{GW_A_PUB}\""); 17].join(",\n      ");
    let e = err(&dynamic_gw_with(&[&format!("inkeys: [{seventeen}]")]));
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:24:7: peers.gw.inkeys[16]: more than 16 inkeys; allowed: {INKEYS_ALLOWED}"
        )
    );
    let e = err(&dynamic_gw_with(&["inkeys: 5"]));
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:8:13: peers.gw.inkeys: expected a list of paths, found `5`; allowed: \
             {INKEYS_ALLOWED}"
        )
    );
    assert_eq!(e.kind, ErrorKind::WrongType);
    let e = err(&dynamic_gw_with(&["inkeys: {a: b}"]));
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (8, 13, "expected a list of paths, found a map")
    );
    assert_eq!(e.kind, ErrorKind::WrongType);
    let e = err(&dynamic_gw_with(&["inkeys: [[a]]"]));
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:8:14: peers.gw.inkeys[0]: expected a single value, found a list; \
             allowed: {INKEY_ALLOWED}"
        )
    );
    let e = err(&registering("x").replace("\"x\"", "[a]"));
    assert_eq!(
        e.to_string(),
        format!(
            "site.yaml:10:13: peers.gw.outkey: expected a single value, found a list; allowed: \
             {OUTKEY_ALLOWED}"
        )
    );
}

#[test]
fn no_private_key_material_in_debug_output() {
    let c = ok(&registering(GW_A_KEY));
    let gw = c.peer("gw").unwrap();
    let key = gw.outkey.as_ref().unwrap().key();
    let numbers = [
        key.n().to_string(),
        key.d().to_string(),
        key.primes()[0].to_string(),
        key.primes()[1].to_string(),
    ];
    for shown in [format!("{gw:?}"), format!("{gw:#?}"), format!("{c:?}")] {
        assert!(shown.contains(GW_A_KEY), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        for n in &numbers {
            assert!(!shown.contains(&n[..12]), "{shown}");
        }
        for line in material(GW_A_KEY) {
            assert!(!shown.contains(&line), "{shown}");
        }
        assert!(
            !shown.contains("BigUint") && !shown.contains("primes"),
            "{shown}"
        );
    }
    assert_eq!(
        format!("{:?}", gw.outkey),
        format!("Some(PrivateKeyFile({GW_A_KEY:?}))")
    );
    let c = ok(&dynamic_gw_with(&[&quoted("inkeys", GW_A_PUB)]));
    assert_eq!(
        format!("{:?}", c.peer("gw").unwrap().inkeys),
        format!("[PublicKeyFile({GW_A_PUB:?})]")
    );
}

#[test]
fn from_pem_for_keys_given_as_text() {
    let private = std::fs::read_to_string(GW_A_KEY).unwrap();
    let public = std::fs::read_to_string(GW_A_PUB).unwrap();
    let k = PrivateKeyFile::from_pem("mem:a", &private).unwrap();
    assert_eq!(k.path(), "mem:a");
    let p = PublicKeyFile::from_pem("mem:a.pub", &public).unwrap();
    assert_eq!(k.key().to_public_key(), *p.key());
    // CRLF line ends and text around the block are fine.
    let crlf = format!("# site A\r\n{}", private.replace('\n', "\r\n"));
    assert_eq!(PrivateKeyFile::from_pem("a", &crlf).unwrap().key(), k.key());
    let crlf = format!("{}trailer\n", public.replace('\n', "\r\n"));
    assert_eq!(PublicKeyFile::from_pem("a", &crlf).unwrap().key(), p.key());

    let cases: [(&str, String, &str); 8] = [
        (
            "two blocks",
            format!("{public}{public}"),
            "`f` holds 2 PEM blocks; one key per file",
        ),
        (
            "cut off",
            public.lines().take(2).collect::<Vec<_>>().join("\n"),
            "`f` holds a PEM `PUBLIC KEY` block with no -----END line (a cut-off file?)",
        ),
        (
            "bad base64",
            public.replacen("MIGf", "MI!f", 1),
            "`f` holds a malformed `PUBLIC KEY` block (PEM error: PEM Base64 error: invalid \
             Base64 encoding)",
        ),
        (
            "a certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
            "`f` holds a PEM `CERTIFICATE` block, not an RSA public key",
        ),
        (
            "an Ed25519 key",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAu7kRfUMVeGqQDGbe/lqIh2Q96HnVjmbuOjnvtVzJa/Y=\n\
             -----END PUBLIC KEY-----\n"
                .to_owned(),
            "`f` holds a `PUBLIC KEY` that is not an RSA key (algorithm 1.3.101.112)",
        ),
        (
            "not PEM",
            "ssh-rsa AAAAB3NzaC1yc2E me@host\n".to_owned(),
            "`f` is not a PEM key file (it has no -----BEGIN line)",
        ),
        (
            "empty",
            String::new(),
            "`f` is not a PEM key file (it has no -----BEGIN line)",
        ),
        (
            "an odd label",
            "-----BEGIN x<y-----\nAAAA\n-----END x<y-----\n".to_owned(),
            "`f` holds a PEM block of an unknown kind, not an RSA public key",
        ),
    ];
    for (what, text, message) in cases {
        assert_eq!(
            PublicKeyFile::from_pem("f", &text).unwrap_err(),
            message,
            "{what}"
        );
    }

    let encrypted = "`f` holds a private key encrypted with a passphrase; the gateway reads an \
                     unencrypted key (openssl rsa -in FILE -out NEW-FILE writes one)";
    let cases: [(&str, String, &str); 5] = [
        (
            "encrypted PKCS#1",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n\
             AAAA\n-----END RSA PRIVATE KEY-----\n"
                .to_owned(),
            encrypted,
        ),
        (
            "encrypted PKCS#8",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            encrypted,
        ),
        (
            "an EC key",
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".to_owned(),
            "`f` holds a PEM `EC PRIVATE KEY` block, not an RSA private key",
        ),
        (
            "an Ed25519 key",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGwXG60yvX8aC6hWVaAVrw7mfSJA1VWSyZ4a0NCfAtcI\n\
             -----END PRIVATE KEY-----\n"
                .to_owned(),
            "`f` holds a `PRIVATE KEY` that is not an RSA key (algorithm 1.3.101.112)",
        ),
        (
            "an RSA public key",
            std::fs::read_to_string(GW_A_PKCS1_PUB).unwrap(),
            "`f` holds a public key (`RSA PUBLIC KEY`), not this gateway's private key (the \
             public key goes in the far gateway's inkeys)",
        ),
    ];
    for (what, text, message) in cases {
        assert_eq!(
            PrivateKeyFile::from_pem("f", &text).unwrap_err(),
            message,
            "{what}"
        );
    }

    // A damaged private key: the error says where, never what.
    let lines: Vec<&str> = private.lines().collect();
    let cut = format!(
        "{}\n{}\n{}\n",
        lines[0],
        lines[1..4].join("\n"),
        lines[lines.len() - 1]
    );
    let e = PrivateKeyFile::from_pem("f", &cut).unwrap_err();
    assert!(
        e.starts_with("`f` holds a malformed `RSA PRIVATE KEY` block ("),
        "{e}"
    );
    let flipped = private.replacen(&lines[2][..8], "AAAAAAAA", 1);
    let e2 = PrivateKeyFile::from_pem("f", &flipped).map(|_| ());
    for e in [Some(e), e2.err()].into_iter().flatten() {
        for line in material(GW_A_KEY) {
            assert!(!e.contains(&line) && !e.contains(&line[..12]), "{e}");
        }
    }
}
