//! Fuzz entry points with their invariant checks, shared by the cargo-fuzz
//! targets in `config/fuzz/` and the property tests of `cargo test`.
//!
//! Each takes arbitrary bytes and panics only when an invariant breaks.

use crate::{from_yaml_str, ConfigError, ErrorKind, PrivateKeyFile, PublicKeyFile};

/// The origin every fuzzed text is loaded as.
const ORIGIN: &str = "fuzz.yaml";

/// A configuration file: [`from_yaml_str`] returns whatever the text (no
/// panic), an accepted file has peers and routes, and every error is one
/// line located inside the text.
pub fn yaml(data: &[u8]) {
    yaml_text(&String::from_utf8_lossy(data));
}

/// [`yaml`] on text.
pub fn yaml_text(text: &str) {
    match from_yaml_str(text, ORIGIN) {
        Ok(config) => {
            assert!(!config.peers.is_empty(), "accepted with no peer");
            assert!(!config.routes.is_empty(), "accepted with no route");
        }
        Err(e) => check_error(&e, text),
    }
}

/// A loaded file's error: one located line, inside the text.
pub fn check_error(e: &ConfigError, text: &str) {
    let shown = e.to_string();
    assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
    assert_eq!(e.file, ORIGIN);
    assert_ne!(e.kind, ErrorKind::Io);
    assert!(e.line >= 1 && e.column >= 1, "unlocated: {shown}");
    // YAML line breaks: \n, \r\n and a lone \r.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u64;
    assert!(e.line <= lines + 1, "line {} of {lines}: {shown}", e.line);
    assert!(shown.starts_with(&format!("{ORIGIN}:{}:{}: ", e.line, e.column)));
}

/// A key file's text (`outkey`, `inkeys`): read as a private and as a
/// public key without a panic; an error is one line that repeats no part
/// of the file (a key's content never reaches a log).
pub fn key_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let errors = [
        PrivateKeyFile::from_pem("fuzz.key", &text).err(),
        PublicKeyFile::from_pem("fuzz.pub", &text).err(),
    ];
    for e in errors.into_iter().flatten() {
        assert!(!e.contains('\n'), "multi-line error: {e:?}");
        // Lines of base64, as a key's body is: no message of ours has 24
        // such characters in a row.
        let body = |l: &&str| {
            l.len() >= 24
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        };
        for line in text.lines().map(str::trim).filter(body) {
            assert!(!e.contains(line), "the error repeats the file: {e:?}");
        }
    }
}
