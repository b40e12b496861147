//! Configuration of the iax2-trunk gateway: the YAML schema, its defaults
//! and its validation.
//!
//! [`load`] reads a file and [`from_yaml_str`] a text; both return the
//! validated [`Config`] of [`model`] or one [`ConfigError`] that names the
//! file, line, column and key, what is wrong and what is allowed:
//!
//! ```text
//! site-a.yaml:12:16: peers.site-b.trunkfreq: 5 is out of range; allowed: 10 to 1000 (milliseconds)
//! site-a.yaml:7:5: peers.pbx-a.bogus: unknown key `bogus`; allowed: the keys host, kind, trunk, ...
//! site-a.yaml:9:15: peers.pbx-a.maxcalls: expected a whole number, found `lots`; allowed: 1 to 32767 (calls)
//! ```
//!
//! # The file
//!
//! ```yaml
//! listen: 127.0.0.1:14569      # optional, default 0.0.0.0:4569
//! workers: 2                   # optional, default: the available cores
//! trunkfreq: 20                # optional defaults for trunk peers
//! trunkmtu: 1240
//! trunktimestamps: yes
//! udp_gso: yes                 # optional, default yes: segmented sends
//! timeouts:                    # optional, seconds
//!   call_idle: 60
//!   drain: 60                  # SIGTERM waits this long for calls to end
//! admission:                   # optional, limits on what may open calls
//!   maxcallnumbers: 4096       # table entries per source IP address
//!   new_rate: 1000             # NEW/POKE/REGREQ per second per source IP
//! admin:                       # optional, the HTTP admin listener
//!   listen: 127.0.0.1:9569     # the default; `none` turns it off
//! log:                         # optional
//!   format: human              # human | json
//!   level: info                # error | warn | info | debug | trace
//! peers:                       # required, at least one, in file order
//!   pbx-a:
//!     host: 127.0.0.1:14570    # an IP address with optional :port, or dynamic
//!     kind: pbx                # pbx | gateway
//!   gw-b:
//!     host: 127.0.0.1:24569
//!     kind: gateway
//!     trunk: true
//! routes:                      # required, at least one; the first match wins
//!   - from: pbx-a
//!     to: gw-b
//!   - from: gw-b
//!     to: pbx-a
//! ```
//!
//! Every key, default and allowed value is in the crate's `README.md`. In
//! short:
//!
//! - Booleans are YAML booleans; `yes`/`no`, `on`/`off` and `y`/`n` are
//!   accepted too (any case), as serde-saphyr reads them.
//! - Addresses are IP literals, never host names: `192.0.2.1`,
//!   `192.0.2.1:4570`, `::1`, `"[::1]:4570"` (quote a bracketed IPv6
//!   address, a bare `[` starts a YAML list, and `"::"`, whose final colon
//!   YAML would take for a key). The port defaults to 4569.
//! - `prefix` takes a string or an integer; an integer is taken as written
//!   (`prefix: 0044` is the prefix `0044`). Quote prefixes starting with
//!   `*` or `#`, which YAML reads as an alias or a comment.
//! - `permit` and `deny` take CIDR ranges; a bare address is a /32 or
//!   /128. [`Peer::permits`] tells the rule: the most specific matching
//!   range decides, `deny` wins a tie, and an address no range matches is
//!   admitted. A `host: dynamic` peer therefore needs both a `permit` and a
//!   `deny` (usually `[0.0.0.0/0, ::/0]`), or anyone could claim it,
//!   unless it is a gateway peer with a `secret` or `inkeys`, whose
//!   address comes from its authenticated registration.
//! - Gateway peers may also set `secret`, `register: true` with `username`
//!   (this gateway registers with the peer), `refresh`, `qualify`,
//!   `unreachable_after`, `retry_min` and `retry_max`; on any other peer
//!   these keys are an error. A [`Secret`] never shows in an error or in
//!   `Debug` output.
//! - Instead of or besides the secret, gateway registration may use RSA
//!   keys, as Asterisk's `outkey`/`inkeys`: `outkey` (with `register:
//!   true`) is the path of this gateway's PEM private key, `inkeys` (on a
//!   `host: dynamic` gateway peer) one path or a list of up to 16 paths of
//!   the peer's PEM public keys. The files are read and checked during
//!   validation ([`PrivateKeyFile`], [`PublicKeyFile`]); relative paths
//!   are taken from the working directory, so absolute ones are best.
//!
//! # Bounded input
//!
//! Files over [`MAX_FILE_BYTES`] (1 MiB) are refused before parsing, and
//! serde-saphyr runs with a budget sized for configuration files (nesting
//! up to 16 levels, 100 000 nodes, 10 000 aliases expanding to at most 100 000 values) so
//! alias bombs and deep nesting fail fast with an error. Only one YAML
//! document is read.
#![forbid(unsafe_code)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keyfile;
mod locate;
pub mod model;
mod parse;
mod raw;
mod schema;
mod validate;

