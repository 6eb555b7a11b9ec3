//! The one error type every backend returns, with stable machine-readable codes.

use std::path::PathBuf;

/// Why a command could not be generated.
///
/// Each variant's message says what went wrong and what to do next; [`GeneratorError::code`]
/// gives a stable identifier that frontends map to exit codes or UI states.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("the request is empty: describe the command you want in plain words")]
    EmptyPrompt,

    #[error("the request is too long: {length} {unit}, the limit is {limit}; shorten it")]
    PromptTooLong {
        length: usize,
        limit: usize,
        unit: &'static str,
    },

    /// The model's context window cannot hold the fixed instructions, the request and the
    /// reply budget together. Not the request's fault when the instructions and the reply
    /// alone (nearly) fill the window, so the message names every part.
    #[error(
        "the model's context window is too small for this prompt: it holds {context} tokens, and the \
         instructions take {prefix}, the request {request}, the reply up to {reply}; {}",
        context_advice(*.context, *.prefix, *.request, *.reply)
    )]
    ContextTooSmall {
        context: usize,
        prefix: usize,
        request: usize,
        reply: usize,
    },

    #[error("no model file found (looked in: {})", display_paths(.searched))]
    ModelNotFound { searched: Vec<PathBuf> },

    #[error("{}: not a GGUF model file ({reason})", .path.display())]
    NotGguf { path: PathBuf, reason: String },

    #[error("{}: the model file is truncated or corrupt ({reason}); delete it and download it again", .path.display())]
    CorruptModel { path: PathBuf, reason: String },

    #[error(
        "{}: model architecture `{arch}` is not supported (supported: {})",
        .path.display(),
        crate::embedded::SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String },

    #[error("could not read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    #[error("the model's reply held no usable command (it said: {})", truncate_for_display(.raw, 120))]
    NoCommand { raw: String },

    #[error("inference failed: {0}")]
    Inference(String),

    #[error("{message}")]
    Remote {
        backend: String,
        message: String,
        /// `remote_failed`, or a narrower code such as `reply_too_large`.
        code: &'static str,
    },

    /// The request's deadline (`timeout_secs`, `--timeout`, `CARO_TIMEOUT`) passed; `backend`
    /// names what was working on it then.
    #[error("{backend} gave no answer within the {secs} s limit for a request{}", detail_suffix(.detail))]
    TimedOut {
        backend: String,
        secs: u64,
        /// What had happened by then (a remote failure before the fallback), or empty.
        detail: String,
    },

    /// Nobody wants the answer any more: the client disconnected, or the daemon is stopping.
    #[error("the request was cancelled")]
    Cancelled,
}

impl From<caro_engine::EngineError> for GeneratorError {
    /// The engine's errors keep their meaning here: each maps to the variant (and so the code
    /// and hint) it had before the engine was its own crate.
    fn from(e: caro_engine::EngineError) -> Self {
        use caro_engine::EngineError as E;
        match e {
            E::ModelNotFound { path } => Self::ModelNotFound {
                searched: vec![path],
            },
            E::NotGguf { path, reason } => Self::NotGguf { path, reason },
            E::CorruptModel { path, reason } => Self::CorruptModel { path, reason },
            E::Io { path, source } => Self::Io { path, source },
            E::MlxMissing => Self::InvalidConfig(caro_engine::MLX_MISSING.to_owned()),
            E::Inference(what) => Self::Inference(what),
        }
    }
}

const TIMEOUT_HINT: &str = "give it longer with --timeout SECS (or CARO_TIMEOUT, or timeout_secs in \
     the config file; 0 = no limit), or check the server with `caro --list-backends`";

/// The codes of a request that ran out of time: the chain's, or the wait for the daemon.
fn is_timeout_code(code: &str) -> bool {
    matches!(code, "timed_out" | "daemon_timeout")
}

