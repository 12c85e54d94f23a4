//! The schema every step of a profile shares (`submit`, `poll`, `fetch`), and the checks that
//! tell the steps apart: which keys a step takes, which values its templates may read (a submit
//! cannot read its own answer, only a fetch reads the answer that said done), where a whole URL
//! may go, and how its body is encoded (exactly one of `body`, `form`, `multipart`).

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::super::profile::{
    Body, Fetch, FilePart, IdSource, PagePlace, Pages, PartTemplate, Poll, ReadAs, Request, Submit,
    Target,
};
use super::super::same_origin;
use super::super::template::{BodyTemplate, Placeholder, Template};
use super::{Env, ProfileError, Unexpanded, headers, method, pointer, refuse};

/// One step's keys; which a step may use is checked when it compiles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// Sent on this step's calls, over the profile's headers.
    #[serde(default)]
    headers: BTreeMap<String, Unexpanded>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    form: Option<BTreeMap<String, String>>,
    #[serde(default)]
    multipart: Option<BTreeMap<String, PartSpec>>,
    /// Submit: where the job's id is.
    #[serde(default)]
    id: Option<String>,
    /// Poll and fetch: the answer's further pages.
    #[serde(default)]
    pages: Option<PagesSpec>,
    /// Fetch: how its answer is kept.
    #[serde(default, rename = "as")]
    read_as: Option<ReadAs>,
    /// Fetch: where the result is in a JSON answer.
    #[serde(default)]
    result: Option<String>,
}

/// A multipart part: a text field, or a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PartSpec {
    Text(String),
    File(FileSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PagesSpec {
    next: String,
    param: String,
    #[serde(default = "query", rename = "in")]
    place: PagePlace,
    merge: String,
    #[serde(default = "hundred")]
    max: u32,
}

fn query() -> PagePlace {
    PagePlace::Query
}

fn hundred() -> u32 {
    100
}

/// Which step a spec is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepKind {
    Submit,
    Poll,
    Fetch,
}

/// Where a step's whole URL may go: the base URL's origin, and for a fetch the `hosts`.
pub(super) struct Places<'a> {
    pub base: &'a Url,
    pub hosts: &'a [Url],
}

