//! Compiling profiles: every shape, and every refusal naming its field.

use serde_json::json;

use serde_json::Value;

use super::*;
use crate::api::profile::{IdSource, StatusRule, Target, Verdict};
use reqwest::header::HeaderName;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret".to_owned()),
        "RESOURCE" => Some("my-docs".to_owned()),
        _ => None,
    }
}

fn compile(spec: Value) -> Result<Profile, ProfileError> {
    serde_json::from_value::<ApiSpec>(spec)
        .unwrap()
        .compile(env)
}

fn replicate_like() -> Value {
    json!({
        "base_url": "https://api.example.com",
        "headers": {"Authorization": "Bearer ${TOKEN}"},
        "submit": {"path": "/v1/jobs", "body": {"input": "{{payload}}"}, "id": "/id"},
        "poll": {"path": "/v1/jobs/{{id}}"},
        "status": {"pointer": "/status", "processing": ["queued", "running"],
                   "done": ["succeeded"], "failed": ["failed", "canceled"]},
        "result": "/output",
        "error": "/error"
    })
}

/// `spec` with the member at `pointer` set to `value` (added when absent).
fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
    let (parent, member) = pointer.rsplit_once('/').unwrap();
    spec.pointer_mut(parent).unwrap()[member] = value;
    spec
}

#[test]
fn a_full_profile_compiles() {
    let profile = compile(replicate_like()).unwrap();
    let submit = profile.submit.as_ref().unwrap();
    assert_eq!(submit.request.method, Method::POST);
    assert_eq!(submit.id, IdSource::Pointer("/id".into()));
    assert_eq!(profile.poll.as_ref().unwrap().request.method, Method::GET);
    assert_eq!(profile.result.as_deref(), Some("/output"));
    assert_eq!(profile.headers[0].0, "authorization");
    assert!(!format!("{profile:?}").contains("s3cret"));
}

#[test]
fn a_base_url_reads_the_environment() {
    let spec = with(
        replicate_like(),
        "/base_url",
        json!("https://${RESOURCE}.cognitiveservices.azure.com/v1"),
    );
    let profile = compile(spec).unwrap();
    assert_eq!(
        profile.base.as_str(),
        "https://my-docs.cognitiveservices.azure.com/v1"
    );
}

#[test]
fn each_mistake_is_refused_naming_its_field() {
    let cases = [
        (
            with(replicate_like(), "/base_url", json!("ftp://x")),
            "base_url",
        ),
        (
            with(replicate_like(), "/base_url", json!("https://u:p@x")),
            "base_url",
        ),
        (
            with(
                replicate_like(),
                "/base_url",
                json!("https://${NOWHERE}.test"),
            ),
            "base_url",
        ),
        (
            with(replicate_like(), "/headers", json!({"X": "${MISSING}"})),
            "headers.X",
        ),
        (
            with(replicate_like(), "/submit/id", json!("id")),
            "submit.id",
        ),
        (
            with(replicate_like(), "/submit/path", json!("/v1/{{id}}")),
            "submit",
        ),
        (
            with(replicate_like(), "/submit/body", json!({"a": "{{nope}}"})),
            "submit.body",
        ),
        (
            with(replicate_like(), "/submit/method", json!("BREW")),
            "submit.method",
        ),
        (with(replicate_like(), "/poll", json!({})), "poll"),
        (
            with(replicate_like(), "/poll", json!({"path": "v1"})),
            "poll.path",
        ),
        (
            with(replicate_like(), "/status/done", json!([])),
            "status.done",
        ),
        (
            with(replicate_like(), "/status/failed", json!(["succeeded"])),
            "status",
        ),
        (with(replicate_like(), "/status", json!({})), "status"),
        (
            with(
                replicate_like(),
                "/status",
                json!({"http": {"done": [200, 700]}}),
            ),
            "status.http",
        ),
        (
            with(
                replicate_like(),
                "/status",
                json!({"http": {"done": [200], "processing": [200]}}),
            ),
            "status.http",
        ),
        (with(replicate_like(), "/result", json!("output")), "result"),
    ];
    for (spec, field) in cases {
        let err = compile(spec.clone()).unwrap_err();
        assert_eq!(err.field, field, "{spec}: {err}");
    }
    let no_submit = with(replicate_like(), "/submit", Value::Null);
    assert_eq!(compile(no_submit).unwrap_err().field, "poll");
}

