//! One request from the user's words to a command that may run, decided the same way in every
//! frontend: the request's turns, the gate for the folder the command runs in, and the run.
//!
//! The CLI (its answer, `--execute` and its loop) and the popup (Generate, Revise, an edited
//! command, Run) take these decisions from here and only present them. Before this module each
//! frontend composed revisions and gated in its own way, and they differed: the popup nested
//! one revision inside the next and screened the joined text, the CLI screened each turn.

use crate::GeneratorError;
use crate::daemon::DaemonError;
use crate::execute::{self, Captured, ExecuteError, HistoryEnv, Limits};
use crate::prompt::revision_request;
use crate::safety::{Gate, Location, RiskLevel, SafetyValidator};
use crate::settings::{BackendKind, Overrides, Resolved};
use crate::shell::ShellType;
use std::path::Path;

/// A request as the user made it: the first words, then each revision's instruction, and the
/// command that answers it now (generated, or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    turns: Vec<String>,
    /// What the model reads for the next answer.
    request: String,
    command: Option<String>,
}

/// Why a request or a revision cannot be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is empty: describe the command you want in plain words")]
    Empty,
    #[error("there is no command to revise yet: ask for one first")]
    NothingToRevise,
    #[error("the revision is empty: say how the command should change")]
    EmptyInstruction,
}

impl RequestError {
    /// The stable code frontends and scripts match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_prompt",
            Self::NothingToRevise => "nothing_to_revise",
            Self::EmptyInstruction => "empty_instruction",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Empty => Some("example: caro \"find files larger than 100MB\"".to_owned()),
            Self::NothingToRevise => None,
            Self::EmptyInstruction => Some("example: \"only in /var/log\"".to_owned()),
        }
    }
}

impl Conversation {
    /// A new request in the user's words (trimmed); empty words are no request.
    pub fn new(words: &str) -> Result<Self, RequestError> {
        let words = words.trim();
        if words.is_empty() {
            return Err(RequestError::Empty);
        }
        Ok(Self {
            turns: vec![words.to_owned()],
            request: words.to_owned(),
            command: None,
        })
    }

    /// What the model reads for the next answer: the first words, or after a revision the
    /// first words, the command so far and the instruction (never a revision inside another).
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The first words, then each instruction, each as typed.
    pub fn turns(&self) -> &[String] {
        &self.turns
    }

    /// The request in the user's words, as history shows it: "first words → instruction".
    pub fn shown(&self) -> String {
        self.turns.join(" → ")
    }

    /// The command that answers the request now.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// Records the command that answers the request now: the model's, or the user's edit.
    pub fn answered(&mut self, command: &str) {
        self.command = Some(command.to_owned());
    }

    /// Asks for a change in words. The next request keeps the first words and the current
    /// command, so the model sees what to change and why.
    pub fn revise(&mut self, instruction: &str) -> Result<(), RequestError> {
        let instruction = instruction.trim();
        let command = self
            .command
            .as_deref()
            .ok_or(RequestError::NothingToRevise)?;
        if instruction.is_empty() {
            return Err(RequestError::EmptyInstruction);
        }
        self.request = revision_request(&self.turns[0], command, instruction);
        self.turns.push(instruction.to_owned());
        Ok(())
    }
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Refused or blocked: nothing may run it, confirmed or not.
    #[error("{0}")]
    Blocked(String),
    #[error("{risk} command in {dir}: confirm to run it")]
    NeedsConfirmation { risk: RiskLevel, dir: String },
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl RunError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Blocked(_) => "blocked",
            Self::NeedsConfirmation { .. } => "needs_confirmation",
            Self::Execute(e) => e.code(),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Blocked(_) => Some(
                "caro never runs a blocked command; revise the request, or ask what it does \
                 (explain)"
                    .to_owned(),
            ),
            Self::NeedsConfirmation { .. } => None,
            Self::Execute(e) => e.hint(),
        }
    }
}

/// What a run produced, and why it is not in the shell's history when it is not.
#[derive(Debug)]
pub struct Ran<T> {
    pub output: T,
    pub not_in_history: Option<std::io::Error>,
}

/// The decisions of one frontend session: the safety settings, the shell, and whether what
/// runs joins the shell's history.
#[derive(Debug, Clone)]
pub struct Pipeline {
    validator: SafetyValidator,
    shell: ShellType,
    history: bool,
}

impl Pipeline {
    pub fn new(validator: SafetyValidator, shell: ShellType, history: bool) -> Self {
        Self {
            validator,
            shell,
            history,
        }
    }

    /// The pipeline the resolved settings describe: their safety section, and
    /// `[shell_integration] history`.
    pub fn from_settings(
        resolved: &Resolved,
        shell: ShellType,
    ) -> Result<Self, crate::safety::SafetyConfigError> {
        Ok(Self::new(
            resolved.validator()?,
            shell,
            resolved.config.shell_integration.history,
        ))
    }

