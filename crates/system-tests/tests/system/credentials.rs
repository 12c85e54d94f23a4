//! Credentials that rotate, expire or sign, end to end: the real consumer against the mock over
//! HTTPS, with a profile whose credential is read from a file, minted by a token endpoint or
//! signed.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use base64::Engine as _;

use crate::api_steps::{consumer_of, queues_file};
use crate::profiles::profiles_dir;
use crate::real_apis::{KEY_VAR, SECRET, TempFile, mock_for};
use crate::stack::{Stack, everything_in_redis, names};

/// The consumer's `/healthz` answer for the queue's credential.
async fn credential_health(stack: &Stack, consumer: SocketAddr) -> Value {
    let url = format!("http://{consumer}/healthz");
    let (_, health) = testkit::get_json(&stack.client, url).await;
    health["credentials"][&stack.queue_name].clone()
}

/// The problem the consumer's `/healthz` names for the queue's credential, once it names one
/// (within 20 s).
async fn credential_problem(stack: &Stack, consumer: SocketAddr) -> String {
    testkit::eventually(
        Duration::from_secs(20),
        "the credential's problem",
        || async {
            let health = credential_health(stack, consumer).await;
            (health["ok"] == false).then_some(health["problem"].as_str()?.to_owned())
        },
    )
    .await
}

/// `taskq_credentials_ok` of the queue on the consumer's `/metrics`.
async fn credentials_ok(stack: &Stack, consumer: SocketAddr) -> Option<f64> {
    let (_, page) = testkit::get_text(&stack.client, format!("http://{consumer}/metrics")).await;
    let series = format!("taskq_credentials_ok{{queue=\"{}\"}} ", stack.queue_name);
    page.lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
}

