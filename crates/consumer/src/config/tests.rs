//! Settings: queues from QUEUES and QUEUES_FILE (JSON and TOML), their profiles and policies, and the refusals that never echo a secret.
use clap::Parser;

use std::time::Duration;

use super::queues::without_quoted_text;
use super::*;
use crate::api::Api;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

fn parse(args: &[&str]) -> Config {
    Cli::try_parse_from(std::iter::once("consumer").chain(args.iter().copied()))
        .unwrap()
        .config
}

#[test]
fn an_api_url_with_credentials_is_refused_without_echoing_them() {
    let refused = Cli::try_parse_from(["consumer", "--api-url", "http://u:hunter2@api/"])
        .err()
        .expect("refused")
        .to_string();
    assert!(refused.contains("no credentials in the URL"), "{refused}");
    assert!(!refused.contains("hunter2"), "{refused}");
    assert_eq!(
        parse(&["--api-url", "https://api/x"]).api_url.as_str(),
        "https://api/x"
    );
}

/// Runs `check` with the path of a temporary file holding `json`.
fn with_file(json: &str, check: impl FnOnce(&str)) {
    with_named_file("json", json, check);
}

/// Runs `check` with the path of a temporary `*.{extension}` file holding `text`.
fn with_named_file(extension: &str, text: &str, check: impl FnOnce(&str)) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "taskq-queues-{}-{}.{extension}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    check(path.to_str().unwrap());
    std::fs::remove_file(&path).unwrap();
}

const PROFILE_TOML: &str = r#"
    [jobs]
    concurrency = 8

    [jobs.api]
    base_url = "https://api.example.com"
    headers = { Authorization = "Bearer ${TOKEN}" }
    submit = { path = "/v1/jobs", id = "/id" }
    poll = { path = "/v1/jobs/{{id}}" }
    status = { pointer = "/status", processing = ["running"], done = ["succeeded"] }
"#;

#[test]
fn a_toml_queues_file_gives_a_queue_its_profile_and_a_submitting_policy() {
    let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
    let mut queues = Vec::new();
    with_named_file("toml", PROFILE_TOML, |path| {
        queues = parse(&["--queues-file", path]).queues_with(lookup).unwrap();
    });
    let jobs = &queues[0];
    assert_eq!((jobs.name.as_str(), jobs.worker.concurrency), ("jobs", 8));
    assert!(jobs.api.submits());
    assert!(jobs.policy.submit_keys);
    assert!(!format!("{jobs:?}").contains("s3cret"), "{jobs:?}");
    assert!(
        !parse(&[]).queues().unwrap()[0].policy.submit_keys,
        "the original shape does not submit"
    );
}

#[test]
fn a_profile_naming_a_missing_variable_is_refused_with_the_queue_and_the_variable() {
    with_named_file("toml", PROFILE_TOML, |path| {
        let err = parse(&["--queues-file", path])
            .queues_with(|_| None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "queue jobs: api.headers.Authorization: environment variable TOKEN is not set"
        );
    });
    with_named_file("toml", "[jobs]\nconcurency = 3\n", |path| {
        let err = parse(&["--queues-file", path]).queues().unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    });
}

#[test]
fn a_parse_error_never_shows_a_value_from_the_file() {
    let cases = [
        (
            "json",
            r#"{"q": {"api": {"headers": "Bearer sk-live-123"}}}"#,
        ),
        ("json", r#"{"q": {"concurrency": "sk-live-123"}}"#),
        (
            "toml",
            "[q.api]\nbase_url = \"https://x\"\nheaders = \"Bearer sk-live-123\"\n",
        ),
        ("toml", "[q]\nconcurrency = \"sk-live-123\"\n"),
    ];
    for (extension, text) in cases {
        with_named_file(extension, text, |path| {
            let err = parse(&["--queues-file", path])
                .queues()
                .unwrap_err()
                .to_string();
            assert!(!err.contains("sk-live"), "{err}");
            assert!(err.contains("queue q: "), "where it is still shows: {err}");
        });
    }
    assert_eq!(
        without_quoted_text(r#"invalid type: string "a \"b\" c", expected `map`"#),
        r#"invalid type: string "…", expected `map`"#
    );
}

#[test]
fn every_entry_is_read_on_its_own_and_a_refused_one_is_not_served_without_it() {
    let json =
        r#"{"a": {"concurrency": "x"}, "b": {"poll_interval_ms": 5}, "c": {"lease_ms": []}}"#;
    with_file(json, |path| {
        let config = parse(&["--queues-file", path, "--queues", "a,b"]);
        let compiled = config.compile_all(|_| None).unwrap();
        let names: Vec<&str> = compiled.served.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            ["b"],
            "a is refused, not served with the flags in its place"
        );
        let errors: Vec<String> = compiled.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("queue a: concurrency: invalid type"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("queue c: lease_ms: invalid type"),
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| e.contains(path)), "{errors:?}");
    });
}

