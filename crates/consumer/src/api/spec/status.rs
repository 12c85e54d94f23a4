//! How answers say what became of a job: a poll's `status` (a value in the body, or the HTTP
//! code), and a provider's webhook body (`hook`: its own status, result and error pointers).

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::super::profile::{HookRule, HttpRule, PointerRule, StatusRule, Verdict};
use super::{ProfileError, pointer, refuse};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusSpec {
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    processing: Vec<Value>,
    #[serde(default)]
    done: Vec<Value>,
    #[serde(default)]
    failed: Vec<Value>,
    #[serde(default)]
    absent: Option<Verdict>,
    #[serde(default)]
    http: Option<HttpStatusSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpStatusSpec {
    #[serde(default)]
    processing: Vec<u16>,
    done: Vec<u16>,
    #[serde(default)]
    failed: Vec<u16>,
}

/// The `hook` key: how a provider's webhook body reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HookSpec {
    #[serde(default)]
    status: Option<StatusSpec>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl HookSpec {
    pub(super) fn compile(&self) -> Result<HookRule, ProfileError> {
        let status = self
            .status
            .as_ref()
            .map(|status| status.compile("hook.status"))
            .transpose()?;
        if matches!(status, Some(StatusRule::Http(_))) {
            return Err(refuse(
                "hook.status",
                "a webhook has no HTTP code of its own: read a value of its body (pointer)",
            ));
        }
        Ok(HookRule {
            status,
            result: pointer("hook.result", self.result.as_deref())?,
            error: pointer("hook.error", self.error.as_deref())?,
        })
    }
}

/// Refuses a value in two lists of one rule.
fn disjoint<T: PartialEq + fmt::Debug>(field: &str, lists: [&[T]; 3]) -> Result<(), ProfileError> {
    for (i, list) in lists.iter().enumerate() {
        for other in &lists[i + 1..] {
            if let Some(both) = list.iter().find(|v| other.contains(v)) {
                return Err(refuse(field, format!("{both:?} is in two lists")));
            }
        }
    }
    Ok(())
}

impl StatusSpec {
    /// The rule, its errors named under `field`.
    pub(super) fn compile(&self, field: &str) -> Result<StatusRule, ProfileError> {
        let body_lists =
            !self.processing.is_empty() || !self.done.is_empty() || !self.failed.is_empty();
        match (&self.pointer, &self.http) {
            (Some(at), None) => {
                let pointer = pointer(&format!("{field}.pointer"), Some(at))?.unwrap_or_default();
                if self.done.is_empty() {
                    return Err(refuse(
                        format!("{field}.done"),
                        "list the values that mean done",
                    ));
                }
                disjoint(field, [&self.processing, &self.done, &self.failed])?;
                Ok(StatusRule::Pointer(PointerRule {
                    pointer,
                    lists: [
                        (self.processing.clone(), Verdict::Processing),
                        (self.done.clone(), Verdict::Done),
                        (self.failed.clone(), Verdict::Failed),
                    ],
                    absent: self.absent.clone(),
                }))
            }
            (None, Some(http)) if !body_lists && self.absent.is_none() => {
                let field = format!("{field}.http");
                if http.done.is_empty() {
                    return Err(refuse(
                        format!("{field}.done"),
                        "list the codes that mean done",
                    ));
                }
                if let Some(bad) = [&http.processing, &http.done, &http.failed]
                    .into_iter()
                    .flatten()
                    .find(|code| !(100..=599).contains(*code))
                {
                    return Err(refuse(field, format!("{bad} is not an HTTP status")));
                }
                disjoint(&field, [&http.processing, &http.done, &http.failed])?;
                Ok(StatusRule::Http(HttpRule {
                    lists: [
                        (http.processing.clone(), Verdict::Processing),
                        (http.done.clone(), Verdict::Done),
                        (http.failed.clone(), Verdict::Failed),
                    ],
                }))
            }
            (None, Some(_)) => Err(refuse(
                field,
                "with http, the lists go inside it: {\"http\": {\"processing\": [202], \"done\": [200]}}",
            )),
            _ => Err(refuse(
                field,
                "give either pointer (with processing, done, failed) or http",
            )),
        }
    }
}
