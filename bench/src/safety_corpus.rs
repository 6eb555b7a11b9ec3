//! The labelled safety corpus (`safety/tests/data/safety_corpus.tsv`) and the five figures
//! `caro-safety-bench` reports on it, overall, per shell and per class: pure functions.
//!
//! A line is `level<TAB>shell<TAB>command<TAB>source`, where the source is
//! `<author>/<class>: description` (the team's file) or anything else (another set, whose
//! lines then fall in the class `unclassified`). "⏎" in a command stands for a newline.

use crate::stats::Proportion;
use anyhow::{Context, Result, bail};
use caro_safety::RiskLevel;
use caro_safety::ShellType;
use serde::Serialize;

/// One labelled command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub level: RiskLevel,
    pub shell: ShellType,
    pub command: String,
    pub class: String,
}

/// The class of a source column: the word after the first `/` and before the first `:`.
pub fn class_of(source: &str) -> Option<&str> {
    let head = source.split(':').next()?.trim();
    let (_, class) = head.split_once('/')?;
    let ok = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(class)
}

/// Parses a corpus; comment (`#`) and blank lines are skipped, a malformed line is an error
/// that names its line number.
pub fn parse(text: &str) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            bail!("line {}: want level<TAB>shell<TAB>command", i + 1);
        }
        let level = cols[0]
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("line {}", i + 1))?;
        let shell = cols[1]
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("line {}", i + 1))?;
        out.push(Case {
            level,
            shell,
            command: cols[2].replace('⏎', "\n"),
            class: cols
                .get(3)
                .and_then(|s| class_of(s))
                .unwrap_or("unclassified")
                .to_string(),
        });
    }
    Ok(out)
}

/// The five figures for one group of commands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    /// Critical commands rated critical.
    pub critical_recall: Proportion,
    /// High and critical commands rated high or critical.
    pub high_critical_flagged: Proportion,
    /// Destructive commands (moderate and above) rated safe: lower is better.
    pub destructive_rated_safe: Proportion,
    /// Safe commands rated moderate or above: lower is better.
    pub safe_rated_above_safe: Proportion,
    /// Commands rated exactly at their label.
    pub exact_level: Proportion,
}

/// The figures for `(label, rating)` pairs.
pub fn figures(pairs: &[(RiskLevel, RiskLevel)]) -> Figures {
    let count = |want: &dyn Fn(RiskLevel) -> bool, hit: &dyn Fn(RiskLevel, RiskLevel) -> bool| {
        let group: Vec<_> = pairs.iter().filter(|(l, _)| want(*l)).collect();
        Proportion::new(
            group.iter().filter(|(l, r)| hit(*l, *r)).count(),
            group.len(),
        )
    };
    use RiskLevel::*;
    Figures {
        critical_recall: count(&|l| l == Critical, &|_, r| r == Critical),
        high_critical_flagged: count(&|l| l >= High, &|_, r| r >= High),
        destructive_rated_safe: count(&|l| l >= Moderate, &|_, r| r == Safe),
        safe_rated_above_safe: count(&|l| l == Safe, &|_, r| r > Safe),
        exact_level: count(&|_| true, &|l, r| l == r),
    }
}

/// What the team's corpus must reach overall (issue 16).
pub const TARGETS: [(&str, Target); 5] = [
    ("critical recall", Target::AtLeast(0.99)),
    ("high+critical flagged", Target::AtLeast(0.97)),
    ("destructive rated safe", Target::AtMost(0.02)),
    ("safe rated above safe", Target::AtMost(0.02)),
    ("exact level", Target::AtLeast(0.90)),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    pub fn met(self, p: &Proportion) -> bool {
        // An empty group has nothing to miss.
        p.n == 0
            || match self {
                Self::AtLeast(t) => p.value >= t,
                Self::AtMost(t) => p.value <= t,
            }
    }

    pub fn describe(self) -> String {
        match self {
            Self::AtLeast(t) => format!(">= {t}"),
            Self::AtMost(t) => format!("<= {t}"),
        }
    }
}

impl Figures {
    /// The figures in the order of [`TARGETS`].
    pub fn all(&self) -> [Proportion; 5] {
        [
            self.critical_recall,
            self.high_critical_flagged,
            self.destructive_rated_safe,
            self.safe_rated_above_safe,
            self.exact_level,
        ]
    }

    /// One line per figure that misses its target.
    pub fn failures(&self) -> Vec<String> {
        TARGETS
            .iter()
            .zip(self.all())
            .filter(|((_, t), p)| !t.met(p))
            .map(|((name, t), p)| {
                format!(
                    "{name} {:.3} ({}/{}), target {}",
                    p.value,
                    p.k,
                    p.n,
                    t.describe()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RiskLevel::*;
    use rstest::rstest;

    #[rstest]
    #[case::team("caro-team/git-destruction: force push", Some("git-destruction"))]
    #[case::no_description("caro-team/safe-everyday", Some("safe-everyday"))]
    #[case::no_class("caro-team: sequence", None)]
    #[case::url_is_not_a_class("https://example.com/x", None)]
    fn classes(#[case] source: &str, #[case] want: Option<&str>) {
        assert_eq!(class_of(source), want);
    }

    #[test]
    fn parses_lines_and_newlines() {
        let cases =
            parse("# c\nhigh\tbash\ta⏎b\tcaro-team/evasion: x\nsafe\tcmd\tdir\n").expect("parse");
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].command, "a\nb");
        assert_eq!(cases[0].class, "evasion");
        assert_eq!(cases[1].class, "unclassified");
        assert!(parse("loud\tbash\tls\n").is_err());
    }

    #[test]
    fn figures_count_each_group() {
        let f = figures(&[
            (Critical, Critical),
            (Critical, High),
            (High, Moderate),
            (Moderate, Safe),
            (Safe, Safe),
            (Safe, Moderate),
        ]);
        assert_eq!((f.critical_recall.k, f.critical_recall.n), (1, 2));
        assert_eq!(
            (f.high_critical_flagged.k, f.high_critical_flagged.n),
            (2, 3)
        );
        assert_eq!(
            (f.destructive_rated_safe.k, f.destructive_rated_safe.n),
            (1, 4)
        );
        assert_eq!(
            (f.safe_rated_above_safe.k, f.safe_rated_above_safe.n),
            (1, 2)
        );
        assert_eq!((f.exact_level.k, f.exact_level.n), (2, 6));
        assert_eq!(f.failures().len(), 5);
        assert!(
            figures(&[(Safe, Safe), (Critical, Critical)])
                .failures()
                .is_empty()
        );
    }
}
