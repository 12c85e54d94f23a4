//! The `"api"` object of a queue in `QUEUES_FILE`, and its compilation into a [`Profile`].
//!
//! [`ApiSpec`] is the file's schema (serde, unknown keys refused); [`ApiSpec::compile`] turns it
//! into a [`Profile`]: URLs parsed, templates parsed into parts, headers expanded into secrets,
//! every rule checked, each error naming its field (`api.submit.id: ...`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::profile::{
    HttpRule, IdSource, PointerRule, Poll, PollTarget, Profile, StatusRule, Submit, Verdict,
};
use super::secret;
use super::template::{BodyTemplate, Placeholder, Template};
use crate::limits::rate_limit;
use taskq::Limit;
use taskq::keys::LimitKeys;

/// The `"api"` object of a queue in `QUEUES_FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Every path is under it; a `poll.url` must be on its host.
    base_url: String,
    /// Extra certificate authorities (PEM) trusted for this API, beside the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// Sent on every submit and poll; `${VAR}` is read from the environment at start.
    #[serde(default)]
    headers: BTreeMap<String, Unexpanded>,
    /// The call that creates the task's job, when the API has one.
    #[serde(default)]
    submit: Option<SubmitSpec>,
    /// The call that asks how the job is doing.
    poll: PollSpec,
    /// How a poll's answer says processing, done or failed.
    status: StatusSpec,
    /// JSON pointer to what is stored as the result when done (default: the whole answer).
    #[serde(default)]
    result: Option<String>,
    /// JSON pointer to what is shown as partial data while processing (default: the whole
    /// answer).
    #[serde(default)]
    partial: Option<String>,
    /// JSON pointer to the provider's error message.
    #[serde(default)]
    error: Option<String>,
    /// Calls per second the provider allows, shared by every consumer of the limit key.
    #[serde(default)]
    rate: Option<RateSpec>,
    /// Calls in flight at once the provider allows, across the fleet.
    #[serde(default)]
    max_in_flight: Option<u32>,
    /// The key the limits are held under; queues naming the same key share them (default: the
    /// queue's name).
    #[serde(default)]
    limit_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateSpec {
    per_sec: f64,
    #[serde(default)]
    burst: Option<u32>,
}

/// A header value as written in the file: it may hold a credential, so it never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
struct Unexpanded(String);

impl fmt::Debug for Unexpanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitSpec {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    body: Option<Value>,
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusSpec {
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    processing: Vec<Value>,
    #[serde(default)]
    done: Vec<Value>,
    #[serde(default)]
    failed: Vec<Value>,
    #[serde(default)]
    absent: Option<Verdict>,
    #[serde(default)]
    http: Option<HttpStatusSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpStatusSpec {
    #[serde(default)]
    processing: Vec<u16>,
    done: Vec<u16>,
    #[serde(default)]
    failed: Vec<u16>,
}

/// Why a profile was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("api.{field}: {message}")]
pub struct ProfileError {
    /// The field's path in the profile (`submit.id`, `headers.Authorization`).
    pub field: String,
    /// What is wrong (never a header's value).
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl fmt::Display) -> ProfileError {
    ProfileError {
        field: field.into(),
        message: message.to_string(),
    }
}

fn method(field: &str, given: Option<&str>, default: Method) -> Result<Method, ProfileError> {
    match given {
        None => Ok(default),
        Some(text) => match text.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::GET),
            "POST" => Ok(Method::POST),
            "PUT" => Ok(Method::PUT),
            "PATCH" => Ok(Method::PATCH),
            "DELETE" => Ok(Method::DELETE),
            _ => Err(refuse(field, "use GET, POST, PUT, PATCH or DELETE")),
        },
    }
}

