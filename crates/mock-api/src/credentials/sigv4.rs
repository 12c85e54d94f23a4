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
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// A case of AWS's test suite: the request (its path as it was before a client encoded it),
    /// and the three stages it must come to.
    struct Vector {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: &'static str,
        /// Besides `Host` and `X-Amz-Date`, in order (a name may repeat).
        headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        signed_headers: &'static str,
        canonical_request: &'static str,
        string_to_sign_hash: &'static str,
        signature: &'static str,
    }

    fn suite() -> Vec<Vector> {
        let plain = |name, method, path, query, creq, sts, signature| Vector {
            name,
            method,
            path,
            query,
            headers: &[],
            body: b"",
            signed_headers: "host;x-amz-date",
            canonical_request: creq,
            string_to_sign_hash: sts,
            signature,
        };
        vec![
            plain(
                "get-vanilla",
                "GET",
                "/",
                "",
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            plain(
                "post-vanilla",
                "POST",
                "/",
                "",
                "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            plain(
                "get-vanilla-query-order-key-case",
                "GET",
                "/",
                "Param2=value2&Param1=value1",
                "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            plain(
                "post-vanilla-query",
                "POST",
                "/",
                "Param1=value1",
                "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            ),
            plain(
                "get-vanilla-query-unreserved",
                "GET",
                "/",
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            ),
            plain(
                // The query as a client sends it: the name percent-encoded.
                "get-vanilla-utf8-query",
                "GET",
                "/",
                "%E1%88%B4=bar",
                "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            ),
            plain(
                "get-utf8",
                "GET",
                "/\u{1234}",
                "",
                "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            ),
            plain(
                "get-space-unnormalized",
                "GET",
                "/example space/",
                "",
                "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
                "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
            ),
            plain(
                "get-slashes-unnormalized",
                "GET",
                "//example//",
                "",
                "GET\n//example//\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "528ec3105ee1f34ab014bb0a1a45da0ed2742a4fea3555149e5b4d5d201eb240",
                "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5",
            ),
            Vector {
                name: "get-header-key-duplicate",
                headers: &[
                    ("my-header1", "value2"),
                    ("my-header1", "value2"),
                    ("my-header1", "value1"),
                ],
                signed_headers: "host;my-header1;x-amz-date",
                canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                string_to_sign_hash: "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
                signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
                ..plain("", "GET", "/", "", "", "", "")
            },
            Vector {
                name: "get-header-value-order",
                headers: &[
                    ("my-header1", "value4"),
                    ("my-header1", "value1"),
                    ("my-header1", "value3"),
                    ("my-header1", "value2"),
                ],
                signed_headers: "host;my-header1;x-amz-date",
                canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                string_to_sign_hash: "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
                signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
                ..plain("", "GET", "/", "", "", "", "")
            },
            Vector {
                name: "get-header-value-trim",
                headers: &[("my-header1", " value1"), ("my-header2", " \"a   b   c\"")],
                signed_headers: "host;my-header1;my-header2;x-amz-date",
                canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                string_to_sign_hash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
                signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
                ..plain("", "GET", "/", "", "", "", "")
            },
            Vector {
                name: "post-x-www-form-urlencoded",
                headers: &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-length", "13"),
                    (
                        "x-amz-content-sha256",
                        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                    ),
                ],
                body: b"Param1=value1",
                signed_headers: "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                canonical_request: "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                string_to_sign_hash: "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
                signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
                ..plain("", "POST", "/", "", "", "", "")
            },
        ]
    }

    fn verifier() -> Verifier {
        Verifier {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: Secret(SECRET.into()),
            session_token: None,
            region: "us-east-1".into(),
            service: "service".into(),
        }
    }

    fn headers(vector: &Vector, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut add = |name: &'static str, value: &str| {
            headers.append(name, HeaderValue::from_str(value).expect("a header value"));
        };
        add("host", "example.amazonaws.com");
        add("x-amz-date", DATE);
        for &(name, value) in vector.headers {
            add(name, value);
        }
        add(
            "authorization",
            &format!(
                "{ALGORITHM} Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={}, Signature={signature}",
                vector.signed_headers
            ),
        );
        headers
    }

    fn request<'a>(vector: &'a Vector, headers: &'a HeaderMap) -> Signed<'a> {
        Signed {
            method: vector.method,
            path: vector.path,
            query: vector.query,
            headers,
            body: vector.body,
        }
    }

    fn at_suite_time() -> SystemTime {
        parse_amz_date(DATE).expect("the suite's date")
    }

    #[test]
    fn every_test_vector_comes_to_its_canonical_request_string_to_sign_and_signature() {
        for vector in suite() {
            let headers = headers(&vector, vector.signature);
            let signed = request(&vector, &headers);
            let names: Vec<&str> = vector.signed_headers.split(';').collect();
            let payload_hash = hex(digest(&SHA256, vector.body).as_ref());
            let canonical = canonical_request(&signed, &names, &payload_hash);
            assert_eq!(canonical, vector.canonical_request, "{}", vector.name);
            let scope = "20150830/us-east-1/service/aws4_request";
            let to_sign = string_to_sign(DATE, scope, &canonical);
            assert_eq!(
                to_sign,
                format!(
                    "{ALGORITHM}\n{DATE}\n{scope}\n{}",
                    vector.string_to_sign_hash
                ),
                "{}",
                vector.name
            );

            assert_eq!(
                verifier().verify(&signed, at_suite_time()),
                Ok(()),
                "{}",
                vector.name
            );
        }
    }

    #[test]
    fn a_signature_off_by_one_digit_or_by_another_secret_is_refused() {
        let vector = &suite()[0];
        let wrong = vector.signature.replace('5', "6");
        let headers = headers(vector, &wrong);
        assert_eq!(
            verifier().verify(&request(vector, &headers), at_suite_time()),
            Err(SigV4Error::Signature)
        );

        let headers = self::headers(vector, vector.signature);
        let other = Verifier {
            secret: Secret("another".into()),
            ..verifier()
        };
        assert_eq!(
            other.verify(&request(vector, &headers), at_suite_time()),
            Err(SigV4Error::Signature)
        );
    }

    #[test]
    fn each_check_before_the_signature_names_what_failed() {
        let vector = &suite()[0];
        let headers = headers(vector, vector.signature);
        let signed = request(vector, &headers);
        let check = |verifier: Verifier, now| verifier.verify(&signed, now);
        let now = at_suite_time();

        let other_key = Verifier {
            access_key_id: "AKIDOTHER".into(),
            ..verifier()
        };
        assert_eq!(check(other_key, now), Err(SigV4Error::AccessKey));
        let other_region = Verifier {
            region: "eu-west-1".into(),
            ..verifier()
        };
        assert_eq!(check(other_region, now), Err(SigV4Error::Scope("region")));
        let other_service = Verifier {
            service: "textract".into(),
            ..verifier()
        };
        assert_eq!(check(other_service, now), Err(SigV4Error::Scope("service")));
        let later = now + MAX_SKEW + Duration::from_secs(1);
        assert_eq!(check(verifier(), later), Err(SigV4Error::Stale));
        let earlier = now - MAX_SKEW;
        assert_eq!(check(verifier(), earlier), Ok(()));
        let with_token = Verifier {
            session_token: Some(Secret("token".into())),
            ..verifier()
        };
        assert_eq!(check(with_token, now), Err(SigV4Error::SessionToken));
    }

    #[test]
    fn a_body_that_is_not_the_one_hashed_or_an_unsigned_host_is_refused() {
        let vector = &suite()[12];
        assert_eq!(vector.name, "post-x-www-form-urlencoded");
        let headers = headers(vector, vector.signature);
        let tampered = Signed {
            body: b"Param1=value2",
            ..request(vector, &headers)
        };
        assert_eq!(
            verifier().verify(&tampered, at_suite_time()),
            Err(SigV4Error::PayloadHash)
        );

        let unsigned_host = Vector {
            signed_headers: "x-amz-date",
            ..plain_get()
        };
        let headers = self::headers(&unsigned_host, EMPTY_SHA256);
        assert_eq!(
            verifier().verify(&request(&unsigned_host, &headers), at_suite_time()),
            Err(SigV4Error::Unsigned("host"))
        );
    }

    fn plain_get() -> Vector {
        suite().swap_remove(0)
    }

    #[test]
    fn a_header_that_is_not_sigv4_is_refused_for_what_it_lacks() {
        let parse = Authorization::parse;
        assert_eq!(parse("Bearer x"), Err(SigV4Error::Algorithm));
        assert_eq!(parse("AWS4-HMAC-SHA256X"), Err(SigV4Error::Algorithm));
        assert_eq!(
            parse("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00"),
            Err(SigV4Error::Malformed("Credential"))
        );
        assert_eq!(
            parse("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Signature=00"),
            Err(SigV4Error::Missing("SignedHeaders"))
        );
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("0aF"), None);
        assert_eq!(unhex("0aFf"), Some(vec![10, 255]));
    }

    #[test]
    fn dates_are_read_as_utc_and_nonsense_is_not_a_date() {
        let secs = |text| {
            parse_amz_date(text).map(|t| t.duration_since(UNIX_EPOCH).expect("after").as_secs())
        };
        assert_eq!(secs("19700101T000000Z"), Some(0));
        assert_eq!(secs("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(secs("20000301T000000Z"), Some(951_868_800));
        assert_eq!(secs("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(secs("2015-08-30T12:36Z"), None);
        assert_eq!(secs("20151330T123600Z"), None);
        assert_eq!(secs("2015083OT123600Z"), None);
        assert_eq!(secs("+0150830T123600Z"), None);
    }

    #[test]
    fn a_path_is_encoded_once_more_segment_by_segment() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/c%20d"), "/a%20b/c%2520d");
        assert_eq!(canonical_query("b=2&a=&a=1&c"), "a=&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a+b%2Fc"), "k=a%2Bb%2Fc");
    }
}
