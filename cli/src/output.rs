//! What caro prints: the command on stdout (so it pipes cleanly), everything else on stderr,
//! colour only on a terminal and never when NO_COLOR is set; or one JSON object with --json.

use anstyle::{AnsiColor, Style};
pub use caro_core::safety::Gate;
use caro_core::safety::{Finding, IntentAction, RiskLevel, SafetyMode, Verdict};
use caro_core::{GeneratedCommand, GeneratorError, ShellType};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

pub fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub const ERR: Style = AnsiColor::Red.on_default().bold();
const SAFE: Style = AnsiColor::Green.on_default().bold();
const HIGH: Style = AnsiColor::Red.on_default().bold();
const CRITICAL: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::White)))
    .bg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();

/// The risk level, coloured (anstream drops the colour off a terminal or under NO_COLOR).
pub fn risk_badge(level: RiskLevel) -> String {
    let style = match level {
        RiskLevel::Safe => SAFE,
        RiskLevel::Moderate => WARN,
        RiskLevel::High => HIGH,
        RiskLevel::Critical => CRITICAL,
    };
    format!("{style}{}{style:#}", level.as_str())
}

/// [`risk_badge`] padded to one column width, for lists.
pub fn risk_column(level: RiskLevel) -> String {
    format!(
        "{}{}",
        risk_badge(level),
        " ".repeat(8 - level.as_str().len())
    )
}

/// Each finding on its own line, with the safer alternative where there is one.
pub fn write_findings(w: &mut impl Write, findings: &[Finding]) {
    for f in findings {
        let _ = writeln!(
            w,
            "  {} {} {DIM}[{}]{DIM:#}",
            risk_column(f.level),
            f.message,
            f.rule_id
        );
        if let Some(alt) = &f.alternative {
            let _ = writeln!(w, "           {DIM}safer:{DIM:#} {alt}");
        }
    }
}

/// `caro check`'s details for one command, on stdout (they are its output).
pub fn print_verdict(v: &Verdict, _verbose: bool) {
    let mut out = anstream::stdout().lock();
    write_findings(&mut out, &v.findings);
    if v.blocked {
        let _ = writeln!(out, "  {ERR}blocked{ERR:#} in {} mode", v.mode);
    } else if v.needs_confirmation {
        let _ = writeln!(out, "  {WARN}needs confirmation{WARN:#} in {} mode", v.mode);
    }
}

/// Prints an error (JSON or text) and returns its exit code.
pub fn fail(json: bool, code: &str, message: &str, hint: Option<&str>, exit: u8) -> ExitCode {
    if json {
        print_json(&json_error(code, message, hint));
    } else {
        let mut e = anstream::stderr().lock();
        let _ = writeln!(e, "{ERR}error:{ERR:#} {message}");
        if let Some(h) = hint {
            let _ = writeln!(e, "{DIM}hint:{DIM:#} {h}");
        }
    }
    ExitCode::from(exit)
}

/// The prompt screen's outcome, as it appears in `--json`.
#[derive(Debug, Serialize)]
pub struct IntentJson<'a> {
    pub category: &'a str,
    pub level: RiskLevel,
    pub reason: &'a str,
    pub action: IntentAction,
}

#[derive(Debug, Serialize)]
pub struct TimingsMs {
    pub load: f64,
    pub prefill: f64,
    pub decode: f64,
    pub total: f64,
}

