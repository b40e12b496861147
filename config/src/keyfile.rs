//! RSA key files (`outkey`, `inkeys`): reading them and checking what is
//! in them.
//!
//! Every message names the file as written and says what is wrong; none
//! ever holds any of a file's content other than its PEM label (`RSA
//! PRIVATE KEY`, ...), so a private key never reaches an error or a log.

use std::io::Read;
use std::path::Path;

use rsa::pkcs1::{self, DecodeRsaPrivateKey};
use rsa::pkcs8::{self, DecodePrivateKey, Document, SecretDocument};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};

use crate::locate::shorten;

/// The largest key file read: a 4096-bit private key in PEM is about
/// 3.3 KB, so anything near this is not a key (or is `/dev/zero`).
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Modulus sizes accepted, in bits.
pub(crate) const KEY_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

/// Longest path shown in a message.
const SHOWN_PATH_CHARS: usize = 200;

/// A path as messages show it: in backticks, a long one cut at its start
/// (the file name is at the end).
pub(crate) fn shown(path: &str) -> String {
    let chars = path.chars().count();
    if chars <= SHOWN_PATH_CHARS {
        format!("`{}`", shorten(path, SHOWN_PATH_CHARS))
    } else {
        let tail: String = path.chars().skip(chars - SHOWN_PATH_CHARS).collect();
        format!("`...{}`", shorten(&tail, SHOWN_PATH_CHARS))
    }
}

/// The bytes of the key file at `path`, at most [`MAX_KEY_FILE_BYTES`].
///
/// A relative path is taken from the working directory, which the error
/// then names.
pub(crate) fn read(path: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| {
        let relative = Path::new(path).is_relative();
        let cwd = std::env::current_dir().ok().filter(|_| relative);
        match cwd {
            Some(dir) => format!(
                "cannot read {} (relative to the working directory {}): {e}",
                shown(path),
                shown(&dir.display().to_string())
            ),
            None => format!("cannot read {}: {e}", shown(path)),
        }
    };
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    // Room for the whole file from the start: no reallocation leaves a
    // copy of a private key behind.
    let mut bytes = Vec::with_capacity(MAX_KEY_FILE_BYTES as usize + 1);
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        wipe(&mut bytes);
        return Err(format!(
            "{} is over {} KiB, too large for a PEM key file",
            shown(path),
            MAX_KEY_FILE_BYTES / 1024
        ));
    }
    Ok(bytes)
}

/// Overwrites a buffer that held key material before it is dropped
/// (best effort: the key itself zeroizes on drop in the `rsa` crate).
pub(crate) fn wipe(bytes: &mut Vec<u8>) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

/// `bytes` as text, or the error for a file that is not PEM text.
pub(crate) fn text<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| {
        format!(
            "{} is not a PEM text file (a binary DER key? PEM is the text form that starts \
             with -----BEGIN)",
            shown(path)
        )
    })
}

/// The one PEM block of `pem`: its label and its text from `-----BEGIN` to
/// the end of its `-----END` line. Text around the block (comments) is
/// ignored; a file with no block or several is an error.
fn block<'a>(path: &str, pem: &'a str) -> Result<(&'a str, &'a str), String> {
    const BEGIN: &str = "-----BEGIN ";
    let mut found: Option<(&str, &str)> = None;
    let mut count = 0usize;
    let mut offset = 0usize;
    while let Some(at) = pem[offset..].find(BEGIN).map(|i| i + offset) {
        // Only at the start of a line.
        if at > 0 && !pem[..at].ends_with('\n') {
            offset = at + BEGIN.len();
            continue;
        }
        let line_end = pem[at..].find('\n').map_or(pem.len(), |i| at + i);
        let line = pem[at..line_end].trim_end();
        let label = line
            .strip_prefix(BEGIN)
            .and_then(|l| l.strip_suffix("-----"))
            .unwrap_or("");
        let end_marker = format!("-----END {label}-----");
        let Some(end) = pem[line_end..]
            .find(&end_marker)
            .map(|i| line_end + i + end_marker.len())
        else {
            return Err(format!(
                "{} holds {} with no -----END line (a cut-off file?)",
                shown(path),
                label_shown(label)
            ));
        };
        count += 1;
        if found.is_none() {
            found = Some((label, &pem[at..end]));
        }
        offset = end;
    }
    match (found, count) {
        (Some(found), 1) => Ok(found),
        (Some(_), n) => Err(format!(
            "{} holds {n} PEM blocks; one key per file",
            shown(path)
        )),
        (None, _) => Err(format!(
            "{} is not a PEM key file (it has no -----BEGIN line)",
            shown(path)
        )),
    }
}

