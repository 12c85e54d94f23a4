//! The mock's OAuth2 credentials over real sockets: its token endpoint (both client grants,
//! client authentication both ways, the JWT bearer grant with a key made here), its tokens on API
//! calls (refused once expired or revoked), `/stats` counted exactly, and no secret in the
//! binary's trace log. AWS signatures are in `credentials_sigv4.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mock_api::credentials::Settings;
use mock_api::{Config, Secret, Shape};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Answer, Api, start};

const CLIENT_ID: &str = "client-7";
const CLIENT_SECRET: &str = "s3cret:with&odd=chars";
const REFRESH_TOKEN: &str = "refresh-5d2c";

/// How a token request authenticates its client.
#[derive(Clone, Copy)]
enum ClientAuth<'a> {
    None,
    Basic(&'a str, &'a str),
    Body(&'a str, &'a str),
}

impl Api {
    /// `POST /oauth/token` with `params` and the client authenticated by `auth`.
    async fn token_request(&self, params: &[(&str, &str)], auth: ClientAuth<'_>) -> Answer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut request = self.http.post(format!("{}/oauth/token", self.base));
        match auth {
            ClientAuth::None => {}
            ClientAuth::Basic(id, secret) => {
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let joined: String = [encode(id), encode(secret)].join(":");
                let value = format!("Basic {}", STANDARD.encode(joined));
                request = request.header("authorization", value);
            }
            ClientAuth::Body(id, secret) => {
                form.extend_pairs([("client_id", id), ("client_secret", secret)]);
            }
        }
        let request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish());
        self.send(request).await
    }

    /// A client credentials token, which must be issued.
    async fn client_token(&self) -> String {
        let grant = [("grant_type", "client_credentials")];
        let issued = self
            .token_request(&grant, ClientAuth::Basic(CLIENT_ID, CLIENT_SECRET))
            .await;
        assert_eq!(issued.status, StatusCode::OK, "{issued:?}");
        issued.body["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// A Replicate poll of a job that does not exist, with `authorization` if given: 404 when
    /// admitted, advancing nothing.
    async fn poll_with(&self, authorization: Option<&str>) -> Answer {
        let mut request = self.http.get(format!("{}/v1/predictions/none", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        self.send(request).await
    }

    /// `POST /oauth/{action}`, answered 204.
    async fn oauth_control(&self, action: &str) {
        let url = format!("{}/oauth/{action}", self.base);
        let response = self.http.post(url).send().await.expect("an answer");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}

/// The mock speaking `shape` at once, its credentials `credentials`.
fn config(shape: Shape, credentials: Settings) -> Config {
    Config {
        shape,
        delay_ms: 0,
        credentials,
        ..Config::default()
    }
}

fn oauth() -> Settings {
    Settings {
        oauth_client_id: Some(CLIENT_ID.into()),
        oauth_client_secret: Some(Secret(CLIENT_SECRET.into())),
        oauth_refresh_token: Some(Secret(REFRESH_TOKEN.into())),
        ..Settings::default()
    }
}

fn assert_refused(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["error"], error, "{answer:?}");
}

#[tokio::test]
async fn the_client_grants_issue_tokens_to_the_client_authenticated_either_way() {
    let api = start(config(Shape::Replicate, oauth())).await;
    let client_credentials = [("grant_type", "client_credentials"), ("scope", "a b")];

    for auth in [
        ClientAuth::Basic(CLIENT_ID, CLIENT_SECRET),
        ClientAuth::Body(CLIENT_ID, CLIENT_SECRET),
    ] {
        let issued = api.token_request(&client_credentials, auth).await;
        assert_eq!(issued.status, StatusCode::OK, "{issued:?}");
        assert_eq!(issued.body["token_type"], "Bearer");
        assert_eq!(issued.body["expires_in"], 3600);
        assert!(
            issued.body["access_token"]
                .as_str()
                .is_some_and(|t| t.len() >= 32)
        );
    }
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_TOKEN),
    ];
    let refreshed = api
        .token_request(&refresh, ClientAuth::Body(CLIENT_ID, CLIENT_SECRET))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");

    let basic = |secret| ClientAuth::Basic(CLIENT_ID, secret);
    let wrong_secret = api
        .token_request(&client_credentials, basic("s3cret"))
        .await;
    assert_refused(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
    let unauthenticated = api
        .token_request(&client_credentials, ClientAuth::None)
        .await;
    assert_refused(&unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong_refresh = [("grant_type", "refresh_token"), ("refresh_token", "old")];
    let refused = api
        .token_request(&wrong_refresh, basic(CLIENT_SECRET))
        .await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_grant");
    let unknown = [("grant_type", "password")];
    let refused = api.token_request(&unknown, basic(CLIENT_SECRET)).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let refused = api.token_request(&[], basic(CLIENT_SECRET)).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_request");
    let both_ways = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
    ];
    let refused = api.token_request(&both_ways, basic(CLIENT_SECRET)).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_request");
    for refusal in [&wrong_secret, &refused] {
        assert!(!refusal.body.to_string().contains(CLIENT_SECRET));
    }

    api.assert_stats(&[
        ("token_requests", 9),
        ("tokens_issued", 3),
        ("token_refused", 6),
        ("calls", 0),
    ])
    .await;
    api.reset().await;
    api.assert_stats(&[
        ("token_requests", 0),
        ("tokens_issued", 0),
        ("token_refused", 0),
    ])
    .await;
}

#[tokio::test]
async fn api_calls_need_a_token_the_mock_issued_instead_of_the_api_key() {
    let api = start(config(Shape::Replicate, oauth())).await;
    let token = api.client_token().await;

    let without = api.poll_with(None).await;
    let url = format!("{}/v1/predictions/none", api.base);
    let with_key = api.send(api.with_key(api.http.get(url))).await;
    let made_up = api.poll_with(Some("Bearer made-up")).await;
    let with_token = api.poll_with(Some(&format!("Bearer {token}"))).await;

    for refused in [&without, &with_key, &made_up] {
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(refused.body["error"], "invalid or expired token");
    }
    assert_eq!(with_token.status, StatusCode::NOT_FOUND, "{with_token:?}");
    // The token survives a reset.
    api.assert_stats(&[("calls", 4), ("unauthorized", 3), ("jobs", 0)])
        .await;
    api.reset().await;
    let after_reset = api.poll_with(Some(&format!("Bearer {token}"))).await;
    assert_eq!(after_reset.status, StatusCode::NOT_FOUND);
    api.assert_stats(&[("calls", 1), ("unauthorized", 0)]).await;
}

#[tokio::test]
async fn a_token_is_refused_once_its_lifetime_has_passed() {
    let settings = Settings {
        token_ttl_secs: 1,
        ..oauth()
    };
    let api = start(config(Shape::Replicate, settings)).await;
    let issued_at = Instant::now();
    let token = api.client_token().await;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        api.poll_with(Some(&bearer)).await.status,
        StatusCode::NOT_FOUND
    );

    let refused = testkit::eventually(Duration::from_secs(5), "the token refused", || async {
        let answer = api.poll_with(Some(&bearer)).await;
        (answer.status != StatusCode::NOT_FOUND).then_some(answer)
    })
    .await;

    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert!(issued_at.elapsed() >= Duration::from_secs(1));
    assert_eq!(api.stats().await["unauthorized"], 1);
}

#[tokio::test]
async fn a_revoked_credential_refuses_its_tokens_and_grants_until_restored() {
    let api = start(config(Shape::Replicate, oauth())).await;
    let bearer = format!("Bearer {}", api.client_token().await);

    api.oauth_control("revoke").await;

    let call = api.poll_with(Some(&bearer)).await;
    assert_eq!(call.status, StatusCode::UNAUTHORIZED);
    let grant = [("grant_type", "client_credentials")];
    let auth = ClientAuth::Body(CLIENT_ID, CLIENT_SECRET);
    let refused = api.token_request(&grant, auth).await;
    assert_refused(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_TOKEN),
    ];
    let refused = api.token_request(&refresh, auth).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_grant");

    api.oauth_control("restore").await;

    let renewed = format!("Bearer {}", api.client_token().await);
    assert_eq!(
        api.poll_with(Some(&renewed)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.poll_with(Some(&bearer)).await.status,
        StatusCode::UNAUTHORIZED
    );
    api.assert_stats(&[
        ("token_requests", 4),
        ("tokens_issued", 2),
        ("token_refused", 2),
        ("unauthorized", 2),
        ("calls", 3),
    ])
    .await;
}

/// A directory of its own for a test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mock-api-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The PKCS#8 DER of `key`'s private half (what ring signs with).
fn pkcs8_der(key: &testkit::RsaKey) -> Vec<u8> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_file(key.private_pem()).expect("a PKCS#8 key");
    der.secret_pkcs8_der().to_vec()
}

