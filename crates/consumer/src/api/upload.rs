//! Multipart bodies (`multipart/form-data`): text fields, bytes the task carries (base64), and
//! files downloaded from a URL the task names, streamed into their part as they arrive.
//!
//! A file's URL comes from a task, so it is treated like a callback's: `http(s)` only, no
//! loopback, private, link-local or metadata address (checked on the URL and, through a guarded
//! resolver, on every address a name resolves to), no redirect, unless the profile says
//! `allow_private_sources`. Every download is opened before the upload starts, so a missing file
//! fails the submit before anything is sent; their bytes count against `max_upload_bytes` in all.
//! A refused source or a file over the limit is a permanent failure of the task; a download that
//! fails otherwise is retried as the submit is.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};
use reqwest::Client;

use super::request::{FileBytes, Part};
use crate::client::describe;

/// Downloads the files of multipart parts, under the source policy and the size limit.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// No redirects; the guarded resolver unless private sources are allowed.
    client: Client,
    /// Whether files may come from private addresses.
    allow_private: bool,
    /// The most bytes an upload's files may hold in all.
    max_bytes: u64,
}

/// Why an upload could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file's URL is not one taskq may fetch: permanent.
    #[error("multipart part {part}: the file's URL is refused: {reason}")]
    Refused {
        /// The part.
        part: String,
        /// Why.
        reason: String,
    },
    /// The files are over the limit: permanent.
    #[error("multipart part {part}: the files are over {max} bytes")]
    TooBig {
        /// The part.
        part: String,
        /// The limit.
        max: u64,
    },
    /// The download failed (an error status, the network): retryable.
    #[error("multipart part {part}: downloading the file failed: {reason}")]
    Download {
        /// The part.
        part: String,
        /// Why.
        reason: String,
    },
}

impl UploadError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Download { .. })
    }
}

/// A body ready to send: its content type (with the boundary) and its stream.
pub struct Upload {
    /// `multipart/form-data; boundary=...`.
    pub content_type: String,
    /// The body.
    pub body: reqwest::Body,
    /// Set when a download without a length passed the limit while the body was streaming.
    pub overflowed: Arc<AtomicBool>,
}

impl Uploader {
    /// An uploader downloading through `client` (which must not follow redirects and should be
    /// [`webhooks::guarded`] unless `allow_private`).
    pub fn new(client: Client, allow_private: bool, max_bytes: u64) -> Self {
        Self {
            client,
            allow_private,
            max_bytes,
        }
    }

    /// The limit on an upload's files.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The body of `parts`, files opened (not yet read).
    ///
    /// # Errors
    /// [`UploadError`] when a file's URL is refused, its length is over the limit, or its
    /// download does not start.
    pub async fn body(&self, parts: Vec<(String, Part)>) -> Result<Upload, UploadError> {
        let boundary = boundary();
        let used = Arc::new(AtomicU64::new(0));
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut pieces: Vec<BoxStream<'static, Result<Bytes, std::io::Error>>> = Vec::new();
        let bytes = |bytes: Bytes| stream::iter([Ok(bytes)]).boxed();
        for (name, part) in parts {
            let (head, content) = match part {
                Part::Text(text) => (
                    part_head(&boundary, &name, None, None),
                    Content::Bytes(text.into_bytes()),
                ),
                Part::Bytes(FileBytes {
                    source,
                    filename,
                    content_type,
                }) => {
                    self.count(&used, &name, source.len() as u64)?;
                    (
                        part_head(
                            &boundary,
                            &name,
                            Some(filename.as_deref().unwrap_or(&name)),
                            content_type.as_deref(),
                        ),
                        Content::Bytes(source),
                    )
                }
                Part::Download(FileBytes {
                    source,
                    filename,
                    content_type,
                }) => {
                    let response = self.open(&name, &source).await?;
                    if let Some(len) = response.content_length() {
                        self.count(&used, &name, len)?;
                    }
                    let filename = filename.unwrap_or_else(|| file_name(&source, &name));
                    (
                        part_head(&boundary, &name, Some(&filename), content_type.as_deref()),
                        Content::Download(response),
                    )
                }
            };
            pieces.push(bytes(Bytes::from(head)));
            pieces.push(match content {
                Content::Bytes(content) => bytes(Bytes::from(content)),
                Content::Download(response) => {
                    let (used, overflowed, max) =
                        (Arc::clone(&used), Arc::clone(&overflowed), self.max_bytes);
                    let known = response.content_length().is_some();
                    response
                        .bytes_stream()
                        .map(move |chunk| {
                            let chunk = chunk.map_err(std::io::Error::other)?;
                            // Lengths given up front were counted already.
                            if !known
                                && used.fetch_add(chunk.len() as u64, Ordering::Relaxed)
                                    + chunk.len() as u64
                                    > max
                            {
                                overflowed.store(true, Ordering::Relaxed);
                                return Err(std::io::Error::other(
                                    "the files are over the upload limit",
                                ));
                            }
                            Ok(chunk)
                        })
                        .boxed()
                }
            });
            pieces.push(bytes(Bytes::from_static(b"\r\n")));
        }
        pieces.push(bytes(Bytes::from(format!("--{boundary}--\r\n"))));
        Ok(Upload {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body: reqwest::Body::wrap_stream(stream::iter(pieces).flatten()),
            overflowed,
        })
    }

