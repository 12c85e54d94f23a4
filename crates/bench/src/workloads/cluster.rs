//! S2: three queues on a three-master Redis Cluster against the same three queues on one Redis.
//!
//! Each run starts a fresh cluster ([`RedisCluster`]) and checks that the three queues' hash tags
//! (`{taskq:q-a}`, ...) land on three different masters, then drains, once on the benchmark's
//! single `redis-server` and once on the cluster (the order alternates by run, so a drift of the
//! machine does not always favour the same side). Only `REDIS_URL` differs between the two: one
//! URL, or the three masters' URLs.
//!
//! One consumer for the three queues keeps the client side identical in both setups, so the ratio
//! shows what the cluster itself costs or gains (the cluster client's routing, three servers
//! instead of one). On a two-core machine the three masters, the consumer and the mock share the
//! same two cores, so the cluster cannot show more throughput than the cores give; what it shows
//! is that Redis' work spreads over three processes (the busiest master's share of a core).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use testkit::{RedisCluster, RedisServer};

use super::{Bench, Consumers, Metric, fill, metric, queue_on, write_profile};
use crate::probe::Usage;
use crate::redis_admin;
use crate::workload::{S_CONCURRENCY, S2_QUEUES};

/// One run of S2.
///
/// # Errors
/// When a process or Redis fails, the queues do not land on three masters, or the API was not
/// called once per task.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let cluster = RedisCluster::try_start()?;
    check_spread(&cluster)?;
    let order = if run % 2 == 1 {
        [false, true]
    } else {
        [true, false]
    };
    let mut metrics = Vec::new();
    let mut tasks_per_s = [0.0; 2]; // single, cluster
    for on_cluster in order {
        let (leg_tasks_per_s, leg_metrics) = leg(bench, &cluster, on_cluster, run).await?;
        tasks_per_s[usize::from(on_cluster)] = leg_tasks_per_s;
        metrics.extend(leg_metrics);
    }
    metrics.push(metric(
        "cluster_over_single",
        "×",
        tasks_per_s[1] / tasks_per_s[0],
    ));
    Ok(metrics)
}

/// Fails unless each queue's keys are served by a different master.
fn check_spread(cluster: &RedisCluster) -> Result<()> {
    let mut masters = Vec::new();
    let mut placement = Vec::new();
    for name in S2_QUEUES {
        let due = queue_on(&cluster.url(), name)?.keys().due_key().to_owned();
        let master = cluster.try_node_for(&due)?.port();
        placement.push(format!("{name}: master on port {master}"));
        masters.push(master);
    }
    masters.sort_unstable();
    masters.dedup();
    let placement = placement.join("; ");
    if masters.len() != S2_QUEUES.len() {
        bail!(
            "the queues do not land on {} different masters ({placement})",
            S2_QUEUES.len()
        );
    }
    tracing::info!(placement, "S2 queues on the cluster");
    Ok(())
}

/// Drains the three queues once on the cluster or on the single Redis; answers tasks/s and the
/// leg's metrics, named `single_...` or `cluster_...`.
async fn leg(
    bench: &Bench<'_>,
    cluster: &RedisCluster,
    on_cluster: bool,
    run: u32,
) -> Result<(f64, Vec<Metric>)> {
    let per_queue = bench.settings.s2_tasks_per_queue;
    let total = per_queue * S2_QUEUES.len() as u64;
    let (setup, busiest) = if on_cluster {
        ("cluster", "master")
    } else {
        ("single", "redis")
    };
    let label = format!("s2-r{run}-{setup}");
    let (url, servers): (String, Vec<&RedisServer>) = if on_cluster {
        (cluster.url(), cluster.nodes().iter().collect())
    } else {
        (bench.redis.url(), vec![bench.redis])
    };
    let mut conns = Vec::new();
    for server in &servers {
        redis_admin::flush(server).await?;
        conns.push(redis_admin::connect(server).await?);
    }
    let mut queues = Vec::new();
    for name in S2_QUEUES {
        let queue = queue_on(&url, name)?;
        fill(&queue, &format!("{label}-{name}"), 0..per_queue).await?;
        queues.push(queue);
    }
    if on_cluster {
        let mut keys = Vec::new();
        for conn in &mut conns {
            keys.push(redis::cmd("DBSIZE").query_async::<u64>(conn).await?);
        }
        if keys.iter().any(|k| *k < per_queue) {
            bail!("keys per master {keys:?}: the queues are not spread over the three masters");
        }
    }

    let mock = bench.mock_api(0, 1, false, &format!("{label}-mock-api"))?;
    let mut before = Vec::new();
    for conn in &mut conns {
        before.push(Usage::take(conn).await?);
    }
    let consumers = Consumers {
        count: 1,
        redis_url: &url,
        settings: vec![
            ("QUEUES", S2_QUEUES.join(",")),
            ("CONCURRENCY", S_CONCURRENCY.to_string()),
            ("POLL_INTERVAL_MS", "100".to_owned()),
        ],
        label: label.clone(),
        queues: &queues,
        each: per_queue,
        within: Duration::from_secs(180),
    };
    let drained = bench.drain_by_consumers(&consumers, mock).await?;
    let mut usages = Vec::new();
    for (conn, before) in conns.iter_mut().zip(&before) {
        usages.push(before.until(&Usage::take(conn).await?));
    }
    let usage = Usage::sum(&usages);
    write_profile(bench, &label, &usage, total)?;
    let (secs, consumer_cpu_s) = (drained.elapsed.as_secs_f64(), drained.consumer_cpu_s);
    drained.finish(total).await.context(setup)?;

    let busiest_share = usages.iter().map(|u| u.cpu_s).fold(0.0, f64::max) / secs;
    let per_task = |x: f64| x / total as f64;
    let tasks_per_s = total as f64 / secs;
    let trips = per_task(usage.round_trips() as f64);
    Ok((
        tasks_per_s,
        vec![
            metric(format!("{setup}_tasks_per_s"), "tasks/s", tasks_per_s),
            metric(
                format!("{setup}_redis_cpu_us_per_task"),
                "µs",
                per_task(usage.cpu_s * 1e6),
            ),
            metric(
                format!("{setup}_round_trips_per_task"),
                "round trips",
                trips,
            ),
            metric(
                format!("{setup}_consumer_cpu_us_per_task"),
                "µs",
                per_task(consumer_cpu_s * 1e6),
            ),
            metric(
                format!("{setup}_busiest_{busiest}_cpu_share"),
                "cores",
                busiest_share,
            ),
        ],
    ))
}
