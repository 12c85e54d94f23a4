//! A reader of `multipart/form-data` bodies (RFC 7578), as a provider's upload endpoint reads
//! them: the whole body, at most `max_upload_bytes` of it, split at its boundary into parts,
//! each a form field (text) or a file (a part with a `filename`).
//!
//! A body over the limit is still read to its end (up to [`DRAIN_BYTES`] more) before the 413
//! is answered: a server that answers and closes while the client is still sending resets the
//! connection, and the client may lose the answer it was about to read.
//!
//! It reads what the shapes need and no more: no nested multipart, no
//! `Content-Transfer-Encoding`, no `filename*`; part headers are ASCII.

use std::fmt;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

/// How much of a body over the limit is read and dropped before the 413 is answered.
pub const DRAIN_BYTES: usize = 64 << 20;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its `name`.
    pub name: String,
    /// Its `filename`: a file part has one.
    pub filename: Option<String>,
    /// Its `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// Its bytes (a slice of the body: no copy).
    pub data: Bytes,
}

/// A form: its parts in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The parts, in the body's order.
    pub parts: Vec<Part>,
}

/// Why a body is not a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// Its `Content-Type` is not `multipart/form-data` with a boundary.
    NotMultipart,
    /// It is longer than the limit.
    TooLarge {
        /// The limit (bytes).
        limit: usize,
    },
    /// It does not follow RFC 7578.
    Malformed(String),
    /// It could not be read (the client went away).
    Unreadable(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMultipart => f.write_str("Content-Type: must be multipart/form-data"),
            Self::TooLarge { limit } => write!(f, "body: larger than {limit} bytes"),
            Self::Malformed(why) => write!(f, "body: not multipart/form-data: {why}"),
            Self::Unreadable(why) => write!(f, "body: unreadable: {why}"),
        }
    }
}

/// Reads `body` as the form its `Content-Type` (in `headers`) announces, at most `limit` bytes.
///
/// # Errors
/// When the body is not such a form, or is longer than `limit`.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Form, FormError> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary)
        .ok_or(FormError::NotMultipart)?;
    let bytes = collect(body, limit).await?;
    Form::parse(&bytes, &boundary)
}

/// The body's bytes, if no more than `limit`; a longer body is read on and dropped.
async fn collect(body: Body, limit: usize) -> Result<Bytes, FormError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FormError::Unreadable(e.to_string()))?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit.saturating_add(DRAIN_BYTES) {
            break;
        }
        if seen <= limit {
            bytes.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(FormError::TooLarge { limit });
    }
    Ok(Bytes::from(bytes))
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters(params)
        .into_iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// The `key=value` parameters of a header after its first value, values unquoted.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ';')).collect();
        if key.is_empty() && chars.peek().is_none() {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ';')).collect();
            }
        }
        params.push((key.trim().to_owned(), value.trim_end().to_owned()));
    }
}

/// Where `needle` first occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| at + from)
}

impl Form {
    /// Splits `body` at `boundary` into its parts.
    ///
    /// # Errors
    /// When the body does not follow RFC 7578: no boundary, a part without a
    /// `Content-Disposition: form-data` and a name, no closing boundary.
    pub fn parse(body: &Bytes, boundary: &str) -> Result<Self, FormError> {
        let malformed = |why: &str| FormError::Malformed(why.to_owned());
        let delimiter = format!("--{boundary}");
        let next = format!("\r\n--{boundary}");
        let first = find(body, delimiter.as_bytes(), 0).ok_or_else(|| malformed("no boundary"))?;
        let mut at = first + delimiter.len();
        let mut parts = Vec::new();
        loop {
            let rest = &body[at..];
            if rest.starts_with(b"--") {
                return Ok(Self { parts });
            }
            let line = rest
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(rest.len());
            at += line;
            if !body[at..].starts_with(b"\r\n") {
                return Err(malformed("no line break after a boundary"));
            }
            at += 2;
            let (head, start) = if body[at..].starts_with(b"\r\n") {
                ("", at + 2)
            } else {
                let end = find(body, b"\r\n\r\n", at)
                    .ok_or_else(|| malformed("a part's headers never end"))?;
                let head = std::str::from_utf8(&body[at..end])
                    .map_err(|_| malformed("a part's headers are not text"))?;
                (head, end + 4)
            };
            let end = find(body, next.as_bytes(), start)
                .ok_or_else(|| malformed("no closing boundary"))?;
            parts.push(Part::new(head, body.slice(start..end))?);
            at = end + next.len();
        }
    }

