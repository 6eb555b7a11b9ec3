//! A small local stats file (last and average inference time) for `caro status`. Best effort:
//! a stats file that cannot be read or written never fails a request.

use crate::models;
use crate::settings::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub total_ms: f64,
    pub last_ms: f64,
    pub last_backend: String,
    /// Seconds since the Unix epoch.
    pub last_at: u64,
}

pub fn path() -> Option<PathBuf> {
    let dir = models::cache_dir()?;
    let base = if dir.ends_with("models") {
        dir.parent().map(PathBuf::from).unwrap_or(dir)
    } else {
        dir
    };
    Some(base.join("stats.json"))
}

pub fn read() -> Option<Stats> {
    read_from(&path()?)
}

fn read_from(p: &Path) -> Option<Stats> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// Counts one answer that took `ms` from `backend` in the stats file at [`path`].
pub fn record(ms: f64, backend: &str) {
    if let Some(p) = path() {
        record_to(&p, ms, backend);
    }
}

/// [`record`] into the stats file at `p`.
pub fn record_to(p: &Path, ms: f64, backend: &str) {
    let mut s = read_from(p).unwrap_or_default();
    s.count += 1;
    s.total_ms += ms;
    s.last_ms = ms;
    s.last_backend = backend.to_owned();
    s.last_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(text) = serde_json::to_vec_pretty(&s)
        && let Err(e) = write_atomic(p, &text)
    {
        tracing::debug!("stats not saved: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_counts_and_a_damaged_file_starts_over() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("stats.json");
        record_to(&p, 100.0, "embedded");
        record_to(&p, 300.0, "ollama");
        let s = read_from(&p).expect("stats");
        assert_eq!((s.count, s.total_ms, s.last_ms), (2, 400.0, 300.0));
        assert_eq!(s.last_backend, "ollama");
        std::fs::write(&p, "{not json").expect("damage");
        record_to(&p, 50.0, "embedded");
        assert_eq!(read_from(&p).expect("stats").count, 1);
    }
}
