//! The consumer's handler: one GET to the third-party API per call, bounded in time and size.
//!
//! A task's payload (`POST /tasks`) travels as query parameters after `task-name`: each member
//! of a JSON object becomes one parameter (strings as they are, other values as JSON text), and
//! any other JSON is one `payload` parameter. A GET keeps every call the same shape, whatever the
//! API; a member named `task-name` is left out, so the name cannot be overridden.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url, header};
use taskq::{ClaimedTask, Failure, Handler, Outcome};

use crate::answer;
use crate::metrics::CallMetrics;

/// Calls `GET {api_url}?task-name=NAME[&payload parameters]` for each task.
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
        url.query_pairs_mut()
            .append_pair("task-name", &task.name)
            .extend_pairs(
                task.payload
                    .as_deref()
                    .map(payload_parameters)
                    .unwrap_or_default(),
            );
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

/// The query parameters that carry a payload (see the module's notes).
fn payload_parameters(payload: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(members)) => members
            .into_iter()
            .filter(|(key, _)| key != "task-name")
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => (key, text),
                other => (key, other.to_string()),
            })
            .collect(),
        _ => vec![("payload".to_owned(), payload.to_owned())],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(payload: &str) -> Vec<(String, String)> {
        payload_parameters(payload)
    }

    #[test]
    fn a_payload_object_becomes_one_parameter_per_member_and_anything_else_one_parameter() {
        let object = pairs(r#"{"region": "eu", "n": 3, "ids": [1, 2], "task-name": "other"}"#);
        let expected = [("region", "eu"), ("n", "3"), ("ids", "[1,2]")];
        assert_eq!(object.len(), 3, "{object:?}");
        for (key, value) in expected {
            assert!(
                object.contains(&(key.into(), value.into())),
                "{key}: {object:?}"
            );
        }
        assert_eq!(pairs("[1, 2]"), [("payload".into(), "[1, 2]".into())]);
        assert_eq!(pairs("\"x\""), [("payload".into(), "\"x\"".into())]);
    }
}
