//! The `"api"` object of a queue in `QUEUES_FILE`, and its compilation into a [`Profile`].
//!
//! [`ApiSpec`] is the file's schema (serde, unknown keys refused); [`ApiSpec::compile`] turns it
//! into a [`Profile`]: URLs parsed, templates parsed into parts, headers expanded into secrets,
//! every rule checked, each error naming its field (`api.submit.id: ...`). The steps (`submit`,
//! `poll`, `fetch`) share one schema, checked per step in `step`; statuses and webhook reading
//! are `status`.

mod status;
mod step;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Deserialize;

use super::auth::AuthSpec;
use super::profile::{DEFAULT_HTTP_ERROR, Profile};
use super::secret;
use super::template::Placeholder;
use crate::limits::rate_limit;
use status::{HookSpec, StatusSpec};
use step::{StepKind, StepSpec};
use taskq::Limit;
use taskq::keys::LimitKeys;

/// The `"api"` object of a queue in `QUEUES_FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Every path is under it; a whole URL must be on its origin (or, for a fetch, a `hosts`
    /// entry's).
    base_url: String,
    /// Other origins a whole-URL fetch may go to (a CDN, presigned URLs); they get no profile
    /// header.
    #[serde(default)]
    hosts: Vec<String>,
    /// Extra certificate authorities (PEM) trusted for this API, beside the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// Sent on every call to the base URL's origin; `${VAR}` is read from the environment at
    /// start.
    #[serde(default)]
    headers: BTreeMap<String, Unexpanded>,
    /// A credential that expires, rotates or signs (OAuth2, a Google service account, AWS
    /// SigV4), used on every call to the base URL's origin after its headers.
    #[serde(default)]
    auth: Option<AuthSpec>,
    /// The call that creates the task's job, when the API has one.
    #[serde(default)]
    submit: Option<StepSpec>,
    /// The call that asks how the job is doing; none for a provider that only pushes.
    #[serde(default)]
    poll: Option<StepSpec>,
    /// How a poll's answer says processing, done or failed.
    #[serde(default)]
    status: Option<StatusSpec>,
    /// The call that gets the result once a poll (or a webhook) said done.
    #[serde(default)]
    fetch: Option<StepSpec>,
    /// How a provider's webhook body reads, to take answers from webhooks.
    #[serde(default)]
    hook: Option<HookSpec>,
    /// JSON pointer to what is stored as the result when done (default: the whole answer).
    #[serde(default)]
    result: Option<String>,
    /// JSON pointer to what is shown as partial data while processing (default: the whole
    /// answer).
    #[serde(default)]
    partial: Option<String>,
    /// JSON pointer to a failed job's message.
    #[serde(default)]
    error: Option<String>,
    /// JSON pointers to the provider's message in an unsuccessful answer, in order.
    #[serde(default)]
    http_error: Option<OneOrMany>,
    /// Whether a multipart file may be downloaded from a private address.
    #[serde(default)]
    allow_private_sources: bool,
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

/// A pointer, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A value as written in the file (a header's, an `auth` block's): it may hold or name a
/// credential, so it never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(in crate::api) struct Unexpanded(pub(in crate::api) String);

impl fmt::Debug for Unexpanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
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

/// Where a profile's `${VAR}` and `${file:...}` are read from.
pub(in crate::api) struct Env<'a> {
    /// The environment.
    pub(in crate::api) lookup: &'a dyn Fn(&str) -> Option<String>,
    /// How often a secret file is looked at again.
    pub(in crate::api) reload: Duration,
}

impl Env<'_> {
    /// `value` as a secret's text (`${VAR}` read, `${file:...}` opened), refused as `field`.
    pub(in crate::api) fn text(
        &self,
        field: &str,
        value: &Unexpanded,
    ) -> Result<Arc<secret::SecretText>, ProfileError> {
        secret::secret_text(&value.0, self.lookup, self.reload)
            .map(Arc::new)
            .map_err(|e| refuse(field, e))
    }
}