    /// Counts `bytes` against the limit.
    fn count(&self, used: &AtomicU64, part: &str, bytes: u64) -> Result<(), UploadError> {
        if used.fetch_add(bytes, Ordering::Relaxed) + bytes > self.max_bytes {
            return Err(UploadError::TooBig {
                part: part.to_owned(),
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Starts the download of `url` for `part`.
    async fn open(&self, part: &str, url: &str) -> Result<reqwest::Response, UploadError> {
        let refused = |reason: String| UploadError::Refused {
            part: part.to_owned(),
            reason,
        };
        let destination = webhooks::Destination::parse(url, self.allow_private)
            .map_err(|err| refused(err.to_string()))?;
        let shown = destination.redacted();
        let response = self
            .client
            .get(destination.url().clone())
            .send()
            .await
            .map_err(|err| match webhooks::refused_by_guard(&err) {
                Some(reason) => refused(reason),
                None => UploadError::Download {
                    part: part.to_owned(),
                    reason: format!("{shown}: {}", describe(&err)),
                },
            })?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("{shown} answered HTTP {}", status.as_u16());
            // A file that is not there will not appear by retrying; anything else might pass.
            return Err(if status.is_client_error() && status.as_u16() != 429 {
                refused(reason)
            } else {
                UploadError::Download {
                    part: part.to_owned(),
                    reason,
                }
            });
        }
        Ok(response)
    }
}

/// A part's content: bytes at hand, or a download under way.
enum Content {
    Bytes(Vec<u8>),
    Download(reqwest::Response),
}

/// A boundary no part's bytes are likely to hold: 128 random bits.
fn boundary() -> String {
    let (a, b) = (
        RandomState::new().hash_one(0u8),
        RandomState::new().hash_one(1u8),
    );
    format!("taskq-{a:016x}{b:016x}")
}

/// A part's head: the boundary, `Content-Disposition` (names quoted, their quotes and line
/// breaks percent-encoded, as browsers do), and the content type of a file.
fn part_head(
    boundary: &str,
    name: &str,
    filename: Option<&str>,
    content_type: Option<&str>,
) -> Vec<u8> {
    let quoted = |text: &str| {
        text.replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
        quoted(name)
    );
    if let Some(filename) = filename {
        head.push_str(&format!("; filename=\"{}\"", quoted(filename)));
        let content_type = content_type.unwrap_or("application/octet-stream");
        head.push_str(&format!("\r\nContent-Type: {}", quoted(content_type)));
    }
    head.push_str("\r\n\r\n");
    head.into_bytes()
}

/// The last segment of a file's URL, or the part's name.
fn file_name(url: &str, part: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.path_segments()?.next_back().map(str::to_owned))
        .filter(|segment| !segment.is_empty())
        .unwrap_or_else(|| part.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_quote_names_and_give_files_a_type() {
        let head = String::from_utf8(part_head("b", "a\"b", Some("x\r\n.png"), None)).unwrap();
        assert_eq!(
            head,
            "--b\r\nContent-Disposition: form-data; name=\"a%22b\"; filename=\"x%0D%0A.png\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let text = String::from_utf8(part_head("b", "prompt", None, None)).unwrap();
        assert_eq!(
            text,
            "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n"
        );
        assert_eq!(
            file_name("https://cdn.test/a/cat.png?sig=1", "image"),
            "cat.png"
        );
        assert_eq!(file_name("https://cdn.test/", "image"), "image");
        assert_ne!(boundary(), boundary());
    }
}
