use serde_json::json;

use super::super::spec::ApiSpec;
use super::*;
use taskq::TaskName;
use webhooks::HookUrls;

fn profile(spec: Value) -> Profile {
    serde_json::from_value::<ApiSpec>(spec)
        .unwrap()
        .compile(|_| None)
        .unwrap()
}

fn jobs() -> Profile {
    profile(json!({
        "base_url": "https://api.test/base/",
        "submit": {"path": "/v1/jobs", "body": {"input": "{{payload}}", "ref": "{{name}}"}, "id": "/id"},
        "poll": {"path": "/v1/jobs/{{id}}"},
        "status": {"pointer": "/status", "done": ["done"]},
    }))
}

/// The call a task's next step makes, as the poller renders it: the submit while the task has
/// no job, else the poll; the hook URL only in a submit that gives it.
fn render_for(
    profile: &Profile,
    queue: &str,
    task: &ClaimedTask,
    hooks: Option<&HookUrls>,
) -> Result<Call, RequestError> {
    let payload = payload(task)?;
    let submitting = profile.submit.as_ref().filter(|_| task.remote_id.is_none());
    let webhook_url = match (submitting, hooks) {
        (Some(submit), Some(hooks)) if submit.uses_webhook_url() => {
            Some(hooks.url(queue, task.name.as_str(), submit_token(task)))
        }
        _ => None,
    };
    let values = Values {
        name: task.name.as_str(),
        id: task.remote_id.as_deref(),
        payload: payload.as_ref(),
        webhook_url: webhook_url.as_deref(),
        submit: None,
        done: None,
    };
    match submitting {
        Some(submit) => render(profile, Step::Submit, &submit.request, &values, None),
        None => render(
            profile,
            Step::Poll,
            &profile.poll.as_ref().unwrap().request,
            &values,
            None,
        ),
    }
}

fn json_body(call: &Call) -> Value {
    match &call.body {
        Some(CallBody::Bytes { bytes, .. }) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("a JSON body, not {other:?}"),
    }
}

fn task(remote_id: Option<&str>) -> ClaimedTask {
    ClaimedTask {
        name: TaskName::parse("report 7").unwrap(),
        token: "12".into(),
        attempts: 0,
        polls: 0,
        payload: Some(r#"{"prompt": "a cat"}"#.into()),
        remote_id: remote_id.map(str::to_owned),
        throttled: 0,
        has_callback: false,
        submit_token: Some("9".into()),
        kept: None,
        hook: None,
    }
}

#[test]
fn the_first_call_submits_with_a_stable_key_and_the_next_ones_poll_the_id() {
    let jobs = jobs();
    let submit = render_for(&jobs, "q", &task(None), None).unwrap();
    assert_eq!(submit.step, Step::Submit);
    assert_eq!(submit.method, Method::POST);
    assert_eq!(submit.url.as_str(), "https://api.test/base/v1/jobs");
    assert_eq!(idempotency_key("q", &task(None)), "q:report%207:9");
    let body = json_body(&submit);
    assert_eq!(
        body,
        json!({"input": {"prompt": "a cat"}, "ref": "report 7"})
    );

    let poll = render_for(&jobs, "q", &task(Some("ab/c")), None).unwrap();
    assert_eq!(poll.step, Step::Poll);
    assert_eq!(poll.url.as_str(), "https://api.test/base/v1/jobs/ab/c");
}

#[test]
fn no_id_can_take_a_call_off_the_configured_host() {
    for id in ["../../admin", "/..", "..", "a/./b"] {
        assert!(
            render_for(&jobs(), "q", &task(Some(id)), None).is_err(),
            "{id}"
        );
    }
    let jobs = jobs();
    let poll = render_for(&jobs, "q", &task(Some("//evil.test/x")), None).unwrap();
    assert_eq!(poll.url.host_str(), Some("api.test"));

    let by_url = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/analyze", "id": "header:Operation-Location"},
        "poll": {"url": "{{id}}"},
        "status": {"pointer": "/status", "done": ["succeeded"]},
    }));
    let ok = render_for(
        &by_url,
        "q",
        &task(Some("https://api.test:443/results/1?api-version=2")),
        None,
    )
    .unwrap();
    assert_eq!(ok.url.as_str(), "https://api.test/results/1?api-version=2");
    for elsewhere in [
        "https://evil.test/results/1",
        "http://api.test/results/1",
        "https://api.test:8443/results/1",
        "https://api.test.evil.test/",
        "not a url",
    ] {
        assert!(
            render_for(&by_url, "q", &task(Some(elsewhere)), None).is_err(),
            "{elsewhere}"
        );
    }
}

