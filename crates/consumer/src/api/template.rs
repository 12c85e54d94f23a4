//! Templates of a profile's requests: `{{name}}`, `{{id}}`, `{{payload}}` and
//! `{{payload.FIELD}}` (nested: `{{payload.a.b}}`, an array index: `{{payload.items.0}}`); in a
//! submit `{{webhook_url}}`: the signed URL at which the provider may tell the producer that the
//! task's job moved (see `webhooks::hook`); after the submit `{{submit.FIELD}}`, a value of the
//! submit's answer (kept in the task's record: only the fields templates name); in a fetch
//! `{{done.FIELD}}`, a value of the poll's answer that said done.
//!
//! A template is parsed once, at start, into literal text and placeholders, so a typo is a
//! start-up error naming the field, and rendering a call is a walk over a few parts. Where a
//! value lands decides how it is written:
//!
//! - in a **path**, it is percent-encoded except `/` (an id like `operations/123` stays a path),
//!   and a value holding a `.` or `..` segment is refused: no task or API answer can walk the
//!   request out of the profile's base path;
//! - in a **JSON body**, a string that is exactly one placeholder becomes the JSON value itself
//!   (an object stays an object); inside a longer string it becomes its text;
//! - as a **whole URL** (`poll.url`), it is the text itself; the caller checks the host.
//!
//! A payload field the task does not have is an error (the call cannot be made as configured),
//! except `{{payload}}` itself, which is `null` for a task without a payload.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// A placeholder: what a template reads from the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// The task's name.
    Name,
    /// The remote id the submit answered.
    Id,
    /// The task's payload (`path` empty) or a field of it.
    Payload(Vec<String>),
    /// The task's hook URL (submits only).
    WebhookUrl,
    /// A field of the submit's answer (poll and fetch).
    Submit(Vec<String>),
    /// A field of the poll's answer that said done (fetch).
    Done(Vec<String>),
}

impl Placeholder {
    fn parse(inner: &str) -> Result<Self, TemplateError> {
        let inner = inner.trim();
        match inner {
            "name" => Ok(Self::Name),
            "id" => Ok(Self::Id),
            "payload" => Ok(Self::Payload(Vec::new())),
            "webhook_url" => Ok(Self::WebhookUrl),
            _ => {
                let (kind, path) = inner
                    .split_once('.')
                    .ok_or_else(|| TemplateError::Unknown(inner.to_owned()))?;
                if path.split('.').any(str::is_empty) {
                    return Err(TemplateError::Unknown(inner.to_owned()));
                }
                let path = path.split('.').map(str::to_owned).collect();
                match kind {
                    "payload" => Ok(Self::Payload(path)),
                    "submit" => Ok(Self::Submit(path)),
                    "done" => Ok(Self::Done(path)),
                    _ => Err(TemplateError::Unknown(inner.to_owned())),
                }
            }
        }
    }

    /// Where a `{{submit.FIELD}}` value is kept: its path, dotted.
    pub fn kept_key(path: &[String]) -> String {
        path.join(".")
    }
}

impl std::fmt::Display for Placeholder {
    /// The placeholder as a profile writes it, braces left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dotted = |kind: &str, path: &[String]| {
            std::iter::once(kind.to_owned())
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join(".")
        };
        match self {
            Self::Name => f.write_str("name"),
            Self::Id => f.write_str("id"),
            Self::WebhookUrl => f.write_str("webhook_url"),
            Self::Payload(path) => f.write_str(&dotted("payload", path)),
            Self::Submit(path) => f.write_str(&dotted("submit", path)),
            Self::Done(path) => f.write_str(&dotted("done", path)),
        }
    }
}

/// Why a template was refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{...}}` names nothing a task has.
    #[error(
        "unknown placeholder {{{{{0}}}}}: use {{{{name}}}}, {{{{id}}}}, {{{{payload}}}}, {{{{payload.FIELD}}}}, {{{{webhook_url}}}}, {{{{submit.FIELD}}}} or {{{{done.FIELD}}}}"
    )]
    Unknown(String),
    /// A `{{` without its `}}`.
    #[error("a {{{{ is not closed by }}}}")]
    Unclosed,
}

