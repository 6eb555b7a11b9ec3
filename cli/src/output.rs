//! What caro prints: the command on stdout (so it pipes cleanly), everything else on stderr,
//! colour only on a terminal and never when NO_COLOR is set; or one JSON object with --json.

use anstyle::{AnsiColor, Style};
use caro_core::{GeneratedCommand, GeneratorError, ShellType};
use serde::Serialize;
use std::io::Write;

/// Risk placeholder until the safety validator exists. Deliberately not a level name, so no
/// script can mistake an unchecked command for a safe one.
pub const RISK_UNCHECKED: &str = "unchecked";

pub fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub const ERR: Style = AnsiColor::Red.on_default().bold();

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
    pub command: &'a str,
    pub explanation: Option<&'a str>,
    pub risk: &'static str,
    pub blocked: bool,
    pub findings: Vec<serde_json::Value>,
    pub backend_used: &'a str,
    pub model: &'a str,
    pub shell: ShellType,
    pub timings_ms: TimingsMs,
    pub tokens: caro_core::TokenCounts,
    pub warnings: &'a [String],
}

impl<'a> JsonAnswer<'a> {
    pub fn new(g: &'a GeneratedCommand, shell: ShellType) -> Self {
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        Self {
            command: &g.command,
            explanation: g.explanation.as_deref(),
            risk: RISK_UNCHECKED,
            blocked: false,
            findings: Vec::new(),
            backend_used: &g.backend,
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

/// Human output: the command alone on stdout, the verdict and notes on stderr.
pub fn print_human(g: &GeneratedCommand, verbose: bool) {
    let mut out = anstream::stdout().lock();
    let mut err = anstream::stderr().lock();
    let _ = writeln!(out, "{BOLD}{}{BOLD:#}", g.command);
    if let Some(expl) = &g.explanation {
        let _ = writeln!(err, "{DIM}{expl}{DIM:#}");
    }
    let _ = writeln!(
        err,
        "{WARN}risk: {RISK_UNCHECKED}{WARN:#} {DIM}(no safety check yet: read it before you run it){DIM:#}"
    );
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

pub fn print_error(err: &GeneratorError, hint: Option<&str>) {
    let mut e = anstream::stderr().lock();
    let _ = writeln!(e, "{ERR}error:{ERR:#} {err}");
    if let Some(h) = hint {
        let _ = writeln!(e, "{DIM}hint:{DIM:#} {h}");
    }
}