impl StepSpec {
    /// This spec as the profile's submit.
    pub(super) fn submit(
        &self,
        places: &Places<'_>,
        env: &Env<'_>,
    ) -> Result<Submit, ProfileError> {
        let request = self.request(StepKind::Submit, places, env)?;
        let id = self.id.as_deref().ok_or_else(|| {
            refuse(
                "submit.id",
                "say where the answer names the job: a JSON pointer (\"/id\") or \"header:NAME\"",
            )
        })?;
        let id = match id.strip_prefix("header:") {
            Some(name) => IdSource::Header(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| refuse("submit.id", format!("{name:?} is not a header name")))?,
            ),
            None => IdSource::Pointer(
                pointer("submit.id", Some(id))?
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        refuse(
                            "submit.id",
                            "give a JSON pointer (\"/id\") or \"header:NAME\"",
                        )
                    })?,
            ),
        };
        Ok(Submit { request, id })
    }

    /// This spec as the profile's poll; `submits` says whether a submit comes first.
    pub(super) fn poll(
        &self,
        submits: bool,
        places: &Places<'_>,
        env: &Env<'_>,
    ) -> Result<Poll, ProfileError> {
        let request = self.request(StepKind::Poll, places, env)?;
        needs_a_submit(StepKind::Poll, &request, submits)?;
        Ok(Poll {
            request,
            pages: self.pages(StepKind::Poll)?,
        })
    }

    /// This spec as the profile's fetch.
    pub(super) fn fetch(
        &self,
        submits: bool,
        places: &Places<'_>,
        env: &Env<'_>,
    ) -> Result<Fetch, ProfileError> {
        let request = self.request(StepKind::Fetch, places, env)?;
        needs_a_submit(StepKind::Fetch, &request, submits)?;
        let read_as = self.read_as.unwrap_or(ReadAs::Json);
        if read_as != ReadAs::Json && self.result.is_some() {
            return Err(refuse(
                "fetch.result",
                "a pointer reads a JSON answer: leave it out with \"as\": \"text\" or \"base64\"",
            ));
        }
        Ok(Fetch {
            request,
            read_as,
            result: pointer("fetch.result", self.result.as_deref())?,
            pages: self.pages(StepKind::Fetch)?,
        })
    }

    /// The call itself, with the keys every step takes, checked for `kind`.
    fn request(
        &self,
        kind: StepKind,
        places: &Places<'_>,
        env: &Env<'_>,
    ) -> Result<Request, ProfileError> {
        let step = kind.field();
        let only = |given: bool, key: &str, steps: &[StepKind], what: &str| {
            if given && !steps.contains(&kind) {
                Err(refuse(format!("{step}.{key}"), what))
            } else {
                Ok(())
            }
        };
        only(
            self.id.is_some(),
            "id",
            &[StepKind::Submit],
            "only a submit names a job's id",
        )?;
        only(
            self.pages.is_some(),
            "pages",
            &[StepKind::Poll, StepKind::Fetch],
            "only a poll's or a fetch's answer comes in pages",
        )?;
        only(
            self.read_as.is_some(),
            "as",
            &[StepKind::Fetch],
            "only a fetch reads its answer as text or bytes",
        )?;
        only(
            self.result.is_some(),
            "result",
            &[StepKind::Fetch],
            "the result of a poll's answer is the profile's \"result\"",
        )?;
        let default = if kind == StepKind::Submit {
            Method::POST
        } else {
            Method::GET
        };
        let target = match (&self.path, &self.url) {
            (Some(path), None) => {
                if !path.starts_with('/') {
                    return Err(refuse(format!("{step}.path"), "a path starts with /"));
                }
                Target::Path(Template::parse(path).map_err(|e| refuse(format!("{step}.path"), e))?)
            }
            (None, Some(url)) => {
                let template =
                    Template::parse(url).map_err(|e| refuse(format!("{step}.url"), e))?;
                if template.placeholders().next().is_none() {
                    literal_url_allowed(kind, url, places)?;
                }
                Target::Url(template)
            }
            _ => return Err(refuse(step, "give either path or url")),
        };
        let request = Request {
            method: method(&format!("{step}.method"), self.method.as_deref(), default)?,
            target,
            headers: headers(&format!("{step}.headers"), &self.headers, env)?,
            body: self.body(step)?,
        };
        for placeholder in request.placeholders() {
            reads_what_it_may(kind, placeholder)?;
        }
        Ok(request)
    }

    /// The body, in the one encoding given.
    fn body(&self, step: &str) -> Result<Option<Body>, ProfileError> {
        let field = |key: &str| format!("{step}.{key}");
        match (&self.body, &self.form, &self.multipart) {
            (None, None, None) => Ok(None),
            (Some(json), None, None) => Ok(Some(Body::Json(
                BodyTemplate::parse(json).map_err(|e| refuse(field("body"), e))?,
            ))),
            (None, Some(form), None) => Ok(Some(Body::Form(
                form.iter()
                    .map(|(name, value)| {
                        Template::parse(value)
                            .map(|t| (name.clone(), t))
                            .map_err(|e| refuse(field(&format!("form.{name}")), e))
                    })
                    .collect::<Result<_, _>>()?,
            ))),
            (None, None, Some(parts)) => Ok(Some(Body::Multipart(
                parts
                    .iter()
                    .map(|(name, part)| {
                        part.compile(&field(&format!("multipart.{name}")))
                            .map(|p| (name.clone(), p))
                    })
                    .collect::<Result<_, _>>()?,
            ))),
            _ => Err(refuse(step, "give at most one of body, form and multipart")),
        }
    }

    fn pages(&self, kind: StepKind) -> Result<Option<Pages>, ProfileError> {
        let Some(spec) = &self.pages else {
            return Ok(None);
        };
        let field = |key: &str| format!("{}.pages.{key}", kind.field());
        let required = |key: &str, at: &str| {
            pointer(&field(key), Some(at))?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| refuse(field(key), "give a JSON pointer (\"/NextToken\")"))
        };
        if spec.param.is_empty() {
            return Err(refuse(
                field("param"),
                "name the parameter the token goes in",
            ));
        }
        if spec.max < 2 {
            return Err(refuse(field("max"), "at least 2 pages"));
        }
        Ok(Some(Pages {
            next: required("next", &spec.next)?,
            param: spec.param.clone(),
            place: spec.place,
            merge: required("merge", &spec.merge)?,
            max: spec.max,
        }))
    }
}