#[test]
fn a_queue_with_both_an_api_url_and_a_profile_is_refused() {
    let json = r#"{"q": {"api_url": "http://a/", "api": {"base_url": "http://a",
        "poll": {"path": "/x"}, "status": {"pointer": "/s", "done": ["done"]}}}}"#;
    with_file(json, |path| {
        let err = parse(&["--queues-file", path]).queues().unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    });
}

#[test]
fn one_queue_by_default_and_the_listed_ones_with_queues() {
    let names = |c: &Config| {
        c.queues()
            .unwrap()
            .into_iter()
            .map(|q| q.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&parse(&[])), ["example"]);
    assert_eq!(names(&parse(&["--queues", "a,b, c"])), ["a", "b", "c"]);
    assert_eq!(names(&parse(&["--queues", "a,b,a"])), ["a", "b"]);
    for empty in ["", "a,,b", " "] {
        let refused = Cli::try_parse_from(["consumer", "--queues", empty])
            .err()
            .expect("an empty name is refused")
            .to_string();
        assert!(refused.contains("an empty queue name"), "{refused}");
    }
}

#[test]
fn the_queues_file_names_queues_and_overrides_their_settings() {
    let json = r#"{"slow": {"api_url": "http://slow.example/", "concurrency": 5, "poll_interval_ms": 9000}, "fast": {}}"#;
    let mut queues = Vec::new();
    with_file(json, |path| {
        queues = parse(&["--queues-file", path, "--concurrency", "64"])
            .queues()
            .unwrap();
    });

    let queue = |name: &str| queues.iter().find(|q| q.name == name).unwrap();
    let url = |name: &str| match &queue(name).api {
        Api::Original(url) => url.to_string(),
        Api::Profile(_) => panic!("{name} has no profile"),
    };
    let slow = queue("slow");
    assert_eq!(
        (slow.worker.concurrency, slow.worker.poll_interval),
        (5, Duration::from_millis(9000))
    );
    assert_eq!(url("slow"), "http://slow.example/");
    assert_eq!(
        (queue("fast").worker.concurrency, url("fast").as_str()),
        (64, "http://127.0.0.1:9001/")
    );
}

#[test]
fn a_broken_queues_file_is_a_clear_error() {
    for json in [
        r#"{"q": {"api_url": "not a url"}}"#,
        r#"{"q": {"concurency": 5}}"#,
        "[1]",
    ] {
        with_file(json, |path| {
            assert!(parse(&["--queues-file", path]).queues().is_err(), "{json}");
        });
    }
}

#[test]
fn a_profile_states_its_limit_and_the_flags_give_the_original_shape_one() {
    let toml = r#"
        [a.api]
        base_url = "https://api.example.com"
        poll = { path = "/v1/{{name}}" }
        status = { pointer = "/status", done = ["done"] }
        rate = { per_sec = 50, burst = 10 }
        max_in_flight = 20
        limit_key = "provider"

        [b]
        lease_ms = 5000
    "#;
    let mut queues = Vec::new();
    with_named_file("toml", toml, |path| {
        let config = parse(&[
            "--queues-file",
            path,
            "--api-rate-per-sec",
            "2.5",
            "--api-max-in-flight",
            "4",
            "--api-timeout-ms",
            "1000",
        ]);
        queues = config.queues_with(|_| None).unwrap();
    });
    let a = queues[0].limit.clone().unwrap();
    assert_eq!(a.key, "provider");
    assert_eq!(a.limit.rate.map(|r| (r.per_sec, r.burst)), Some((50.0, 10)));
    assert_eq!(a.limit.max_in_flight, Some(20));
    let b = queues[1].limit.clone().unwrap();
    assert_eq!(b.key, "b", "the queue's name by default");
    assert_eq!(b.limit.rate.map(|r| (r.per_sec, r.burst)), Some((2.5, 1)));
    assert_eq!(b.limit.max_in_flight, Some(4));
    assert!(
        parse(&[]).queues().unwrap()[0].limit.is_none(),
        "no limit unless asked"
    );
}

