//! The jobs of the real-API shapes: made by a submit, advanced by each successful poll.
//!
//! A job answers "processing" until its `polls_until_done`-th poll, then "done" (or "failed"
//! with the message its submit asked for: a `"fail"` member anywhere in the submitted body, or
//! a string that starts with `fail:`), and so on every poll after. A submit that carries an
//! `Idempotency-Key` already seen answers the job that key made instead of making another, as
//! providers that honour the header do; `/stats` counts the jobs made, so a test can prove one
//! job per task.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

/// One job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id as the shape names it.
    pub id: String,
    /// The submitted body.
    pub input: Value,
    /// Polls answered so far.
    pub polls: u32,
    /// The message it fails with, when its submit asked.
    pub fail: Option<String>,
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Still running: this poll is the `of`-th's `done`-th.
    Running {
        /// Polls so far, this one included.
        done: u32,
        /// Polls until done.
        of: u32,
    },
    /// Finished with this result.
    Done(Value),
    /// Failed with this message.
    Failed(String),
}

/// Every job, by id, and the idempotency keys seen.
#[derive(Debug, Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    by_key: HashMap<String, String>,
    made: u64,
    replays: u64,
}

/// A submit's result.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job.
    pub id: String,
    /// Whether this submit made it (false: an idempotency key already seen).
    pub new: bool,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a job for `input`, named by `name_job(n)` (n counts jobs from 1), unless `key` was
    /// seen: then answers that key's job.
    pub fn submit(
        &self,
        key: Option<&str>,
        input: Value,
        name_job: impl Fn(u64) -> String,
    ) -> Submitted {
        let mut inner = self.lock();
        if let Some(id) = key.and_then(|key| inner.by_key.get(key)).cloned() {
            inner.replays += 1;
            return Submitted { id, new: false };
        }
        inner.made += 1;
        let id = name_job(inner.made);
        let fail = failure_asked(&input);
        inner.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                input,
                polls: 0,
                fail,
            },
        );
        if let Some(key) = key {
            inner.by_key.insert(key.to_owned(), id.clone());
        }
        Submitted { id, new: true }
    }

    /// Advances job `id` by one poll; `None` for an unknown id. `finished` is told when this
    /// poll is the one that finished the job.
    pub fn poll(
        &self,
        id: &str,
        polls_until_done: u32,
        finished: impl FnOnce(),
    ) -> Option<Progress> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(id)?;
        job.polls = job.polls.saturating_add(1);
        let of = polls_until_done.max(1);
        if job.polls < of {
            return Some(Progress::Running {
                done: job.polls,
                of,
            });
        }
        if job.polls == of {
            finished();
        }
        Some(match &job.fail {
            Some(message) => Progress::Failed(message.clone()),
            None => Progress::Done(result(&job.id, &job.input)),
        })
    }

    /// Jobs made, and submits answered with an existing job.
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.made, inner.replays)
    }

    /// Forgets every job and key.
    pub fn reset(&self) {
        *self.lock() = Inner::default();
    }
}

/// A job's result: its id, what was submitted, and a fingerprint of the id.
pub fn result(id: &str, input: &Value) -> Value {
    serde_json::json!({
        "job": id,
        "input": input,
        "checksum": format!("{:016x}", crate::fnv1a(id.as_bytes())),
    })
}

/// The message of the first `"fail"` string member, or `fail:` string, anywhere in `input`.
fn failure_asked(input: &Value) -> Option<String> {
    match input {
        Value::Object(members) => members.iter().find_map(|(key, value)| match value {
            Value::String(message) if key == "fail" => Some(message.clone()),
            other => failure_asked(other),
        }),
        Value::Array(items) => items.iter().find_map(failure_asked),
        Value::String(text) => text.strip_prefix("fail:").map(|m| m.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_job_runs_then_finishes_and_a_repeated_key_answers_the_same_job() {
        let jobs = Jobs::default();
        let first = jobs.submit(Some("k"), json!({"input": 1}), |n| format!("j{n}"));
        let again = jobs.submit(Some("k"), json!({"input": 1}), |n| format!("j{n}"));
        let other = jobs.submit(None, json!({}), |n| format!("j{n}"));
        assert!(first.new && !again.new && other.new);
        assert_eq!(
            (first.id.as_str(), again.id.as_str(), other.id.as_str()),
            ("j1", "j1", "j2")
        );
        assert_eq!(jobs.counts(), (2, 1));

        let mut finished = 0;
        assert_eq!(
            jobs.poll("j1", 2, || finished += 1),
            Some(Progress::Running { done: 1, of: 2 })
        );
        assert!(matches!(
            jobs.poll("j1", 2, || finished += 1),
            Some(Progress::Done(_))
        ));
        assert!(matches!(
            jobs.poll("j1", 2, || finished += 1),
            Some(Progress::Done(_))
        ));
        assert_eq!(finished, 1);
        assert_eq!(jobs.poll("nope", 2, || {}), None);
    }

    #[test]
    fn a_submit_asking_to_fail_fails_when_it_would_be_done() {
        let jobs = Jobs::default();
        let id = jobs
            .submit(
                None,
                json!({"input": {"x": [{"fail": "out of memory"}]}}),
                |n| n.to_string(),
            )
            .id;
        assert_eq!(
            jobs.poll(&id, 1, || {}),
            Some(Progress::Failed("out of memory".into()))
        );
    }
}
