//! The task name in a query string (`GET /?task-name=NAME`), the seed design's way to enqueue.
//!
//! Decoding is strict: a malformed escape or bytes that are not UTF-8 are refused rather than
//! replaced, so two different requests can never end up naming the same task.

use taskq::{NameError, TaskName};

/// Why a query string names no task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query string has no `task-name` parameter.
    #[error("missing query parameter task-name")]
    Missing,
    /// The query string names more than one task.
    #[error("task-name is given more than once")]
    Repeated,
    /// A `%` is not followed by two hex digits.
    #[error("malformed percent escape in task-name")]
    BadEscape,
    /// The decoded name is not UTF-8.
    #[error("task-name is not valid UTF-8")]
    NotUtf8,
    /// The decoded name is not a valid task name.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Reads the `task-name` parameter of a raw query string (`a=1&task-name=x%20y`).
///
/// # Errors
/// [`QueryError`] when the parameter is missing, repeated, badly encoded, or not a valid name.
pub fn task_name(query: Option<&str>) -> Result<TaskName, QueryError> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? != b"task-name" {
            continue;
        }
        if found.is_some() {
            return Err(QueryError::Repeated);
        }
        found = Some(percent_decode(value)?);
    }
    let bytes = found.ok_or(QueryError::Missing)?;
    Ok(TaskName::parse(
        String::from_utf8(bytes).map_err(|_| QueryError::NotUtf8)?,
    )?)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XY` a byte.
fn percent_decode(text: &str) -> Result<Vec<u8>, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(QueryError::BadEscape)?;
                let hex = std::str::from_utf8(hex).map_err(|_| QueryError::BadEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| QueryError::BadEscape)?);
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
    fn the_query_parameter_is_decoded_strictly() {
        let parse = |q| task_name(Some(q)).map(|n| n.to_string());
        assert_eq!(parse("task-name=a%20b+c").unwrap(), "a b c");
        assert_eq!(parse("x=1&task-name=%E2%9C%93&y").unwrap(), "\u{2713}");
        assert_eq!(parse("task%2Dname=k").unwrap(), "k");
        assert_eq!(parse("task-name=%7Bq%7D%2F%25").unwrap(), "{q}/%");
        assert_eq!(task_name(None), Err(QueryError::Missing));
        assert_eq!(parse("other=1"), Err(QueryError::Missing));
        assert_eq!(parse("task-name="), Err(QueryError::Name(NameError::Empty)));
        assert_eq!(parse("task-name=a&task-name=b"), Err(QueryError::Repeated));
        assert_eq!(parse("task-name=%zz"), Err(QueryError::BadEscape));
        assert_eq!(parse("task-name=%4"), Err(QueryError::BadEscape));
        assert_eq!(parse("task-name=%FF%FE"), Err(QueryError::NotUtf8));
        assert_eq!(
            parse("task-name=a%0Ab"),
            Err(QueryError::Name(NameError::ControlCharacter('\n')))
        );
    }
}
