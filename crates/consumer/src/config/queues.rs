//! The queues one consumer serves and each one's settings: the flags, with the queue's entry in
//! `QUEUES_FILE` (JSON, or TOML when the name ends in `.toml`) applied and its API profile
//! compiled. A file's values may be credentials, so no error quotes them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use taskq::{Backoff, Limit, Queue, Rate, WorkerConfig, WorkerPolicy};

use super::{Config, original_api_url};
use crate::api::{Api, ApiSpec, ProfileError};
use crate::limits::SharedLimit;

/// One served queue's settings, typed: what its worker, its poller and its HTTP client use.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: String,
    /// The API its tasks call.
    pub api: Api,
    /// How long one API call may take.
    pub api_timeout: Duration,
    /// The claim loop's settings (concurrency, batch, poll interval, retries).
    pub worker: WorkerConfig,
    /// The queue's rules as this consumer applies them (lease, attempts, polling time).
    pub policy: WorkerPolicy,
    /// The provider's limit its calls share with every queue naming the same key, if any.
    pub limit: Option<SharedLimit>,
    /// The largest answer read (bytes).
    pub max_body_bytes: usize,
    /// The largest result a fetch may store (bytes).
    pub max_result_bytes: usize,
    /// The most bytes a multipart upload's files may hold in all.
    pub max_upload_bytes: u64,
}

impl QueueSettings {
    /// Opens the queue on `config`'s Redis (the connection is made on first use).
    ///
    /// # Errors
    /// When the queue name or Redis URL is unusable.
    pub fn open(&self, config: &Config) -> taskq::Result<Queue> {
        Ok(Queue::open(
            &config.redis.redis_url,
            &config.redis.connect_options()?,
            &self.name,
        )?
        .with_worker_policy(self.policy.clone())
        .with_dead_ttl(Duration::from_secs(config.dead_ttl_secs)))
    }
}

/// Every queue a consumer's settings name, compiled.
#[derive(Debug, Default)]
pub struct Compiled {
    /// The queues served.
    pub served: Vec<QueueSettings>,
    /// The entries of `QUEUES_FILE` no served queue names (compiled all the same).
    pub unserved: Vec<QueueSettings>,
    /// Every mistake, each naming its queue.
    pub errors: Vec<QueuesFileError>,
}

/// One queue's entry in `QUEUES_FILE`; what is left out comes from the flags.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueOverrides {
    api_url: Option<String>,
    concurrency: Option<u32>,
    batch_size: Option<u32>,
    poll_interval_ms: Option<u64>,
    api_timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    lease_ms: Option<u64>,
    max_poll_secs: Option<u64>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_result_bytes: Option<usize>,
    max_upload_bytes: Option<u64>,
    api: Option<ApiSpec>,
}

/// Why the per-queue settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueuesFileError {
    /// The file could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: std::io::Error,
    },
    /// A queue's api_url is not a URL.
    #[error("queue {queue}: api_url: {message}")]
    BadUrl {
        /// The queue.
        queue: String,
        /// What is wrong.
        message: String,
    },
    /// The file is not the expected JSON or TOML.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (it names the key).
        message: String,
    },
    /// A queue's entry in the file is not what the file's schema allows.
    #[error("parsing {path}: queue {queue}: {message}")]
    Entry {
        /// The file.
        path: String,
        /// The queue.
        queue: String,
        /// The key path and what the parser said, without the value.
        message: String,
    },
    /// A queue names both an original-shape URL and a profile.
    #[error("queue {0}: give api_url (the original shape) or api (a profile), not both")]
    TwoApis(String),
    /// A queue's calls may outlive the permits of its cap on calls in flight.
    #[error(
        "queue {0}: with a cap on calls in flight, api_timeout_ms must be below lease_ms (a \
         permit lasts a lease)"
    )]
    PermitShorterThanCall(String),
    /// A queue's API profile is wrong.
    #[error("queue {queue}: {reason}")]
    Profile {
        /// The queue.
        queue: String,
        /// The field and what is wrong with it.
        reason: ProfileError,
    },
}

impl Config {
    /// How often a profile's secret files are looked at again.
    fn secrets_reload(&self) -> Duration {
        Duration::from_millis(self.secrets_reload_ms)
    }

    /// The queues served (QUEUES, else the queues of QUEUES_FILE, else QUEUE_NAME), each with its
    /// overrides from QUEUES_FILE applied and its API profile compiled (`${VAR}` read from the
    /// environment).
    ///
    /// # Errors
    /// [`QueuesFileError`] when QUEUES_FILE cannot be read or parsed, or a profile is wrong.
    pub fn queues(&self) -> Result<Vec<QueueSettings>, QueuesFileError> {
        self.queues_with(|name| std::env::var(name).ok())
    }

