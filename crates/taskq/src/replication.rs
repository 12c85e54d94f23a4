//! Waiting for replicas: a state change counts only once N replicas hold it.
//!
//! Redis replicates asynchronously: a master that answers a write and dies before its replicas
//! have it loses the write in the failover that follows, though the client was told it
//! happened. With [`WaitForReplicas`], every state-changing script is sent together with
//! `WAIT n timeout` in one pipeline, on one connection, so the `WAIT` covers that very script
//! (it counts the replicas that acknowledged every write of its connection so far); the change
//! is answered, or acted on, only when `n` replicas acknowledged it within the timeout. Fewer is
//! [`Error::NotReplicated`]: the change may or may not survive a failover, so the caller treats
//! it as a failure (a producer answers 503 and the client enqueues again, which dedup makes
//! safe; a consumer does not run the tasks of an unconfirmed claim, which come back when their
//! lease ends).
//!
//! `WAIT` cannot run inside a script, hence the pipeline; a pipeline goes out as one write on
//! one socket, so no reconnection (to a new master, say) can slip between the script and its
//! `WAIT`.

use redis::{ErrorKind, FromRedisValue, ScriptInvocation, ServerErrorKind};

use crate::connect::{RedisConnection, WaitForReplicas};
use crate::error::{Error, Result};

/// Runs a state-changing script and waits for `wait.replicas` replicas to hold its effect.
pub(crate) async fn run_replicated<T: FromRedisValue>(
    invocation: &ScriptInvocation<'_>,
    conn: &RedisConnection,
    wait: WaitForReplicas,
) -> Result<T> {
    let mut pipe = redis::pipe();
    pipe.invoke_script(invocation)
        .cmd("WAIT")
        .arg(wait.replicas)
        .arg(u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX));
    let mut conn = conn.clone();
    let (value, acknowledged): (T, u32) = match pipe.query_async(&mut conn).await {
        // A Redis that does not know the script yet (a restart, a promoted replica): the script
        // did not run, so load it and send the pair again.
        Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            invocation.load_async(&mut conn).await?;
            pipe.query_async(&mut conn).await?
        }
        other => other?,
    };
    if acknowledged < wait.replicas {
        conn.recheck_master();
        return Err(Error::NotReplicated {
            wanted: wait.replicas,
            acknowledged,
            timeout: wait.timeout,
        });
    }
    Ok(value)
}
