//! Reading Markdown as the checks need it: fenced blocks, prose without code, headings and
//! GitHub's anchors, links, tables and their cells, code spans.

use super::*;

/// A fenced code block.
#[derive(Debug)]
pub(super) struct Block {
    /// The fence's info string (`json`, `toml`, `sh`, ...).
    pub(super) info: String,
    /// The line of its opening fence (1-based).
    pub(super) line: usize,
    /// What is between the fences.
    pub(super) body: String,
    /// The last non-blank line before the opening fence (where a profile marker goes).
    pub(super) before: String,
}

/// The fenced blocks of `text`.
pub(super) fn blocks(text: &str) -> Vec<Block> {
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
pub(super) fn prose(text: &str) -> String {
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
pub(super) fn without_code_spans(text: &str) -> String {
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
pub(super) fn headings(text: &str) -> Vec<String> {
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
pub(super) fn slug(heading: &str) -> String {
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
pub(super) fn anchors(text: &str) -> BTreeSet<String> {
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
pub(super) fn links(text: &str) -> Vec<(usize, String)> {
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
pub(super) fn cells(row: &str) -> Vec<String> {
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
pub(super) fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The tables of `text` whose header's first cell is `first`, each with the text of the
/// heading it is under and its rows' cells (header and separator left out).
pub(super) fn tables(text: &str, first: &str) -> Vec<(String, Vec<Vec<String>>)> {
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
