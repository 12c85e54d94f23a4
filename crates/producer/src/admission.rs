//! Admission control: refuse new enqueues before Redis is full, so that what was accepted still
//! finishes.
//!
//! The refusal itself is the queue library's ([`taskq::Full`]): the enqueue script estimates
//! Redis' memory from its latest reading plus what every enqueue wrote since, and refuses a task
//! that would take it past the high-water mark of `maxmemory` (`REDIS_MEMORY_HIGH_WATER`), or
//! past `MAX_QUEUED` tasks; Redis itself refuses what adds data once it is at `maxmemory`. Kept in
//! the script, the check holds against a burst and across producers, and a task already there is
//! still answered. The consumers keep claiming and finishing in the headroom above the mark (and
//! at `maxmemory` too: what drains the queue runs there), and enqueues resume by themselves when
//! memory falls. This module counts the refusals and shows memory against the mark, from the
//! queue's [`Watch`], refreshed every `REDIS_CHECK_MS` in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use service_kit::prometheus::{Exposition, Kind};
use taskq::server::{ServerReport, Watch};
use taskq::{EnqueuePolicy, Full};

/// One queue's admission: its limits, its Redis' latest report, and the enqueues refused.
#[derive(Debug, Default)]
pub struct Admission {
    /// The share of `maxmemory` above which enqueues are refused (`None`: never).
    high_water: Option<f64>,
    /// The tasks a queue may hold before enqueues are refused (`None`: no limit).
    max_queued: Option<u64>,
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
    /// Admission of a queue enqueued with `policy`, before any report.
    pub fn new(policy: &EnqueuePolicy) -> Self {
        Self {
            high_water: policy.memory_high_water.filter(|share| *share < 1.0),
            max_queued: policy.max_queued,
            ..Self::default()
        }
    }

    /// The mark in bytes for `report`'s Redis; 0 when there is none (no `maxmemory`, or no
    /// mark).
    pub fn high_water_bytes(&self, report: &ServerReport) -> u64 {
        let Some(share) = self.high_water else {
            return 0;
        };
        // maxmemory is far below 2^52: the product is exact enough, and never negative.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let mark = (report.maxmemory as f64 * share.max(0.0)) as u64;
        mark
    }

    /// Counts an enqueue refused because the queue is full.
    pub fn count_refusal(&self, full: Full) {
        let counter = match full {
            Full::MaxQueued { .. } => &self.refused_max_queued,
            _ => &self.refused_memory,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Memory against the mark and the refusals, for `/stats`.
    pub fn view(&self) -> AdmissionView {
        let report = self.watch.latest();
        AdmissionView {
            used_memory_bytes: report.as_ref().map(|r| r.used_memory),
            maxmemory_bytes: report.as_ref().map(|r| r.maxmemory),
            high_water_bytes: report.as_ref().map(|r| self.high_water_bytes(r)),
            queued: report.as_ref().map(|r| r.queued),
            max_queued: self.max_queued.unwrap_or(0),
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
        "Enqueues this producer refused with 503: memory past the mark (or Redis at maxmemory), \
         or MAX_QUEUED reached.",
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
