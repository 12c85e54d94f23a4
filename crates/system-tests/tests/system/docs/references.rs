//! The names the docs give of the code: tests in `docs/guarantees.md`, test files in
//! `docs/testing.md`, alerts in `docs/operations.md`, scripts in `docs/architecture.md`.

use super::*;

/// Every test a promise of `docs/guarantees.md` names that is not among `fns` (a name ending in
/// `...` is a prefix), and every file it names that is not among `files` (by file name, or by
/// path from the root).
pub(super) fn test_name_problems(
    guarantees: &str,
    fns: &BTreeSet<String>,
    files: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut named = 0;
    for (_, rows) in tables(guarantees, "promise") {
        for row in rows {
            for token in code_spans(row.last().map_or("", String::as_str)) {
                if token.ends_with(".rs") {
                    named += 1;
                    let name = token.rsplit('/').next().unwrap_or(&token);
                    if !files.contains(name) && !files.contains(&token) {
                        problems.push(format!("guarantees.md names {token}, which does not exist"));
                    }
                } else if token.contains('_')
                    && token
                        .trim_end_matches("...")
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    named += 1;
                    let found = match token.strip_suffix("...") {
                        Some(prefix) => fns.iter().any(|f| f.starts_with(prefix)),
                        None => fns.contains(&token),
                    };
                    if !found {
                        problems.push(format!(
                            "guarantees.md names the test {token}, which does not exist"
                        ));
                    }
                }
            }
        }
    }
    if named == 0 {
        problems.push("guarantees.md names no test".to_owned());
    }
    problems
}

/// Every test file (`suites`, by path from the root) missing from the table of
/// `docs/testing.md`, and every file listed there that is not a test file.
pub(super) fn suite_problems(testing: &str, suites: &BTreeSet<String>) -> Vec<String> {
    let listed: BTreeSet<String> = tables(testing, "suite")
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .flat_map(|row| code_spans(&row[0]))
        .collect();
    let mut problems: Vec<String> = suites
        .difference(&listed)
        .map(|file| format!("testing.md does not list the test file {file}"))
        .collect();
    problems.extend(
        listed
            .difference(suites)
            .map(|file| format!("testing.md lists {file}, which is not a test file")),
    );
    problems
}

/// What differs between the alerts of `alerts.yml` and those `docs/operations.md` names.
pub(super) fn alert_problems(operations: &str, alerts: &str) -> Vec<String> {
    let defined: BTreeSet<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    let named: BTreeSet<&str> = operations
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() > "Taskq".len() && w.starts_with("Taskq"))
        .collect();
    let mut problems: Vec<String> = defined
        .difference(&named)
        .map(|a| format!("operations.md does not name the alert {a} of alerts.yml"))
        .collect();
    problems.extend(
        named
            .difference(&defined)
            .map(|a| format!("operations.md names the alert {a}, which alerts.yml lacks")),
    );
    problems
}

/// What differs between the scripts (`name.lua` with its first line) and the `| script |`
/// table of `docs/architecture.md`: a script missing, one listed that does not exist, a class
/// (`allow-oom`, `no-writes`, or "adds data" for no flag) other than the script's own.
pub(super) fn script_problems(
    architecture: &str,
    scripts: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for (_, rows) in tables(architecture, "script") {
        for row in rows {
            let class = row.get(1).map_or("", |c| c.trim_matches('`'));
            for name in code_spans(&row[0]) {
                listed.insert(name.clone());
                let Some(first_line) = scripts.get(&name) else {
                    problems.push(format!(
                        "architecture.md lists {name}, which does not exist"
                    ));
                    continue;
                };
                let flags = first_line
                    .split_once("flags=")
                    .map_or("adds data", |(_, flags)| flags.trim());
                if class != flags {
                    problems.push(format!(
                        "architecture.md gives {name} the class {class:?}; its first line says \
                         {flags:?}"
                    ));
                }
            }
        }
    }
    for name in scripts.keys().filter(|n| !listed.contains(*n)) {
        problems.push(format!("architecture.md does not list the script {name}"));
    }
    problems
}

#[test]
fn a_missing_test_alert_or_script_is_found() {
    let guarantees = r"| promise | proved by |
|---|---|
| one | `queue.rs` `a_test_that_exists`, `gone.rs` `a_test_that_is_gone` |
| two | `faults.rs` `a_test_...`, `no_prefix_...`; `RUST_LOG=trace` |
";
    let fns = BTreeSet::from(["a_test_that_exists".to_owned()]);
    let files = BTreeSet::from(["queue.rs".to_owned(), "faults.rs".to_owned()]);
    assert_eq!(
        test_name_problems(guarantees, &fns, &files),
        [
            "guarantees.md names gone.rs, which does not exist",
            "guarantees.md names the test a_test_that_is_gone, which does not exist",
            "guarantees.md names the test no_prefix_..., which does not exist",
        ]
    );

    let testing = r"| suite | covers |
|---|---|
| `crates/a/tests/x.rs` | x |
| `crates/a/tests/gone.rs` | gone |
";
    let suites = BTreeSet::from([
        "crates/a/tests/x.rs".to_owned(),
        "crates/a/tests/y.rs".to_owned(),
    ]);
    assert_eq!(
        suite_problems(testing, &suites),
        [
            "testing.md does not list the test file crates/a/tests/y.rs",
            "testing.md lists crates/a/tests/gone.rs, which is not a test file",
        ]
    );

    let alerts = "groups:\n  - rules:\n      - alert: TaskqOne\n      - alert: TaskqTwo\n";
    assert_eq!(
        alert_problems("TaskqOne (x), TaskqThree.", alerts),
        [
            "operations.md does not name the alert TaskqTwo of alerts.yml",
            "operations.md names the alert TaskqThree, which alerts.yml lacks",
        ]
    );

    let architecture = r"| script | class | what |
|---|---|---|
| `a.lua` | `allow-oom` | a |
| `b.lua`, `gone.lua` | adds data | b |
";
    let scripts = BTreeMap::from([
        ("a.lua".to_owned(), "#!lua".to_owned()),
        ("b.lua".to_owned(), "#!lua".to_owned()),
        ("c.lua".to_owned(), "#!lua flags=no-writes".to_owned()),
    ]);
    assert_eq!(
        script_problems(architecture, &scripts),
        [
            "architecture.md gives a.lua the class \"allow-oom\"; its first line says \"adds data\"",
            "architecture.md lists gone.lua, which does not exist",
            "architecture.md does not list the script c.lua",
        ]
    );
}