impl GeneratorError {
    /// The request ran out of its time: the deadline here, or a daemon's or server's answer
    /// that it did (one exit code for them all in the CLI).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::TimedOut { .. } => true,
            Self::Remote { code, .. } => is_timeout_code(code),
            _ => false,
        }
    }

    /// Stable identifier for scripts and UIs (`{code, message}`); never reworded once released.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyPrompt => "empty_prompt",
            Self::PromptTooLong { .. } => "prompt_too_long",
            Self::ContextTooSmall { .. } => "context_too_small",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::NotGguf { .. } => "model_not_gguf",
            Self::CorruptModel { .. } => "model_corrupt",
            Self::UnsupportedArchitecture { .. } => "model_unsupported_architecture",
            Self::Io { .. } => "io",
            Self::InvalidConfig(_) => "invalid_config",
            Self::NoCommand { .. } => "no_command",
            Self::Inference(_) => "inference",
            Self::Remote { code, .. } => code,
            Self::TimedOut { .. } => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// What the user should do next, where the message alone does not say: one hint per code,
    /// shown by the CLI under the error and by the popup beside it.
    pub fn hint(&self) -> Option<String> {
        let fetch = "run `caro model pull` (it downloads and checks the 1.1 GB Qwen2.5-Coder-1.5B GGUF \
                 into caro's cache), or pass --model-path / set CARO_MODEL_PATH to a GGUF you have";
        match self {
        Self::TimedOut { .. } => Some(TIMEOUT_HINT.to_owned()),
        Self::Remote { code, .. } if is_timeout_code(code) => {
            Some(if *code == "daemon_timeout" {
                "the daemon may be stuck: `caro status` shows it; restart `caro serve`, or pass \
                 --no-daemon"
                    .to_owned()
            } else {
                TIMEOUT_HINT.to_owned()
            })
        }
        Self::ModelNotFound { .. } => Some(fetch.to_owned()),
        Self::CorruptModel { .. } => Some(format!("delete the file, then {fetch}")),
        Self::NotGguf { .. } => Some(
            "caro needs a GGUF model file (for example qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)"
                .to_owned(),
        ),
        Self::UnsupportedArchitecture { .. } => Some(
            "use a Qwen2 or Llama family GGUF, such as the default Qwen2.5-Coder-1.5B-Instruct"
                .to_owned(),
        ),
        Self::EmptyPrompt => {
            Some("example: caro \"find files larger than 100MB\"".to_owned())
        }
        Self::Io { .. } => Some(
            "check that the file is readable by you (permissions) and on a healthy disk, or point \
             --model-path at another copy"
                .to_owned(),
        ),
        Self::Inference(_) => Some(
            "try again; if it keeps failing, run with -vv and report the log, or try --temperature 0"
                .to_owned(),
        ),
        Self::Remote { .. } => Some(
            "`caro --list-backends` shows what is reachable; `caro model pull` installs the embedded \
             model so a dead server never leaves you without an answer"
                .to_owned(),
        ),
        Self::ContextTooSmall { .. } => Some(
            "the reply budget is --max-tokens, or max_tokens in [embedded] in the config file \
             (default 100); `caro model list` shows the other models"
                .to_owned(),
        ),
        Self::NoCommand { .. } => Some(
            "rephrase the request more concretely, or try again with --temperature 0".to_owned(),
        ),
        Self::PromptTooLong { .. } => Some(
            "ask for one command at a time, and leave out pasted output; the command can be revised \
             afterwards"
                .to_owned(),
        ),
        Self::InvalidConfig(_) => Some(
            "fix the setting named above in the config file (`caro status` names the file; \
             docs/USER_GUIDE.md lists every setting), or the CARO_* variable that set it"
                .to_owned(),
        ),
        Self::Cancelled => None,
    }
    }

    /// The error for work that `cancel` stopped, naming the `backend` that was working.
    pub fn stopped(
        stop: crate::cancel::Stop,
        backend: &str,
        cancel: &crate::cancel::Cancel,
    ) -> Self {
        match stop {
            crate::cancel::Stop::Cancelled => Self::Cancelled,
            crate::cancel::Stop::DeadlineExceeded => Self::TimedOut {
                backend: backend.to_owned(),
                secs: cancel.budget().map_or(0, |b| b.as_secs_f64().ceil() as u64),
                detail: String::new(),
            },
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// What to change when the context window is too small: the reply budget when lowering it
/// is enough, else the model.
fn context_advice(context: usize, prefix: usize, request: usize, reply: usize) -> String {
    let room = context.saturating_sub(prefix + request);
    if room > 0 && room < reply {
        format!(
            "lower the reply budget to {room} tokens or less (--max-tokens, or max_tokens in \
             [embedded] in the config file), or use a model with a larger context window"
        )
    } else {
        "use a model with a larger context window, or shorten the request".to_owned()
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shortens model output for an error line, on a char boundary.
pub(crate) fn truncate_for_display(s: &str, max_chars: usize) -> String {
    let s = s.trim();
    if s.is_empty() {
        return "nothing".to_owned();
    }
    let mut out: String = s.chars().take(max_chars).collect();
    if s.chars().count() > max_chars {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_or_chain_timeout_is_a_timeout_and_a_server_failure_is_not() {
        let remote = |code| GeneratorError::Remote {
            backend: "daemon".to_owned(),
            message: String::new(),
            code,
        };
        assert!(remote("timed_out").is_timeout());
        assert!(remote("daemon_timeout").is_timeout());
        assert!(!remote("remote_failed").is_timeout());
        assert!(!GeneratorError::EmptyPrompt.is_timeout());
    }

    #[test]
    fn codes_are_distinct() {
        let errs = [
            GeneratorError::EmptyPrompt,
            GeneratorError::PromptTooLong {
                length: 1,
                limit: 0,
                unit: "tokens",
            },
            GeneratorError::ContextTooSmall {
                context: 512,
                prefix: 400,
                request: 11,
                reply: 200,
            },
            GeneratorError::ModelNotFound { searched: vec![] },
            GeneratorError::NotGguf {
                path: "a".into(),
                reason: String::new(),
            },
            GeneratorError::CorruptModel {
                path: "a".into(),
                reason: String::new(),
            },
            GeneratorError::UnsupportedArchitecture {
                path: "a".into(),
                arch: "x".into(),
            },
            GeneratorError::Io {
                path: "a".into(),
                source: std::io::Error::other("x"),
            },
            GeneratorError::InvalidConfig(String::new()),
            GeneratorError::NoCommand { raw: String::new() },
            GeneratorError::Inference(String::new()),
            GeneratorError::TimedOut {
                backend: "vllm".into(),
                secs: 1,
                detail: String::new(),
            },
            GeneratorError::Cancelled,
        ];
        let mut codes: Vec<_> = errs.iter().map(GeneratorError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errs.len());
        // Every code but a cancellation (nobody is waiting for it) says what to do next.
        for e in &errs {
            assert_eq!(e.hint().is_some(), e.code() != "cancelled", "{}", e.code());
        }
    }

    // Issue 17: "the request is too long: 11 tokens, the limit is 0" blamed an 11-token
    // request for a reply budget that filled the model's context.
    #[test]
    fn context_too_small_names_the_sizes_and_the_fix() {
        let msg = GeneratorError::ContextTooSmall {
            context: 4096,
            prefix: 300,
            request: 11,
            reply: 4000,
        }
        .to_string();
        for part in [
            "context window",
            "4096",
            "300",
            "11",
            "4000",
            "--max-tokens",
            "3785",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        let msg = GeneratorError::ContextTooSmall {
            context: 256,
            prefix: 300,
            request: 11,
            reply: 10,
        }
        .to_string();
        assert!(msg.contains("larger context window"), "{msg}");
        assert!(!msg.contains("--max-tokens"), "{msg}");
    }

    #[test]
    fn no_command_message_is_bounded() {
        let raw = "x".repeat(10_000);
        let msg = GeneratorError::NoCommand { raw }.to_string();
        assert!(msg.len() < 300, "{msg}");
    }
}
