//! The default action: generate a command for the prompt, print it, optionally run it.

use crate::output::{self, DIM, WARN};
use crate::settings::RunSettings;
use crate::{Cli, exit, settings};
use caro_core::answers::Presenter;
use caro_core::daemon::{DaemonClient, socket_path};
use caro_core::execute::Invocation;
use caro_core::pipeline::{Conversation, Pipeline, RunError, asks_daemon};
use caro_core::safety::{Gate, Location};
use caro_core::settings::{Overrides, Resolved, Sampling};
use caro_core::{GeneratorError, ShellType};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

pub fn run(cli: &Cli) -> ExitCode {
    match generate(cli) {
        Ok(code) => code,
        Err(err) => {
            let hint = err.hint();
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
        timeout_secs: cli.timeout,
        mode: cli.mode.map(Into::into),
        sampling: Sampling {
            temperature: cli.temperature,
            top_p: cli.top_p,
            max_tokens: cli.max_tokens,
            seed: cli.seed,
            candidates: cli.candidates.map(usize::from),
        },
        ..Overrides::default()
    }
}

/// Loads the settings and runs `f`, or reports a broken config (exit 9).
pub fn with_settings(cli: &Cli, json: bool, f: impl FnOnce(&RunSettings) -> ExitCode) -> ExitCode {
    match settings::load(&overrides(cli)) {
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
    let mut conversation =
        Conversation::new(&cli.prompt.join(" ")).map_err(|_| GeneratorError::EmptyPrompt)?;
    // Config problems surface before the model loads, so they cost the user nothing.
    let settings = match settings::load(&overrides(cli)) {
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
    let shell = cli
        .shell
        .map(ShellType::from)
        .unwrap_or_else(ShellType::detect);
    let pipeline = Pipeline::new(
        settings.validator.clone(),
        shell,
        settings.resolved.config.shell_integration.history,
    );
    let mut answers = Answers::new(
        settings.resolved.clone(),
        shell,
        daemon_client(cli),
        Show::new(cli),
    )?;
    let mut answer = match answers.generate(conversation.request()) {
        Ok(a) => a,
        Err(Halt::Stop(code)) => return Ok(code),
        Err(Halt::Error(e)) => return Err(e),
    };
    if cli.explain {
        // The same request: the explanation shares the command's deadline.
        let explained = answers.explain(&answer.command, true);
        add_explanation(&mut answer, Some(explained));
    }
    // Issue 20: choose among the candidates and preview the chosen command's effects in a
    // sandbox. The shell key binding (quiet) shows no preview, so it only pays for a choice.
    let location = Location::current();
    let choice = (!cli.quiet || answer.candidates.len() > 1).then(|| {
        caro_core::select::settle(
            &mut answer,
            shell,
            pipeline.validator(),
            location.as_ref(),
            std::env::current_dir().ok().as_deref(),
        )
    });
    answer
        .warnings
        .extend(settings.resolved.warnings.iter().cloned());

    // `--execute` runs the command here, so the verdict is for this folder.
    let gate = pipeline.gate(Some(&conversation), &answer.command, location.as_ref());
    conversation.answered(&answer.command);
    let code = if gate.blocked() {
        ExitCode::from(exit::BLOCKED)
    } else {
        ExitCode::SUCCESS
    };
    if cli.json {
        let mut doc = output::JsonAnswer::new(&answer, shell, &gate);
        doc.served_by = answers.served_by().as_str();
        doc.selection = choice.as_ref().map(|c| &c.selection);
        // A blocked command is shown nowhere, so neither is what it would do.
        doc.effects = choice
            .as_ref()
            .filter(|_| !gate.blocked())
            .map(|c| &c.effects);
        output::print_json(&doc);
        return Ok(code);
    }
    if cli.quiet {
        output::print_quiet(&answer, &gate);
    } else {
        output::print_human(&answer, &gate, cli.verbose > 0);
        if let Some(c) = &choice
            && !gate.blocked()
        {
            output::print_choice(c, cli.verbose > 0);
        }
    }
    if crate::review::wanted(cli) {
        return Ok(crate::review::run(
            &mut answers,
            &pipeline,
            conversation,
            answer,
            gate,
        ));
    }
    if gate.blocked() {
        return Ok(code);
    }
    if cli.execute {
        answers.release();
        return Ok(execute(&pipeline, &gate, &answer.command, cli.dry_run));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a request ended without an answer: an error still to report, or an exit already
/// reported to the user.
pub(crate) type Halt = caro_core::answers::Halt<ExitCode>;

/// This run's answers: core's daemon-first source, shown on this terminal.
pub(crate) type Answers = caro_core::answers::Answers<Show>;

/// How the CLI presents the search for an answer: a waiting line on stderr (only on a
/// terminal, never under --json), and the model's download before the first in-process
/// request.
pub(crate) struct Show {
    json: bool,
    quiet: bool,
    /// On a terminal and not under --json: whether to show the waiting line at all.
    show: bool,
    /// The waiting line is on screen.
    shown: bool,
}

impl Show {
    fn new(cli: &Cli) -> Self {
        Self {
            json: cli.json,
            quiet: cli.quiet,
            show: !cli.json && std::io::stderr().is_terminal(),
            shown: false,
        }
    }
}

impl Presenter for Show {
    type Stop = ExitCode;

    fn waiting(&mut self, what: &str, waited: std::time::Duration) {
        if !self.show || waited < std::time::Duration::from_secs(1) {
            return;
        }
        let _ = write!(
            anstream::stderr(),
            "\r\x1b[2K{DIM}waiting for {what}… {} s{DIM:#}",
            waited.as_secs()
        );
        self.shown = true;
    }

    fn done_waiting(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = write!(anstream::stderr(), "\r\x1b[2K");
        }
    }

    fn before_local(&mut self, resolved: &Resolved) -> Result<(), ExitCode> {
        if resolved.backend != caro_core::settings::BackendKind::Embedded {
            return Ok(());
        }
        // Quiet (the shell key binding) shows nothing while it works, so a 1.1 GB download
        // would look like a hang: say what to run instead.
        if self.quiet
            && let Some(m) = caro_core::chain::model_to_fetch(resolved)
        {
            let _ = writeln!(
                anstream::stderr(),
                "caro: the model is not downloaded yet: run `caro model pull` once ({}, {})",
                m.title,
                caro_core::models::human_size(m.size)
            );
            return Err(ExitCode::from(exit::MODEL_MISSING));
        }
        crate::model::ensure_for_run(resolved, self.json)
            .map(drop)
            .map_err(|e| crate::model::model_fail(self.json, &e))
    }
}

impl Drop for Show {
    fn drop(&mut self) {
        self.done_waiting();
    }
}

/// The daemon to ask first, unless this request picks its own model, backend or sampling (the
/// daemon answers with the settings it was started with) or the user opted out.
fn daemon_client(cli: &Cli) -> Option<DaemonClient> {
    asks_daemon(cli.no_daemon, &overrides(cli), |k| std::env::var(k).ok())
        .then(|| DaemonClient::new(socket_path()))
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

/// Runs an allowed command in this terminal, then adds it to the shell's history. Whether it
/// may run is core's call from the gate; when it needs confirmation, a person must say yes on a
/// terminal, and without one nothing runs.
pub(crate) fn execute(pipeline: &Pipeline, gate: &Gate, command: &str, dry_run: bool) -> ExitCode {
    let invocation = Invocation::new(pipeline.shell(), command);
    let program = &invocation.program;
    let mut err = anstream::stderr().lock();
    if dry_run {
        let _ = writeln!(
            err,
            "{DIM}dry run: would run{DIM:#} {}",
            invocation.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut confirmed = false;
    if gate.needs_confirmation() {
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
        confirmed = true;
    } else {
        drop(err);
    }
    let ran = match pipeline.run_attached(gate, command, confirmed) {
        Ok(ran) => ran,
        Err(RunError::Blocked(why)) => {
            let _ = writeln!(anstream::stderr(), "{WARN}not run:{WARN:#} {why}");
            return ExitCode::from(exit::BLOCKED);
        }
        Err(e @ RunError::NeedsConfirmation { .. }) => {
            let _ = writeln!(anstream::stderr(), "{WARN}not run:{WARN:#} {e}");
            return ExitCode::from(exit::NOT_CONFIRMED);
        }
        Err(e) => {
            let hint = e
                .hint()
                .map(|h| format!("\n  {DIM}{h}{DIM:#}"))
                .unwrap_or_default();
            let _ = writeln!(anstream::stderr(), "{WARN}{e}{WARN:#}{hint}");
            return ExitCode::from(exit::UNEXPECTED);
        }
    };
    if let Some(e) = ran.not_in_history {
        let _ = writeln!(
            anstream::stderr(),
            "{DIM}not added to the shell history: {e}{DIM:#}"
        );
    }
    ExitCode::from(
        ran.output
            .map_or(exit::UNEXPECTED, |c| c.clamp(0, 255) as u8),
    )
}
