//! What a handler answers for one call: done, processing, submitted, throttled or failed.
//!
//! A failure's message is kept in the task's record and shown (views, the dashboard, logs), and
//! often quotes the third party (a provider's error message, a receiver's answer). Before it is
//! kept, its control characters (CR, LF, NUL, ESC, ...) and the invisible marks that reorder
//! text are escaped (`\r`, `\u{1b}`), so no provider can forge a log line or a terminal escape in
//! what operators read ([`Outcome::printable`]).

use std::future::Future;
use std::time::Duration;

use crate::task::ClaimedTask;

/// What a handler concluded about one call for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: store `data` (JSON text) as the final result.
    Done(String),
    /// Not finished yet: store `data` (JSON text) as partial data and call again after
    /// `poll_in` (default: the worker's poll interval). Not a failed attempt.
    Processing {
        /// Partial data, JSON text.
        data: String,
        /// When to call again, when the handler knows better than the poll interval.
        poll_in: Option<Duration>,
    },
    /// The API accepted the task's job and named it `remote_id`: store it with `data` (JSON
    /// text, the submit's answer) as partial data, and poll after `poll_in` (default: the poll
    /// interval). Not a failed attempt.
    Submitted {
        /// The API's id for the job, which every later call of the task polls.
        remote_id: String,
        /// The submit's answer, JSON text.
        data: String,
        /// The values of the answer the task's later calls name, a JSON object
        /// ([`crate::ClaimedTask::kept`] on the next claims).
        kept: Option<String>,
        /// When to poll first, when the API said (`Retry-After`).
        poll_in: Option<Duration>,
    },
    /// The API asked to slow down (HTTP 429 or 503): call again after `retry_after` (default:
    /// the backoff, growing with the task's throttled answers). Not a failed attempt.
    Throttled {
        /// What the API answered, kept as the task's last error.
        message: String,
        /// When the API asked to be called again.
        retry_after: Option<Duration>,
    },
    /// Nothing to call: the task waits for news only the provider can push (its webhook), due
    /// again after `poll_in` (default: the poll interval) to look; not a failed attempt. Past
    /// the poll deadline it dies with `reason`.
    Waiting {
        /// Why the task would die, should the news never come.
        reason: String,
        /// When to look again.
        poll_in: Option<Duration>,
    },
    /// The call failed.
    Failed(Failure),
}

/// A failed call, typed by what should follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong; kept in the task's record.
    pub message: String,
    /// A failure that retrying cannot fix (the task dies without using its other attempts).
    pub permanent: bool,
    /// When the other side asked to be called again (`Retry-After`); otherwise the backoff.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure worth retrying after a backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

impl Outcome {
    /// The outcome with its message (a failure's or a throttle's) made printable: control
    /// characters and bidirectional marks escaped as Rust writes them (`\n`, `\u{1b}`).
    pub fn printable(self) -> Self {
        match self {
            Self::Failed(mut failure) => {
                failure.message = printable(failure.message);
                Self::Failed(failure)
            }
            Self::Throttled {
                message,
                retry_after,
            } => Self::Throttled {
                message: printable(message),
                retry_after,
            },
            other => other,
        }
    }
}

/// `text` with its control characters and bidirectional marks escaped.
fn printable(text: String) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(hidden) {
        return text;
    }
    text.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The work done for one task. The consumer's third-party poller is one; a benchmark's no-op is
/// another.
pub trait Handler: Send + Sync + 'static {
    /// Makes one call for `task` and says how it went. A panic is caught and counts as a
    /// retryable failure.
    fn handle(&self, task: &ClaimedTask) -> impl Future<Output = Outcome> + Send;

    /// Resolves once calls may succeed: the claim loop waits on it before each claim, so a
    /// handler that cannot call for now (its credential refused) leaves its queue's tasks in
    /// Redis, due, for whichever consumer can, instead of claiming them only to hand them back.
    /// Always ready unless a handler says otherwise.
    fn ready(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidirectional_marks_are_escaped_in_messages() {
        let said = "bad\r\nFAKE LOG LINE\0\u{1b}[31mred\u{202e}txt.exe é 😀";
        let failed = Outcome::Failed(Failure::permanent(said)).printable();
        let Outcome::Failed(failure) = failed else {
            unreachable!()
        };
        assert_eq!(
            failure.message,
            "bad\\r\\nFAKE LOG LINE\\0\\u{1b}[31mred\\u{202e}txt.exe é 😀"
        );
        let throttled = Outcome::Throttled {
            message: "slow\ndown".into(),
            retry_after: None,
        };
        assert_eq!(
            throttled.printable(),
            Outcome::Throttled {
                message: "slow\\ndown".into(),
                retry_after: None
            }
        );
        assert_eq!(
            Outcome::Done("\n".into()).printable(),
            Outcome::Done("\n".into())
        );
    }
}
