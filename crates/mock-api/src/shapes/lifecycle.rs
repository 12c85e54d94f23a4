//! A job's life as the calls see it: a submit makes it (`start`), a poll or a result fetch looks
//! at it (`see`), and whoever sees it finish first calls its webhook (`job_finished`, with the
//! body its shape posts). Apart from the flows in the parent module because this is the only
//! part that touches the job store, its timers and the webhook sender: the flows admit a call,
//! read its body and shape its answer, and hand the job's part to these.

use std::sync::Arc;

use axum::response::Response;
use serde_json::Value;

use super::{Submission, azure, deepgram, fal, google, replicate, revai, stability};
use crate::jobs::{Finished, Job, Pace, Progress, Submit};
use crate::{Mock, Shape};

/// A submit's job, the call admitted and its body read: the job made (or found by its
/// idempotency key), then the configured delay; the answer may be dropped on purpose. `answer`
/// shapes the reply from the job's id. A new job with a webhook under the clock's pace gets a
/// timer that finishes it when it is due, so that its webhook is called then even if nobody
/// polls.
pub(super) async fn start(
    mock: &Arc<Mock>,
    submission: Submission,
    name_job: impl Fn(u64) -> String,
    answer: impl FnOnce(&str) -> Response,
) -> Response {
    let with_webhook = submission.webhook.is_some();
    let now = tokio::time::Instant::now();
    let submitted = mock.jobs.submit(
        Submit {
            key: submission.key.as_deref(),
            input: submission.input,
            upload: submission.upload,
            origin: submission.origin,
            webhook: submission.webhook,
            now,
        },
        name_job,
    );
    let pace = mock.pace();
    if let Pace::Clock(after) = pace
        && submitted.new
        && with_webhook
    {
        let (mock, id, epoch) = (Arc::clone(mock), submitted.id.clone(), submitted.epoch);
        tokio::spawn(async move {
            tokio::time::sleep_until(now + after).await;
            let now = tokio::time::Instant::now();
            if let Some(finished) = mock.jobs.finish_due(&id, epoch, pace, now) {
                job_finished(&mock, finished);
            }
        });
    }
    mock.delay().await;
    if submitted.new && mock.drop_this_answer() {
        return crate::dropped_answer();
    }
    answer(&submitted.id)
}

/// How a call looks at a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// A status poll: counted towards `polls_until_done`.
    Poll,
    /// A result fetch: counts no poll (a job due by the clock is due all the same).
    Peek,
}

/// A look at job `id`, the call admitted: the job advanced (or peeked at), then the configured
/// delay. `None` for an unknown id. When this look is the first to see the job finished, its
/// webhook is called at once, before the delay: the job finished at this call's arrival.
pub(super) async fn see(mock: &Mock, id: &str, look: Look) -> Option<(Job, Progress)> {
    let now = tokio::time::Instant::now();
    let polled = match look {
        Look::Poll => mock.jobs.poll(id, mock.pace(), now),
        Look::Peek => mock.jobs.peek(id, mock.pace(), now),
    };
    let seen = polled.map(|polled| {
        if let Some(finished) = polled.finished {
            job_finished(mock, finished);
        }
        (polled.job, polled.progress)
    });
    mock.delay().await;
    seen
}

/// A job just finished: counted, and its webhook, if any, called with what its shape posts.
fn job_finished(mock: &Mock, finished: Finished) {
    mock.counters.finished();
    let Finished { job, outcome } = finished;
    if let Some(url) = job.webhook.clone() {
        let body = webhook_body(mock.config.shape, &job, outcome);
        mock.webhooks.send(url, job.id, &body);
    }
}

/// What the webhook of `job` of `shape` is POSTed once it finished with `outcome`: for most
/// shapes the body a poll of it answers from now on, made by the same function.
fn webhook_body(shape: Shape, job: &Job, outcome: Progress) -> Value {
    match shape {
        // The original shape makes no jobs.
        Shape::Original => Value::Null,
        Shape::Replicate => replicate::answer(&job.id, outcome).1,
        Shape::Google => google::answer(&job.id, outcome).1,
        Shape::Azure => azure::answer(outcome).1,
        Shape::Stability => stability::answer(&job.id, outcome).1,
        Shape::Fal => fal::webhook(job, outcome),
        // No webhook is ever named: OpenAI's are configured per project, not per batch.
        Shape::OpenaiBatch => Value::Null,
        Shape::Revai => revai::webhook(job, &outcome),
        // None calls webhooks (Textract notifies through SNS), and none is ever named.
        Shape::StabilityUpscale | Shape::ElevenlabsDubbing | Shape::Textract => Value::Null,
        Shape::Deepgram => deepgram::callback(job, &outcome),
    }
}
