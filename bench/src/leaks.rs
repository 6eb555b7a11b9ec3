//! Leak checks: no prompt example may answer an accuracy item, and no test item may repeat a
//! dev item, or the figures measure memory instead of skill. Pure functions, no I/O.
//!
//! Two things count as the same: the same command after the shell parser's normalization
//! (quotes, spacing, flag clusters), or a near-identical request (most of the same words).

use crate::devset::Item;
use crate::score::collapse;
use caro_safety::ShellType;
use caro_safety::simple_commands;
use std::collections::BTreeSet;

/// Requests sharing at least this fraction of their words (Jaccard) are one request reworded.
pub const NEAR_IDENTICAL: f64 = 0.75;

/// A request and its answer from somewhere other than the splits (a prompt example, a
/// retrieval bank), named for the report.
#[derive(Debug, Clone)]
pub struct Example {
    pub source: String,
    pub request: String,
    pub command: String,
    pub shell: ShellType,
}

/// Every example that answers or rewords an item: one line per leak.
pub fn example_leaks(examples: &[Example], items: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for e in examples {
        for item in items {
            if let Some(why) = same(
                (&e.request, std::slice::from_ref(&e.command), e.shell),
                (&item.nl, &item.reference_cmds, item.shell_type()),
            ) {
                out.push(format!(
                    "{} ({:?} → `{}`) and item {}: {why}",
                    e.source, e.request, e.command, item.id
                ));
            }
        }
    }
    out
}

/// Every test item that repeats a dev item: one line per pair.
pub fn split_leaks(dev: &[Item], test: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for t in test {
        for d in dev {
            if let Some(why) = same(
                (&t.nl, &t.reference_cmds, t.shell_type()),
                (&d.nl, &d.reference_cmds, d.shell_type()),
            ) {
                out.push(format!("test {} and dev {}: {why}", t.id, d.id));
            }
        }
    }
    out
}

type Side<'a> = (&'a str, &'a [String], ShellType);

fn same(a: Side<'_>, b: Side<'_>) -> Option<String> {
    let j = jaccard(&words(a.0), &words(b.0));
    if j >= NEAR_IDENTICAL {
        return Some(format!("requests share {:.0}% of their words", 100.0 * j));
    }
    for ca in a.1 {
        for cb in b.1 {
            if same_command(ca, a.2, cb, b.2) {
                return Some(format!("`{ca}` is `{cb}`"));
            }
        }
    }
    None
}

/// The same command after normalization; shells must match for the parse to mean the same.
/// The first word as written must match too: the parser unwraps `timeout` and `nohup`, which
/// makes "stop it after 5 minutes" and "keep it running after logout" one command.
pub fn same_command(a: &str, sa: ShellType, b: &str, sb: ShellType) -> bool {
    if collapse(a) == collapse(b) {
        return true;
    }
    if sa != sb || a.split_whitespace().next() != b.split_whitespace().next() {
        return false;
    }
    let (pa, pb) = (simple_commands(a, sa), simple_commands(b, sb));
    // The parser stands in for what it cannot resolve (`$((…))`, `$VAR`), so two commands
    // built of expansions can parse alike: their words, quotes aside, must mostly agree too.
    let raw = |s: &str| words(&s.replace(['\'', '"'], ""));
    !pa.is_empty() && pa == pb && jaccard(&raw(a), &raw(b)) >= 0.5
}

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn item(id: &str, nl: &str, refs: &[&str]) -> Item {
        let line = serde_json::json!({
            "id": id, "nl": nl, "reference_cmds": refs, "shell": "bash",
            "platform": "linux", "category": "files"
        });
        crate::devset::parse(&line.to_string(), "t")
            .expect("item")
            .remove(0)
    }

    fn example(request: &str, command: &str) -> Example {
        Example {
            source: "example".into(),
            request: request.into(),
            command: command.into(),
            shell: ShellType::Bash,
        }
    }

    #[rstest]
    #[case::same_command_other_words("pack up docs please", "tar -czf docs.tar.gz docs", true)]
    #[case::same_command_other_quoting(
        "count lines of the rust files",
        "find src -name \"*.rs\" -exec wc -l {} +",
        true
    )]
    #[case::reworded_request("show the five largest things in this folder", "du -s *", true)]
    #[case::same_tool_other_target("archive the logs folder", "tar -czf logs.tar.gz logs", false)]
    #[case::unrelated("what time is it", "date", false)]
    #[case::other_expansions(
        "how many days since new year",
        "echo $(( ($(date +%s) - $(date -d 2026-01-01 +%s)) / 86400 ))",
        false
    )]
    #[case::other_wrapper_same_script(
        "stop the docs build after a minute",
        "timeout 60 make docs",
        false
    )]
    fn an_example_leaks_when_it_answers_or_rewords_an_item(
        #[case] request: &str,
        #[case] command: &str,
        #[case] leaks: bool,
    ) {
        let items = [
            item(
                "a",
                "tar the docs directory",
                &["tar -czf docs.tar.gz docs"],
            ),
            item(
                "b",
                "lines per rust source",
                &["find src -name '*.rs' -exec wc -l {} +"],
            ),
            item(
                "c",
                "show the five biggest things in this folder",
                &["du -sh -- * | sort -rh | head -n 5"],
            ),
            item(
                "d",
                "build the docs so they survive logout",
                &["nohup make docs &"],
            ),
            item("e", "which language is set", &["echo $LANG"]),
        ];
        let found = example_leaks(&[example(request, command)], &items);
        assert_eq!(!found.is_empty(), leaks, "{found:?}");
    }

    #[test]
    fn a_test_item_may_not_repeat_a_dev_item() {
        let dev = [item("d", "delete draft.tmp", &["rm draft.tmp"])];
        let test = [
            item("t1", "get rid of the draft temp file", &["rm  'draft.tmp'"]),
            item("t2", "remove notes.bak", &["rm notes.bak"]),
        ];
        let found = split_leaks(&dev, &test);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("test t1 and dev d"));
    }
}
