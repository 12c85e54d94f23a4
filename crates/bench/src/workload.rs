//! Which workloads there are (issues 4's W* and 5's S*), what each measures with the sizes of a
//! run ([`Settings`]), and the constants they share. The runs themselves are in
//! [`crate::workloads`].

use clap::ValueEnum;

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
/// master (checked in every run).
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

/// Tasks per `enqueue_many` call wherever tasks are pre-enqueued (the issue's chunk size).
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
    /// The issue's id (W1b, W2h-tls, S1): its name for `--only` with a capital first letter.
    pub fn id(self) -> String {
        let label = self.label();
        label[..1].to_uppercase() + &label[1..]
    }

    /// Its name for `--only`: the id in lower case, also in logs', queues' and tasks' names.
    pub fn label(self) -> String {
        let value = self.to_possible_value().expect("no workload is skipped");
        value.get_name().to_owned()
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
            | Self::W5
            | Self::W8
            | Self::W8Sigv4 => &["consumer", "mock-api"],
            Self::W6 | Self::W7 => &["producer", "consumer", "mock-api"],
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
                 a 2 s warm-up and FLUSHALL; producer peak RSS (VmHWM); over the measured run \
                 Redis' and the producer's CPU (INFO cpu, /proc/<pid>/stat, /proc/stat); \
                 wrk_and_rest_cores = machine - Redis - producer (mostly wrk)"
            ),
            Self::W1b => format!(
                "library enqueue of {n} unique tasks: Queue::enqueue with 64 in flight (one shared \
                 connection), then Queue::enqueue_many in chunks of {CHUNK}. redis_limit_*: Redis' \
                 own limit, redis-benchmark -c {clients} -n {requests} -r 1e8 EVALSHA of the \
                 library's enqueue script (SHA checked) on the queue's keys, -P 1 and -P 16; \
                 enqueue_of_[pipelined_]redis_limit = enqueue_tasks_per_s over each"
            ),
            Self::W2 => format!(
                "drain {n} pre-enqueued tasks with the library Worker and a no-op handler \
                 (concurrency {c}, batch size {b}) in a child process, timed from worker start \
                 until the queue's done counter reached {n} (read every 5 ms); the child's peak RSS"
            ),
            Self::W2h => format!(
                "drain {n} pre-enqueued tasks with the release consumer (CONCURRENCY=50, \
                 POLL_INTERVAL_MS=100) against the release mock-api (MOCK_DELAY_MS=0, \
                 MOCK_POLLS_UNTIL_DONE=1), timed from consumer spawn; API calls must be {n}"
            ),
            Self::W3d => format!(
                "polling: {n} tasks, mock-api MOCK_DELAY_MS=20 MOCK_POLLS_UNTIL_DONE=3, consumer \
                 CONCURRENCY=100 POLL_INTERVAL_MS=100; wall time from consumer spawn against the \
                 ideal max(3*20 + 2*100 ms, {calls}*20 ms/100); API calls must be {calls}. api_*: \
                 a mock-api of its own timed alone for 1 s before, 100 calls in flight; \
                 *_measured_api and *_consumer_seen_api: the ideal with that mean latency, or the \
                 consumer's own (/metrics), instead of 20 ms"
            ),
            Self::W2hTls | Self::W3dTls => format!(
                "{plain} with the mock-api over HTTPS (rustls, HTTP/1.1, a certificate for \
                 127.0.0.1 from an authority made for the run, trusted through API_CA_FILE), all \
                 else as {plain}"
            ),
            Self::W4 => format!(
                "depth: W2 timing the first {m} completions while {d} tasks are queued (later runs \
                 top the queue back up untimed); the first run also reports the fill and Redis' \
                 used_memory"
            ),
            Self::S1 => format!(
                "scaling out: N = 1, 2, 4 release consumers (CONCURRENCY={S_CONCURRENCY}) on one \
                 queue against a mock-api with MOCK_DELAY_MS={S1_DELAY_MS}, so each is bound by \
                 {S1_BOUND_TASKS_PER_S:.0} tasks/s; {s1} tasks per consumer, timed from the first \
                 spawn; nK_over_n1: N=K's tasks/s over N=1's in the same run (target >= 0.8*K), \
                 nK_efficiency that over K; consumer CPU of all N per task"
            ),
            Self::S2 => format!(
                "cluster against single Redis: {s2} tasks in each of {queues}, drained by ONE \
                 release consumer (QUEUES={queues}, CONCURRENCY={S_CONCURRENCY} per queue; \
                 mock-api MOCK_DELAY_MS=0) on one redis-server and on a 3-master local cluster \
                 (each queue on its own master, checked; the order alternates by run); {total} \
                 tasks timed from consumer spawn; Redis CPU summed over the masters; \
                 busiest_*_cpu_share: the most loaded Redis process' share of a core"
            ),
            Self::W5 => format!(
                "fleet-wide limit: {n} tasks, {W5_CONSUMERS} release consumers \
                 (CONCURRENCY={W5_CONCURRENCY} each) against a mock-api (MOCK_DELAY_MS=\
                 {W5_DELAY_MS}) admitting {W5_RATE} calls in any second and {W5_IN_FLIGHT} in \
                 flight, 429 beyond. limited_*: the consumers share API_RATE_PER_SEC={W5_RATE}, \
                 API_RATE_BURST and API_MAX_IN_FLIGHT={W5_IN_FLIGHT}; unlimited_*: no limit; \
                 timed from the first spawn; admitted calls must be {n}; throttled_share = 429s / \
                 all requests"
            ),
            Self::W6 => format!(
                "results pushed to clients: producer, consumer (CONCURRENCY={conc}) and mock-api \
                 (MOCK_DELAY_MS={api_ms}); {w6} tasks due at pseudo-random moments {lead} to \
                 {last} ms after one submit_many. long_poll_*: a client per task holds GET \
                 /tasks/NAME?wait={W6_WAIT_S}, all waiting before the first is due; late_* = its \
                 answer's arrival - the task's done_at_ms (target p99 <= 10 ms). poll_*: the same \
                 reading every {W6_POLL_EVERY_MS} ms. idle_*: a producer alone holding {W6_IDLE} \
                 long-polls on raw connections: its VmRSS before and with all waiting"
            ),
            Self::W7 => format!(
                "provider webhooks: producer, consumer (CONCURRENCY={conc}, a Replicate profile \
                 asking for a webhook, poll_interval_ms {W7_POLL_INTERVAL_MS}) and mock-api \
                 (MOCK_SHAPE=replicate, MOCK_WEBHOOKS=1, MOCK_JOB_MS={W7_JOB_MS}, \
                 MOCK_DELAY_MS={api_ms}); {w7} tasks due at pseudo-random moments in \
                 {W7_SPREAD_MS} ms; hook_to_done_* = done_at_ms - the mock's webhook send \
                 (target p99 <= {ceiling} ms); every task claimed exactly twice, {w7_calls} API \
                 calls; slowest_task_ms: the longest from due to done, its {W7_JOB_MS} ms job \
                 included"
            ),
            Self::W8 => format!(
                "a profile of three steps (fal.ai's queue: submit, status, fetch of the result): \
                 {n} pre-enqueued tasks, the release consumer (CONCURRENCY=50) against the \
                 mock-api (MOCK_SHAPE=fal, MOCK_DELAY_MS=0), timed from consumer spawn; {calls} \
                 API calls"
            ),
            Self::W8Sigv4 => format!(
                "W8 with every call signed by aws_sigv4 and verified by the mock; {n} tasks, \
                 {calls} calls: its consumer_cpu_us_per_call less W8's is what signing costs"
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
    fn workload_ids_are_the_issues_and_parse_in_any_case() {
        let ids: Vec<String> = Workload::value_variants().iter().map(|w| w.id()).collect();
        let first = ["W1", "W1b", "W2", "W2h", "W3d", "W2h-tls", "W3d-tls", "W4"];
        assert_eq!(ids[..8], first);
        assert_eq!(ids[8..], ["S1", "S2", "W5", "W6", "W7", "W8", "W8-sigv4"]);
        for &w in Workload::value_variants() {
            assert_eq!(Workload::from_str(&w.id(), true), Ok(w));
        }
        assert_eq!(Workload::from_str("w2h-TLS", true), Ok(Workload::W2hTls));
        assert!(Workload::from_str("W9", true).is_err());
    }
}
