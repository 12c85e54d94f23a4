//! A profile's call for one task: the submit when the task has no job yet, else the poll; where
//! it goes, with what body, and the submit's idempotency key.
//!
//! Requests go only where the configuration says: a path is appended to `base_url` (never
//! resolved against it, so `//other.host` stays a path), its values are percent-encoded and
//! refused when they hold `.` or `..` segments, and a whole poll URL (`"url": "{{id}}"`, the id
//! an API such as Azure answers with) must be on `base_url`'s scheme, host and port. Whatever a
//! task's payload or an API's answer holds, no call leaves the configured host.

use percent_encoding::utf8_percent_encode;
use reqwest::{Method, Url};
use serde_json::Value;
use taskq::ClaimedTask;
use webhooks::HookUrls;

use super::profile::{PollTarget, Profile, Submit};
use super::same_origin;
use super::template::{BodyTemplate, RenderError, UNRESERVED, Values};

/// Which of a profile's calls.
#[derive(Debug, Clone, Copy)]
pub enum Kind<'p> {
    /// Creates the task's job, as this submit says.
    Submit(&'p Submit),
    /// Asks how the job is doing.
    Poll,
}

/// One call, ready to send.
#[derive(Debug)]
pub struct Call<'p> {
    /// Submit or poll.
    pub kind: Kind<'p>,
    /// The HTTP method.
    pub method: Method,
    /// Where it goes, checked to be on the profile's host.
    pub url: Url,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
    /// On a submit: `Idempotency-Key`, the same for every submit of the task.
    pub idempotency_key: Option<String>,
}

/// Why a task's call cannot be made: a permanent failure of the task.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The stored payload does not parse (it was JSON when it was enqueued).
    #[error("the task's payload is not JSON: {0}")]
    Payload(serde_json::Error),
    /// A template needs what the task lacks, or a value would leave the base path.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The URL made does not parse.
    #[error("the call's URL {url:?} does not parse: {reason}")]
    BadUrl {
        /// The text.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The URL made is on another scheme, host or port than `base_url`.
    #[error("refused: {url} is not on {base}")]
    OffHost {
        /// The URL.
        url: String,
        /// The origin it had to be on.
        base: String,
    },
}

/// The longest idempotency key sent (Stripe's limit, the strictest known), in bytes.
const MAX_KEY_BYTES: usize = 255;

/// `{queue}:{name}:{submit token}`: the same for every submit of one task (every retry, every
/// consumer), different for a new task of the same name or a retried dead task, which want a
/// new job. The name is percent-encoded (the header holds visible ASCII) and cut when the key
/// would pass [`MAX_KEY_BYTES`]; the token alone already tells tasks apart.
pub fn idempotency_key(queue: &str, task: &ClaimedTask) -> String {
    let token = submit_token(task);
    let name = utf8_percent_encode(task.name.as_str(), UNRESERVED).to_string();
    let room = MAX_KEY_BYTES.saturating_sub(queue.len() + token.len() + 2);
    format!("{queue}:{}:{token}", cut_encoded(&name, room))
}

/// The token of the task's run: its submit token. Claims on a submitting queue always give a
/// task without a job one; the claim's own token stands in should one ever lack it (unique, if
/// not stable).
fn submit_token(task: &ClaimedTask) -> &str {
    task.submit_token.as_deref().unwrap_or(&task.token)
}

/// The first `max` bytes of percent-encoded `text`, never cutting an escape in two.
fn cut_encoded(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = match text[..max].rfind('%') {
        Some(escape) if escape + 3 > max => escape,
        _ => max,
    };
    &text[..end]
}

/// `url`, parsed and checked to be on `base`'s origin.
fn on_base(url: String, base: &Url) -> Result<Url, RequestError> {
    let parsed = Url::parse(&url).map_err(|reason| RequestError::BadUrl {
        url: url.clone(),
        reason: reason.to_string(),
    })?;
    if !same_origin(&parsed, base) {
        return Err(RequestError::OffHost {
            url,
            base: base.origin().ascii_serialization(),
        });
    }
    Ok(parsed)
}

/// `path` appended to `base`'s path (never resolved against it: `//host` stays a path).
fn under_base(base: &Url, path: &str) -> Result<Url, RequestError> {
    on_base(
        format!("{}{path}", base.as_str().trim_end_matches('/')),
        base,
    )
}

