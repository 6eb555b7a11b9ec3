//! The default action: generate a command for the prompt, print it, optionally run it.

use crate::output::{self, DIM, WARN};
use crate::settings::RunSettings;
use crate::{Cli, backends, exit, settings, stats};
use caro_core::daemon::{DaemonClient, socket_path};
use caro_core::execute::Invocation;
use caro_core::pipeline::{
    AfterDaemon, Conversation, Pipeline, RunError, after_daemon, asks_daemon,
    name_the_skipped_backend,
};
use caro_core::safety::{Gate, Location};
use caro_core::settings::{Overrides, Sampling};
use caro_core::{Cancel, CommandRequest, GeneratorError, ShellType};
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
    let mut answers = Answers::new(cli, &settings, shell)?;
    let mut answer = match answers.generate(conversation.request()) {
        Ok(a) => a,
        Err(Halt::Exit(code)) => return Ok(code),
        Err(Halt::Error(e)) => return Err(e),
    };
    if cli.explain {
        // The same request: the explanation shares the command's deadline.
        let explained = answers.explain(&answer.command, true);
        add_explanation(&mut answer, Some(explained));
    }
    answer
        .warnings
        .extend(settings.resolved.warnings.iter().cloned());
    stats::record(answer.timings.total, &answer.backend);

    // `--execute` runs the command here, so the verdict is for this folder.
    let gate = pipeline.gate(
        Some(&conversation),
        &answer.command,
        Location::current().as_ref(),
    );
    conversation.answered(&answer.command);
    let code = if gate.blocked() {
        ExitCode::from(exit::BLOCKED)
    } else {
        ExitCode::SUCCESS
    };
    if cli.json {
        let mut doc = output::JsonAnswer::new(&answer, shell, &gate);
        doc.served_by = answers.served_by;
        output::print_json(&doc);
        return Ok(code);
    }
    if cli.quiet {
        output::print_quiet(&answer, &gate);
    } else {
        output::print_human(&answer, &gate, cli.verbose > 0);
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
pub(crate) enum Halt {
    Error(GeneratorError),
    Exit(ExitCode),
}

impl From<GeneratorError> for Halt {
    fn from(e: GeneratorError) -> Self {
        Self::Error(e)
    }
}

/// Where this run's answers come from: the daemon while it answers, else the model in this
/// process, built the first time it is needed and kept for the next request of the same run
/// (a Revise or an Explain in the loop does not load the model twice).
pub(crate) struct Answers<'a> {
    cli: &'a Cli,
    settings: &'a RunSettings,
    pub shell: ShellType,
    config: caro_core::EmbeddedConfig,
    client: Option<DaemonClient>,
    local: Option<caro_core::chain::Built>,
    deadline: Option<std::time::Duration>,
    /// The last in-process request's deadline, for an explanation that belongs to it.
    last_cancel: Option<Cancel>,
    /// Who gave the last answer: `daemon` or `in_process`.
    pub served_by: &'static str,
}

impl<'a> Answers<'a> {
    fn new(
        cli: &'a Cli,
        settings: &'a RunSettings,
        shell: ShellType,
    ) -> Result<Self, GeneratorError> {
        let deadline = settings.resolved.request_timeout();
        Ok(Self {
            cli,
            settings,
            shell,
            config: settings.resolved.embedded_config()?,
            client: daemon_client(cli).map(|c| c.with_deadline(deadline)),
            local: None,
            deadline,
            last_cancel: None,
            served_by: "in_process",
        })
    }

