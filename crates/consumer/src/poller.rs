//! The consumer's handler: one call to the third-party API per claimed task, bounded in time and
//! size: the original shape's GET, or a profile's submit or poll (see [`crate::api`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};
use taskq::{ClaimedTask, Failure, Handler, Outcome};
use webhooks::HookUrls;

use crate::api::failure::retry_after;
use crate::api::read::{self, ApiResponse};
use crate::api::request::{self, Kind};
use crate::api::{Api, Profile, original};
use crate::client::describe;
use crate::metrics::CallMetrics;

/// Calls the queue's API for each task.
#[derive(Debug, Clone)]
pub struct Poller {
    /// One client for every call: it keeps connections to the API alive and reuses them.
    client: Client,
    /// What to call and how its answers read.
    api: Api,
    /// The queue's name, for idempotency keys.
    queue: String,
    /// Bodies longer than this are refused without being read whole.
    max_body_bytes: usize,
    /// The longest `Retry-After` honoured.
    max_retry_after: Duration,
    /// Latency, status codes and calls in flight, for `/metrics`.
    metrics: Arc<CallMetrics>,
    /// The hook URLs a profile's submit may give the provider (`{{webhook_url}}`).
    hooks: Option<HookUrls>,
}

/// What came back from a call.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why a call brought no answer.
#[derive(Debug, thiserror::Error)]
enum CallFailed {
    /// No answer: timeout, connection, TLS, a broken body. Retryable.
    #[error("{}", describe(.0))]
    Transport(reqwest::Error),
    /// An answer too large to read. Retryable.
    #[error("the API's answer is over {0} bytes")]
    TooBig(usize),
    /// The request could not be built (a URL that is no valid URI, such as one longer than a
    /// request line may be; a header value HTTP does not allow): permanent, since the same task
    /// builds the same request every time.
    #[error("{}", describe(.0))]
    CannotMake(reqwest::Error),
}

impl CallFailed {
    fn outcome(self) -> Outcome {
        let permanent = matches!(self, Self::CannotMake(_));
        let message = self.to_string();
        Outcome::Failed(if permanent {
            Failure::permanent(message)
        } else {
            Failure::retryable(message)
        })
    }
}

impl Poller {
    /// A poller of `api` for `queue`, calling through `client`; every call is measured in
    /// `metrics`.
    pub fn new(
        client: Client,
        api: Api,
        queue: &str,
        max_body_bytes: usize,
        max_retry_after: Duration,
        metrics: Arc<CallMetrics>,
        hooks: Option<HookUrls>,
    ) -> Self {
        Self {
            client,
            api,
            queue: queue.to_owned(),
            max_body_bytes,
            max_retry_after,
            metrics,
            hooks,
        }
    }

    /// Sends `request` and reads the answer, at most `max_body_bytes` of it.
    async fn send(&self, request: RequestBuilder) -> Result<Response, CallFailed> {
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
        Ok(Response {
            status,
            headers: std::mem::take(response.headers_mut()),
            body,
        })
    }

    /// One call of a profile: render it, send it, read the answer.
    async fn call_profile(
        &self,
        profile: &Profile,
        task: &ClaimedTask,
    ) -> Result<Outcome, CallFailed> {
        let call = match request::render(profile, &self.queue, task, self.hooks.as_ref()) {
            Ok(call) => call,
            Err(why) => {
                return Ok(Outcome::Failed(Failure::permanent(format!(
                    "cannot make the call: {why}"
                ))));
            }
        };
        let mut builder = self.client.request(call.method, call.url);
        for (name, secret) in &profile.headers {
            builder = builder.header(name, secret.header_value().clone());
        }
        if let Some(key) = call.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        if let Some(body) = call.body {
            if !profile.headers.iter().any(|(name, _)| name == CONTENT_TYPE) {
                builder =
                    builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder = builder.body(body);
        }
        let response = self.send(builder).await?;
        let answer = ApiResponse {
            status: response.status,
            headers: &response.headers,
            retry_after: retry_after(&response.headers, self.max_retry_after),
            body: &response.body,
        };
        Ok(match call.kind {
            Kind::Submit(submit) => read::submit(profile, submit, &answer),
            Kind::Poll => read::poll(profile, &answer),
        })
    }

    async fn call(&self, task: &ClaimedTask) -> Result<Outcome, CallFailed> {
        match &self.api {
            Api::Original(url) => {
                let response = self.send(self.client.get(original::url(url, task))).await?;
                let wait = retry_after(&response.headers, self.max_retry_after);
                Ok(original::read(response.status, wait, &response.body))
            }
            Api::Profile(profile) => self.call_profile(profile, task).await,
        }
    }
}

impl Handler for Poller {
    async fn handle(&self, task: &ClaimedTask) -> Outcome {
        self.call(task).await.unwrap_or_else(CallFailed::outcome)
    }
}
