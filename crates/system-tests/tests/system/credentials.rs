//! Credentials that rotate, expire or sign, end to end: the real consumer against the mock over
//! HTTPS, with a profile whose credential is read from a file, minted by a token endpoint or
//! signed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real_apis::{KEY_VAR, SECRET, TempFile, mock_for};
use crate::stack::Stack;

/// The consumer's `/healthz` answer for the queue's credential.
async fn credential_health(stack: &Stack, consumer: std::net::SocketAddr) -> Value {
    let (_, health) = testkit::get_json(&stack.client, format!("http://{consumer}/healthz")).await;
    health["credentials"][&stack.queue_name].clone()
}

/// `taskq_credentials_ok` of the queue on the consumer's `/metrics`.
async fn credentials_ok(stack: &Stack, consumer: std::net::SocketAddr) -> Option<f64> {
    let (_, page) = testkit::get_text(&stack.client, format!("http://{consumer}/metrics")).await;
    let series = format!("taskq_credentials_ok{{queue=\"{}\"}} ", stack.queue_name);
    page.lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_file_holds_the_queue_and_its_rotation_is_used_without_a_restart() {
    let stack = mock_for("replicate", &[]);
    let key = TempFile::write(&format!("{}-key", stack.queue_name), "a-revoked-key\n");
    let mut api = testkit::replicate_profile(&stack.services.mock.base(), KEY_VAR);
    api["headers"]["Authorization"] = json!(format!("Bearer ${{file:{}}}", key.path()));
    let file = TempFile::write(
        &format!("{}.json", stack.queue_name),
        &json!({ &stack.queue_name: {"poll_interval_ms": 100, "api": api} }).to_string(),
    );
    let metrics = testkit::free_addr();
    let _consumer = stack.consumer(&[
        ("QUEUES_FILE", &file.path()),
        ("SECRETS_RELOAD_MS", "200"),
        ("MAX_ATTEMPTS", "1"),
        ("CONSUMER_ADDR", &metrics.to_string()),
    ]);
    let names: Vec<String> = (0..20).map(|i| format!("rot-{i}")).collect();
    for name in &names {
        let (status, view) = stack.submit(name, &json!({"prompt": name})).await;
        assert!(status.is_success(), "{view}");
    }

    // Act 1: the provider refuses the key in the file.
    let problem = testkit::eventually(
        Duration::from_secs(20),
        "the credential's problem",
        || async {
            let health = credential_health(&stack, metrics).await;
            (health["ok"] == false).then_some(health["problem"].as_str()?.to_owned())
        },
    )
    .await;
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
    for name in &names {
        let view = stack.wait_final(name, Duration::from_secs(30)).await;
        assert_eq!(view["state"], "done", "{view}");
        assert_eq!(view["attempts"], 0, "{view}");
    }
    let health = credential_health(&stack, metrics).await;
    assert_eq!(health, json!({"ok": true, "problem": null}));
    assert_eq!(credentials_ok(&stack, metrics).await, Some(1.0));
}
