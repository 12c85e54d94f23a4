//! Real asynchronous APIs, by configuration alone: the real binaries against the mock-api
//! speaking each real-API shape over HTTPS, with a certificate authority made for the test.
//! Profiles come from `QUEUES_FILE` (JSON, and TOML for one shape), credentials from `${VAR}`.

use std::path::PathBuf;
use std::time::Duration;

use crate::stack::Stack;
use serde_json::{Value, json};
use testkit::{eventually, replicate_profile};

/// The credential the mock requires; it must show nowhere but in the mock's own check.
pub(crate) const SECRET: &str = "tq-secret-9f3a1c77e2";

/// The variable the profiles read it from.
pub(crate) const KEY_VAR: &str = "TASKQ_TEST_API_KEY";

/// A real-API shape: the mock's name for it, the profile that calls it, and what to expect.
struct Shape {
    mock: &'static str,
    /// `QUEUES_FILE`'s content for a queue calling the mock at a base URL.
    file: fn(queue: &str, base: &str) -> QueuesFile,
    /// Three payloads whose jobs succeed.
    payloads: fn() -> [Value; 3],
    /// The body the profile submits for a payload.
    submitted: fn(&Value) -> Value,
    /// A payload whose job the mock fails, and the message it fails with.
    failing: fn() -> Value,
    message: &'static str,
    /// The mock's job id within the remote id the task keeps.
    job_id: fn(&str) -> &str,
}

/// The text of a `QUEUES_FILE` and the extension that says its format.
struct QueuesFile {
    text: String,
    extension: &'static str,
}

/// A JSON `QUEUES_FILE`: the queue polled every 100 ms through `api`.
fn json_file(queue: &str, api: Value) -> QueuesFile {
    QueuesFile {
        text: json!({ queue: {"poll_interval_ms": 100, "api": api} }).to_string(),
        extension: "json",
    }
}

const REPLICATE: Shape = Shape {
    mock: "replicate",
    file: |queue, base| json_file(queue, replicate_profile(base, KEY_VAR)),
    payloads: || {
        [
            json!({"prompt": "a cat"}),
            json!({"prompt": "a dog", "steps": 4}),
            json!("plain"),
        ]
    },
    submitted: |payload| json!({"version": "v1", "input": payload}),
    // With the control characters a hostile provider could send, to forge a log line or colour
    // a terminal.
    failing: || json!({"prompt": "x", "fail": "CUDA out of memory\r\nFAKE\u{0}\u{1b}[31m"}),
    message: "CUDA out of memory",
    job_id: |remote_id| remote_id,
};

const GOOGLE: Shape = Shape {
    mock: "google",
    file: |queue, base| {
        json_file(
            queue,
            json!({
                "base_url": base,
                "headers": {"x-goog-api-key": format!("${{{KEY_VAR}}}")},
                "submit": {"path": "/v1/models/veo-3:predictLongRunning",
                           "body": {"instances": ["{{payload}}"]}, "id": "/name"},
                "poll": {"path": "/v1/{{id}}"},
                "status": {"pointer": "/done", "processing": [false], "done": [true], "absent": "processing"},
                "result": "/response",
                "error": "/error",
            }),
        )
    },
    payloads: || {
        [
            json!({"prompt": "a cat"}),
            json!({"prompt": "waves"}),
            json!([1, 2]),
        ]
    },
    submitted: |payload| json!({"instances": [payload]}),
    failing: || json!({"prompt": "x", "fail": "the prompt was blocked"}),
    message: "the prompt was blocked",
    job_id: |remote_id| remote_id,
};