    /// The command for `prompt`: from the daemon when one runs, else from this process.
    pub fn generate(&mut self, prompt: &str) -> Result<caro_core::GeneratedCommand, Halt> {
        let request = CommandRequest::new(prompt.to_owned(), self.shell);
        let mut daemon_warning = None;
        if let Some(c) = &self.client {
            let mut waiting = Waiting::new(self.cli.json);
            let asked = c.generate_with(&request, &mut |t| {
                waiting.report("the caro daemon (generating)", t)
            });
            waiting.clear();
            match asked {
                Ok(a) => {
                    self.served_by = "daemon";
                    return Ok(a);
                }
                Err(e) => match after_daemon(e, c.path()) {
                    AfterDaemon::Fail(e) => return Err(e.into()),
                    AfterDaemon::AnswerHere { warning } => {
                        if let Some(w) = &warning {
                            tracing::info!(warning = %w, "answering in-process");
                        }
                        daemon_warning = warning;
                    }
                },
            }
            // Gone or failing: the rest of this run answers in-process.
            self.client = None;
        }
        self.served_by = "in_process";
        let (generator, _, early_fallback) = self.local()?.clone();
        let cancel = self.cancel();
        self.last_cancel = Some(cancel.clone());
        let ticker = Ticker::start(self.cli.json, generator.backend_info().name);
        let result = generator.generate_command_with(&request, &cancel);
        drop(ticker);
        let mut a = result.map_err(|e| {
            name_the_skipped_backend(e, &self.settings.resolved, early_fallback.as_deref())
        })?;
        if a.fallback_reason.is_none() {
            a.fallback_reason = early_fallback;
        }
        a.warnings.extend(daemon_warning);
        Ok(a)
    }

    /// One or two sentences on what `command` does, from whoever answered last. Within the
    /// last request's time limit when `same_request` (`--explain`), else with its own (the
    /// loop's Explain, asked after the user read the answer).
    pub fn explain(&mut self, command: &str, same_request: bool) -> Result<String, String> {
        if self.served_by == "daemon"
            && let Some(c) = &self.client
        {
            return c.explain(command, self.shell).map_err(|e| e.to_string());
        }
        let cancel = match (&self.last_cancel, same_request) {
            (Some(c), true) => c.clone(),
            _ => self.cancel(),
        };
        let shell = self.shell;
        match self.local() {
            Ok((_, backend, _)) => backend
                .explain_with(command, shell, &cancel)
                .map_err(|e| e.to_string()),
            Err(Halt::Error(e)) => Err(e.to_string()),
            Err(Halt::Exit(_)) => Err("the model is not available".to_owned()),
        }
    }

    /// Frees the model's memory before a command runs (a later request loads it again).
    pub fn release(&self) {
        if let Some((generator, _, _)) = &self.local {
            generator.shutdown();
        }
    }

    fn cancel(&self) -> Cancel {
        self.deadline
            .map_or_else(Cancel::never, |d| Cancel::never().with_timeout(d))
    }

    /// The in-process generator, built on first use.
    fn local(&mut self) -> Result<&caro_core::chain::Built, Halt> {
        if self.local.is_none() {
            let resolved = &self.settings.resolved;
            let embedded = resolved.backend == caro_core::settings::BackendKind::Embedded;
            // Quiet (the shell key binding) shows nothing while it works, so a 1.1 GB download
            // would look like a hang: say what to run instead.
            if embedded
                && self.cli.quiet
                && let Some(m) = caro_core::chain::model_to_fetch(resolved)
            {
                let _ = writeln!(
                    anstream::stderr(),
                    "caro: the model is not downloaded yet: run `caro model pull` once ({}, {})",
                    m.title,
                    caro_core::models::human_size(m.size)
                );
                return Err(Halt::Exit(ExitCode::from(exit::MODEL_MISSING)));
            }
            if embedded && let Err(e) = crate::model::ensure_for_run(resolved, self.cli.json) {
                return Err(Halt::Exit(crate::model::model_fail(self.cli.json, &e)));
            }
            self.local = Some(backends::build(resolved, self.config.clone())?);
        }
        Ok(self.local.as_ref().expect("built above"))
    }
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Says on stderr what a slow request waits for, from its first second on, rewriting one line;
/// only on a terminal and never under --json, so scripts and logs get no noise.
struct Waiting {
    show: bool,
    shown: bool,
}

impl Waiting {
    fn new(json: bool) -> Self {
        Self {
            show: !json && std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn report(&mut self, what: &str, waited: std::time::Duration) {
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

    fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = write!(anstream::stderr(), "\r\x1b[2K");
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.clear();
    }
}

/// [`Waiting`] for an in-process request, whose generator blocks: a thread reports each
/// second until the ticker is dropped.
struct Ticker {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(json: bool, backend: String) -> Self {
        let (done, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut waiting = Waiting::new(json);
            let started = std::time::Instant::now();
            let what = format!("{backend} (generating)");
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(caro_core::daemon::WAIT_TICK)
            {
                waiting.report(&what, started.elapsed());
            }
        });
        Self {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
