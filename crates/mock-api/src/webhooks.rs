//! The provider's side of webhooks: when a job with a webhook finishes, the mock POSTs the
//! job's finished poll answer to it, as Replicate and AssemblyAI call the URL a submit gave them.
//!
//! A delivery is its own task, spawned by whoever saw the job finish, so that no request
//! handler and no lock waits for it. It makes one attempt and up to [`RETRIES`] more, after a
//! short backoff that doubles, while the answer is a 5xx or no answer came (a refused or broken
//! connection, or no answer within [`TIMEOUT`]); a 2xx counts it `sent`, anything else or the
//! retries running out counts it `failed`. Every attempt carries the same `webhook-id` (the job's
//! id), so a receiver can tell a retry from a new event.
//!
//! A delivery answered 2xx also keeps when its answered attempt was sent (`GET /webhooks`): the
//! moment the POST started, in ms since the Unix epoch by the system clock, the clock Redis'
//! `TIME` reads on the same machine. The benchmark times a provider webhook from there to the
//! task's `done_at_ms`; a receiver's own clock would leave out the trip it wants to time.
//!
//! Only `http://` URLs are called: the mock stands in for a provider on a test network, and
//! reqwest is built without a crypto provider of its own. It is still handed TLS settings (ring,
//! and no authority trusted) so that building it needs nothing installed process-wide. A reset
//! starts a new epoch: a delivery from before it stops retrying and counts nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Retries after a failed first attempt.
pub const RETRIES: u32 = 3;
/// The wait before the first retry; each next one waits twice as long.
pub const BACKOFF: Duration = Duration::from_millis(50);
/// How long one attempt may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook client and what `/stats` counts of it.
#[derive(Debug, Default)]
pub struct Webhooks {
    /// `None` when webhooks are off, or the client could not be built (then every delivery
    /// fails, and start-up logged why).
    client: Option<reqwest::Client>,
    /// Deliveries answered 2xx.
    sent: AtomicU64,
    /// Deliveries given up.
    failed: AtomicU64,
    /// When each delivery answered 2xx was sent, by job id (see [`Webhooks::sent_at_ms`]).
    sent_at: Mutex<HashMap<String, u64>>,
    /// Resets so far: a delivery counts only in the epoch it started in.
    epoch: AtomicU64,
}

/// What `/stats` shows of the webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookStats {
    /// Deliveries answered 2xx.
    pub sent: u64,
    /// Deliveries given up.
    pub failed: u64,
}

/// How one attempt went.
enum Attempt {
    Sent,
    /// Worth another try: a 5xx, or no answer.
    Retry(String),
    /// Not worth another: any other answer.
    GiveUp(String),
}

impl Webhooks {
    /// The webhooks, with a client when `enabled`.
    pub fn new(enabled: bool) -> Self {
        let client = enabled
            .then(|| {
                client()
                    .inspect_err(|err| {
                        tracing::error!(error = %err, "no webhook client: every webhook will fail");
                    })
                    .ok()
            })
            .flatten();
        Self {
            client,
            ..Self::default()
        }
    }

    /// Delivers `body` to `url` in the background, for job `id`.
    pub fn send(self: &Arc<Self>, url: String, id: String, body: &Value) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let body = body.to_string().into_bytes();
        let webhooks = Arc::clone(self);
        tokio::spawn(async move {
            let sent_at = webhooks.deliver(&url, &id, body, epoch).await;
            if webhooks.epoch.load(Ordering::Relaxed) != epoch {
                return;
            }
            let Some(ms) = sent_at else {
                webhooks.failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            webhooks.lock_sent_at().insert(id, ms);
            webhooks.sent.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// The attempts of one delivery; when the attempt answered 2xx was sent (ms since the Unix
    /// epoch), `None` when none was.
    async fn deliver(&self, url: &str, id: &str, body: Vec<u8>, epoch: u64) -> Option<u64> {
        let Some(client) = &self.client else {
            tracing::warn!(job = id, url, "webhook not sent: no client");
            return None;
        };
        if !url.starts_with("http://") {
            tracing::warn!(
                job = id,
                url,
                "webhook not sent: only http:// URLs are called"
            );
            return None;
        }
        let mut backoff = BACKOFF;
        for attempt in 1..=RETRIES + 1 {
            let sent_at = epoch_ms();
            let reason = match self::attempt(client, url, id, body.clone()).await {
                Attempt::Sent => {
                    tracing::debug!(job = id, url, attempt, "webhook sent");
                    return Some(sent_at);
                }
                Attempt::GiveUp(reason) => {
                    tracing::warn!(job = id, url, attempt, reason, "webhook refused: given up");
                    return None;
                }
                Attempt::Retry(reason) => reason,
            };
            if attempt > RETRIES {
                tracing::warn!(job = id, url, attempt, reason, "webhook failed: given up");
                return None;
            }
            tracing::debug!(
                job = id,
                url,
                attempt,
                reason,
                ?backoff,
                "webhook failed: retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            if self.epoch.load(Ordering::Relaxed) != epoch {
                return None;
            }
        }
        None
    }

    /// The counts.
    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// When each delivery answered 2xx since the last reset was sent, by job id: the start of
    /// its answered attempt, in ms since the Unix epoch (system clock).
    pub fn sent_at_ms(&self) -> HashMap<String, u64> {
        self.lock_sent_at().clone()
    }

    fn lock_sent_at(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.sent_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Clears the counts and the times sent; deliveries under way stop and count nothing.
    pub fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.lock_sent_at().clear();
    }
}

/// Now, in ms since the Unix epoch by the system clock.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// One POST.
async fn attempt(client: &reqwest::Client, url: &str, id: &str, body: Vec<u8>) -> Attempt {
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Attempt::Sent,
        Ok(answer) if answer.status().is_server_error() => {
            Attempt::Retry(answer.status().to_string())
        }
        Ok(answer) => Attempt::GiveUp(answer.status().to_string()),
        Err(err) if err.is_builder() => Attempt::GiveUp(err.to_string()),
        Err(err) => Attempt::Retry(err.to_string()),
    }
}

/// The webhook client: HTTP/1.1, no proxy from the environment, no redirects followed (a
/// provider posts where it was told), and TLS settings of its own so that nothing has to be
/// installed process-wide.
fn client() -> Result<reqwest::Client, Box<dyn std::error::Error + Send + Sync>> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mock-api/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_builds_with_no_crypto_provider_installed() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());

        let webhooks = Webhooks::new(true);

        assert!(webhooks.client.is_some());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
