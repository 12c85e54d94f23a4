//! Claiming: `claim.lua` leases due tasks to a worker, each with a fresh token, after taking
//! back the expired leases among the earliest few. The candidates are read first (a pipelined
//! read), then the script re-checks and claims them: every key it touches is declared, as Redis
//! Cluster requires.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::policy::SWEEP_LIMIT;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};
use crate::task::ClaimedTask;

/// The result of a claim.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The leased tasks.
    pub tasks: Vec<ClaimedTask>,
    /// How long until the earliest task still in the due set is due (`None`: the set is empty;
    /// zero: more are due now, for instance after losing candidates to another worker).
    pub next_due_in: Option<Duration>,
}

/// How many of the earliest lease deadlines a claim checks for expiry on its way (the tick's
/// sweep takes the rest).
const CLAIM_REAP_CANDIDATES: usize = 8;

impl Queue {
    /// Leases up to `limit` due tasks, after taking back the expired leases among the earliest
    /// few. Two round trips: a pipelined read of candidates, then the script that re-checks and
    /// claims them (every key it touches is declared, as Redis Cluster requires).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails. The script is atomic, so a failed call leased nothing,
    /// unless only its reply was lost: those tasks come back when their lease expires.
    pub async fn claim(&self, limit: usize) -> Result<Claim> {
        let lease_candidates = SWEEP_LIMIT.min(CLAIM_REAP_CANDIDATES);
        let (due, leased): (Vec<String>, Vec<String>) = self
            .earliest(&[
                (&self.keys().due, limit),
                (&self.keys().leased, lease_candidates),
            ])
            .await?;
        let mut invocation = scripts::CLAIM.on(self.redis()).key(&self.keys().due);
        invocation
            .key(&self.keys().leased)
            .key(&self.keys().dead)
            .key(&self.keys().seq)
            .key(&self.keys().stats)
            .key(&self.keys().events)
            .key(&self.keys().callback_due)
            .key(&self.keys().callback_wake);
        for name in due.iter().chain(&leased) {
            invocation.key(self.keys().task_raw(name));
        }
        for name in &leased {
            invocation.key(self.keys().callback_of(name));
        }
        let reply: Vec<redis::Value> = invocation
            .arg(self.keys().task_prefix())
            .arg(due.len())
            .arg(millis(self.worker_policy().lease))
            .arg(self.worker_policy().max_attempts)
            .arg(millis(self.dead_ttl()))
            .arg(limit)
            .arg(u8::from(self.worker_policy().submit_keys))
            .run(self.redis())
            .await?;
        parse_claim(reply, self.worker_policy().submit_keys)
    }
}

fn parse_claim(reply: Vec<redis::Value>, submits: bool) -> Result<Claim> {
    // Fields per claimed task: seven, and four more (remote id, submit token, kept values, the
    // latest webhook body) for a queue whose calls start with a submit.
    let per_task = if submits { 11 } else { 7 };
    let bad = |what: &str| Error::UnexpectedReply(format!("claim reply: {what}"));
    let mut items = reply.into_iter();
    let next_due: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("empty"))?)
        .map_err(|_| bad("next due"))?;
    let rest: Vec<String> =
        redis::from_redis_value(redis::Value::Array(items.collect())).map_err(|_| bad("tasks"))?;
    if !rest.len().is_multiple_of(per_task) {
        return Err(bad("task fields"));
    }
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad("counter"));
    // Text fields are never empty when set (JSON, ids and tokens): empty means none.
    let text = |s: String| (!s.is_empty()).then_some(s);
    let mut tasks = Vec::with_capacity(rest.len() / per_task);
    let mut fields = rest.into_iter();
    while let Some(name) = fields.next() {
        let mut next = || fields.next().ok_or_else(|| bad("task fields"));
        let token = next()?;
        let attempts = number(&next()?)?;
        let polls = number(&next()?)?;
        let payload = text(next()?);
        let throttled = number(&next()?)?;
        let has_callback = next()? == "1";
        let (remote_id, submit_token, kept, hook) = if submits {
            (text(next()?), text(next()?), text(next()?), text(next()?))
        } else {
            (None, None, None, None)
        };
        tasks.push(ClaimedTask {
            name: TaskName::from_stored(name),
            token,
            attempts,
            polls,
            payload,
            remote_id,
            throttled,
            has_callback,
            submit_token,
            kept,
            hook,
        });
    }
    Ok(Claim {
        tasks,
        next_due_in: u64::try_from(next_due).ok().map(Duration::from_millis),
    })
}
