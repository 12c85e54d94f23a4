//! Every ` ```json ` example parses, and every profile example passes the consumer's own
//! `QUEUES_FILE` reader.

use super::*;

/// Every ` ```json ` block of `text` that is not JSON.
pub(super) fn json_problems(page: &str, text: &str) -> Vec<String> {
    blocks(text)
        .into_iter()
        .filter(|block| block.info.split_whitespace().next() == Some("json"))
        .filter_map(|block| {
            serde_json::from_str::<serde_json::Value>(&block.body)
                .err()
                .map(|e| format!("{page}:{}: a json block that is not JSON: {e}", block.line))
        })
        .collect()
}

/// The consumer's own flags, to build its settings as it does.
#[derive(Debug, Parser)]
pub(super) struct ConsumerCli {
    #[command(flatten)]
    config: consumer::Config,
}

/// What the consumer says of a `QUEUES_FILE` holding `text` (`extension` `json` or `toml`): read,
/// parsed, each queue's settings and API profile checked and compiled as at start, every
/// `${VAR}` given a stand-in value. The environment is not read: flags only.
pub(super) fn check_queues_file(extension: &str, text: &str) -> Result<(), String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "taskq-docs-{}-{}.{extension}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).map_err(|e| format!("writing {path:?}: {e}"))?;
    let checked = ConsumerCli::command()
        .mut_args(|arg| arg.env(None::<&str>))
        .try_get_matches_from([
            OsStr::new("consumer"),
            OsStr::new("--queues-file"),
            path.as_os_str(),
        ])
        .and_then(|matches| ConsumerCli::from_arg_matches(&matches))
        .map_err(|e| e.to_string())
        .and_then(|cli| {
            cli.config
                .queues_with(|_| Some("docs-example-value".to_owned()))
                .map(drop)
                .map_err(|e| e.to_string())
        });
    let _ = std::fs::remove_file(&path);
    checked
}

/// Every block of `text` marked as a profile that the consumer refuses, and every marker that
/// marks no JSON or TOML block.
pub(super) fn profile_problems(page: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let marked = blocks(text)
        .into_iter()
        .filter(|block| block.before.starts_with("<!-- profile"));
    for block in marked {
        let kind = block
            .before
            .trim_start_matches("<!-- profile:")
            .trim_end_matches("-->")
            .trim();
        let language = block.info.split_whitespace().next().unwrap_or("");
        let checked = match (kind, language) {
            ("api", "json") => check_queues_file(
                "json",
                &format!("{{\"docs-example\": {{\"api\": {}}}}}", block.body),
            ),
            ("queues-file", "json" | "toml") => check_queues_file(language, &block.body),
            _ => Err(format!(
                "the marker {:?} needs `profile: api` before a json block or `profile: \
                 queues-file` before a json or toml block",
                block.before
            )),
        };
        if let Err(why) = checked {
            problems.push(format!("{page}:{}: a profile example: {why}", block.line));
        }
    }
    problems
}

#[test]
fn broken_json_and_a_refused_profile_are_found() {
    let page = r#"```json
{"a": 1,}
```

```json title
[1, 2]
```

<!-- profile: api -->
```json
{"base_url": "https://api.example.com", "poll": {"path": "/v1/{{id}}"},
 "status": {"pointer": "/s", "done": ["ok"]}, "no_such_key": 1}
```

<!-- profile: queues-file -->
```toml
[q.api]
base_url = "ftp://x"
poll = { path = "/p" }
status = { pointer = "/s", done = ["ok"] }
```

<!-- profile: api -->
```toml
x = 1
```
"#;
    let json = json_problems("p.md", page);
    assert_eq!(json.len(), 1, "{json:#?}");
    assert!(
        json[0].starts_with("p.md:1: a json block that is not JSON"),
        "{json:?}"
    );

    let profiles = profile_problems("p.md", page);
    assert_eq!(profiles.len(), 3, "{profiles:#?}");
    assert!(profiles[0].contains("no_such_key"), "{profiles:?}");
    assert!(profiles[1].contains("base_url"), "{profiles:?}");
    assert!(profiles[2].contains("the marker"), "{profiles:?}");

    let good = r#"{"q": {"api": {"base_url": "https://api.example.com",
        "headers": {"Authorization": "Bearer ${TOKEN}"},
        "poll": {"path": "/v1/{{name}}"}, "status": {"pointer": "/s", "done": ["ok"]}}}}"#;
    assert_eq!(check_queues_file("json", good), Ok(()));
}
