//! What a task looks like from outside: its state and its record.
//!
//! The life of a task (every arrow is one Lua script, see `lua/`):
//!
//! ```text
//! enqueue ──► queued ──claim──► running ──"done"─────────► done (kept for its result ttl)
//!               ▲                  │ ──"processing"───► processing (due after the poll interval)
//!               │                  │ ──error──────────► queued/processing after a backoff, or dead
//!               └──lease expired───┘   (crashed or stuck consumer; counts as a failed attempt)
//! dead ──retry──► queued
//! queued, processing, running, dead ──cancel──► cancelled (never called again; kept like dead)
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::name::TaskName;

/// When a new task is first due. Times are Redis server time: clients send delays, or a time
/// they read from the server (a view's `*_at_ms`), never their own clock's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunAt {
    /// At once.
    #[default]
    Now,
    /// This long after it is enqueued.
    After(Duration),
    /// At this server time, ms since the Unix epoch; a time already past is now.
    At(u64),
}

/// The latest time (ms since the epoch) and the longest delay (ms) a task may be scheduled for:
/// the year 2286, well within what Redis scores and the scripts' numbers hold exactly.
pub const MAX_RUN_AT_MS: u64 = 9_999_999_999_999;

impl RunAt {
    /// Refuses a time or delay beyond [`MAX_RUN_AT_MS`].
    ///
    /// # Errors
    /// [`Error::InvalidRunAt`].
    pub fn check(self) -> Result<Self> {
        let ms = match self {
            Self::Now => 0,
            Self::After(delay) => u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Self::At(at_ms) => at_ms,
        };
        if ms > MAX_RUN_AT_MS {
            return Err(Error::InvalidRunAt(ms));
        }
        Ok(self)
    }

    /// The form `enqueue.lua` takes: `''`, `'+N'` (ms from now) or `'N'` (ms since the epoch).
    pub(crate) fn as_arg(self) -> String {
        match self {
            Self::Now => String::new(),
            Self::After(delay) => format!("+{}", delay.as_millis()),
            Self::At(at_ms) => at_ms.to_string(),
        }
    }

    /// When a task created at `created_at_ms` is due, as `enqueue.lua` works it out.
    pub(crate) fn resolve(self, created_at_ms: u64) -> u64 {
        match self {
            Self::Now => created_at_ms,
            Self::After(delay) => {
                created_at_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            }
            Self::At(at_ms) => at_ms.max(created_at_ms),
        }
    }
}

/// How a task's callback fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// The task has not ended: nothing to send yet.
    Waiting,
    /// Being delivered, or retried after a failed delivery.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the attempt limit, or a receiver that can never take it (410, a refused
    /// address).
    Failed,
}

/// A task's callback, as its view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackView {
    /// How it fares.
    pub state: CallbackState,
    /// Deliveries that failed so far.
    pub attempts: u32,
    /// Why the last delivery failed, if one did.
    pub last_error: Option<String>,
}

impl CallbackView {
    /// The callback of a task that has not ended.
    pub(crate) fn waiting() -> Self {
        Self {
            state: CallbackState::Waiting,
            attempts: 0,
            last_error: None,
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// Whether this call created the task (false: a task of that name was already there).
    pub created: bool,
    /// The task as it is now.
    pub view: TaskView,
}

/// A task to add with [`crate::Queue::submit_many`] (or [`crate::Queue::submit_task`]).
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Its name.
    pub name: TaskName,
    /// Its payload (JSON), if any.
    pub payload: Option<Box<RawValue>>,
    /// When it is first due.
    pub run_at: RunAt,
    /// Where its view is POSTed when it ends (see [`crate::callback`]); checked by the caller
    /// (the producer refuses addresses it must not call).
    pub callback_url: Option<String>,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its first call, or for a retry after an error.
    Queued,
    /// A consumer holds its lease and is calling the API.
    Running,
    /// The API answered "processing"; waiting for the next poll.
    Processing,
    /// The API answered "done"; the final result is stored.
    Done,
    /// Failed for good (attempt limit, permanent error, poll deadline); kept and retryable.
    Dead,
    /// Cancelled by a client or an operator: never called again. Kept, like a dead task, for
    /// the dead ttl, and while kept its name dedups.
    Cancelled,
}

impl State {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the task is final: done, dead or cancelled. It changes no more until an operator
    /// retries or purges it (or its record expires).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "processing" => Self::Processing,
            "done" => Self::Done,
            "dead" => Self::Dead,
            "cancelled" => Self::Cancelled,
            other => return Err(Error::UnexpectedReply(format!("unknown state {other:?}"))),
        })
    }
}

