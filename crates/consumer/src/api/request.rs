//! A profile's call for one task: the submit when the task has no job yet, else the poll; where
//! it goes, with what body, and the submit's idempotency key.
//!
//! Requests go only where the configuration says: a path is appended to `base_url` (never
//! resolved against it, so `//other.host` stays a path), its values are percent-encoded and
//! refused when they hold `.` or `..` segments, and a whole poll URL (`"url": "{{id}}"`, the id
//! an API such as Azure answers with) must be on `base_url`'s scheme, host and port. Whatever a
//! task's payload or an API's answer holds, no call leaves the configured host.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Url};
use serde_json::Value;
use taskq::ClaimedTask;

use super::profile::{PollTarget, Profile};
use super::template::{BodyTemplate, Values};

/// Which of a profile's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Creates the task's job.
    Submit,
    /// Asks how the job is doing.
    Poll,
}

/// One call, ready to send.
#[derive(Debug)]
pub struct Call {
    /// Submit or poll.
    pub kind: Kind,
    /// The HTTP method.
    pub method: Method,
    /// Where it goes, checked to be on the profile's host.
    pub url: Url,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
    /// On a submit: `Idempotency-Key`, the same for every submit of the task.
    pub idempotency_key: Option<String>,
}

/// Task names go in the key percent-encoded, so the header holds visible ASCII only.
const KEY_NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{queue}:{name}:{submit token}`: the same for every submit of one task (every retry, every
/// consumer), different for a new task of the same name or a retried dead task, which want a
/// new job.
pub fn idempotency_key(queue: &str, task: &ClaimedTask) -> String {
    let name = utf8_percent_encode(&task.name, KEY_NAME);
    match &task.submit_token {
        Some(token) => format!("{queue}:{name}:{token}"),
        None => format!("{queue}:{name}"),
    }
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `path` appended to `base`'s path.
fn under_base(base: &Url, path: &str) -> Result<Url, String> {
    let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
    let url = Url::parse(&joined).map_err(|err| format!("the call's URL does not parse: {err}"))?;
    if !same_origin(&url, base) {
        return Err(format!(
            "refused: the call's URL leaves {}",
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// The call to make for `task`, or why it cannot be made (a permanent failure of the task).
///
/// # Errors
/// A message when a template needs what the task lacks, a value would leave the base path, or
/// a poll URL is on another host.
pub fn render(profile: &Profile, queue: &str, task: &ClaimedTask) -> Result<Call, String> {
    let payload: Option<Value> = task
        .payload
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|err| format!("the task's payload is not JSON: {err}"))?;
    let values = Values {
        name: &task.name,
        id: task.remote_id.as_deref(),
        payload: payload.as_ref(),
    };
    let body = |template: Option<&BodyTemplate>| -> Result<Option<Vec<u8>>, String> {
        template
            .map(|t| {
                let json = t.render(&values).map_err(|e| e.to_string())?;
                serde_json::to_vec(&json).map_err(|e| e.to_string())
            })
            .transpose()
    };
    match (&profile.submit, &task.remote_id) {
        (Some(submit), None) => Ok(Call {
            kind: Kind::Submit,
            method: submit.method.clone(),
            url: under_base(
                &profile.base,
                &submit
                    .path
                    .render_path(&values)
                    .map_err(|e| e.to_string())?,
            )?,
            body: body(submit.body.as_ref())?,
            idempotency_key: Some(idempotency_key(queue, task)),
        }),
        _ => {
            let url = match &profile.poll.target {
                PollTarget::Path(path) => under_base(
                    &profile.base,
                    &path.render_path(&values).map_err(|e| e.to_string())?,
                )?,
                PollTarget::Url(url) => {
                    let text = url.render_text(&values).map_err(|e| e.to_string())?;
                    let url = Url::parse(&text)
                        .map_err(|err| format!("the poll URL {text:?} does not parse: {err}"))?;
                    if !same_origin(&url, &profile.base) {
                        return Err(format!(
                            "refused: the poll URL {url} is not on {}",
                            profile.base.origin().ascii_serialization()
                        ));
                    }
                    url
                }
            };
            Ok(Call {
                kind: Kind::Poll,
                method: profile.poll.method.clone(),
                url,
                body: body(profile.poll.body.as_ref())?,
                idempotency_key: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::profile::ApiSpec;
    use super::*;

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

    fn task(remote_id: Option<&str>) -> ClaimedTask {
        ClaimedTask {
            name: "report 7".into(),
            token: "12".into(),
            attempts: 0,
            polls: 0,
            payload: Some(r#"{"prompt": "a cat"}"#.into()),
            remote_id: remote_id.map(str::to_owned),
            throttled: 0,
            submit_token: Some("9".into()),
        }
    }

    #[test]
    fn the_first_call_submits_with_a_stable_key_and_the_next_ones_poll_the_id() {
        let submit = render(&jobs(), "q", &task(None)).unwrap();
        assert_eq!(submit.kind, Kind::Submit);
        assert_eq!(submit.method, Method::POST);
        assert_eq!(submit.url.as_str(), "https://api.test/base/v1/jobs");
        assert_eq!(submit.idempotency_key.as_deref(), Some("q:report%207:9"));
        let body: Value = serde_json::from_slice(&submit.body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"input": {"prompt": "a cat"}, "ref": "report 7"})
        );

        let poll = render(&jobs(), "q", &task(Some("ab/c"))).unwrap();
        assert_eq!(poll.kind, Kind::Poll);
        assert_eq!(poll.url.as_str(), "https://api.test/base/v1/jobs/ab/c");
        assert_eq!(poll.idempotency_key, None);
    }

    #[test]
    fn no_id_can_take_a_call_off_the_configured_host() {
        for id in ["../../admin", "/..", "..", "a/./b"] {
            assert!(render(&jobs(), "q", &task(Some(id))).is_err(), "{id}");
        }
        let poll = render(&jobs(), "q", &task(Some("//evil.test/x"))).unwrap();
        assert_eq!(poll.url.host_str(), Some("api.test"));

        let by_url = profile(json!({
            "base_url": "https://api.test",
            "submit": {"path": "/analyze", "id": "header:Operation-Location"},
            "poll": {"url": "{{id}}"},
            "status": {"pointer": "/status", "done": ["succeeded"]},
        }));
        let ok = render(
            &by_url,
            "q",
            &task(Some("https://api.test:443/results/1?api-version=2")),
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
                render(&by_url, "q", &task(Some(elsewhere))).is_err(),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn a_payload_without_the_field_a_template_needs_is_a_permanent_failure() {
        let needs = profile(json!({
            "base_url": "https://api.test",
            "poll": {"path": "/v1/run/{{payload.model}}"},
            "status": {"pointer": "/status", "done": ["done"]},
        }));
        let err = render(&needs, "q", &task(None)).unwrap_err();
        assert_eq!(err, "the task's payload has no field model");
    }

    #[test]
    fn names_in_keys_are_visible_ascii() {
        let mut unusual = task(None);
        unusual.name = "résumé/ä b".into();
        unusual.submit_token = None;
        assert_eq!(
            idempotency_key("q", &unusual),
            "q:r%C3%A9sum%C3%A9%2F%C3%A4%20b"
        );
    }
}
