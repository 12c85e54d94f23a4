//! Credentials: a profile's header values, with `${VAR}` read from the consumer's environment
//! once, at start.
//!
//! Every header value of a profile is treated as a secret, whether or not it holds a variable:
//! it is kept as a [`Secret`], which never prints its value (`Debug` shows `***`), and marked
//! sensitive for the HTTP stack, so neither reqwest, hyper nor h2 logs it or indexes it in HPACK
//! tables. It goes nowhere else: not in Redis, not in a view, not on `/metrics`. A missing
//! variable stops the consumer with an error that names the variable, never a value.

use std::fmt;

use reqwest::header::{HeaderName, HeaderValue};

/// A header value that must never be shown.
#[derive(Clone)]
pub struct Secret(HeaderValue);

impl Secret {
    /// The value, marked sensitive, to put on a request.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a header could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `${VAR}` names a variable the environment does not have.
    #[error("environment variable {0} is not set")]
    MissingVariable(String),
    /// A `${` without its `}`, or a variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("malformed ${{VAR}} reference: write ${{NAME}} with letters, digits and _")]
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
///
/// # Errors
/// [`HeaderError::MissingVariable`] naming the first variable `lookup` does not know,
/// [`HeaderError::BadReference`] for a malformed reference.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, HeaderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(HeaderError::BadReference)?;
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(HeaderError::BadReference);
        }
        out.push_str(&lookup(name).ok_or_else(|| HeaderError::MissingVariable(name.to_owned()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A header of a profile: its name checked, its value expanded and kept secret.
///
/// # Errors
/// [`HeaderError`] when the name is invalid, a variable is missing or the value cannot be sent.
pub fn header(
    name: &str,
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(HeaderName, Secret), HeaderError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::BadName)?;
    let mut value =
        HeaderValue::from_str(&expand(value, lookup)?).map_err(|_| HeaderError::BadValue)?;
    value.set_sensitive(true);
    Ok((name, Secret(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret-value".to_owned())
    }

    #[test]
    fn variables_are_expanded_and_other_dollars_kept() {
        assert_eq!(
            expand("Bearer ${TOKEN}", env).unwrap(),
            "Bearer s3cret-value"
        );
        assert_eq!(
            expand("$5 and ${TOKEN}$", env).unwrap(),
            "$5 and s3cret-value$"
        );
        assert_eq!(expand("plain", env).unwrap(), "plain");
    }

    #[test]
    fn a_missing_variable_is_named_and_a_malformed_one_refused() {
        assert_eq!(
            expand("Bearer ${NOPE}", env),
            Err(HeaderError::MissingVariable("NOPE".into()))
        );
        for bad in ["${", "${}", "${1A}", "${A-B}", "x ${TOKEN"] {
            assert_eq!(expand(bad, env), Err(HeaderError::BadReference), "{bad}");
        }
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        let (name, secret) = header("Authorization", "Bearer ${TOKEN}", env).unwrap();
        assert_eq!(name, "authorization");
        assert!(secret.header_value().is_sensitive());
        assert_eq!(format!("{secret:?}"), "***");
        assert!(!format!("{:?}", secret.header_value()).contains("s3cret"));
    }

    #[test]
    fn a_value_that_cannot_be_sent_is_refused_without_showing_it() {
        let lookup = |_: &str| Some("line\nbreak".to_owned());
        let err = header("x-api-key", "${K}", lookup).unwrap_err();
        assert_eq!(err, HeaderError::BadValue);
        assert!(!err.to_string().contains("line"));
        assert_eq!(
            header("bad name", "v", env).unwrap_err(),
            HeaderError::BadName
        );
    }
}
