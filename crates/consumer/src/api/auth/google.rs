//! A Google service account's key file and the JWT it signs (RFC 7523's JWT bearer grant, as
//! Google documents it for server-to-server OAuth2): `{"alg":"RS256","typ":"JWT"}`, claims
//! `iss` (the account's email), `scope`, `aud` (the key file's `token_uri`), `iat` and `exp`
//! (an hour later), signed with the key file's private key (RSASSA-PKCS1-v1_5 with SHA-256,
//! by `ring`). The key, the JWT and its signature are never shown.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// How long a JWT is valid: Google's maximum.
const JWT_LIFE_SECS: u64 = 3600;

/// A service account's key file.
pub struct ServiceAccount {
    email: String,
    token_uri: String,
    key: RsaKeyPair,
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// Why a key file cannot be used (never a piece of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not the JSON Google issues.
    #[error("not a service account key file (client_email, private_key and token_uri in JSON)")]
    NotAKeyFile,
    /// The private key is not an RSA key in PKCS#8 PEM.
    #[error("its private_key is not an RSA private key in PKCS#8 PEM")]
    BadKey,
    /// Signing failed.
    #[error("signing the JWT failed")]
    Signing,
}

fn url_safe(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ServiceAccount {
    /// Reads a key file's text.
    ///
    /// # Errors
    /// [`KeyFileError`] when it is not a key file or its key is not usable.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let file: KeyFile = serde_json::from_str(text).map_err(|_| KeyFileError::NotAKeyFile)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(file.private_key.as_bytes())
            .map_err(|_| KeyFileError::BadKey)?;
        let key =
            RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|_| KeyFileError::BadKey)?;
        Ok(Self {
            email: file.client_email,
            token_uri: file.token_uri,
            key,
        })
    }

    /// Where the JWT is exchanged for a token.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The signed JWT asking for `scopes` (space-separated), issued at `now`.
    ///
    /// # Errors
    /// [`KeyFileError::Signing`] if ring cannot sign.
    pub fn assertion(&self, scopes: &str, now: SystemTime) -> Result<String, KeyFileError> {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = url_safe(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": scopes,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + JWT_LIFE_SECS,
        });
        let claims = url_safe(claims.to_string().as_bytes());
        let signed = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyFileError::Signing)?;
        Ok(format!("{signed}.{}", url_safe(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    /// A key file with a key `openssl` makes for this test, and the key's public half as
    /// PKCS#1 DER (what ring verifies with).
    fn key_file() -> (String, Vec<u8>) {
        let key = testkit::RsaKey::generate();
        let file = key.service_account_file(
            "runner@project.iam.gserviceaccount.com",
            "https://oauth2.example.com/token",
        );
        (
            std::fs::read_to_string(file).unwrap(),
            key.public_pkcs1_der(),
        )
    }

    #[test]
    fn the_jwt_is_signed_rs256_with_the_claims_google_asks_for() {
        let (file, rsa_public) = key_file();
        let account = ServiceAccount::parse(&file).unwrap();
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let jwt = account
            .assertion("https://www.googleapis.com/auth/cloud-platform", now)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap()
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(claims["iss"], "runner@project.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.example.com/token");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_003_600);
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &rsa_public)
            .verify(signed.as_bytes(), &decode(parts[2]))
            .expect("the signature verifies with the public key");
        let mut tampered = decode(parts[2]);
        tampered[0] ^= 1;
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &rsa_public)
                .verify(signed.as_bytes(), &tampered)
                .is_err()
        );
    }

    #[test]
    fn a_file_that_is_not_a_key_file_is_refused_without_showing_it() {
        assert_eq!(
            ServiceAccount::parse("{\"client_email\": \"x\"}").err(),
            Some(KeyFileError::NotAKeyFile)
        );
        let file = serde_json::json!({
            "client_email": "a@b", "token_uri": "https://t", "private_key": "secret-not-a-key",
        });
        let error = ServiceAccount::parse(&file.to_string()).err().unwrap();
        assert_eq!(error, KeyFileError::BadKey);
        assert!(!error.to_string().contains("secret-not-a-key"));
    }
}