/// A PEM label as a message shows it: its text if it looks like a label.
fn label_shown(label: &str) -> String {
    let plain = !label.is_empty()
        && label.len() <= 40
        && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' ');
    if plain {
        format!("a PEM `{label}` block")
    } else {
        "a PEM block of an unknown kind".to_owned()
    }
}

/// Whether a block is encrypted with a passphrase (PKCS#1 with
/// `Proc-Type: 4,ENCRYPTED` headers, or PKCS#8 `ENCRYPTED PRIVATE KEY`).
fn encrypted(label: &str, block: &str) -> bool {
    label == "ENCRYPTED PRIVATE KEY"
        || block
            .lines()
            .any(|l| l.starts_with("Proc-Type:") && l.contains("ENCRYPTED"))
}

/// The bits of a big-endian unsigned integer.
fn bits(be: &[u8]) -> usize {
    let be = be
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &be[i..]);
    match be.first() {
        Some(first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// The error unless `bits` is in [`KEY_BITS`].
fn check_size(path: &str, bits: usize) -> Result<(), String> {
    if KEY_BITS.contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "{} holds a {bits}-bit RSA key, outside {} to {} bits",
            shown(path),
            KEY_BITS.start(),
            KEY_BITS.end()
        ))
    }
}

/// The error for a block that has the right label but is not a valid key.
fn malformed(path: &str, label: &str, why: &dyn std::fmt::Display) -> String {
    format!("{} holds a malformed `{label}` block ({why})", shown(path))
}

/// The RSA private key in `pem` (PKCS#1 `RSA PRIVATE KEY` or PKCS#8
/// `PRIVATE KEY`, unencrypted, [`KEY_BITS`] bits).
pub(crate) fn private_key(path: &str, pem: &str) -> Result<RsaPrivateKey, String> {
    let (label, block) = block(path, pem)?;
    if encrypted(label, block) {
        return Err(format!(
            "{} holds a private key encrypted with a passphrase; the gateway reads an \
             unencrypted key (openssl rsa -in FILE -out NEW-FILE writes one)",
            shown(path)
        ));
    }
    match label {
        "RSA PRIVATE KEY" => {
            let (_, doc) =
                SecretDocument::from_pem(block).map_err(|e| malformed(path, label, &e))?;
            let key = pkcs1::RsaPrivateKey::try_from(doc.as_bytes())
                .map_err(|e| malformed(path, label, &e))?;
            check_size(path, bits(key.modulus.as_bytes()))?;
            RsaPrivateKey::from_pkcs1_der(doc.as_bytes()).map_err(|e| malformed(path, label, &e))
        }
        "PRIVATE KEY" => {
            let (_, doc) =
                SecretDocument::from_pem(block).map_err(|e| malformed(path, label, &e))?;
            let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes())
                .map_err(|e| malformed(path, label, &e))?;
            if info.algorithm.oid != pkcs1::ALGORITHM_OID {
                return Err(format!(
                    "{} holds a `PRIVATE KEY` that is not an RSA key (algorithm {})",
                    shown(path),
                    info.algorithm.oid
                ));
            }
            let key = pkcs1::RsaPrivateKey::try_from(info.private_key)
                .map_err(|e| malformed(path, label, &e))?;
            check_size(path, bits(key.modulus.as_bytes()))?;
            RsaPrivateKey::from_pkcs8_der(doc.as_bytes()).map_err(|e| malformed(path, label, &e))
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(format!(
            "{} holds a public key (`{label}`), not this gateway's private key (the public \
             key goes in the far gateway's inkeys)",
            shown(path)
        )),
        other => Err(format!(
            "{} holds {}, not an RSA private key",
            shown(path),
            label_shown(other)
        )),
    }
}