    /// The same pipeline, never appending to the shell's history (tests, and a frontend the
    /// user told not to).
    pub fn without_history(mut self) -> Self {
        self.history = false;
        self
    }

    pub fn shell(&self) -> ShellType {
        self.shell
    }

    pub fn validator(&self) -> &SafetyValidator {
        &self.validator
    }

    /// The gate for `command` as the answer to `conversation` (`None`: a command typed with no
    /// request), run in `at` (`None`: a folder not known). Every turn is screened on its own,
    /// so a refused request stays refused however it is revised or the command edited.
    pub fn gate(
        &self,
        conversation: Option<&Conversation>,
        command: &str,
        at: Option<&Location>,
    ) -> Gate {
        let turns: Vec<&str> = conversation
            .map(|c| c.turns.iter().map(String::as_str).collect())
            .unwrap_or_default();
        Gate::decide_turns(&self.validator, &turns, command, self.shell, at)
    }

    /// Whether a command with this gate may run now: never when blocked, and only once a
    /// person said yes when it needs confirmation. Pure.
    pub fn permit(gate: &Gate, confirmed: bool) -> Result<(), RunError> {
        if gate.blocked() {
            return Err(RunError::Blocked(
                gate.refusal().unwrap_or_else(|| "blocked".to_owned()),
            ));
        }
        if gate.needs_confirmation() && !confirmed {
            return Err(RunError::NeedsConfirmation {
                risk: gate.verdict.risk,
                dir: gate
                    .verdict
                    .cwd
                    .clone()
                    .unwrap_or_else(|| "this folder".to_owned()),
            });
        }
        Ok(())
    }

    /// Runs `command`, the answer to `conversation`, in `dir` with its output captured (the
    /// popup's Run). The gate is decided again for exactly that folder first.
    pub fn run_captured(
        &self,
        conversation: Option<&Conversation>,
        command: &str,
        dir: &Path,
        home: Option<&Path>,
        confirmed: bool,
        limits: Limits,
    ) -> Result<Ran<Captured>, RunError> {
        let gate = self.gate(conversation, command, Some(&Location::new(dir, home)));
        Self::permit(&gate, confirmed)?;
        let output = execute::run_captured(self.shell, command, dir, limits)?;
        Ok(Ran {
            output,
            not_in_history: self.remember(command),
        })
    }

    /// Runs `command` attached to this terminal, in the current folder (the CLI's Run and
    /// `--execute`), if `gate` (decided for this folder) permits it. Returns its exit status
    /// (`None`: killed by a signal).
    pub fn run_attached(
        &self,
        gate: &Gate,
        command: &str,
        confirmed: bool,
    ) -> Result<Ran<Option<i32>>, RunError> {
        Self::permit(gate, confirmed)?;
        let output = execute::run_attached(self.shell, command)?;
        Ok(Ran {
            output,
            not_in_history: self.remember(command),
        })
    }

    /// It ran, so it belongs in the history like anything typed: the up arrow brings it back
    /// (unless the user said no: `[shell_integration] history`, CARO_HISTORY).
    fn remember(&self, command: &str) -> Option<std::io::Error> {
        if !self.history {
            return None;
        }
        execute::append_history(self.shell, command, &HistoryEnv::current()).err()
    }
}

/// What a frontend does once a running daemon did not answer a request.
#[derive(Debug)]
pub enum AfterDaemon {
    /// Answer in this process, and ask the daemon no more this run; say `warning` if set.
    AnswerHere { warning: Option<String> },
    /// Stop with this error: the request's time ran out waiting, and answering here too would
    /// only make the wait longer.
    Fail(GeneratorError),
}

/// The fallback policy when asking the daemon at `socket` failed with `e`: no daemon running
/// is no news; a deadline is the answer; anything else is answered here, with a warning.
pub fn after_daemon(e: DaemonError, socket: &Path) -> AfterDaemon {
    if matches!(e, DaemonError::NotRunning { .. }) {
        return AfterDaemon::AnswerHere { warning: None };
    }
    let waited_too_long = matches!(e, DaemonError::TimedOut { .. });
    if waited_too_long || e.code() == "timed_out" {
        // The daemon's own `timed_out` names the backend that was working; the client's
        // deadline names the daemon.
        let code = if waited_too_long {
            "daemon_timeout"
        } else {
            "timed_out"
        };
        return AfterDaemon::Fail(GeneratorError::Remote {
            backend: "daemon".to_owned(),
            message: e.to_string(),
            code,
        });
    }
    AfterDaemon::AnswerHere {
        warning: Some(format!(
            "the caro daemon at {} failed ({e}); answered in-process",
            socket.display()
        )),
    }
}