fn pointer(field: &str, given: Option<&str>) -> Result<Option<String>, ProfileError> {
    match given {
        Some(p) if !p.is_empty() && !p.starts_with('/') => Err(refuse(
            field,
            format!("{p:?} is not a JSON pointer: write \"/a/b\" (or \"\" for the whole answer)"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

fn path_template(field: &str, text: &str) -> Result<Template, ProfileError> {
    if !text.starts_with('/') {
        return Err(refuse(field, "a path starts with /"));
    }
    Template::parse(text).map_err(|e| refuse(field, e))
}

fn body_template(field: &str, body: Option<&Value>) -> Result<Option<BodyTemplate>, ProfileError> {
    body.map(|json| BodyTemplate::parse(json).map_err(|e| refuse(field, e)))
        .transpose()
}

/// Refuses a value in two lists of one rule.
fn disjoint<T: PartialEq + fmt::Debug>(field: &str, lists: [&[T]; 3]) -> Result<(), ProfileError> {
    for (i, list) in lists.iter().enumerate() {
        for other in &lists[i + 1..] {
            if let Some(both) = list.iter().find(|v| other.contains(v)) {
                return Err(refuse(field, format!("{both:?} is in two lists")));
            }
        }
    }
    Ok(())
}

impl ApiSpec {
    /// Checks the profile and compiles it; `lookup` reads the environment for `${VAR}`.
    ///
    /// # Errors
    /// [`ProfileError`] naming the first field that is wrong.
    pub fn compile(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Profile, ProfileError> {
        let base = Url::parse(&self.base_url).map_err(|e| refuse("base_url", e))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(refuse(
                "base_url",
                "use an http:// or https:// URL with a host",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(refuse(
                "base_url",
                "credentials go in headers (with ${VAR}), not in the URL",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(refuse(
                "base_url",
                "no query or fragment: put them in the paths",
            ));
        }
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                secret::header(name, &value.0, &lookup)
                    .map_err(|e| refuse(format!("headers.{name}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let submit = self.submit.as_ref().map(compile_submit).transpose()?;
        let limit = Limit {
            rate: self
                .rate
                .map(|rate| {
                    rate_limit(rate.per_sec, rate.burst.unwrap_or(1))
                        .map_err(|message| refuse("rate", message))
                })
                .transpose()?,
            max_in_flight: match self.max_in_flight {
                Some(0) => return Err(refuse("max_in_flight", "at least 1")),
                cap => cap,
            },
        };
        if let Some(key) = &self.limit_key {
            LimitKeys::new(key).map_err(|e| refuse("limit_key", e))?;
        }
        let poll = compile_poll(&self.poll, submit.is_some())?;
        Ok(Profile {
            base,
            ca_file: self.ca_file.clone(),
            headers,
            submit,
            poll,
            status: compile_status(&self.status)?,
            result: pointer("result", self.result.as_deref())?,
            partial: pointer("partial", self.partial.as_deref())?,
            error: pointer("error", self.error.as_deref())?,
            limit,
            limit_key: self.limit_key.clone(),
        })
    }
}

fn compile_submit(spec: &SubmitSpec) -> Result<Submit, ProfileError> {
    let path = path_template("submit.path", &spec.path)?;
    let body = body_template("submit.body", spec.body.as_ref())?;
    if path.uses_id() || body.as_ref().is_some_and(BodyTemplate::uses_id) {
        return Err(refuse(
            "submit",
            "{{id}} is what the submit answers: it cannot be used in the submit",
        ));
    }
    if path.uses(&Placeholder::WebhookUrl) {
        return Err(refuse(
            "submit.path",
            "{{webhook_url}} goes in the submit's body",
        ));
    }
    let id = match spec.id.strip_prefix("header:") {
        Some(name) => IdSource::Header(
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| refuse("submit.id", format!("{name:?} is not a header name")))?,
        ),
        None => IdSource::Pointer(
            pointer("submit.id", Some(&spec.id))?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    refuse(
                        "submit.id",
                        "give a JSON pointer (\"/id\") or \"header:NAME\"",
                    )
                })?,
        ),
    };
    Ok(Submit {
        method: method("submit.method", spec.method.as_deref(), Method::POST)?,
        path,
        body,
        id,
    })
}

fn compile_poll(spec: &PollSpec, submits: bool) -> Result<Poll, ProfileError> {
    let target = match (&spec.path, &spec.url) {
        (Some(path), None) => PollTarget::Path(path_template("poll.path", path)?),
        (None, Some(url)) => {
            PollTarget::Url(Template::parse(url).map_err(|e| refuse("poll.url", e))?)
        }
        _ => return Err(refuse("poll", "give either path or url")),
    };
    let body = body_template("poll.body", spec.body.as_ref())?;
    let uses_id = match &target {
        PollTarget::Path(t) | PollTarget::Url(t) => t.uses_id(),
    } || body.as_ref().is_some_and(BodyTemplate::uses_id);
    let uses_webhook_url = match &target {
        PollTarget::Path(t) | PollTarget::Url(t) => t.uses(&Placeholder::WebhookUrl),
    } || body
        .as_ref()
        .is_some_and(|body| body.uses(&Placeholder::WebhookUrl));
    if uses_webhook_url {
        return Err(refuse(
            "poll",
            "{{webhook_url}} is given to the provider once, in the submit's body",
        ));
    }
    if uses_id && !submits {
        return Err(refuse(
            "poll",
            "{{id}} comes from a submit: add one, or poll by {{name}}",
        ));
    }
    if matches!(target, PollTarget::Url(_)) && !submits {
        return Err(refuse(
            "poll.url",
            "a whole poll URL comes from a submit's id",
        ));
    }
    Ok(Poll {
        method: method("poll.method", spec.method.as_deref(), Method::GET)?,
        target,
        body,
    })
}

fn compile_status(spec: &StatusSpec) -> Result<StatusRule, ProfileError> {
    let body_lists =
        !spec.processing.is_empty() || !spec.done.is_empty() || !spec.failed.is_empty();
    match (&spec.pointer, &spec.http) {
        (Some(at), None) => {
            let pointer = pointer("status.pointer", Some(at))?.unwrap_or_default();
            if spec.done.is_empty() {
                return Err(refuse("status.done", "list the values that mean done"));
            }
            disjoint("status", [&spec.processing, &spec.done, &spec.failed])?;
            Ok(StatusRule::Pointer(PointerRule {
                pointer,
                lists: [
                    (spec.processing.clone(), Verdict::Processing),
                    (spec.done.clone(), Verdict::Done),
                    (spec.failed.clone(), Verdict::Failed),
                ],
                absent: spec.absent.clone(),
            }))
        }
        (None, Some(http)) if !body_lists && spec.absent.is_none() => {
            if http.done.is_empty() {
                return Err(refuse("status.http.done", "list the codes that mean done"));
            }
            if let Some(bad) = [&http.processing, &http.done, &http.failed]
                .into_iter()
                .flatten()
                .find(|code| !(100..=599).contains(*code))
            {
                return Err(refuse(
                    "status.http",
                    format!("{bad} is not an HTTP status"),
                ));
            }
            disjoint("status.http", [&http.processing, &http.done, &http.failed])?;
            Ok(StatusRule::Http(HttpRule {
                lists: [
                    (http.processing.clone(), Verdict::Processing),
                    (http.done.clone(), Verdict::Done),
                    (http.failed.clone(), Verdict::Failed),
                ],
            }))
        }
        (None, Some(_)) => Err(refuse(
            "status",
            "with http, the lists go inside it: {\"http\": {\"processing\": [202], \"done\": [200]}}",
        )),
        _ => Err(refuse(
            "status",
            "give either pointer (with processing, done, failed) or http",
        )),
    }
}

#[cfg(test)]
mod tests;
