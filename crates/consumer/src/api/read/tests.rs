//! Reading answers: submits (ids from a body or a header, refusals) and polls (processing, done, failed, from the body or the HTTP code).
use reqwest::header::HeaderValue;
use serde_json::json;

use super::super::spec::ApiSpec;
use super::*;

fn profile(spec: Value) -> Profile {
    serde_json::from_value::<ApiSpec>(spec)
        .unwrap()
        .compile(|_| Some("k".into()))
        .unwrap()
}

fn replicate() -> Profile {
    profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/v1/predictions", "id": "/id"},
        "poll": {"path": "/v1/predictions/{{id}}"},
        "status": {"pointer": "/status", "processing": ["starting", "processing"],
                   "done": ["succeeded"], "failed": ["failed", "canceled"]},
        "result": "/output",
        "error": "/error",
    }))
}

fn answer<'a>(status: u16, headers: &'a HeaderMap, body: &'a str) -> ApiResponse<'a> {
    ApiResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        retry_after: None,
        body: body.as_bytes(),
    }
}

/// [`submit`] with the profile's own submit.
fn submit_to(profile: &Profile, answer: &ApiResponse<'_>) -> Outcome {
    submit(profile, profile.submit.as_ref().unwrap(), answer)
}

/// [`poll`] with the profile's own status rule, a done answer's result read as the queue would.
fn poll_of(profile: &Profile, answer: &ApiResponse<'_>) -> Outcome {
    match poll(profile, profile.status.as_ref().unwrap(), answer) {
        Read::Done(done) => result_of(&done, profile.result.as_deref()),
        Read::Outcome(outcome) => outcome,
    }
}

