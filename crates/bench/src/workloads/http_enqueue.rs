//! W1: HTTP enqueue through the release `producer` under `wrk`, as the anchors do; wrk's Lua
//! `done()` hook prints its figures as JSON, so nothing is scraped from its human summary. The
//! CPU is split three ways, Redis, the producer and the rest (mostly wrk): on two cores the load
//! generator competes with what it measures, and the split says how much.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use testkit::{Window, try_get_ok_json};
use tokio::process::Command;

use super::{Bench, Metric, metric, mib};
use crate::command::output_of;

/// The request generator: unique names, a `BENCHJSON` line at the end.
const SCRIPT: &str = include_str!("../../wrk/unique.lua");
const QUEUE: &str = "bench-w1";

/// What `wrk/unique.lua` prints.
#[derive(Debug, Deserialize)]
struct WrkResult {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    non_2xx: u64,
}

/// One run of W1; fails when wrk is missing or the producer did not enqueue what it answered.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    bench.redis.try_flush_all().await?;
    let script = bench.write_raw("unique.lua", SCRIPT)?;
    let (mut producer, addr) = bench.producer(QUEUE, &format!("w1-r{run}-producer"))?;
    let url = format!("http://{addr}/");
    let health = try_get_ok_json(&bench.http, &format!("{url}healthz")).await?;
    if health["status"] != "ok" {
        bail!("producer /healthz answered {health}");
    }
    wrk(&script, &url, 2, &format!("warm{run}")).await?;
    bench.redis.try_flush_all().await?;
    let window = Window::open(&[bench.redis], Some(producer.pid())).await?;
    let secs = bench.settings.wrk_duration_s;
    let result = wrk(&script, &url, secs, &format!("r{run}")).await?;
    let spent = window.close().await?;
    let rss = producer.peak_rss_kib().context("no producer peak RSS")?;
    let totals = bench.queue(QUEUE)?.stats().await?.totals;
    let enqueued = totals.get("enqueued").copied().unwrap_or(0);
    producer.try_stop()?;
    // wrk counts answers received; requests cut off at its end may still have been enqueued.
    let answers = result.requests;
    if enqueued < answers {
        bail!("wrk got {answers} answers but only {enqueued} tasks were enqueued");
    }
    let per_req = |cpu_s: f64| cpu_s * 1e6 / result.requests.max(1) as f64;
    let (redis_cpu_s, producer_cpu_s) = (spent.redis.cpu_s, spent.process_cpu_s);
    let (redis_share, producer_share) = (spent.share(redis_cpu_s), spent.share(producer_cpu_s));
    let errors = (result.errors + result.non_2xx) as f64;
    let rest = spent.machine_busy_cores - redis_share - producer_share;
    Ok(vec![
        metric("req_per_s", "req/s", result.rps),
        metric("p50_ms", "ms", result.p50_ms),
        metric("p99_ms", "ms", result.p99_ms),
        metric("errors", "requests", errors),
        metric("producer_peak_rss_mib", "MiB", mib(rss)),
        metric("redis_cpu_us_per_req", "µs", per_req(redis_cpu_s)),
        metric("redis_cpu_share", "cores", redis_share),
        metric("producer_cpu_us_per_req", "µs", per_req(producer_cpu_s)),
        metric("producer_cpu_share", "cores", producer_share),
        metric("machine_busy_cores", "cores", spent.machine_busy_cores),
        metric("wrk_and_rest_cores", "cores", rest),
    ])
}

async fn wrk(script: &std::path::Path, url: &str, secs: u64, prefix: &str) -> Result<WrkResult> {
    let stdout = output_of(
        Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{secs}s"), "-s"])
            .arg(script)
            .args([url, "--", prefix])
            .stderr(Stdio::piped()),
        Duration::from_secs(secs + 30),
        "Debian's package `wrk`; scripts/bench installs it",
    )
    .await?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCHJSON "))
        .with_context(|| format!("no BENCHJSON line in wrk's output:\n{stdout}"))?;
    Ok(serde_json::from_str(line)?)
}
