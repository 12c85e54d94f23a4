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

// ------------------------------------------------------------------ reading Markdown --------

/// A fenced code block.
#[derive(Debug)]
struct Block {
    /// The fence's info string (`json`, `toml`, `sh`, ...).
    info: String,
    /// The line of its opening fence (1-based).
    line: usize,
    /// What is between the fences.
    body: String,
    /// The last non-blank line before the opening fence (where a profile marker goes).
    before: String,
}

/// The fenced blocks of `text`.
fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    let mut before = String::new();
    for (at, line) in text.lines().enumerate() {
        match open.as_mut() {
            None if line.starts_with("```") => {
                open = Some(Block {
                    info: line.trim_start_matches('`').trim().to_owned(),
                    line: at + 1,
                    body: String::new(),
                    before: std::mem::take(&mut before),
                });
            }
            None => {
                if !line.trim().is_empty() {
                    before = line.trim().to_owned();
                }
            }
            Some(_) if line.starts_with("```") => found.extend(open.take()),
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
        }
    }
    found
}

/// `text` with the lines of fenced blocks blanked and inline code spans replaced by spaces, so
/// that what remains is prose and line numbers still hold.
fn prose(text: &str) -> String {
    let mut unfenced = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            unfenced.push_str(line);
        }
        unfenced.push('\n');
    }
    without_code_spans(&unfenced)
}

/// `text` with every inline code span (a run of backticks to the next run of the same length,
/// within a paragraph) replaced by spaces, line breaks kept.
fn without_code_spans(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'`' {
            let next = text[at..].find('`').map_or(text.len(), |n| at + n);
            out.push_str(&text[at..next]);
            at = next;
            continue;
        }
        let run = bytes[at..].iter().take_while(|&&b| b == b'`').count();
        let fence = &text[at..at + run];
        let rest = &text[at + run..];
        let paragraph_end = rest.find("\n\n").unwrap_or(rest.len());
        let close = rest[..paragraph_end].match_indices(fence).find(|&(i, _)| {
            let bytes = rest.as_bytes();
            bytes.get(i + run) != Some(&b'`') && (i == 0 || bytes[i - 1] != b'`')
        });
        match close {
            Some((i, _)) => {
                let span = &text[at..at + run + i + run];
                out.extend(span.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
                at += run + i + run;
            }
            None => {
                out.push_str(fence);
                at += run;
            }
        }
    }
    out
}

/// The texts of the headings of `text` (`## A heading` gives `A heading`).
fn headings(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let level = line.chars().take_while(|&c| c == '#').count();
            if level <= 6 && line[level..].starts_with(' ') {
                found.push(line[level..].trim().trim_end_matches('#').trim().to_owned());
            }
        }
    }
    found
}

/// The anchor GitHub gives a heading: link syntax reduced to its text, lowercase, every
/// character but letters, digits, spaces, `-` and `_` dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](url)` shows as `text`.
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](") else {
            break;
        };
        let Some(close) = rest[open + mid..].find(')') else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..open + mid]);
        rest = &rest[open + mid + close + 1..];
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated one gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = BTreeSet::new();
    for heading in headings(text) {
        let base = slug(&heading);
        let count = seen.entry(base.clone()).or_default();
        found.insert(if *count == 0 {
            base
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    found
}

/// The targets of the inline links and images of `text`, outside code, with their line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, line) in prose(text).lines().enumerate() {
        for (start, _) in line.match_indices("](") {
            let rest = &line[start + 2..];
            if let Some(end) = rest.find(')') {
                let target = rest[..end].split_whitespace().next().unwrap_or("");
                found.push((at + 1, target.to_owned()));
            }
        }
    }
    found
}

/// The cells of a table row (`| a | b |` gives `a`, `b`); `\|` stays inside its cell.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            c => {
                escaped = c == '\\';
                cells.last_mut().expect("one cell at least").push(c);
            }
        }
    }
    cells.iter().map(|c| c.trim().to_owned()).collect()
}

