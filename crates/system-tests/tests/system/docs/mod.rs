//! The documentation against the code. `README.md` and `docs/*.md` are read, and a test fails on
//! a broken relative link or `#anchor`; on a setting that a binary's `--help` prints but
//! `docs/configuration.md` does not list for it (or lists for a binary that lacks it, or with
//! another default); on a ` ```json ` example that does not parse, or a profile example the
//! consumer's own `QUEUES_FILE` reader refuses; and on a reference out of step: a test named in
//! `docs/guarantees.md` that no longer exists, a test file missing from `docs/testing.md`, an
//! alert or a Lua script that `docs/operations.md` or `docs/architecture.md` names wrongly.
//!
//! Each check is a function from text to the problems it finds, so that a unit test can feed it
//! a broken input and see it fail. A profile example is marked by an HTML comment on the line
//! before its block: `<!-- profile: api -->` (the `"api"` object of a queue) or
//! `<!-- profile: queues-file -->` (a whole `QUEUES_FILE`, JSON or TOML).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};

mod examples;
mod link_check;
mod markdown;
mod references;
mod settings;

use examples::*;
use link_check::*;
use markdown::*;
use references::*;
use settings::*;

/// The binaries whose settings `docs/configuration.md` lists.
const BINARIES: [&str; 4] = ["producer", "consumer", "mock-api", "demo"];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `README.md` and every `docs/*.md`, by path from the root (`docs/limits.md`).
fn pages() -> BTreeMap<String, String> {
    let mut pages = BTreeMap::new();
    let read = |path: &str| {
        std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
    };
    pages.insert("README.md".to_owned(), read("README.md"));
    for entry in std::fs::read_dir(root().join("docs")).expect("read docs/") {
        let name = entry.expect("docs/ entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            let path = format!("docs/{name}");
            let text = read(&path);
            pages.insert(path, text);
        }
    }
    pages
}

/// Every file under `dir` (recursively), skipping build output.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    todo.push(path);
                }
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Fails with every problem found, one a line.
fn assert_none(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s) in the docs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ------------------------------------------------------------------ the checks --------------

#[test]
fn every_link_and_anchor_in_the_docs_resolves() {
    let pages = pages();
    assert!(
        pages.len() > 5,
        "README.md and docs/*.md: {:?}",
        pages.keys()
    );
    assert_none(&link_problems(&pages, |path| root().join(path).exists()));
}

#[tokio::test]
async fn configuration_lists_every_setting_of_every_binary_and_no_other() {
    let mut helps: BTreeMap<&str, String> = BTreeMap::new();
    for &binary in BINARIES.iter() {
        let output = testkit::run_to_end(binary, &["--help"], &[]).await;
        assert!(output.status.success(), "{binary} --help: {output:?}");
        let help = String::from_utf8(output.stdout).expect("--help is UTF-8");
        assert!(help.contains("[env: "), "{binary} --help names no variable");
        helps.insert(binary, help);
    }
    let config = &pages()["docs/configuration.md"];
    assert_none(&settings_problems(config, &helps));
}

#[test]
fn every_json_example_parses_and_every_profile_passes_the_consumers_checks() {
    let pages = pages();
    let mut problems = Vec::new();
    let mut profiles = 0;
    for (page, text) in &pages {
        problems.extend(json_problems(page, text));
        problems.extend(profile_problems(page, text));
        profiles += blocks(text)
            .iter()
            .filter(|b| b.before.starts_with("<!-- profile"))
            .count();
    }
    assert!(profiles >= 5, "only {profiles} profile examples are marked");
    assert_none(&problems);
}

#[test]
fn every_test_suite_alert_and_script_the_docs_name_exists() {
    let pages = pages();
    let root = root();
    let rust: Vec<PathBuf> = files_under(&root.join("crates"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let relative = |path: &Path| {
        path.strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned()
    };
    let mut fns = BTreeSet::new();
    let mut files = BTreeSet::new();
    let mut suites = BTreeSet::new();
    for path in &rust {
        let text = std::fs::read_to_string(path).expect("read a Rust file");
        for (at, _) in text.match_indices("fn ") {
            let name: String = text[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            fns.insert(name);
        }
        files.insert(
            path.file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned(),
        );
        files.insert(relative(path));
        let in_tests = path.components().any(|c| c.as_os_str() == "tests");
        let name = path.file_name().expect("a file name");
        // The test binaries' roots and helpers, and the system tests' harness, are not suites.
        if in_tests
            && name != "main.rs"
            && name != "mod.rs"
            && !path.ends_with("tests/system/stack.rs")
        {
            suites.insert(relative(path));
        }
    }
    let mut problems = test_name_problems(&pages["docs/guarantees.md"], &fns, &files);
    problems.extend(suite_problems(&pages["docs/testing.md"], &suites));
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml"))
        .expect("read alerts.yml");
    problems.extend(alert_problems(&pages["docs/operations.md"], &alerts));
    let scripts: BTreeMap<String, String> = files_under(&root.join("crates/taskq/src/lua"))
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a script");
            let first = text.lines().next()?.to_owned();
            first.starts_with("#!lua").then(|| {
                let name = path.file_name().expect("a file name").to_string_lossy();
                (name.into_owned(), first)
            })
        })
        .collect();
    assert!(scripts.len() > 10, "the scripts: {scripts:?}");
    problems.extend(script_problems(&pages["docs/architecture.md"], &scripts));
    assert_none(&problems);
}
