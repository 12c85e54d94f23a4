//! `consumer --check`: every queue of the settings and every entry of `QUEUES_FILE` compiled
//! with the environment, and each queue's calls shown as the consumer will make them (the
//! method and the URL with its placeholders, query values hidden; the names of the headers, never
//! their values), or every mistake, each naming its file, queue and key.

use std::fmt::Write;

use super::{Compiled, Config, QueueSettings};
use crate::api::Api;
use crate::api::profile::{Profile, Request, Target};

/// The report of `--check`: what each queue calls, or every mistake; `Ok` when there is none.
///
/// # Errors
/// The report of the mistakes.
pub fn check(config: &Config) -> Result<String, String> {
    let compiled: Compiled = config
        .compile_all(|name| std::env::var(name).ok())
        .map_err(|err| format!("{err}\n"))?;
    let mut mistakes: Vec<String> = compiled.errors.iter().map(ToString::to_string).collect();
    for queue in compiled.served.iter().filter(|q| q.api.uses_webhook_url()) {
        if let Err(err) = config.hooks.urls() {
            mistakes.push(format!("queue {}: {err}", queue.name));
        }
    }
    if !mistakes.is_empty() {
        return Err(mistakes.iter().map(|m| format!("{m}\n")).collect());
    }
    let mut report = String::new();
    for (queue, served) in compiled
        .served
        .iter()
        .map(|q| (q, true))
        .chain(compiled.unserved.iter().map(|q| (q, false)))
    {
        describe(&mut report, queue, served);
    }
    Ok(report)
}

fn describe(out: &mut String, queue: &QueueSettings, served: bool) {
    let note = if served {
        ""
    } else {
        " (not served: QUEUES leaves it out)"
    };
    let _ = writeln!(out, "queue {}{note}", queue.name);
    match &queue.api {
        Api::Original(url) => {
            let _ = writeln!(
                out,
                "  call   GET {}",
                hide_query_values(&format!("{url}?task-name={{{{name}}}}"))
            );
        }
        Api::Profile(profile) => {
            let steps = [
                ("submit", profile.submit.as_ref().map(|s| &s.request)),
                ("poll", profile.poll.as_ref().map(|p| &p.request)),
                ("fetch", profile.fetch.as_ref().map(|f| &f.request)),
            ];
            for (step, request) in steps {
                if let Some(request) = request {
                    let _ = writeln!(out, "  {step:<6} {}", call(profile, request));
                }
            }
            if let Some(auth) = &profile.auth {
                let _ = writeln!(out, "  auth   {}", auth.describe());
            }
            if profile.hook.is_some() {
                let _ = writeln!(
                    out,
                    "  hook   the provider's webhook body is read as an answer"
                );
            }
        }
    }
}

/// `METHOD url [headers: A, B]`.
fn call(profile: &Profile, request: &Request) -> String {
    let url = match &request.target {
        Target::Path(path) => format!(
            "{}{}",
            profile.base.as_str().trim_end_matches('/'),
            path.source()
        ),
        Target::Url(url) => url.source(),
    };
    let mut names: Vec<&str> = profile
        .headers
        .iter()
        .chain(&request.headers)
        .map(|(name, _)| name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let headers = if names.is_empty() {
        String::new()
    } else {
        format!(" (headers: {})", names.join(", "))
    };
    format!("{} {}{headers}", request.method, hide_query_values(&url))
}

/// `url` with each query value replaced by `…` (a query may carry a credential).
fn hide_query_values(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let hidden: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}=…"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", hidden.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_hidden_names_kept() {
        assert_eq!(
            hide_query_values("https://a.test/v1/x?key=sk-1&mode=fast"),
            "https://a.test/v1/x?key=…&mode=…"
        );
        assert_eq!(
            hide_query_values("https://a.test/v1/x"),
            "https://a.test/v1/x"
        );
    }
}
