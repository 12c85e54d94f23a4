//! Which workloads there are (issues 4's W* and 5's S*), what each measures with the sizes of a
//! run ([`Settings`]), and the constants they share. The runs themselves are in
//! [`crate::workloads`].

/// Consumer counts of S1.
pub const S1_CONSUMERS: [u64; 3] = [1, 2, 4];
/// S1: the mock API's delay (ms).
pub const S1_DELAY_MS: u64 = 200;
/// S1: the most tasks per second one consumer can finish, its calls in flight each taking the
/// API's delay (Little's law): 250.
pub const S1_BOUND_TASKS_PER_S: f64 = S_CONCURRENCY as f64 * 1000.0 / S1_DELAY_MS as f64;
/// Every consumer's `POLL_INTERVAL_MS`: how long a task answered "processing" waits to be polled
/// again.
pub const POLL_INTERVAL_MS: u64 = 100;
/// S1 and S2: each consumer's `CONCURRENCY` (per queue).
pub const S_CONCURRENCY: u64 = 50;
/// S2: the queues, in the order the consumer is given them. On the cluster each lands on its own
/// master (checked in every run: see [`crate::workloads::cluster`]).
pub const S2_QUEUES: [&str; 3] = ["q-a", "q-b", "q-c"];

/// W5: consumer processes sharing the API.
pub const W5_CONSUMERS: u64 = 4;
/// W5: each consumer's `CONCURRENCY` (800 slots in all, far beyond what the API admits).
pub const W5_CONCURRENCY: u64 = 200;
/// W5: the API's quota, calls per second (a sliding second), and the limit's rate.
pub const W5_RATE: u64 = 500;
/// W5: the API's cap on calls in flight, and the limit's cap and burst.
pub const W5_IN_FLIGHT: u64 = 50;
/// W5: the mock-api's delay per call (ms).
pub const W5_DELAY_MS: u64 = 50;

/// W6 and W7: the mock-api's delay per call (ms).
pub const NOTIFY_API_DELAY_MS: u64 = 20;
/// W6 and W7: the consumer's `CONCURRENCY`.
pub const NOTIFY_CONCURRENCY: u64 = 50;
/// W6: tasks, each followed by a client of its own.
pub const W6_TASKS: u64 = 1_000;
/// W6: the tasks fall due at random over this long (ms)...
pub const W6_SPREAD_MS: u64 = 10_000;
/// W6: ...after this lead (ms), in which every client starts waiting.
pub const W6_LEAD_MS: u64 = 2_000;
/// W6: the long-polls' `wait` (s).
pub const W6_WAIT_S: u64 = 60;
/// W6: the polling clients' interval (ms), the baseline.
pub const W6_POLL_EVERY_MS: u64 = 1_000;
/// W6: idle long-polls held at once.
pub const W6_IDLE: u64 = 10_000;
/// W7: tasks.
pub const W7_TASKS: u64 = 500;
/// W7: the tasks fall due (and are submitted to the API) at random over this long (ms).
pub const W7_SPREAD_MS: u64 = 3_000;
/// W7: how long a job runs at the API (`MOCK_JOB_MS`) before it calls its webhook.
pub const W7_JOB_MS: u64 = 500;
/// W7: the queue's `poll_interval_ms`: a task that needs it has missed its webhook.
pub const W7_POLL_INTERVAL_MS: u64 = 60_000;

/// Tasks per `enqueue_many` call wherever tasks are pre-enqueued (the chunk size).
pub const CHUNK: u64 = 1000;

