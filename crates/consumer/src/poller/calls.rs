//! One call of the poller, from rendered request to answer read: the credential put on it, a
//! 401 answered with one fresh token and one repeat, a body read at most `max_body_bytes`, the
//! further pages of an answer, and what went wrong typed ([`CallFailed`]): a transport failure, an
//! answer too large, an upload refused, a request that cannot be made, or a credential that holds
//! the queue.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use taskq::{Failure, Outcome};

use super::Poller;
use crate::api::auth::{CredentialError, Outgoing};
use crate::api::failure::retry_after;
use crate::api::profile::{Pages, Request};
use crate::api::read::{self, ApiResponse};
use crate::api::request::{self, Call, CallBody, Step};
use crate::api::template::Values;
use crate::api::{Profile, pages};
use crate::client::describe;
use std::time::Duration;

/// What came back from a call.
pub(super) struct Response {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) retry_after: Option<Duration>,
}

impl Response {
    /// The answer as the readers take it.
    pub(super) fn response(&self) -> ApiResponse<'_> {
        ApiResponse {
            status: self.status,
            headers: &self.headers,
            retry_after: self.retry_after,
            body: &self.body,
        }
    }
}

/// A call as logs and errors show it: its step, method and URL, query values hidden.
fn shown(call: &Call) -> String {
    let mut url = call.url.clone();
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    if names.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name, "…")));
    }
    format!("{} {} {url}", call.step.name(), call.method)
}

/// Why a call brought no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallFailed {
    /// No answer: timeout, connection, TLS, a broken body. Retryable.
    #[error("{}", describe(.0))]
    Transport(reqwest::Error),
    /// An answer too large to read. Retryable.
    #[error("the API's answer is over {0} bytes")]
    TooBig(usize),
    /// A multipart file that could not be downloaded or sent.
    #[error(transparent)]
    Upload(#[from] crate::api::upload::UploadError),
    /// The request could not be built (a URL that is no valid URI, such as one longer than a
    /// request line may be; a header value HTTP does not allow): permanent, since the same task
    /// builds the same request every time.
    #[error("{}", describe(.0))]
    CannotMake(reqwest::Error),
    /// The queue's credential fails: the call is held, the task tried again once the
    /// credential may work, using no attempt.
    #[error("held: the queue's credential fails: {error}")]
    Credential {
        /// Why, never a value.
        error: CredentialError,
        /// When to try the task again.
        retry_in: Duration,
    },
}

impl CallFailed {
    pub(super) fn outcome(self) -> Outcome {
        match self {
            Self::Credential { retry_in, .. } => Outcome::Throttled {
                message: self.to_string(),
                retry_after: Some(retry_in),
            },
            other => Outcome::Failed(other.failure()),
        }
    }

    pub(super) fn failure(self) -> Failure {
        let permanent = match &self {
            Self::CannotMake(_) => true,
            Self::Upload(upload) => upload.is_permanent(),
            Self::Transport(_) | Self::TooBig(_) | Self::Credential { .. } => false,
        };
        let message = self.to_string();
        if permanent {
            Failure::permanent(message)
        } else {
            Failure::retryable(message)
        }
    }
}

