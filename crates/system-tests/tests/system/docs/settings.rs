//! Every setting a binary's `--help` prints is in `docs/configuration.md` under that binary,
//! with the same default, and no other.

use super::*;

/// The settings of one binary: each variable with its default (`None`: none given).
pub(super) type Settings = BTreeMap<String, Option<String>>;

/// The settings a `--help` text prints: each option's `[env: NAME]` with its `[default: X]`.
pub(super) fn help_settings(help: &str) -> Settings {
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
pub(super) fn heading_binaries(heading: &str) -> Option<Vec<String>> {
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
pub(super) fn documented_settings(config: &str) -> (BTreeMap<String, Settings>, Vec<String>) {
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
pub(super) fn settings_problems(config: &str, helps: &BTreeMap<&str, String>) -> Vec<String> {
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