fn permanent(outcome: Outcome) -> String {
    match outcome {
        Outcome::Failed(Failure {
            permanent: true,
            message,
            ..
        }) => message,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn a_submit_keeps_the_id_from_the_body_or_a_header() {
    let none = HeaderMap::new();
    let submitted = submit_to(
        &replicate(),
        &answer(201, &none, r#"{"id": "abc", "status": "starting"}"#),
    );
    assert_eq!(
        submitted,
        Outcome::Submitted {
            kept: None,
            remote_id: "abc".into(),
            data: r#"{"id":"abc","status":"starting"}"#.into(),
            poll_in: None
        }
    );
    let numeric = submit_to(&replicate(), &answer(200, &none, r#"{"id": 42}"#));
    assert!(matches!(numeric, Outcome::Submitted { remote_id, .. } if remote_id == "42"));

    let azure = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/analyze", "id": "header:Operation-Location"},
        "poll": {"url": "{{id}}"},
        "status": {"pointer": "/status", "processing": ["running"], "done": ["succeeded"]},
    }));
    let mut headers = HeaderMap::new();
    headers.insert(
        "operation-location",
        HeaderValue::from_static("https://api.test/results/1?v=2"),
    );
    let outcome = submit_to(&azure, &answer(202, &headers, ""));
    assert!(
        matches!(&outcome, Outcome::Submitted { remote_id, data, .. } if remote_id == "https://api.test/results/1?v=2" && data == "null"),
        "{outcome:?}"
    );
}

#[test]
fn a_submit_without_an_id_is_permanent() {
    let none = HeaderMap::new();
    for body in [
        r#"{"status": "starting"}"#,
        r#"{"id": ""}"#,
        r#"{"id": null}"#,
        "<html>",
    ] {
        permanent(submit_to(&replicate(), &answer(201, &none, body)));
    }
    let message = permanent(submit_to(&replicate(), &answer(201, &none, "{}")));
    assert_eq!(message, "the submit's answer has no job id at /id");
}

#[test]
fn a_refused_submit_keeps_the_providers_message() {
    let none = HeaderMap::new();
    let message = permanent(submit_to(
        &replicate(),
        &answer(422, &none, r#"{"error": "input.prompt is required"}"#),
    ));
    assert_eq!(
        message,
        "the API answered HTTP 422: input.prompt is required"
    );
    assert!(matches!(
        submit_to(&replicate(), &answer(429, &none, "")),
        Outcome::Throttled { .. }
    ));
    assert!(matches!(
        submit_to(&replicate(), &answer(409, &none, "")),
        Outcome::Failed(Failure {
            permanent: false,
            ..
        })
    ));
}

#[test]
fn polls_read_processing_done_and_failed_from_the_body() {
    let none = HeaderMap::new();
    let p = replicate();
    assert_eq!(
        poll_of(
            &p,
            &answer(200, &none, r#"{"status": "processing", "output": null}"#)
        ),
        Outcome::Processing {
            data: r#"{"output":null,"status":"processing"}"#.into(),
            poll_in: None
        }
    );
    assert_eq!(
        poll_of(
            &p,
            &answer(
                200,
                &none,
                r#"{"status": "succeeded", "output": ["a.png"], "error": null}"#
            )
        ),
        Outcome::Done(r#"["a.png"]"#.into())
    );
    let failed = permanent(poll_of(
        &p,
        &answer(
            200,
            &none,
            r#"{"status": "failed", "error": "CUDA out of memory"}"#,
        ),
    ));
    assert_eq!(
        failed,
        "the API reported the job failed: CUDA out of memory"
    );
    match poll_of(&p, &answer(200, &none, r#"{"status": "paused"}"#)) {
        Outcome::Failed(f) => {
            assert!(!f.permanent);
            assert!(f.message.contains("\"paused\""), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        poll_of(&p, &answer(200, &none, "<html>")),
        Outcome::Failed(Failure {
            permanent: false,
            ..
        })
    ));
}

#[test]
fn a_done_answer_with_an_error_is_a_failure() {
    let google = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/v1/run", "id": "/name"},
        "poll": {"path": "/v1/{{id}}"},
        "status": {"pointer": "/done", "processing": [false], "done": [true], "absent": "processing"},
        "result": "/response",
        "error": "/error",
    }));
    let none = HeaderMap::new();
    let message = permanent(poll_of(
        &google,
        &answer(
            200,
            &none,
            r#"{"done": true, "error": {"code": 3, "message": "bad prompt"}}"#,
        ),
    ));
    assert!(message.contains("bad prompt"), "{message}");
    assert_eq!(
        poll_of(
            &google,
            &answer(200, &none, r#"{"done": true, "response": {"v": 1}}"#)
        ),
        Outcome::Done(r#"{"v":1}"#.into())
    );
    assert!(matches!(
        poll_of(&google, &answer(200, &none, r#"{"name": "op/1"}"#)),
        Outcome::Processing { .. }
    ));
}

#[test]
fn http_mode_reads_the_code_and_its_lists_win() {
    let stability = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/gen", "id": "/id"},
        "poll": {"path": "/gen/result/{{id}}"},
        "status": {"http": {"processing": [202], "done": [200]}},
        "error": "/errors/0",
    }));
    let none = HeaderMap::new();
    assert!(matches!(
        poll_of(
            &stability,
            &answer(202, &none, r#"{"status": "in-progress"}"#)
        ),
        Outcome::Processing { .. }
    ));
    assert_eq!(
        poll_of(&stability, &answer(200, &none, r#"{"image": "b64"}"#)),
        Outcome::Done(r#"{"image":"b64"}"#.into())
    );
    let refused = permanent(poll_of(
        &stability,
        &answer(400, &none, r#"{"errors": ["content moderated"]}"#),
    ));
    assert_eq!(refused, "the API answered HTTP 400: content moderated");
    match poll_of(&stability, &answer(201, &none, "{}")) {
        Outcome::Failed(f) => {
            assert!(!f.permanent && f.message.contains("201"), "{}", f.message)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_submit_keeps_only_the_fields_later_calls_name() {
    let fal = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/m", "id": "/request_id"},
        "poll": {"url": "{{submit.status_url}}"},
        "status": {"pointer": "/status", "processing": ["IN_QUEUE"], "done": ["COMPLETED"]},
        "fetch": {"url": "{{submit.response_url}}"},
    }));
    let none = HeaderMap::new();
    let body = r#"{"request_id": "r1", "status_url": "https://api.test/r1/status",
                   "response_url": "https://api.test/r1", "queue_position": 3}"#;
    let Outcome::Submitted { kept, .. } = submit_to(&fal, &answer(200, &none, body)) else {
        panic!("submitted")
    };
    let kept: Value = serde_json::from_str(&kept.unwrap()).unwrap();
    assert_eq!(
        kept,
        json!({"status_url": "https://api.test/r1/status", "response_url": "https://api.test/r1"})
    );
}

#[test]
fn a_fetch_reads_json_text_or_bytes_and_refuses_a_result_over_the_limit() {
    let fetched = |read_as: &str, result: Option<&str>| {
        let mut fetch = json!({"path": "/r/{{id}}", "as": read_as});
        if let Some(result) = result {
            fetch["result"] = json!(result);
        }
        profile(json!({
            "base_url": "https://api.test",
            "submit": {"path": "/s", "id": "/id"},
            "poll": {"path": "/s/{{id}}"},
            "status": {"pointer": "/status", "done": ["done"]},
            "fetch": fetch,
        }))
    };
    let none = HeaderMap::new();
    let read = |p: &Profile, status: u16, body: &str, max: usize| {
        fetch(
            p,
            p.fetch.as_ref().unwrap(),
            &answer(status, &none, body),
            max,
        )
    };
    let json_profile = fetched("json", Some("/output"));
    assert_eq!(
        read(&json_profile, 200, r#"{"output": {"n": 1}}"#, 100),
        Outcome::Done(r#"{"n":1}"#.into())
    );
    let lines = "{\"id\":1}\n{\"id\":2}\n";
    assert_eq!(
        read(&fetched("text", None), 200, lines, 100),
        Outcome::Done(Value::String(lines.into()).to_string())
    );
    assert_eq!(
        read(&fetched("base64", None), 200, "ID3", 100),
        Outcome::Done(r#""SUQz""#.into())
    );
    let over = permanent(read(&json_profile, 200, r#"{"output": "0123456789"}"#, 5));
    assert!(over.contains("max_result_bytes of 5"), "{over}");
    // A refused fetch reads its message from the usual places: OpenAI's error object.
    let refused = permanent(read(
        &json_profile,
        400,
        r#"{"error": {"message": "No such File object: file-x", "type": "invalid_request_error"}}"#,
        100,
    ));
    assert_eq!(
        refused,
        "the API answered HTTP 400: No such File object: file-x"
    );
}

#[test]
fn a_webhook_body_is_read_by_the_hook_rule() {
    let rule = |hook: Value| {
        profile(json!({
            "base_url": "https://api.test",
            "submit": {"path": "/s?cb={{webhook_url}}", "id": "/id"},
            "hook": hook,
        }))
        .hook
        .unwrap()
    };
    let plain = rule(json!({"result": "/results"}));
    match hook(&plain, r#"{"results": {"t": "hi"}}"#) {
        Read::Done(done) => assert_eq!(done["results"]["t"], "hi"),
        other => panic!("{other:?}"),
    }
    let fal = rule(
        json!({"status": {"pointer": "/status", "done": ["OK"], "failed": ["ERROR"]},
                          "result": "/payload", "error": "/error"}),
    );
    match hook(&fal, r#"{"status": "ERROR", "error": "GPU lost"}"#) {
        Read::Outcome(outcome) => {
            assert_eq!(
                permanent(outcome),
                "the API reported the job failed: GPU lost"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        hook(&fal, r#"{"status": "OK", "payload": 1}"#),
        Read::Done(_)
    ));
}