/// Why a call could not be rendered for a task: a permanent failure of that task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The payload has no such field.
    #[error("the task's payload has no field {0}")]
    MissingField(String),
    /// `{{id}}` before the API gave one.
    #[error("the task has no remote id yet")]
    NoId,
    /// `{{webhook_url}}` outside a submit.
    #[error("{{{{webhook_url}}}} is only known in a submit")]
    NoWebhookUrl,
    /// A path value holds a `.` or `..` segment.
    #[error("{0:?} cannot go in a URL path: it holds a . or .. segment")]
    DotSegment(String),
    /// The submit's answer had no such field.
    #[error("the submit's answer has no field {0}")]
    MissingSubmitField(String),
    /// The poll's answer that said done has no such field (or there is none: not a fetch).
    #[error("the answer that said done has no field {0}")]
    MissingDoneField(String),
}

/// What a task offers to templates.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The task's name.
    pub name: &'a str,
    /// The remote id, once the submit answered one.
    pub id: Option<&'a str>,
    /// The payload, parsed.
    pub payload: Option<&'a Value>,
    /// The task's hook URL, in a submit of a profile that uses it.
    pub webhook_url: Option<&'a str>,
    /// The values kept from the submit's answer, by dotted path (after the submit).
    pub submit: Option<&'a Value>,
    /// The poll's answer that said done (in a fetch).
    pub done: Option<&'a Value>,
}

/// The value at `path` in `value` (object members, or array indexes), if any.
pub fn walk<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, part| match value {
        Value::Object(members) => members.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

impl Values<'_> {
    fn resolve(&self, placeholder: &Placeholder) -> Result<Value, RenderError> {
        match placeholder {
            Placeholder::Name => Ok(Value::String(self.name.to_owned())),
            Placeholder::Id => self
                .id
                .map(|id| Value::String(id.to_owned()))
                .ok_or(RenderError::NoId),
            Placeholder::WebhookUrl => self
                .webhook_url
                .map(|url| Value::String(url.to_owned()))
                .ok_or(RenderError::NoWebhookUrl),
            Placeholder::Payload(path) => match self.payload {
                Some(payload) => walk(payload, path)
                    .cloned()
                    .ok_or_else(|| RenderError::MissingField(path.join("."))),
                None if path.is_empty() => Ok(Value::Null),
                None => Err(RenderError::MissingField(path.join("."))),
            },
            Placeholder::Submit(path) => self
                .submit
                .and_then(|kept| kept.get(Placeholder::kept_key(path)))
                .filter(|value| !value.is_null())
                .cloned()
                .ok_or_else(|| RenderError::MissingSubmitField(path.join("."))),
            Placeholder::Done(path) => self
                .done
                .and_then(|done| walk(done, path))
                .cloned()
                .ok_or_else(|| RenderError::MissingDoneField(path.join("."))),
        }
    }
}

/// The text of a value: a string as it is, anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// A line of text with placeholders (a path, a URL, a string in a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Everything but unreserved characters (RFC 3986) is percent-encoded.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// In a path value, `/` is kept too.
const PATH_VALUE: &AsciiSet = &UNRESERVED.remove(b'/');

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`TemplateError`] for an unknown placeholder or an unclosed `{{`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
            parts.push(Part::Value(Placeholder::parse(&after[..end])?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The placeholder, when the template is exactly one.
    fn only_placeholder(&self) -> Option<&Placeholder> {
        match self.parts.as_slice() {
            [Part::Value(placeholder)] => Some(placeholder),
            _ => None,
        }
    }

    /// Whether the template reads `{{id}}`.
    pub fn uses_id(&self) -> bool {
        self.uses(&Placeholder::Id)
    }

    /// Whether the template reads `placeholder`.
    pub fn uses(&self, placeholder: &Placeholder) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Value(p) if p == placeholder))
    }

    /// The template as a profile writes it.
    pub fn source(&self) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Value(placeholder) => format!("{{{{{placeholder}}}}}"),
            })
            .collect()
    }

    /// The placeholders the template reads.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|part| match part {
            Part::Value(placeholder) => Some(placeholder),
            Part::Text(_) => None,
        })
    }

    /// Whether `{{id}}` is the only value the template reads.
    pub fn reads_only_id(&self) -> bool {
        self.parts
            .iter()
            .all(|part| matches!(part, Part::Text(_) | Part::Value(Placeholder::Id)))
    }

    fn render_with(
        &self,
        values: &Values<'_>,
        mut write: impl FnMut(&mut String, String) -> Result<(), RenderError>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value(placeholder) => {
                    write(&mut out, text_of(&values.resolve(placeholder)?))?
                }
            }
        }
        Ok(out)
    }

    /// The text, values as they are.
    ///
    /// # Errors
    /// [`RenderError`] when a value is missing.
    pub fn render_text(&self, values: &Values<'_>) -> Result<String, RenderError> {
        self.render_with(values, |out, value| {
            out.push_str(&value);
            Ok(())
        })
    }

    /// A URL path (and query), values percent-encoded except `/`.
    ///
    /// # Errors
    /// [`RenderError`] when a value is missing or holds a `.` or `..` segment.
    pub fn render_path(&self, values: &Values<'_>) -> Result<String, RenderError> {
        self.render_with(values, |out, value| {
            if value
                .split('/')
                .any(|segment| segment == "." || segment == "..")
            {
                return Err(RenderError::DotSegment(value));
            }
            out.extend(utf8_percent_encode(&value, PATH_VALUE));
            Ok(())
        })
    }
}

