//! The consumer's handler: the calls to the third-party API for one claimed task, each bounded in
//! time and size: the original shape's GET, or a profile's step (see [`crate::api`]): the submit
//! when the task has no job yet; else the webhook body a provider pushed (with a profile that
//! reads them), a poll (and its further pages), and once an answer said done, the fetch of the
//! result (and its pages). A retried fetch polls again first: it never submits again. A failed
//! profile call's message names the step, the method and the URL, its query values hidden.
//!
//! Here the steps of a task; in `calls`, one call: its credential, its answer, its pages.

mod calls;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use serde_json::Value;
use taskq::{ClaimedTask, Failure, Handler, Outcome};
use webhooks::HookUrls;

use crate::api::auth::Credential;
use crate::api::read::{self, Read};
use crate::api::request::{self, Step};
use crate::api::template::Values;
use crate::api::upload::Uploader;
use crate::api::{Api, Profile, original};
use crate::metrics::CallMetrics;
use calls::CallFailed;

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
    /// The downloads of a profile's multipart files, when it has any.
    uploader: Option<Uploader>,
    /// A fetched result larger than this is a permanent failure.
    max_result_bytes: usize,
    /// The profile's credential (`auth`), put on every call to its base URL's origin.
    credential: Option<Arc<Credential>>,
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
            uploader: None,
            max_result_bytes: max_body_bytes,
            credential: None,
        }
    }

    /// This poller putting `credential` on every call to its profile's base URL's origin.
    #[must_use]
    pub fn with_credential(mut self, credential: Arc<Credential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// This poller downloading a profile's multipart files through `uploader`.
    #[must_use]
    pub fn with_uploads(mut self, uploader: Uploader) -> Self {
        self.uploader = Some(uploader);
        self
    }

    /// This poller refusing fetched results over `max_bytes`.
    #[must_use]
    pub fn with_max_result_bytes(mut self, max_bytes: usize) -> Self {
        self.max_result_bytes = max_bytes;
        self
    }

    /// A profile's calls for `task`, up to the outcome of its step.
    async fn call_profile(
        &self,
        profile: &Profile,
        task: &ClaimedTask,
    ) -> Result<Outcome, CallFailed> {
        let cannot = |why: String| Ok(Outcome::Failed(Failure::permanent(why)));
        let payload = match request::payload(task) {
            Ok(payload) => payload,
            Err(why) => return cannot(format!("cannot make the call: {why}")),
        };
        let kept: Option<Value> = task
            .kept
            .as_deref()
            .and_then(|kept| serde_json::from_str(kept).ok());
        let mut values = Values {
            name: task.name.as_str(),
            id: task.remote_id.as_deref(),
            payload: payload.as_ref(),
            webhook_url: None,
            submit: kept.as_ref(),
            done: None,
        };
        if let (Some(submit), None) = (&profile.submit, &task.remote_id) {
            // Written (an HMAC) only for a submit whose profile gives it to the provider.
            let webhook_url = match &self.hooks {
                Some(hooks) if submit.uses_webhook_url() => {
                    Some(hooks.url(&self.queue, task.name.as_str(), request::submit_token(task)))
                }
                _ => None,
            };
            values.webhook_url = webhook_url.as_deref();
            let key = request::idempotency_key(&self.queue, task);
            return Ok(
                match self
                    .step(
                        profile,
                        Step::Submit,
                        &submit.request,
                        &values,
                        None,
                        Some(&key),
                    )
                    .await?
                {
                    Ok(answer) => read::submit(profile, submit, &answer.response()),
                    Err(outcome) => outcome,
                },
            );
        }
        let from_hook = match (&profile.hook, &task.hook) {
            (Some(rule), Some(body)) => match read::hook(rule, body) {
                Read::Done(done) => Some(done),
                // A webhook that says processing leaves a profile that polls to its poll.
                Read::Outcome(processing @ Outcome::Processing { .. })
                    if profile.poll.is_none() =>
                {
                    return Ok(processing);
                }
                Read::Outcome(Outcome::Processing { .. }) => None,
                Read::Outcome(other) => return Ok(other),
            },
            _ => None,
        };
        // A webhook's result is where its rule says; a poll's, where the profile says.
        let result_at = match (&from_hook, &profile.hook) {
            (Some(_), Some(rule)) => rule.result.as_deref(),
            _ => profile.result.as_deref(),
        };
        let done = match (from_hook, &profile.poll, &profile.status) {
            (Some(done), _, _) => done,
            (None, Some(poll), Some(status)) => {
                let answer = match self
                    .step(profile, Step::Poll, &poll.request, &values, None, None)
                    .await?
                {
                    Ok(answer) => answer,
                    Err(outcome) => return Ok(outcome),
                };
                let done = match read::poll(profile, status, &answer.response()) {
                    Read::Done(done) => done,
                    Read::Outcome(outcome) => return Ok(outcome),
                };
                match &poll.pages {
                    Some(rule) => match self
                        .pages(profile, Step::Poll, &poll.request, &values, rule, done)
                        .await?
                    {
                        Ok(whole) => whole,
                        Err(outcome) => return Ok(outcome),
                    },
                    None => done,
                }
            }
            // A provider that only pushes: nothing to call until its webhook.
            _ => {
                return Ok(Outcome::Waiting {
                    reason: "no webhook came from the provider before the poll deadline".into(),
                    poll_in: None,
                });
            }
        };
        let Some(fetch) = &profile.fetch else {
            return Ok(read::result_of(&done, result_at));
        };
        values.done = Some(&done);
        let answer = match self
            .step(profile, Step::Fetch, &fetch.request, &values, None, None)
            .await?
        {
            Ok(answer) => answer,
            Err(outcome) => return Ok(outcome),
        };
        let outcome = read::fetch(profile, fetch, &answer.response(), self.max_result_bytes);
        let (Some(rule), Outcome::Done(_)) = (&fetch.pages, &outcome) else {
            return Ok(outcome);
        };
        let Ok(first) = serde_json::from_slice::<Value>(&answer.body) else {
            return Ok(outcome);
        };
        Ok(
            match self
                .pages(profile, Step::Fetch, &fetch.request, &values, rule, first)
                .await?
            {
                Ok(whole) => read::fetched(fetch, &whole, self.max_result_bytes),
                Err(outcome) => outcome,
            },
        )
    }

    async fn call(&self, task: &ClaimedTask) -> Result<Outcome, CallFailed> {
        match &self.api {
            Api::Original(url) => {
                let response = self.send(self.client.get(original::url(url, task))).await?;
                Ok(original::read(
                    response.status,
                    response.retry_after,
                    &response.body,
                ))
            }
            Api::Profile(profile) => self.call_profile(profile, task).await,
        }
    }
}

impl Handler for Poller {
    async fn handle(&self, task: &ClaimedTask) -> Outcome {
        self.call(task).await.unwrap_or_else(CallFailed::outcome)
    }

    async fn ready(&self) {
        if let Some(credential) = &self.credential {
            credential.ready().await;
        }
    }
}