#[test]
fn a_missing_variable_is_named_never_a_value() {
    let spec = with(replicate_like(), "/headers", json!({"X-Key": "${NOT_SET}"}));
    let err = compile(spec).unwrap_err().to_string();
    assert!(err.contains("NOT_SET"), "{err}");
    assert_eq!(
        err,
        "api.headers.X-Key: environment variable NOT_SET is not set"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let spec = with(
        replicate_like(),
        "/poll",
        json!({"path": "/x", "methd": "GET"}),
    );
    assert!(serde_json::from_value::<ApiSpec>(spec).is_err());
}

#[test]
fn pointer_statuses_compare_as_json_and_absent_values_follow_the_rule() {
    let google = compile(json!({
        "base_url": "https://x",
        "submit": {"path": "/v1/run", "id": "/name"},
        "poll": {"path": "/v1/{{id}}"},
        "status": {"pointer": "/done", "processing": [false], "done": [true], "absent": "processing"},
    }))
    .unwrap();
    let Some(StatusRule::Pointer(google)) = google.status else {
        panic!("a pointer rule")
    };
    assert_eq!(google.verdict(&json!({"done": true})), Ok(Verdict::Done));
    assert_eq!(
        google.verdict(&json!({"done": false})),
        Ok(Verdict::Processing)
    );
    assert_eq!(
        google.verdict(&json!({"name": "x"})),
        Ok(Verdict::Processing)
    );
    let unknown = google.verdict(&json!({"done": "yes"})).unwrap_err();
    assert!(unknown.contains("\"yes\""), "{unknown}");

    let numbers = compile(with(
        replicate_like(),
        "/status",
        json!({"pointer": "/s", "processing": [1, 2], "done": [3]}),
    ))
    .unwrap();
    let Some(StatusRule::Pointer(numbers)) = numbers.status else {
        panic!("a pointer rule")
    };
    assert_eq!(numbers.verdict(&json!({"s": 3})), Ok(Verdict::Done));
    assert!(numbers.verdict(&json!({})).is_err());
}

#[test]
fn http_statuses_read_the_code() {
    let stability = compile(with(
        replicate_like(),
        "/status",
        json!({"http": {"processing": [202], "done": [200]}}),
    ))
    .unwrap();
    let Some(StatusRule::Http(stability)) = stability.status else {
        panic!("an http rule")
    };
    assert_eq!(stability.verdict(202), Some(Verdict::Processing));
    assert_eq!(stability.verdict(200), Some(Verdict::Done));
    assert_eq!(stability.verdict(404), None);
}

#[test]
fn ids_may_come_from_a_header_and_polls_from_a_whole_url() {
    let azure = compile(json!({
        "base_url": "https://x.cognitiveservices.azure.com",
        "headers": {"Ocp-Apim-Subscription-Key": "${TOKEN}"},
        "submit": {"path": "/analyze", "id": "header:Operation-Location"},
        "poll": {"url": "{{id}}"},
        "status": {"pointer": "/status", "processing": ["notStarted", "running"], "done": ["succeeded"], "failed": ["failed"]},
    }))
    .unwrap();
    let submit = azure.submit.unwrap();
    assert_eq!(
        submit.id,
        IdSource::Header(HeaderName::from_static("operation-location"))
    );
    assert!(matches!(azure.poll.unwrap().request.target, Target::Url(_)));
}

#[test]
fn the_toml_form_reads_the_same() {
    let toml = r#"
        base_url = "https://api.example.com"
        headers = { Authorization = "Bearer ${TOKEN}" }
        submit = { path = "/v1/jobs", body = { input = "{{payload}}" }, id = "/id" }
        poll = { path = "/v1/jobs/{{id}}" }
        status = { pointer = "/status", processing = ["running"], done = ["succeeded"] }
    "#;
    let spec: ApiSpec = toml::from_str(toml).unwrap();
    let profile = spec.compile(env).unwrap();
    assert!(profile.submit.is_some());
}

/// fal.ai's queue: the submit answers the URLs of its status and its result, which the poll
/// and the fetch follow.
fn fal_like() -> Value {
    json!({
        "base_url": "https://queue.fal.run",
        "headers": {"Authorization": "Key ${TOKEN}"},
        "submit": {"path": "/fal-ai/flux/dev", "body": "{{payload}}", "id": "/request_id"},
        "poll": {"url": "{{submit.status_url}}"},
        "status": {"pointer": "/status", "processing": ["IN_QUEUE", "IN_PROGRESS"], "done": ["COMPLETED"]},
        "fetch": {"url": "{{submit.response_url}}"},
    })
}

#[test]
fn steps_take_their_own_headers_bodies_and_the_values_earlier_answers_gave() {
    let fal = compile(fal_like()).unwrap();
    assert_eq!(
        fal.kept,
        [
            vec!["status_url".to_owned()],
            vec!["response_url".to_owned()]
        ]
    );
    assert!(fal.fetch.is_some());

    let textract = compile(json!({
        "base_url": "https://textract.us-east-1.amazonaws.com",
        "headers": {"Content-Type": "application/x-amz-json-1.1"},
        "submit": {"path": "/", "headers": {"X-Amz-Target": "Textract.StartDocumentTextDetection"},
                   "body": {"DocumentLocation": "{{payload.location}}"}, "id": "/JobId"},
        "poll": {"method": "POST", "path": "/", "headers": {"X-Amz-Target": "Textract.GetDocumentTextDetection"},
                 "body": {"JobId": "{{id}}"},
                 "pages": {"next": "/NextToken", "param": "NextToken", "in": "body", "merge": "/Blocks"}},
        "status": {"pointer": "/JobStatus", "processing": ["IN_PROGRESS"], "done": ["SUCCEEDED"], "failed": ["FAILED"]},
        "error": "/StatusMessage",
    }))
    .unwrap();
    let poll = textract.poll.unwrap();
    assert_eq!(poll.request.headers.len(), 1);
    assert_eq!(poll.pages.unwrap().max, 100);

    let forms = compile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/jobs", "form": {"prompt": "{{payload.prompt}}"},  "id": "/id"},
        "poll": {"path": "/jobs/{{id}}"},
        "status": {"pointer": "/status", "done": ["done"]},
        "fetch": {"path": "/jobs/{{id}}/audio/{{done.lang}}", "as": "base64"},
    }))
    .unwrap();
    assert!(matches!(
        forms.submit.unwrap().request.body,
        Some(crate::api::profile::Body::Form(_))
    ));
}

