//! The warm-model daemon: caro-core served over a local socket (a Unix domain socket with mode
//! 0600 in the user's runtime dir, or a named pipe on Windows), so that `caro` answers from a
//! model that is already loaded. The tray app and `caro serve` run the server; the CLI is a
//! client that falls back to in-process inference when no daemon answers.

mod client;
#[cfg(unix)]
mod place;
pub mod protocol;
mod server;

pub use client::{DaemonClient, WAIT_TICK};
pub use protocol::{DaemonStatus, PROTOCOL_VERSION};
pub use server::{Daemon, DaemonOptions, IDLE_TIMEOUT, MAX_CONNECTIONS, Service, Serving};

/// Whether a failed socket read only ran into its timeout (or a signal): what was read so far
/// stands, and the caller decides whether to wait on.
fn still_waiting(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Whether a daemon holds the lifetime lock of `socket`: true for one too busy to answer a
/// ping, so `caro status` and a second `caro serve` see it as running.
pub fn lock_held(socket: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        place::lock_held(socket)
    }
    #[cfg(not(unix))]
    {
        let _ = socket;
        false
    }
}

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another caro daemon is already serving {}", .0.display())]
    AlreadyRunning(PathBuf),
    #[error("no caro daemon at {}: {source}", path.display())]
    NotRunning {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} exists and is not a socket; caro replaces only a socket that a stopped caro left behind",
        .0.display()
    )]
    PathTaken(PathBuf),
    #[error("refusing to put the socket in {}: {reason}", dir.display())]
    UnsafeDir { dir: PathBuf, reason: String },
    /// No answer within the client's bound: the daemon is frozen or far too slow.
    #[error(
        "the caro daemon at {} gave no answer in {} s",
        path.display(),
        waited.as_secs()
    )]
    TimedOut {
        path: PathBuf,
        waited: std::time::Duration,
    },
    #[error("the daemon sent something this caro cannot read: {0}")]
    Protocol(String),
    /// The daemon answered with an error.
    #[error("{message}")]
    Remote { code: String, message: String },
    /// The thread serving the socket panicked; the socket is gone with it.
    #[error("the caro daemon's socket service stopped unexpectedly: {0}")]
    Crashed(String),
}

impl DaemonError {
    pub fn code(&self) -> &str {
        match self {
            Self::AlreadyRunning(_) => "daemon_running",
            Self::PathTaken(_) => "socket_path_taken",
            Self::UnsafeDir { .. } => "socket_dir_unsafe",
            Self::NotRunning { .. } => "daemon_not_running",
            Self::Io { .. } => "daemon_io",
            Self::TimedOut { .. } => "daemon_timeout",
            Self::Protocol(_) => "daemon_protocol",
            Self::Remote { code, .. } => code,
            Self::Crashed(_) => "daemon_crashed",
        }
    }

    /// What the user can do next, where there is one thing to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyRunning(_) => Some(
                "`caro status` shows the daemon that is running; stop it first, or pass --socket PATH",
            ),
            Self::PathTaken(_) | Self::UnsafeDir { .. } => Some(
                "pass --socket (or set CARO_SOCKET) to a new path in a folder only you can write, \
                 such as $XDG_RUNTIME_DIR/caro/caro.sock",
            ),
            Self::NotRunning { .. } => Some("start one with `caro serve`, or run without it"),
            Self::Crashed(_) => Some(
                "start it again (restart the tray app, or `caro serve`); run with \
                 CARO_LOG=caro_core=debug to see why it stopped",
            ),
            Self::TimedOut { .. } => Some(
                "`caro status` shows whether the daemon is busy; restart it (stop `caro serve` \
                 and start it again), pass --no-daemon, or raise --timeout",
            ),
            _ => None,
        }
    }
}

/// Where the daemon listens: `$CARO_SOCKET`, else `caro/caro.sock` in the user's runtime dir
/// (`$XDG_RUNTIME_DIR`, private to the user), else in caro's cache dir. On Windows the path
/// names a pipe, `\\.\pipe\caro-<user>`.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CARO_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if cfg!(windows) {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        return PathBuf::from(format!(r"\\.\pipe\caro-{user}"));
    }
    dirs::runtime_dir()
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("caro")
        .join("caro.sock")
}

/// The interprocess name for a socket path.
fn socket_name(path: &std::path::Path) -> std::io::Result<interprocess::local_socket::Name<'_>> {
    #[cfg(windows)]
    {
        use interprocess::local_socket::{GenericNamespaced, ToNsName};
        let s = path.to_string_lossy();
        let short = s.strip_prefix(r"\\.\pipe\").unwrap_or(&s).to_owned();
        short.to_ns_name::<GenericNamespaced>()
    }
    #[cfg(not(windows))]
    {
        use interprocess::local_socket::{GenericFilePath, ToFsName};
        path.to_fs_name::<GenericFilePath>()
    }
}
