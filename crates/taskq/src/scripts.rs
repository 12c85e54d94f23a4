//! The Lua scripts, one file each under `lua/`, loaded once, and how they are run.
//!
//! Every state change of a task is one of these scripts, so it is atomic on the server. Each
//! script is the shared `prelude.lua` (time, ownership check, bury, reschedule, reap, events)
//! followed by its own body; each body opens with its `KEYS`/`ARGV` contract. Every script comes
//! in two forms, for the two ways of publishing its events ([`QueueScript`]). `redis::Script` sends `EVALSHA`
//! and falls back to loading the script when the server does not know it (after a restart or a
//! `SCRIPT FLUSH`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::connect::RedisConnection;
use crate::error::{Error, Result};
use crate::replication::run_replicated;

/// A script in its two forms: publishing its events with `PUBLISH` (a single Redis, Sentinel) or
/// `SPUBLISH` (a Redis Cluster, where a plain `PUBLISH` would travel to every node while the
/// queue's channels, sharing its hash tag, belong to one shard). Each form is the prelude's
/// `PUBLISH` line, `prelude.lua` and the script's own body.
pub(crate) struct QueueScript {
    plain: Script,
    sharded: Script,
}

impl QueueScript {
    /// The two forms of `file`, a script that opens with its flags line (`#!lua ...`).
    fn new(file: &str) -> Self {
        let (flags, body) = split_flags(file);
        Self::with_flags(flags, body)
    }

    /// The two forms of `body` under `flags`, which Redis reads only on a script's first line:
    /// they go before the prelude.
    fn with_flags(flags: &str, body: &str) -> Self {
        let form = |command: &str| {
            Script::new(&format!(
                "{flags}\nlocal PUBLISH = '{command}'\n{}{body}",
                include_str!("lua/prelude.lua")
            ))
        };
        Self {
            plain: form("PUBLISH"),
            sharded: form("SPUBLISH"),
        }
    }

    /// The form for `conn`.
    pub(crate) fn on(&self, conn: &RedisConnection) -> &Script {
        if conn.is_cluster() {
            &self.sharded
        } else {
            &self.plain
        }
    }
}

/// Splits a script file into its flags line and its body.
///
/// Every script declares its flags (Redis 7's `#!lua` line), and so its memory class: one that
/// adds data is plain `#!lua`, which Redis refuses as a whole, before it runs, when it is at
/// `maxmemory`; one that only moves tasks or frees memory is `#!lua flags=allow-oom`, so that a
/// full Redis still drains; one that only reads is `#!lua flags=no-writes`. Each file's header
/// says why it is in its class.
fn split_flags(file: &str) -> (&str, &str) {
    match file.split_once('\n') {
        Some((first, body)) if first.starts_with("#!lua") => (first, body),
        // Checked by a test for every script; a script without flags would run in Redis'
        // compatibility mode, refused at its first write at maxmemory.
        _ => ("#!lua", file),
    }
}

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| QueueScript::new(include_str!(concat!("lua/", $file))))
    };
}

/// The draining form of a script that adds data: the same body under `flags=allow-oom`, run when
/// Redis refused the plain form at `maxmemory`; the caller's arguments make it add nothing.
macro_rules! draining {
    ($file:literal) => {
        LazyLock::new(|| {
            let (_, body) = split_flags(include_str!(concat!("lua/", $file)));
            QueueScript::with_flags("#!lua flags=allow-oom", body)
        })
    };
}