/// A task's record as stored in Redis, ready to serialise for clients.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    /// The task's name.
    pub task: String,
    /// Where the task is in its life.
    pub state: State,
    /// The final result when done, else the latest partial data, else `null` (JSON as stored).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub data: Option<Box<RawValue>>,
    /// The JSON the task was submitted with (`POST /tasks`), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub payload: Option<Box<RawValue>>,
    /// Failed attempts since the last successful poll.
    pub attempts: u32,
    /// "processing" answers received so far.
    pub polls: u32,
    /// Times the task was handed to a consumer.
    pub claims: u32,
    /// Answers that asked the caller to slow down (HTTP 429 or 503); they use no attempt.
    pub throttled: u32,
    /// The id the third-party API gave the task's job when it was submitted (APIs that are
    /// submitted to, then polled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The last failure of a task that is alive or dead; none once it is done.
    pub last_error: Option<String>,
    /// When the task was enqueued (ms since the Unix epoch, Redis server time).
    pub created_at_ms: u64,
    /// When the record last changed.
    pub updated_at_ms: u64,
    /// When the task is next due, while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<u64>,
    /// When the task finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at_ms: Option<u64>,
    /// When the task died.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub died_at_ms: Option<u64>,
    /// When the task was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at_ms: Option<u64>,
    /// How the task's callback fares, when it was submitted with a `callback_url` (the URL
    /// itself is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackView>,
}

impl TaskView {
    /// The view of a task just enqueued: queued, never called, due at `run_at_ms`.
    pub(crate) fn enqueued(
        task: &str,
        created_at_ms: u64,
        run_at_ms: u64,
        payload: Option<Box<RawValue>>,
        has_callback: bool,
    ) -> Self {
        Self {
            payload,
            callback: has_callback.then(CallbackView::waiting),
            created_at_ms,
            updated_at_ms: created_at_ms,
            run_at_ms: Some(run_at_ms),
            ..Self::blank(task)
        }
    }

    /// A record with no field set: what an absent field reads as (counters 0, times unset).
    fn blank(task: &str) -> Self {
        Self {
            task: task.to_owned(),
            state: State::Queued,
            data: None,
            payload: None,
            attempts: 0,
            polls: 0,
            claims: 0,
            throttled: 0,
            remote_id: None,
            last_error: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            run_at_ms: None,
            done_at_ms: None,
            died_at_ms: None,
            cancelled_at_ms: None,
            callback: None,
        }
    }

    /// Builds the view from a record's `HGETALL` reply (field, value, field, value, ...).
    ///
    /// # Errors
    /// [`Error::UnexpectedReply`] when a field does not parse.
    pub fn from_fields(task: &str, fields: Vec<(String, String)>) -> Result<Self> {
        let mut view = Self::blank(task);
        for (field, value) in fields {
            match field.as_str() {
                "state" => view.state = value.parse()?,
                "data" => view.data = Some(json(&field, value)?),
                "payload" => view.payload = Some(json(&field, value)?),
                "attempts" => view.attempts = number(&field, &value)?,
                "polls" => view.polls = number(&field, &value)?,
                "claims" => view.claims = number(&field, &value)?,
                "throttled" => view.throttled = number(&field, &value)?,
                "remote_id" => view.remote_id = Some(value),
                "error" => view.last_error = Some(value),
                "created" => view.created_at_ms = number(&field, &value)?,
                "updated" => view.updated_at_ms = number(&field, &value)?,
                "run_at" => view.run_at_ms = Some(number(&field, &value)?),
                "done_at" => view.done_at_ms = Some(number(&field, &value)?),
                "died_at" => view.died_at_ms = Some(number(&field, &value)?),
                "cancelled_at" => view.cancelled_at_ms = Some(number(&field, &value)?),
                "callback_url" => view.callback = Some(CallbackView::waiting()),
                _ => {}
            }
        }
        if matches!(
            view.state,
            State::Running | State::Done | State::Dead | State::Cancelled
        ) {
            view.run_at_ms = None;
        }
        Ok(view)
    }
}

