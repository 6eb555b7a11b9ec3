//! caro-safety: the safety validator. Parses a command the way its shell would, and rates what it would do.
//!
//! The pipeline is pure logic, no I/O:
//! 1. a shell-specific front end turns the text into simple commands ([`ir::Cmd`]): tree-sitter-bash
//!    for POSIX shells (fish is rewritten into that syntax first), small tokenizers for
//!    PowerShell and cmd. Wrappers (`sudo`, `env`, …), `sh -c`, `eval`, `find -exec`, `xargs`,
//!    decoded payloads and inline interpreter code are unwrapped into further commands;
//! 2. typed rules ([`rules`]) look at each command's normalized words, flags and targets;
//! 3. the highest finding sets the [`RiskLevel`], and the [`SafetyMode`] turns it into an
//!    [`Action`].
//!
//! [`intent`] screens the user's request, so a destructive request cannot come back looking
//! harmless.

#![forbid(unsafe_code)]

mod cmdexe;
mod gate;
pub mod intent;
mod ir;
mod paths;
mod posix;
mod powershell;
mod rules;
mod scoped;
pub mod settings;
pub mod shell;

pub use gate::Gate;
pub use intent::{IntentAction, IntentScreen, intent_action, screen_prompt};
pub use rules::{BuiltinRule, builtin_rules};
pub use settings::{AllowEntry, CustomRule, SafetyConfig, SafetyConfigError};

use serde::{Deserialize, Serialize};
pub use shell::ShellType;
use std::fmt;
use std::str::FromStr;

/// Commands longer than this are not parsed: refused (critical) as unanalysable, since padding
/// must never lower a verdict, and nobody reviews 16 KiB of shell.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// How dangerous a command is. Ordered: the highest finding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Safe,
    Moderate,
    High,
    Critical,
}

impl RiskLevel {
    pub const ALL: [RiskLevel; 4] = [Self::Safe, Self::Moderate, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Moderate => "moderate",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RiskLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown risk level {s:?} (use safe, moderate, high or critical)")
            })
    }
}

/// How strict the gate is: which levels need confirmation and which are refused outright.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafetyMode {
    /// Confirm moderate and above, block high and above.
    Strict,
    /// Confirm high, block critical.
    #[default]
    Moderate,
    /// Confirm critical, block nothing.
    Permissive,
}

impl SafetyMode {
    pub const ALL: [SafetyMode; 3] = [Self::Strict, Self::Moderate, Self::Permissive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Moderate => "moderate",
            Self::Permissive => "permissive",
        }
    }

    /// The gate's decision for a command at `level`.
    pub fn action(self, level: RiskLevel) -> Action {
        use RiskLevel::*;
        match (self, level) {
            (_, Safe) => Action::Allow,
            (Self::Strict, Moderate) => Action::Confirm,
            (Self::Strict, High | Critical) => Action::Block,
            (Self::Moderate, Moderate) => Action::Allow,
            (Self::Moderate, High) => Action::Confirm,
            (Self::Moderate, Critical) => Action::Block,
            (Self::Permissive, Moderate | High) => Action::Allow,
            (Self::Permissive, Critical) => Action::Confirm,
        }
    }
}

impl fmt::Display for SafetyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SafetyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown safety mode {s:?} (use strict, moderate or permissive)")
            })
    }
}

/// What the gate does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Confirm,
    Block,
}

/// Byte range in the checked command. Findings inside `sh -c '…'` or a decoded payload point at
/// the whole outer word, since the inner text has no bytes of its own in the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// One reason for concern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule_id: String,
    pub level: RiskLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// Where a command will run. `rm -rf *` empties the working directory, so its verdict depends
/// on which one: the home folder (critical) or a project folder (high).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// The absolute working directory.
    pub cwd: String,
    /// The user's home folder, when known.
    pub home: Option<String>,
}

impl Location {
    pub fn new(cwd: impl AsRef<std::path::Path>, home: Option<&std::path::Path>) -> Self {
        Self {
            cwd: cwd.as_ref().to_string_lossy().into_owned(),
            home: home.map(|h| h.to_string_lossy().into_owned()),
        }
    }

    /// This process's working directory and the user's home folder (`$HOME`, else the
    /// platform's answer). `None` when the working directory cannot be read.
    pub fn current() -> Option<Self> {
        let cwd = std::env::current_dir().ok()?;
        // The real folder, as the working directory is: a home reached through a link (`/home`
        // -> `/usr/home`) must still compare equal to it.
        let home = dirs::home_dir().map(|h| h.canonicalize().unwrap_or(h));
        Some(Self::new(cwd, home.as_deref()))
    }

