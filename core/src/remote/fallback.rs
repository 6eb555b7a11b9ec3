//! The fallback chain: a remote backend tried under the retry policy, then the embedded model,
//! with `backend` and `fallback_reason` set on the answer and logged. One deadline (the
//! request's [`Cancel`]) bounds the whole chain: every attempt, every backoff, the fallback.

use super::RemoteBackend;
use super::policy::{MAX_RETRIES, NextStep, RemoteFailure, next_step};
use crate::cancel::{Cancel, Stop};
use crate::error::GeneratorError;
use crate::generator::{BackendInfo, CommandGenerator, CommandRequest, GeneratedCommand};
use std::sync::Arc;
use std::time::Duration;

/// Sleeps between retries; tests pass a recorder instead of real sleep.
pub type Sleeper = fn(Duration);

pub struct FallbackChain {
    remote: Box<dyn RemoteBackend>,
    embedded: Arc<dyn CommandGenerator>,
    sleep: Sleeper,
}

impl std::fmt::Debug for FallbackChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackChain")
            .field("remote", &self.remote.name())
            .finish()
    }
}

impl FallbackChain {
    pub fn new(remote: Box<dyn RemoteBackend>, embedded: Arc<dyn CommandGenerator>) -> Self {
        Self {
            remote,
            embedded,
            sleep: std::thread::sleep,
        }
    }

    pub fn with_sleeper(mut self, sleep: Sleeper) -> Self {
        self.sleep = sleep;
        self
    }

    /// Tries the remote backend under the policy, each attempt cut to the time `cancel` has
    /// left.
    fn try_remote(
        &self,
        request: &CommandRequest,
        cancel: &Cancel,
    ) -> Result<GeneratedCommand, RemoteEnd> {
        let mut retries = 0;
        let mut last = None;
        loop {
            cancel
                .check()
                .map_err(|s| RemoteEnd::Stopped(s, last.take()))?;
            let result = match cancel.remaining() {
                Some(left) => self.remote.attempt_within(request, left),
                None => self.remote.attempt(request),
            };
            let failure = match result {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            // An attempt cut short by the deadline failed because of it, whatever it says.
            if let Err(s) = cancel.check() {
                return Err(RemoteEnd::Stopped(s, Some(failure)));
            }
            match next_step(&failure.kind, retries) {
                NextStep::Retry { after } => {
                    // A backoff that outlasts the deadline could never be followed by an answer.
                    if cancel.remaining().is_some_and(|left| left <= after) {
                        return Err(RemoteEnd::Stopped(Stop::DeadlineExceeded, Some(failure)));
                    }
                    tracing::info!(backend = self.remote.name(), retry = retries + 1, error = %failure, "retrying");
                    (self.sleep)(after);
                    retries += 1;
                    last = Some(failure);
                }
                NextStep::FallBack => return Err(RemoteEnd::Failed(failure, retries + 1)),
            }
        }
    }

    /// The remote backend as error messages name it: `vllm at http://…`.
    fn remote_label(&self) -> String {
        format!("{} at {}", self.remote.name(), self.remote.url())
    }
}

/// How the remote part of the chain ended without an answer.
enum RemoteEnd {
    /// The policy gave up: the last failure and how many attempts were made.
    Failed(RemoteFailure, u32),
    /// The deadline passed or the request was cancelled, after this failure if any.
    Stopped(Stop, Option<RemoteFailure>),
}

/// The reason shown to the user when the embedded model answered instead.
pub fn fallback_reason(failure: &RemoteFailure, attempts: u32) -> String {
    if attempts > 1 {
        format!(
            "{failure} (gave up after {attempts} attempts: 1 + {} retries)",
            attempts - 1
        )
    } else {
        failure.message.clone()
    }
}

impl CommandGenerator for FallbackChain {
    fn generate_command(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, GeneratorError> {
        self.generate_command_with(request, &Cancel::never())
    }

    fn generate_command_with(
        &self,
        request: &CommandRequest,
        cancel: &Cancel,
    ) -> Result<GeneratedCommand, GeneratorError> {
        // Bad requests are the user's to fix, not a reason to try another backend.
        if request.prompt.trim().is_empty() {
            return Err(GeneratorError::EmptyPrompt);
        }
        match self.try_remote(request, cancel) {
            Ok(answer) => Ok(answer),
            Err(RemoteEnd::Stopped(stop, last)) => {
                let mut err = GeneratorError::stopped(stop, &self.remote_label(), cancel);
                if let (GeneratorError::TimedOut { detail, .. }, Some(last)) = (&mut err, last) {
                    *detail = format!("last failure: {last}");
                }
                Err(err)
            }
            Err(RemoteEnd::Failed(failure, attempts)) => {
                let reason = fallback_reason(&failure, attempts);
                tracing::info!(backend = self.remote.name(), reason = %reason, max_retries = MAX_RETRIES, "falling back to the embedded model");
                match self.embedded.generate_command_with(request, cancel) {
                    Ok(mut answer) => {
                        answer.fallback_reason = Some(reason);
                        Ok(answer)
                    }
                    // The deadline passed in the fallback: say why the fallback ran at all.
                    Err(GeneratorError::TimedOut { secs, .. }) => Err(GeneratorError::TimedOut {
                        backend: "the embedded model".into(),
                        secs,
                        detail: format!(
                            "it was answering because {} failed: {reason}",
                            self.remote_label()
                        ),
                    }),
                    Err(GeneratorError::Cancelled) => Err(GeneratorError::Cancelled),
                    Err(e) => Err(GeneratorError::Remote {
                        backend: self.remote.name().into(),
                        code: failure.code(),
                        message: format!("{reason}; the embedded fallback failed too: {e}"),
                    }),
                }
            }
        }
    }

    fn is_available(&self) -> bool {
        true
    }

    fn backend_info(&self) -> BackendInfo {
        let mut info = self.embedded.backend_info();
        info.name = format!("{} (falls back to {})", self.remote.name(), info.name);
        info.engine = self.remote.url().to_string();
        info
    }

    fn shutdown(&self) {
        self.embedded.shutdown();
    }
}
