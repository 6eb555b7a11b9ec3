//! The fallback chain: a remote backend tried under the retry policy, then the embedded model,
//! with `backend` and `fallback_reason` set on the answer and logged.

use super::RemoteBackend;
use super::policy::{MAX_RETRIES, NextStep, RemoteFailure, next_step};
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

    /// Tries the remote backend under the policy; `Err` carries the last failure and how many
    /// attempts were made.
    fn try_remote(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, (RemoteFailure, u32)> {
        let mut retries = 0;
        loop {
            match self.remote.attempt(request) {
                Ok(answer) => return Ok(answer),
                Err(failure) => match next_step(&failure.kind, retries) {
                    NextStep::Retry { after } => {
                        tracing::info!(backend = self.remote.name(), retry = retries + 1, error = %failure, "retrying");
                        (self.sleep)(after);
                        retries += 1;
                    }
                    NextStep::FallBack => return Err((failure, retries + 1)),
                },
            }
        }
    }
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
        // Bad requests are the user's to fix, not a reason to try another backend.
        if request.prompt.trim().is_empty() {
            return Err(GeneratorError::EmptyPrompt);
        }
        match self.try_remote(request) {
            Ok(answer) => Ok(answer),
            Err((failure, attempts)) => {
                let reason = fallback_reason(&failure, attempts);
                tracing::info!(backend = self.remote.name(), reason = %reason, max_retries = MAX_RETRIES, "falling back to the embedded model");
                match self.embedded.generate_command(request) {
                    Ok(mut answer) => {
                        answer.fallback_reason = Some(reason);
                        Ok(answer)
                    }
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
