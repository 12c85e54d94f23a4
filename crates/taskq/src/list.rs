//! Reading tasks: one task's record (`HGETALL`), and pages of the tasks in one state
//! (`list.lua`, then the records in one pipelined read).
//!
//! **Listing.** The cursor of a state with a sorted set (queued and processing share `due`,
//! running is `leased`, then `dead`, `cancelled`) is the last entry's (score, name): the next page
//! starts just after it even when that task has moved, so paging never skips or repeats a task
//! that stays put. Done tasks have no index (finishing a task should cost nothing more), so their
//! cursor is a `SCAN` cursor over the queue's records: a done page may hold a few more tasks than
//! asked for, and a task finishing meanwhile may or may not show up.

use std::fmt;

use redis::AsyncCommands;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, once_more_if_dropped};
use crate::task::{State, TaskView};

/// The most tasks one page of a list holds.
pub const MAX_PAGE_SIZE: usize = 500;

/// Entries examined per list call at most: a page of a sparse state (queued among many
/// processing tasks) comes back short, with a cursor, rather than blocking Redis.
const LIST_BUDGET: usize = 2000;

/// Records handled per script call by retry-all and purge.
pub(crate) const BATCH: usize = 500;

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

/// Where a list resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
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
    pub(crate) fn parse(text: Option<&str>, state: State) -> Result<Self> {
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
pub(crate) struct Batch {
    pub(crate) names: Vec<String>,
    pub(crate) next: Option<Cursor>,
}

impl Queue {
    /// Reads a task's record; `None` for a name never seen (or whose result expired).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::UnexpectedReply`] for a corrupt record.
    pub(crate) async fn record(&self, name: &TaskName) -> Result<Option<TaskView>> {
        let key = self.keys().task(name);
        let fields: Vec<(String, String)> = once_more_if_dropped(|| {
            let mut conn = self.conn();
            let key = &key;
            async move { conn.hgetall(key).await }
        })
        .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        TaskView::from_fields(name.as_str(), fields).map(Some)
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

    /// The next names of `state` after `cursor`, from its sorted set, or a scan for done.
    pub(crate) async fn batch(&self, state: State, cursor: &Cursor, n: usize) -> Result<Batch> {
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
            .on(self.redis())
            .key(index)
            .arg(mode)
            .arg(n)
            .arg(position)
            .arg(if state == State::Done {
                keys.task_prefix()
            } else {
                name
            })
            .read(self.redis())
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

    pub(crate) async fn index_len(&self, key: &str) -> Result<u64> {
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
