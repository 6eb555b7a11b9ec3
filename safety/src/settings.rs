//! The `[safety]` config table: mode, allowlist and custom rules, validated when loaded.

use super::ir::Cmd;
use super::rules::builtin_rules;
use super::{Finding, RiskLevel, SafetyMode, Span};
use crate::shell::ShellType;
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The `[safety]` table of `config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SafetyMode>,
    /// Findings to silence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowEntry>,
    /// Extra rules of the user's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<CustomRule>,
}

/// Silences findings: by rule id, by a glob over the command, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Glob matched against the whole command or any one simple command in it,
    /// e.g. `"rm -rf ./dist*"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A user rule: matches simple commands by program, arguments and flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub id: String,
    pub level: RiskLevel,
    pub message: String,
    /// The program, as the shell resolves it (`psql`, `kubectl`); case-insensitive.
    pub program: String,
    /// At least one argument must match one of these globs (none given: any arguments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args_any: Vec<String>,
    /// Every one of these flags must be present (`-f` also matches inside `-rf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags_all: Vec<String>,
    /// Shells it applies to (none given: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shells: Vec<ShellType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
    #[serde(skip)]
    compiled: Vec<GlobMatcher>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SafetyConfigError {
    #[error("{0}")]
    Toml(String),
    #[error("safety.{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SafetyConfigError {
    SafetyConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn glob(pattern: &str, field: &str) -> Result<GlobMatcher, SafetyConfigError> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| invalid(field, format!("bad glob {pattern:?}: {e}")))
}

/// An allowlist command pattern, one glob per word: it must cover a whole command, word for
/// word, so `rm -rf ./dist*` allows `rm -rf ./dist-old` but never `rm -rf ./dist /` (a glob
/// over the whole text let `*` swallow the extra ` /`). `*` stays inside one path segment.
#[derive(Debug, Clone)]
pub(crate) struct WordGlobs(Vec<(String, GlobMatcher)>);

