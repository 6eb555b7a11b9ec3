//! Where one run's answers come from: a running daemon first, else the model in this process,
//! built the first time it is needed and kept for the run's next request (a Revise or an
//! Explain does not load the model twice). The frontend only presents, through [`Presenter`].

use crate::EmbeddedConfig;
use crate::cancel::Cancel;
use crate::chain::{self, Built};
use crate::daemon::{DaemonClient, WAIT_TICK};
use crate::error::GeneratorError;
use crate::generator::{CommandRequest, GeneratedCommand};
use crate::pipeline::{AfterDaemon, after_daemon, name_the_skipped_backend};
use crate::settings::Resolved;
use crate::shell::ShellType;
use crate::stats;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a frontend shows while answers are found, and what it does before the model in this
/// process is first built.
pub trait Presenter {
    /// A stop the frontend has already shown the user (the CLI's exit code).
    type Stop;

    /// A request has waited `waited` so far on `what` ("the caro daemon (generating)", or the
    /// backend's name); called about once a second while it waits.
    fn waiting(&mut self, what: &str, waited: Duration);

    /// The wait that [`Presenter::waiting`] reported is over.
    fn done_waiting(&mut self);

    /// Called once, before the in-process backend is built: the frontend may fetch a missing
    /// model with its own progress display, or stop the run.
    fn before_local(&mut self, resolved: &Resolved) -> Result<(), Self::Stop>;
}

/// Why a request ended without an answer.
#[derive(Debug)]
pub enum Halt<S> {
    /// An error still to report.
    Error(GeneratorError),
    /// A stop the presenter already reported.
    Stop(S),
}

impl<S> From<GeneratorError> for Halt<S> {
    fn from(e: GeneratorError) -> Self {
        Self::Error(e)
    }
}

/// Who gave an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedBy {
    Daemon,
    InProcess,
}

impl ServedBy {
    /// As `--json` spells it (`served_by`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::InProcess => "in_process",
        }
    }
}

/// One run's source of answers. Dropping it frees the in-process model.
pub struct Answers<P: Presenter> {
    presenter: P,
    resolved: Resolved,
    shell: ShellType,
    config: EmbeddedConfig,
    client: Option<DaemonClient>,
    local: Option<Built>,
    deadline: Option<Duration>,
    /// The last in-process request's deadline, for an explanation that belongs to it.
    last_cancel: Option<Cancel>,
    served_by: ServedBy,
}

impl<P: Presenter> std::fmt::Debug for Answers<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("shell", &self.shell)
            .field("daemon", &self.client.as_ref().map(DaemonClient::path))
            .field("local", &self.local.is_some())
            .field("served_by", &self.served_by)
            .finish_non_exhaustive()
    }
}

impl<P: Presenter> Answers<P> {
    /// Answers for `shell` under `resolved`, asking `daemon` first when there is one (see
    /// [`crate::pipeline::asks_daemon`]). Builds nothing yet.
    pub fn new(
        resolved: Resolved,
        shell: ShellType,
        daemon: Option<DaemonClient>,
        presenter: P,
    ) -> Result<Self, GeneratorError> {
        let deadline = resolved.request_timeout();
        Ok(Self {
            config: resolved.embedded_config()?,
            client: daemon.map(|c| c.with_deadline(deadline)),
            presenter,
            resolved,
            shell,
            local: None,
            deadline,
            last_cancel: None,
            served_by: ServedBy::InProcess,
        })
    }

    pub fn shell(&self) -> ShellType {
        self.shell
    }

    /// Who gave the last answer.
    pub fn served_by(&self) -> ServedBy {
        self.served_by
    }

