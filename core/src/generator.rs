//! The backend-neutral API: what a request holds, what a generated command holds, and the
//! [`CommandGenerator`] trait that every backend (embedded, Ollama, vLLM) implements.

use crate::error::GeneratorError;
use crate::shell::ShellType;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Whether the system's core utilities are GNU (Linux) or BSD (macOS, *BSD) flavoured.
/// Their flags differ (`sed -i`, `stat -c` vs `stat -f`, `date -d`), so the model must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolFlavor {
    Gnu,
    Bsd,
    Windows,
}

/// Where the command will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionContext {
    /// `linux`, `macos`, `windows`, … as in `std::env::consts::OS`.
    pub os: String,
    pub tool_flavor: ToolFlavor,
    /// The directory the command will run in, when known.
    pub cwd: Option<PathBuf>,
}

impl ExecutionContext {
    /// The context of the current process.
    pub fn current() -> Self {
        Self::for_os(std::env::consts::OS, std::env::current_dir().ok())
    }

    pub fn for_os(os: &str, cwd: Option<PathBuf>) -> Self {
        let tool_flavor = match os {
            "macos" | "ios" | "freebsd" | "openbsd" | "netbsd" | "dragonfly" => ToolFlavor::Bsd,
            "windows" => ToolFlavor::Windows,
            _ => ToolFlavor::Gnu,
        };
        Self {
            os: os.to_owned(),
            tool_flavor,
            cwd,
        }
    }
}

/// One request for a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The user's words.
    pub prompt: String,
    pub shell: ShellType,
    pub context: ExecutionContext,
    /// What the request's folder holds, when the frontend looked already (the accuracy
    /// harness, whose folder is a sandbox's); otherwise the embedded backend looks itself
    /// when its settings ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surroundings: Option<crate::workdir::Surroundings>,
}

impl CommandRequest {
    pub fn new(prompt: impl Into<String>, shell: ShellType) -> Self {
        Self {
            prompt: prompt.into(),
            shell,
            context: ExecutionContext::current(),
            surroundings: None,
        }
    }

    pub fn with_context(mut self, context: ExecutionContext) -> Self {
        self.context = context;
        self
    }

    pub fn with_surroundings(mut self, surroundings: crate::workdir::Surroundings) -> Self {
        self.surroundings = Some(surroundings);
        self
    }
}

/// Wall-clock time spent in each phase, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Loading the model; zero when it was already warm.
    pub load: f64,
    /// Processing the prompt (only the uncached part when the prefix cache hits).
    pub prefill: f64,
    /// Generating the reply.
    pub decode: f64,
    /// Everything, from call to return.
    pub total: f64,
}

/// Token counts behind the timings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Prompt tokens in total.
    pub prompt: usize,
    /// Prompt tokens served from the prefix cache instead of being computed.
    pub cached: usize,
    /// Tokens generated.
    pub generated: usize,
}

/// A command produced by a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedCommand {
    pub command: String,
    /// A short explanation, when one was asked for.
    pub explanation: Option<String>,
    /// The backend's name (`embedded`, `ollama`, `vllm`).
    pub backend: String,
    /// The model's name (for the embedded backend, its file name).
    pub model: String,
    pub timings: Timings,
    pub tokens: TokenCounts,
    /// Things the user should know about this answer (e.g. the reply needed repair).
    pub warnings: Vec<String>,
    /// The model's reply before the command was parsed out of it.
    pub raw_output: String,
    /// Set when a remote backend failed and the embedded model answered instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Issue 20: every candidate command the model wrote for this request, in its order (the
    /// first is the greedy one, which `command` starts as), those that failed the command
    /// check left out; empty when one command was decoded. [`crate::select`] chooses among
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
}

/// Describes a backend for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    pub model: String,
    /// The engine doing the math (`candle-cpu`, `mlx`, or a server URL).
    pub engine: String,
    /// Whether the model is in memory right now.
    pub loaded: bool,
}

/// Something that turns a [`CommandRequest`] into a [`GeneratedCommand`].
///
/// Implementations are shared between threads; the embedded backend serialises requests
/// internally. Calls block, so async frontends run them on a blocking thread.
pub trait CommandGenerator: Send + Sync {
    fn generate_command(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, GeneratorError>;

    /// [`generate_command`](Self::generate_command) that stops early when `cancel` says so:
    /// past its deadline with [`GeneratorError::TimedOut`] naming the backend, or
    /// [`GeneratorError::Cancelled`] once nobody wants the answer.
    ///
    /// The default checks only before it starts; backends with long work (the embedded
    /// model's token loop, a remote chain's retries) check between steps.
    fn generate_command_with(
        &self,
        request: &CommandRequest,
        cancel: &crate::cancel::Cancel,
    ) -> Result<GeneratedCommand, GeneratorError> {
        cancel
            .check()
            .map_err(|s| GeneratorError::stopped(s, &self.backend_info().name, cancel))?;
        self.generate_command(request)
    }

    /// Whether a call may succeed right now. Cheap: the embedded backend does no I/O here.
    fn is_available(&self) -> bool;

    fn backend_info(&self) -> BackendInfo;

    /// Releases what the backend holds (model weights, connections). A later request
    /// starts it again.
    fn shutdown(&self);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::linux("linux", ToolFlavor::Gnu)]
    #[case::macos("macos", ToolFlavor::Bsd)]
    #[case::freebsd("freebsd", ToolFlavor::Bsd)]
    #[case::windows("windows", ToolFlavor::Windows)]
    fn flavor_follows_os(#[case] os: &str, #[case] want: ToolFlavor) {
        assert_eq!(ExecutionContext::for_os(os, None).tool_flavor, want);
    }
}
