//! The token source against a token endpoint on a real socket.

use super::*;
use crate::api::secret::secret_text;
use std::sync::atomic::{AtomicU64, Ordering};

fn text(value: &str) -> Arc<SecretText> {
    Arc::new(secret_text(value, |_| None, Duration::from_secs(10)).unwrap())
}

/// A token endpoint on a real socket that takes 200 ms per token, counts its requests and
/// checks the client's Basic credentials; `expires_in` as given.
async fn endpoint(expires_in: u64) -> (Url, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let counted = Arc::clone(&counted);
            async move {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let basic = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("the-client:s%2Fcret")
                );
                if basic != expected || !body.contains("grant_type=client_credentials") {
                    return (
                        axum::http::StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({"error": "invalid_client"})),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(serde_json::json!({
                        "access_token": format!("token-{n}"),
                        "token_type": "Bearer",
                        "expires_in": expires_in,
                    })),
                )
            }
        }),
    );
    (serve(app).await, requests)
}

/// Serves `app` on a real socket; answers the URL of its `/token`.
async fn serve(app: axum::Router) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Url::parse(&format!("http://{addr}/token")).unwrap()
}

fn source(url: Url, secret: &str) -> TokenSource {
    TokenSource::new(
        Arc::new(Minter::OAuth2 {
            token_url: url,
            client_id: text("the-client"),
            client_auth: ClientAuth::Basic,
            grant: Grant::ClientCredentials {
                secret: text(secret),
            },
            scope: None,
            audience: None,
        }),
        crate::client::build(&crate::client::ClientSettings {
            timeout: Duration::from_secs(5),
            connections: 4,
            https: false,
            ca_files: Vec::new(),
        })
        .unwrap(),
        Arc::new(Health::default()),
    )
}

#[tokio::test]
async fn a_hundred_calls_at_once_cause_one_token_request_and_a_refused_token_one_more() {
    let (url, requests) = endpoint(3600).await;
    let tokens = Arc::new(source(url, "s/cret"));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let tokens = Arc::clone(&tokens);
        calls.spawn(async move { tokens.bearer(None).await });
    }
    while let Some(bearer) = calls.join_next().await {
        let bearer = bearer.unwrap().unwrap();
        assert_eq!(bearer, "Bearer token-1");
        assert!(bearer.is_sensitive());
    }
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    // Ten calls see the API refuse token-1: one fresh token for all of them.
    let refused = HeaderValue::from_static("Bearer token-1");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (tokens, refused) = (Arc::clone(&tokens), refused.clone());
        calls.spawn(async move { tokens.bearer(Some(&refused)).await });
    }
    while let Some(bearer) = calls.join_next().await {
        assert_eq!(bearer.unwrap().unwrap(), "Bearer token-2");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_is_refreshed_a_tenth_of_its_life_before_it_ends() {
    // A 2 s token (asked for at t0, answered at t0 + 0.2 s) is due for refresh from
    // t0 + 1.8 s, while it is still valid until t0 + 2 s.
    let (url, requests) = endpoint(2).await;
    let tokens = source(url, "s/cret");
    assert_eq!(tokens.bearer(None).await.unwrap(), "Bearer token-1");
    assert_eq!(tokens.bearer(None).await.unwrap(), "Bearer token-1");
    tokio::time::sleep(Duration::from_millis(1650)).await;
    assert_eq!(tokens.bearer(None).await.unwrap(), "Bearer token-2");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_client_is_a_problem_held_with_backoff_without_its_secret() {
    let (url, requests) = endpoint(3600).await;
    let tokens = source(url, "wrong-secret");
    let error = tokens.bearer(None).await.unwrap_err();
    assert_eq!(
        error,
        CredentialError::Refused("the token endpoint answered HTTP 401 (invalid_client)".into())
    );
    assert!(!format!("{error} {tokens:?}").contains("wrong-secret"));
    // Within the backoff, no request is made.
    let held = tokens.bearer(None).await.unwrap_err();
    assert!(matches!(held, CredentialError::Held(_)), "{held:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

/// A token endpoint that answers `first` to its first request and a token to every later one.
async fn endpoint_failing_once(first: axum::http::StatusCode) -> (Url, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    return (first, axum::Json(serde_json::json!({"error": "busy"})));
                }
                let token =
                    serde_json::json!({"access_token": format!("token-{n}"), "expires_in": 3600});
                (axum::http::StatusCode::OK, axum::Json(token))
            }
        }),
    );
    (serve(app).await, requests)
}

/// 429 and 5xx are the endpoint's trouble, not the credential's: the calls wait out a backoff
/// (no request within it), and the next request after it gets the token.
#[tokio::test]
async fn an_unavailable_token_endpoint_is_tried_again_after_a_backoff() {
    for status in [
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let (url, requests) = endpoint_failing_once(status).await;
        let tokens = source(url, "s/cret");
        let error = tokens.bearer(None).await.unwrap_err();
        assert_eq!(
            error,
            CredentialError::Unavailable(format!(
                "the token endpoint answered HTTP {} (busy)",
                status.as_u16()
            ))
        );
        let held = tokens.bearer(None).await.unwrap_err();
        assert!(matches!(held, CredentialError::Held(_)), "{held:?}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "none within the backoff"
        );

        let deadline = Instant::now() + Duration::from_secs(10);
        let bearer = loop {
            match tokens.bearer(None).await {
                Ok(bearer) => break bearer,
                Err(CredentialError::Held(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("{status}: {error:?}"),
            }
        };
        assert_eq!(bearer.to_str().unwrap(), "Bearer token-2");
        assert_eq!(requests.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_unavailable_with_its_cause() {
    // A port nothing listens on: bound, then let go.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = Url::parse(&format!("http://{addr}/oauth/token?tenant=x")).unwrap();
    let error = source(url, "s/cret").bearer(None).await.unwrap_err();
    let CredentialError::Unavailable(said) = error else {
        panic!("{error:?}");
    };
    assert!(
        said.starts_with("could not connect to the token endpoint: "),
        "{said}"
    );
    assert!(
        !said.contains("tenant") && !said.contains("s/cret"),
        "{said}"
    );
}