/// The RSA public key in `pem` (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC
/// KEY`, [`KEY_BITS`] bits).
pub(crate) fn public_key(path: &str, pem: &str) -> Result<RsaPublicKey, String> {
    let (label, block) = block(path, pem)?;
    let parts = |der: &[u8]| -> Result<RsaPublicKey, String> {
        let key = pkcs1::RsaPublicKey::try_from(der).map_err(|e| malformed(path, label, &e))?;
        check_size(path, bits(key.modulus.as_bytes()))?;
        let n = BigUint::from_bytes_be(key.modulus.as_bytes());
        let e = BigUint::from_bytes_be(key.public_exponent.as_bytes());
        RsaPublicKey::new(n, e).map_err(|e| malformed(path, label, &e))
    };
    match label {
        "PUBLIC KEY" => {
            let (_, doc) = Document::from_pem(block).map_err(|e| malformed(path, label, &e))?;
            let spki = pkcs8::SubjectPublicKeyInfoRef::try_from(doc.as_bytes())
                .map_err(|e| malformed(path, label, &e))?;
            if spki.algorithm.oid != pkcs1::ALGORITHM_OID {
                return Err(format!(
                    "{} holds a `PUBLIC KEY` that is not an RSA key (algorithm {})",
                    shown(path),
                    spki.algorithm.oid
                ));
            }
            let der = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| malformed(path, label, &"the key bits are not whole bytes"))?;
            parts(der)
        }
        "RSA PUBLIC KEY" => {
            let (_, doc) = Document::from_pem(block).map_err(|e| malformed(path, label, &e))?;
            parts(doc.as_bytes())
        }
        "RSA PRIVATE KEY" | "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Err(format!(
            "{} holds a private key (`{label}`): inkeys take the peer's public key (openssl \
             rsa -in KEY -pubout writes it), and a private key belongs on its own gateway only",
            shown(path)
        )),
        other => Err(format!(
            "{} holds {}, not an RSA public key",
            shown(path),
            label_shown(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_counts() {
        assert_eq!(bits(&[]), 0);
        assert_eq!(bits(&[0, 0]), 0);
        assert_eq!(bits(&[1]), 1);
        assert_eq!(bits(&[0x80, 0]), 16);
        assert_eq!(bits(&[0, 0x7f, 0xff]), 15);
    }

    #[test]
    fn binary_files() {
        assert_eq!(
            text("k.der", &[0x30, 0x82, 0xff, 0xfe]),
            Err(
                "`k.der` is not a PEM text file (a binary DER key? PEM is the text form that \
                 starts with -----BEGIN)"
                    .to_owned()
            )
        );
        assert_eq!(text("k", b"-----BEGIN"), Ok("-----BEGIN"));
    }

    #[test]
    fn blocks() {
        let one = "# a comment\n-----BEGIN X-----\nAAAA\n-----END X-----\ntrailing\n";
        assert_eq!(
            block("f", one),
            Ok(("X", "-----BEGIN X-----\nAAAA\n-----END X-----"))
        );
        let two = format!("{one}{one}");
        assert_eq!(
            block("f", &two),
            Err("`f` holds 2 PEM blocks; one key per file".to_owned())
        );
        assert!(block("f", "no key here")
            .unwrap_err()
            .contains("no -----BEGIN line"));
        // Not at the start of a line: not a boundary.
        assert!(block("f", "x -----BEGIN X-----\n").is_err());
        assert_eq!(
            block("f", "-----BEGIN X-----\nAAAA\n"),
            Err("`f` holds a PEM `X` block with no -----END line (a cut-off file?)".to_owned())
        );
        assert_eq!(
            label_shown("EC PRIVATE KEY"),
            "a PEM `EC PRIVATE KEY` block"
        );
        let long = format!("/{}/k.pem", "d".repeat(300));
        let s = shown(&long);
        assert!(s.starts_with("`...ddd") && s.ends_with("d/k.pem`"), "{s}");
        assert_eq!(s.chars().count(), SHOWN_PATH_CHARS + 5);
        assert_eq!(shown("a\nb"), "`a\\nb`");
        assert_eq!(label_shown("x<y"), "a PEM block of an unknown kind");
    }
}
