//! Reads the `[safety]` table of the user's config file and builds the validator from it, with
//! `--mode` on top. A broken file is an error that names the file; it is never rewritten here.

use caro_core::config::config_file_path;
use caro_core::safety::{SafetyConfig, SafetyMode, SafetyValidator};
use std::path::PathBuf;

#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config file {}: {}", self.path.display(), self.message)
    }
}

pub const CONFIG_HINT: &str = "fix the file (or move it aside to use the defaults); `caro check --help` shows the [safety] keys";

/// The validator for this run: the config file's `[safety]` table, then `--mode`.
pub fn validator(mode: Option<SafetyMode>) -> Result<SafetyValidator, ConfigError> {
    let config = match config_file_path() {
        Some(path) if path.is_file() => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let parsed = SafetyConfig::from_toml(&text).map_err(|e| ConfigError {
                path: path.clone(),
                message: e.to_string(),
            })?;
            (parsed, path)
        }
        _ => (SafetyConfig::default(), PathBuf::new()),
    };
    let (config, path) = config;
    let v = SafetyValidator::from_config(&config).map_err(|e| ConfigError {
        path,
        message: e.to_string(),
    })?;
    Ok(match mode {
        Some(m) => v.with_mode(m),
        None => v,
    })
}
