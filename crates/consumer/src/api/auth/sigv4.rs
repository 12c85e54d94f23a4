//! AWS Signature Version 4 on every call to the profile's `base_url` origin, after its other
//! headers are set: `x-amz-date`, `x-amz-content-sha256`-style payload hash in the canonical
//! request, `x-amz-security-token` when a session token is given, and `Authorization`.
//!
//! The signing is AWS's own maintained crate (`aws-sigv4`), not ours: its canonical request,
//! URI and query encoding and header normalisation are the ones AWS tests against its services,
//! and they are the easiest part of SigV4 to get subtly wrong. It is given the headers AWS
//! requires or a service reads as part of the request (`host`, `content-type`, `x-amz-*`), so
//! a profile's other headers (which may hold secrets) never reach its trace logging. A body
//! streamed as it is read (a multipart upload) is signed `UNSIGNED-PAYLOAD`.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderName, HeaderValue};

use super::{CredentialError, Outgoing};
use crate::api::secret::SecretText;

/// The keys and scope of `aws_sigv4`.
#[derive(Debug)]
pub struct Signer {
    region: String,
    service: String,
    access_key_id: Arc<SecretText>,
    secret_access_key: Arc<SecretText>,
    session_token: Option<Arc<SecretText>>,
}

impl Signer {
    pub(super) fn new(
        region: String,
        service: String,
        access_key_id: Arc<SecretText>,
        secret_access_key: Arc<SecretText>,
        session_token: Option<Arc<SecretText>>,
    ) -> Self {
        Self {
            region,
            service,
            access_key_id,
            secret_access_key,
            session_token,
        }
    }

    /// The kind and its scope, no key.
    pub(super) fn describe(&self) -> String {
        format!("aws_sigv4 {} {}", self.region, self.service)
    }

    /// The headers that sign `outgoing` now.
    ///
    /// # Errors
    /// [`CredentialError::Refused`] when a key cannot be read or the request cannot be signed.
    pub fn sign(
        &self,
        outgoing: &Outgoing<'_>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, CredentialError> {
        self.sign_at(outgoing, SystemTime::now())
    }

    fn sign_at(
        &self,
        outgoing: &Outgoing<'_>,
        time: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, CredentialError> {
        let read = |text: &SecretText| {
            text.current()
                .map_err(|e| CredentialError::Refused(e.to_string()))
        };
        let identity: Identity = Credentials::new(
            read(&self.access_key_id)?,
            read(&self.secret_access_key)?,
            self.session_token.as_deref().map(read).transpose()?,
            None,
            "taskq profile",
        )
        .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| CredentialError::Refused(format!("signing: {e}")))?
            .into();
        let host = host_header(outgoing.url);
        let signed_headers = outgoing.headers.iter().filter_map(|(name, value)| {
            let name = name.as_str();
            let read_by_aws = name == "content-type" || name.starts_with("x-amz-");
            read_by_aws.then_some(())?;
            Some((name, value.to_str().ok()?))
        });
        let headers = std::iter::once(("host", host.as_str())).chain(signed_headers);
        let body = outgoing
            .body
            .map_or(SignableBody::UnsignedPayload, SignableBody::Bytes);
        let request = SignableRequest::new(
            outgoing.method.as_str(),
            outgoing.url.as_str(),
            headers,
            body,
        )
        .map_err(|e| CredentialError::Refused(format!("signing: {e}")))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| CredentialError::Refused(format!("signing: {e}")))?
            .into_parts();
        instructions
            .headers()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| CredentialError::Refused("signing: a bad header name".into()))?;
                let mut value = HeaderValue::from_str(value)
                    .map_err(|_| CredentialError::Refused("signing: a bad header value".into()))?;
                value.set_sensitive(true);
                Ok((name, value))
            })
            .collect()
    }
}

/// Whether a 403's body is AWS refusing the signature or the key itself (its error codes for a
/// bad signature, an unknown or expired key), rather than what the key may touch.
pub(super) fn refuses_the_key(body: &[u8]) -> bool {
    const KEY_ERRORS: [&str; 5] = [
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
    ];
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    KEY_ERRORS.iter().any(|code| text.contains(code))
}

/// The `Host` header reqwest will send for `url`: the host, and the port unless it is the
/// scheme's default.
fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::secret::secret_text;
    use reqwest::{Method, Url};
    use std::time::{Duration, UNIX_EPOCH};

    fn text(value: &str) -> Arc<SecretText> {
        Arc::new(secret_text(value, |_| None, Duration::from_secs(10)).unwrap())
    }

    /// AWS's published example (the SigV4 test suite's `get-vanilla`): its keys, date and
    /// request, and the signature AWS gives for them.
    #[test]
    fn the_signature_of_awss_get_vanilla_example() {
        let signer = Signer::new(
            "us-east-1".into(),
            "service".into(),
            text("AKIDEXAMPLE"),
            text("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            None,
        );
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 20150830T123600Z
        let headers = signer
            .sign_at(
                &Outgoing {
                    method: &Method::GET,
                    url: &url,
                    headers: &[],
                    body: Some(b""),
                },
                at,
            )
            .unwrap();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
                .unwrap()
        };
        assert_eq!(find("x-amz-date"), "20150830T123600Z");
        assert_eq!(
            find("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(headers.iter().all(|(_, v)| v.is_sensitive()));
    }

    #[test]
    fn a_session_token_is_sent_and_signed_and_other_headers_stay_out() {
        let signer = Signer::new(
            "eu-west-1".into(),
            "textract".into(),
            text("AKIDEXAMPLE"),
            text("secret"),
            Some(text("the-session-token")),
        );
        let url = Url::parse("https://textract.eu-west-1.amazonaws.com/").unwrap();
        let mut api_key = HeaderValue::from_static("do-not-sign-me");
        api_key.set_sensitive(true);
        let headers = signer
            .sign(&Outgoing {
                method: &Method::POST,
                url: &url,
                headers: &[
                    (
                        HeaderName::from_static("x-amz-target"),
                        HeaderValue::from_static("Textract.StartDocumentAnalysis"),
                    ),
                    (HeaderName::from_static("x-api-key"), api_key),
                ],
                body: Some(b"{}"),
            })
            .unwrap();
        let authorization = headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.to_str().unwrap())
            .unwrap();
        assert!(
            authorization
                .contains("SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target,"),
            "{authorization}"
        );
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "x-amz-security-token" && v == "the-session-token")
        );
    }
}