/// A JSON body with placeholders in its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTemplate {
    /// JSON without placeholders.
    Literal(Value),
    /// A string that is exactly one placeholder: the value itself.
    Exact(Placeholder),
    /// A string with placeholders inside: their text.
    Text(Template),
    /// An array with templates inside.
    Array(Vec<BodyTemplate>),
    /// An object with templates inside.
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Parses every string of `json` as a template.
    ///
    /// # Errors
    /// [`TemplateError`] for the first string that does not parse.
    pub fn parse(json: &Value) -> Result<Self, TemplateError> {
        Ok(match json {
            Value::String(text) => {
                let template = Template::parse(text)?;
                match template.only_placeholder() {
                    Some(placeholder) => Self::Exact(placeholder.clone()),
                    None if template.parts.iter().any(|p| matches!(p, Part::Value(_))) => {
                        Self::Text(template)
                    }
                    None => Self::Literal(json.clone()),
                }
            }
            Value::Array(items) => {
                let items = items
                    .iter()
                    .map(Self::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|item| matches!(item, Self::Literal(_))) {
                    Self::Literal(json.clone())
                } else {
                    Self::Array(items)
                }
            }
            Value::Object(members) => {
                let members = members
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), Self::parse(value)?)))
                    .collect::<Result<Vec<_>, TemplateError>>()?;
                if members.iter().all(|(_, m)| matches!(m, Self::Literal(_))) {
                    Self::Literal(json.clone())
                } else {
                    Self::Object(members)
                }
            }
            other => Self::Literal(other.clone()),
        })
    }

    /// Whether the body reads `{{id}}`.
    pub fn uses_id(&self) -> bool {
        self.uses(&Placeholder::Id)
    }

    /// Whether the body reads `placeholder`.
    pub fn uses(&self, placeholder: &Placeholder) -> bool {
        match self {
            Self::Literal(_) => false,
            Self::Exact(exact) => exact == placeholder,
            Self::Text(template) => template.uses(placeholder),
            Self::Array(items) => items.iter().any(|item| item.uses(placeholder)),
            Self::Object(members) => members.iter().any(|(_, m)| m.uses(placeholder)),
        }
    }

    /// The placeholders the body reads.
    pub fn placeholders(&self) -> Vec<&Placeholder> {
        match self {
            Self::Literal(_) => Vec::new(),
            Self::Exact(exact) => vec![exact],
            Self::Text(template) => template.placeholders().collect(),
            Self::Array(items) => items.iter().flat_map(Self::placeholders).collect(),
            Self::Object(members) => members.iter().flat_map(|(_, m)| m.placeholders()).collect(),
        }
    }

    /// The JSON for one task.
    ///
    /// # Errors
    /// [`RenderError`] when a value is missing.
    pub fn render(&self, values: &Values<'_>) -> Result<Value, RenderError> {
        Ok(match self {
            Self::Literal(json) => json.clone(),
            Self::Exact(placeholder) => values.resolve(placeholder)?,
            Self::Text(template) => Value::String(template.render_text(values)?),
            Self::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| item.render(values))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, member)| Ok((key.clone(), member.render(values)?)))
                    .collect::<Result<Map<_, _>, RenderError>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests;