    /// The text of the first field (not a file) named `name`, if it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.name == name && p.filename.is_none())
            .and_then(|p| std::str::from_utf8(&p.data).ok())
    }

    /// The first file part named `name`.
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.name == name && p.filename.is_some())
    }

    /// The form as a job's input: each field's text (the first of a name), and each file as
    /// `{"filename", "content_type", "bytes", "fnv1a"}` (its length and fingerprint, not its
    /// bytes).
    pub fn to_json(&self) -> Value {
        let mut members = Map::new();
        for part in &self.parts {
            if members.contains_key(&part.name) {
                continue;
            }
            let value = match &part.filename {
                Some(filename) => json!({
                    "filename": filename,
                    "content_type": part.content_type,
                    "bytes": part.data.len(),
                    "fnv1a": format!("{:016x}", crate::fnv1a(&part.data)),
                }),
                None => Value::String(String::from_utf8_lossy(&part.data).into_owned()),
            };
            members.insert(part.name.clone(), value);
        }
        Value::Object(members)
    }
}

impl Part {
    /// A part with headers `head` (lines without the last break) and bytes `data`.
    fn new(head: &str, data: Bytes) -> Result<Self, FormError> {
        let mut disposition = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                return Err(FormError::Malformed(format!("a part header: {line:?}")));
            };
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value.trim());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let disposition = disposition
            .ok_or_else(|| FormError::Malformed("a part has no Content-Disposition".into()))?;
        let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(FormError::Malformed(format!(
                "a part's Content-Disposition is {kind:?}, not form-data"
            )));
        }
        let params = parameters(params);
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let name =
            param("name").ok_or_else(|| FormError::Malformed("a part has no name".into()))?;
        Ok(Self {
            name,
            filename: param("filename"),
            content_type,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])], boundary: &str) -> Bytes {
        let mut body = b"preamble\r\n".to_vec();
        for (name, filename, data) in parts {
            body.extend(format!("--{boundary}\r\n").bytes());
            match filename {
                Some(f) => body.extend(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n").bytes(),
                ),
                None => body.extend(
                    format!("content-disposition: form-data; name={name}\r\n\r\n").bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").bytes());
        Bytes::from(body)
    }

    #[test]
    fn fields_and_files_are_read_with_their_bytes_intact() {
        // The file holds what looks like a boundary, but not one after a line break.
        let image: &[u8] = b"\x89PNG\r\n\x00--xyz\r\n-\xff";
        let body = body(
            &[
                ("prompt", None, b"a cat"),
                ("image", Some("a;b.png"), image),
            ],
            "xyz",
        );

        let form = Form::parse(&body, "xyz").expect("a form");

        assert_eq!(form.text("prompt"), Some("a cat"));
        let file = form.file("image").expect("a file");
        assert_eq!(file.data, image);
        assert_eq!(file.filename.as_deref(), Some("a;b.png"));
        assert_eq!(file.content_type.as_deref(), Some("image/png"));
        assert_eq!(form.text("image"), None, "a file is not a field");
        assert_eq!(form.to_json()["image"]["bytes"], image.len());
        assert_eq!(form.to_json()["prompt"], "a cat");
    }

    #[test]
    fn the_boundary_comes_from_the_content_type_quoted_or_not() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=x; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn a_body_that_breaks_off_is_malformed() {
        let whole = body(&[("a", None, b"1")], "b");
        let cut = whole.slice(..whole.len() - 10);

        assert!(matches!(
            Form::parse(&cut, "b"),
            Err(FormError::Malformed(_))
        ));
        assert!(matches!(
            Form::parse(&Bytes::from_static(b"nothing"), "b"),
            Err(FormError::Malformed(_))
        ));
        assert_eq!(
            Form::parse(&Bytes::from_static(b"--b--\r\n"), "b"),
            Ok(Form::default())
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large() {
        let form = body(&[("a", None, &[b'x'; 100])], "b");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=b".parse().expect("a value"),
        );

        let small = read(&headers, Body::from(form.clone()), 50).await;
        let fits = read(&headers, Body::from(form.clone()), form.len()).await;

        assert_eq!(small, Err(FormError::TooLarge { limit: 50 }));
        assert_eq!(fits.expect("a form").text("a").map(str::len), Some(100));
        assert_eq!(
            read(&HeaderMap::new(), Body::from(form), 1000).await,
            Err(FormError::NotMultipart)
        );
    }
}
