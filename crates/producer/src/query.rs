//! The task name in a query string (`GET /?task-name=NAME`), the seed design's way to enqueue,
//! the optional `delay_ms` that schedules it, and the optional `wait` of a long-poll.
//!
//! Decoding is strict: a malformed escape or bytes that are not UTF-8 are refused rather than
//! replaced, so two different requests can never end up naming the same task.

use std::time::Duration;

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
    /// `delay_ms` is not one whole number of milliseconds.
    #[error("delay_ms must be given once, as a whole number of milliseconds")]
    BadDelay,
    /// `wait` is not a number of seconds from 0 to 60.
    #[error("wait must be given once, as seconds from 0 to 60 (at most 3 decimals)")]
    BadWait,
}

/// The longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Reads the `task-name` parameter of a raw query string (`a=1&task-name=x%20y`).
///
/// # Errors
/// [`QueryError`] when the parameter is missing, repeated, badly encoded, or not a valid name.
pub fn task_name(query: Option<&str>) -> Result<TaskName, QueryError> {
    let bytes = param(query, b"task-name")?.ok_or(QueryError::Missing)?;
    Ok(TaskName::parse(
        String::from_utf8(bytes).map_err(|_| QueryError::NotUtf8)?,
    )?)
}

/// Reads the optional `delay_ms` parameter of a raw query string.
///
/// # Errors
/// [`QueryError::BadDelay`] when it is repeated or not a whole number; [`QueryError::BadEscape`]
/// when the query string is badly encoded.
pub fn delay_ms(query: Option<&str>) -> Result<Option<u64>, QueryError> {
    match param(query, b"delay_ms") {
        Err(QueryError::Repeated) => Err(QueryError::BadDelay),
        Err(other) => Err(other),
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => std::str::from_utf8(&bytes)
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or(QueryError::BadDelay),
    }
}

/// The decoded value of the parameter `name`, if given; [`QueryError::Repeated`] when given twice.
/// Reads a parameter of a hook URL's query string (`sig`, `run`): absent, repeated or not UTF-8
/// is none (the signature check then fails).
///
/// # Errors
/// [`QueryError::BadEscape`] when the query string is badly encoded.
pub fn hook_param(query: Option<&str>, name: &str) -> Result<Option<String>, QueryError> {
    match param(query, name.as_bytes()) {
        Err(QueryError::Repeated) => Ok(None),
        Err(other) => Err(other),
        Ok(bytes) => Ok(bytes.and_then(|bytes| String::from_utf8(bytes).ok())),
    }
}

/// Reads the optional `wait` parameter of a raw query string: how long a long-poll may hold the
/// request (zero when absent).
///
/// # Errors
/// [`QueryError::BadWait`] when it is repeated, not a number of seconds (`5`, `0.25`), or over 60;
/// [`QueryError::BadEscape`] when the query string is badly encoded.
pub fn wait(query: Option<&str>) -> Result<Duration, QueryError> {
    let text = match param(query, b"wait") {
        Err(QueryError::Repeated) => return Err(QueryError::BadWait),
        Err(other) => return Err(other),
        Ok(None) => return Ok(Duration::ZERO),
        Ok(Some(bytes)) => String::from_utf8(bytes).map_err(|_| QueryError::BadWait)?,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str, most: usize| s.len() <= most && s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole, 2) || !digits(fraction, 3) {
        return Err(QueryError::BadWait);
    }
    let secs: u64 = whole.parse().map_err(|_| QueryError::BadWait)?;
    let millis: u64 = format!("{fraction:0<3}")
        .parse()
        .map_err(|_| QueryError::BadWait)?;
    let wait = Duration::from_secs(secs) + Duration::from_millis(millis);
    if wait > MAX_WAIT {
        return Err(QueryError::BadWait);
    }
    Ok(wait)
}

fn param(query: Option<&str>, name: &[u8]) -> Result<Option<Vec<u8>>, QueryError> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? != name {
            continue;
        }
        if found.is_some() {
            return Err(QueryError::Repeated);
        }
        found = Some(percent_decode(value)?);
    }
    Ok(found)
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
    fn wait_is_seconds_from_zero_to_sixty_with_at_most_three_decimals() {
        let ms = |n| Ok(Duration::from_millis(n));
        assert_eq!(wait(None), ms(0));
        assert_eq!(wait(Some("task-name=a")), ms(0));
        assert_eq!(wait(Some("wait=5")), ms(5000));
        assert_eq!(wait(Some("wait=0.25&queue=x")), ms(250));
        assert_eq!(wait(Some("wait=60")), ms(60_000));
        assert_eq!(wait(Some("wait=60.000")), ms(60_000));
        for bad in [
            "wait=",
            "wait=60.001",
            "wait=61",
            "wait=-1",
            "wait=1e3",
            "wait=.5",
            "wait=1.2345",
            "wait=1&wait=2",
            "wait=%FF",
            "wait=100",
        ] {
            assert_eq!(wait(Some(bad)), Err(QueryError::BadWait), "{bad}");
        }
    }

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

    #[test]
    fn delay_ms_is_one_whole_number_or_absent() {
        assert_eq!(delay_ms(Some("task-name=a")), Ok(None));
        assert_eq!(delay_ms(None), Ok(None));
        assert_eq!(delay_ms(Some("task-name=a&delay_ms=1500")), Ok(Some(1500)));
        for bad in [
            "delay_ms=",
            "delay_ms=-1",
            "delay_ms=1.5",
            "delay_ms=1&delay_ms=2",
            "delay_ms=99999999999999999999",
        ] {
            assert_eq!(delay_ms(Some(bad)), Err(QueryError::BadDelay), "{bad}");
        }
    }
}