/// Adds tasks (one or many per call) unless they are live or done.
pub(crate) static ENQUEUE: LazyLock<QueueScript> = script!("enqueue.lua");
/// `enqueue.lua` in its looking-up form, for a Redis at `maxmemory`: Redis lets it run there, and
/// it writes nothing: it answers the tasks already there and refuses the others.
pub(crate) static ENQUEUE_LOOKUP: LazyLock<QueueScript> = LazyLock::new(|| {
    let (_, body) = split_flags(include_str!("lua/enqueue.lua"));
    QueueScript::with_flags("#!lua flags=no-writes", body)
});
/// Leases due tasks to a worker.
pub(crate) static CLAIM: LazyLock<QueueScript> = script!("claim.lua");
/// Records the outcomes of calls: done, processing (reschedule) or failed (retry or bury).
pub(crate) static FINISH: LazyLock<QueueScript> = script!("finish.lua");
/// `finish.lua` in its draining form, for a Redis at `maxmemory`: Redis lets it run there, and it
/// writes no text larger than what it replaces (see the script's header).
pub(crate) static FINISH_DRAINING: LazyLock<QueueScript> = draining!("finish.lua");
/// Hands a task back unrun.
pub(crate) static RELEASE: LazyLock<QueueScript> = script!("release.lua");
/// Renews held leases.
pub(crate) static EXTEND: LazyLock<QueueScript> = script!("extend.lua");
/// Takes back expired leases and prunes the dead set.
pub(crate) static REAP: LazyLock<QueueScript> = script!("reap.lua");
/// Brings a dead task back.
pub(crate) static RETRY: LazyLock<QueueScript> = script!("retry.lua");
/// Brings back the dead set, a batch per call.
pub(crate) static RETRY_ALL: LazyLock<QueueScript> = script!("retry_all.lua");
/// Cancels a task: out of every set, token revoked, record kept.
pub(crate) static CANCEL: LazyLock<QueueScript> = script!("cancel.lua");
/// Makes a waiting task due at once (a provider's webhook said its job moved), keeping the
/// webhook's body.
pub(crate) static HURRY: LazyLock<QueueScript> = script!("hurry.lua");
/// `hurry.lua` in its draining form, for a Redis at `maxmemory`: it keeps no body.
pub(crate) static HURRY_DRAINING: LazyLock<QueueScript> = draining!("hurry.lua");
/// One page of the tasks in one state.
pub(crate) static LIST: LazyLock<QueueScript> = script!("list.lua");
/// Counts per state, oldest due task and counters, in one round trip.
pub(crate) static STATS: LazyLock<QueueScript> = script!("stats.lua");
/// What the Redis holding the queue says about itself (memory, policy, AOF) and the queue's size.
pub(crate) static SERVER: LazyLock<QueueScript> = script!("server.lua");
/// Deletes finished records, a batch per call.
pub(crate) static PURGE: LazyLock<QueueScript> = script!("purge.lua");
/// Grants permits of a shared limit, or says how long to wait.
pub(crate) static ACQUIRE: LazyLock<QueueScript> = script!("acquire.lua");
/// Gives back permits of a shared limit: calls ended, or never made.
pub(crate) static GIVE_BACK: LazyLock<QueueScript> = script!("give_back.lua");
/// Pauses a shared limit until the API's Retry-After.
pub(crate) static PAUSE: LazyLock<QueueScript> = script!("pause.lua");

/// Whether a failed call is worth one more try: the connection dropped (and the manager has
/// reconnected), but Redis neither refused it nor hung.
fn worth_once_more(err: &redis::RedisError) -> bool {
    err.is_connection_dropped() && !err.is_connection_refusal() && !err.is_timeout()
}

/// Runs a Redis call once more if the connection had dropped (a killed client connection, a
/// Redis restart): every script is safe to repeat, and the connection manager has reconnected by
/// then. Refusals and timeouts are not repeated: Redis is down or hung, and a second try would
/// only double the caller's wait.
pub(crate) async fn once_more_if_dropped<T, F>(call: impl Fn() -> F) -> redis::RedisResult<T>
where
    F: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(err) if worth_once_more(&err) => {
            tracing::debug!(error = %err, "connection dropped; calling once more");
            call().await
        }
        result => result,
    }
}

/// Runs a script through [`once_more_if_dropped`]: [`RunScript::run`] for a state change (it
/// waits for replicas when the connection asks for it), [`RunScript::read`] for a script that
/// only reads.
pub(crate) trait RunScript {
    async fn run<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T>;
    async fn read<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T>;
}

impl RunScript for redis::ScriptInvocation<'_> {
    async fn run<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T> {
        let Some(wait) = conn.wait_for_replicas() else {
            return self.read(conn).await;
        };
        match run_replicated(self, conn, wait).await {
            Err(Error::Redis(err)) if worth_once_more(&err) => {
                tracing::debug!(error = %err, "connection dropped; calling once more");
                run_replicated(self, conn, wait).await
            }
            result => result,
        }
    }

    async fn read<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T> {
        Ok(once_more_if_dropped(|| {
            let mut conn = conn.clone();
            async move { self.invoke_async(&mut conn).await }
        })
        .await?)
    }
}

/// A duration in whole milliseconds, as the scripts take it.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script file but the prelude opens with its flags and says in its header why it is
    /// in its memory class (see [`split_flags`]).
    #[test]
    fn every_script_declares_its_memory_class() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
        let mut scripts = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|name| name == "prelude.lua") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let (flags, body) = split_flags(&text);
            assert!(
                ["#!lua", "#!lua flags=allow-oom", "#!lua flags=no-writes"].contains(&flags)
                    && text.starts_with(flags),
                "{}: flags line {flags:?}",
                path.display()
            );
            assert!(
                body.contains("\n-- Memory: "),
                "{}: no Memory line",
                path.display()
            );
            scripts += 1;
        }
        assert!(scripts >= 17, "only {scripts} scripts found");
    }
}
