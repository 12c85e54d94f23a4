//! A profile's call of one step for one task (submit, poll, fetch, or one more page of one):
//! where it goes, with which headers and body, and the submit's idempotency key.
//!
//! Requests go only where the configuration says: a path is appended to `base_url` (never
//! resolved against it, so `//other.host` stays a path), its values are percent-encoded and
//! refused when they hold `.` or `..` segments, and a whole URL (`"url": "{{id}}"`, the id an API
//! such as Azure answers with, or `{{submit.status_url}}`) must be on `base_url`'s scheme, host
//! and port; a fetch's may be on one of the profile's `hosts` instead, and then carries none of
//! the profile's headers (a CDN or a presigned URL must not see the API's credential). Whatever a
//! task's payload or an API's answer holds, no call leaves the configured hosts.

use percent_encoding::utf8_percent_encode;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use taskq::ClaimedTask;

use super::profile::{Body, FilePart, PagePlace, Pages, PartTemplate, Profile, Request, Target};
use super::same_origin;
use super::template::{RenderError, UNRESERVED, Values};

/// Which step of a profile a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creates the task's job.
    Submit,
    /// Asks how the job is doing.
    Poll,
    /// Gets the result.
    Fetch,
}

impl Step {
    /// The step's name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Poll => "poll",
            Self::Fetch => "fetch",
        }
    }
}

/// One call, ready to send (but for the files a multipart body downloads).
#[derive(Debug)]
pub struct Call {
    /// Which step.
    pub step: Step,
    /// The HTTP method.
    pub method: Method,
    /// Where it goes, checked to be on the profile's hosts.
    pub url: Url,
    /// The headers: the profile's (not on another host) with the step's over them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, if any.
    pub body: Option<CallBody>,
    /// Whether it goes to the base URL's origin (then the profile's credential goes with it).
    pub on_base: bool,
}

/// A rendered body.
#[derive(Debug)]
pub enum CallBody {
    /// Bytes of a content type (JSON, form).
    Bytes {
        /// `application/json` or `application/x-www-form-urlencoded`.
        content_type: &'static str,
        /// The encoded body.
        bytes: Vec<u8>,
    },
    /// A multipart body's parts, in order.
    Multipart(Vec<(String, Part)>),
}

/// One rendered multipart part.
#[derive(Debug)]
pub enum Part {
    /// A text field.
    Text(String),
    /// A file to download from this URL (checked by the downloader) and stream in.
    Download(FileBytes<String>),
    /// A file's bytes, decoded from base64.
    Bytes(FileBytes<Vec<u8>>),
}

