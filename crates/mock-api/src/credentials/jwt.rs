//! The JWT bearer grant's assertion (RFC 7523), as a Google service account makes it: a JWT
//! signed RS256 with the account's private key, checked here against its public key.
//!
//! The key is a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an RSA key, as `openssl pkey
//! -pubout` writes it; ring verifies a PKCS#1 `RSAPublicKey`, which the SubjectPublicKeyInfo
//! wraps in a BIT STRING, so [`PublicKey::from_pem_file`] takes it out with a few DER reads.
//! An assertion is accepted when its header says `alg: RS256`, its signature verifies (a 2048
//! to 8192-bit key), and its claims are what Google requires: `iss` and `scope` not empty,
//! `aud` the token endpoint (ending in `/oauth/token`), `iat` at most [`LEEWAY_SECS`] ahead,
//! `exp` after now and at most [`MAX_LIFETIME_SECS`] after `iat`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// How far ahead of the mock's clock an assertion's `iat` may be.
pub const LEEWAY_SECS: u64 = 60;
/// The longest an assertion may live (`exp - iat`), as Google allows.
pub const MAX_LIFETIME_SECS: u64 = 3600;
/// What an assertion's `aud` ends with: the token endpoint's path.
const AUDIENCE_PATH: &str = "/oauth/token";
/// The DER of the rsaEncryption algorithm's object identifier (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// An RSA public key (its PKCS#1 DER), the one assertions must be signed with.
#[derive(Clone)]
pub struct PublicKey(Vec<u8>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bytes)", self.0.len())
    }
}

/// Why a public key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY`, or unreadable.
    #[error("not a PEM public key: {0}")]
    Pem(String),
    /// A public key, but not an RSA one, or its DER is broken.
    #[error("not an RSA SubjectPublicKeyInfo")]
    NotRsa,
}

impl PublicKey {
    /// The key of a PEM `PUBLIC KEY` file.
    ///
    /// # Errors
    /// When the file cannot be read, is not PEM, or holds no RSA key.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoDer::from_pem_file(path)
            .map_err(|err| KeyError::Pem(err.to_string()))?;
        Self::from_spki(spki.as_ref())
    }

    /// The RSA key of a DER SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { OID rsaEncryption,
    /// NULL }, BIT STRING { 0 unused bits, RSAPublicKey } }`.
    fn from_spki(der: &[u8]) -> Result<Self, KeyError> {
        let (info, _) = tlv(der, 0x30).ok_or(KeyError::NotRsa)?;
        let (algorithm, rest) = tlv(info, 0x30).ok_or(KeyError::NotRsa)?;
        if !algorithm.starts_with(RSA_ENCRYPTION) {
            return Err(KeyError::NotRsa);
        }
        let (bits, _) = tlv(rest, 0x03).ok_or(KeyError::NotRsa)?;
        match bits.split_first() {
            Some((0, key)) => Ok(Self(key.to_vec())),
            _ => Err(KeyError::NotRsa),
        }
    }
}

/// The contents of the DER element at the start of `der` if its tag is `tag`, and what
/// follows it.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = der.split_first()?;
    if first != tag {
        return None;
    }
    let (&length, rest) = rest.split_first()?;
    let (length, rest) = match length {
        short @ 0..=0x7f => (usize::from(short), rest),
        0x81..=0x84 => {
            let bytes = usize::from(length & 0x7f);
            let (size, rest) = (rest.get(..bytes)?, rest.get(bytes..)?);
            let length = size.iter().fold(0_usize, |n, &b| (n << 8) | usize::from(b));
            (length, rest)
        }
        _ => return None,
    };
    Some((rest.get(..length)?, rest.get(length..)?))
}

/// Why an assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    Malformed,
    /// Its header's `alg` is not RS256.
    Algorithm,
    /// The signature does not verify with the key.
    Signature,
    /// `iss` missing or empty.
    Issuer,
    /// `scope` missing or empty.
    Scope,
    /// `aud` is not the token endpoint.
    Audience,
    /// `iat` is further ahead than the leeway.
    IssuedAhead,
    /// `exp` is too long after `iat`.
    Lifetime,
    /// `exp` has passed.
    Expired,
}

impl JwtError {
    /// What the refusal says (never a value of the assertion).
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "the assertion is not a JWT",
            Self::Algorithm => "the assertion's alg is not RS256",
            Self::Signature => "the assertion's signature does not verify",
            Self::Issuer => "the assertion's iss is missing",
            Self::Scope => "the assertion's scope is missing",
            Self::Audience => "the assertion's aud is not the token endpoint",
            Self::IssuedAhead => "the assertion's iat is in the future",
            Self::Lifetime => "the assertion's exp is too far after its iat",
            Self::Expired => "the assertion has expired",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    aud: String,
    iat: u64,
    exp: u64,
}

/// Checks `assertion` against `key` at `now`.
///
/// # Errors
/// The first check it fails.
pub fn verify(assertion: &str, key: &PublicKey, now: SystemTime) -> Result<(), JwtError> {
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if header.alg != "RS256" {
        return Err(JwtError::Algorithm);
    }
    let signed = &assertion[..assertion.len() - signature.len() - 1];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.0)
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| JwtError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Malformed)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if claims.iss.is_empty() {
        return Err(JwtError::Issuer);
    }
    if claims.scope.is_empty() {
        return Err(JwtError::Scope);
    }
    if !claims.aud.ends_with(AUDIENCE_PATH) {
        return Err(JwtError::Audience);
    }
    if claims.iat > now + LEEWAY_SECS {
        return Err(JwtError::IssuedAhead);
    }
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_SECS {
        return Err(JwtError::Lifetime);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_der_element_is_read_with_a_short_or_a_long_length() {
        assert_eq!(
            tlv(&[0x30, 2, 7, 8, 9], 0x30),
            Some((&[7, 8][..], &[9][..]))
        );
        let long = [&[0x04, 0x81, 0x80][..], &[1; 0x80]].concat();
        assert_eq!(
            tlv(&long, 0x04).map(|(c, r)| (c.len(), r.len())),
            Some((0x80, 0))
        );
        assert_eq!(tlv(&[0x30, 5, 1], 0x30), None);
        assert_eq!(tlv(&[0x31, 0], 0x30), None);
        assert_eq!(tlv(&[], 0x30), None);
    }

    #[test]
    fn a_key_that_is_not_rsa_is_refused() {
        // An Ed25519 SubjectPublicKeyInfo: OID 1.3.101.112.
        let ed25519 = [
            &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ][..],
            &[9; 32],
        ]
        .concat();
        assert!(matches!(
            PublicKey::from_spki(&ed25519),
            Err(KeyError::NotRsa)
        ));
    }

    #[test]
    fn an_assertion_that_is_not_three_parts_of_json_is_malformed() {
        let key = PublicKey(vec![]);
        let now = SystemTime::now();
        assert_eq!(verify("a.b", &key, now), Err(JwtError::Malformed));
        assert_eq!(verify("a.b.c.d", &key, now), Err(JwtError::Malformed));
        assert_eq!(verify("!.b.c", &key, now), Err(JwtError::Malformed));
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        assert_eq!(
            verify(&format!("{none}.e30."), &key, now),
            Err(JwtError::Algorithm)
        );
    }
}
