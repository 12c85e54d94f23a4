//! S2: three queues on a three-master Redis Cluster against the same three on one Redis, with only
//! `REDIS_URL` differing. One consumer serves the three queues in both setups, so the client
//! side is the same and the ratio shows what the cluster itself costs or gains (the cluster
//! client's routing, three servers instead of one); the order alternates by run, so a drift of
//! the machine does not always favour the same side. On a two-core machine the three masters,
//! the consumer and the mock share the same two cores, so the cluster cannot show more throughput
//! than the cores give; what it shows is that Redis' work spreads over three processes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use testkit::{RedisCluster, RedisServer};

use super::fleet::{Consumers, mock_env};
use super::{Bench, Metric, fill, metric, queue_on};
use crate::probe::ScriptCosts;
use crate::workload::{S_CONCURRENCY, S2_QUEUES};

/// The two setups' names in the metrics, with what their busiest Redis process is called.
const SETUPS: [(&str, &str); 2] = [("single", "redis"), ("cluster", "master")];

/// One run of S2; fails unless the queues land on three masters.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let cluster = RedisCluster::try_start()?;
    check_spread(&cluster)?;
    let mut metrics = Vec::new();
    let mut tasks_per_s = [0.0; 2]; // single, cluster
    // Odd runs start on the single Redis, even ones on the cluster.
    let even = run.is_multiple_of(2);
    for on_cluster in [even, !even] {
        let (leg_tasks_per_s, leg_metrics) = leg(bench, &cluster, on_cluster, run).await?;
        tasks_per_s[usize::from(on_cluster)] = leg_tasks_per_s;
        metrics.extend(leg_metrics);
    }
    let [single, clustered] = tasks_per_s;
    metrics.push(metric("cluster_over_single", "×", clustered / single));
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
    let want = S2_QUEUES.len();
    if masters.len() != want {
        bail!("the queues do not land on {want} different masters ({placement})");
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
    let (setup, busiest) = SETUPS[usize::from(on_cluster)];
    let label = format!("s2-r{run}-{setup}");
    let (url, servers): (String, Vec<&RedisServer>) = if on_cluster {
        (cluster.url(), cluster.nodes().iter().collect())
    } else {
        (bench.redis.url(), vec![bench.redis])
    };
    for server in &servers {
        server.try_flush_all().await?;
    }
    let mut queues = Vec::new();
    for name in S2_QUEUES {
        let queue = queue_on(&url, name)?;
        fill(&queue, &format!("{label}-{name}"), 0..per_queue).await?;
        queues.push(queue);
    }
    if on_cluster {
        let mut keys = Vec::new();
        for server in &servers {
            let mut conn = server.try_async_connection().await?;
            keys.push(redis::cmd("DBSIZE").query_async::<u64>(&mut conn).await?);
        }
        if keys.iter().any(|k| *k < per_queue) {
            bail!("keys per master {keys:?}: the queues are not spread over the three masters");
        }
    }
    let consumers = Consumers {
        label: label.clone(),
        count: 1,
        servers,
        env: vec![("QUEUES", S2_QUEUES.join(","))],
        concurrency: S_CONCURRENCY,
        queues_file: None,
        mock: mock_env(0, 1, &[]),
        https: false,
        queues,
        each: per_queue,
        calls_per_task: 1,
        within: Duration::from_secs(180),
    };
    let drained = bench.drain_by_consumers(&consumers).await.context(setup)?;

    let (spent, secs) = (&drained.spent, drained.elapsed.as_secs_f64());
    let busiest_cpu_s = spent.redis_each.iter().map(|u| u.cpu_s).fold(0.0, f64::max);
    let per_task = |x: f64| x / total as f64;
    let tasks_per_s = total as f64 / secs;
    let redis_us = per_task(spent.redis.cpu_s * 1e6);
    let trips = per_task(spent.redis.round_trips() as f64);
    let consumer_us = per_task(drained.consumer_cpu_s * 1e6);
    let name = |what: &str| format!("{setup}_{what}");
    let busiest_name = name(&format!("busiest_{busiest}_cpu_share"));
    Ok((
        tasks_per_s,
        vec![
            metric(name("tasks_per_s"), "tasks/s", tasks_per_s),
            metric(name("redis_cpu_us_per_task"), "µs", redis_us),
            metric(name("round_trips_per_task"), "round trips", trips),
            metric(name("consumer_cpu_us_per_task"), "µs", consumer_us),
            metric(busiest_name, "cores", busiest_cpu_s / secs),
        ],
    ))
}