/// A JWT of `claims` signed RS256 with the PKCS#8 key `der`.
fn jwt(der: &[u8], claims: &Value) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signed = format!(
        "{}.{}",
        encode(&json!({"alg": "RS256", "typ": "JWT"})),
        encode(claims)
    );
    let key = ring::signature::RsaKeyPair::from_pkcs8(der).expect("an RSA key");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .expect("signed");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn a_service_account_assertion_signed_with_the_key_is_exchanged_for_a_token() {
    let key = testkit::RsaKey::generate();
    let private = pkcs8_der(&key);
    let settings = Settings {
        jwt_public_key_file: Some(key.public_pem()),
        ..Settings::default()
    };
    let api = start(config(Shape::Google, settings)).await;
    let now = testkit::epoch_ms() / 1000;
    let claims = |iat: u64, exp: u64, aud: &str| {
        json!({
            "iss": "robot@project.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": aud, "iat": iat, "exp": exp,
        })
    };
    let exchange = |assertion: String| {
        let api = &api;
        async move {
            let grant = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            api.token_request(&grant, ClientAuth::None).await
        }
    };
    let aud = format!("{}/oauth/token", api.base);

    let issued = exchange(jwt(&private, &claims(now, now + 3600, &aud))).await;
    assert_eq!(issued.status, StatusCode::OK, "{issued:?}");
    let token = issued.body["access_token"].as_str().expect("a token");
    let poll = api
        .http
        .get(format!("{}/v1/models/m/operations/1", api.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(poll.status(), StatusCode::NOT_FOUND);

    let good = jwt(&private, &claims(now, now + 3600, &aud));
    let (head, rest) = good.split_once('.').expect("a JWT");
    let (_, signature) = rest.split_once('.').expect("a JWT");
    let other =
        URL_SAFE_NO_PAD.encode(claims(now, now + 3600, "https://evil/oauth/token").to_string());
    let tampered = format!("{head}.{other}.{signature}");
    let expired = jwt(&private, &claims(now - 4000, now - 400, &aud));
    let too_long = jwt(&private, &claims(now, now + 7200, &aud));
    let wrong_audience = jwt(
        &private,
        &claims(now, now + 3600, "https://example.com/token"),
    );
    for assertion in [tampered, expired, too_long, wrong_audience] {
        let refused = exchange(assertion).await;
        assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    api.assert_stats(&[
        ("token_requests", 5),
        ("tokens_issued", 1),
        ("token_refused", 4),
    ])
    .await;

    let dir = scratch("jwt");
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .expect("written");
    let settings = Settings {
        jwt_public_key_file: Some(not_a_key),
        ..Settings::default()
    };
    assert!(mock_api::app(config(Shape::Google, settings)).is_err());
    std::fs::remove_dir_all(dir).expect("cleaned up");
}

#[tokio::test]
async fn the_binary_logs_no_secret_at_trace_level() {
    let dir = scratch("log");
    let log = dir.join("mock-api.log");
    let env = [
        ("RUST_LOG", "trace".to_owned()),
        ("MOCK_SHAPE", "replicate".to_owned()),
        ("MOCK_DELAY_MS", "0".to_owned()),
        ("MOCK_API_KEY", "api-key-3e1".to_owned()),
        ("MOCK_OAUTH_CLIENT_ID", CLIENT_ID.to_owned()),
        ("MOCK_OAUTH_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("MOCK_OAUTH_REFRESH_TOKEN", REFRESH_TOKEN.to_owned()),
    ];
    let program = Path::new(env!("CARGO_BIN_EXE_mock-api"));
    let mock = testkit::MockApi::try_start(program, &env, false, Some(&log)).expect("started");
    let api = Api {
        base: mock.base(),
        http: testkit::http_client(),
        shape: Shape::Replicate,
    };
    let token = api.client_token().await;
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "wrong-refresh"),
    ];
    api.token_request(&refresh, ClientAuth::Body(CLIENT_ID, CLIENT_SECRET))
        .await;
    assert_eq!(
        api.poll_with(Some(&format!("Bearer {token}"))).await.status,
        StatusCode::NOT_FOUND
    );
    let stats = api.stats().await;
    assert_eq!(stats["tokens_issued"], 1, "{stats}");
    drop(mock);

    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(logged.contains("mock-api listening"), "{logged}");
    for secret in [
        CLIENT_SECRET,
        REFRESH_TOKEN,
        "api-key-3e1",
        &token,
        "wrong-refresh",
    ] {
        assert!(!logged.contains(secret), "a secret in the log:\n{logged}");
    }
    std::fs::remove_dir_all(dir).expect("cleaned up");
}
