//! Credentials: a profile's header values and its `auth` block's values, with `${VAR}` read
//! from the consumer's environment once, at start, and `${file:/path}` read from a file and
//! read again when it changes (checked at most every `SECRETS_RELOAD_MS`), so a secret that
//! Kubernetes or Vault rotates in place is used without a restart.
//!
//! Every header value of a profile is treated as a secret, whether or not it holds a variable:
//! it is kept as a [`Secret`], which never prints its value (`Debug` shows `***`), and marked
//! sensitive for the HTTP stack, so neither reqwest, hyper nor h2 logs it or indexes it in HPACK
//! tables. It goes nowhere else: not in Redis, not in a view, not on `/metrics`. A missing
//! variable stops the consumer with an error that names the variable, never a value; a missing
//! or unreadable file at start does too, and later (the file gone while running) makes the
//! queue's credential fail, which holds the queue's calls, never its tasks' attempts.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderName, HeaderValue};

/// How often a secret file is looked at again, unless `SECRETS_RELOAD_MS` says otherwise.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(10);

/// A header value that must never be shown.
#[derive(Clone)]
pub struct Secret(Value);

#[derive(Clone)]
enum Value {
    /// Known at start, for good.
    Fixed(HeaderValue),
    /// Holds `${file:...}`: made again when a file changes.
    Read(Arc<SecretText>),
}

impl Secret {
    /// The value, marked sensitive, to put on a request.
    ///
    /// # Errors
    /// [`SecretError`] when a file it reads cannot be read any more, or now holds what a header
    /// cannot carry.
    pub fn header_value(&self) -> Result<HeaderValue, SecretError> {
        match &self.0 {
            Value::Fixed(value) => Ok(value.clone()),
            Value::Read(text) => {
                let mut value = HeaderValue::from_str(&text.current()?)
                    .map_err(|_| SecretError::Header(HeaderError::BadValue))?;
                value.set_sensitive(true);
                Ok(value)
            }
        }
    }
}

impl Secret {
    /// Whether it is read from a secret file (and may change while running).
    pub fn reads_files(&self) -> bool {
        matches!(self.0, Value::Read(_))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A secret's text: literal pieces (with `${VAR}` already expanded) and files read as they
/// change. Never printed.
pub struct SecretText {
    pieces: Vec<Piece>,
}

enum Piece {
    Literal(String),
    File(SecretFile),
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SecretText {
    /// The text of the file at `path` (absolute), read now and again whenever it changes,
    /// looked at every `reload`.
    ///
    /// # Errors
    /// [`SecretError::File`] when it cannot be read now.
    pub fn file(path: PathBuf, reload: Duration) -> Result<Self, SecretError> {
        let file = SecretFile::open(path, reload)?;
        Ok(Self {
            pieces: vec![Piece::File(file)],
        })
    }

    /// The text now: each file read again if it changed since it was last looked at (at most
    /// every reload interval).
    ///
    /// # Errors
    /// [`SecretError::File`] when a file cannot be read.
    pub fn current(&self) -> Result<String, SecretError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::File(file) => out.push_str(&file.current()?),
            }
        }
        Ok(out)
    }

    /// Whether any piece is read from a file.
    pub fn reads_files(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::File(_)))
    }

    /// The files it reads.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::File(file) => Some(file.path.as_path()),
            Piece::Literal(_) => None,
        })
    }
}

/// A file holding a secret, with what it held when last read.
struct SecretFile {
    path: PathBuf,
    reload: Duration,
    state: RwLock<FileState>,
}

struct FileState {
    text: Arc<str>,
    /// When the file was last looked at.
    checked: Instant,
    /// Its modification time and length then: a change of either reads it again.
    stamp: Stamp,
}

impl SecretFile {
    fn open(path: PathBuf, reload: Duration) -> Result<Self, SecretError> {
        let (text, stamp) = read_file(&path)?;
        Ok(Self {
            path,
            reload,
            state: RwLock::new(FileState {
                text,
                checked: Instant::now(),
                stamp,
            }),
        })
    }

    fn current(&self) -> Result<Arc<str>, SecretError> {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.checked.elapsed() < self.reload {
                return Ok(Arc::clone(&state.text));
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= self.reload {
            let meta = std::fs::metadata(&self.path).map_err(|e| self.unreadable(&e))?;
            let stamp = (meta.modified().ok(), meta.len());
            if stamp != state.stamp {
                let (text, stamp) = read_file(&self.path)?;
                state.text = text;
                state.stamp = stamp;
            }
            state.checked = Instant::now();
        }
        Ok(Arc::clone(&state.text))
    }

    fn unreadable(&self, error: &std::io::Error) -> SecretError {
        SecretError::File {
            path: self.path.display().to_string(),
            reason: error.kind().to_string(),
        }
    }
}

/// A file's modification time and length.
type Stamp = (Option<SystemTime>, u64);

/// A secret file's text, without the one line break an editor or `echo` leaves at its end, and
/// the stamp of the very file read: taken from the opened file, so that a rotation landing
/// between the read and the stamp (a rename over the path) cannot pair the old text with the new
/// stamp, which would keep the old secret until the file changed again.
fn read_file(path: &Path) -> Result<(Arc<str>, Stamp), SecretError> {
    let unreadable = |reason: String| SecretError::File {
        path: path.display().to_string(),
        reason,
    };
    let io = |e: std::io::Error| unreadable(e.kind().to_string());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8".into()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok((Arc::from(text), (meta.modified().ok(), meta.len())))
}

/// Why a secret could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The header could not be made.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A `${file:...}` cannot be read (never its content).
    #[error("secret file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why (the kind of error, or "not UTF-8").
        reason: String,
    },
}

