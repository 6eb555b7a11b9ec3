//! A small local stats file (last and average inference time) for `caro status`. Best effort:
//! a stats file that cannot be read or written never fails a request.

use caro_core::models;
use caro_core::settings::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    let text = std::fs::read_to_string(path()?).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn record(ms: f64, backend: &str) {
    let Some(p) = path() else { return };
    let mut s = read().unwrap_or_default();
    s.count += 1;
    s.total_ms += ms;
    s.last_ms = ms;
    s.last_backend = backend.to_owned();
    s.last_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(text) = serde_json::to_vec_pretty(&s)
        && let Err(e) = write_atomic(&p, &text)
    {
        tracing::debug!("stats not saved: {e}");
    }
}