    /// The same location with `dir` as the working directory (relative to the current one).
    pub fn in_dir(&self, dir: &std::path::Path) -> Self {
        Self {
            cwd: std::path::Path::new(&self.cwd)
                .join(dir)
                .to_string_lossy()
                .into_owned(),
            home: self.home.clone(),
        }
    }
}

/// The validator's answer for one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub risk: RiskLevel,
    pub mode: SafetyMode,
    pub action: Action,
    pub blocked: bool,
    pub needs_confirmation: bool,
    pub findings: Vec<Finding>,
    /// Findings that the allowlist silenced, by rule id; kept so the user can see why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// The working directory the verdict is for; `None` when the check had no location, and
    /// relative targets such as `*` were rated for an unknown folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

impl Verdict {
    fn from_findings(mode: SafetyMode, mut findings: Vec<Finding>, allowed: Vec<String>) -> Self {
        findings.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then_with(|| a.span.map(|s| s.start).cmp(&b.span.map(|s| s.start)))
        });
        let mut seen = std::collections::HashSet::new();
        findings.retain(|f| seen.insert((f.rule_id.clone(), f.span)));
        let risk = findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(RiskLevel::Safe);
        let action = mode.action(risk);
        Self {
            risk,
            mode,
            action,
            blocked: action == Action::Block,
            needs_confirmation: action == Action::Confirm,
            findings,
            allowed,
            cwd: None,
        }
    }

    /// The most serious finding's message, for one-line displays.
    pub fn headline(&self) -> Option<&str> {
        self.findings.first().map(|f| f.message.as_str())
    }
}

/// The checker. Cheap to build and to clone; holds the mode, the allowlist and custom rules.
#[derive(Debug, Clone, Default)]
pub struct SafetyValidator {
    mode: SafetyMode,
    allow: Vec<settings::CompiledAllow>,
    custom: Vec<CustomRule>,
}