/// The `--json` document for a generated command.
#[derive(Debug, Serialize)]
pub struct JsonAnswer<'a> {
    /// `null` when the gate refused or blocked it, so `jq -r .command` never hands a script a
    /// command caro would not run.
    pub command: Option<&'a str>,
    /// What the model wrote when it was refused or blocked, for a person to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_command: Option<&'a str>,
    /// The working directory the verdict is for.
    pub cwd: Option<&'a str>,
    pub explanation: Option<&'a str>,
    pub risk: RiskLevel,
    pub blocked: bool,
    pub needs_confirmation: bool,
    pub mode: SafetyMode,
    pub findings: &'a [Finding],
    /// Set when the request itself asked for something destructive.
    pub intent: Option<IntentJson<'a>>,
    pub backend_used: &'a str,
    /// Why the embedded model answered instead of the selected remote backend.
    pub fallback_reason: Option<&'a str>,
    pub model: &'a str,
    pub shell: ShellType,
    pub timings_ms: TimingsMs,
    pub tokens: caro_core::TokenCounts,
    pub warnings: &'a [String],
    /// "daemon" when a running `caro serve` / tray app answered, else "in_process".
    pub served_by: &'static str,
    /// Issue 20: how the command was chosen among the model's candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<&'a caro_core::select::Selection>,
    /// Issue 20: what the command did in a sandbox holding a copy of the folder, or why it
    /// was not previewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<&'a caro_core::select::EffectsPreview>,
}

impl<'a> JsonAnswer<'a> {
    pub fn new(g: &'a GeneratedCommand, shell: ShellType, gate: &'a Gate) -> Self {
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        let blocked = gate.blocked();
        Self {
            command: (!blocked).then_some(g.command.as_str()),
            refused_command: blocked.then_some(g.command.as_str()),
            cwd: gate.verdict.cwd.as_deref(),
            explanation: g.explanation.as_deref(),
            risk: gate.verdict.risk,
            blocked,
            needs_confirmation: gate.needs_confirmation(),
            mode: gate.verdict.mode,
            findings: &gate.verdict.findings,
            intent: gate.intent.as_ref().map(|(i, action)| IntentJson {
                category: &i.category,
                level: i.level,
                reason: &i.reason,
                action: *action,
            }),
            backend_used: &g.backend,
            fallback_reason: g.fallback_reason.as_deref(),
            model: &g.model,
            shell,
            timings_ms: TimingsMs {
                load: round(g.timings.load),
                prefill: round(g.timings.prefill),
                decode: round(g.timings.decode),
                total: round(g.timings.total),
            },
            tokens: g.tokens,
            warnings: &g.warnings,
            served_by: "in_process",
            selection: None,
            effects: None,
        }
    }
}

/// `{"error": {"code", "message", "hint"}}`, the shape every frontend uses for failures.
pub fn json_error(code: &str, message: &str, hint: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message, "hint": hint } })
}

pub fn print_json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| json_error("unexpected", &e.to_string(), None).to_string());
    let _ = writeln!(out, "{text}");
}

/// Quiet output: the command alone on stdout (unless blocked); on stderr one line when it was
/// refused or is not safe, nothing otherwise.
pub fn print_quiet(g: &GeneratedCommand, gate: &Gate) {
    let v = &gate.verdict;
    if let Some(refusal) = gate.refusal() {
        let _ = writeln!(anstream::stderr(), "{ERR}caro:{ERR:#} {refusal}");
        return;
    }
    let _ = writeln!(anstream::stdout(), "{}", g.command);
    if v.risk != RiskLevel::Safe {
        let headline = v.headline().map(|h| format!(": {h}")).unwrap_or_default();
        let _ = writeln!(
            anstream::stderr(),
            "{WARN}caro:{WARN:#} {} risk{headline}",
            risk_badge(v.risk)
        );
    }
}

/// Who wrote a command shown for rating: the model, or the user in the loop's Edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Model,
    User,
}

impl Author {
    fn wrote(self) -> &'static str {
        match self {
            Self::Model => "the model wrote:",
            Self::User => "you wrote:",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Self::Model => "the model's command",
            Self::User => "your command",
        }
    }
}

/// Human output: the command alone on stdout (unless blocked), the verdict and notes on stderr.
pub fn print_human(g: &GeneratedCommand, gate: &Gate, verbose: bool) {
    print_rated(g, gate, verbose, Author::Model);
}

