//! The jobs of the real-API shapes: made by a submit, finished by their polls or by the clock.
//!
//! A job answers "processing" until it is due, then "done" (or "failed" with the message its
//! submit asked for: a `"fail"` member anywhere in the submitted body, or a string that starts
//! with `fail:`), and so on every poll after. When it is due is its [`Pace`]: at its
//! `polls_until_done`-th poll, or `job_ms` after its submit whatever its polls, as a real
//! provider's job runs on its own however often it is asked.
//!
//! A job finishes once: the first to see it due, a poll or (for a job with a webhook under the
//! clock's pace) the timer its submit armed, gets a [`Finished`], counts it and calls its
//! webhook. Everything happens under one lock held for a few comparisons, never across an await;
//! what a finish sets off happens after the lock is let go.
//!
//! A job keeps what its submit gave besides its body: the bytes of a file it uploaded, for a
//! result made from them, and the origin (scheme and host) it was reached by, for the URLs a
//! result names. A poll or a peek (a result fetch, which counts no poll) answers a copy of it.
//!
//! A submit that carries an idempotency key already seen (an `Idempotency-Key`, or a body field
//! such as Textract's `ClientRequestToken`) answers the job that key made instead of making
//! another, as providers that honour one do; `/stats` counts the jobs made, so
//! a test can prove one job per task. A reset forgets every job and starts a new epoch, so that a
//! timer armed before it cannot finish a job made after it under the same id.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;
use tokio::time::Instant;

/// When a job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// At its n-th poll (the first, when 0).
    Polls(u32),
    /// This long after its submit, by the clock, whatever its polls.
    Clock(Duration),
}

/// One job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id as the shape names it.
    pub id: String,
    /// The submitted body (a form's fields, for a multipart submit).
    pub input: Value,
    /// The bytes of the file its submit uploaded, if any: results are made from them.
    pub upload: Option<Bytes>,
    /// The scheme and host its submit reached the mock by, for the URLs its results name.
    pub origin: String,
    /// Polls answered so far.
    pub polls: u32,
    /// The message it fails with, when its submit asked.
    pub fail: Option<String>,
    /// Where to call when it finishes: the URL its submit named, when webhooks are on (or the
    /// shape has no other way to give a result).
    pub webhook: Option<String>,
    /// When its submit made it: the clock's pace counts from here.
    pub made: Instant,
    /// Whether it was seen finished: it finishes once, whoever sees it first.
    pub finished: bool,
}

impl Job {
    /// Where the job stands at `now` under `pace`, this poll (if one) counted.
    fn progress(&self, pace: Pace, now: Instant) -> Progress {
        let (done, of) = match pace {
            Pace::Polls(n) => (self.polls, n.max(1)),
            Pace::Clock(after) => {
                let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
                let elapsed = ms(now.saturating_duration_since(self.made));
                (elapsed, ms(after).max(1))
            }
        };
        if done < of {
            return Progress::Running { done, of };
        }
        match &self.fail {
            Some(message) => Progress::Failed(message.clone()),
            None => Progress::Done(result(&self.id, &self.input)),
        }
    }

    /// The job's finish, if `progress` shows it finished and nobody saw that before.
    fn finish(&mut self, progress: &Progress) -> Option<Finished> {
        if self.finished || matches!(progress, Progress::Running { .. }) {
            return None;
        }
        self.finished = true;
        Some(Finished {
            job: self.clone(),
            outcome: progress.clone(),
        })
    }
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Still running: step `done` of `of` (polls, or milliseconds under the clock's pace).
    Running {
        /// Steps so far: polls, this one included, or milliseconds since the submit.
        done: u32,
        /// Steps until done.
        of: u32,
    },
    /// Finished with this result.
    Done(Value),
    /// Failed with this message.
    Failed(String),
}

/// A job that has just finished: what its finisher acts on once the lock is let go.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The job, as it finished (its id, its webhook, what its results are made from).
    pub job: Job,
    /// How it ended: [`Progress::Done`] or [`Progress::Failed`].
    pub outcome: Progress,
}