/// Why a header could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `${VAR}` names a variable the environment does not have.
    #[error("environment variable {0} is not set")]
    MissingVariable(String),
    /// A `${` without its `}`, or a variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "malformed ${{VAR}} reference: write ${{NAME}} with letters, digits and _, or ${{file:/absolute/path}}"
    )]
    BadReference,
    /// The header name is not a valid HTTP header name.
    #[error("not a valid HTTP header name")]
    BadName,
    /// The value (after expansion) holds characters a header cannot carry (line breaks, ...);
    /// the value itself is not shown.
    #[error("the value is not a valid HTTP header value")]
    BadValue,
}

/// Expands every `${VAR}` of `text` with `lookup`; a `$` not followed by `{` stays as it is.
/// A `${file:...}` is refused here: see [`secret_text`] where files are allowed.
///
/// # Errors
/// [`HeaderError::MissingVariable`] naming the first variable `lookup` does not know,
/// [`HeaderError::BadReference`] for a malformed reference.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, HeaderError> {
    let mut out = String::with_capacity(text.len());
    for piece in references(text) {
        match piece? {
            Reference::Literal(literal) => out.push_str(literal),
            Reference::Variable(name) => out.push_str(
                &lookup(name).ok_or_else(|| HeaderError::MissingVariable(name.to_owned()))?,
            ),
            Reference::File(_) => return Err(HeaderError::BadReference),
        }
    }
    Ok(out)
}

/// One piece of a value as written: text, `${VAR}` or `${file:/path}`.
enum Reference<'a> {
    Literal(&'a str),
    Variable(&'a str),
    File(&'a str),
}

/// The pieces of `text`, in order.
fn references(text: &str) -> impl Iterator<Item = Result<Reference<'_>, HeaderError>> {
    let mut rest = Some(text);
    let mut pending: Option<Reference<'_>> = None;
    std::iter::from_fn(move || {
        if let Some(next) = pending.take() {
            return Some(Ok(next));
        }
        let text = rest.take()?;
        let Some(start) = text.find("${") else {
            return (!text.is_empty()).then_some(Ok(Reference::Literal(text)));
        };
        let after = &text[start + 2..];
        let Some(end) = after.find('}') else {
            return Some(Err(HeaderError::BadReference));
        };
        let name = &after[..end];
        rest = Some(&after[end + 1..]);
        let reference = if let Some(path) = name.strip_prefix("file:") {
            if !path.starts_with('/') {
                return Some(Err(HeaderError::BadReference));
            }
            Reference::File(path)
        } else {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Some(Err(HeaderError::BadReference));
            }
            Reference::Variable(name)
        };
        if start == 0 {
            Some(Ok(reference))
        } else {
            pending = Some(reference);
            Some(Ok(Reference::Literal(&text[..start])))
        }
    })
}

/// A secret's text as written: `${VAR}` expanded now, `${file:/path}` read now (so a missing
/// file stops the start) and again whenever it changes, looked at every `reload`.
///
/// # Errors
/// [`SecretError`] naming a missing variable, a malformed reference or an unreadable file.
pub fn secret_text(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    reload: Duration,
) -> Result<SecretText, SecretError> {
    let mut pieces = Vec::new();
    for piece in references(text) {
        pieces.push(match piece? {
            Reference::Literal(literal) => Piece::Literal(literal.to_owned()),
            Reference::Variable(name) => Piece::Literal(
                lookup(name).ok_or_else(|| HeaderError::MissingVariable(name.to_owned()))?,
            ),
            Reference::File(path) => Piece::File(SecretFile::open(PathBuf::from(path), reload)?),
        });
    }
    Ok(SecretText { pieces })
}

/// A header of a profile: its name checked, its value expanded and kept secret (read again
/// from its files as they change).
///
/// # Errors
/// [`SecretError`] when the name is invalid, a variable is missing, a file unreadable or the
/// value cannot be sent.
pub fn header(
    name: &str,
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
    reload: Duration,
) -> Result<(HeaderName, Secret), SecretError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::BadName)?;
    let text = secret_text(value, lookup, reload)?;
    let secret = if text.reads_files() {
        let secret = Secret(Value::Read(Arc::new(text)));
        secret.header_value()?;
        secret
    } else {
        let mut value =
            HeaderValue::from_str(&text.current()?).map_err(|_| HeaderError::BadValue)?;
        value.set_sensitive(true);
        Secret(Value::Fixed(value))
    };
    Ok((name, secret))
}

#[cfg(test)]
mod tests;
