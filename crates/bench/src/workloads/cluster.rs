//! S2: three queues on a three-master Redis Cluster against the same three queues on one Redis.
//!
//! Each run starts a fresh cluster ([`RedisCluster`]) and checks that the three queues' hash tags
//! (`{taskq:q-a}`, ...) land on three different masters, then drains, once on the benchmark's
//! single `redis-server` and once on the cluster (the order alternates by run, so a drift of the
//! machine does not always favour the same side): `n` tasks per queue pre-enqueued with
//! `enqueue_many`, one release `consumer` serving all three queues (`QUEUES=q-a,q-b,q-c`,
//! `CONCURRENCY=50` each) against the release `mock-api` answering "done" at once. Only
//! `REDIS_URL` differs between the two: one URL, or the three masters' URLs.
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
use crate::probe::{Snapshot, Usage};
use crate::redis_admin;
use crate::workload::{S_CONCURRENCY, S2_QUEUES};

/// Where the queues live in one leg, with its metric names.
#[derive(Clone, Copy)]
enum Setup {
    Single,
    Cluster,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Cluster => "cluster",
        }
    }

    /// Names of: tasks/s, Redis CPU per task, Redis round trips per task, consumer CPU per task,
    /// busiest Redis process' share of a core.
    fn names(self) -> [&'static str; 5] {
        match self {
            Self::Single => [
                "single_tasks_per_s",
                "single_redis_cpu_us_per_task",
                "single_round_trips_per_task",
                "single_consumer_cpu_us_per_task",
                "single_busiest_redis_cpu_share",
            ],
            Self::Cluster => [
                "cluster_tasks_per_s",
                "cluster_redis_cpu_us_per_task",
                "cluster_round_trips_per_task",
                "cluster_consumer_cpu_us_per_task",
                "cluster_busiest_master_cpu_share",
            ],
        }
    }
}

/// One run of S2.
///
/// # Errors
/// When a process or Redis fails, the queues do not land on three masters, or the API was not
/// called once per task.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let cluster = RedisCluster::try_start()?;
    check_spread(&cluster)?;
    let order = if run % 2 == 1 {
        [Setup::Single, Setup::Cluster]
    } else {
        [Setup::Cluster, Setup::Single]
    };
    let mut metrics = Vec::new();
    let (mut single, mut clustered) = (0.0, 0.0);
    for setup in order {
        let (tasks_per_s, m) = leg(bench, &cluster, setup, run).await?;
        match setup {
            Setup::Single => single = tasks_per_s,
            Setup::Cluster => clustered = tasks_per_s,
        }
        metrics.extend(m);
    }
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
    if masters.len() != S2_QUEUES.len() {
        bail!(
            "the queues do not land on {} different masters ({})",
            S2_QUEUES.len(),
            placement.join("; ")
        );
    }
    tracing::info!(placement = placement.join("; "), "S2 queues on the cluster");
    Ok(())
}

/// Drains the three queues once on `setup`; answers tasks/s and the leg's metrics.
async fn leg(
    bench: &Bench<'_>,
    cluster: &RedisCluster,
    setup: Setup,
    run: u32,
) -> Result<(f64, Vec<Metric>)> {
    let per_queue = bench.settings.s2_tasks_per_queue;
    let total = per_queue * S2_QUEUES.len() as u64;
    let label = format!("s2-r{run}-{}", setup.label());
    let (url, servers): (String, Vec<&RedisServer>) = match setup {
        Setup::Single => {
            redis_admin::flush(bench.redis).await?;
            (bench.redis.url(), vec![bench.redis])
        }
        Setup::Cluster => {
            for node in cluster.nodes() {
                redis_admin::flush(node).await?;
            }
            (cluster.url(), cluster.nodes().iter().collect())
        }
    };
    let mut queues = Vec::new();
    for name in S2_QUEUES {
        let queue = queue_on(&url, name)?;
        fill(&queue, &format!("{label}-{name}"), 0..per_queue).await?;
        queues.push(queue);
    }
    let mut conns = Vec::new();
    for server in &servers {
        conns.push(redis_admin::connect(server).await?);
    }
    if let Setup::Cluster = setup {
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
        before.push(Snapshot::take(conn).await?);
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
        usages.push(before.until(&Snapshot::take(conn).await?));
    }
    let usage = Usage::sum(&usages);
    write_profile(bench, &label, &usage, total)?;
    let (elapsed, consumer_cpu) = (drained.elapsed, drained.consumer_cpu_s);
    drained.finish(total).await.context(setup.label())?;

    let secs = elapsed.as_secs_f64();
    let busiest = usages.iter().map(|u| u.cpu_s).fold(0.0, f64::max) / secs;
    let per_task = |x: f64| x / total as f64;
    let tasks_per_s = total as f64 / secs;
    let [tps, cpu, trips, consumer_cpu_name, busiest_name] = setup.names();
    Ok((
        tasks_per_s,
        vec![
            metric(tps, "tasks/s", tasks_per_s),
            metric(cpu, "µs", per_task(usage.cpu_s * 1e6)),
            metric(trips, "round trips", per_task(usage.round_trips() as f64)),
            metric(consumer_cpu_name, "µs", per_task(consumer_cpu * 1e6)),
            metric(busiest_name, "cores", busiest),
        ],
    ))
}