    /// The command for `prompt`: from the daemon while it answers, else from this process.
    /// A daemon that fails once is not asked again in this run. Each answer, a revision's
    /// too, counts in the stats `caro status` shows.
    pub fn generate(&mut self, prompt: &str) -> Result<GeneratedCommand, Halt<P::Stop>> {
        let request = CommandRequest::new(prompt.to_owned(), self.shell);
        let mut daemon_warning = None;
        if let Some(c) = &self.client {
            let presenter = &mut self.presenter;
            let asked = c.generate_with(&request, &mut |t| {
                presenter.waiting("the caro daemon (generating)", t)
            });
            self.presenter.done_waiting();
            match asked {
                Ok(a) => {
                    self.served_by = ServedBy::Daemon;
                    stats::record(a.timings.total, &a.backend);
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
            self.client = None;
        }
        self.served_by = ServedBy::InProcess;
        let (generator, _, early_fallback) = self.local()?.clone();
        let cancel = self.cancel();
        self.last_cancel = Some(cancel.clone());
        let name = generator.backend_info().name;
        let result = self.waiting_on(&name, || generator.generate_command_with(&request, &cancel));
        let mut a = result
            .map_err(|e| name_the_skipped_backend(e, &self.resolved, early_fallback.as_deref()))?;
        if a.fallback_reason.is_none() {
            a.fallback_reason = early_fallback;
        }
        a.warnings.extend(daemon_warning);
        stats::record(a.timings.total, &a.backend);
        Ok(a)
    }

    /// One or two sentences on what `command` does, from whoever answered last. Within the
    /// last request's time limit when `same_request` (`--explain`), else with its own (asked
    /// after the user read the answer).
    pub fn explain(&mut self, command: &str, same_request: bool) -> Result<String, String> {
        if self.served_by == ServedBy::Daemon
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
            Err(Halt::Stop(_)) => Err("the model is not available".to_owned()),
        }
    }

    /// Frees the model's memory (before a command runs); a later request loads it again.
    pub fn release(&self) {
        if let Some((generator, _, _)) = &self.local {
            generator.shutdown();
        }
    }

    fn cancel(&self) -> Cancel {
        self.deadline
            .map_or_else(Cancel::never, |d| Cancel::never().with_timeout(d))
    }

    /// Runs `work` (a blocking in-process request) on a scoped thread while this one tells
    /// the presenter, once a second, how long it has waited.
    fn waiting_on<T: Send>(&mut self, what: &str, work: impl FnOnce() -> T + Send) -> T {
        let what = format!("{what} (generating)");
        let started = Instant::now();
        let presenter = &mut self.presenter;
        let out = std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            s.spawn(move || {
                // The receiver outlives this thread (the scope joins it first).
                let _ = tx.send(work());
            });
            loop {
                match rx.recv_timeout(WAIT_TICK) {
                    Ok(out) => break Some(out),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        presenter.waiting(&what, started.elapsed());
                    }
                    // The work panicked: the scope re-raises it when it joins.
                    Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                }
            }
        });
        self.presenter.done_waiting();
        // A panic in `work` propagated out of the scope above, so there is always a value.
        out.unwrap_or_else(|| unreachable!("the scope re-raises the worker's panic"))
    }

    /// The in-process generator, built on first use after the presenter's say.
    fn local(&mut self) -> Result<&Built, Halt<P::Stop>> {
        if self.local.is_none() {
            self.presenter
                .before_local(&self.resolved)
                .map_err(Halt::Stop)?;
            self.local = Some(chain::build(&self.resolved, self.config.clone())?);
        }
        Ok(self.local.as_ref().expect("built above"))
    }
}

impl<P: Presenter> Drop for Answers<P> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Overrides, resolve};

    /// Records what it was asked to show; stops before any model is built.
    #[derive(Default)]
    struct Record {
        waits: Vec<String>,
        done: usize,
        asked_before_local: usize,
    }

    impl Presenter for Record {
        type Stop = &'static str;
        fn waiting(&mut self, what: &str, _: Duration) {
            self.waits.push(what.to_owned());
        }
        fn done_waiting(&mut self) {
            self.done += 1;
        }
        fn before_local(&mut self, _: &Resolved) -> Result<(), Self::Stop> {
            self.asked_before_local += 1;
            Err("no model here")
        }
    }

    fn resolved() -> Resolved {
        resolve(Default::default(), |_| None, &Overrides::default()).expect("defaults")
    }

    #[test]
    fn a_daemon_that_is_not_running_hands_the_request_to_this_process() {
        let dir = tempfile::tempdir().expect("tmp");
        let client = DaemonClient::new(dir.path().join("no-daemon.sock"));
        let mut answers =
            Answers::new(resolved(), ShellType::Bash, Some(client), Record::default())
                .expect("answers");
        let got = answers.generate("list files");
        assert!(matches!(got, Err(Halt::Stop("no model here"))), "{got:?}");
        assert_eq!(answers.presenter.asked_before_local, 1);
        assert_eq!(answers.served_by(), ServedBy::InProcess);
        // The dead daemon is not asked again: the next request goes straight here.
        assert!(answers.client.is_none());
        assert!(matches!(answers.explain("ls", false), Err(e) if e.contains("not available")));
        assert_eq!(answers.presenter.asked_before_local, 2);
    }

    #[test]
    fn waiting_on_reports_each_second_and_ends_the_wait() {
        let mut answers =
            Answers::new(resolved(), ShellType::Bash, None, Record::default()).expect("answers");
        let got = answers.waiting_on("slow", || {
            std::thread::sleep(WAIT_TICK + Duration::from_millis(300));
            7
        });
        assert_eq!(got, 7);
        assert_eq!(answers.presenter.waits, ["slow (generating)"]);
        assert_eq!(answers.presenter.done, 1);
    }
}
