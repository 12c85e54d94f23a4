//! The original shape, the default when a queue has no profile: `GET {API_URL}?task-name=NAME`,
//! answered `{"status": "processing" | "done", "data": ...}`.
//!
//! A task's payload (`POST /tasks`) travels as query parameters after `task-name`: each member
//! of a JSON object becomes one parameter (strings as they are, other values as JSON text), and
//! any other JSON is one `payload` parameter. A member named `task-name` is left out, so the name
//! cannot be overridden.
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx, `{"status":"done"}` or `200` | done: store `data` |
//! | 2xx, `{"status":"processing"}` or `300` | processing: store `data`, poll again |
//! | 2xx with any other body | retryable failure (the API is misbehaving, maybe for a moment) |
//! | anything else | as [`super::failure::unsuccessful`] says |
//!
//! This shape is read with a borrowed parse (the data is kept as the raw text it came as), the
//! fastest path there is: it is the one the benchmarks drive.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use taskq::{ClaimedTask, Failure, Outcome};

use super::failure::unsuccessful;
use super::template::text_of;

/// The URL of one call: `{api_url}?task-name=NAME[&payload parameters]`.
pub fn url(api_url: &Url, task: &ClaimedTask) -> Url {
    let mut url = api_url.clone();
    url.query_pairs_mut()
        .append_pair("task-name", task.name.as_str())
        .extend_pairs(
            task.payload
                .as_deref()
                .map(payload_parameters)
                .unwrap_or_default(),
        );
    url
}

/// The query parameters that carry a payload (see the module's notes).
fn payload_parameters(payload: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(members)) => members
            .into_iter()
            .filter(|(key, _)| key != "task-name")
            .map(|(key, value)| (key, text_of(&value)))
            .collect(),
        _ => vec![("payload".to_owned(), payload.to_owned())],
    }
}

/// The expected body: `{"status": ..., "data": ...}`.
#[derive(Deserialize)]
struct Body<'a> {
    status: Status,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The answer's status: the words, or the seed design's numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Status {
    Word(String),
    Code(i64),
}

/// Turns a status line, a `Retry-After` delay and a body into an outcome.
pub fn read(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    if !status.is_success() {
        return unsuccessful(status, retry_after, None);
    }
    let body: Body<'_> = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => {
            return Outcome::Failed(Failure::retryable(format!(
                "the API's answer is not the expected JSON: {err}"
            )));
        }
    };
    let data = body
        .data
        .map_or_else(|| "null".to_owned(), |raw| raw.get().to_owned());
    match body.status {
        Status::Word(word) if word == "done" => Outcome::Done(data),
        Status::Code(200) => Outcome::Done(data),
        Status::Word(word) if word == "processing" => Outcome::Processing {
            data,
            poll_in: retry_after,
        },
        Status::Code(300) => Outcome::Processing {
            data,
            poll_in: retry_after,
        },
        Status::Word(other) => Outcome::Failed(Failure::retryable(format!(
            "the API answered an unknown status {other:?}"
        ))),
        Status::Code(other) => Outcome::Failed(Failure::retryable(format!(
            "the API answered an unknown status {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use taskq::TaskName;

    use super::*;

    fn ok(body: &str) -> Outcome {
        read(StatusCode::OK, None, body.as_bytes())
    }

    #[test]
    fn done_and_processing_keep_the_data_as_sent() {
        assert_eq!(
            ok(r#"{"status":"done","data":{"a": 1}}"#),
            Outcome::Done(r#"{"a": 1}"#.into())
        );
        assert_eq!(
            ok(r#"{"status":"processing","data":[1]}"#),
            Outcome::Processing {
                data: "[1]".into(),
                poll_in: None
            }
        );
        assert_eq!(ok(r#"{"status":"done"}"#), Outcome::Done("null".into()));
    }

    #[test]
    fn the_seed_designs_numeric_statuses_are_understood() {
        assert_eq!(ok(r#"{"status":200,"data":1}"#), Outcome::Done("1".into()));
        assert!(matches!(
            ok(r#"{"status":300,"data":1}"#),
            Outcome::Processing { .. }
        ));
    }

    #[test]
    fn unexpected_bodies_are_retryable_failures() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"status":"weird"}"#,
            r#"{"status":301}"#,
            "[1]",
        ] {
            match ok(body) {
                Outcome::Failed(failure) => assert!(!failure.permanent, "{body:?}"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unsuccessful_answers_follow_the_shared_rules() {
        assert!(matches!(
            read(StatusCode::TOO_MANY_REQUESTS, None, b""),
            Outcome::Throttled { .. }
        ));
        assert!(matches!(
            read(StatusCode::NOT_FOUND, None, b""),
            Outcome::Failed(Failure {
                permanent: true,
                ..
            })
        ));
    }

    fn task(payload: Option<&str>) -> ClaimedTask {
        ClaimedTask {
            name: TaskName::parse("a b&c").unwrap(),
            token: "1".into(),
            attempts: 0,
            polls: 0,
            payload: payload.map(str::to_owned),
            remote_id: None,
            throttled: 0,
            has_callback: false,
            submit_token: None,
            kept: None,
            hook: None,
        }
    }

    #[test]
    fn a_payload_object_becomes_one_parameter_per_member_and_anything_else_one_parameter() {
        let api = Url::parse("http://api.test/poll").unwrap();
        let object = url(
            &api,
            &task(Some(
                r#"{"region": "eu", "n": 3, "ids": [1, 2], "task-name": "other"}"#,
            )),
        );
        let pairs: Vec<(String, String)> = object.query_pairs().into_owned().collect();
        let expected = [
            ("task-name", "a b&c"),
            ("region", "eu"),
            ("n", "3"),
            ("ids", "[1,2]"),
        ];
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        for (key, value) in expected {
            assert!(
                pairs.contains(&(key.into(), value.into())),
                "{key}: {pairs:?}"
            );
        }
        let array = url(&api, &task(Some("[1, 2]")));
        assert_eq!(
            array.query(),
            Some("task-name=a+b%26c&payload=%5B1%2C+2%5D")
        );
        assert_eq!(url(&api, &task(None)).query(), Some("task-name=a+b%26c"));
    }
}