const AZURE: Shape = Shape {
    mock: "azure",
    file: |queue, base| {
        json_file(
            queue,
            json!({
                "base_url": base,
                "headers": {"Ocp-Apim-Subscription-Key": format!("${{{KEY_VAR}}}")},
                "submit": {"path": "/documentintelligence/documentModels/prebuilt-layout:analyze?api-version=2024-11-30",
                           "body": {"urlSource": "{{payload.url}}"}, "id": "header:Operation-Location"},
                "poll": {"url": "{{id}}"},
                "status": {"pointer": "/status", "processing": ["notStarted", "running"],
                           "done": ["succeeded"], "failed": ["failed", "canceled"]},
                "result": "/analyzeResult",
                "error": "/error/message",
            }),
        )
    },
    payloads: || {
        [
            json!({"url": "https://example.com/a.pdf"}),
            json!({"url": "https://example.com/b.pdf", "pages": 2}),
            json!({"url": "https://example.com/c d.pdf"}),
        ]
    },
    submitted: |payload| json!({"urlSource": payload["url"]}),
    failing: || json!({"url": "fail:the document is not a PDF"}),
    message: "the document is not a PDF",
    // The remote id is the Operation-Location URL: .../analyzeResults/{job}?api-version=...
    job_id: |remote_id| {
        let path = remote_id.split('?').next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default()
    },
};

/// Written in TOML, as a user may.
const STABILITY: Shape = Shape {
    mock: "stability",
    file: |queue, base| QueuesFile {
        text: format!(
            r#"
[{queue:?}]
poll_interval_ms = 100

[{queue:?}.api]
base_url = "{base}"
headers = {{ Authorization = "Bearer ${{{KEY_VAR}}}", Accept = "application/json" }}
submit = {{ path = "/v2beta/image-to-video", body = {{ image = "{{{{payload.image}}}}", seed = 0 }}, id = "/id" }}
poll = {{ path = "/v2beta/image-to-video/result/{{{{id}}}}" }}
status = {{ http = {{ processing = [202], done = [200] }} }}
result = "/video"
error = "/errors/0"
"#
        ),
        extension: "toml",
    },
    payloads: || {
        [
            json!({"image": "aGVsbG8="}),
            json!({"image": "d29ybGQ="}),
            json!({"image": "eA=="}),
        ]
    },
    submitted: |payload| json!({"image": payload["image"], "seed": 0}),
    failing: || json!({"image": "fail:content moderated"}),
    message: "content moderated",
    job_id: |remote_id| remote_id,
};

