//! The monitoring kit in `deploy/` names only series the binaries serve: the real producer and
//! consumer run one task to the end, their `/metrics` pages are scraped, and every `taskq_...`
//! name in the Prometheus alert rules (`deploy/prometheus/alerts.yml`) and in the Grafana
//! dashboard's queries (`deploy/grafana/taskq.json`) must be among the names served. A rule on a
//! misspelt or removed series never fires, silently: this is what catches it.
//! (`scripts/check-deploy` checks the rules' syntax and unit tests with promtool.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::stack::Stack;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::{eventually, free_addr, get_text};

/// The repository's `deploy/` folder.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every metric name a Prometheus text page serves: each family of a `# TYPE` line (a
/// histogram's or summary's also as `_bucket`, `_sum`, `_count`, the names queries use), and the
/// name of each sample.
fn served_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("a TYPE line without a name and a kind: {line:?}");
            };
            names.insert(name.to_owned());
            if matches!(kind, "histogram" | "summary") {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Every `taskq_...` identifier in `text`: `taskq_` not preceded by a name character, and the
/// name characters after it.
fn taskq_names(text: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("taskq_") {
        if text[..at].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let rest = &text[at..];
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        names.insert(rest[..end].to_owned());
    }
    names
}

/// The PromQL of a Grafana dashboard: every `expr` (the panels' queries), and the template
/// variables' queries (`definition`, `query`).
fn dashboard_queries(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(members) => {
            for (key, value) in members {
                match (key.as_str(), value) {
                    ("expr" | "definition" | "query", Value::String(query)) => {
                        out.push(query.clone())
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(values) => values
            .iter()
            .for_each(|value| dashboard_queries(value, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_and_dashboard_name_only_series_the_binaries_serve() {
    // What the kit references.
    let deploy = deploy_dir();
    let rules_path = deploy.join("prometheus/alerts.yml");
    let rules = std::fs::read_to_string(&rules_path)
        .unwrap_or_else(|e| panic!("{}: {e}", rules_path.display()));
    let dashboard_path = deploy.join("grafana/taskq.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path)
            .unwrap_or_else(|e| panic!("{}: {e}", dashboard_path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dashboard_path.display()));
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(
        queries
            .iter()
            .any(|q| q == "label_values(taskq_tasks, queue)"),
        "the dashboard's queue variable comes from label_values(taskq_tasks, queue): {queries:#?}"
    );
    // Which file names each series.
    let mut referenced: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for name in taskq_names(&rules) {
        referenced.entry(name).or_default().insert("alerts.yml");
    }
    for query in &queries {
        for name in taskq_names(query) {
            referenced.entry(name).or_default().insert("taskq.json");
        }
    }
    for (file, at_least) in [("alerts.yml", 10), ("taskq.json", 15)] {
        let count = referenced
            .values()
            .filter(|files| files.contains(file))
            .count();
        assert!(
            count >= at_least,
            "{file} names only {count} taskq series: is it read right? {referenced:#?}"
        );
    }

    // What the binaries serve, once a task went through every stage (so the call series have
    // samples, not only their help lines).
    let stack = Stack::start(&[("MOCK_DELAY_MS", "20"), ("MOCK_POLLS_UNTIL_DONE", "2")]);
    let consumer_addr = free_addr();
    let consumer_addr_text = consumer_addr.to_string();
    let _consumer = stack.consumer(&[
        ("CONSUMER_ADDR", &consumer_addr_text),
        ("POLL_INTERVAL_MS", "50"),
    ]);
    let client = &stack.client;
    eventually(
        Duration::from_secs(10),
        "the consumer's /healthz",
        || async {
            let response = client
                .get(format!("http://{consumer_addr}/healthz"))
                .send()
                .await
                .ok()?;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    let (status, _) = stack.enqueue("deploy-kit").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let view = stack
        .wait_final("deploy-kit", Duration::from_secs(30))
        .await;
    assert_eq!(view["state"], "done", "{view}");

    let mut served: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (binary, addr) in [("producer", stack.producer()), ("consumer", consumer_addr)] {
        let (status, page) = get_text(client, format!("http://{addr}/metrics")).await;
        assert_eq!(status, StatusCode::OK, "{binary} /metrics: {page}");
        for name in served_names(&page) {
            served.entry(name).or_default().insert(binary);
        }
    }
    assert!(
        served.contains_key("taskq_done_total")
            && served.contains_key("taskq_api_call_duration_seconds_bucket"),
        "the pages were not read right: {served:#?}"
    );

    let missing: Vec<String> = referenced
        .iter()
        .filter(|(name, _)| !served.contains_key(*name))
        .map(|(name, files)| {
            let files: Vec<&str> = files.iter().copied().collect();
            format!("{name} (in {})", files.join(", "))
        })
        .collect();
    let served_list: Vec<String> = served
        .iter()
        .map(|(name, binaries)| {
            let binaries: Vec<&str> = binaries.iter().copied().collect();
            format!("{name} ({})", binaries.join(", "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/ names {} taskq series that neither the producer nor the consumer serves:\n  {}\n\
         served:\n  {}",
        missing.len(),
        missing.join("\n  "),
        served_list.join("\n  "),
    );
    println!(
        "FIGURES deploy: {} taskq series named by deploy/, all among the {} served",
        referenced.len(),
        served.len()
    );
}
