//! Scoring a candidate command against an item's references: pure functions, no I/O.
//!
//! Four measures, each "matches any reference":
//! - **exact**: the same simple commands after the shell parser's normalization (quote
//!   removal, whitespace, `sudo` unwrapped into a flag), the same pipes and redirections;
//! - **utilities**: the same set of programs;
//! - **utilities and flags**: the same programs, each with the same set of options;
//! - **execution**: run in the sandbox, the same success, the same output and the same file
//!   changes as a reference (see [`same_outcome`]).

use crate::devset::Order;
use crate::sandbox::Outcome;
use caro_safety::ShellType;
use caro_safety::{SimpleCommand, simple_commands};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Static {
    pub exact: bool,
    pub utilities: bool,
    pub flags: bool,
}

/// The three parse-based measures, best over the references.
pub fn static_match(candidate: &str, references: &[String], shell: ShellType) -> Static {
    let cand = simple_commands(candidate, shell);
    let mut best = Static::default();
    for r in references {
        let refc = simple_commands(r, shell);
        let exact = collapse(candidate) == collapse(r) || (!cand.is_empty() && cand == refc);
        let utilities = !cand.is_empty() && programs(&cand) == programs(&refc);
        let flags = utilities && program_flags(&cand) == program_flags(&refc);
        best.exact |= exact;
        best.utilities |= utilities || exact;
        best.flags |= flags || exact;
    }
    best
}

/// Whitespace runs collapsed to one space: commands that differ only in spacing compare equal.
pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn programs(cmds: &[SimpleCommand]) -> BTreeSet<&str> {
    cmds.iter()
        .filter_map(|c| c.argv.first().map(String::as_str))
        .collect()
}

fn program_flags(cmds: &[SimpleCommand]) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut map: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in cmds {
        if let Some(p) = c.argv.first() {
            map.entry(p.as_str())
                .or_default()
                .extend(c.flags.iter().map(String::as_str));
        }
    }
    map
}

/// Whether two runs did the same thing: both succeeded or both failed, the files ended up
/// the same, and the output is the same up to trailing blanks, blank lines and `./` at the
/// start of a path (`find .` and `ls` spell the same answer differently), and up to line
/// order only where the item says order is not part of the answer.
pub fn same_outcome(a: &Outcome, b: &Outcome, order: Order) -> bool {
    a.succeeded() == b.succeeded()
        && !a.timed_out
        && !b.timed_out
        && a.tree == b.tree
        && same_output(&a.stdout, &b.stdout, order)
}

pub fn same_output(a: &str, b: &str, order: Order) -> bool {
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.trim_end())
            .filter(|l| !l.is_empty())
            .map(strip_dot_slash)
            .collect()
    };
    let (mut la, mut lb) = (lines(a), lines(b));
    if la == lb {
        return true;
    }
    if order == Order::Strict {
        return false;
    }
    la.sort();
    lb.sort();
    la == lb
}

/// `./src/x.py` → `src/x.py` wherever a path starts a word.
fn strip_dot_slash(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    let mut at_word_start = true;
    while !rest.is_empty() {
        if at_word_start && rest.starts_with("./") && rest.len() > 2 {
            rest = &rest[2..];
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        at_word_start = c.is_whitespace();
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    #[rstest]
    #[case::quoting_is_normalized("grep -rn 'TODO' src", &["grep -rn \"TODO\" src"], (true, true, true))]
    #[case::flag_order_and_clusters_same_flags("ls -l -a", &["ls -la /tmp"], (false, true, true))]
    #[case::other_flags_same_utility("ls -l", &["ls -la"], (false, true, false))]
    #[case::different_tool("find . -name '*.py'", &["ls *.py"], (false, false, false))]
    #[case::split_flags_are_not_exact("du -sh .", &["du -sh", "du -s -h ."], (false, true, true))]
    #[case::any_reference_counts("du -sh .", &["du -h", "du -sh ."], (true, true, true))]
    #[case::pipeline_programs("ps aux | sort -rk4 | head", &["ps aux --sort=-%mem | head"], (false, false, false))]
    #[case::empty_candidate("", &["ls"], (false, false, false))]
    fn static_measures(#[case] cand: &str, #[case] r: &[&str], #[case] want: (bool, bool, bool)) {
        let s = static_match(cand, &refs(r), ShellType::Bash);
        assert_eq!((s.exact, s.utilities, s.flags), want, "{cand:?} vs {r:?}");
    }

    #[rstest]
    #[case::same("a\nb\n", "a\nb", true)]
    #[case::reordered("b\na\n", "a\nb\n", true)]
    #[case::blank_lines("a\n\nb\n", "a\nb\n", true)]
    #[case::dot_slash("./src/x.py\n", "src/x.py\n", true)]
    #[case::dot_slash_after_a_count(
        "  5 ./src/a.js\n 12 total\n",
        "  5 src/a.js\n 12 total\n",
        true
    )]
    #[case::dot_alone_stays(".\n", "\n", false)]
    #[case::different("a\n", "a\nb\n", false)]
    fn outputs_where_order_is_not_the_answer(#[case] a: &str, #[case] b: &str, #[case] want: bool) {
        assert_eq!(same_output(a, b, Order::Any), want);
    }

    /// The bug of issue 19: sorted comparison let `cat f` pass for "reverse the lines of f"
    /// and `ls` for "newest first".
    #[rstest]
    #[case::cat_is_not_tac("one\ntwo\nthree\n", "three\ntwo\none\n", false)]
    #[case::alphabetical_is_not_newest_first("a.txt\nb.txt\n", "b.txt\na.txt\n", false)]
    #[case::same_order("./x\ny\n", "x\ny  \n", true)]
    fn line_order_counts_by_default(#[case] a: &str, #[case] b: &str, #[case] want: bool) {
        assert_eq!(same_output(a, b, Order::Strict), want);
    }
}