fn json(field: &str, value: String) -> Result<Box<RawValue>> {
    RawValue::from_string(value)
        .map_err(|e| Error::UnexpectedReply(format!("stored {field} is not JSON: {e}")))
}

fn number<T: FromStr>(field: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| Error::UnexpectedReply(format!("field {field} is not a number: {value:?}")))
}

/// A task leased to a worker: the lease is valid while `token` owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    /// The task's name.
    pub name: TaskName,
    /// The claim token: proof of ownership for complete, snooze, fail, extend and release.
    pub token: String,
    /// Failed attempts before this one (since the last successful poll).
    pub attempts: u32,
    /// "processing" answers received before this call.
    pub polls: u32,
    /// The JSON the task was submitted with, for the handler to pass on.
    pub payload: Option<String>,
    /// The id the API gave the task's job at its submit; `None` until then (the next call is
    /// the submit).
    pub remote_id: Option<String>,
    /// Answers so far that asked to slow down (they use no attempt; their backoff grows with it).
    pub throttled: u32,
    /// Whether the task was enqueued with a callback URL: ending it hands its callback over.
    pub has_callback: bool,
    /// Fixed at the task's first claim on a queue whose calls start with a submit (see
    /// [`crate::Policy::submit_keys`]) and kept until a retry of the dead task: every submit of
    /// the task carries it in its idempotency key, whoever makes it and however often.
    pub submit_token: Option<String>,
    /// The values of the submit's answer that the task's later calls name (a JSON object, as
    /// [`crate::Finish::Submitted`] kept them); `None` before the submit or when none are named.
    pub kept: Option<String>,
    /// The latest body a provider POSTed to the task's hook URL (JSON text), kept until the task
    /// ends; `None` when none came.
    pub hook: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_record_becomes_a_view_with_raw_data() {
        let view = TaskView::from_fields(
            "t",
            fields(&[
                ("state", "processing"),
                ("data", r#"{"progress":1}"#),
                ("polls", "1"),
                ("created", "10"),
                ("updated", "20"),
                ("run_at", "30"),
                ("ttl", "1000"),
            ]),
        )
        .unwrap();
        assert_eq!(view.state, State::Processing);
        assert_eq!(view.data.unwrap().get(), r#"{"progress":1}"#);
        assert_eq!((view.polls, view.run_at_ms), (1, Some(30)));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        assert!(TaskView::from_fields("t", fields(&[("state", "weird")])).is_err());
        assert!(TaskView::from_fields("t", fields(&[("polls", "x")])).is_err());
        assert!(TaskView::from_fields("t", fields(&[("data", "{")])).is_err());
    }

    #[test]
    fn the_view_serialises_with_state_names() {
        let view =
            TaskView::from_fields("t", fields(&[("state", "dead"), ("run_at", "5")])).unwrap();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["state"], "dead");
        assert_eq!(json["data"], serde_json::Value::Null);
        assert!(json.get("run_at_ms").is_none());
    }

    #[test]
    fn a_time_or_delay_beyond_the_bound_is_refused_naming_it() {
        assert!(RunAt::At(MAX_RUN_AT_MS).check().is_ok());
        assert!(
            RunAt::After(Duration::from_millis(MAX_RUN_AT_MS))
                .check()
                .is_ok()
        );
        let err = RunAt::At(u64::MAX).check().unwrap_err().to_string();
        assert!(err.contains(&MAX_RUN_AT_MS.to_string()), "{err}");
        assert!(RunAt::After(Duration::MAX).check().is_err());
    }
}
