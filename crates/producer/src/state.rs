//! What every handler may use: the queues served, the tokens, and the timings answers carry.
//! It sits below the routes: what it holds lives in modules of its own ([`crate::served`],
//! [`crate::tokens`], ...), so that no handler module is needed to describe it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::hook_counts::HookCounts;
use crate::served::Queues;
use crate::tokens::Tokens;
use crate::waiters::Waiters;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The queues served; a request picks one with `?queue=` (see [`crate::served`]).
    pub queues: Queues,
    /// The tokens that guard the routes (see [`crate::tokens`]).
    pub tokens: Tokens,
    /// The `Retry-After` of 202 answers: when polling again may find news (the consumer's poll
    /// interval); also of 503s for a full queue.
    pub retry_after: Duration,
    /// The longest a long-poll holds a request (`LONG_POLL_MAX_MS`); longer waits are cut to it.
    pub long_poll_max: Duration,
    /// How often each queue's Redis is read for memory, policy and persistence.
    pub redis_check: Duration,
    /// The requests waiting on tasks (long-polls, event streams), woken by the queues' events.
    pub waiters: Arc<Waiters>,
    /// The secret of the hook URLs providers call (`HOOK_SECRET`); none: no hooks served.
    pub hook_secret: Option<webhooks::HookSecret>,
    /// The largest webhook body read (`HOOK_MAX_BODY_BYTES`).
    pub hook_max_body_bytes: usize,
    /// Provider webhooks received, by outcome.
    pub hooks: Arc<HookCounts>,
    /// Whether a `callback_url` may name a loopback, private or link-local address
    /// (`CALLBACK_ALLOW_PRIVATE`).
    pub callback_allow_private: bool,
    /// The client connections, held to their limits (timeouts, the cap), for the server and
    /// `/metrics`.
    pub connections: Arc<service_kit::Connections>,
}

impl AppState {
    /// A state for `queues` with no tokens and a 2 s `Retry-After`.
    pub fn new(queues: Queues) -> Self {
        Self {
            queues,
            tokens: Tokens::default(),
            retry_after: Duration::from_secs(2),
            long_poll_max: crate::query::MAX_WAIT,
            redis_check: Duration::from_millis(250),
            waiters: Arc::default(),
            hook_secret: None,
            hook_max_body_bytes: crate::routes::hooks::DEFAULT_MAX_BODY_BYTES,
            hooks: Arc::default(),
            callback_allow_private: false,
            connections: Arc::new(service_kit::Connections::new(service_kit::Limits::default())),
        }
    }
}

/// The queues, for the extractor that picks one per request ([`crate::served::Target`]).
impl FromRef<AppState> for Queues {
    fn from_ref(state: &AppState) -> Self {
        state.queues.clone()
    }
}
