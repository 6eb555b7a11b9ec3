//! Loads the config file (migrating older layouts, with a backup), resolves it with the
//! environment and flags through caro-core's one resolver, and builds the safety validator.
//! A broken file is an error that names the file; it is never rewritten.

use caro_core::safety::SafetyValidator;
use caro_core::settings::config_file_path;
use caro_core::settings::{self, Overrides, Resolved};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config file {}", self.message)
    }
}

pub const CONFIG_HINT: &str =
    "fix the file, or move it aside to use the defaults; docs/USER_GUIDE.md lists every key";

/// Everything a run needs from configuration.
#[derive(Debug)]
pub struct RunSettings {
    pub resolved: Resolved,
    pub validator: SafetyValidator,
    pub path: Option<PathBuf>,
}

pub fn path() -> Option<PathBuf> {
    config_file_path()
}

/// Loads, migrates and resolves. Migration notes and config warnings go to stderr.
pub fn load(overrides: &Overrides) -> Result<RunSettings, ConfigError> {
    let (config, path) = match path() {
        Some(p) => {
            let loaded = settings::load(&p).map_err(|e| ConfigError {
                message: e.to_string(),
            })?;
            if let Some(m) = &loaded.migration {
                let mut err = anstream::stderr().lock();
                let _ = writeln!(
                    err,
                    "note: migrated {} from the {} layout; the original is kept at {}",
                    p.display(),
                    m.from,
                    m.backup.display()
                );
                for n in &m.notes {
                    let _ = writeln!(err, "  {n}");
                }
            }
            let mut c = loaded.config;
            if loaded.path.is_none() {
                c.default_backend = None;
            }
            (c, loaded.path)
        }
        None => (settings::CaroConfig::default(), None),
    };
    // Without a file, "embedded" is caro's default, not the user's choice.
    let mut config = config;
    if path.is_none() {
        config.default_backend = None;
    }
    let resolved = settings::resolve(config, |k| std::env::var(k).ok(), overrides)
        .map_err(|e| ConfigError { message: e })?;
    let validator = resolved.validator().map_err(|e| ConfigError {
        message: format!(
            "{}: {e}",
            path.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    })?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    Ok(RunSettings {
        resolved,
        validator,
        path,
    })
}