/// The inline code spans of `text`, in order (`a \`b\` c` gives `b`).
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The tables of `text` whose header's first cell is `first`, each with the text of the
/// heading it is under and its rows' cells (header and separator left out).
fn tables(text: &str, first: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let mut found = Vec::new();
    let mut heading = String::new();
    let mut lines = text.lines().peekable();
    let mut fenced = false;
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_owned();
        } else if line.starts_with('|') && cells(line).first().is_some_and(|c| c == first) {
            lines.next(); // the |---| row
            let mut rows = Vec::new();
            while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
                rows.push(cells(row));
            }
            found.push((heading.clone(), rows));
        }
    }
    found
}

// ------------------------------------------------------------------ links and anchors -------

/// `path` from the repository's root with `.` and `..` resolved, or `None` if it leaves it.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Every relative link of `pages` whose file does not exist (`exists` answers for files that
/// are not pages) or whose `#anchor` no heading of its page makes.
fn link_problems(pages: &BTreeMap<String, String>, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (page, text) in pages {
        let dir = page.rsplit_once('/').map_or("", |(dir, _)| dir);
        for (line, target) in links(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                Some(page.clone())
            } else {
                normalize(&format!("{dir}/{file}"))
            };
            let Some(resolved) = resolved else {
                problems.push(format!("{page}:{line}: {target} leaves the repository"));
                continue;
            };
            match pages.get(&resolved) {
                Some(linked) if !anchor.is_empty() && !anchors(linked).contains(anchor) => {
                    problems.push(format!(
                        "{page}:{line}: {target}: {resolved} has no heading whose anchor is #{anchor}"
                    ));
                }
                Some(_) => {}
                None if !exists(&resolved) => {
                    problems.push(format!(
                        "{page}:{line}: {target}: {resolved} does not exist"
                    ));
                }
                None if !anchor.is_empty() => {
                    problems.push(format!(
                        "{page}:{line}: {target}: an anchor into a file that is not a page"
                    ));
                }
                None => {}
            }
        }
    }
    problems
}

// ------------------------------------------------------------------ settings ----------------

/// The settings of one binary: each variable with its default (`None`: none given).
type Settings = BTreeMap<String, Option<String>>;

/// The settings a `--help` text prints: each option's `[env: NAME]` with its `[default: X]`.
fn help_settings(help: &str) -> Settings {
    let mut settings = Settings::new();
    let mut option = String::new();
    let mut flush = |option: &str| {
        let Some(at) = option.find("[env: ") else {
            return;
        };
        let rest = &option[at + "[env: ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let default = option.find("[default: ").map(|at| {
            let rest = &option[at + "[default: ".len()..];
            rest[..rest.find(']').unwrap_or(rest.len())]
                .trim_matches('"')
                .to_owned()
        });
        settings.insert(name, default);
    };
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            flush(&option);
            option.clear();
        }
        option.push_str(line);
        option.push('\n');
    }
    flush(&option);
    settings
}

/// The binaries a heading of `docs/configuration.md` is about: the heading itself when it is a
/// binary's name, else the list in its closing parentheses (`Logging (producer, consumer)`).
fn heading_binaries(heading: &str) -> Option<Vec<String>> {
    let heading = heading.replace('`', "");
    if BINARIES.contains(&heading.as_str()) {
        return Some(vec![heading]);
    }
    let inner = heading.strip_suffix(')')?.rsplit_once('(')?.1;
    let named: Vec<String> = inner.split(',').map(|b| b.trim().to_owned()).collect();
    named
        .iter()
        .all(|b| BINARIES.contains(&b.as_str()))
        .then_some(named)
}