#[test]
fn a_provider_that_only_pushes_needs_a_submit_and_a_hook() {
    let deepgram = json!({
        "base_url": "https://api.deepgram.com",
        "headers": {"Authorization": "Token ${TOKEN}"},
        "submit": {"path": "/v1/listen?callback={{webhook_url}}&model=nova-3",
                   "body": {"url": "{{payload.url}}"}, "id": "/request_id"},
        "hook": {"result": "/results"},
    });
    let pushed = compile(deepgram.clone()).unwrap();
    assert!(pushed.poll.is_none() && pushed.hook.is_some());
    assert!(pushed.submit.unwrap().uses_webhook_url());
    let mut no_hook = deepgram;
    no_hook.as_object_mut().unwrap().remove("hook");
    assert_eq!(compile(no_hook).unwrap_err().field, "poll");
}

#[test]
fn each_mistake_of_a_step_is_refused_naming_its_field() {
    let cases = [
        (
            with(fal_like(), "/submit/form", json!({"a": "b"})),
            "submit",
        ),
        (
            with(
                fal_like(),
                "/submit/pages",
                json!({"next": "/n", "param": "n", "merge": "/m"}),
            ),
            "submit.pages",
        ),
        (with(fal_like(), "/poll/id", json!("/id")), "poll.id"),
        (with(fal_like(), "/poll/as", json!("text")), "poll.as"),
        (with(fal_like(), "/poll/url", json!("{{done.x}}")), "poll"),
        (
            with(fal_like(), "/poll/url", json!("{{webhook_url}}")),
            "poll",
        ),
        (
            with(
                fal_like(),
                "/submit/body",
                json!({"u": "{{submit.status_url}}"}),
            ),
            "submit",
        ),
        (
            with(fal_like(), "/fetch/url", json!("https://evil.test/x")),
            "fetch.url",
        ),
        (
            with(fal_like(), "/fetch/result", json!("x")),
            "fetch.result",
        ),
        (
            with(
                with(fal_like(), "/fetch/as", json!("text")),
                "/fetch/result",
                json!("/x"),
            ),
            "fetch.result",
        ),
        (
            with(
                fal_like(),
                "/fetch/pages",
                json!({"next": "/n", "param": "", "merge": "/m"}),
            ),
            "fetch.pages.param",
        ),
        (
            with(
                fal_like(),
                "/fetch/pages",
                json!({"next": "n", "param": "p", "merge": "/m"}),
            ),
            "fetch.pages.next",
        ),
        (
            with(fal_like(), "/hosts", json!(["ftp://cdn.test"])),
            "hosts.0",
        ),
        (
            with(
                with(fal_like(), "/submit/body", Value::Null),
                "/submit/multipart",
                json!({"f": {"url": "{{payload.u}}", "base64": "x"}}),
            ),
            "submit.multipart.f",
        ),
        (
            with(fal_like(), "/submit/headers", json!({"X": "${MISSING}"})),
            "submit.headers.X",
        ),
        (
            with(fal_like(), "/http_error", json!(["error"])),
            "http_error.0",
        ),
        (
            with(
                fal_like(),
                "/hook",
                json!({"status": {"http": {"done": [200]}}}),
            ),
            "hook.status",
        ),
        (with(fal_like(), "/status", Value::Null), "status"),
    ];
    for (spec, field) in cases {
        let err = compile(spec.clone()).unwrap_err();
        assert_eq!(err.field, field, "{spec}: {err}");
    }
    // A fetch on another host is allowed once the profile lists it.
    let cdn = with(fal_like(), "/fetch/url", json!("https://cdn.test/x"));
    assert!(compile(with(cdn, "/hosts", json!(["https://cdn.test"]))).is_ok());
}

