//! MD5 challenge/response (PROTOCOL.md 14.2) and stateless call tokens
//! (PROTOCOL.md 12).

use std::fmt::Write as _;
use std::net::SocketAddr;

use md5::{Digest, Md5};

/// The MD5 RESULT an IAX2 client sends for `challenge` and `secret`:
/// lowercase hex of `MD5(challenge || secret)` (PROTOCOL.md 14.2).
///
/// ```
/// assert_eq!(
///     iax2_loadtest::md5_response("214748364", "s3cret"),
///     "0c5b82d1f207f433199e2c3652d875d7"
/// );
/// ```
pub fn md5_response(challenge: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// How long a call token stays valid (Asterisk's `calltokenexpiration`
/// default).
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 10;

/// Mints and checks call tokens without keeping state: a token is
/// `<secs>?<hex of MD5(key, peer ip:port, secs)>`, so the answerer can
/// verify it from the re-sent NEW alone, as Asterisk does with SHA-1.
#[derive(Debug, Clone)]
pub(crate) struct TokenMinter {
    key: u64,
}

impl TokenMinter {
    pub(crate) fn new(key: u64) -> Self {
        Self { key }
    }

    fn mac(&self, peer: SocketAddr, secs: u64) -> String {
        let mut h = Md5::new();
        h.update(self.key.to_be_bytes());
        h.update(peer.to_string().as_bytes());
        h.update(secs.to_string().as_bytes());
        hex(&h.finalize())
    }

    /// A token for `peer` issued at `now_secs`.
    pub(crate) fn mint(&self, peer: SocketAddr, now_secs: u64) -> String {
        format!("{now_secs}?{}", self.mac(peer, now_secs))
    }

    /// True when `token` was minted by us for `peer` at most
    /// [`TOKEN_LIFETIME_SECS`] ago.
    pub(crate) fn verify(&self, token: &[u8], peer: SocketAddr, now_secs: u64) -> bool {
        let Ok(token) = core::str::from_utf8(token) else {
            return false;
        };
        let Some((secs, mac)) = token.split_once('?') else {
            return false;
        };
        let Ok(secs) = secs.parse::<u64>() else {
            return false;
        };
        secs <= now_secs
            && now_secs - secs <= TOKEN_LIFETIME_SECS
            && mac.eq_ignore_ascii_case(&self.mac(peer, secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_protocol_example() {
        assert_eq!(
            md5_response("214748364", "s3cret"),
            "0c5b82d1f207f433199e2c3652d875d7"
        );
    }

    #[test]
    fn tokens_bind_peer_and_expire() {
        let m = TokenMinter::new(42);
        let a: SocketAddr = "10.0.0.1:4569".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:4570".parse().unwrap();
        let t = m.mint(a, 100);
        assert!(m.verify(t.as_bytes(), a, 100));
        assert!(m.verify(t.as_bytes(), a, 110));
        assert!(!m.verify(t.as_bytes(), a, 111));
        assert!(!m.verify(t.as_bytes(), a, 99));
        assert!(!m.verify(t.as_bytes(), b, 100));
        assert!(!TokenMinter::new(43).verify(t.as_bytes(), a, 100));
        assert!(!m.verify(b"garbage", a, 100));
        assert!(!m.verify(b"", a, 100));
        assert!(!m.verify(&[0xff, b'?'], a, 100));
    }
}