/// Whether to ask a running daemon first: not when the user opted out, nor when this request
/// picks its own model, backend, engine or sampling by flag or environment (the daemon answers
/// with the settings it was started with). The deadline and the safety mode do not count:
/// the client keeps its own deadline and decides the gate itself.
pub fn asks_daemon(
    opted_out: bool,
    overrides: &Overrides,
    env: impl Fn(&str) -> Option<String>,
) -> bool {
    let s = overrides.sampling;
    let own_settings = overrides.backend.is_some()
        || overrides.model_path.is_some()
        || overrides.engine.is_some()
        || overrides.ollama_url.is_some()
        || overrides.vllm_url.is_some()
        || s.temperature.is_some()
        || s.top_p.is_some()
        || s.max_tokens.is_some()
        || s.seed.is_some()
        || s.candidates.is_some()
        || ["CARO_BACKEND", "CARO_MODEL", "CARO_ENGINE"]
            .iter()
            .any(|k| env(k).is_some_and(|v| !v.is_empty()));
    !opted_out && !own_settings
}

/// The error to report when a remote backend chosen by the settings failed its health check
/// (`early_fallback` says why) and the embedded model then failed too: the remote's, since
/// "no model file found" alone would hide that the server the user chose is down.
pub fn name_the_skipped_backend(
    err: GeneratorError,
    resolved: &Resolved,
    early_fallback: Option<&str>,
) -> GeneratorError {
    match early_fallback {
        // A deadline or a cancel is its own answer (exit 12): renaming it would hide why.
        Some(reason)
            if resolved.backend != BackendKind::Embedded
                && !matches!(err.code(), "timed_out" | "cancelled") =>
        {
            GeneratorError::Remote {
                backend: resolved.backend.as_str().to_owned(),
                message: format!("{reason}; the embedded fallback failed too: {err}"),
                code: "remote_failed",
            }
        }
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::SafetyMode;

    fn pipeline() -> Pipeline {
        Pipeline::new(
            SafetyValidator::new(SafetyMode::Moderate),
            ShellType::Bash,
            false,
        )
    }

    fn home() -> Location {
        Location {
            cwd: "/tmp/scratch-home".into(),
            home: Some("/tmp/scratch-home".into()),
        }
    }

    #[test]
    fn empty_words_are_no_request() {
        assert_eq!(
            Conversation::new("  \n").expect_err("refused"),
            RequestError::Empty
        );
        assert_eq!(
            Conversation::new(" list files ").expect("ok").request(),
            "list files"
        );
    }

    #[test]
    fn a_revision_needs_a_command_and_words() {
        let mut c = Conversation::new("list files").expect("ok");
        assert_eq!(
            c.revise("sorted").expect_err("refused"),
            RequestError::NothingToRevise
        );
        c.answered("ls");
        assert_eq!(
            c.revise("  ").expect_err("refused"),
            RequestError::EmptyInstruction
        );
        assert_eq!(
            c.turns(),
            ["list files"],
            "a failed revision changes nothing"
        );
    }

    /// Regression: the popup composed the second revision around the first one's composed
    /// request, so the model read a revision inside a revision.
    #[test]
    fn revisions_never_nest() {
        let mut c = Conversation::new("list files").expect("ok");
        c.answered("ls");
        c.revise("sorted by size").expect("ok");
        c.answered("ls -S");
        c.revise("biggest last").expect("ok");
        assert_eq!(
            c.request(),
            revision_request("list files", "ls -S", "biggest last")
        );
        assert_eq!(c.shown(), "list files → sorted by size → biggest last");
    }

    /// Regression: the popup screened the composed revision (request, command and instruction
    /// joined), where "remove the -s flag" after "the size of my home folder" read as deleting
    /// the home folder.
    #[test]
    fn each_turn_is_screened_alone() {
        let p = pipeline();
        let mut c = Conversation::new("show the size of my home folder").expect("ok");
        c.answered("du -sh ~");
        c.revise("remove the -s flag").expect("ok");
        let g = p.gate(Some(&c), "du -h ~", Some(&home()));
        assert!(!g.blocked(), "{:?}", g.refusal());
    }

    #[test]
    fn a_refused_request_stays_refused_after_a_revision() {
        let p = pipeline();
        let mut c = Conversation::new("wipe my home folder").expect("ok");
        c.answered("ls");
        assert!(p.gate(Some(&c), "ls", Some(&home())).blocked());
        c.revise("just list it instead").expect("ok");
        assert!(p.gate(Some(&c), "ls ~", Some(&home())).blocked());
    }

    #[test]
    fn permit_refuses_blocked_and_unconfirmed_commands() {
        let p = pipeline();
        let c = Conversation::new("clean up").expect("ok");
        let blocked = p.gate(Some(&c), "rm -rf /", Some(&home()));
        for confirmed in [false, true] {
            let e = Pipeline::permit(&blocked, confirmed).expect_err("refused");
            assert_eq!(e.code(), "blocked");
        }
        let project = Location {
            cwd: "/tmp/scratch-home/proj".into(),
            home: Some("/tmp/scratch-home".into()),
        };
        let risky = p.gate(Some(&c), "rm -rf *", Some(&project));
        assert!(risky.needs_confirmation(), "{:?}", risky.verdict);
        let e = Pipeline::permit(&risky, false).expect_err("refused");
        assert_eq!(e.code(), "needs_confirmation");
        assert!(e.to_string().contains("/tmp/scratch-home/proj"), "{e}");
        assert!(Pipeline::permit(&risky, true).is_ok());
        let safe = p.gate(Some(&c), "ls", Some(&home()));
        assert!(Pipeline::permit(&safe, false).is_ok());
    }

    #[test]
    fn a_blocked_command_is_never_run_captured() {
        let dir = tempfile::tempdir().expect("ok");
        let victim = dir.path().join("keep.txt");
        std::fs::write(&victim, "mine").expect("ok");
        let p = pipeline();
        let c = Conversation::new("delete everything here").expect("ok");
        // The folder is the home folder: `rm -rf *` there is blocked, confirmed or not.
        let e = p
            .run_captured(
                Some(&c),
                "rm -rf *",
                dir.path(),
                Some(dir.path()),
                true,
                Limits::default(),
            )
            .expect_err("refused");
        assert_eq!(e.code(), "blocked");
        assert_eq!(std::fs::read_to_string(&victim).expect("ok"), "mine");
    }

    #[test]
    fn an_allowed_command_runs_in_the_folder_given() {
        let dir = tempfile::tempdir().expect("ok");
        std::fs::write(dir.path().join("here.txt"), "").expect("ok");
        let p = pipeline();
        let c = Conversation::new("list files").expect("ok");
        let ran = p
            .run_captured(Some(&c), "ls", dir.path(), None, false, Limits::default())
            .expect("ok");
        assert!(ran.output.stdout.contains("here.txt"), "{:?}", ran.output);
        assert!(ran.not_in_history.is_none());
    }

    #[test]
    fn the_daemon_is_asked_unless_the_request_picks_its_own_settings() {
        let none = |_: &str| None;
        assert!(asks_daemon(false, &Overrides::default(), none));
        assert!(!asks_daemon(true, &Overrides::default(), none), "opted out");
        let seeded = Overrides {
            sampling: crate::settings::Sampling {
                seed: Some(1),
                ..Default::default()
            },
            ..Overrides::default()
        };
        assert!(!asks_daemon(false, &seeded, none));
        let best_of = Overrides {
            sampling: crate::settings::Sampling {
                candidates: Some(4),
                ..Default::default()
            },
            ..Overrides::default()
        };
        assert!(!asks_daemon(false, &best_of, none), "--candidates");
        let strict = Overrides {
            mode: Some(crate::safety::SafetyMode::Strict),
            timeout_secs: Some(3),
            ..Overrides::default()
        };
        assert!(
            asks_daemon(false, &strict, none),
            "the client gates and times out itself"
        );
        let env = |k: &str| (k == "CARO_MODEL").then(|| "qwen".to_owned());
        assert!(!asks_daemon(false, &Overrides::default(), env));
        let empty = |k: &str| (k == "CARO_MODEL").then(String::new);
        assert!(asks_daemon(false, &Overrides::default(), empty));
    }

    #[test]
    fn after_the_daemon_fails_the_policy_is_answer_here_or_stop_at_the_deadline() {
        let socket = Path::new("/run/caro.sock");
        let gone = DaemonError::NotRunning {
            path: socket.into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(matches!(
            after_daemon(gone, socket),
            AfterDaemon::AnswerHere { warning: None }
        ));
        let frozen = DaemonError::TimedOut {
            path: socket.into(),
            waited: std::time::Duration::from_secs(30),
        };
        match after_daemon(frozen, socket) {
            AfterDaemon::Fail(e) => assert_eq!(e.code(), "daemon_timeout"),
            other => panic!("{other:?}"),
        }
        let its_deadline = DaemonError::Remote {
            code: "timed_out".into(),
            message: "embedded: timed out".into(),
        };
        match after_daemon(its_deadline, socket) {
            AfterDaemon::Fail(e) => assert_eq!(e.code(), "timed_out"),
            other => panic!("{other:?}"),
        }
        let garbled = DaemonError::Protocol("not json".into());
        match after_daemon(garbled, socket) {
            AfterDaemon::AnswerHere { warning: Some(w) } => {
                assert!(
                    w.contains("/run/caro.sock") && w.contains("in-process"),
                    "{w}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