/// A poll's (or a peek's) answer: where the job stands, the job, and its finish if this look
/// was the first to see it.
#[derive(Debug, Clone)]
pub struct Polled {
    /// Where the job stands.
    pub progress: Progress,
    /// The job as it stands.
    pub job: Job,
    /// `Some` when this look finished the job.
    pub finished: Option<Finished>,
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
    /// Resets so far: a timer from an earlier epoch finishes nothing.
    epoch: u64,
}

/// What a submit asks for.
#[derive(Debug, Clone)]
pub struct Submit<'a> {
    /// Its idempotency key, if any.
    pub key: Option<&'a str>,
    /// The submitted body.
    pub input: Value,
    /// The bytes of the file it uploaded, if any.
    pub upload: Option<Bytes>,
    /// The scheme and host it reached the mock by.
    pub origin: String,
    /// Where to call when the job finishes.
    pub webhook: Option<String>,
    /// When it arrived.
    pub now: Instant,
}

/// A submit's result.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job.
    pub id: String,
    /// Whether this submit made it (false: an idempotency key already seen).
    pub new: bool,
    /// The epoch it was made in, for [`Jobs::finish_due`].
    pub epoch: u64,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a job for `submit`, named by `name_job(n)` (n counts jobs from 1), unless its key
    /// was seen: then answers that key's job.
    pub fn submit(&self, submit: Submit<'_>, name_job: impl Fn(u64) -> String) -> Submitted {
        let mut inner = self.lock();
        let epoch = inner.epoch;
        if let Some(id) = submit.key.and_then(|key| inner.by_key.get(key)).cloned() {
            inner.replays += 1;
            return Submitted {
                id,
                new: false,
                epoch,
            };
        }
        inner.made += 1;
        let id = name_job(inner.made);
        let fail = failure_asked(&submit.input);
        inner.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                input: submit.input,
                upload: submit.upload,
                origin: submit.origin,
                polls: 0,
                fail,
                webhook: submit.webhook,
                made: submit.now,
                finished: false,
            },
        );
        if let Some(key) = submit.key {
            inner.by_key.insert(key.to_owned(), id.clone());
        }
        Submitted {
            id,
            new: true,
            epoch,
        }
    }

    /// Answers a poll of job `id` at `now` under `pace`; `None` for an unknown id.
    pub fn poll(&self, id: &str, pace: Pace, now: Instant) -> Option<Polled> {
        self.look(id, pace, now, true)
    }

    /// Answers a look at job `id` at `now` under `pace` that is not a poll (a result fetch):
    /// the job is due by the clock as by a poll, but no poll is counted.
    pub fn peek(&self, id: &str, pace: Pace, now: Instant) -> Option<Polled> {
        self.look(id, pace, now, false)
    }

    fn look(&self, id: &str, pace: Pace, now: Instant, poll: bool) -> Option<Polled> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(id)?;
        if poll {
            job.polls = job.polls.saturating_add(1);
        }
        let progress = job.progress(pace, now);
        let finished = job.finish(&progress);
        Some(Polled {
            progress,
            job: job.clone(),
            finished,
        })
    }

    /// Finishes job `id` of `epoch` if it is due at `now` under `pace` and nobody saw it
    /// finished yet: the clock's side of [`Jobs::poll`], counting no poll.
    pub fn finish_due(&self, id: &str, epoch: u64, pace: Pace, now: Instant) -> Option<Finished> {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return None;
        }
        let job = inner.jobs.get_mut(id)?;
        let progress = job.progress(pace, now);
        job.finish(&progress)
    }

    /// Jobs made, and submits answered with an existing job.
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.made, inner.replays)
    }

    /// Forgets every job and key, and starts a new epoch.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let epoch = inner.epoch + 1;
        *inner = Inner {
            epoch,
            ..Inner::default()
        };
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

    fn submit(key: Option<&str>, input: Value, now: Instant) -> Submit<'_> {
        Submit {
            key,
            input,
            upload: None,
            origin: "http://mock".into(),
            webhook: None,
            now,
        }
    }

    #[test]
    fn a_job_runs_then_finishes_once_and_a_repeated_key_answers_the_same_job() {
        let jobs = Jobs::default();
        let now = Instant::now();
        let name = |n| format!("j{n}");
        let first = jobs.submit(submit(Some("k"), json!({"input": 1}), now), name);
        let again = jobs.submit(submit(Some("k"), json!({"input": 1}), now), name);
        let other = jobs.submit(submit(None, json!({}), now), name);
        assert!(first.new && !again.new && other.new);
        assert_eq!(
            (first.id.as_str(), again.id.as_str(), other.id.as_str()),
            ("j1", "j1", "j2")
        );
        assert_eq!(jobs.counts(), (2, 1));

        let pace = Pace::Polls(2);
        let polls: Vec<_> = (0..3)
            .map(|_| jobs.poll("j1", pace, now).expect("a job"))
            .collect();

        assert_eq!(polls[0].progress, Progress::Running { done: 1, of: 2 });
        assert!(polls[0].finished.is_none());
        assert!(matches!(polls[1].progress, Progress::Done(_)));
        assert!(
            matches!(&polls[1].finished, Some(f) if f.job.id == "j1" && f.outcome == polls[1].progress)
        );
        assert!(matches!(polls[2].progress, Progress::Done(_)));
        assert!(polls[2].finished.is_none());
        assert!(jobs.poll("nope", pace, now).is_none());
    }

    #[test]
    fn a_submit_asking_to_fail_fails_when_it_would_be_done() {
        let jobs = Jobs::default();
        let input = json!({"input": {"x": [{"fail": "out of memory"}]}});
        let id = jobs
            .submit(submit(None, input, Instant::now()), |n| n.to_string())
            .id;

        let polled = jobs
            .poll(&id, Pace::Polls(1), Instant::now())
            .expect("a job");

        assert_eq!(polled.progress, Progress::Failed("out of memory".into()));
        assert_eq!(
            polled.finished.map(|f| f.outcome),
            Some(Progress::Failed("out of memory".into()))
        );
    }

    #[test]
    fn under_the_clock_a_job_is_due_after_its_time_whatever_its_polls() {
        let jobs = Jobs::default();
        let made = Instant::now();
        let pace = Pace::Clock(Duration::from_millis(100));
        let submitted = jobs.submit(
            Submit {
                webhook: Some("http://hook/x".into()),
                ..submit(None, json!({}), made)
            },
            |n| n.to_string(),
        );
        let at = |ms| made + Duration::from_millis(ms);

        let early = jobs.poll("1", pace, at(40)).expect("a job");
        assert_eq!(early.progress, Progress::Running { done: 40, of: 100 });
        assert!(
            jobs.finish_due("1", submitted.epoch, pace, at(99))
                .is_none()
        );

        let finished = jobs.finish_due("1", submitted.epoch, pace, at(100));
        let late = jobs.poll("1", pace, at(101)).expect("a job");

        let finished = finished.expect("finished by the clock");
        assert_eq!(finished.job.webhook.as_deref(), Some("http://hook/x"));
        assert!(matches!(finished.outcome, Progress::Done(_)));
        assert_eq!(late.progress, finished.outcome);
        assert!(late.finished.is_none(), "finished once, by the clock");
    }

    #[test]
    fn a_timer_from_before_a_reset_finishes_nothing() {
        let jobs = Jobs::default();
        let made = Instant::now();
        let pace = Pace::Clock(Duration::from_millis(1));
        let before = jobs.submit(submit(None, json!({}), made), |n| n.to_string());
        jobs.reset();
        let after = jobs.submit(submit(None, json!({}), made), |n| n.to_string());
        assert_eq!(before.id, after.id);

        let later = made + Duration::from_millis(5);

        assert!(jobs.finish_due("1", before.epoch, pace, later).is_none());
        assert!(jobs.finish_due("1", after.epoch, pace, later).is_some());
    }
}
