//! What clients and operators do besides enqueueing: submit a task with a payload, cancel it, and
//! look after the queue (list tasks by state, statistics, retry dead tasks, purge finished
//! records).
//!
//! These live apart from [`crate::queue`] because they are not on the worker's hot path, and
//! their costs are of another kind: a list or a purge walks a set, so each call takes a bounded
//! batch and the caller pages or loops. Every state change is still one script (`cancel`,
//! `retry_all`, `purge`), each re-checking the state of the records it is given, so a task that
//! moved between the read of a batch and the script is left alone.
//!
//! **Cancel.** A cancelled task leaves the due, leased and dead sets and its claim token is
//! revoked: a worker still calling the API for it has its answer refused as stale. The record
//! stays, state [`State::Cancelled`], for the policy's dead ttl, and while it stays its name
//! dedups like a dead task's. Cancelled tasks are kept in their own sorted set so that they can be
//! listed and purged.
//!
//! **Listing.** The cursor of a state with a sorted set (queued and processing share `due`,
//! running is `leased`, then `dead`, `cancelled`) is the last entry's (score, name): the next page
//! starts just after it even when that task has moved, so paging never skips or repeats a task
//! that stays put. Done tasks have no index (finishing a task should cost nothing more), so their
//! cursor is a `SCAN` cursor over the queue's records: a done page may hold a few more tasks than
//! asked for, and a task finishing meanwhile may or may not show up.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::queue::{Enqueued, Queue, RunScript, millis, once_more_if_dropped};
use crate::scripts;
use crate::task::{State, TaskView};

/// The largest payload accepted with a task, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// The most tasks one page of a list holds.
pub const MAX_PAGE_SIZE: usize = 500;

/// Entries examined per list call at most: a page of a sparse state (queued among many
/// processing tasks) comes back short, with a cursor, rather than blocking Redis.
const LIST_BUDGET: usize = 2000;

/// Records handled per script call by retry-all and purge.
const BATCH: usize = 500;

/// The fields a list shows: the record without its data and payload, which can be large.
const SUMMARY_FIELDS: [&str; 11] = [
    "state",
    "attempts",
    "polls",
    "claims",
    "error",
    "created",
    "updated",
    "run_at",
    "done_at",
    "died_at",
    "cancelled_at",
];

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum Cancel {
    /// The task is cancelled now; its view as it now is.
    Cancelled(TaskView),
    /// It was cancelled before; nothing changed.
    AlreadyCancelled(TaskView),
    /// It is done: a finished task cannot be cancelled; nothing changed.
    Done(TaskView),
    /// No task of that name.
    NotFound,
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// The tasks, oldest first (by run-at, lease deadline, death or cancel time); without their
    /// data and payload (`GET /tasks/NAME` has them).
    pub tasks: Vec<TaskView>,
    /// Where the next page starts (`null` at the end); pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

/// The finished states whose records can be purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    /// Done tasks: their results go before their ttl ends.
    Done,
    /// Dead tasks.
    Dead,
    /// Cancelled tasks.
    Cancelled,
}

impl Finished {
    fn state(self) -> State {
        match self {
            Self::Done => State::Done,
            Self::Dead => State::Dead,
            Self::Cancelled => State::Cancelled,
        }
    }
}

/// How many tasks are where, and the queue-wide counters, read at one moment.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Redis server time of the reading (ms since the Unix epoch).
    pub server_time_ms: u64,
    /// Tasks per set.
    pub counts: StateCounts,
    /// How long the earliest due task has been due (ms); 0 when none is overdue. A growing value
    /// means the consumers do not keep up.
    pub oldest_due_age_ms: u64,
    /// The counters the scripts keep (ever since the queue began): enqueued, duplicates, claimed,
    /// done, snoozed, retried, dead, stale, reaped, released, revived, cancelled, purged.
    pub totals: BTreeMap<String, u64>,
}

