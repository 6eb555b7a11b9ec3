//! Documented exit codes, and the hint shown with each error.

use caro_core::GeneratorError;

pub const UNEXPECTED: u8 = 1;
pub const USAGE: u8 = 2;
pub const MODEL_MISSING: u8 = 3;
pub const MODEL_UNUSABLE: u8 = 4;
pub const BAD_REQUEST: u8 = 5;
pub const NO_COMMAND: u8 = 6;
pub const NOT_CONFIRMED: u8 = 7;
/// The safety gate blocked the command, or refused a destructive request.
pub const BLOCKED: u8 = 8;
pub const CONFIG_INVALID: u8 = 9;
/// A remote backend failed and the embedded fallback could not answer either.
pub const REMOTE_FAILED: u8 = 10;
/// The model was missing and no source could download it.
pub const DOWNLOAD_FAILED: u8 = 11;
/// No answer within the request's deadline (`--timeout`, `CARO_TIMEOUT`, `timeout_secs`).
pub const TIMED_OUT: u8 = 12;

const TIMEOUT_HINT: &str = "give it longer with --timeout SECS (or CARO_TIMEOUT, or timeout_secs in \
     the config file; 0 = no limit), or check the server with `caro --list-backends`";

/// The codes of a request that ran out of time: the chain's, or the wait for the daemon.
fn is_timeout_code(code: &str) -> bool {
    matches!(code, "timed_out" | "daemon_timeout")
}

pub fn code_for(err: &GeneratorError) -> u8 {
    match err {
        GeneratorError::ModelNotFound { .. } => MODEL_MISSING,
        GeneratorError::NotGguf { .. }
        | GeneratorError::CorruptModel { .. }
        | GeneratorError::UnsupportedArchitecture { .. } => MODEL_UNUSABLE,
        GeneratorError::EmptyPrompt
        | GeneratorError::PromptTooLong { .. }
        | GeneratorError::ContextTooSmall { .. } => BAD_REQUEST,
        GeneratorError::InvalidConfig(_) => USAGE,
        GeneratorError::NoCommand { .. } | GeneratorError::Inference(_) => NO_COMMAND,
        GeneratorError::Io { .. } => MODEL_UNUSABLE,
        GeneratorError::TimedOut { .. } => TIMED_OUT,
        GeneratorError::Remote { code, .. } if is_timeout_code(code) => TIMED_OUT,
        GeneratorError::Remote { .. } => REMOTE_FAILED,
        GeneratorError::Cancelled => UNEXPECTED,
    }
}

/// What the user should do next, for errors where the message alone does not say.
pub fn hint_for(err: &GeneratorError) -> Option<String> {
    let fetch = "run `caro model pull` (it downloads and checks the 1.1 GB Qwen2.5-Coder-1.5B GGUF \
                 into caro's cache), or pass --model-path / set CARO_MODEL_PATH to a GGUF you have";
    match err {
        GeneratorError::TimedOut { .. } => Some(TIMEOUT_HINT.to_owned()),
        GeneratorError::Remote { code, .. } if is_timeout_code(code) => {
            Some(if *code == "daemon_timeout" {
                "the daemon may be stuck: `caro status` shows it; restart `caro serve`, or pass \
                 --no-daemon"
                    .to_owned()
            } else {
                TIMEOUT_HINT.to_owned()
            })
        }
        GeneratorError::ModelNotFound { .. } => Some(fetch.to_owned()),
        GeneratorError::CorruptModel { .. } => Some(format!("delete the file, then {fetch}")),
        GeneratorError::NotGguf { .. } => Some(
            "caro needs a GGUF model file (for example qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)"
                .to_owned(),
        ),
        GeneratorError::UnsupportedArchitecture { .. } => Some(
            "use a Qwen2 or Llama family GGUF, such as the default Qwen2.5-Coder-1.5B-Instruct"
                .to_owned(),
        ),
        GeneratorError::EmptyPrompt => {
            Some("example: caro \"find files larger than 100MB\"".to_owned())
        }
        GeneratorError::Io { .. } => Some(
            "check that the file is readable by you (permissions) and on a healthy disk, or point \
             --model-path at another copy"
                .to_owned(),
        ),
        GeneratorError::Inference(_) => Some(
            "try again; if it keeps failing, run with -vv and report the log, or try --temperature 0"
                .to_owned(),
        ),
        GeneratorError::Remote { .. } => Some(
            "`caro --list-backends` shows what is reachable; `caro model pull` installs the embedded \
             model so a dead server never leaves you without an answer"
                .to_owned(),
        ),
        GeneratorError::ContextTooSmall { .. } => Some(
            "the reply budget is --max-tokens, or max_tokens in [embedded] in the config file \
             (default 100); `caro model list` shows the other models"
                .to_owned(),
        ),
        GeneratorError::NoCommand { .. } => Some(
            "rephrase the request more concretely, or try again with --temperature 0".to_owned(),
        ),
        _ => None,
    }
}