/// The settings `docs/configuration.md` lists for each binary, from its `| variable |` tables,
/// and what is wrong with how they are listed.
fn documented_settings(config: &str) -> (BTreeMap<String, Settings>, Vec<String>) {
    let mut listed: BTreeMap<String, Settings> = BTreeMap::new();
    let mut problems = Vec::new();
    let tables = tables(config, "variable");
    if tables.is_empty() {
        problems.push("configuration.md has no `| variable |` table".to_owned());
    }
    for (heading, rows) in tables {
        let Some(binaries) = heading_binaries(&heading) else {
            problems.push(format!(
                "configuration.md: the table under \"{heading}\" does not say whose settings it \
                 lists (a binary's name, or binaries in parentheses)"
            ));
            continue;
        };
        for row in rows {
            let default = row.get(1).and_then(|c| code_spans(c).into_iter().next());
            let names = code_spans(&row[0]).into_iter().filter(|n| {
                n.starts_with(|c: char| c.is_ascii_uppercase())
                    && n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            });
            for name in names {
                for binary in &binaries {
                    let settings = listed.entry(binary.clone()).or_default();
                    if settings.insert(name.clone(), default.clone()).is_some() {
                        problems.push(format!(
                            "configuration.md lists {name} twice for the {binary}"
                        ));
                    }
                }
            }
        }
    }
    (listed, problems)
}

/// What differs between `docs/configuration.md` and what each binary's `--help` (in `helps`)
/// prints: settings missing, settings a binary does not have, defaults.
fn settings_problems(config: &str, helps: &BTreeMap<&str, String>) -> Vec<String> {
    let (listed, mut problems) = documented_settings(config);
    for (binary, help) in helps {
        let has = help_settings(help);
        let documented = listed.get(*binary).cloned().unwrap_or_default();
        for (name, default) in &has {
            match documented.get(name) {
                None => problems.push(format!(
                    "the {binary} has {name} (its --help says so), which configuration.md does \
                     not list under a heading naming the {binary}"
                )),
                Some(written) if default.is_some() && written != default => {
                    problems.push(format!(
                        "configuration.md gives {name} of the {binary} the default {written:?}, \
                         its --help {default:?}"
                    ));
                }
                Some(_) => {}
            }
        }
        for name in documented.keys().filter(|name| !has.contains_key(*name)) {
            problems.push(format!(
                "configuration.md lists {name} for the {binary}, whose --help has no such setting"
            ));
        }
    }
    for binary in listed.keys().filter(|b| !helps.contains_key(b.as_str())) {
        problems.push(format!(
            "configuration.md lists settings of {binary}, not a binary"
        ));
    }
    problems
}

// ------------------------------------------------------------------ examples ----------------

