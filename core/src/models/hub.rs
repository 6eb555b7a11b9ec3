//! Downloads from the Hugging Face hub (or the mirror HF_ENDPOINT names) with the `hf-hub` crate.
//!
//! hf-hub keeps its own cache layout under `<cache>/.hub`; a finished, verified file is moved
//! out of it into `<cache>/<file>`, so the hub layout only ever holds partial downloads.

use super::error::ModelError;
use super::manifest::ModelManifest;
use super::pull::{ProgressFn, PullEvent, PullOptions, SourceKind};
use hf_hub::api::tokio::{ApiBuilder, ApiError, Progress};
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const HUB_DIR: &str = ".hub";
const PART_SUFFIX: &str = ".sync.part";

fn repo(m: &ModelManifest) -> Repo {
    Repo::with_revision(m.hub_repo.clone(), RepoType::Model, m.hub_revision.clone())
}

fn repo_dir(dir: &Path, m: &ModelManifest) -> PathBuf {
    dir.join(HUB_DIR).join(repo(m).folder_name())
}

/// Bytes committed in an interrupted hub download: hf-hub writes the count as a little-endian
/// u64 after the file's `size` bytes in `<blob>.sync.part`.
pub(crate) fn partial_bytes(dir: &Path, m: &ModelManifest) -> u64 {
    let Ok(entries) = std::fs::read_dir(repo_dir(dir, m).join("blobs")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(PART_SUFFIX))
        .filter_map(|e| committed(&e.path(), m.size))
        .max()
        .unwrap_or(0)
}

fn committed(part: &Path, size: u64) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(part).ok()?;
    if f.metadata().ok()?.len() != size + 8 {
        return None;
    }
    f.seek(SeekFrom::Start(size)).ok()?;
    let mut b = [0u8; 8];
    f.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b).min(size))
}

/// Drops the hub layout's pointers once the file has been moved out.
pub(crate) fn clean(dir: &Path, m: &ModelManifest) {
    let _ = std::fs::remove_dir_all(repo_dir(dir, m).join("snapshots"));
}

/// Removes everything the hub layout holds for this model, partial downloads included.
pub(crate) fn remove_all(dir: &Path, m: &ModelManifest) -> Vec<PathBuf> {
    let d = repo_dir(dir, m);
    match std::fs::remove_dir_all(&d) {
        Ok(()) => vec![d],
        Err(_) => vec![],
    }
}

/// Forwards hf-hub's progress callbacks as [`PullEvent`]s. hf-hub clones it per chunk, so the
/// count is shared.
#[derive(Clone)]
struct HubProgress {
    emit: Option<ProgressFn>,
    done: Arc<AtomicU64>,
    total: u64,
    resumed_from: u64,
}

impl Progress for HubProgress {
    async fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        if let Some(e) = &self.emit {
            e(&PullEvent::Started {
                source: SourceKind::Hub,
                total: self.total,
                resumed_from: self.resumed_from,
            });
        }
    }

    async fn update(&mut self, size: usize) {
        let done = self.done.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
        if let Some(e) = &self.emit {
            e(&PullEvent::Progress {
                done: done.min(self.total),
                total: self.total,
            });
        }
    }

    async fn finish(&mut self) {}
}

/// Downloads the file into the hub layout and returns the finished blob, not yet verified.
pub(crate) fn download(
    dir: &Path,
    m: &ModelManifest,
    opts: &PullOptions,
) -> Result<PathBuf, ModelError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ModelError::io(dir, e))?;
    rt.block_on(download_async(dir, m, opts))
}

async fn download_async(
    dir: &Path,
    m: &ModelManifest,
    opts: &PullOptions,
) -> Result<PathBuf, ModelError> {
    let url = m.hub_url(&opts.endpoint);
    probe(&url, &opts.endpoint, opts.connect_timeout).await?;

    let cache = Cache::new(dir.join(HUB_DIR));
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(opts.endpoint.trim_end_matches('/').to_owned())
        .with_progress(false)
        .with_max_files(opts.parallel.max(1))
        .with_chunk_size(Some(opts.chunk_size.max(1)))
        .with_token(token.or_else(|| Cache::new(dir.join(HUB_DIR)).token()))
        .with_user_agent("caro", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| hub_error(dir, &opts.endpoint, e))?;
    let progress = HubProgress {
        emit: opts.progress.clone(),
        done: Arc::new(AtomicU64::new(0)),
        total: m.size,
        resumed_from: partial_bytes(dir, m),
    };
    let api_repo = api.repo(repo(m));
    let fetch = api_repo.download_with_progress(&m.hub_file, progress);
    tokio::pin!(fetch);
    let pointer = loop {
        tokio::select! {
            r = &mut fetch => break r.map_err(|e| hub_error(dir, &opts.endpoint, e))?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if opts.cancelled() {
                    // Dropping the future stops the transfer; committed chunks stay for a resume.
                    return Err(ModelError::Cancelled);
                }
            }
        }
    };
    // The pointer is a symlink into blobs/ (or the blob itself where symlinks are not allowed).
    std::fs::canonicalize(&pointer).map_err(|e| ModelError::io(&pointer, e))
}

/// One HEAD request, so an unreachable or misconfigured hub fails fast and clearly.
async fn probe(url: &str, endpoint: &str, connect_timeout: Duration) -> Result<(), ModelError> {
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(connect_timeout * 2)
        .build()
        .map_err(|e| ModelError::HubUnreachable {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?;
    let resp = client
        .head(url)
        .send()
        .await
        .map_err(|e| ModelError::HubUnreachable {
            endpoint: endpoint.into(),
            detail: root_cause(&e),
        })?;
    if !resp.status().is_success() {
        return Err(ModelError::HubStatus {
            url: url.into(),
            status: resp.status().as_u16(),
        });
    }
    Ok(())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg = format!("{msg}: {s}");
        cur = s.source();
    }
    msg
}

fn hub_error(dir: &Path, endpoint: &str, e: ApiError) -> ModelError {
    match e {
        ApiError::IoError(io) => ModelError::io(dir.join(HUB_DIR), io),
        ApiError::RequestError(r) if r.is_connect() || r.is_timeout() => {
            ModelError::HubUnreachable {
                endpoint: endpoint.into(),
                detail: root_cause(&r),
            }
        }
        ApiError::RequestError(r) if r.status().is_some() => ModelError::HubStatus {
            url: r.url().map(ToString::to_string).unwrap_or_default(),
            status: r.status().map(|s| s.as_u16()).unwrap_or_default(),
        },
        other => ModelError::HubDownload {
            detail: root_cause(&other),
        },
    }
}