/// A URL of the mock at `stack`: its base, then `path`.
fn mock_url(stack: &Stack, path: &str) -> String {
    format!("{}{path}", stack.services.mock.base())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_file_holds_the_queue_and_its_rotation_is_used_without_a_restart() {
    let stack = mock_for("replicate", &[]);
    let key = TempFile::write(&format!("{}-key", stack.queue_name), "a-revoked-key\n");
    let mut api = testkit::replicate_profile(&stack.services.mock.base(), KEY_VAR);
    api["headers"]["Authorization"] = json!(format!("Bearer ${{file:{}}}", key.path()));
    let file = queues_file(&stack, api, json!({}));
    let metrics = testkit::free_addr();
    let _consumer = stack.serving_consumer(
        metrics,
        &[
            ("QUEUES_FILE", &file.path()),
            ("SECRETS_RELOAD_MS", "200"),
            ("MAX_ATTEMPTS", "1"),
        ],
    );
    let names = names("rot", 20);
    submit_all(&stack, &names).await;

    // Act 1: the provider refuses the key in the file.
    let problem = credential_problem(&stack, metrics).await;
    assert!(problem.contains("401"), "{problem}");
    assert!(!problem.contains("a-revoked-key"), "{problem}");
    assert_eq!(credentials_ok(&stack, metrics).await, Some(0.0));
    for name in &names {
        let (_, view) = stack.task(name).await;
        assert_ne!(view["state"], "dead", "{view}");
        assert_eq!(view["attempts"], 0, "no attempt is used: {view}");
    }

    // Act 2: the secret is rotated in place; the running consumer reads it and every task ends.
    let rotated = std::path::PathBuf::from(format!("{}.new", key.path()));
    std::fs::write(&rotated, SECRET).unwrap();
    std::fs::rename(&rotated, key.path()).unwrap();
    all_done(&stack, &names, Duration::from_secs(30)).await;
    let health = credential_health(&stack, metrics).await;
    assert_eq!(health, json!({"ok": true, "problem": null}));
    assert_eq!(credentials_ok(&stack, metrics).await, Some(1.0));
}

/// The mock's token endpoint's client, and the profile's `oauth2` block for it.
const CLIENT_ID: &str = "taskq-client";
const CLIENT_SECRET: &str = "tq-client-secret-5d1e";

/// A Replicate-shaped profile of the mock at `stack`, its credential `auth` instead of a key.
fn profile_with(stack: &Stack, auth: Value) -> Value {
    let mut api = testkit::replicate_profile(&stack.services.mock.base(), KEY_VAR);
    api["headers"] = json!({});
    api["auth"] = auth;
    api
}

/// `oauth2` client credentials at the mock's token endpoint, the secret from `CLIENT_SECRET_VAR`.
fn client_credentials(stack: &Stack, client_auth: &str) -> Value {
    json!({"oauth2": {
        "token_url": mock_url(stack, "/oauth/token"),
        "grant": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": "${TASKQ_TEST_CLIENT_SECRET}", "client_auth": client_auth}})
}

/// A consumer of the mock at `stack` whose profile takes [`client_credentials`] (its secret
/// given), with `env` on top, once it serves `/healthz` and `/metrics` at the address answered.
fn client_credentials_consumer(
    stack: &Stack,
    client_auth: &str,
    env: &[(&str, &str)],
) -> (testkit::Process, TempFile, SocketAddr) {
    let profile = profile_with(stack, client_credentials(stack, client_auth));
    let file = queues_file(stack, profile, json!({}));
    let path = file.path();
    let mut all = vec![
        ("QUEUES_FILE", path.as_str()),
        ("TASKQ_TEST_CLIENT_SECRET", CLIENT_SECRET),
    ];
    all.extend_from_slice(env);
    let addr = testkit::free_addr();
    (stack.serving_consumer(addr, &all), file, addr)
}

fn oauth_mock(extra: &[(&str, &str)]) -> Stack {
    let mut env = vec![
        ("MOCK_OAUTH_CLIENT_ID", CLIENT_ID),
        ("MOCK_OAUTH_CLIENT_SECRET", CLIENT_SECRET),
    ];
    env.extend_from_slice(extra);
    mock_for("replicate", &env)
}

async fn submit_all(stack: &Stack, names: &[String]) {
    for name in names {
        let (status, view) = stack.submit(name, &json!({"prompt": name})).await;
        assert!(status.is_success(), "{view}");
    }
}

async fn all_done(stack: &Stack, names: &[String], within: Duration) {
    for name in names {
        let view = stack.wait_final(name, within).await;
        assert_eq!(view["state"], "done", "{view}");
        assert_eq!(view["attempts"], 0, "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_across_lifetimes_and_a_hundred_first_calls_ask_once() {
    // Tokens live 2 s; each job takes 7 s of polls every 100 ms: three lifetimes and more.
    let stack = oauth_mock(&[
        ("MOCK_TOKEN_TTL_SECS", "2"),
        ("MOCK_TOKEN_DELAY_MS", "300"),
        ("MOCK_JOB_MS", "7000"),
        ("MOCK_POLLS_UNTIL_DONE", "1000000"),
    ]);
    let (_consumer, _file, _) =
        client_credentials_consumer(&stack, "basic", &[("CONCURRENCY", "100")]);
    let names = names("tok", 100);
    submit_all(&stack, &names).await;
    all_done(&stack, &names, Duration::from_secs(40)).await;

    let stats = stack.mock_stats().await;
    assert_eq!(
        stats["unauthorized"], 0,
        "no call carried a lapsed token: {stats}"
    );
    assert_eq!(stats["token_refused"], 0, "{stats}");
    let minted = stats["token_requests"].as_u64().unwrap();
    // One token for the 100 first calls, then one per refresh (every 1.8 s of 7 s and more).
    assert!(
        (4..=8).contains(&minted),
        "{minted} token requests: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_first_calls_at_once_cause_one_token_request() {
    let stack = oauth_mock(&[("MOCK_TOKEN_DELAY_MS", "500")]);
    let names = names("first", 100);
    submit_all(&stack, &names).await;
    let (_consumer, _file, _) =
        client_credentials_consumer(&stack, "body", &[("CONCURRENCY", "100")]);
    all_done(&stack, &names, Duration::from_secs(30)).await;
    let stats = stack.mock_stats().await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["unauthorized"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_under_load_holds_the_queue_and_every_task_ends_once_restored() {
    let stack = oauth_mock(&[
        ("MOCK_JOB_MS", "1500"),
        ("MOCK_POLLS_UNTIL_DONE", "1000000"),
    ]);
    let (_consumer, _file, metrics) =
        client_credentials_consumer(&stack, "basic", &[("MAX_ATTEMPTS", "1")]);
    let names = names("rev", 60);
    submit_all(&stack, &names).await;
    let revoke = mock_url(&stack, "/oauth/revoke");
    let answer = stack.client.post(&revoke).send().await.unwrap();
    assert_eq!(answer.status(), 204);

    let problem = credential_problem(&stack, metrics).await;
    assert!(!problem.contains(CLIENT_SECRET), "{problem}");
    assert_eq!(credentials_ok(&stack, metrics).await, Some(0.0));
    for name in &names {
        let (_, view) = stack.task(name).await;
        assert_ne!(view["state"], "dead", "{view}");
        assert_eq!(view["attempts"], 0, "{view}");
    }

    let restore = mock_url(&stack, "/oauth/restore");
    assert_eq!(
        stack.client.post(&restore).send().await.unwrap().status(),
        204
    );
    all_done(&stack, &names, Duration::from_secs(90)).await;
    assert_eq!(
        credential_health(&stack, metrics).await,
        json!({"ok": true, "problem": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_key_mints_tokens_with_a_signed_jwt() {
    let key = testkit::RsaKey::generate();
    let public = key.public_pem().display().to_string();
    let stack = mock_for("replicate", &[("MOCK_JWT_PUBLIC_KEY_FILE", &public)]);
    let token_uri = mock_url(&stack, "/oauth/token");
    let account = key.service_account_file("runner@test.iam.gserviceaccount.com", &token_uri);
    let auth = json!({"google_service_account": {"key_file": account.display().to_string(),
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}});
    let (_consumer, _file) = consumer_of(&stack, profile_with(&stack, auth), json!({}), &[]);
    let names = names("sa", 10);
    submit_all(&stack, &names).await;
    all_done(&stack, &names, Duration::from_secs(30)).await;
    let stats = stack.mock_stats().await;
    assert_eq!(stats["tokens_issued"], 1, "{stats}");
    assert_eq!(stats["unauthorized"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_textract_call_is_signed_and_verifies() {
    let stack = mock_for(
        "textract",
        &[
            ("MOCK_TEXTRACT_BLOCKS", "250"),
            ("MOCK_AWS_ACCESS_KEY_ID", "AKIDTASKQTEST"),
            ("MOCK_AWS_SECRET_ACCESS_KEY", SECRET),
            ("MOCK_AWS_REGION", "eu-west-1"),
        ],
    );
    let profile = std::fs::read_to_string(profiles_dir().join("aws-textract.json")).unwrap();
    let mut api: Value =
        serde_json::from_str::<Value>(&profile).unwrap()["aws-textract"]["api"].clone();
    api["base_url"] = json!(stack.services.mock.base());
    let (_consumer, _file) = consumer_of(
        &stack,
        api,
        json!({}),
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTASKQTEST"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let names = names("sig", 5);
    for name in &names {
        let payload = json!({"bucket": "docs", "name": format!("{name}.pdf")});
        let (status, view) = stack.submit(name, &payload).await;
        assert!(status.is_success(), "{view}");
    }
    for name in &names {
        let view = stack.wait_final(name, Duration::from_secs(30)).await;
        assert_eq!(view["state"], "done", "{view}");
        assert_eq!(
            view["data"]["Blocks"].as_array().map(Vec::len),
            Some(250),
            "{view}"
        );
    }
    let stats = stack.mock_stats().await;
    assert_eq!(stats["sigv4_refused"], 0, "{stats}");
    assert_eq!(
        stats["sigv4_verified"], stats["calls"],
        "every call verified: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_secret_token_or_basic_credential_shows_in_trace_logs_redis_or_metrics() {
    let stack = oauth_mock(&[]);
    let file = queues_file(
        &stack,
        profile_with(&stack, client_credentials(&stack, "basic")),
        json!({}),
    );
    let log = TempFile::write(&format!("{}-auth.log", stack.queue_name), "");
    let metrics = testkit::free_addr();
    let mut consumer = stack.consumer_logged(
        &[
            ("QUEUES_FILE", &file.path()),
            ("TASKQ_TEST_CLIENT_SECRET", CLIENT_SECRET),
            ("RUST_LOG", "trace"),
            ("CONSUMER_ADDR", &metrics.to_string()),
        ],
        std::path::Path::new(&log.path()),
    );
    let names = names("quiet", 5);
    submit_all(&stack, &names).await;
    all_done(&stack, &names, Duration::from_secs(30)).await;
    let (_, page) = testkit::get_text(&stack.client, format!("http://{metrics}/metrics")).await;
    consumer.terminate(Duration::from_secs(10));

    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.lines().count() > 50, "trace logs were written");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let redis = everything_in_redis(stack.queue_server());
    for (place, text) in [("the log", &logged), ("Redis", &redis), ("/metrics", &page)] {
        assert!(
            !text.contains(CLIENT_SECRET),
            "the client secret in {place}"
        );
        assert!(!text.contains(&basic), "the Basic credential in {place}");
        assert!(!text.contains("access_token"), "a token answer in {place}");
        assert!(!text.contains("Bearer "), "a bearer token in {place}");
    }
}