/// Every ` ```json ` block of `text` that is not JSON.
fn json_problems(page: &str, text: &str) -> Vec<String> {
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
struct ConsumerCli {
    #[command(flatten)]
    config: consumer::Config,
}

/// What the consumer says of a `QUEUES_FILE` holding `text` (`extension` `json` or `toml`): read,
/// parsed, each queue's settings and API profile checked and compiled as at start, every
/// `${VAR}` given a stand-in value. The environment is not read: flags only.
fn check_queues_file(extension: &str, text: &str) -> Result<(), String> {
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
fn profile_problems(page: &str, text: &str) -> Vec<String> {
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

// ------------------------------------------------------------------ references --------------

/// Every test a promise of `docs/guarantees.md` names that is not among `fns` (a name ending in
/// `...` is a prefix), and every file it names that is not among `files` (by file name, or by
/// path from the root).
fn test_name_problems(
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
fn suite_problems(testing: &str, suites: &BTreeSet<String>) -> Vec<String> {
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
fn alert_problems(operations: &str, alerts: &str) -> Vec<String> {
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
fn script_problems(architecture: &str, scripts: &BTreeMap<String, String>) -> Vec<String> {
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

// ------------------------------------------------------------------ the checks' own tests ---

#[test]
fn the_slug_follows_githubs_rules() {
    assert_eq!(slug("Getting results"), "getting-results");
    assert_eq!(
        slug("Per-queue settings (`QUEUES_FILE`)"),
        "per-queue-settings-queues_file"
    );
    assert_eq!(
        slug("Results pushed to clients (W6, W7)"),
        "results-pushed-to-clients-w6-w7"
    );
    assert_eq!(slug("HTTP/2, left out"), "http2-left-out");
    assert_eq!(
        slug("Submit, then poll: ids and idempotency"),
        "submit-then-poll-ids-and-idempotency"
    );
    assert_eq!(slug("A [linked](x.md) heading"), "a-linked-heading");
    let page = "# Notes\n\n## Notes\n\n```sh\n# not a heading\n```\n\n### Notes\n";
    let expected = ["notes", "notes-1", "notes-2"].map(str::to_owned);
    assert_eq!(anchors(page), BTreeSet::from(expected));
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let readme = r"# Top

[ok](docs/a.md#the-part) [ok](#top) [ok](LICENSE) [web](https://x.y/#z)
`[code](nowhere.md)` [bad file](docs/b.md) [bad anchor](docs/a.md#the-parts)
";
    let a = r"# A

## The part

[up](../README.md#top) [out](../../x.md) [self](#nope)
![img](missing.png)
";
    let pages = BTreeMap::from([
        ("README.md".to_owned(), readme.to_owned()),
        ("docs/a.md".to_owned(), a.to_owned()),
    ]);
    let problems = link_problems(&pages, |path| path == "LICENSE");
    let expected = [
        "README.md:4: docs/b.md: docs/b.md does not exist",
        "README.md:4: docs/a.md#the-parts: docs/a.md has no heading whose anchor is #the-parts",
        "docs/a.md:5: ../../x.md leaves the repository",
        "docs/a.md:5: #nope: docs/a.md has no heading whose anchor is #nope",
        "docs/a.md:6: missing.png: docs/missing.png does not exist",
    ];
    assert_eq!(problems, expected);
}

#[test]
fn a_setting_missing_extra_or_with_another_default_is_found() {
    let help = r#"Usage: producer [OPTIONS]

Options:
      --addr <ADDR>
          Address to listen on

          [env: PRODUCER_ADDR=]
          [default: 127.0.0.1:9002]

      --admin-token <ADMIN_TOKEN>
          [env: ADMIN_TOKEN]

      --tick <TICK>
          [env: TICK=]
          [default: "* * * * * *"]

  -h, --help
"#;
    let helps = BTreeMap::from([("producer", help.to_owned())]);
    let good = r"## producer

| variable | default | meaning |
|---|---|---|
| `PRODUCER_ADDR` | `127.0.0.1:9002` | where |
| `ADMIN_TOKEN` | none | token |
| `TICK` | `* * * * * *` | cron |
";
    assert_eq!(settings_problems(good, &helps), Vec::<String>::new());

    let bad = r"## producer

| variable | default | meaning |
|---|---|---|
| `PRODUCER_ADDR` | `127.0.0.1:9003` | where |
| `TICK` | `* * * * * *` | cron |
| `NO_SUCH` | none | gone |

## Elsewhere

| variable | default | meaning |
|---|---|---|
| `ADMIN_TOKEN` | none | token |
";
    let problems = settings_problems(bad, &helps);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for expected in [
        "under \"Elsewhere\" does not say whose settings",
        "the producer has ADMIN_TOKEN",
        "gives PRODUCER_ADDR of the producer the default Some(\"127.0.0.1:9003\")",
        "lists NO_SUCH for the producer",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {problems:#?}"
        );
    }
    assert_eq!(
        heading_binaries("Redis and the queue (producer, consumer)"),
        Some(vec!["producer".to_owned(), "consumer".to_owned()])
    );
    assert_eq!(heading_binaries("Per-queue settings (`QUEUES_FILE`)"), None);
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