/// A file removed when dropped.
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    pub(crate) fn write(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("taskq-real-apis-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The mock speaking `shape` over HTTPS, answering after 20 ms, done at the second poll.
pub(crate) fn mock_for(shape: &str, extra: &[(&str, &str)]) -> Stack {
    let mut env = vec![
        ("MOCK_SHAPE", shape),
        ("MOCK_API_KEY", SECRET),
        ("MOCK_DELAY_MS", "20"),
        ("MOCK_POLLS_UNTIL_DONE", "2"),
    ];
    env.extend_from_slice(extra);
    Stack::start_https(&env)
}

/// The stack's `QUEUES_FILE` for `shape`.
fn queues_file(stack: &Stack, shape: &Shape) -> TempFile {
    let file = (shape.file)(&stack.queue_name, &stack.services.mock.base());
    TempFile::write(
        &format!("{}.{}", stack.queue_name, file.extension),
        &file.text,
    )
}

/// Three tasks done with their results read from the profile's result pointer, one failed by
/// the provider and dead at once with its message, one job each, the credential shown nowhere.
async fn served_by_its_profile(shape: &Shape) {
    let stack = mock_for(shape.mock, &[]);
    let file = queues_file(&stack, shape);
    let _consumer = stack.consumer(&[("QUEUES_FILE", &file.path()), (KEY_VAR, SECRET)]);
    let payloads = (shape.payloads)();
    for (i, payload) in payloads.iter().chain([&(shape.failing)()]).enumerate() {
        let (status, _) = stack.submit(&format!("job {i}"), payload).await;
        assert!(status.is_success(), "{status}");
    }

    for (i, payload) in payloads.iter().enumerate() {
        let view = stack
            .wait_final(&format!("job {i}"), Duration::from_secs(20))
            .await;
        assert_eq!(view["state"], "done", "{view}");
        let remote_id = view["remote_id"]
            .as_str()
            .expect("the view shows the remote id");
        assert_eq!(
            view["data"],
            mock_api::jobs::result((shape.job_id)(remote_id), &(shape.submitted)(payload)),
            "the result, read from the profile's pointer"
        );
        assert_eq!(view["attempts"], 0, "{view}");
        assert!(!view.to_string().contains(SECRET));
    }
    let dead = stack.wait_final("job 3", Duration::from_secs(20)).await;
    assert_eq!(dead["state"], "dead", "{dead}");
    let error = dead["last_error"].as_str().unwrap();
    assert!(
        error.contains(shape.message),
        "the provider's message is kept: {error}"
    );
    assert!(
        !error.contains(|c: char| c.is_control()),
        "control characters escaped: {error:?}"
    );
    // Dead at once: the submit and the two polls, the second answering "failed"; no retry.
    assert_eq!(dead["claims"], 3, "{dead}");

    let stats = stack.mock_stats().await;
    assert_eq!(stats["jobs"], 4, "one job per task: {stats}");
    assert_eq!(stats["unauthorized"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicate_like_api_is_served_by_its_profile() {
    served_by_its_profile(&REPLICATE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_long_running_operation_is_served_by_its_profile() {
    served_by_its_profile(&GOOGLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_operation_location_api_is_served_by_its_profile() {
    served_by_its_profile(&AZURE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stability_like_202_until_200_api_is_served_by_its_toml_profile() {
    served_by_its_profile(&STABILITY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_retry_after_in_seconds_or_as_a_date_uses_no_attempt() {
    // (the mock's Retry-After, the wait the consumer must keep, ms)
    // A date is cut to whole seconds and read a little later than it was written: anything above
    // zero and up to the two seconds asked.
    for (date, seconds, wait) in [("false", "1", 1000..=1000), ("true", "2", 1..=2000)] {
        let stack = mock_for(
            "replicate",
            &[
                ("MOCK_FAILURE_RATE", "1"),
                ("MOCK_FAILURE_STATUS", "429"),
                ("MOCK_RETRY_AFTER_SECS", seconds),
                ("MOCK_RETRY_AFTER_DATE", date),
            ],
        );
        let file = queues_file(&stack, &REPLICATE);
        let _consumer = stack.consumer(&[
            ("QUEUES_FILE", &file.path()),
            (KEY_VAR, SECRET),
            ("MAX_ATTEMPTS", "1"),
        ]);
        stack.submit("throttled", &json!({"prompt": "x"})).await;

        let first = eventually(Duration::from_secs(10), "a throttled answer", || async {
            let (_, view) = stack.task("throttled").await;
            (view["throttled"] == 1 && view["state"] != "running").then_some(view)
        })
        .await;
        let waited =
            first["run_at_ms"].as_u64().unwrap() - first["updated_at_ms"].as_u64().unwrap();
        assert!(
            wait.contains(&waited),
            "date {date}: waited {waited} ms, not {wait:?}"
        );
        assert_eq!(first["attempts"], 0, "{first}");
        assert_eq!(
            first["last_error"],
            "the API answered HTTP 429: simulated failure"
        );

        // With MAX_ATTEMPTS=1 one failed attempt kills; three throttled answers do not.
        let later = eventually(
            Duration::from_secs(15),
            "three throttled answers",
            || async {
                let (_, view) = stack.task("throttled").await;
                (view["throttled"].as_u64() >= Some(3)).then_some(view)
            },
        )
        .await;
        assert_ne!(later["state"], "dead", "{later}");
        assert_eq!(later["attempts"], 0, "{later}");
        let stats = stack.queue().stats().await.unwrap();
        assert!(stats.totals["throttled"] >= 3, "{:?}", stats.totals);
        assert_eq!(
            stack.mock_stats().await["jobs"],
            0,
            "a throttled submit makes no job"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_between_submit_and_record_leaves_one_job_per_task() {
    // Every answer takes 1.5 s: the consumer is killed while its submits wait for theirs.
    let stack = mock_for("replicate", &[("MOCK_DELAY_MS", "1500")]);
    let file = queues_file(&stack, &REPLICATE);
    let tasks = 20;
    // Every task is due before the consumer starts, so its first claim takes them all.
    for i in 0..tasks {
        stack.submit(&format!("t{i}"), &json!({"n": i})).await;
    }
    let mut first = stack.consumer(&[
        ("QUEUES_FILE", &file.path()),
        (KEY_VAR, SECRET),
        ("LEASE_MS", "1000"),
    ]);
    eventually(Duration::from_secs(10), "every job made", || async {
        (stack.mock_stats().await["jobs"] == tasks).then_some(())
    })
    .await;
    first.kill();
    // Killed while every submit waited for its answer: no task learned its job's id.
    for i in 0..tasks {
        let (_, view) = stack.task(&format!("t{i}")).await;
        assert!(view.get("remote_id").is_none(), "{view}");
    }

    let _second = stack.consumer(&[("QUEUES_FILE", &file.path()), (KEY_VAR, SECRET)]);
    for i in 0..tasks {
        let view = stack
            .wait_final(&format!("t{i}"), Duration::from_secs(30))
            .await;
        assert_eq!(view["state"], "done", "{view}");
        let remote_id = view["remote_id"].as_str().unwrap();
        assert_eq!(view["data"]["job"], remote_id);
        assert_eq!(view["data"]["input"]["input"], json!({"n": i}));
    }
    let stats = stack.mock_stats().await;
    assert_eq!(
        stats["jobs"], tasks,
        "the same Idempotency-Key made no second job: {stats}"
    );
    assert_eq!(stats["idempotent_replays"], tasks, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_answer_was_lost_is_repeated_with_the_same_key() {
    let stack = mock_for(
        "replicate",
        &[("MOCK_DELAY_MS", "0"), ("MOCK_DROP_SUBMIT_ANSWERS", "5")],
    );
    let file = queues_file(&stack, &REPLICATE);
    let _consumer = stack.consumer(&[
        ("QUEUES_FILE", &file.path()),
        (KEY_VAR, SECRET),
        ("RETRY_BASE_MS", "50"),
    ]);
    for i in 0..5 {
        stack.submit(&format!("lost {i}"), &json!({"n": i})).await;
    }
    for i in 0..5 {
        let view = stack
            .wait_final(&format!("lost {i}"), Duration::from_secs(20))
            .await;
        assert_eq!(view["state"], "done", "{view}");
        assert!(
            view["last_error"].is_null(),
            "done drops the last error: {view}"
        );
    }
    let totals = stack.queue().stats().await.unwrap().totals;
    assert_eq!(
        totals["retried"], 5,
        "each lost answer was a failed call: {totals:?}"
    );
    let stats = stack.mock_stats().await;
    assert_eq!(stats["dropped_answers"], 5, "{stats}");
    assert_eq!(stats["jobs"], 5, "one job per task: {stats}");
    assert_eq!(stats["idempotent_replays"], 5, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_variable_stops_the_consumer_naming_it_and_no_value() {
    let stack = mock_for("replicate", &[]);
    let mut profile = replicate_profile(&stack.services.mock.base(), KEY_VAR);
    profile["headers"]["X-Other"] = json!("${TASKQ_TEST_NOT_SET}");
    let file = TempFile::write(
        &format!("{}-missing.json", stack.queue_name),
        &json!({ stack.queue_name.clone(): {"api": profile} }).to_string(),
    );
    let log = TempFile::write(&format!("{}-missing.log", stack.queue_name), "");
    let mut consumer =
        stack.consumer_logged(&[("QUEUES_FILE", &file.path()), (KEY_VAR, SECRET)], &log.0);

    let status = consumer.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let said = std::fs::read_to_string(&log.0).unwrap();
    assert!(
        said.contains("api.headers.X-Other: environment variable TASKQ_TEST_NOT_SET is not set"),
        "{said}"
    );
    assert!(!said.contains(SECRET), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_never_shows_in_logs_redis_views_or_metrics() {
    let stack = mock_for("replicate", &[]);
    let file = queues_file(&stack, &REPLICATE);
    let log = TempFile::write(&format!("{}-secret.log", stack.queue_name), "");
    let metrics_addr = testkit::free_addr();
    let mut consumer = stack.consumer_logged(
        &[
            ("QUEUES_FILE", &file.path()),
            (KEY_VAR, SECRET),
            ("RUST_LOG", "trace"),
            ("CONSUMER_ADDR", &metrics_addr.to_string()),
        ],
        &log.0,
    );
    let names: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    for name in &names {
        stack.submit(name, &json!({"prompt": name})).await;
    }
    let mut views = String::new();
    for name in &names {
        let view = stack.wait_final(name, Duration::from_secs(20)).await;
        assert_eq!(view["state"], "done", "{view}");
        views.push_str(&view.to_string());
    }
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let (_, metrics) = testkit::get_text(&stack.client, metrics_url).await;
    consumer.terminate(Duration::from_secs(10));

    let logged = std::fs::read_to_string(&log.0).unwrap();
    assert!(logged.lines().count() > 50, "trace logs were written");
    assert!(
        !logged.contains(SECRET),
        "the credential leaked into the log"
    );
    assert!(!views.contains(SECRET));
    assert!(!metrics.contains(SECRET));
    let stored = crate::stack::everything_in_redis(stack.queue_server());
    assert!(stored.contains("s4"), "Redis was read");
    assert!(!stored.contains(SECRET), "the credential is in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_clear_failure() {
    let stack = mock_for("original", &[("MOCK_DELAY_MS", "0")]);
    // The consumer trusts the system's authorities and one made for the test, but not the one
    // that signed the mock's certificate.
    let stranger = testkit::Certificates::generate();
    let stranger_ca = stranger.ca_file().display().to_string();
    let _consumer = stack.consumer(&[("API_CA_FILE", &stranger_ca), ("MAX_ATTEMPTS", "1")]);
    stack.enqueue("untrusted").await;

    let dead = stack.wait_dead("untrusted", Duration::from_secs(10)).await;
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("could not connect to the API"), "{error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("API_CA_FILE"), "{error}");
    assert_eq!(
        stack.mock_calls().await,
        0,
        "no request went over the refused connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_shape_works_over_https() {
    let stack = mock_for("original", &[("MOCK_DELAY_MS", "0")]);
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "50")]);
    let names = crate::stack::names("tls", 50);
    stack.enqueue_all(&names).await;
    stack.wait_done(50, Duration::from_secs(20)).await;

    for name in &names {
        let (_, view) = stack.task(name).await;
        assert_eq!(view["data"], mock_api::result(name, 2), "{view}");
    }
    let stats = stack.mock_stats().await;
    assert_eq!(stats["calls"], 100, "two calls each: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_credential_is_refused_by_the_api_and_the_task_dies_at_once() {
    let stack = mock_for("google", &[("MOCK_DELAY_MS", "0")]);
    let file = queues_file(&stack, &GOOGLE);
    let _consumer = stack.consumer(&[("QUEUES_FILE", &file.path()), (KEY_VAR, "not-the-key")]);
    stack.submit("refused", &json!({"prompt": "x"})).await;

    let dead = stack.wait_dead("refused", Duration::from_secs(10)).await;
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.starts_with("the API answered HTTP 401"), "{error}");
    assert_eq!(dead["claims"], 1, "a 401 is permanent: {dead}");
    let stats = stack.mock_stats().await;
    assert_eq!(
        (stats["unauthorized"].as_u64(), stats["jobs"].as_u64()),
        (Some(1), Some(0))
    );
}
