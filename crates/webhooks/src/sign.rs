//! Signatures as the Standard Webhooks specification defines them, so a client verifies taskq's
//! callbacks with any of that project's libraries (or twenty lines of its own).
//!
//! The secret is shown to clients as `whsec_` followed by base64; the HMAC key is the decoded
//! bytes. A delivery carries three headers: `webhook-id` (the same on every retry of one
//! callback, so the receiver can drop duplicates), `webhook-timestamp` (unix seconds of this
//! attempt, so the receiver can refuse replays) and `webhook-signature`: `v1,` followed by the
//! base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`. The header may hold several
//! space-separated signatures (a sender rotating its secret signs with both), so [`verify`]
//! accepts when any `v1` one matches.
//!
//! The id and the timestamp are part of the signed text, joined by `.`: an id holding a `.`
//! would let one signed text be read as another, so ids are checked ([`check_id`]) and
//! [`message_id`] makes safe ones.
//!
//! [`verify`]: CallbackSecret::verify

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD};
use ring::{digest, hmac};

/// What every serialized secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// The shortest key taken, in bytes: the specification asks for at least 24 (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;

/// The longest key taken, in bytes: the specification's maximum of 512 bits. (HMAC-SHA256 would
/// hash a longer key down to 32 bytes anyway, so a longer one adds nothing.)
pub const MAX_SECRET_BYTES: usize = 64;

/// The longest `webhook-id` sent.
pub const MAX_ID_BYTES: usize = 256;

/// The secret callbacks are signed with (`CALLBACK_SECRET`, `whsec_<base64>`). Its `Debug` and
/// `Display` print `***`, so it can sit in a settings struct that is logged.
#[derive(Clone)]
pub struct CallbackSecret {
    /// The decoded key, ready for HMAC-SHA256; the bytes themselves are not kept elsewhere.
    key: hmac::Key,
}

/// Why a secret was refused. No variant holds any part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value does not start with `whsec_`.
    #[error(
        "a callback secret is `whsec_` followed by base64 (the value given does not start with whsec_)"
    )]
    NoPrefix,
    /// What follows `whsec_` is not standard base64.
    #[error("a callback secret is `whsec_` followed by base64 (what follows whsec_ is not base64)")]
    NotBase64,
    /// The key is shorter than [`MIN_SECRET_BYTES`].
    #[error(
        "the callback secret's key is {bytes} bytes; Standard Webhooks asks for at least \
         {MIN_SECRET_BYTES} (make one: echo whsec_$(openssl rand -base64 32))"
    )]
    TooShort {
        /// The decoded key's length.
        bytes: usize,
    },
    /// The key is longer than [`MAX_SECRET_BYTES`].
    #[error(
        "the callback secret's key is {bytes} bytes; Standard Webhooks allows at most {MAX_SECRET_BYTES}"
    )]
    TooLong {
        /// The decoded key's length.
        bytes: usize,
    },
}

impl CallbackSecret {
    /// A secret from the raw key bytes (a receiver holding them already, tests).
    ///
    /// # Errors
    /// [`SecretError::TooShort`] / [`SecretError::TooLong`] outside 24 to 64 bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        match key.len() {
            n if n < MIN_SECRET_BYTES => Err(SecretError::TooShort { bytes: n }),
            n if n > MAX_SECRET_BYTES => Err(SecretError::TooLong { bytes: n }),
            _ => Ok(Self {
                key: hmac::Key::new(hmac::HMAC_SHA256, key),
            }),
        }
    }

    /// The `webhook-signature` value for one delivery: `v1,<base64 of HMAC-SHA256>` over
    /// `{id}.{timestamp}.{body}`, `timestamp` in unix seconds.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &signed_content(id, timestamp, body));
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    /// Whether any `v1` signature of a `webhook-signature` value (space-separated, others such
    /// as `v1a` skipped) was made with this secret over `{id}.{timestamp}.{body}`. Compared in
    /// constant time.
    ///
    /// This checks the signature only: a receiver must also refuse a `timestamp` far from its
    /// clock (the specification's libraries allow 5 minutes either way) and an `id` it has
    /// already handled.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], signatures: &str) -> bool {
        let content = signed_content(id, timestamp, body);
        signatures
            .split(' ')
            .filter_map(|one| one.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .any(|tag| hmac::verify(&self.key, &content, &tag).is_ok())
    }
}

impl FromStr for CallbackSecret {
    type Err = SecretError;

    /// Parses `whsec_<base64>` (padding optional, surrounding whitespace ignored).
    fn from_str(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::NoPrefix)?;
        let key = STANDARD_PAD_INDIFFERENT
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(&key)
    }
}

impl fmt::Debug for CallbackSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for CallbackSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a `webhook-id` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a callback id is 1 to {MAX_ID_BYTES} visible ASCII characters without `.` (it is part of \
     the signed text, joined by `.`)"
)]
pub struct InvalidId;

/// Checks a `webhook-id`: 1 to [`MAX_ID_BYTES`] visible ASCII characters (a valid header value)
/// and no `.`, which would make the signed text ambiguous.
///
/// # Errors
/// [`InvalidId`] otherwise.
pub fn check_id(id: &str) -> Result<(), InvalidId> {
    let fits = !id.is_empty() && id.len() <= MAX_ID_BYTES;
    let visible = id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    if fits && visible {
        Ok(())
    } else {
        Err(InvalidId)
    }
}