#[test]
fn a_submit_gives_the_provider_its_signed_hook_url_and_a_poll_never_does() {
    let hooked = profile(json!({
        "base_url": "https://api.test",
        "submit": {"path": "/predictions", "id": "/id",
                   "body": {"input": "{{payload}}", "webhook": "{{webhook_url}}"}},
        "poll": {"path": "/predictions/{{id}}"},
        "status": {"pointer": "/status", "done": ["succeeded"]},
    }));
    let secret: webhooks::HookSecret = "a-hook-secret-for-tests".parse().unwrap();
    let hooks = HookUrls::new("https://taskq.example", secret.clone());
    let submit = render_for(&hooked, "q", &task(None), Some(&hooks)).unwrap();
    let body = json_body(&submit);
    let url = body["webhook"].as_str().unwrap();
    let sig = url.split_once("?run=9&sig=").unwrap().1;
    assert!(url.starts_with("https://taskq.example/hooks/q/"), "{url}");
    assert!(
        secret.verify("q", task(None).name.as_str(), "9", sig),
        "signed for the task's run, its submit token"
    );
    let poll = render_for(&hooked, "q", &task(Some("p1")), Some(&hooks)).unwrap();
    assert!(poll.body.is_none());
    // Without PUBLIC_URL and HOOK_SECRET the call cannot be made as configured.
    let err = render_for(&hooked, "q", &task(None), None).unwrap_err();
    assert!(err.to_string().contains("webhook_url"), "{err}");
}

#[test]
fn a_payload_without_the_field_a_template_needs_is_a_permanent_failure() {
    let needs = profile(json!({
        "base_url": "https://api.test",
        "poll": {"path": "/v1/run/{{payload.model}}"},
        "status": {"pointer": "/status", "done": ["done"]},
    }));
    let err = render_for(&needs, "q", &task(None), None).unwrap_err();
    assert_eq!(err.to_string(), "the task's payload has no field model");
}

#[test]
fn names_in_keys_are_visible_ascii_and_long_ones_are_cut_to_fit() {
    let mut unusual = task(None);
    unusual.name = TaskName::parse("résumé/ä b").unwrap();
    assert_eq!(
        idempotency_key("q", &unusual),
        "q:r%C3%A9sum%C3%A9%2F%C3%A4%20b:9"
    );
    unusual.name = TaskName::parse("é".repeat(128)).unwrap();
    let key = idempotency_key("a-long-queue-name", &unusual);
    assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
    assert!(key.ends_with("%C3%A9:9"), "{key}");
    unusual.submit_token = Some("10".into());
    assert_ne!(idempotency_key("a-long-queue-name", &unusual), key);
    assert_eq!(cut_encoded("ab%C3%A9", 4), "ab");
    assert_eq!(cut_encoded("ab%C3%A9", 5), "ab%C3");
}

#[test]
fn form_and_page_tokens_are_encoded_where_the_profile_says() {
    let forms = profile(json!({
        "base_url": "https://api.test",
        "headers": {"X-Key": "k"},
        "submit": {"path": "/jobs", "form": {"prompt": "{{payload.prompt}}", "n": "2"},
                   "headers": {"X-Key": "step"}, "id": "/id"},
        "poll": {"path": "/jobs/{{id}}?view=full",
                 "pages": {"next": "/next", "param": "page token", "merge": "/items"}},
        "status": {"pointer": "/status", "done": ["done"]},
    }));
    let submit = render_for(&forms, "q", &task(None), None).unwrap();
    match &submit.body {
        Some(CallBody::Bytes {
            content_type,
            bytes,
        }) => {
            assert_eq!(*content_type, "application/x-www-form-urlencoded");
            assert_eq!(std::str::from_utf8(bytes).unwrap(), "n=2&prompt=a+cat");
        }
        other => panic!("{other:?}"),
    }
    let key: Vec<_> = submit
        .headers
        .iter()
        .filter(|(n, _)| n == "x-key")
        .collect();
    assert_eq!(key.len(), 1, "the step's header replaces the profile's");
    assert_eq!(key[0].1, "step");

    let poll = forms.poll.as_ref().unwrap();
    let payload = json!({"prompt": "a cat"});
    let values = Values {
        name: "t",
        id: Some("j1"),
        payload: Some(&payload),
        webhook_url: None,
        submit: None,
        done: None,
    };
    let page = render(
        &forms,
        Step::Poll,
        &poll.request,
        &values,
        Some((poll.pages.as_ref().unwrap(), "a&b")),
    )
    .unwrap();
    assert_eq!(
        page.url.as_str(),
        "https://api.test/jobs/j1?view=full&page+token=a%26b"
    );
}

#[test]
fn a_fetch_on_a_listed_host_gets_only_its_own_headers() {
    let cdn = profile(json!({
        "base_url": "https://api.test",
        "hosts": ["https://cdn.test"],
        "headers": {"Authorization": "Bearer k"},
        "submit": {"path": "/s", "id": "/id"},
        "poll": {"path": "/s/{{id}}"},
        "status": {"pointer": "/status", "done": ["done"]},
        "fetch": {"url": "{{done.output}}", "headers": {"Accept": "video/*"}, "as": "base64"},
    }));
    let fetch = cdn.fetch.as_ref().unwrap();
    let render_done = |done: &Value| {
        let values = Values {
            name: "t",
            id: Some("j1"),
            payload: None,
            webhook_url: None,
            submit: None,
            done: Some(done),
        };
        render(&cdn, Step::Fetch, &fetch.request, &values, None)
    };
    let elsewhere = render_done(&json!({"output": "https://cdn.test/v.mp4?sig=1"})).unwrap();
    let names: Vec<_> = elsewhere.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["accept"], "no credential leaves for another host");
    let home = render_done(&json!({"output": "https://api.test/v.mp4"})).unwrap();
    assert_eq!(home.headers.len(), 2);
    assert!(render_done(&json!({"output": "https://evil.test/v.mp4"})).is_err());
    assert!(
        render_done(&json!({})).is_err(),
        "no such field in the done answer"
    );
}
