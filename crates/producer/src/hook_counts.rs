//! The provider webhooks a producer received, by what came of them (`taskq_hooks_total`):
//! counted by the hook route ([`crate::routes::hooks`]), shown by `/metrics`, held in the
//! handlers' state.

use std::sync::atomic::{AtomicU64, Ordering};

use service_kit::prometheus::{Exposition, Kind};

/// Webhooks received, by what came of them.
#[derive(Debug, Default)]
pub struct HookCounts {
    /// Made a task due at once.
    pub(crate) hurried: AtomicU64,
    /// For a task already finished: nothing done.
    pub(crate) finished: AtomicU64,
    /// For no such task.
    pub(crate) unknown: AtomicU64,
    /// For another run of the task than the URL's (that run ended and was purged or retried).
    pub(crate) replaced: AtomicU64,
    /// A missing or wrong `sig`.
    pub(crate) refused: AtomicU64,
}

impl HookCounts {
    /// Writes `taskq_hooks_total` to `/metrics`.
    pub fn write_metrics(&self, page: &mut Exposition) {
        page.family(
            "taskq_hooks_total",
            Kind::Counter,
            "Provider webhooks received: hurried (the task made due at once), finished (nothing \
             to do), unknown (no such task), replaced (for an earlier run of the name: nothing \
             done), refused (a missing or wrong sig).",
        );
        for (outcome, count) in [
            ("hurried", &self.hurried),
            ("finished", &self.finished),
            ("unknown", &self.unknown),
            ("replaced", &self.replaced),
            ("refused", &self.refused),
        ] {
            page.sample(
                "taskq_hooks_total",
                &[("outcome", outcome)],
                count.load(Ordering::Relaxed),
            );
        }
    }
}
