//! What the consumer runs for one queue: the worker that claims its tasks and calls the API for
//! each ([`Poller`]), the worker of its callback lane that delivers the callbacks of its ended
//! tasks ([`Courier`]), and what the metrics server shows of it ([`Served`]).
//!
//! Every queue is built the same way from its settings; what the queues share (the limiters of
//! a limit key, the callback deliverer) is built once by [`crate::app`] and lent to each.

use std::sync::Arc;
use std::time::Duration;

use taskq::server::Watch;
use taskq::{Queue, WakeHandle, Worker};

use crate::api::Api;
use crate::api::auth::Credential;
use crate::callbacks::{self, Courier};
use crate::client::{self, ClientSettings};
use crate::config::{Config, QueueSettings};
use crate::error::StartError;
use crate::limits::Limiters;
use crate::poller::Poller;
use crate::server::Served;

/// One queue's workers, built and not yet running.
pub struct QueueWorkers {
    /// Claims the queue's tasks and calls the API for each.
    pub worker: Worker<Poller>,
    /// Claims the deliveries of the queue's callback lane and makes them.
    pub courier: Worker<Courier>,
    /// What the metrics server shows of the queue.
    pub served: Served,
    /// The lane, then the queue, each with the wake handle of its worker: what the tick and the
    /// wake channels wake.
    pub woken: [(Queue, WakeHandle); 2],
}

impl QueueWorkers {
    /// The workers of the queue `settings` describes, on `config`'s Redis; its limiter is the
    /// one `limiters` holds for its limit key (made now if it is the first queue to name it), and
    /// its callbacks go out through `deliverer`.
    ///
    /// # Errors
    /// [`StartError`] when the queue, its limit, its HTTP client or its hook URLs cannot be set
    /// up.
    pub fn build(
        mut settings: QueueSettings,
        config: &Config,
        limiters: &mut Limiters,
        deliverer: &webhooks::Deliverer,
    ) -> Result<Self, StartError> {
        let queue = settings.open(config)?;
        if let Some(shared) = &settings.limit {
            let connect = || {
                taskq::connect::connect(&config.redis.redis_url, &config.redis.connect_options()?)
            };
            let lease = settings.policy.lease;
            settings.worker.limiter =
                Some(limiters.for_queue(&settings.name, shared, connect, lease)?);
        }
        let (http, hooks) = (
            http_client(&settings, config)?,
            hook_urls(&settings, config)?,
        );
        let uploads = client::uploader(&settings, config).map_err(|reason| StartError::Client {
            queue: settings.name.clone(),
            reason,
        })?;
        let calls = Arc::default();
        let credential = credential(&settings.api, &http);
        let mut poller = Poller::new(
            http,
            settings.api,
            &settings.name,
            settings.max_body_bytes,
            Duration::from_secs(config.retry_after_max_secs),
            Arc::clone(&calls),
            hooks,
        )
        .with_max_result_bytes(settings.max_result_bytes);
        if let Some(uploader) = uploads {
            poller = poller.with_uploads(uploader);
        }
        if let Some(credential) = &credential {
            poller = poller.with_credential(Arc::clone(credential));
        }
        let lane = queue.callbacks().with_worker_policy(callbacks::lane_policy(
            &settings.policy,
            config.callbacks.callback_max_attempts,
        ));
        let courier = Worker::new(
            lane.clone(),
            Courier::new(queue.clone(), deliverer.clone()),
            callbacks::lane_worker(&settings.worker),
        );
        let worker = Worker::new(queue.clone(), poller, settings.worker);
        Ok(Self {
            woken: [
                (lane, courier.wake_handle()),
                (queue.clone(), worker.wake_handle()),
            ],
            served: Served {
                queue,
                calls,
                worker: worker.stats(),
                redis: Arc::new(Watch::default()),
                credential,
            },
            worker,
            courier,
        })
    }
}

/// The HTTP client of the queue's calls: as many connections as tasks in flight, trusting the
/// authorities of the consumer's `API_CA_FILE` and of the queue's profile.
fn http_client(settings: &QueueSettings, config: &Config) -> Result<reqwest::Client, StartError> {
    client::build(&ClientSettings {
        timeout: settings.api_timeout,
        connections: settings.worker.concurrency,
        https: settings.api.is_https(),
        ca_files: config
            .api_ca_file
            .as_deref()
            .into_iter()
            .chain(settings.api.ca_file())
            .collect(),
    })
    .map_err(|reason| StartError::Client {
        queue: settings.name.clone(),
        reason,
    })
}

/// The hook URLs the queue's profile hands providers (`{{webhook_url}}`), when it does.
fn hook_urls(
    settings: &QueueSettings,
    config: &Config,
) -> Result<Option<webhooks::HookUrls>, StartError> {
    if !settings.api.uses_webhook_url() {
        return Ok(None);
    }
    let urls = config.hooks.urls().map_err(|reason| StartError::Hooks {
        queue: settings.name.clone(),
        reason,
    })?;
    Ok(Some(urls))
}

/// The run-time credential of the queue's profile, when it has an `auth` block or headers read
/// from secret files: its tokens are minted through the queue's own client (which trusts the
/// same authorities).
fn credential(api: &Api, http: &reqwest::Client) -> Option<Arc<Credential>> {
    match api {
        Api::Profile(profile) if profile.auth.is_some() || profile.reads_secret_files() => Some(
            Arc::new(Credential::new(profile.auth.as_deref(), http.clone())),
        ),
        Api::Profile(_) | Api::Original(_) => None,
    }
}
