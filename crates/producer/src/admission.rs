//! Admission control: refuse new enqueues before Redis is full, so that what was accepted still
//! finishes.
//!
//! A Redis at `maxmemory` (with `noeviction`, the only safe policy) refuses every script that
//! writes: the consumers' claims and completions too, so nothing drains. So the producer refuses
//! enqueues (503 with `Retry-After`) once memory passes a high-water mark of `maxmemory`
//! (`REDIS_MEMORY_HIGH_WATER`), and optionally once a queue holds `MAX_QUEUED` tasks; the
//! consumers keep claiming and finishing in the headroom above the mark, and enqueues resume by
//! themselves when memory falls. The figures come from the queue's [`Watch`], refreshed every
//! `REDIS_CHECK_MS` in the background: a request never waits on them, and the limits may be
//! passed by the enqueues of one interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use service::prometheus::{Exposition, Kind};
use taskq::server::{ServerReport, Watch};

/// The limits, the same for every queue of a producer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The share of `maxmemory` above which enqueues are refused (1 or more: never).
    pub high_water: f64,
    /// The tasks a queue may hold (due and leased) before enqueues are refused; 0: no limit.
    pub max_queued: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            high_water: 0.85,
            max_queued: 0,
        }
    }
}

/// Why an enqueue was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Redis' memory is above the high-water mark.
    #[error(
        "the queue is full: Redis uses {used} bytes, above the high-water mark of {mark} bytes; \
         try again later"
    )]
    Memory {
        /// Bytes in use.
        used: u64,
        /// The mark.
        mark: u64,
    },
    /// The queue holds `MAX_QUEUED` tasks.
    #[error(
        "the queue is full: it holds {queued} tasks, at most {max} are allowed; try again later"
    )]
    MaxQueued {
        /// Tasks held.
        queued: u64,
        /// The limit.
        max: u64,
    },
}

/// One queue's admission: its limits, its Redis' latest report, and the enqueues refused.
#[derive(Debug, Default)]
pub struct Admission {
    limits: Limits,
    /// The queue's Redis, watched in the background.
    pub watch: Arc<Watch>,
    refused_memory: AtomicU64,
    refused_max_queued: AtomicU64,
}

/// Memory against the mark and the enqueues refused, for `/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdmissionView {
    /// Bytes Redis uses; `null` before its first report.
    pub used_memory_bytes: Option<u64>,
    /// Redis' `maxmemory` (0: none).
    pub maxmemory_bytes: Option<u64>,
    /// Above this, enqueues are refused (0: no mark, Redis has no `maxmemory`).
    pub high_water_bytes: Option<u64>,
    /// Tasks the queue holds (due and leased), as of the last report.
    pub queued: Option<u64>,
    /// `MAX_QUEUED` (0: no limit).
    pub max_queued: u64,
    /// Enqueues refused for memory since the producer started.
    pub refused_memory: u64,
    /// Enqueues refused for `MAX_QUEUED` since the producer started.
    pub refused_max_queued: u64,
}

impl Admission {
    /// Admission with `limits`, before any report.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The mark in bytes for `report`'s Redis; 0 when there is none (no `maxmemory`, or a mark of
    /// 1 or more).
    pub fn high_water_bytes(&self, report: &ServerReport) -> u64 {
        if report.maxmemory == 0 || self.limits.high_water >= 1.0 {
            return 0;
        }
        // maxmemory is far below 2^52: the product is exact enough, and never negative.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let mark = (report.maxmemory as f64 * self.limits.high_water.max(0.0)) as u64;
        mark
    }

    /// Whether an enqueue may go ahead now; a refusal is counted.
    ///
    /// # Errors
    /// [`Refused`] above the memory mark or at `MAX_QUEUED`.
    pub fn check(&self) -> Result<(), Refused> {
        let Some(report) = self.watch.latest() else {
            // No report yet (the producer just started, or Redis never answered): the enqueue
            // itself will tell.
            return Ok(());
        };
        let mark = self.high_water_bytes(&report);
        if mark > 0 && report.used_memory >= mark {
            self.refused_memory.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Memory {
                used: report.used_memory,
                mark,
            });
        }
        let max = self.limits.max_queued;
        if max > 0 && report.queued >= max {
            self.refused_max_queued.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::MaxQueued {
                queued: report.queued,
                max,
            });
        }
        Ok(())
    }

    /// Memory against the mark and the refusals, for `/stats`.
    pub fn view(&self) -> AdmissionView {
        let report = self.watch.latest();
        AdmissionView {
            used_memory_bytes: report.as_ref().map(|r| r.used_memory),
            maxmemory_bytes: report.as_ref().map(|r| r.maxmemory),
            high_water_bytes: report.as_ref().map(|r| self.high_water_bytes(r)),
            queued: report.as_ref().map(|r| r.queued),
            max_queued: self.limits.max_queued,
            refused_memory: self.refused_memory.load(Ordering::Relaxed),
            refused_max_queued: self.refused_max_queued.load(Ordering::Relaxed),
        }
    }
}

/// Writes each queue's mark and refusals: `taskq_redis_memory_high_water_bytes` (when its Redis
/// has reported) and `taskq_enqueue_refused_total` by reason.
pub fn write_metrics(page: &mut Exposition, queues: &[(&str, &Admission)]) {
    page.family(
        "taskq_redis_memory_high_water_bytes",
        Kind::Gauge,
        "Memory above which the producer refuses enqueues (REDIS_MEMORY_HIGH_WATER x maxmemory); \
         0 when there is no mark.",
    );
    for (queue, admission) in queues {
        if let Some(report) = admission.watch.latest() {
            page.sample(
                "taskq_redis_memory_high_water_bytes",
                &[("queue", queue)],
                admission.high_water_bytes(&report),
            );
        }
    }
    page.family(
        "taskq_enqueue_refused_total",
        Kind::Counter,
        "Enqueues this producer refused with 503: memory above the mark, or MAX_QUEUED reached.",
    );
    for (queue, admission) in queues {
        for (reason, count) in [
            ("memory", &admission.refused_memory),
            ("max_queued", &admission.refused_max_queued),
        ] {
            page.sample(
                "taskq_enqueue_refused_total",
                &[("queue", queue), ("reason", reason)],
                count.load(Ordering::Relaxed),
            );
        }
    }
}
