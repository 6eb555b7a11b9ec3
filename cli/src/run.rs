//! The default action: generate a command for the prompt, print it, optionally run it.

use crate::output::{self, DIM, Gate, WARN};
use crate::settings::RunSettings;
use crate::{Cli, backends, exit, settings, stats};
use caro_core::daemon::{DaemonClient, DaemonError, socket_path};
use caro_core::safety::{Action, Location};
use caro_core::settings::Overrides;
use caro_core::{CommandRequest, GeneratorError, ShellType};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

pub fn run(cli: &Cli) -> ExitCode {
    match generate(cli) {
        Ok(code) => code,
        Err(err) => {
            let hint = exit::hint_for(&err);
            if cli.json {
                output::print_json(&output::json_error(
                    err.code(),
                    &err.to_string(),
                    hint.as_deref(),
                ));
            } else {
                output::print_error(&err, hint.as_deref());
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}

fn overrides(cli: &Cli) -> Overrides {
    Overrides {
        backend: cli.backend.map(Into::into),
        model_path: cli.model_path.clone(),
        engine: cli.engine.clone(),
        ..Overrides::default()
    }
}

/// Loads the settings and runs `f`, or reports a broken config (exit 9).
pub fn with_settings(cli: &Cli, json: bool, f: impl FnOnce(&RunSettings) -> ExitCode) -> ExitCode {
    match settings::load(&overrides(cli), cli.mode.map(Into::into)) {
        Ok(s) => f(&s),
        Err(e) => output::fail(
            json,
            "config_invalid",
            &e.to_string(),
            Some(settings::CONFIG_HINT),
            exit::CONFIG_INVALID,
        ),
    }
}

fn generate(cli: &Cli) -> Result<ExitCode, GeneratorError> {
    let prompt = cli.prompt.join(" ");
    if prompt.trim().is_empty() {
        return Err(GeneratorError::EmptyPrompt);
    }
    // Config problems surface before the model loads, so they cost the user nothing.
    let settings = match settings::load(&overrides(cli), cli.mode.map(Into::into)) {
        Ok(s) => s,
        Err(e) => {
            return Ok(output::fail(
                cli.json,
                "config_invalid",
                &e.to_string(),
                Some(settings::CONFIG_HINT),
                exit::CONFIG_INVALID,
            ));
        }
    };
    let validator = settings.validator.clone();
    let config = cli.embedded_config(&settings.resolved.config.embedded)?;
    let shell = cli
        .shell
        .map(ShellType::from)
        .unwrap_or_else(ShellType::detect);
    let request = CommandRequest::new(prompt.clone(), shell);
    let client = daemon_client(cli);
    let mut daemon_warning = None;
    let from_daemon = client.as_ref().and_then(|c| match c.generate(&request) {
        Ok(a) => Some(a),
        Err(DaemonError::NotRunning { .. }) => None,
        Err(e) => {
            tracing::info!(error = %e, "daemon failed; answering in-process");
            daemon_warning = Some(format!(
                "the caro daemon at {} failed ({e}); answered in-process",
                c.path().display()
            ));
            None
        }
    });
    let served_by = if from_daemon.is_some() {
        "daemon"
    } else {
        "in_process"
    };
    let mut answer = match from_daemon {
        Some(mut a) => {
            if cli.explain {
                let explained = client
                    .as_ref()
                    .map(|c| c.explain(&a.command, shell).map_err(|e| e.to_string()));
                add_explanation(&mut a, explained);
            }
            a
        }
        None => {
            if settings.resolved.backend == caro_core::settings::BackendKind::Embedded
                && let Err(e) = crate::model::ensure_for_run(&settings.resolved, cli.json)
            {
                return Ok(crate::model::model_fail(cli.json, &e));
            }
            let (generator, backend, early_fallback) = backends::build(&settings.resolved, config)?;
            let mut a = generator.generate_command(&request)?;
            if a.fallback_reason.is_none() {
                a.fallback_reason = early_fallback;
            }
            if cli.explain {
                let explained = Some(
                    backend
                        .explain(&a.command, shell)
                        .map_err(|e| e.to_string()),
                );
                add_explanation(&mut a, explained);
            }
            generator.shutdown();
            a
        }
    };
    answer.warnings.extend(daemon_warning);
    answer
        .warnings
        .extend(settings.resolved.warnings.iter().cloned());
    stats::record(answer.timings.total, &answer.backend);

    // `--execute` runs the command here, so the verdict is for this folder.
    let gate = Gate::decide(
        &validator,
        &prompt,
        &answer.command,
        shell,
        Location::current().as_ref(),
    );
    let code = if gate.blocked() {
        ExitCode::from(exit::BLOCKED)
    } else {
        ExitCode::SUCCESS
    };
    if cli.json {
        let mut doc = output::JsonAnswer::new(&answer, shell, &gate);
        doc.served_by = served_by;
        output::print_json(&doc);
        return Ok(code);
    }
    output::print_human(&answer, &gate, cli.verbose > 0);
    if gate.blocked() {
        return Ok(code);
    }
    if cli.execute {
        let confirm = gate.verdict.action == Action::Confirm;
        return Ok(execute(&answer.command, shell, cli.dry_run, confirm));
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon to ask first, unless this request picks its own model, backend or sampling (the
/// daemon answers with the settings it was started with) or the user opted out.
fn daemon_client(cli: &Cli) -> Option<DaemonClient> {
    let per_request = cli.model_path.is_some()
        || cli.backend.is_some()
        || cli.engine.is_some()
        || cli.temperature.is_some()
        || cli.top_p.is_some()
        || cli.max_tokens.is_some()
        || cli.seed.is_some()
        || ["CARO_BACKEND", "CARO_MODEL", "CARO_ENGINE"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    (!cli.no_daemon && !per_request).then(|| DaemonClient::new(socket_path()))
}

fn add_explanation(
    answer: &mut caro_core::GeneratedCommand,
    explained: Option<Result<String, String>>,
) {
    match explained {
        Some(Ok(text)) if !text.is_empty() => answer.explanation = Some(text),
        Some(Ok(_)) => answer
            .warnings
            .push("the model gave no explanation".to_owned()),
        Some(Err(e)) => answer.warnings.push(format!("no explanation: {e}")),
        None => {}
    }
}

/// The program and arguments that run `command` in `shell`.
pub fn shell_invocation(shell: ShellType, command: &str) -> (String, Vec<String>) {
    let c = command.to_owned();
    match shell {
        ShellType::PowerShell => {
            let exe = if cfg!(windows) { "powershell" } else { "pwsh" };
            (
                exe.to_owned(),
                vec!["-NoProfile".into(), "-Command".into(), c],
            )
        }
        ShellType::Cmd => ("cmd".to_owned(), vec!["/C".into(), c]),
        other => (other.as_str().to_owned(), vec!["-c".into(), c]),
    }
}

/// Runs an allowed command. `confirm` is the safety mode's call: when set, a person must say
/// yes on a terminal; without a terminal nothing runs.
fn execute(command: &str, shell: ShellType, dry_run: bool, confirm: bool) -> ExitCode {
    let (program, args) = shell_invocation(shell, command);
    let mut err = anstream::stderr().lock();
    if dry_run {
        let _ = writeln!(
            err,
            "{DIM}dry run: would run{DIM:#} {program} {}",
            shell_quote_args(&args)
        );
        return ExitCode::SUCCESS;
    }
    if confirm {
        if !std::io::stdin().is_terminal() {
            let _ = writeln!(
                err,
                "{WARN}not run:{WARN:#} this command needs confirmation, and stdin is not a terminal to ask on"
            );
            return ExitCode::from(exit::NOT_CONFIRMED);
        }
        let _ = write!(err, "Run this command with {program}? [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err()
            || !matches!(answer.trim(), "y" | "Y" | "yes")
        {
            let _ = writeln!(anstream::stderr(), "{DIM}not run{DIM:#}");
            return ExitCode::from(exit::NOT_CONFIRMED);
        }
    }
    match std::process::Command::new(&program).args(&args).status() {
        Ok(status) => ExitCode::from(
            status
                .code()
                .map_or(exit::UNEXPECTED, |c| c.clamp(0, 255) as u8),
        ),
        Err(e) => {
            let _ = writeln!(
                anstream::stderr(),
                "{WARN}could not start {program}:{WARN:#} {e}"
            );
            ExitCode::from(exit::UNEXPECTED)
        }
    }
}

fn shell_quote_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_/.=".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_shells_use_dash_c() {
        let (p, a) = shell_invocation(ShellType::Zsh, "ls -la");
        assert_eq!(
            (p.as_str(), a),
            ("zsh", vec!["-c".to_owned(), "ls -la".to_owned()])
        );
        let (p, a) = shell_invocation(ShellType::Cmd, "dir");
        assert_eq!((p.as_str(), a[0].as_str()), ("cmd", "/C"));
    }

    #[test]
    fn quoting_round_trips_single_quotes() {
        assert_eq!(
            shell_quote_args(&["-c".into(), "echo 'hi'".into()]),
            r"-c 'echo '\''hi'\'''"
        );
    }
}