/// [`print_human`] for a command `author` wrote.
pub fn print_rated(g: &GeneratedCommand, gate: &Gate, verbose: bool, author: Author) {
    let mut out = anstream::stdout().lock();
    let mut err = anstream::stderr().lock();
    let v = &gate.verdict;
    if let Some((intent, IntentAction::Refused)) = &gate.intent {
        let _ = writeln!(
            err,
            "{ERR}refused:{ERR:#} {}, but {} does not look like it does that.",
            intent.reason,
            author.command()
        );
        let _ = writeln!(err, "  {DIM}{}{DIM:#} {}", author.wrote(), g.command);
        let _ = writeln!(
            err,
            "  caro will not pass it off as {}. If you mean it, write the command yourself and check it with `caro check -- …`.",
            v.risk
        );
    } else if v.blocked {
        let _ = writeln!(
            err,
            "{ERR}blocked:{ERR:#} {} command, not shown on stdout ({} mode).",
            v.risk, v.mode
        );
        let _ = writeln!(err, "  {DIM}{}{DIM:#} {}", author.wrote(), g.command);
        write_findings(&mut err, &v.findings);
        let _ = writeln!(
            err,
            "  {DIM}--mode permissive lets you confirm critical commands yourself{DIM:#}"
        );
    } else {
        let _ = writeln!(out, "{BOLD}{}{BOLD:#}", g.command);
        if let Some(expl) = &g.explanation {
            let _ = writeln!(err, "{DIM}{expl}{DIM:#}");
        }
        let _ = writeln!(err, "{DIM}risk:{DIM:#} {}", risk_badge(v.risk));
        write_findings(&mut err, &v.findings);
        if let Some((intent, IntentAction::Flagged)) = &gate.intent {
            let _ = writeln!(err, "  {WARN}note:{WARN:#} {}", intent.reason);
        }
    }
    if let Some(reason) = &g.fallback_reason {
        let _ = writeln!(
            err,
            "{WARN}note:{WARN:#} answered by the embedded model: {reason}"
        );
    }
    for w in &g.warnings {
        let _ = writeln!(err, "{WARN}warning:{WARN:#} {w}");
    }
    if verbose {
        let t = &g.timings;
        let _ = writeln!(
            err,
            "{DIM}{} via {}: load {:.0} ms, prefill {:.0} ms ({} tokens, {} cached), decode {:.0} ms ({} tokens), total {:.0} ms{DIM:#}",
            g.model,
            g.backend,
            t.load,
            t.prefill,
            g.tokens.prompt,
            g.tokens.cached,
            t.decode,
            g.tokens.generated,
            t.total
        );
    }
}

/// The preview of the chosen command's effects on stderr, and with `verbose` how it was
/// chosen among the candidates.
pub fn print_choice(c: &caro_core::select::Choice, verbose: bool) {
    let mut err = anstream::stderr().lock();
    let style = if c.effects.previewed { BOLD } else { DIM };
    // File names come from the folder: a control character in one must not drive the
    // terminal.
    let summary: String = c
        .effects
        .summary
        .chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect();
    let _ = writeln!(err, "{DIM}preview:{DIM:#} {style}{summary}{style:#}");
    let s = &c.selection;
    if verbose && s.k > 1 {
        let how = match s.method {
            caro_core::select::Method::Single => {
                format!("all {} candidates had the same structure", s.k)
            }
            m => format!(
                "chosen by {} among {} candidates ({} distinct, {} run in the sandbox, {} agreeing)",
                m.as_str(),
                s.k,
                s.distinct,
                s.executed,
                s.agreeing
            ),
        };
        let _ = writeln!(err, "{DIM}{how}{DIM:#}");
        if let Some(note) = &s.note {
            let _ = writeln!(err, "{DIM}{note}{DIM:#}");
        }
    }
}

pub fn print_error(err: &GeneratorError, hint: Option<&str>) {
    let mut e = anstream::stderr().lock();
    let _ = writeln!(e, "{ERR}error:{ERR:#} {err}");
    if let Some(h) = hint {
        let _ = writeln!(e, "{DIM}hint:{DIM:#} {h}");
    }
}
