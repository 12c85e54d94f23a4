//! Provider webhooks in: the URL a provider calls when a job ends, and its check.
//!
//! A profile's submit body may hold `{{webhook_url}}`; the consumer fills in
//! `{PUBLIC_URL}/hooks/{queue}/{name}?run={run}&sig={sig}`, where `run` is the task's submit token
//! (fixed for one run of the task, new for a later task of the same name or a retried one) and
//! `sig` an HMAC-SHA256 of the queue, the name and the run under `HOOK_SECRET` (URL-safe base64,
//! no padding). The producer serves that path and acts only on a valid `sig`, and only on the run
//! it names, so nobody can hurry a task whose URL they were not given, and a URL names one run of
//! one task: a provider (or anyone who sees the URL) can make that run be polled early, nothing
//! more, and never a later task that reuses the name. The webhook's body is never trusted: the
//! poll that follows fetches the provider's own answer.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::hmac;

/// The shortest hook secret accepted, in bytes.
pub const MIN_HOOK_SECRET_BYTES: usize = 16;

/// What a path segment of a hook URL escapes: everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path every hook URL starts with.
pub const HOOKS_PATH: &str = "/hooks";

/// `HOOK_SECRET`: any text of at least 16 bytes; never printed (`Debug` and `Display` show
/// `***`).
#[derive(Clone)]
pub struct HookSecret(hmac::Key);

/// Why a hook secret was refused (the message never quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HOOK_SECRET must be at least {MIN_HOOK_SECRET_BYTES} bytes (it is {0})")]
pub struct HookSecretTooShort(usize);

impl FromStr for HookSecret {
    type Err = HookSecretTooShort;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() < MIN_HOOK_SECRET_BYTES {
            return Err(HookSecretTooShort(text.len()));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes())))
    }
}

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl HookSecret {
    /// The message signed: the queue, the name and the run, each ended by a NUL (none holds
    /// one), so no two triples sign alike.
    fn message(queue: &str, name: &str, run: &str) -> Vec<u8> {
        let mut message = Vec::with_capacity(queue.len() + name.len() + run.len() + 3);
        for part in [queue, name, run] {
            message.extend_from_slice(part.as_bytes());
            message.push(0);
        }
        message
    }

    /// The `sig` of the hook URL of run `run` (its submit token) of task `name` of `queue`.
    pub fn sign(&self, queue: &str, name: &str, run: &str) -> String {
        let tag = hmac::sign(&self.0, &Self::message(queue, name, run));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `sig` is the signature of run `run` of task `name` of `queue` (compared in
    /// constant time).
    pub fn verify(&self, queue: &str, name: &str, run: &str, sig: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        hmac::verify(&self.0, &Self::message(queue, name, run), &tag).is_ok()
    }
}

/// Where providers reach the producer (`PUBLIC_URL`) and the secret of the hook URLs: what the
/// consumer needs to write a task's `{{webhook_url}}`.
#[derive(Debug, Clone)]
pub struct HookUrls {
    /// `PUBLIC_URL` without a trailing `/`.
    public_url: String,
    secret: HookSecret,
}

impl HookUrls {
    /// Hook URLs under `public_url`, signed with `secret`.
    pub fn new(public_url: &str, secret: HookSecret) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            secret,
        }
    }

    /// The hook URL of run `run` (its submit token) of task `name` of `queue`:
    /// `{PUBLIC_URL}/hooks/{queue}/{name}?run={run}&sig={sig}`, the name percent-encoded as one
    /// path segment.
    pub fn url(&self, queue: &str, name: &str, run: &str) -> String {
        format!(
            "{}{HOOKS_PATH}/{}/{}?run={}&sig={}",
            self.public_url,
            utf8_percent_encode(queue, SEGMENT),
            utf8_percent_encode(name, SEGMENT),
            utf8_percent_encode(run, SEGMENT),
            self.secret.sign(queue, name, run)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> HookSecret {
        text.parse().unwrap()
    }

    #[test]
    fn a_signature_names_one_run_of_one_task_of_one_queue() {
        let key = secret("0123456789abcdef-hook");
        let sig = key.sign("images", "cat/1", "17");
        assert!(key.verify("images", "cat/1", "17", &sig));
        assert!(!key.verify("images", "cat/2", "17", &sig));
        assert!(!key.verify("other", "cat/1", "17", &sig));
        assert!(!key.verify("images", "cat/1", "18", &sig), "a later run");
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(key.sign("ab", "c", "1"), key.sign("a", "bc", "1"));
        assert_ne!(key.sign("a", "b1", ""), key.sign("a", "b", "1"));
        assert!(!secret("another secret, 16+ bytes").verify("images", "cat/1", "17", &sig));
        for bad in ["", "not base64 !", &sig[1..]] {
            assert!(!key.verify("images", "cat/1", "17", bad), "{bad:?}");
        }
    }

    #[test]
    fn the_url_encodes_the_name_as_one_segment_and_carries_its_signature() {
        let urls = HookUrls::new("https://taskq.example.com/", secret("0123456789abcdef"));
        let url = urls.url("q", "a/b c", "42");
        let sig = secret("0123456789abcdef").sign("q", "a/b c", "42");
        assert_eq!(
            url,
            format!("https://taskq.example.com/hooks/q/a%2Fb%20c?run=42&sig={sig}")
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_a_secret_never_prints() {
        let err = "short".parse::<HookSecret>().unwrap_err();
        assert!(!err.to_string().contains("short"));
        let key = secret("0123456789abcdef-visible?");
        assert_eq!(format!("{key:?} {key}"), "*** ***");
    }
}
