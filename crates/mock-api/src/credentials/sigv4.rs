//! AWS Signature Version 4, verified the way AWS does it, by the mock's own implementation: a
//! second one beside the consumer's signer, so that a mistake in either shows as a refusal.
//! The unit tests hold it to AWS's published test vectors (the `aws-sig-v4-test-suite`).
//!
//! Only the header form is accepted: `Authorization: AWS4-HMAC-SHA256
//! Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX` with
//! `x-amz-date`. The checks, in order, each refusal naming the one that failed: the credential
//! scope (the access key id, region and service configured, the date of `x-amz-date`), the date
//! within [`MAX_SKEW`] of the clock, `host` and `x-amz-date` signed, `x-amz-security-token`
//! equal to the session token and signed when one is configured (refused when none is),
//! `x-amz-content-sha256` equal to the body's SHA-256 when sent, and last the signature,
//! compared in constant time by ring's HMAC verification.
//!
//! The canonical request is the method; the path as it arrived with each segment URI-encoded
//! once more (AWS encodes a path twice for every service but S3: the client once, the signature
//! once; the test vectors give paths as they were before the client's encoding); the query's
//! parameters decoded, RFC 3986-encoded and sorted by name then value; each signed header,
//! lowercase, its values trimmed, inner runs of blanks made one space and joined by commas; the
//! signed header names; the hex SHA-256 of the body. The path is not normalized (no `.` or `..`
//! removed): the shapes the mock signs post to `/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, request};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use ring::digest::{SHA256, digest};
use ring::hmac;

use super::{hex, same};
use crate::Secret;

/// How far a request's date may be from the mock's clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The only algorithm.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Every byte but RFC 3986's unreserved characters is percent-encoded.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The key requests must be signed with, and the scope they must be signed for.
#[derive(Debug)]
pub struct Verifier {
    /// The access key id the credential must name.
    pub access_key_id: String,
    /// Its secret key.
    pub secret: Secret,
    /// The session token every request must carry (signed), if any.
    pub session_token: Option<Secret>,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
}

/// What a signature covers of a request.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    method: &'a str,
    /// The path as it arrived (percent-encoded by the client).
    path: &'a str,
    /// The query as it arrived, without `?`.
    query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl<'a> Signed<'a> {
    /// A request's head and whole body.
    pub fn of(parts: &'a request::Parts, body: &'a [u8]) -> Self {
        Self {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body,
        }
    }
}

