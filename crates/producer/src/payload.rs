//! A task's payload, checked at the door: what the producer accepts, the consumer can send.
//!
//! The consumer reads a payload into a `serde_json::Value` before it builds a call (a profile's
//! templates, the original shape's query parameters). JSON's grammar allows more than that can
//! hold: a number beyond `f64` (`1e400`, an integer of 60,000 digits) or nesting deeper than
//! serde_json's 128 levels. Kept as raw text, such a payload was accepted (202) and then failed
//! the task at its first call. So the payload is read here as the consumer will read it, and
//! refused (422, naming the problem) when that fails; what is stored is still the text as sent.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A payload the consumer can read.
#[derive(Debug)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload's JSON text, as sent.
    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }

    /// The payload's JSON text, as sent.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        serde_json::from_str::<serde_json::Value>(raw.get()).map_err(|err| {
            D::Error::custom(format!(
                "payload: the consumer could not read it ({err}): numbers must fit a 64-bit \
                 float, and nesting stay within 127 levels"
            ))
        })?;
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code, reason = "read for its check")]
        payload: Payload,
    }

    fn check(payload: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"payload": {payload}}}"#))
    }

    #[test]
    fn what_the_consumer_cannot_read_is_refused_and_the_rest_kept_as_sent() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        for refused in ["1e400", "-1e400", &"9".repeat(60_000), &deep(128)] {
            let err = check(refused).unwrap_err().to_string();
            assert!(
                err.contains("payload: the consumer could not read it"),
                "{err}"
            );
        }
        for kept in [
            "1e300",
            "1.5",
            "18446744073709551616",
            &deep(127),
            r#"{"a": [1, "x"]}"#,
        ] {
            let body = check(kept).unwrap();
            assert_eq!(body.payload.raw().get(), kept);
        }
    }
}
