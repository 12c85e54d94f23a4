//! Every relative link and `#anchor` of the docs resolves.

use super::*;

/// `path` from the repository's root with `.` and `..` resolved, or `None` if it leaves it.
pub(super) fn normalize(path: &str) -> Option<String> {
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
pub(super) fn link_problems(
    pages: &BTreeMap<String, String>,
    exists: impl Fn(&str) -> bool,
) -> Vec<String> {
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