    /// [`Config::queues`], with `lookup` for the environment: how a profile is checked without
    /// the credentials it names (the tests of the documented profiles call it so). Every entry
    /// of `QUEUES_FILE` is compiled, served or not; one that no served queue names is warned
    /// about by name.
    ///
    /// # Errors
    /// As [`Config::queues`]: the first mistake.
    pub fn queues_with(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<QueueSettings>, QueuesFileError> {
        let compiled = self.compile_all(lookup)?;
        if let Some(first) = compiled.errors.into_iter().next() {
            return Err(first);
        }
        for name in compiled.unserved.iter().map(|queue| &queue.name) {
            tracing::warn!(
                queue = %name,
                "QUEUES_FILE has an entry for queue {name}, which this consumer does not serve (QUEUES)"
            );
        }
        Ok(compiled.served)
    }

    /// Every served queue and every entry of `QUEUES_FILE`, compiled, with every mistake found
    /// (what `consumer --check` reports).
    ///
    /// # Errors
    /// [`QueuesFileError`] when the file cannot be read or parsed at all.
    pub fn compile_all(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Compiled, QueuesFileError> {
        let (mut overrides, errors) = match &self.queues_file {
            Some(path) => read_queues_file(path)?,
            None => (BTreeMap::new(), Vec::new()),
        };
        let refused = |name: &String| {
            errors
                .iter()
                .any(|err| matches!(err, QueuesFileError::Entry { queue, .. } if queue == name))
        };
        let names: Vec<String> =
            if self.redis.queues.is_empty() && (!overrides.is_empty() || !errors.is_empty()) {
                overrides.keys().cloned().collect()
            } else {
                // A queue whose entry was refused is not compiled without it: that would call
                // API_URL in its place.
                self.redis
                    .queue_names()
                    .into_iter()
                    .filter(|name| !refused(name))
                    .collect()
            };
        let mut compiled = Compiled {
            errors,
            ..Compiled::default()
        };
        let mut compile = |name: String, entry: QueueOverrides, served: bool| match self
            .settings(name, entry, &lookup)
        {
            Ok(settings) if served => compiled.served.push(settings),
            Ok(settings) => compiled.unserved.push(settings),
            Err(err) => compiled.errors.push(err),
        };
        for name in names {
            let entry = overrides.remove(&name).unwrap_or_default();
            compile(name, entry, true);
        }
        for (name, entry) in overrides {
            compile(name, entry, false);
        }
        Ok(compiled)
    }

    /// The settings of queue `name`: the flags, overridden by `entry`.
    fn settings(
        &self,
        name: String,
        entry: QueueOverrides,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<QueueSettings, QueuesFileError> {
        let api = match (entry.api_url, entry.api) {
            (Some(_), Some(_)) => return Err(QueuesFileError::TwoApis(name)),
            (Some(url), None) => Api::Original(original_api_url(&url).map_err(|message| {
                QueuesFileError::BadUrl {
                    queue: name.clone(),
                    message,
                }
            })?),
            (None, Some(spec)) => Api::Profile(Arc::new(
                spec.compile_with(lookup, self.secrets_reload())
                    .map_err(|reason| QueuesFileError::Profile {
                        queue: name.clone(),
                        reason,
                    })?,
            )),
            (None, None) => Api::Original(self.api_url.clone()),
        };
        let max_poll_secs = entry.max_poll_secs.unwrap_or(self.max_poll_secs);
        let policy = WorkerPolicy {
            submit_keys: api.submits(),
            lease: Duration::from_millis(entry.lease_ms.unwrap_or(self.lease_ms).max(100)),
            max_attempts: entry.max_attempts.unwrap_or(self.max_attempts).max(1),
            max_poll: (max_poll_secs > 0).then(|| Duration::from_secs(max_poll_secs)),
            dead_max: self.dead_max,
        };
        let retry_base_ms = entry.retry_base_ms.unwrap_or(self.retry_base_ms);
        let worker = WorkerConfig {
            concurrency: entry.concurrency.unwrap_or(self.concurrency).max(1) as usize,
            batch_size: entry.batch_size.unwrap_or(self.batch_size).clamp(1, 1000) as usize,
            poll_interval: Duration::from_millis(
                entry.poll_interval_ms.unwrap_or(self.poll_interval_ms),
            ),
            backoff: Backoff {
                base: Duration::from_millis(retry_base_ms),
                max: Duration::from_millis(
                    entry
                        .retry_max_ms
                        .unwrap_or(self.retry_max_ms)
                        .max(retry_base_ms),
                ),
            },
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            // The cron tick wakes the loop; between ticks it sleeps until work is due.
            idle_poll: None,
            // Set when the consumer starts: one limiter per limit key, shared by its queues.
            limiter: None,
        };
        let api_timeout =
            Duration::from_millis(entry.api_timeout_ms.unwrap_or(self.api_timeout_ms).max(1));
        let limit = self.limit_of(&name, &api);
        if limit
            .as_ref()
            .is_some_and(|l| l.limit.max_in_flight.is_some())
            && api_timeout >= policy.lease
        {
            return Err(QueuesFileError::PermitShorterThanCall(name));
        }
        let max_body_bytes = entry
            .max_body_bytes
            .unwrap_or(self.api_max_body_bytes)
            .max(1);
        Ok(QueueSettings {
            name,
            api,
            api_timeout,
            worker,
            policy,
            limit,
            max_body_bytes,
            max_result_bytes: entry.max_result_bytes.unwrap_or(max_body_bytes).max(1),
            max_upload_bytes: entry.max_upload_bytes.unwrap_or(self.api_max_upload_bytes),
        })
    }

    /// The limit of queue `name` calling `api`: a profile's own, else the API_RATE_PER_SEC,
    /// API_MAX_IN_FLIGHT and API_LIMIT_KEY flags; none when neither a rate, a cap nor a key is
    /// given.
    fn limit_of(&self, name: &str, api: &Api) -> Option<SharedLimit> {
        let (key, limit) = match api {
            Api::Profile(profile) => (profile.limit_key.clone(), profile.limit),
            Api::Original(_) => (
                self.api_limit_key.clone(),
                Limit {
                    rate: (self.api_rate_per_sec > 0.0).then_some(Rate {
                        per_sec: self.api_rate_per_sec,
                        burst: self.api_rate_burst,
                    }),
                    max_in_flight: (self.api_max_in_flight > 0).then_some(self.api_max_in_flight),
                },
            ),
        };
        let limited = limit.rate.is_some() || limit.max_in_flight.is_some();
        (limited || key.is_some()).then(|| SharedLimit {
            key: key.unwrap_or_else(|| name.to_owned()),
            limit,
        })
    }
}

/// The entries of `QUEUES_FILE` that parsed, by queue, and a mistake for each that did not.
type Entries = (BTreeMap<String, QueueOverrides>, Vec<QueuesFileError>);

/// Reads the per-queue settings: TOML when the file name ends in `.toml`, else JSON. Each
/// queue's entry is read on its own, so a mistake in one leaves the others read and every
/// mistake is found.
fn read_queues_file(path: &Path) -> Result<Entries, QueuesFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|reason| QueuesFileError::Read {
        path: shown.clone(),
        reason,
    })?;
    let refused = |message: String| QueuesFileError::Parse {
        path: shown.clone(),
        message: without_quoted_text(&message),
    };
    let mut entries = BTreeMap::new();
    let mut errors = Vec::new();
    // The key path of a refused value (`api.status.processing`) follows the queue in every
    // message. Not the parsers' own text: it may quote the value, or the file's line, which may
    // hold a credential.
    let mut read = |queue: String, entry: Result<QueueOverrides, (String, String)>| match entry {
        Ok(entry) => {
            entries.insert(queue, entry);
        }
        Err((at, message)) => {
            let key = match at.as_str() {
                "." | "" => String::new(),
                at => format!("{at}: "),
            };
            errors.push(QueuesFileError::Entry {
                path: shown.clone(),
                queue,
                message: without_quoted_text(&format!("{key}{message}")),
            });
        }
    };
    if path.extension().is_some_and(|ext| ext == "toml") {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| refused(toml_message(&e, &text)))?;
        for (queue, entry) in table {
            let entry = serde_path_to_error::deserialize(entry)
                .map_err(|e| (e.path().to_string(), e.inner().message().to_owned()));
            read(queue, entry);
        }
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| refused(e.to_string()))?;
        for (queue, entry) in map {
            let entry = serde_path_to_error::deserialize(entry)
                .map_err(|e| (e.path().to_string(), e.inner().to_string()));
            read(queue, entry);
        }
    }
    Ok((entries, errors))
}

/// A TOML error's message with its line, not the line's text (it may hold a credential).
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map_or(0, |span| text[..span.start].lines().count().max(1));
    format!("{} (line {line})", e.message())
}

/// `message` with the text between double quotes left out: a parser quotes the values it
/// refuses (escaping quotes inside them), and a value in this file may be a credential. Names of
/// keys, which parsers quote with backticks, stay.
pub(super) fn without_quoted_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…\"");
                quoted = true;
            }
            ('"', true) => quoted = false,
            ('\\', true) => {
                chars.next();
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}
