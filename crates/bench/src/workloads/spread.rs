//! Tasks falling due at pseudo-random moments over a spread of time, as requests from many
//! independent clients would (W6, W7). The moments are fixed per run ([`mix`] of the run and the
//! task), so a rerun repeats them.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use taskq::{NewTask, Queue, RunAt, TaskName};

/// Enqueues `names` in one go, the i-th due `lead_ms` plus a pseudo-random share of
/// `spread_ms` later ([`mix`] of `seed` and i); answers each task's due time (`run_at_ms`,
/// Redis time).
pub async fn schedule_spread(
    queue: &Queue,
    names: &[TaskName],
    seed: u32,
    lead_ms: u64,
    spread_ms: u64,
) -> Result<Vec<u64>> {
    let tasks: Vec<NewTask> = names
        .iter()
        .zip(0_u64..)
        .map(|(name, i)| NewTask {
            name: name.clone(),
            payload: None,
            run_at: RunAt::After(Duration::from_millis(
                lead_ms + mix(seed.into(), i) % spread_ms,
            )),
            callback_url: None,
        })
        .collect();
    let enqueued = queue.submit_many(&tasks).await?;
    enqueued
        .into_iter()
        .map(|enqueued| {
            let enqueued = enqueued?;
            let task = &enqueued.view.task;
            if !enqueued.created {
                bail!("{task} was already queued");
            }
            enqueued
                .view
                .run_at_ms
                .with_context(|| format!("{task} has no run_at_ms"))
        })
        .collect()
}

/// A pseudo-random number made of `seed` and `i` (SplitMix64's mixing): the same pair gives the
/// same number, and consecutive `i` give numbers spread evenly over the u64s.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = ((seed << 32) ^ i)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_numbers_repeat_per_seed_and_spread_evenly() {
        assert_eq!(mix(3, 7), mix(3, 7));
        assert_ne!(mix(3, 7), mix(4, 7));
        let mut buckets = [0_u32; 10];
        for i in 0..10_000 {
            buckets[usize::try_from(mix(1, i) % 10).expect("a digit")] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (900..1100).contains(&n)),
            "{buckets:?}"
        );
    }
}