/// The workloads, in the order they run; `--only` takes their ids in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// HTTP enqueue through the `producer` binary under `wrk`.
    W1,
    /// In-process enqueue through the library: one at a time (64 in flight), and in batches.
    W1b,
    /// Drain with the library worker and a no-op handler.
    W2,
    /// Drain through the whole stack: `consumer` against `mock-api`.
    W2h,
    /// Polling: every task answers processing twice, then done.
    W3d,
    /// W2h with the API over HTTPS.
    W2hTls,
    /// W3d with the API over HTTPS.
    W3dTls,
    /// W2 with a deep queue.
    W4,
    /// Scaling out: 1, 2 and 4 `consumer` processes on a slow API.
    S1,
    /// Three queues on a three-master Redis Cluster against the same three on one Redis.
    S2,
    /// A fleet of consumers sharing an API with a hard quota, with and without a shared limit.
    W5,
    /// Results pushed to clients: long-polls against polling, and idle long-polls' memory.
    W6,
    /// Provider webhooks: from the API's webhook to the task done.
    W7,
    /// A profile of three steps (submit, status, fetch of the result) through the whole stack.
    W8,
    /// W8 with every call signed with AWS Signature Version 4.
    W8Sigv4,
}

impl Workload {
    /// The id.
    pub fn id(self) -> &'static str {
        match self {
            Self::W1 => "W1",
            Self::W1b => "W1b",
            Self::W2 => "W2",
            Self::W2h => "W2h",
            Self::W3d => "W3d",
            Self::W2hTls => "W2h-tls",
            Self::W3dTls => "W3d-tls",
            Self::W4 => "W4",
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::W5 => "W5",
            Self::W6 => "W6",
            Self::W7 => "W7",
            Self::W8 => "W8",
            Self::W8Sigv4 => "W8-sigv4",
        }
    }

    /// The release binaries it starts.
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            Self::W1 => &["producer"],
            Self::W2h
            | Self::W3d
            | Self::W2hTls
            | Self::W3dTls
            | Self::S1
            | Self::S2
            | Self::W5 => &["consumer", "mock-api"],
            Self::W6 | Self::W7 | Self::W8 | Self::W8Sigv4 => &["producer", "consumer", "mock-api"],
            Self::W1b | Self::W2 | Self::W4 => &[],
        }
    }

    /// What it does, with the sizes actually used.
    pub fn describe(self, s: &Settings) -> String {
        let (clients, requests) = (crate::redis_limit::CLIENTS, crate::redis_limit::REQUESTS);
        let (n, secs, m, d) = (s.tasks(self), s.wrk_duration_s, s.w4_measure, s.w4_depth);
        let (c, b, calls) = (s.w2_concurrency, s.w2_batch_size, 3 * n);
        let (s1, s2) = (s.s1_tasks_per_consumer, s.s2_tasks_per_queue);
        let (queues, total) = (S2_QUEUES.join(","), s2 * S2_QUEUES.len() as u64);
        let plain = if self == Self::W2hTls { "W2h" } else { "W3d" };
        let (api_ms, conc) = (NOTIFY_API_DELAY_MS, NOTIFY_CONCURRENCY);
        let (w6, lead, last) = (W6_TASKS, W6_LEAD_MS, W6_LEAD_MS + W6_SPREAD_MS);
        let (w7, w7_calls, ceiling) = (W7_TASKS, 2 * W7_TASKS, NOTIFY_API_DELAY_MS + 20);
        match self {
            Self::W1 => format!(
                "HTTP enqueue: release producer, wrk -t2 -c64 -d{secs}s, unique task names, after \
                 a 2 s warm-up and FLUSHALL; producer peak RSS (VmHWM). Over the measured wrk run: \
                 Redis' and the producer's CPU per request (INFO cpu; /proc/<pid>/stat) and as \
                 shares of a core, machine_busy_cores (/proc/stat: cores busy on average, of all), \
                 and wrk_and_rest_cores = machine - Redis - producer (mostly wrk itself)"
            ),
            Self::W1b => format!(
                "library enqueue of {n} unique tasks: Queue::enqueue with 64 in flight (64 tokio \
                 tasks, one shared connection), and Queue::enqueue_many in sequential chunks of \
                 {CHUNK}; for each phase Redis' CPU per task and share of a core, this (bench) \
                 process' share, and machine_busy_cores. redis_limit_*: Redis' own limit for the \
                 same script, redis-benchmark -c {clients} -n {requests} -r 1e8 EVALSHA of the \
                 library's enqueue script (SHA checked) on the queue's real keys with new names, \
                 unpipelined (-P 1; Redis CPU per task and share, machine cores) and pipelined (-P \
                 16, as the multiplexed connection pipelines concurrent calls); \
                 enqueue_of_redis_limit = enqueue_tasks_per_s / redis_limit_enqueue_per_s, \
                 enqueue_of_pipelined_redis_limit the same over the pipelined figure"
            ),
            Self::W2 => format!(
                "drain {n} pre-enqueued tasks with the library Worker and a no-op handler, \
                 concurrency {c}, batch size {b}, in a child process; timed from worker start \
                 until the queue's done counter reached {n} (read every 5 ms); peak RSS of that \
                 child; Redis' CPU per task and share of a core, and machine_busy_cores, over the \
                 child's run"
            ),
            Self::W2h => format!(
                "drain {n} pre-enqueued tasks with the release consumer (CONCURRENCY=50, \
                 POLL_INTERVAL_MS=100) against the release mock-api (MOCK_DELAY_MS=0, \
                 MOCK_POLLS_UNTIL_DONE=1); timed from consumer spawn until done = {n}; API calls \
                 must be {n}; consumer CPU and Redis round trips and CPU per task; \
                 machine_busy_cores over the drain"
            ),
            Self::W3d => format!(
                "polling: {n} tasks, mock-api MOCK_DELAY_MS=20 MOCK_POLLS_UNTIL_DONE=3, consumer \
                 CONCURRENCY=100 POLL_INTERVAL_MS=100; wall time from consumer spawn until all \
                 done against the ideal max(3*20 + 2*100 ms, {calls}*20 ms/100); API calls must be \
                 {calls}; Redis round trips and CPU and consumer CPU per API call (poll); \
                 machine_busy_cores over the drain. Before it, a mock-api of its own is timed \
                 alone for 1 s with 100 calls in flight (reqwest, new names): api_mean_ms, \
                 api_p99_ms, and ideal_with_measured_api_s = the same ideal with that mean instead \
                 of 20 ms, x_ideal_measured_api = wall / it; consumer_seen_api_mean_ms is the mean \
                 call latency the consumer's own /metrics histogram recorded during the drain, and \
                 x_ideal_consumer_seen_api the wall time against the ideal with that mean"
            ),
            Self::W2hTls | Self::W3dTls => format!(
                "{plain} over HTTPS, in the same run: the mock-api serves TLS (rustls, HTTP/1.1 by \
                 ALPN) with a certificate for 127.0.0.1 signed by an authority made for the run \
                 (openssl, prime256v1), which the consumer trusts through API_CA_FILE; everything \
                 else, and every figure, as {plain} (for W3d-tls, consumer_peak_rss_mib is the \
                 consumer with 100 TLS connections)"
            ),
            Self::W4 => format!(
                "depth: W2 (same worker settings and metrics) timing the first {m} completions \
                 while {d} tasks are queued (enqueue_many, chunks of {CHUNK}; later runs top the \
                 queue back up to {d} untimed); the first run also reports the fill time and \
                 Redis' used_memory once {d} are queued"
            ),
            Self::S1 => format!(
                "scaling out: N = 1, 2, 4 release consumer processes (CONCURRENCY={S_CONCURRENCY} \
                 each, POLL_INTERVAL_MS=100) on one queue against one release mock-api \
                 (MOCK_DELAY_MS={S1_DELAY_MS}, MOCK_POLLS_UNTIL_DONE=1), so one consumer is bound \
                 by {S_CONCURRENCY}/{S1_DELAY_MS} ms = {S1_BOUND_TASKS_PER_S:.0} tasks/s; {s1} \
                 tasks per consumer pre-enqueued (enqueue_many), timed from the first consumer's \
                 spawn until all are done; API calls must equal the tasks. nK_over_n1 is N=K's \
                 tasks/s over N=1's in the same run (target >= 0.8*K), nK_efficiency that ratio \
                 over K; consumer_cpu_us_per_task is the consumers' CPU (all N) per task"
            ),
            Self::S2 => format!(
                "cluster against single Redis: 3 queues ({queues}), {s2} tasks each pre-enqueued \
                 (enqueue_many), drained by ONE release consumer serving all three \
                 (QUEUES={queues}, CONCURRENCY={S_CONCURRENCY} per queue, so 150 in flight) \
                 against the release mock-api (MOCK_DELAY_MS=0, MOCK_POLLS_UNTIL_DONE=1); once on \
                 one redis-server, once on a 3-master local cluster (testkit's: redis-server \
                 --cluster-enabled yes, slots split in three by CLUSTER ADDSLOTS, joined by \
                 CLUSTER MEET, no replicas; REDIS_URL = the 3 node URLs) where each queue's hash \
                 tag lands on its own master (checked); the order alternates by run; timed from \
                 consumer spawn until all {total} are done; Redis CPU summed over the masters; \
                 busiest_master_cpu_share is the most loaded master's share of a core"
            ),
            Self::W5 => format!(
                "fleet-wide limit: {n} tasks pre-enqueued, {W5_CONSUMERS} release consumers \
                 (CONCURRENCY={W5_CONCURRENCY} each) against one release mock-api \
                 (MOCK_DELAY_MS={W5_DELAY_MS}, MOCK_POLLS_UNTIL_DONE=1) admitting \
                 MOCK_RATE_LIMIT_PER_SEC={W5_RATE} calls in any second and MOCK_MAX_IN_FLIGHT=\
                 {W5_IN_FLIGHT}, 429 (Retry-After) beyond. limited_*: the consumers share the \
                 limit API_RATE_PER_SEC={W5_RATE}, API_RATE_BURST={W5_IN_FLIGHT}, \
                 API_MAX_IN_FLIGHT={W5_IN_FLIGHT}; unlimited_*: no limit (a 429 only backs its \
                 task off). Timed from the first consumer's spawn until all are done; calls \
                 (admitted, must be {n}) per second and against the quota, throttled_share = \
                 429s / all requests, the most calls in flight the API saw, Redis' and the \
                 consumers' CPU per admitted call"
            ),
            Self::W6 => format!(
                "results pushed to clients: release producer, consumer (CONCURRENCY={conc}, \
                 POLL_INTERVAL_MS={POLL_INTERVAL_MS}) and mock-api (MOCK_DELAY_MS={api_ms}, \
                 MOCK_POLLS_UNTIL_DONE=1); {w6} tasks enqueued at once (Queue::submit_many), each \
                 due at a pseudo-random moment {lead} to {last} ms later (a fixed sequence per \
                 run). long_poll_*: one client per task (reqwest, {w6} connections) holds GET \
                 /tasks/NAME?wait={W6_WAIT_S}, all {w6} waiting (the producer's \
                 taskq_waiting_requests) before the first task is due, asking again if answered \
                 before the task is final; late_* = the client's answer time (system clock) - the \
                 task's done_at_ms (Redis TIME, same machine; both whole ms), target p99 <= 10 \
                 ms; requests_per_task should be 1. poll_*: the same with everything fresh, each \
                 client reading GET /tasks/NAME every {W6_POLL_EVERY_MS} ms (first reads spread \
                 over the first interval) until final. idle_*: a fresh producer alone (no \
                 consumer) with {W6_IDLE} queued tasks holds {W6_IDLE} long-polls \
                 (?wait={W6_WAIT_S}, one raw HTTP/1.1 request per TCP connection) until its \
                 taskq_waiting_requests is {W6_IDLE}: its VmRSS before and then, and the KiB per \
                 waiting request"
            ),
            Self::W7 => format!(
                "provider webhooks: release producer (HOOK_SECRET), consumer (CONCURRENCY={conc}; \
                 QUEUES_FILE: a Replicate profile whose submit body has \"webhook\": \
                 \"{{{{webhook_url}}}}\", poll_interval_ms {W7_POLL_INTERVAL_MS}; PUBLIC_URL = the \
                 producer, HOOK_SECRET) and mock-api (MOCK_SHAPE=replicate, MOCK_WEBHOOKS=1, \
                 MOCK_JOB_MS={W7_JOB_MS}, MOCK_DELAY_MS={api_ms}); {w7} tasks enqueued at once, \
                 each due (then submitted) at a pseudo-random moment in the next {W7_SPREAD_MS} \
                 ms. hook_to_done_* = the task's done_at_ms - when the mock sent its job's webhook \
                 (GET /webhooks: the start of the POST that was answered; same clock), target p99 \
                 <= {ceiling} ms (the API's {api_ms} ms + 20); every task must be claimed exactly \
                 twice (the submit, one poll after the webhook) and the API called {w7_calls} \
                 times; slowest_task_ms = the longest from a task's due time to its done_at_ms \
                 (its job's {W7_JOB_MS} ms included), against the {W7_POLL_INTERVAL_MS} ms poll"
            ),
            Self::W8 => format!(
                "a profile of three steps: {n} pre-enqueued tasks drained by the release consumer \
                 (CONCURRENCY=50, QUEUES_FILE: fal.ai's queue steps, a submit, a status poll at \
                 status_url, a fetch of response_url, poll_interval_ms 100) against the release \
                 mock-api (MOCK_SHAPE=fal, MOCK_DELAY_MS=0, MOCK_POLLS_UNTIL_DONE=1); timed from \
                 consumer spawn until done = {n}; API calls must be {calls}; tasks and calls \
                 per second, consumer CPU per call and per task, consumer peak RSS"
            ),
            Self::W8Sigv4 => format!(
                "W8 with the profile's auth aws_sigv4 (every call signed: x-amz-date, payload \
                 hash, Authorization) and the mock verifying every signature \
                 (MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY); {n} tasks, {calls} calls; \
                 the difference of consumer_cpu_us_per_call with W8 is what signing costs"
            ),
        }
    }
}

