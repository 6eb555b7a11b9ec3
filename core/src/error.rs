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
}

impl GeneratorError {
    /// Stable identifier for scripts and UIs (`{code, message}`); never reworded once released.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyPrompt => "empty_prompt",
            Self::PromptTooLong { .. } => "prompt_too_long",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::NotGguf { .. } => "model_not_gguf",
            Self::CorruptModel { .. } => "model_corrupt",
            Self::UnsupportedArchitecture { .. } => "model_unsupported_architecture",
            Self::Io { .. } => "io",
            Self::InvalidConfig(_) => "invalid_config",
            Self::NoCommand { .. } => "no_command",
            Self::Inference(_) => "inference",
            Self::Remote { code, .. } => code,
        }
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
    fn codes_are_distinct() {
        let errs = [
            GeneratorError::EmptyPrompt,
            GeneratorError::PromptTooLong {
                length: 1,
                limit: 0,
                unit: "tokens",
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
        ];
        let mut codes: Vec<_> = errs.iter().map(GeneratorError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errs.len());
    }

    #[test]
    fn no_command_message_is_bounded() {
        let raw = "x".repeat(10_000);
        let msg = GeneratorError::NoCommand { raw }.to_string();
        assert!(msg.len() < 300, "{msg}");
    }
}