impl Poller {
    /// Sends `request` and reads the answer, at most `max_body_bytes` of it.
    pub(super) async fn send(&self, request: RequestBuilder) -> Result<Response, CallFailed> {
        let mut call = self.metrics.start();
        let mut response = request.send().await.map_err(|err| {
            if err.is_builder() {
                call.outcome("error");
                return CallFailed::CannotMake(err);
            }
            call.outcome(if err.is_timeout() {
                "timeout"
            } else if err.is_connect() {
                "connect_error"
            } else {
                "error"
            });
            CallFailed::Transport(err)
        })?;
        let status = response.status();
        call.outcome(status.as_u16());
        let too_big = CallFailed::TooBig(self.max_body_bytes);
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes as u64)
        {
            return Err(too_big);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(CallFailed::Transport)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(too_big);
            }
            body.extend_from_slice(&chunk);
        }
        let headers = std::mem::take(response.headers_mut());
        Ok(Response {
            status,
            retry_after: retry_after(&headers, self.max_retry_after),
            headers,
            body,
        })
    }

    /// The further pages of `first`, an answer of `step`, added to it; an outcome when a page
    /// fails or there are more than the rule's `max`.
    pub(super) async fn pages(
        &self,
        profile: &Profile,
        step: Step,
        request: &Request,
        values: &Values<'_>,
        rule: &Pages,
        mut whole: Value,
    ) -> Result<Result<Value, Outcome>, CallFailed> {
        let mut read = 1;
        while let Some(token) = pages::next_token(rule, &whole) {
            if read >= rule.max {
                return Ok(Err(Outcome::Failed(Failure::permanent(format!(
                    "the {} answer has more than {} pages (pages.max)",
                    step.name(),
                    rule.max
                )))));
            }
            let answer = match self
                .step(profile, step, request, values, Some((rule, &token)), None)
                .await?
            {
                Ok(answer) => answer,
                Err(outcome) => return Ok(Err(outcome)),
            };
            let refused = || {
                Outcome::Failed(Failure::retryable(format!(
                    "page {} of the {} answer was refused",
                    read + 1,
                    step.name()
                )))
            };
            if !answer.status.is_success() {
                return Ok(Err(refused()));
            }
            let page = match serde_json::from_slice::<Value>(&answer.body) {
                Ok(page) => page,
                Err(err) => {
                    return Ok(Err(Outcome::Failed(Failure::retryable(format!(
                        "page {}: not JSON: {err}",
                        read + 1
                    )))));
                }
            };
            if let Err(why) = pages::merge(rule, &mut whole, page) {
                return Ok(Err(Outcome::Failed(Failure::permanent(format!(
                    "the {} answer's pages: {why}",
                    step.name()
                )))));
            }
            read += 1;
        }
        Ok(Ok(pages::finished(rule, whole)))
    }

    /// One call of `step`: render it, send it, read the answer whole; a call that cannot be
    /// made is a permanent failure, one that failed a failure naming the step, method and URL.
    /// A 401 the credential may cure (a token) makes the call again once with a fresh token;
    /// refused again, the credential is failing and the task is held, using no attempt.
    pub(super) async fn step(
        &self,
        profile: &Profile,
        step: Step,
        request: &Request,
        values: &Values<'_>,
        page: Option<(&Pages, &str)>,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Response, Outcome>, CallFailed> {
        let mut stale = None;
        loop {
            let call = match request::render(profile, step, request, values, page) {
                Ok(call) => call,
                Err(request::RequestError::Credential(error)) => {
                    return Err(self.refused(error.to_string()));
                }
                Err(why) => {
                    return Ok(Err(Outcome::Failed(Failure::permanent(format!(
                        "cannot make the {} call: {why}",
                        step.name()
                    )))));
                }
            };
            let (shown, call_on_base) = (shown(&call), call.on_base);
            let (response, sent) = match self.send_call(call, idempotency_key, stale.as_ref()).await
            {
                Ok(sent) => sent,
                Err(failed @ CallFailed::Credential { .. }) => return Err(failed),
                Err(failed) => {
                    let mut failure = failed.failure();
                    tracing::info!(
                        queue = %self.queue,
                        task = values.name,
                        step = step.name(),
                        call = %shown,
                        error = %failure.message,
                        "call failed"
                    );
                    failure.message = format!("{shown}: {}", failure.message);
                    return Ok(Err(Outcome::Failed(failure)));
                }
            };
            if let Some(credential) = &self.credential
                && call_on_base
            {
                if credential.refused_by(response.status, &response.body) {
                    if stale.is_none() && credential.refreshes() && sent.is_some() {
                        stale = sent;
                        continue;
                    }
                    let fresh = if credential.refreshes() {
                        " with a fresh token"
                    } else {
                        ""
                    };
                    let reason = format!(
                        "the API answered HTTP {} to the {} call{fresh}",
                        response.status.as_u16(),
                        step.name(),
                    );
                    return Err(self.refused(reason));
                }
                credential.accepted();
            }
            if !response.status.is_success() {
                tracing::info!(
                    queue = %self.queue,
                    task = values.name,
                    step = step.name(),
                    call = %shown,
                    status = response.status.as_u16(),
                    said = read::http_message(profile, &response.body).as_deref().unwrap_or(""),
                    "unsuccessful answer"
                );
            }
            return Ok(Ok(response));
        }
    }

    /// The credential refused (`reason`): noted as failing, and the task held.
    fn refused(&self, reason: String) -> CallFailed {
        if let Some(credential) = &self.credential {
            credential.refused(reason.clone());
        }
        self.held(CredentialError::Refused(reason))
    }

    /// The task held while the queue's credential fails.
    fn held(&self, error: CredentialError) -> CallFailed {
        let retry_in = self
            .credential
            .as_ref()
            .map_or(Duration::from_secs(1), |c| c.retry_in());
        CallFailed::Credential { error, retry_in }
    }

    /// Sends a rendered call (its multipart files downloaded as it goes).
    ///
    /// On the base URL's origin the profile's credential goes with it: a fresh token when
    /// `stale` is the one the API just refused. Answers the authorization it sent.
    pub(super) async fn send_call(
        &self,
        call: Call,
        idempotency_key: Option<&str>,
        stale: Option<&HeaderValue>,
    ) -> Result<(Response, Option<HeaderValue>), CallFailed> {
        let credentials = match &self.credential {
            Some(credential) if call.on_base => {
                let body = match &call.body {
                    None => Some(&b""[..]),
                    Some(CallBody::Bytes { bytes, .. }) => Some(&bytes[..]),
                    Some(CallBody::Multipart(_)) => None,
                };
                let outgoing = Outgoing {
                    method: &call.method,
                    url: &call.url,
                    headers: &call.headers,
                    body,
                };
                credential
                    .authorize(&outgoing, stale)
                    .await
                    .map_err(|error| self.held(error))?
            }
            _ => Vec::new(),
        };
        let sent = credentials
            .iter()
            .find(|(name, _)| name == reqwest::header::AUTHORIZATION)
            .map(|(_, value)| value.clone());
        let mut builder = self.client.request(call.method, call.url);
        for (name, value) in call.headers.iter().chain(&credentials) {
            builder = builder.header(name, value.clone());
        }
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let has_type = call.headers.iter().any(|(name, _)| name == CONTENT_TYPE);
        let mut overflowed = None;
        match call.body {
            None => {}
            Some(CallBody::Bytes {
                content_type,
                bytes,
            }) => {
                if !has_type {
                    builder = builder.header(CONTENT_TYPE, HeaderValue::from_static(content_type));
                }
                builder = builder.body(bytes);
            }
            Some(CallBody::Multipart(parts)) => {
                let uploader =
                    self.uploader
                        .as_ref()
                        .ok_or(crate::api::upload::UploadError::Refused {
                            part: parts
                                .first()
                                .map(|(name, _)| name.clone())
                                .unwrap_or_default(),
                            reason: "the queue has no uploader".into(),
                        })?;
                let upload = uploader.body(parts).await?;
                builder = builder
                    .header(CONTENT_TYPE, upload.content_type)
                    .body(upload.body);
                overflowed = Some((upload.overflowed, uploader.max_bytes()));
            }
        }
        let response = match self.send(builder).await {
            Err(CallFailed::Transport(_))
                if overflowed
                    .as_ref()
                    .is_some_and(|(flag, _)| flag.load(std::sync::atomic::Ordering::Relaxed)) =>
            {
                let max = overflowed.map_or(0, |(_, max)| max);
                Err(crate::api::upload::UploadError::TooBig {
                    part: "a file".into(),
                    max,
                }
                .into())
            }
            other => other,
        }?;
        Ok((response, sent))
    }
}