use std::io::Read;
use std::path::Path;

/// The `rsa` crate of [`PrivateKeyFile`] and [`PublicKeyFile`], so other
/// crates sign and verify with the same version.
pub use rsa;

pub use error::{ConfigError, ErrorKind};
pub use model::{
    AdminSettings, Admission, CalledPrefix, Config, LogFormat, LogLevel, LogSettings, Peer,
    PeerHost, PeerKind, PeerName, PrivateKeyFile, PublicKeyFile, Route, Secret, Timeouts,
    TrunkFreq, TrunkMtu, TrunkSettings, ADMIN_PORT, DEFAULT_KEEPALIVE, DEFAULT_QUALIFY,
    DEFAULT_REFRESH, DEFAULT_RETRY_MAX, DEFAULT_RETRY_MIN, DEFAULT_UNREACHABLE_AFTER, IAX2_PORT,
};

/// The largest configuration file accepted, 1 MiB.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Reads and validates the configuration file at `path`.
///
/// Errors name the file as `path` displays. A file that cannot be read,
/// is over [`MAX_FILE_BYTES`] or is not UTF-8 is an error too.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let io_error = |what: &str, e: std::io::Error| ConfigError {
        file: origin.clone(),
        line: 0,
        column: 0,
        key_path: String::new(),
        message: format!("cannot {what} the file: {e}"),
        allowed: None,
        kind: ErrorKind::Io,
    };
    let file = std::fs::File::open(path).map_err(|e| io_error("open", e))?;
    let size = file.metadata().map(|m| m.len()).ok();
    if let Some(size) = size.filter(|&s| s > MAX_FILE_BYTES as u64) {
        return Err(parse::too_large(&origin, size));
    }
    // The limit holds even if the file grows between the two reads.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", e))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(parse::too_large(
            &origin,
            size.unwrap_or(bytes.len() as u64),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Err(not_utf8(
                &origin,
                e.as_bytes(),
                e.utf8_error().valid_up_to(),
            ))
        }
    };
    from_yaml_str(&text, &origin)
}

/// Validates the configuration in `text`; `origin` is the file name used
/// in error messages.
pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw = parse::parse(text, origin)?;
    validate::validate(raw, origin)
}

/// The error for bytes that are not UTF-8 from `valid_up_to` on.
fn not_utf8(origin: &str, bytes: &[u8], valid_up_to: usize) -> ConfigError {
    let good = String::from_utf8_lossy(&bytes[..valid_up_to.min(bytes.len())]);
    let line = good.matches('\n').count() as u64 + 1;
    let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    ConfigError {
        file: origin.to_owned(),
        line,
        column,
        key_path: String::new(),
        message: "the file is not valid UTF-8 text".to_owned(),
        allowed: Some("UTF-8 text".to_owned()),
        kind: ErrorKind::Syntax,
    }
}