impl SafetyValidator {
    pub fn new(mode: SafetyMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Builds a validator from a `[safety]` config table, rejecting bad entries with a reason.
    pub fn from_config(config: &SafetyConfig) -> Result<Self, SafetyConfigError> {
        let (allow, custom) = config.compile()?;
        Ok(Self {
            mode: config.mode.unwrap_or_default(),
            allow,
            custom,
        })
    }

    pub fn mode(&self) -> SafetyMode {
        self.mode
    }

    pub fn with_mode(mut self, mode: SafetyMode) -> Self {
        self.mode = mode;
        self
    }

    /// Rates `command` as `shell` would run it, somewhere unknown: `rm -rf *` is rated for an
    /// ordinary folder. Use [`Self::validate_at`] where the working directory is known.
    pub fn validate(&self, command: &str, shell: ShellType) -> Verdict {
        self.validate_in(command, shell, None)
    }

    /// Rates `command` as `shell` would run it in `at`: relative targets (`*`, `.`, `..`)
    /// resolve against its working directory, so `rm -rf *` in the home folder is critical.
    pub fn validate_at(&self, command: &str, shell: ShellType, at: &Location) -> Verdict {
        let mut v = self.validate_in(command, shell, Some(at));
        v.cwd = Some(at.cwd.clone());
        v
    }

    /// [`Self::validate_at`] where `at` is known, else [`Self::validate`]: what every
    /// frontend calls, so none decides which rating applies.
    pub fn verdict(&self, command: &str, shell: ShellType, at: Option<&Location>) -> Verdict {
        match at {
            Some(at) => self.validate_at(command, shell, at),
            None => self.validate(command, shell),
        }
    }

    fn validate_in(&self, command: &str, shell: ShellType, at: Option<&Location>) -> Verdict {
        let mut findings = Vec::new();
        if command.len() > MAX_COMMAND_BYTES {
            findings.push(Finding {
                rule_id: "input.too_long".into(),
                level: RiskLevel::Critical,
                message: format!(
                    "the command is {} bytes, over the {MAX_COMMAND_BYTES}-byte limit for checking, so it cannot be checked; nobody can review that much shell at a glance",
                    command.len()
                ),
                alternative: Some("split it into smaller commands or a reviewed script".into()),
                span: None,
            });
            return Verdict::from_findings(self.mode, findings, Vec::new());
        }
        let mut extraction = ir::extract(command, shell);
        if let Some(at) = at {
            let at = std::sync::Arc::new(at.clone());
            for cmd in &mut extraction.cmds {
                cmd.at = Some(at.clone());
            }
        }
        findings.extend(extraction.findings);
        if let Some((i, what)) = scoped::download_then_run(&extraction.cmds) {
            findings.push(Finding {
                rule_id: "exec.download_then_run".into(),
                level: RiskLevel::Critical,
                message: format!(
                    "runs a file it has just downloaded, which hands this machine to whoever controls the URL (`{what}`)"
                ),
                alternative: Some("download it, read it, then run it yourself".into()),
                span: extraction.cmds[i].span,
            });
        }
        if let Some((i, job, level)) = scoped::scheduled_job(&extraction.cmds, shell) {
            findings.push(Finding {
                rule_id: "sched.dangerous_job".into(),
                level,
                message: format!("schedules a job that would be rated {level} (`{job}`)"),
                alternative: None,
                span: extraction.cmds[i].span,
            });
        }
        for cmd in &extraction.cmds {
            rules::apply_builtin(cmd, shell, &mut findings);
            for rule in &self.custom {
                if rule.matches(cmd, shell) {
                    findings.push(rule.finding(cmd.span));
                }
            }
        }
        let mut allowed = Vec::new();
        if !self.allow.is_empty() {
            let whole: Vec<&str> = command.split_whitespace().collect();
            findings.retain(|f| {
                // The simple commands this finding came from; a finding about the input as a
                // whole (no span) can only be allowed by an entry that covers all of it.
                let at: Vec<Vec<String>> = extraction
                    .cmds
                    .iter()
                    .filter(|c| f.span.is_some() && c.span == f.span)
                    .map(|c| c.argv.iter().map(|a| a.text.clone()).collect())
                    .collect();
                let hit = self.allow.iter().any(|a| a.permits(f, &whole, &at));
                if hit {
                    allowed.push(f.rule_id.clone());
                }
                !hit
            });
        }
        Verdict::from_findings(self.mode, findings, allowed)
    }
}

/// Shorthand for a one-off check in the default mode.
pub fn validate(command: &str, shell: ShellType) -> Verdict {
    SafetyValidator::default().validate(command, shell)
}

/// One simple command as the validator reads it: the shape tools compare commands by (the
/// accuracy harness scores "same utilities" and "same flags" with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimpleCommand {
    /// The program (basename) and its words after quote removal and expansion.
    pub argv: Vec<String>,
    /// Option names, sorted and deduplicated: `-l`, `-a` for `-la`; `--color` for
    /// `--color=auto`. `find`'s single-dash predicates stay whole (`-name`, `-mtime`).
    pub flags: Vec<String>,
    /// Redirections in order, operator and target: `>out.txt`, `>>log`, `<in`.
    pub redirects: Vec<String>,
    /// Reads the previous command's output through a pipe.
    pub piped: bool,
    /// Runs under `sudo`/`doas` (which are unwrapped, not listed as programs).
    pub elevated: bool,
}

/// The simple commands `command` runs, in the order the shell parser finds them. Pipelines,
/// lists, `$(…)`, `sh -c`, `eval`, `find -exec` and `xargs` are unwrapped the way
/// [`validate`] unwraps them.
pub fn simple_commands(command: &str, shell: ShellType) -> Vec<SimpleCommand> {
    if command.len() > MAX_COMMAND_BYTES {
        return Vec::new();
    }
    ir::extract(command, shell)
        .cmds
        .iter()
        .map(|cmd| {
            let mut flags: Vec<String> = if cmd.program() == "find" {
                cmd.args()
                    .iter()
                    .filter(|a| a.text.starts_with('-') && a.text.len() > 1)
                    .map(|a| a.text.clone())
                    .collect()
            } else {
                let f = cmd.gnu_flags();
                f.short
                    .iter()
                    .map(|c| format!("-{c}"))
                    .chain(f.long.iter().map(|l| format!("--{l}")))
                    .collect()
            };
            flags.sort();
            flags.dedup();
            SimpleCommand {
                argv: cmd.argv.iter().map(|a| a.text.clone()).collect(),
                flags,
                redirects: cmd
                    .redirects
                    .iter()
                    .map(|r| {
                        let op = match r.op {
                            ir::RedirOp::Write => ">",
                            ir::RedirOp::Append => ">>",
                            ir::RedirOp::Read => "<",
                        };
                        format!("{op}{}", r.target.text)
                    })
                    .collect(),
                piped: matches!(cmd.stdin, ir::Stdin::Pipe(_)),
                elevated: cmd.elevated,
            }
        })
        .collect()
}
