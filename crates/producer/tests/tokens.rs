//! Who may call what, over a real socket against a real redis-server: with `ADMIN_TOKEN` the
//! admin routes and cancelling need it; with `CLIENT_TOKEN` enqueue, read and cancel need it (or
//! the admin token); the bearer scheme in any case.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{call, get, spawn_producer_with};
use testkit::RedisServer;

#[tokio::test]
async fn admin_routes_refuse_requests_without_the_token_when_one_is_set() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--admin-token", "s3cret"]).await;
    let admin = [
        (Method::GET, "/tasks?state=dead"),
        (Method::GET, "/stats"),
        (Method::POST, "/tasks/x/retry"),
        (Method::POST, "/dead/retry"),
        (Method::POST, "/purge?state=done"),
    ];

    for (method, path) in &admin {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
            let (status, headers, body) = call(addr, method.clone(), path, None, token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert!(body["error"].is_string());
        }
        let (status, _, _) = call(addr, method.clone(), path, None, Some("s3cret")).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Enqueue and read stay open; cancelling needs the admin token (an open cancel would let
    // anyone block a name for DEAD_TTL_SECS).
    assert_eq!(get(addr, "/?task-name=x").await.0, StatusCode::ACCEPTED);
    assert_eq!(get(addr, "/tasks/x").await.0, StatusCode::OK);
    for token in [None, Some("wrong")] {
        let (status, headers, body) = call(addr, Method::DELETE, "/tasks/x", None, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(
            body["error"].as_str().unwrap().contains("ADMIN_TOKEN"),
            "{body}"
        );
    }
    assert_eq!(
        get(addr, "/tasks/x").await.2["state"],
        "queued",
        "not cancelled"
    );
    let (status, _, body) = call(addr, Method::DELETE, "/tasks/x", None, Some("s3cret")).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    let (status, _, _) = call(
        addr,
        Method::POST,
        "/tasks",
        Some(json!({"name": "y"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_token_guards_enqueue_read_and_cancel_and_the_admin_token_works_there_too() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(
        &redis,
        &["--admin-token", "adm1n", "--client-token", "cl1ent"],
    )
    .await;
    let client_routes = [
        (Method::GET, "/?task-name=a", None),
        (Method::POST, "/tasks", Some(json!({"name": "b"}))),
        (Method::GET, "/tasks/a", None),
        (Method::DELETE, "/tasks/b", None),
    ];

    for (method, path, body) in &client_routes {
        for token in [None, Some("wrong"), Some("cl1en")] {
            let (status, _, answer) = call(addr, method.clone(), path, body.clone(), token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(
                answer["error"].as_str().unwrap().contains("CLIENT_TOKEN"),
                "{answer}"
            );
        }
    }
    // Nothing was written by the refused requests.
    let (status, _, _) = call(addr, Method::GET, "/tasks/a", None, Some("cl1ent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for token in ["cl1ent", "adm1n"] {
        for (method, path, body) in &client_routes {
            let (status, _, answer) =
                call(addr, method.clone(), path, body.clone(), Some(token)).await;
            assert!(
                status.is_success(),
                "{method} {path} {token}: {status} {answer}"
            );
        }
    }
    // The client token opens no admin route.
    let (status, _, _) = call(addr, Method::GET, "/stats", None, Some("cl1ent")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(addr, Method::GET, "/stats", None, Some("adm1n")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_whatever_its_case() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--admin-token", "s3cret"]).await;
    let stats = |authorization: &'static str| async move {
        testkit::http_client()
            .get(format!("http://{addr}/stats"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
            .status()
    };

    for accepted in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR  s3cret",
    ] {
        assert_eq!(stats(accepted).await, StatusCode::OK, "{accepted}");
    }
    for refused in ["Basic s3cret", "bearer wrong", "Bearers3cret"] {
        assert_eq!(stats(refused).await, StatusCode::UNAUTHORIZED, "{refused}");
    }
}