#[test]
fn an_auth_block_compiles_and_its_mistakes_name_the_key_never_the_value() {
    let oauth = json!({"oauth2": {"token_url": "https://auth.example.com/oauth/token",
        "grant": "client_credentials", "client_id": "the-id", "client_secret": "${TOKEN}",
        "scope": "jobs"}});
    let profile = compile(with(replicate_like(), "/auth", oauth.clone())).unwrap();
    assert_eq!(
        profile.auth.as_ref().unwrap().describe(),
        "oauth2 client_credentials, tokens from https://auth.example.com"
    );
    let sigv4 = json!({"aws_sigv4": {"region": "eu-west-1", "service": "textract",
        "access_key_id": "AKID", "secret_access_key": "${TOKEN}"}});
    let profile = compile(with(replicate_like(), "/auth", sigv4)).unwrap();
    assert_eq!(
        profile.auth.as_ref().unwrap().describe(),
        "aws_sigv4 eu-west-1 textract"
    );

    let refusals = [
        (
            with(oauth.clone(), "/oauth2/client_secret", json!("${NOT_SET}")),
            "auth.oauth2.client_secret",
            "NOT_SET",
        ),
        (
            with(
                oauth.clone(),
                "/oauth2/refresh_token",
                json!("s3cret-refresh"),
            ),
            "auth.oauth2.refresh_token",
            "only the refresh_token grant",
        ),
        (
            with(oauth.clone(), "/oauth2/token_url", json!("ftp://x")),
            "auth.oauth2.token_url",
            "http",
        ),
        (
            json!({"google_service_account": {"key_file": "/nonexistent/key.json",
                   "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}}),
            "auth.google_service_account.key_file",
            "/nonexistent/key.json",
        ),
        (
            json!({"aws_sigv4": {"region": "eu west", "service": "textract",
                   "access_key_id": "AKID", "secret_access_key": "s3cret-key"}}),
            "auth.aws_sigv4.region",
            "letters",
        ),
    ];
    for (auth, field, said) in refusals {
        let error = compile(with(replicate_like(), "/auth", auth))
            .err()
            .unwrap();
        assert_eq!(error.field, field, "{error}");
        assert!(error.message.contains(said), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
    let unknown = serde_json::from_value::<ApiSpec>(with(
        replicate_like(),
        "/auth",
        json!({"oauth2": {"token_url": "https://a.example.com/t", "grant": "client_credentials",
               "client_id": "i", "client_secret": "s", "clientsecret": "typo"}}),
    ));
    assert!(unknown.unwrap_err().to_string().contains("clientsecret"));
}