/// A file part: its bytes (or where they are), its name and its type.
#[derive(Debug)]
pub struct FileBytes<T> {
    /// The URL or the bytes.
    pub source: T,
    /// The part's file name.
    pub filename: Option<String>,
    /// The part's content type.
    pub content_type: Option<String>,
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
    /// The URL made is on another scheme, host or port than the profile allows.
    #[error("refused: {url} is not on {base}")]
    OffHost {
        /// The URL.
        url: String,
        /// The origin it had to be on.
        base: String,
    },
    /// A base64 part is not base64.
    #[error("multipart part {0}: the value is not base64")]
    NotBase64(String),
    /// A page token cannot go in the body: it is not a JSON object.
    #[error("the page token goes in the body, which is not a JSON object")]
    PageBody,
    /// A credential could not be read (a secret file gone or changed into what a header
    /// cannot carry): a problem of the queue, not of the task.
    #[error(transparent)]
    Credential(#[from] super::secret::SecretError),
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
pub fn submit_token(task: &ClaimedTask) -> &str {
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

/// `url`, parsed and checked to be on `base`'s origin or one of `others`; answers whether it is
/// on another (then the profile's headers stay home).
fn on_hosts(url: String, base: &Url, others: &[Url]) -> Result<(Url, bool), RequestError> {
    let parsed = Url::parse(&url).map_err(|reason| RequestError::BadUrl {
        url: url.clone(),
        reason: reason.to_string(),
    })?;
    if same_origin(&parsed, base) {
        return Ok((parsed, false));
    }
    if others.iter().any(|other| same_origin(&parsed, other)) {
        return Ok((parsed, true));
    }
    Err(RequestError::OffHost {
        url,
        base: base.origin().ascii_serialization(),
    })
}

/// `path` appended to `base`'s path (never resolved against it: `//host` stays a path).
fn under_base(base: &Url, path: &str) -> Result<Url, RequestError> {
    Ok(on_hosts(
        format!("{}{path}", base.as_str().trim_end_matches('/')),
        base,
        &[],
    )?
    .0)
}

/// The task's payload, parsed.
///
/// # Errors
/// [`RequestError::Payload`] when the stored payload is not JSON.
pub fn payload(task: &ClaimedTask) -> Result<Option<Value>, RequestError> {
    task.payload
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(RequestError::Payload)
}

/// The call of `step` (its `request`) for one task's `values`; `page`, for one more page of an
/// answer: the pages' rule and the token of the page wanted. A whole URL may go to the profile's
/// `hosts` only in a fetch.
///
/// # Errors
/// [`RequestError`] when a template needs what the task lacks, a value would leave the base
/// path, or a URL is on a host the profile does not allow.
pub fn render(
    profile: &Profile,
    step: Step,
    request: &Request,
    values: &Values<'_>,
    page: Option<(&Pages, &str)>,
) -> Result<Call, RequestError> {
    let others: &[Url] = if step == Step::Fetch {
        &profile.hosts
    } else {
        &[]
    };
    let (mut url, elsewhere) = match &request.target {
        Target::Path(path) => (
            under_base(&profile.base, &path.render_path(values)?)?,
            false,
        ),
        Target::Url(url) => on_hosts(url.render_text(values)?, &profile.base, others)?,
    };
    let mut body = request
        .body
        .as_ref()
        .map(|body| render_body(body, values))
        .transpose()?;
    if let Some((pages, token)) = page {
        match pages.place {
            PagePlace::Query => {
                url.query_pairs_mut().append_pair(&pages.param, token);
            }
            PagePlace::Body => add_to_json_body(&mut body, &pages.param, token)?,
        }
    }
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let profile_headers = if elsewhere {
        &[][..]
    } else {
        &profile.headers[..]
    };
    for (name, secret) in profile_headers.iter().chain(&request.headers) {
        headers.retain(|(kept, _)| kept != name);
        headers.push((name.clone(), secret.header_value()?));
    }
    Ok(Call {
        step,
        method: request.method.clone(),
        url,
        headers,
        body,
        on_base: !elsewhere,
    })
}

fn render_body(body: &Body, values: &Values<'_>) -> Result<CallBody, RequestError> {
    Ok(match body {
        Body::Json(json) => CallBody::Bytes {
            content_type: "application/json",
            bytes: json.render(values)?.to_string().into_bytes(),
        },
        Body::Form(fields) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (name, value) in fields {
                form.append_pair(name, &value.render_text(values)?);
            }
            CallBody::Bytes {
                content_type: "application/x-www-form-urlencoded",
                bytes: form.finish().into_bytes(),
            }
        }
        Body::Multipart(parts) => CallBody::Multipart(
            parts
                .iter()
                .map(|(name, part)| Ok((name.clone(), render_part(name, part, values)?)))
                .collect::<Result<_, RequestError>>()?,
        ),
    })
}

fn render_part(name: &str, part: &PartTemplate, values: &Values<'_>) -> Result<Part, RequestError> {
    let file = |file: &FilePart, source| FileBytes {
        source,
        filename: file.filename.clone(),
        content_type: file.content_type.clone(),
    };
    Ok(match part {
        PartTemplate::Text(text) => Part::Text(text.render_text(values)?),
        PartTemplate::Download(download) => {
            Part::Download(file(download, download.source.render_text(values)?))
        }
        PartTemplate::Base64(encoded) => {
            use base64::Engine;
            let text = encoded.source.render_text(values)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| RequestError::NotBase64(name.to_owned()))?;
            Part::Bytes(FileBytes {
                source: bytes,
                filename: encoded.filename.clone(),
                content_type: encoded.content_type.clone(),
            })
        }
    })
}

/// Puts the page token in the JSON body (an empty object when the call has none).
fn add_to_json_body(
    body: &mut Option<CallBody>,
    param: &str,
    token: &str,
) -> Result<(), RequestError> {
    let mut json = match body.take() {
        None => Value::Object(serde_json::Map::new()),
        Some(CallBody::Bytes {
            content_type: "application/json",
            bytes,
        }) => serde_json::from_slice(&bytes).map_err(|_| RequestError::PageBody)?,
        Some(_) => return Err(RequestError::PageBody),
    };
    let Value::Object(members) = &mut json else {
        return Err(RequestError::PageBody);
    };
    members.insert(param.to_owned(), Value::String(token.to_owned()));
    *body = Some(CallBody::Bytes {
        content_type: "application/json",
        bytes: json.to_string().into_bytes(),
    });
    Ok(())
}

#[cfg(test)]
mod tests;