impl PartSpec {
    fn compile(&self, field: &str) -> Result<PartTemplate, ProfileError> {
        let template = |text: &str, key: &str| {
            Template::parse(text).map_err(|e| refuse(format!("{field}.{key}"), e))
        };
        match self {
            Self::Text(text) => Ok(PartTemplate::Text(
                Template::parse(text).map_err(|e| refuse(field, e))?,
            )),
            Self::File(file) => {
                let part = |source: Template| FilePart {
                    source,
                    filename: file.filename.clone(),
                    content_type: file.content_type.clone(),
                };
                match (&file.url, &file.base64) {
                    (Some(url), None) => Ok(PartTemplate::Download(part(template(url, "url")?))),
                    (None, Some(b64)) => Ok(PartTemplate::Base64(part(template(b64, "base64")?))),
                    _ => Err(refuse(field, "a file part gives either url or base64")),
                }
            }
        }
    }
}

/// Refuses a placeholder `kind` cannot know.
fn reads_what_it_may(kind: StepKind, placeholder: &Placeholder) -> Result<(), ProfileError> {
    let step = kind.field();
    let refused = match (kind, placeholder) {
        (StepKind::Submit, Placeholder::Id) => {
            "{{id}} is what the submit answers: it cannot be used in the submit"
        }
        (StepKind::Submit, Placeholder::Submit(_)) => {
            "{{submit.FIELD}} is the submit's answer: it cannot be used in the submit"
        }
        (StepKind::Submit | StepKind::Poll, Placeholder::Done(_)) => {
            "{{done.FIELD}} is the answer that said done: only a fetch reads it"
        }
        (StepKind::Poll | StepKind::Fetch, Placeholder::WebhookUrl) => {
            "{{webhook_url}} is given to the provider once, in the submit"
        }
        _ => return Ok(()),
    };
    Err(refuse(step, refused))
}

/// Refuses `{{id}}` and `{{submit.FIELD}}` in a profile without a submit, and a whole URL that
/// could only come from one.
fn needs_a_submit(kind: StepKind, request: &Request, submits: bool) -> Result<(), ProfileError> {
    if submits {
        return Ok(());
    }
    let step = kind.field();
    if request
        .placeholders()
        .iter()
        .any(|p| matches!(p, Placeholder::Id | Placeholder::Submit(_)))
    {
        return Err(refuse(
            step,
            "{{id}} and {{submit.FIELD}} come from a submit: add one, or call by {{name}}",
        ));
    }
    if kind == StepKind::Poll && matches!(request.target, Target::Url(_)) {
        return Err(refuse(
            "poll.url",
            "a whole poll URL comes from a submit's answer",
        ));
    }
    Ok(())
}

/// A literal URL is checked at start: on the base URL's origin, or for a fetch on a `hosts` one.
fn literal_url_allowed(kind: StepKind, url: &str, places: &Places<'_>) -> Result<(), ProfileError> {
    let field = format!("{}.url", kind.field());
    let parsed = Url::parse(url).map_err(|e| refuse(&field, e))?;
    let allowed = same_origin(&parsed, places.base)
        || (kind == StepKind::Fetch && places.hosts.iter().any(|h| same_origin(&parsed, h)));
    if allowed {
        Ok(())
    } else {
        Err(refuse(
            field,
            "not on base_url's origin (a fetch may also go to a hosts entry)",
        ))
    }
}