impl WordGlobs {
    fn new(pattern: &str, field: &str) -> Result<Self, SafetyConfigError> {
        pattern
            .split_whitespace()
            .map(|w| {
                globset::GlobBuilder::new(w)
                    .literal_separator(true)
                    .build()
                    .map(|g| (w.to_string(), g.compile_matcher()))
                    .map_err(|e| invalid(field, format!("bad glob {pattern:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn covers<S: AsRef<str>>(&self, words: &[S]) -> bool {
        words.len() == self.0.len()
            && self.0.iter().zip(words).all(|((p, g), w)| {
                let w = w.as_ref();
                // A glob never stands for `..`: `./build/*` must not allow `./build/..`.
                let climbs = w.split(['/', '\\']).any(|seg| seg == "..");
                g.is_match(w) && (!climbs || p == w)
            })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledAllow {
    rule: Option<String>,
    command: Option<WordGlobs>,
}

impl CompiledAllow {
    /// Whether this entry silences `finding`. `at` holds the words of every simple command the
    /// finding came from: all of them must be covered, so an allowed command cannot carry
    /// another one past the check. `whole` (the checked text's words) counts only for a
    /// finding about the input as a whole, since `./dist;reboot` is one word of text but two
    /// commands.
    pub(crate) fn permits(&self, finding: &Finding, whole: &[&str], at: &[Vec<String>]) -> bool {
        if self.rule.as_ref().is_some_and(|r| *r != finding.rule_id) {
            return false;
        }
        match &self.command {
            None => true,
            Some(g) if finding.span.is_none() => g.covers(whole),
            Some(g) => !at.is_empty() && at.iter().all(|w| g.covers(w)),
        }
    }
}

impl SafetyConfig {
    /// Reads the `[safety]` table from a whole `config.toml`; other tables are left alone.
    pub fn from_toml(text: &str) -> Result<Self, SafetyConfigError> {
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| SafetyConfigError::Toml(e.to_string()))?;
        let Some(table) = doc.get("safety") else {
            return Ok(Self::default());
        };
        let config: Self = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| SafetyConfigError::Toml(format!("in [safety]: {e}")))?;
        config.compile()?;
        Ok(config)
    }

    pub(crate) fn compile(
        &self,
    ) -> Result<(Vec<CompiledAllow>, Vec<CustomRule>), SafetyConfigError> {
        let mut custom = Vec::new();
        // Sets, not Vec scans: checking each id against every earlier one made a config with
        // 32,000 rules take seconds to load, and one with 400,000 never finish.
        let builtin: HashSet<&str> = builtin_rules().iter().map(|r| r.id).collect();
        let mut custom_ids: HashSet<&str> = HashSet::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            if r.id.is_empty()
                || !r
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(
                    format!("{field}.id"),
                    format!("{:?} must be letters, digits, '.', '_' or '-'", r.id),
                ));
            }
            if builtin.contains(r.id.as_str()) || !custom_ids.insert(r.id.as_str()) {
                return Err(invalid(
                    format!("{field}.id"),
                    format!("{:?} is already taken; pick another id", r.id),
                ));
            }
            if r.level == RiskLevel::Safe {
                return Err(invalid(
                    format!("{field}.level"),
                    "a rule must flag something: use moderate, high or critical",
                ));
            }
            if r.message.trim().is_empty() {
                return Err(invalid(
                    format!("{field}.message"),
                    "say in one sentence why this is dangerous",
                ));
            }
            if r.program.trim().is_empty() {
                return Err(invalid(
                    format!("{field}.program"),
                    "name the program the rule is about, e.g. \"psql\"",
                ));
            }
            let mut rule = r.clone();
            rule.compiled = r
                .args_any
                .iter()
                .map(|p| glob(p, &format!("{field}.args_any")))
                .collect::<Result<_, _>>()?;
            custom.push(rule);
        }
        let mut allow = Vec::new();
        for (i, a) in self.allow.iter().enumerate() {
            let field = format!("allow[{i}]");
            if a.rule.is_none() && a.command.is_none() {
                return Err(invalid(
                    field,
                    "give a `rule` id, a `command` glob, or both",
                ));
            }
            if let Some(id) = &a.rule {
                let known = builtin.contains(id.as_str())
                    || custom_ids.contains(id.as_str())
                    || id.starts_with("parse.")
                    || id.starts_with("exec.")
                    || id.starts_with("proc.")
                    || id.starts_with("input.")
                    || id.starts_with("intent.");
                if !known {
                    return Err(invalid(
                        format!("{field}.rule"),
                        format!("no rule is called {id:?}; `caro check --json` shows rule ids"),
                    ));
                }
            }
            let command = match &a.command {
                Some(p) => {
                    if p.trim().chars().all(|c| c == '*' || c.is_whitespace()) {
                        return Err(invalid(
                            format!("{field}.command"),
                            "a glob that matches every command would switch the checker off",
                        ));
                    }
                    Some(WordGlobs::new(p, &format!("{field}.command"))?)
                }
                None => None,
            };
            allow.push(CompiledAllow {
                rule: a.rule.clone(),
                command,
            });
        }
        Ok((allow, custom))
    }
}

impl CustomRule {
    pub(crate) fn matches(&self, cmd: &Cmd, shell: ShellType) -> bool {
        let family = cmd.shell.unwrap_or(shell);
        if !self.shells.is_empty() && !self.shells.contains(&family) {
            return false;
        }
        if !cmd.program().eq_ignore_ascii_case(self.program.trim()) {
            return false;
        }
        if !self.compiled.is_empty()
            && !cmd
                .args()
                .iter()
                .any(|a| self.compiled.iter().any(|g| g.is_match(&a.text)))
        {
            return false;
        }
        let flags = cmd.gnu_flags();
        self.flags_all.iter().all(|f| {
            if let Some(long) = f.strip_prefix("--") {
                flags.long.iter().any(|l| l == long)
            } else if let Some(short) = f.strip_prefix('-') {
                short.chars().all(|c| flags.short.contains(&c))
            } else {
                cmd.args().iter().any(|a| a.text == *f)
            }
        })
    }

    pub(crate) fn finding(&self, span: Option<Span>) -> Finding {
        Finding {
            rule_id: self.id.clone(),
            level: self.level,
            message: self.message.clone(),
            alternative: self.alternative.clone(),
            span,
        }
    }
}
