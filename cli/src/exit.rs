//! Documented exit codes for each error.

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

pub fn code_for(err: &GeneratorError) -> u8 {
    if err.is_timeout() {
        return TIMED_OUT;
    }
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
        GeneratorError::Remote { .. } => REMOTE_FAILED,
        GeneratorError::Cancelled => UNEXPECTED,
    }
}