pub(in crate::api) fn refuse(field: impl Into<String>, message: impl fmt::Display) -> ProfileError {
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

/// Headers as a profile or a step names them, their values expanded (`${VAR}`).
fn headers(
    field: &str,
    given: &BTreeMap<String, Unexpanded>,
    env: &Env<'_>,
) -> Result<Vec<(reqwest::header::HeaderName, secret::Secret)>, ProfileError> {
    given
        .iter()
        .map(|(name, value)| {
            secret::header(name, &value.0, env.lookup, env.reload)
                .map_err(|e| refuse(format!("{field}.{name}"), e))
        })
        .collect()
}

/// A URL a profile names: http(s) with a host, `${VAR}` read from the environment (a resource's
/// host or a project's path, never a secret: the URL shows in logs); `credentials` says where
/// credentials go instead of its user and password.
pub(in crate::api) fn http_url(
    field: &str,
    text: &str,
    env: &Env<'_>,
    credentials: &str,
) -> Result<Url, ProfileError> {
    let text = secret::expand(text, env.lookup).map_err(|e| refuse(field, e))?;
    let url = Url::parse(&text).map_err(|e| refuse(field, e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(refuse(field, "use an http:// or https:// URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(field, credentials));
    }
    Ok(url)
}

/// An origin a call may go to: an [`http_url`] with nothing a path would add to.
fn origin(field: &str, text: &str, env: &Env<'_>) -> Result<Url, ProfileError> {
    let url = http_url(
        field,
        text,
        env,
        "credentials go in headers (with ${VAR}), not in the URL",
    )?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse(field, "no query or fragment: put them in the paths"));
    }
    Ok(url)
}

impl ApiSpec {
    /// Checks the profile and compiles it; `lookup` reads the environment for `${VAR}`, and
    /// `${file:...}` is looked at again every [`secret::DEFAULT_RELOAD`].
    ///
    /// # Errors
    /// [`ProfileError`] naming the first field that is wrong.
    pub fn compile(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Profile, ProfileError> {
        self.compile_with(&lookup, secret::DEFAULT_RELOAD)
    }

    /// [`Self::compile`], with secret files looked at again every `reload`
    /// (`SECRETS_RELOAD_MS`).
    ///
    /// # Errors
    /// [`ProfileError`] naming the first field that is wrong.
    pub fn compile_with(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        reload: Duration,
    ) -> Result<Profile, ProfileError> {
        let env = Env { lookup, reload };
        let env = &env;
        let base = origin("base_url", &self.base_url, env)?;
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| origin(&format!("hosts.{i}"), host, env))
            .collect::<Result<Vec<_>, _>>()?;
        let places = step::Places {
            base: &base,
            hosts: &hosts,
        };
        let submit = self
            .submit
            .as_ref()
            .map(|spec| spec.submit(&places, env))
            .transpose()?;
        let poll = self
            .poll
            .as_ref()
            .map(|spec| spec.poll(submit.is_some(), &places, env))
            .transpose()?;
        let hook = self.hook.as_ref().map(HookSpec::compile).transpose()?;
        let fetch = self
            .fetch
            .as_ref()
            .map(|spec| spec.fetch(submit.is_some(), &places, env))
            .transpose()?;
        let status = match (&poll, &self.status) {
            (Some(_), Some(status)) => Some(status.compile("status")?),
            (Some(_), None) => {
                return Err(refuse(
                    "status",
                    "a poll needs a status: say what its answers mean",
                ));
            }
            (None, Some(_)) => return Err(refuse("status", "there is no poll to read")),
            (None, None) => None,
        };
        if poll.is_none() && (hook.is_none() || submit.is_none()) {
            return Err(refuse(
                "poll",
                "give a poll, or a submit and a hook (a provider that only pushes its answer)",
            ));
        }
        if fetch.is_some() && poll.is_none() && hook.is_none() {
            return Err(refuse(
                "fetch",
                "a fetch follows a poll or a hook that said done",
            ));
        }
        // Only the fields of the submit's answer that later calls name are kept.
        let mut kept: Vec<Vec<String>> = Vec::new();
        for request in poll
            .iter()
            .map(|p| &p.request)
            .chain(fetch.iter().map(|f| &f.request))
        {
            for placeholder in request.placeholders() {
                if let Placeholder::Submit(path) = placeholder
                    && !kept.contains(path)
                {
                    kept.push(path.clone());
                }
            }
        }
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
        // Unsaid, the usual places, then the failed job's own (a provider that answers a refused
        // call as it reports a failed job).
        let http_error = match &self.http_error {
            None => DEFAULT_HTTP_ERROR
                .iter()
                .map(|p| (*p).to_owned())
                .chain(self.error.clone())
                .collect(),
            Some(OneOrMany::One(one)) => vec![one.clone()],
            Some(OneOrMany::Many(many)) => many.clone(),
        };
        for (i, at) in http_error.iter().enumerate() {
            pointer(&format!("http_error.{i}"), Some(at))?;
        }
        let auth = self
            .auth
            .as_ref()
            .map(|spec| spec.compile(env).map(Arc::new))
            .transpose()?;
        Ok(Profile {
            headers: headers("headers", &self.headers, env)?,
            auth,
            base,
            hosts,
            ca_file: self.ca_file.clone(),
            submit,
            poll,
            status,
            fetch,
            hook,
            result: pointer("result", self.result.as_deref())?,
            partial: pointer("partial", self.partial.as_deref())?,
            error: pointer("error", self.error.as_deref())?,
            http_error,
            kept,
            allow_private_sources: self.allow_private_sources,
            limit,
            limit_key: self.limit_key.clone(),
        })
    }
}

impl StepKind {
    /// The step's name in the profile.
    fn field(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Poll => "poll",
            Self::Fetch => "fetch",
        }
    }
}

#[cfg(test)]
mod tests;