/// Sizes and knobs of a benchmark run (the bench's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Task count of W1b, W2, W2h, W3d and W5 instead of theirs (20,000; W3d 2,000; W5 10,000),
    /// for quick runs.
    #[arg(long)]
    pub tasks: Option<u64>,
    /// W4: tasks queued.
    #[arg(long, default_value_t = 1_000_000)]
    pub w4_depth: u64,
    /// W4: completions timed.
    #[arg(long, default_value_t = 100_000)]
    pub w4_measure: u64,
    /// W1: seconds of each measured wrk run.
    #[arg(long, default_value_t = 10)]
    pub wrk_duration_s: u64,
    /// W2 and W4: worker concurrency.
    #[arg(long, default_value_t = 50)]
    pub w2_concurrency: usize,
    /// W2 and W4: worker batch size (tasks per claim at most).
    #[arg(long, default_value_t = 50)]
    pub w2_batch_size: usize,
    /// S1: tasks pre-enqueued per consumer process (each N runs about tasks/250 s).
    #[arg(long = "s1-tasks", value_name = "S1_TASKS", default_value_t = 2_000)]
    pub s1_tasks_per_consumer: u64,
    /// S2: tasks pre-enqueued per queue (three queues).
    #[arg(long = "s2-tasks", value_name = "S2_TASKS", default_value_t = 20_000)]
    pub s2_tasks_per_queue: u64,
    /// The redis-benchmark that measures Redis' own enqueue limit (W1b).
    #[arg(long, default_value = "redis-benchmark")]
    pub redis_benchmark: String,
}

impl Settings {
    /// The task count of workload `w`.
    pub fn tasks(&self, w: Workload) -> u64 {
        self.tasks.unwrap_or(match w {
            Workload::W3d | Workload::W3dTls => 2_000,
            Workload::W5 => 10_000,
            _ => 20_000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_parse_in_any_case() {
        use clap::ValueEnum;
        for &w in Workload::value_variants() {
            assert_eq!(Workload::from_str(w.id(), true), Ok(w));
        }
        assert_eq!(Workload::from_str("w2h-TLS", true), Ok(Workload::W2hTls));
        assert!(Workload::from_str("W9", true).is_err());
    }
}
