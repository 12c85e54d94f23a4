//! The mock's AWS Signature Version 4 check over real sockets: Textract calls signed by AWS's
//! own signing crate are served, and each way of signing wrong is refused with its provider's
//! error body; `/stats` counted exactly. OAuth2 is in `credentials_oauth.rs`.

mod support;

use std::time::{Duration, SystemTime};

use mock_api::credentials::Settings;
use mock_api::{Config, Secret, Shape};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Api, start};

const AWS_KEY_ID: &str = "AKIDMOCKEXAMPLE";
const AWS_SECRET: &str = "mock/secret+key";
const AWS_SESSION: &str = "session-token-81f";

fn aws() -> Settings {
    Settings {
        aws_access_key_id: Some(AWS_KEY_ID.into()),
        aws_secret_access_key: Some(Secret(AWS_SECRET.into())),
        aws_session_token: Some(Secret(AWS_SESSION.into())),
        ..Settings::default()
    }
}

/// A Textract call of `operation` with `body`, signed by AWS's signing crate with `secret` at
/// `time`; `sent` replaces the body after signing when given.
fn signed_textract(
    api: &Api,
    operation: &str,
    body: &Value,
    secret: &str,
    time: SystemTime,
    sent: Option<&Value>,
) -> reqwest::RequestBuilder {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let url = api.base.clone() + "/";
    let body = body.to_string();
    let target = format!("Textract.{operation}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let credentials = aws_credential_types::Credentials::new(
        AWS_KEY_ID,
        secret,
        Some(AWS_SESSION.to_owned()),
        None,
        "test",
    );
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("textract")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = api.http.post(&url);
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        request = request.header(name, value);
    }
    request.body(sent.map_or(body, Value::to_string))
}

#[tokio::test]
async fn textract_calls_signed_by_awss_own_signer_are_served_and_others_refused() {
    let api = start(Config {
        shape: Shape::Textract,
        delay_ms: 0,
        credentials: aws(),
        ..Config::default()
    })
    .await;
    let start_body = json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "doc.pdf"}}});
    let now = SystemTime::now();

    let started = signed_textract(
        &api,
        "StartDocumentTextDetection",
        &start_body,
        AWS_SECRET,
        now,
        None,
    );
    let started = api.send(started).await;
    assert_eq!(started.status, StatusCode::OK, "{started:?}");
    let job = json!({"JobId": started.body["JobId"]});
    let polled = signed_textract(
        &api,
        "GetDocumentTextDetection",
        &job,
        AWS_SECRET,
        now,
        None,
    );
    let polled = api.send(polled).await;
    assert_eq!(polled.body["JobStatus"], "IN_PROGRESS", "{polled:?}");

    let stale = now - Duration::from_secs(20 * 60);
    let other = json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "other.pdf"}}});
    // The same start, signed wrong in one way each: the secret, the time, another body sent.
    let start_signed = |secret, at, sent| {
        signed_textract(
            &api,
            "StartDocumentTextDetection",
            &start_body,
            secret,
            at,
            sent,
        )
    };
    let refusals = [
        start_signed("wrong", now, None),
        start_signed(AWS_SECRET, stale, None),
        start_signed(AWS_SECRET, now, Some(&other)),
        api.http
            .post(format!("{}/", api.base))
            .header("authorization", "mock-key")
            .header("x-amz-target", "Textract.StartDocumentTextDetection")
            .body(start_body.to_string()),
    ];
    let mut messages = Vec::new();
    for request in refusals {
        let refused = api.send(request).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert_eq!(refused.body["__type"], "InvalidSignatureException");
        let message = refused.body["message"]
            .as_str()
            .expect("a message")
            .to_owned();
        assert!(!message.contains(AWS_SECRET) && !message.contains(AWS_SESSION));
        messages.push(message);
    }
    assert!(messages[1].contains("15 minutes"), "{messages:?}");
    assert!(messages[3].contains("AWS4-HMAC-SHA256"), "{messages:?}");

    api.assert_stats(&[
        ("sigv4_verified", 2),
        ("sigv4_refused", 4),
        ("calls", 6),
        ("jobs", 1),
        ("unauthorized", 0),
    ])
    .await;
}