/// The call to make for `task`, or why it cannot be made (a permanent failure of the task).
///
/// # Errors
/// [`RequestError`] when a template needs what the task lacks, a value would leave the base
/// path, or a poll URL is on another host.
pub fn render<'p>(
    profile: &'p Profile,
    queue: &str,
    task: &ClaimedTask,
    hooks: Option<&HookUrls>,
) -> Result<Call<'p>, RequestError> {
    let payload: Option<Value> = task
        .payload
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(RequestError::Payload)?;
    // Written (an HMAC) only for a submit whose profile gives it to the provider.
    let webhook_url = match (&profile.submit, &task.remote_id, hooks) {
        (Some(submit), None, Some(hooks)) if submit.uses_webhook_url() => {
            Some(hooks.url(queue, task.name.as_str(), submit_token(task)))
        }
        _ => None,
    };
    let values = Values {
        name: task.name.as_str(),
        id: task.remote_id.as_deref(),
        payload: payload.as_ref(),
        webhook_url: webhook_url.as_deref(),
    };
    let body = |template: Option<&BodyTemplate>| -> Result<Option<Vec<u8>>, RequestError> {
        Ok(template
            .map(|t| t.render(&values))
            .transpose()?
            .map(|json| json.to_string().into_bytes()))
    };
    match (&profile.submit, &task.remote_id) {
        (Some(submit), None) => Ok(Call {
            kind: Kind::Submit(submit),
            method: submit.method.clone(),
            url: under_base(&profile.base, &submit.path.render_path(&values)?)?,
            body: body(submit.body.as_ref())?,
            idempotency_key: Some(idempotency_key(queue, task)),
        }),
        _ => Ok(Call {
            kind: Kind::Poll,
            method: profile.poll.method.clone(),
            url: match &profile.poll.target {
                PollTarget::Path(path) => under_base(&profile.base, &path.render_path(&values)?)?,
                PollTarget::Url(url) => on_base(url.render_text(&values)?, &profile.base)?,
            },
            body: body(profile.poll.body.as_ref())?,
            idempotency_key: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::spec::ApiSpec;
    use super::*;
    use taskq::TaskName;

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
        let submit = render(&jobs, "q", &task(None), None).unwrap();
        assert!(matches!(submit.kind, Kind::Submit(_)));
        assert_eq!(submit.method, Method::POST);
        assert_eq!(submit.url.as_str(), "https://api.test/base/v1/jobs");
        assert_eq!(submit.idempotency_key.as_deref(), Some("q:report%207:9"));
        let body: Value = serde_json::from_slice(&submit.body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"input": {"prompt": "a cat"}, "ref": "report 7"})
        );

        let poll = render(&jobs, "q", &task(Some("ab/c")), None).unwrap();
        assert!(matches!(poll.kind, Kind::Poll));
        assert_eq!(poll.url.as_str(), "https://api.test/base/v1/jobs/ab/c");
        assert_eq!(poll.idempotency_key, None);
    }

    #[test]
    fn no_id_can_take_a_call_off_the_configured_host() {
        for id in ["../../admin", "/..", "..", "a/./b"] {
            assert!(render(&jobs(), "q", &task(Some(id)), None).is_err(), "{id}");
        }
        let jobs = jobs();
        let poll = render(&jobs, "q", &task(Some("//evil.test/x")), None).unwrap();
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
                render(&by_url, "q", &task(Some(elsewhere)), None).is_err(),
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
        let submit = render(&hooked, "q", &task(None), Some(&hooks)).unwrap();
        let body: Value = serde_json::from_slice(submit.body.as_deref().unwrap()).unwrap();
        let url = body["webhook"].as_str().unwrap();
        let sig = url.split_once("?run=9&sig=").unwrap().1;
        assert!(url.starts_with("https://taskq.example/hooks/q/"), "{url}");
        assert!(
            secret.verify("q", task(None).name.as_str(), "9", sig),
            "signed for the task's run, its submit token"
        );
        let poll = render(&hooked, "q", &task(Some("p1")), Some(&hooks)).unwrap();
        assert!(poll.body.is_none());
        // Without PUBLIC_URL and HOOK_SECRET the call cannot be made as configured.
        let err = render(&hooked, "q", &task(None), None).unwrap_err();
        assert!(err.to_string().contains("webhook_url"), "{err}");
    }

    #[test]
    fn a_payload_without_the_field_a_template_needs_is_a_permanent_failure() {
        let needs = profile(json!({
            "base_url": "https://api.test",
            "poll": {"path": "/v1/run/{{payload.model}}"},
            "status": {"pointer": "/status", "done": ["done"]},
        }));
        let err = render(&needs, "q", &task(None), None).unwrap_err();
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
}
