//! Compiling profiles: every shape, and every refusal naming its field.

use serde_json::json;

use serde_json::Value;

use super::*;
use crate::api::profile::{IdSource, StatusRule, Target, Verdict};
use reqwest::header::HeaderName;

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "s3cret".to_owned())
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
