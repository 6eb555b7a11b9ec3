//! `caro check`: rate commands without loading any model, from arguments or stdin (one per line).

use crate::output::{self, print_verdict};
use crate::{CheckArgs, exit, settings};
use caro_safety::ShellType;
use caro_safety::{Location, SafetyValidator};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

pub fn run(args: &CheckArgs) -> ExitCode {
    let overrides = caro_core::settings::Overrides {
        mode: args.mode.map(Into::into),
        ..Default::default()
    };
    let validator = match settings::load(&overrides) {
        Ok(s) => s.validator,
        Err(e) => {
            return output::fail(
                args.json,
                "config_invalid",
                &e.to_string(),
                Some(settings::CONFIG_HINT),
                exit::CONFIG_INVALID,
            );
        }
    };
    let shell = args
        .shell
        .map(ShellType::from)
        .unwrap_or_else(ShellType::detect);
    let at = match location(args.cwd.as_deref()) {
        Ok(at) => at,
        Err(message) => {
            return output::fail(
                args.json,
                "bad_cwd",
                &message,
                Some("give --cwd an existing folder, or leave it out to rate for this one"),
                exit::USAGE,
            );
        }
    };
    let check = |command: &str| check_one(&validator, command, shell, at.as_ref(), args.json);
    if !args.command.is_empty() {
        let command = args.command.join(" ");
        let blocked = check(&command);
        return if blocked {
            ExitCode::from(exit::BLOCKED)
        } else {
            ExitCode::SUCCESS
        };
    }
    if std::io::stdin().is_terminal() {
        return output::fail(
            args.json,
            "usage",
            "no command to check",
            Some(
                "give one after `--` (caro check -- rm -rf ./build), or pipe commands in, one per line",
            ),
            exit::USAGE,
        );
    }
    let mut any_blocked = false;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            return output::fail(
                args.json,
                "bad_input",
                "stdin is not valid UTF-8 text",
                None,
                exit::BAD_REQUEST,
            );
        };
        let command = line.trim_end_matches('\r');
        if command.trim().is_empty() {
            continue;
        }
        any_blocked |= check(command);
    }
    let _ = std::io::stdout().flush();
    if any_blocked {
        ExitCode::from(exit::BLOCKED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where the checked commands would run: `--cwd DIR`, else this process's own folder.
fn location(dir: Option<&std::path::Path>) -> Result<Option<Location>, String> {
    let Some(dir) = dir else {
        return Ok(Location::current());
    };
    if !dir.is_dir() {
        return Err(format!("--cwd {}: no such folder", dir.display()));
    }
    // The real folder: a link to /etc is rated as /etc.
    let abs = dir
        .canonicalize()
        .map_err(|e| format!("--cwd {}: {e}", dir.display()))?;
    Ok(Location::current().map(|here| here.in_dir(&abs)))
}

/// Prints the verdict for one command; returns whether it is blocked.
fn check_one(
    validator: &SafetyValidator,
    command: &str,
    shell: ShellType,
    at: Option<&Location>,
    json: bool,
) -> bool {
    let verdict = validator.verdict(command, shell, at);
    if json {
        let doc = serde_json::json!({
            "command": command,
            "cwd": verdict.cwd,
            "shell": shell,
            "risk": verdict.risk,
            "blocked": verdict.blocked,
            "needs_confirmation": verdict.needs_confirmation,
            "mode": verdict.mode,
            "findings": verdict.findings,
            "allowed": verdict.allowed,
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{doc}");
    } else {
        let mut out = anstream::stdout().lock();
        let _ = writeln!(out, "{} {command}", output::risk_column(verdict.risk));
        drop(out);
        print_verdict(&verdict, false);
    }
    verdict.blocked
}
