//! The answers to a registration challenge (PROTOCOL.md 14.2), for
//! registration between gateways:
//!
//! - MD5: `lowercase_hex(MD5(challenge || secret))`;
//! - RSA: an RSASSA-PKCS1-v1_5 signature with SHA-1 over the challenge,
//!   base64 with padding, checked against the peer's public keys
//!   (Asterisk's `outkey`/`inkeys`). Signing is blinded with a
//!   per-peer generator seeded from the relay's seed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;

/// `lowercase_hex(MD5(challenge || secret))`.
pub fn md5_result(challenge: &[u8], secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge);
    h.update(secret.as_bytes());
    h.finalize()
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `result` is the MD5 answer to `challenge` with `secret`
/// (compared without regard to case, as Asterisk does).
pub fn md5_matches(challenge: &[u8], secret: &str, result: &str) -> bool {
    md5_result(challenge, secret).eq_ignore_ascii_case(result)
}

/// Blinding for RSA signatures: a generator per signer.
#[derive(Debug, Clone)]
pub struct SignerRng(ChaCha20Rng);

impl SignerRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }
}

/// The RSA RESULT for `challenge`: the base64 signature with `key`.
pub fn rsa_result(key: &RsaPrivateKey, rng: &mut SignerRng, challenge: &[u8]) -> String {
    let signer = SigningKey::<Sha1>::new(key.clone());
    let signature = signer.sign_with_rng(&mut rng.0, challenge);
    STANDARD.encode(signature.to_bytes())
}

/// Whether `result` (an RSA RESULT) is a signature of `challenge` by one
/// of `keys`. Anything malformed is simply not a match.
pub fn rsa_matches<'a>(
    keys: impl IntoIterator<Item = &'a RsaPublicKey>,
    challenge: &[u8],
    result: &str,
) -> bool {
    let Ok(bytes) = STANDARD.decode(result.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    keys.into_iter().any(|key| {
        VerifyingKey::<Sha1>::new(key.clone())
            .verify(challenge, &signature)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePublicKey;

    const KEY: &str = include_str!("../../../config/tests/keys/gw-a.key");
    const PUB: &str = include_str!("../../../config/tests/keys/gw-a.pub");
    const OTHER_PUB: &str = include_str!("../../../config/tests/keys/gw-other.pub");

    #[test]
    fn md5_matches_the_protocol_example() {
        assert_eq!(
            md5_result(b"214748364", "s3cret"),
            "0c5b82d1f207f433199e2c3652d875d7"
        );
        assert!(md5_matches(
            b"214748364",
            "s3cret",
            "0C5B82D1F207F433199E2C3652D875D7"
        ));
        assert!(!md5_matches(
            b"214748365",
            "s3cret",
            &md5_result(b"214748364", "s3cret")
        ));
    }

    #[test]
    fn an_rsa_result_verifies_with_its_public_key_only_and_for_its_challenge_only() {
        let key = RsaPrivateKey::from_pkcs1_pem(KEY).unwrap();
        let public = RsaPublicKey::from_public_key_pem(PUB).unwrap();
        let other = RsaPublicKey::from_public_key_pem(OTHER_PUB).unwrap();
        let mut rng = SignerRng::new(7);
        let result = rsa_result(&key, &mut rng, b"123456789");
        // 1024-bit: 128 signature bytes, as Asterisk requires.
        assert_eq!(STANDARD.decode(&result).unwrap().len(), 128);
        assert!(rsa_matches([&public], b"123456789", &result));
        assert!(rsa_matches([&other, &public], b"123456789", &result));
        assert!(!rsa_matches([&other], b"123456789", &result));
        assert!(!rsa_matches([&public], b"123456780", &result));
        assert!(!rsa_matches([&public], b"123456789", "not base64!"));
        assert!(!rsa_matches([&public], b"123456789", "AAAA"));
        // PKCS#1 v1.5 signatures are deterministic: blinding changes the
        // computation, not the result.
        assert_eq!(rsa_result(&key, &mut rng, b"123456789"), result);
    }
}
