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

    /// A name read back from Redis: it was validated when its task was enqueued.
    pub(crate) fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Sets and maps of names are looked up by text.
impl std::borrow::Borrow<str> for TaskName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
