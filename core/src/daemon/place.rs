//! The socket's place on disk: a private folder, a lock held for the daemon's lifetime, and
//! only a stale socket ever replaced.
//!
//! Each rule here guards a user's files against a careless or unlucky `CARO_SOCKET`: a path
//! that names a document must not delete it, a shared folder such as `/tmp` must not be
//! chmodded, and a second daemon must not take over the socket of one that is busy.

use super::DaemonError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file beside a socket: `caro.sock` → `caro.sock.lock`.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether a daemon holds the lock for `socket`, even one too busy to answer a ping.
pub fn lock_held(socket: &Path) -> bool {
    let path = lock_path(socket);
    // Only a plain file: opening a FIFO someone left at the path would hang `caro status`.
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Makes `socket` ready to bind: its folder exists and is private to this user, this process
/// holds the lifetime lock, and nothing but a stale socket stands at the path. The returned
/// file holds the lock; dropping it releases it.
pub fn claim(socket: &Path) -> Result<File, DaemonError> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    private_dir(dir)?;
    let lock = take_lock(socket)?;
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DaemonError::Io {
                path: socket.to_owned(),
                source,
            });
        }
        // A socket at the path while we hold the lock, and that nobody listens on, was left by
        // a daemon that died: it is ours to replace. One that answers belongs to a live
        // program (an ssh-agent or D-Bus socket given by mistake) and is left alone.
        Ok(meta)
            if meta.file_type().is_socket()
                && std::os::unix::net::UnixStream::connect(socket)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused) =>
        {
            std::fs::remove_file(socket).map_err(|source| DaemonError::Io {
                path: socket.to_owned(),
                source,
            })?;
        }
        Ok(_) => return Err(DaemonError::PathTaken(socket.to_owned())),
    }
    Ok(lock)
}

/// Creates `dir` private (0700) when it does not exist; an existing one must already be this
/// user's and closed to others, since caro never changes the mode of a folder it did not make.
fn private_dir(dir: &Path) -> Result<(), DaemonError> {
    let unsafe_dir = |reason: String| DaemonError::UnsafeDir {
        dir: dir.to_owned(),
        reason,
    };
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| DaemonError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            // Someone may have made it first (`create` accepts an existing folder): check it
            // like any folder caro did not make.
            std::fs::metadata(dir).map_err(|source| DaemonError::Io {
                path: dir.to_owned(),
                source,
            })?
        }
        Err(source) => {
            return Err(DaemonError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a folder".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it belongs to user {}, not to you (user {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "other users can write to it (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

fn take_lock(socket: &Path) -> Result<File, DaemonError> {
    let path = lock_path(socket);
    let io = |source| DaemonError::Io {
        path: path.clone(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(&path)
        && !meta.file_type().is_file()
    {
        return Err(DaemonError::PathTaken(path));
    }
    // No truncation: opening must never change a file, whatever stands at the path.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(DaemonError::AlreadyRunning(socket.to_owned()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
    }
}