/// Why a signature was refused: the check that failed, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// A header the signature needs is not there.
    #[error("the request has no {0}")]
    Missing(&'static str),
    /// The Authorization header is not Signature Version 4.
    #[error("the Authorization header is not AWS4-HMAC-SHA256")]
    Algorithm,
    /// A part of the signature cannot be read.
    #[error("the {0} cannot be read")]
    Malformed(&'static str),
    /// The credential names another access key id.
    #[error("the access key id is not a known one")]
    AccessKey,
    /// The credential scope's date, region, service or terminator is not the one expected.
    #[error("the credential scope's {0} is wrong")]
    Scope(&'static str),
    /// The date is too far from the clock.
    #[error("the request's date is more than 15 minutes from the server's time")]
    Stale,
    /// A header that must be signed is not.
    #[error("{0} is not among the signed headers")]
    Unsigned(&'static str),
    /// The session token is missing, wrong, or sent when none is expected.
    #[error("the security token is not valid")]
    SessionToken,
    /// `x-amz-content-sha256` is not the body's hash.
    #[error("x-amz-content-sha256 does not match the body")]
    PayloadHash,
    /// The signature is not the one the request and the key make.
    #[error("the request signature we calculated does not match the signature you provided")]
    Signature,
}

impl IntoResponse for SigV4Error {
    fn into_response(self) -> Response {
        let message = self.to_string();
        crate::shapes::aws_error(StatusCode::FORBIDDEN, "InvalidSignatureException", &message)
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    /// `YYYYMMDD`.
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Result<Self, SigV4Error> {
        let fields = value
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(SigV4Error::Algorithm)?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in fields.split(',') {
            let (name, value) = field
                .trim()
                .split_once('=')
                .ok_or(SigV4Error::Malformed("Authorization header"))?;
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err(SigV4Error::Malformed("Authorization header")),
            };
            *slot = Some(value);
        }
        let credential = credential.ok_or(SigV4Error::Missing("Credential"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(SigV4Error::Malformed("Credential"));
        };
        Ok(Self {
            access_key_id,
            date,
            region,
            service,
            terminator,
            signed_headers: signed
                .ok_or(SigV4Error::Missing("SignedHeaders"))?
                .split(';')
                .collect(),
            signature: signature.ok_or(SigV4Error::Missing("Signature"))?,
        })
    }

    /// `date/region/service/aws4_request`.
    fn scope(&self) -> String {
        let Self {
            date,
            region,
            service,
            terminator,
            ..
        } = self;
        format!("{date}/{region}/{service}/{terminator}")
    }

    fn signs(&self, header: &str) -> bool {
        self.signed_headers.contains(&header)
    }
}

impl Verifier {
    /// Checks `request`'s signature at `now`.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(&self, request: &Signed<'_>, now: SystemTime) -> Result<(), SigV4Error> {
        let header = |name: &'static str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| SigV4Error::Malformed(name)))
                .transpose()
        };
        let authorization = header("authorization")?.ok_or(SigV4Error::Missing("authorization"))?;
        let auth = Authorization::parse(authorization)?;
        if auth.access_key_id != self.access_key_id {
            return Err(SigV4Error::AccessKey);
        }
        for (given, expected, part) in [
            (auth.region, self.region.as_str(), "region"),
            (auth.service, self.service.as_str(), "service"),
            (auth.terminator, "aws4_request", "terminator"),
        ] {
            if given != expected {
                return Err(SigV4Error::Scope(part));
            }
        }
        let amz_date = header("x-amz-date")?.ok_or(SigV4Error::Missing("x-amz-date"))?;
        let at = parse_amz_date(amz_date).ok_or(SigV4Error::Malformed("x-amz-date"))?;
        if amz_date.get(..8) != Some(auth.date) {
            return Err(SigV4Error::Scope("date"));
        }
        let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            return Err(SigV4Error::Stale);
        }
        for name in ["host", "x-amz-date"] {
            if !auth.signs(name) {
                return Err(SigV4Error::Unsigned(name));
            }
        }
        let token = header("x-amz-security-token")?;
        match (&self.session_token, token) {
            (None, None) => {}
            (Some(expected), Some(token)) if same(token, expected) => {
                if !auth.signs("x-amz-security-token") {
                    return Err(SigV4Error::Unsigned("x-amz-security-token"));
                }
            }
            _ => return Err(SigV4Error::SessionToken),
        }
        let payload_hash = hex(digest(&SHA256, request.body).as_ref());
        if header("x-amz-content-sha256")?.is_some_and(|given| given != payload_hash) {
            return Err(SigV4Error::PayloadHash);
        }
        let canonical = canonical_request(request, &auth.signed_headers, &payload_hash);
        let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
        let signature = unhex(auth.signature).ok_or(SigV4Error::Malformed("Signature"))?;
        let key = signing_key(&self.secret, auth.date, &self.region, &self.service);
        hmac::verify(&key, to_sign.as_bytes(), &signature).map_err(|_| SigV4Error::Signature)
    }
}

/// The canonical request of `request` over `signed_headers` (lowercase, sorted, as the
/// `SignedHeaders` field gives them).
fn canonical_request(request: &Signed<'_>, signed_headers: &[&str], payload_hash: &str) -> String {
    let headers: String = signed_headers
        .iter()
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .get_all(*name)
                .iter()
                .map(|value| {
                    let value = String::from_utf8_lossy(value.as_bytes());
                    let words: Vec<&str> = value
                        .split([' ', '\t'])
                        .filter(|word| !word.is_empty())
                        .collect();
                    words.join(" ")
                })
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        signed_headers.join(";"),
    )
}

/// Each segment of `path` URI-encoded; `/` for an empty path.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| percent_encode(segment.as_bytes(), ENCODED).to_string())
        .collect();
    segments.join("/")
}

/// The parameters of `query`, each name and value decoded then RFC 3986-encoded, sorted by
/// name then value, joined by `&`.
fn canonical_query(query: &str) -> String {
    let encode = |part: &str| {
        let decoded: Vec<u8> = percent_decode_str(part).collect();
        percent_encode(&decoded, ENCODED).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join("&")
}

/// The string to sign of a canonical request signed at `amz_date` for `scope`.
fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex(digest(&SHA256, canonical_request.as_bytes()).as_ref());
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// The signing key of `secret` for a day, a region and a service: the HMAC chain.
fn signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> hmac::Key {
    let first = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{}", secret.0).as_bytes());
    [date, region, service, "aws4_request"]
        .into_iter()
        .fold(first, |key, part| {
            hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac::sign(&key, part.as_bytes()).as_ref(),
            )
        })
}

/// The bytes of lowercase or uppercase hex, if it is hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The instant of an ISO 8601 basic date-time, `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u64> {
        let digits = text.get(from..to)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0, 4)?, number(4, 6)?, number(6, 8)?);
    let (hour, minute, second) = (number(9, 11)?, number(11, 13)?, number(13, 15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let seconds = days_since_epoch(year, month, day)? * 86_400 + hour * 3600 + minute * 60;
    Some(UNIX_EPOCH + Duration::from_secs(seconds + second.min(60)))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (1970 or later): whole
/// 400-year eras of 146 097 days, the year counted from March so that leap days come last.
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

#[cfg(test)]
mod tests;
