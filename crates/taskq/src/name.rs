//! Task names: the dedup key, validated once at the edge.
//!
//! A name is any UTF-8 text of 1 to [`MAX_TASK_NAME_LEN`] bytes without control characters. It
//! becomes the suffix of a Redis key and a query parameter of the third-party call, both of which
//! take any such text safely. Only `.` and `..` are refused besides: as a URL path segment
//! (`/tasks/..`) clients resolve them away, even percent-encoded, so the task could not be read.

use std::fmt;

use crate::error::NameError;

/// The longest task name accepted, in bytes.
pub const MAX_TASK_NAME_LEN: usize = 256;

/// A validated task name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskName(String);

impl TaskName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`NameError`] when the name is empty, longer than [`MAX_TASK_NAME_LEN`] bytes, or holds a
    /// control character, or is `.` or `..`.
    pub fn parse(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_TASK_NAME_LEN {
            return Err(NameError::TooLong {
                len: name.len(),
                max: MAX_TASK_NAME_LEN,
            });
        }
        if name == "." || name == ".." {
            return Err(NameError::DotSegment);
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(NameError::ControlCharacter(c));
        }
        Ok(Self(name))
    }

    /// Reads the `task-name` parameter of a raw query string (`a=1&task-name=x%20y`).
    ///
    /// Decoding is strict: a malformed escape or bytes that are not UTF-8 are refused rather
    /// than replaced, so two different requests can never end up naming the same task.
    ///
    /// # Errors
    /// [`NameError`] when the parameter is missing, repeated, badly encoded, or not a valid name.
    pub fn from_query(query: Option<&str>) -> Result<Self, NameError> {
        let mut found = None;
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(key)? != b"task-name" {
                continue;
            }
            if found.is_some() {
                return Err(NameError::Repeated);
            }
            found = Some(percent_decode(value)?);
        }
        let bytes = found.ok_or(NameError::Missing)?;
        Self::parse(String::from_utf8(bytes).map_err(|_| NameError::NotUtf8)?)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XY` a byte.
fn percent_decode(text: &str) -> Result<Vec<u8>, NameError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(NameError::BadEscape)?;
                let hex = std::str::from_utf8(hex).map_err(|_| NameError::BadEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| NameError::BadEscape)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_unusual_names_are_accepted() {
        for ok in [
            "a",
            "job 1",
            "a/b%20c",
            "{x}",
            "\"q\"",
            "日本語🙂",
            &"n".repeat(256),
        ] {
            assert_eq!(TaskName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn the_query_parameter_is_decoded_strictly() {
        let parse = |q| TaskName::from_query(Some(q)).map(|n| n.to_string());
        assert_eq!(parse("task-name=a%20b+c").unwrap(), "a b c");
        assert_eq!(parse("x=1&task-name=%E2%9C%93&y").unwrap(), "\u{2713}");
        assert_eq!(parse("task%2Dname=k").unwrap(), "k");
        assert_eq!(parse("task-name=%7Bq%7D%2F%25").unwrap(), "{q}/%");
        assert_eq!(TaskName::from_query(None), Err(NameError::Missing));
        assert_eq!(parse("other=1"), Err(NameError::Missing));
        assert_eq!(parse("task-name="), Err(NameError::Empty));
        assert_eq!(parse("task-name=a&task-name=b"), Err(NameError::Repeated));
        assert_eq!(parse("task-name=%zz"), Err(NameError::BadEscape));
        assert_eq!(parse("task-name=%4"), Err(NameError::BadEscape));
        assert_eq!(parse("task-name=%FF%FE"), Err(NameError::NotUtf8));
        assert_eq!(
            parse("task-name=a%0Ab"),
            Err(NameError::ControlCharacter('\n'))
        );
    }

    #[test]
    fn empty_long_and_control_names_are_refused() {
        assert_eq!(TaskName::parse(""), Err(NameError::Empty));
        assert_eq!(
            TaskName::parse("n".repeat(257)),
            Err(NameError::TooLong { len: 257, max: 256 })
        );
        assert_eq!(
            TaskName::parse("a\nb"),
            Err(NameError::ControlCharacter('\n'))
        );
        assert_eq!(TaskName::parse(".."), Err(NameError::DotSegment));
        assert_eq!(TaskName::parse("."), Err(NameError::DotSegment));
        assert!(TaskName::parse("...").is_ok());
        assert_eq!(
            TaskName::parse("a\u{7f}"),
            Err(NameError::ControlCharacter('\u{7f}'))
        );
    }
}