#[test]
fn a_limit_that_cannot_hold_is_refused() {
    let profile = |extra: &str| {
        format!(
            "[q.api]\nbase_url = \"https://x\"\npoll = {{ path = \"/{{{{name}}}}\" }}\n\
             status = {{ pointer = \"/s\", done = [\"done\"] }}\n{extra}\n"
        )
    };
    for (extra, field) in [
        ("rate = { per_sec = 0 }", "api.rate"),
        ("rate = { per_sec = 10, burst = 0 }", "api.rate"),
        ("max_in_flight = 0", "api.max_in_flight"),
        ("limit_key = \"a b\"", "api.limit_key"),
    ] {
        with_named_file("toml", &profile(extra), |path| {
            let err = parse(&["--queues-file", path]).queues().unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("queue q: {field}")),
                "{err}"
            );
        });
    }
    let err = parse(&[
        "--api-max-in-flight",
        "2",
        "--lease-ms",
        "1000",
        "--api-timeout-ms",
        "1000",
    ])
    .queues()
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("api_timeout_ms must be below lease_ms"),
        "{err}"
    );
    assert!(Cli::try_parse_from(["consumer", "--api-rate-per-sec", "-1"]).is_err());
}

#[test]
fn a_type_error_names_the_queue_and_the_key_never_the_value() {
    let runway = r#"{"runway": {"api": {"base_url": "https://api.test",
        "poll": {"path": "/t/{{name}}"},
        "status": {"pointer": "/status", "processing": "PENDING", "done": ["SUCCEEDED"]}}}}"#;
    with_file(runway, |path| {
        let err = parse(&["--queues-file", path])
            .queues()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("queue runway: api.status.processing: invalid type"),
            "{err}"
        );
        assert!(!err.contains("PENDING"), "{err}");
    });
    let toml = "[slow]\nconcurrency = \"many\"\n";
    with_named_file("toml", toml, |path| {
        let err = parse(&["--queues-file", path])
            .queues()
            .unwrap_err()
            .to_string();
        assert!(err.contains("queue slow: concurrency:"), "{err}");
        assert!(!err.contains("many"), "{err}");
    });
}

#[test]
fn a_queue_sets_its_own_limits_of_time_retries_and_sizes() {
    let json = r#"{"batch": {"max_poll_secs": 172800, "retry_base_ms": 50, "retry_max_ms": 60000,
        "max_body_bytes": 2048, "max_upload_bytes": 4096}, "plain": {}}"#;
    let mut queues = Vec::new();
    with_file(json, |path| {
        queues = parse(&["--queues-file", path, "--max-poll-secs", "60"])
            .queues()
            .unwrap();
    });
    let queue = |name: &str| queues.iter().find(|q| q.name == name).unwrap();
    let batch = queue("batch");
    assert_eq!(batch.policy.max_poll, Some(Duration::from_secs(172_800)));
    assert_eq!(
        (batch.worker.backoff.base, batch.worker.backoff.max),
        (Duration::from_millis(50), Duration::from_secs(60))
    );
    assert_eq!(
        (
            batch.max_body_bytes,
            batch.max_result_bytes,
            batch.max_upload_bytes
        ),
        (2048, 2048, 4096),
        "a result may be as large as an answer unless the queue says"
    );
    let plain = queue("plain");
    assert_eq!(plain.policy.max_poll, Some(Duration::from_secs(60)));
    assert_eq!(plain.max_body_bytes, 1 << 20);
}

#[test]
fn a_tick_that_is_no_cron_schedule_is_refused_when_the_settings_are_read() {
    for bad in ["nonsense", "* * * * *", "61 * * * * *"] {
        let error = Cli::try_parse_from(["consumer", "--tick", bad])
            .err()
            .expect("refused");
        assert!(
            error
                .to_string()
                .contains("not a cron schedule of 6 fields"),
            "{bad}: {error}"
        );
    }
    assert_eq!(parse(&["--tick", "*/5 * * * * *"]).tick, "*/5 * * * * *");
}