/// Tasks per set. Queued and processing tasks share the due set (the state that tells them
/// apart lives in each record), so they are counted together.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    /// Waiting for a call: queued or processing.
    pub due: u64,
    /// Of those, due now (the rest wait for a retry or the next poll).
    pub due_now: u64,
    /// Leased to a consumer.
    pub running: u64,
    /// Dead and kept.
    pub dead: u64,
    /// Cancelled and kept.
    pub cancelled: u64,
}

/// Where a list resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    Start,
    /// Just after this entry of a sorted set.
    After {
        score: u64,
        name: String,
    },
    /// A `SCAN` cursor.
    Scan(u64),
}

impl Cursor {
    fn parse(text: Option<&str>, state: State) -> Result<Self> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(Self::Start);
        };
        let bad = || Error::InvalidCursor(text.to_owned());
        if state == State::Done {
            return text.parse().map(Self::Scan).map_err(|_| bad());
        }
        let (score, name) = text.split_once(':').ok_or_else(bad)?;
        Ok(Self::After {
            score: score.parse().map_err(|_| bad())?,
            name: TaskName::parse(name)
                .map_err(|_| bad())?
                .as_str()
                .to_owned(),
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start => Ok(()),
            Self::After { score, name } => write!(f, "{score}:{name}"),
            Self::Scan(cursor) => write!(f, "{cursor}"),
        }
    }
}

/// A batch of names from [`scripts::LIST`], and where the next batch starts.
struct Batch {
    names: Vec<String>,
    next: Option<Cursor>,
}

