//! The consumer's handler: one GET to the third-party API per call, bounded in time and size.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url, header};
use taskq::{ClaimedTask, Failure, Handler, Outcome};

use crate::answer;
use crate::metrics::CallMetrics;

/// Calls `GET {api_url}?task-name=NAME` for each task.
#[derive(Debug, Clone)]
pub struct Poller {
    /// One client for every call: it keeps connections to the API alive and reuses them.
    client: Client,
    api_url: Url,
    /// Bodies longer than this are refused without being read whole.
    max_body_bytes: usize,
    /// The longest `Retry-After` honoured.
    max_retry_after: Duration,
    /// Latency, status codes and calls in flight, for `/metrics`.
    metrics: Arc<CallMetrics>,
}

impl Poller {
    /// A poller for `api_url`; every call ends after `timeout` and is measured in `metrics`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        api_url: Url,
        timeout: Duration,
        max_body_bytes: usize,
        max_retry_after: Duration,
        connections: usize,
        metrics: Arc<CallMetrics>,
    ) -> reqwest::Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            api_url,
            max_body_bytes,
            max_retry_after,
            metrics,
        })
    }

    async fn call(&self, task: &ClaimedTask) -> Result<Outcome, String> {
        let mut url = self.api_url.clone();
        url.query_pairs_mut().append_pair("task-name", &task.name);
        let mut call = self.metrics.start();
        let mut response = self.client.get(url).send().await.map_err(|err| {
            call.outcome(if err.is_timeout() {
                "timeout"
            } else if err.is_connect() {
                "connect_error"
            } else {
                "error"
            });
            describe(err)
        })?;
        let status = response.status();
        call.outcome(status.as_u16());
        let retry_after = answer::retry_after(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            self.max_retry_after,
        );
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes as u64)
        {
            return Err(format!(
                "the API's answer is over {} bytes",
                self.max_body_bytes
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(format!(
                    "the API's answer is over {} bytes",
                    self.max_body_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(answer::interpret(status, retry_after, &body))
    }
}

impl Handler for Poller {
    async fn handle(&self, task: &ClaimedTask) -> Outcome {
        self.call(task)
            .await
            .unwrap_or_else(|message| Outcome::Failed(Failure::retryable(message)))
    }
}

/// A transport error in words a task record can keep.
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "the API did not answer in time".to_owned()
    } else if err.is_connect() {
        "could not connect to the API".to_owned()
    } else {
        format!("calling the API failed: {err}")
    }
}