/// A `webhook-id` made from the parts that name one callback (for instance the queue, the task
/// and when it ended): `msg_` and the unpadded URL-safe base64 of a SHA-256 over the parts,
/// each prefixed with its length so `("ab", "c")` and `("a", "bc")` differ. The same parts give
/// the same id, so every retry of a callback carries the id the receiver deduplicates on.
pub fn message_id(parts: &[&[u8]]) -> String {
    let mut hash = digest::Context::new(&digest::SHA256);
    for part in parts {
        hash.update(&(part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    format!("msg_{}", URL_SAFE_NO_PAD.encode(hash.finish().as_ref()))
}

/// `{id}.{timestamp}.{body}`, the text a signature covers.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors of the Standard Webhooks reference libraries (libraries/javascript's
    // "sign function works", libraries/rust's test_sign), checked with Python's hmac too.
    const JS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const RUST_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn signatures_match_the_reference_libraries_vectors() {
        let js: CallbackSecret = JS_SECRET.parse().unwrap();
        assert_eq!(
            js.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let rust: CallbackSecret = RUST_SECRET.parse().unwrap();
        assert_eq!(
            rust.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn any_v1_signature_of_several_is_accepted_and_only_a_right_one() {
        let secret: CallbackSecret = JS_SECRET.parse().unwrap();
        let body = br#"{"test": 2432232314}"#;
        let good = secret.sign("msg_1", 1614265330, body);
        let other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let header = format!("{other} v1a,{} {good} v2,x", &good[3..]);
        assert!(secret.verify("msg_1", 1614265330, body, &header));
        assert!(secret.verify("msg_1", 1614265330, body, &good));

        assert!(!secret.verify("msg_1", 1614265330, body, other));
        assert!(
            !secret.verify("msg_1", 1614265331, body, &good),
            "timestamp"
        );
        assert!(!secret.verify("msg_2", 1614265330, body, &good), "id");
        assert!(!secret.verify("msg_1", 1614265330, b"{}", &good), "body");
        assert!(!secret.verify("msg_1", 1614265330, body, &good[..10]));
        assert!(!secret.verify("msg_1", 1614265330, body, "v1,"));
        assert!(!secret.verify("msg_1", 1614265330, body, ""));
        // The same signature without its version is not a v1 signature.
        assert!(!secret.verify("msg_1", 1614265330, body, &good[3..]));
        let stranger: CallbackSecret = RUST_SECRET.parse().unwrap();
        assert!(!stranger.verify("msg_1", 1614265330, body, &good));
    }

    #[test]
    fn malformed_or_short_secrets_are_refused_without_echoing_them() {
        let cases = [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SecretError::NoPrefix),
            ("whsec_not*base64*at*all", SecretError::NotBase64),
            // 18 bytes: base64 of "short-secret-value".
            (
                "whsec_c2hvcnQtc2VjcmV0LXZhbHVl",
                SecretError::TooShort { bytes: 18 },
            ),
            ("whsec_", SecretError::TooShort { bytes: 0 }),
        ];
        for (text, expected) in cases {
            let err = text.parse::<CallbackSecret>().unwrap_err();
            assert_eq!(err, expected, "{text}");
            let said = err.to_string();
            let value = text.trim_start_matches(SECRET_PREFIX);
            assert!(value.is_empty() || !said.contains(value), "{said}");
        }
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(
            long.parse::<CallbackSecret>().unwrap_err(),
            SecretError::TooLong { bytes: 65 }
        );
    }

    #[test]
    fn a_secret_prints_as_stars_and_padding_is_optional() {
        let secret: CallbackSecret = format!(" {} \n", JS_SECRET).parse().unwrap();
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret)), "Some(***)");
        // 25 bytes encode with padding; without it the same key is read.
        let padded = format!("whsec_{}", STANDARD.encode([1u8; 25]));
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        let a: CallbackSecret = padded.parse().unwrap();
        let b: CallbackSecret = unpadded.parse().unwrap();
        assert_eq!(a.sign("m", 1, b"x"), b.sign("m", 1, b"x"));
    }

    #[test]
    fn ids_with_a_dot_or_unprintable_characters_are_refused() {
        check_id("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").unwrap();
        check_id("queue:task-1").unwrap();
        for bad in ["", "a.b", "a b", "é", "a\nb", &"x".repeat(MAX_ID_BYTES + 1)] {
            assert_eq!(check_id(bad), Err(InvalidId), "{bad:?}");
        }
    }

    #[test]
    fn message_ids_are_stable_valid_and_tell_split_parts_apart() {
        let one = message_id(&[b"queue", b"task-1", b"1700000000000"]);
        assert_eq!(one, message_id(&[b"queue", b"task-1", b"1700000000000"]));
        assert!(one.starts_with("msg_"), "{one}");
        check_id(&one).unwrap();
        assert_ne!(message_id(&[b"ab", b"c"]), message_id(&[b"a", b"bc"]));
    }
}