impl Queue {
    /// Adds the task `name` with a `payload` (JSON, kept in the record and shown with the task)
    /// unless a task of that name is live or done with its result kept; either way answers the
    /// task as it now is. A duplicate keeps the first payload.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] over [`MAX_PAYLOAD_BYTES`]; [`Error::Redis`] when Redis fails,
    /// and nothing is written then.
    #[instrument(level = "debug", skip(self, payload), fields(task = %name))]
    pub async fn submit(&self, name: &TaskName, payload: Option<&RawValue>) -> Result<Enqueued> {
        if let Some(payload) = payload {
            let len = payload.get().len();
            if len > MAX_PAYLOAD_BYTES {
                return Err(Error::PayloadTooLarge {
                    len,
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        self.enqueue_one(name, payload.map(ToOwned::to_owned)).await
    }

    /// Cancels the task `name` unless it is done: it leaves every set, its claim token is revoked
    /// (a worker running it has its answer refused as stale), and its record is kept, state
    /// cancelled, for the policy's dead ttl. Safe to repeat.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    #[instrument(level = "debug", skip(self), fields(task = %name))]
    pub async fn cancel(&self, name: &TaskName) -> Result<Cancel> {
        let keys = self.keys();
        let (code, fields): (i64, Vec<(String, String)>) = scripts::CANCEL
            .key(keys.task(name))
            .key(&keys.due)
            .key(&keys.leased)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.stats)
            .arg(name.as_str())
            .arg(millis(self.policy().dead_ttl))
            .arg(self.policy().sweep_limit)
            .run(&self.conn())
            .await?;
        let view = || TaskView::from_fields(name.as_str(), fields);
        Ok(match code {
            0 => Cancel::NotFound,
            1 => Cancel::Cancelled(view()?),
            2 => Cancel::AlreadyCancelled(view()?),
            3 => Cancel::Done(view()?),
            other => return Err(Error::UnexpectedReply(format!("cancel code {other}"))),
        })
    }

    /// One page of the tasks in `state`, oldest first, from `cursor` (`None`: the start), at
    /// most `limit` tasks (capped at [`MAX_PAGE_SIZE`]) but possibly fewer with a next cursor
    /// still: see the module's notes.
    ///
    /// # Errors
    /// [`Error::InvalidCursor`] for a cursor this state did not hand out; [`Error::Redis`].
    pub async fn list(&self, state: State, cursor: Option<&str>, limit: usize) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let mut cursor = Cursor::parse(cursor, state)?;
        let mut tasks = Vec::new();
        let mut examined = 0;
        loop {
            let want = limit - tasks.len();
            let batch = self.batch(state, &cursor, want).await?;
            // Counted as asked, not as found: a scan step that matched nothing still did work.
            examined += want;
            for view in self.summaries(&batch.names).await? {
                if view.state == state {
                    tasks.push(view);
                }
            }
            match batch.next {
                Some(next) if tasks.len() < limit && examined < LIST_BUDGET => cursor = next,
                next => {
                    return Ok(Page {
                        tasks,
                        next_cursor: next.map(|c| c.to_string()),
                    });
                }
            }
        }
    }

    /// Reads the queue's statistics in one round trip.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn stats(&self) -> Result<QueueStats> {
        let keys = self.keys();
        type Reply = (u64, u64, u64, i64, u64, u64, u64, BTreeMap<String, u64>);
        let (now, due, due_now, first_due, running, dead, cancelled, totals): Reply =
            scripts::STATS
                .key(&keys.due)
                .key(&keys.leased)
                .key(&keys.dead)
                .key(&keys.cancelled)
                .key(&keys.stats)
                .arg(millis(self.policy().dead_ttl))
                .read(&self.conn())
                .await?;
        Ok(QueueStats {
            server_time_ms: now,
            counts: StateCounts {
                due,
                due_now,
                running,
                dead,
                cancelled,
            },
            oldest_due_age_ms: u64::try_from(first_due).map_or(0, |at| now.saturating_sub(at)),
            totals,
        })
    }

    /// Brings every dead task back, due at once with a fresh attempt budget, in batches; answers
    /// how many came back. Tasks that die again meanwhile wait for the next call.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batches before it stay applied.
    #[instrument(level = "debug", skip(self))]
    pub async fn retry_all_dead(&self) -> Result<u64> {
        let keys = self.keys();
        let mut left = self.index_len(&keys.dead).await?;
        let mut revived = 0;
        while left > 0 {
            let batch = self.batch(State::Dead, &Cursor::Start, BATCH).await?;
            if batch.names.is_empty() {
                break;
            }
            left = left.saturating_sub(batch.names.len() as u64);
            let mut invocation = scripts::RETRY_ALL.key(&keys.dead);
            invocation.key(&keys.due).key(&keys.stats);
            for name in &batch.names {
                invocation.key(keys.task_raw(name)).arg(name);
            }
            revived += invocation.run::<u64>(&self.conn()).await?;
        }
        Ok(revived)
    }

    /// Deletes the records of every task in `state`, in batches; their names may then be
    /// enqueued anew. Answers how many were deleted.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batches before it stay applied.
    #[instrument(level = "debug", skip(self))]
    pub async fn purge(&self, state: Finished) -> Result<u64> {
        let keys = self.keys();
        let index = match state {
            Finished::Done => &keys.stats,
            Finished::Dead => &keys.dead,
            Finished::Cancelled => &keys.cancelled,
        };
        // An index shrinks by each batch, so it is read from its start every time; a scan moves on.
        let mut left = match state {
            Finished::Done => u64::MAX,
            _ => self.index_len(index).await?,
        };
        let mut cursor = Cursor::Start;
        let mut deleted = 0;
        while left > 0 {
            let batch = self.batch(state.state(), &cursor, BATCH).await?;
            left = left.saturating_sub(batch.names.len() as u64);
            let mut invocation = scripts::PURGE.key(&keys.stats);
            invocation.key(index).arg(state.state().as_str());
            for name in &batch.names {
                invocation.key(keys.task_raw(name)).arg(name);
            }
            deleted += invocation.run::<u64>(&self.conn()).await?;
            match (state, batch.next) {
                (Finished::Done, Some(next)) => cursor = next,
                (Finished::Done, None) => break,
                _ if batch.names.is_empty() => break,
                _ => {}
            }
        }
        Ok(deleted)
    }

    /// The next names of `state` after `cursor`, from its sorted set, or a scan for done.
    async fn batch(&self, state: State, cursor: &Cursor, n: usize) -> Result<Batch> {
        let keys = self.keys();
        let index = match state {
            State::Queued | State::Processing => &keys.due,
            State::Running => &keys.leased,
            State::Dead => &keys.dead,
            State::Cancelled => &keys.cancelled,
            State::Done => &keys.stats,
        };
        let mode = if state == State::Done {
            "scan"
        } else {
            "index"
        };
        let (position, name) = match cursor {
            Cursor::Start => (String::new(), ""),
            Cursor::After { score, name } => (score.to_string(), name.as_str()),
            Cursor::Scan(cursor) => (cursor.to_string(), ""),
        };
        let reply: Vec<String> = scripts::LIST
            .key(index)
            .arg(mode)
            .arg(n)
            .arg(position)
            .arg(if state == State::Done {
                keys.task_prefix()
            } else {
                name
            })
            .read(&self.conn())
            .await?;
        let bad = || Error::UnexpectedReply("list reply".into());
        let mut items = reply.into_iter();
        let next = items.next().ok_or_else(bad)?;
        if state == State::Done {
            let names = items
                .filter_map(|key| key.strip_prefix(keys.task_prefix()).map(str::to_owned))
                .collect();
            let next = match next.as_str() {
                "" => None,
                cursor => Some(Cursor::Scan(cursor.parse().map_err(|_| bad())?)),
            };
            return Ok(Batch { names, next });
        }
        let entries: Vec<String> = items.collect();
        let mut names = Vec::with_capacity(entries.len() / 2);
        let mut last = None;
        for pair in entries.chunks_exact(2) {
            names.push(pair[0].clone());
            last = Some((&pair[0], &pair[1]));
        }
        let next = match (next.as_str(), last) {
            ("more", Some((name, score))) => Some(Cursor::After {
                score: score.parse().map_err(|_| bad())?,
                name: name.clone(),
            }),
            _ => None,
        };
        Ok(Batch { names, next })
    }

    /// The records of `names` without data and payload, in one pipelined round trip; records
    /// gone meanwhile are left out.
    async fn summaries(&self, names: &[String]) -> Result<Vec<TaskView>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in names {
            pipe.cmd("HMGET")
                .arg(self.keys().task_raw(name))
                .arg(&SUMMARY_FIELDS[..]);
        }
        let records: Vec<Vec<Option<String>>> = once_more_if_dropped(|| {
            let (mut conn, pipe) = (self.conn(), &pipe);
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        let mut views = Vec::with_capacity(names.len());
        for (name, values) in names.iter().zip(records) {
            let fields: Vec<(String, String)> = SUMMARY_FIELDS
                .iter()
                .zip(values)
                .filter_map(|(field, value)| Some(((*field).to_owned(), value?)))
                .collect();
            if !fields.is_empty() {
                views.push(TaskView::from_fields(name, fields)?);
            }
        }
        Ok(views)
    }

    async fn index_len(&self, key: &str) -> Result<u64> {
        Ok(once_more_if_dropped(|| {
            let mut conn = self.conn();
            async move { redis::cmd("ZCARD").arg(key).query_async(&mut conn).await }
        })
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let after = Cursor::parse(Some("1700000000000:a:b c"), State::Dead).unwrap();
        assert_eq!(
            after,
            Cursor::After {
                score: 1_700_000_000_000,
                name: "a:b c".into()
            }
        );
        assert_eq!(after.to_string(), "1700000000000:a:b c");
        assert_eq!(
            Cursor::parse(Some("42"), State::Done).unwrap(),
            Cursor::Scan(42)
        );
        assert_eq!(Cursor::parse(None, State::Done).unwrap(), Cursor::Start);
        assert_eq!(
            Cursor::parse(Some(""), State::Queued).unwrap(),
            Cursor::Start
        );
        for (bad, state) in [
            ("42", State::Dead),
            ("x:name", State::Queued),
            ("1:", State::Running),
            ("-1:a", State::Dead),
            ("1:a", State::Done),
        ] {
            assert!(
                matches!(
                    Cursor::parse(Some(bad), state),
                    Err(Error::InvalidCursor(_))
                ),
                "{bad} {state}"
            );
        }
    }
}
