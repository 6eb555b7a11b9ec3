//! Why the engine could not open a model file or run it.

use std::path::PathBuf;

/// Why the engine could not open a model file or run it. caro-core turns each into its
/// `GeneratorError`, which carries the stable code and the hint the user sees.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{}: no such model file", .path.display())]
    ModelNotFound { path: PathBuf },

    #[error("{}: not a GGUF model file ({reason})", .path.display())]
    NotGguf { path: PathBuf, reason: String },

    #[error("{}: the model file is truncated or corrupt ({reason})", .path.display())]
    CorruptModel { path: PathBuf, reason: String },

    #[error("could not read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}", crate::MLX_MISSING)]
    MlxMissing,

    /// The tokenizer, the chat template or the forward pass failed.
    #[error("inference failed: {0}")]
    Inference(String),
}
