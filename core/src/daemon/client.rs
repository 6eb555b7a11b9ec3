//! The daemon's client side, used by the CLI: connect, send one request, read one answer.

use super::protocol::{
    self, DaemonStatus, MAX_MESSAGE_BYTES, Op, PROTOCOL_VERSION, Reply, Request, Response,
};
use super::{DaemonError, socket_name};
use crate::generator::{CommandRequest, GeneratedCommand};
use crate::shell::ShellType;
use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Stream as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A client for one daemon socket. Each call opens its own connection.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    path: PathBuf,
    /// How long to wait for an answer: a cold model load plus a full prefill fits easily.
    pub timeout: Duration,
}

impl DaemonClient {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            timeout: Duration::from_secs(300),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call(&self, op: Op, timeout: Duration) -> Result<Reply, DaemonError> {
        let not_running = |source| DaemonError::NotRunning {
            path: self.path.clone(),
            source,
        };
        // Cheap and precise: "no such file" and "permission denied" say different things.
        #[cfg(unix)]
        std::fs::symlink_metadata(&self.path).map_err(not_running)?;
        let name = socket_name(&self.path).map_err(not_running)?;
        let stream = Stream::connect(name).map_err(not_running)?;
        let io = |source| DaemonError::Io {
            path: self.path.clone(),
            source,
        };
        stream.set_recv_timeout(Some(timeout)).map_err(io)?;
        stream
            .set_send_timeout(Some(Duration::from_secs(10)))
            .map_err(io)?;
        let req = Request {
            v: PROTOCOL_VERSION,
            id: 1,
            op,
        };
        let mut writer = interprocess::TryClone::try_clone(&stream).map_err(io)?;
        writer.write_all(&protocol::encode(&req)).map_err(io)?;
        let mut line = Vec::new();
        BufReader::new(stream)
            .take(MAX_MESSAGE_BYTES as u64 * 4)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if line.is_empty() {
            return Err(DaemonError::Protocol(
                "the daemon closed the connection without answering".into(),
            ));
        }
        let resp: Response = serde_json::from_slice(&line)
            .map_err(|e| DaemonError::Protocol(format!("unreadable answer: {e}")))?;
        if resp.v != PROTOCOL_VERSION {
            return Err(DaemonError::Protocol(format!(
                "the daemon speaks protocol {}, this caro speaks {PROTOCOL_VERSION}; restart the daemon",
                resp.v
            )));
        }
        match (resp.ok, resp.error) {
            (Some(reply), _) => Ok(reply),
            (None, Some(e)) => Err(DaemonError::Remote {
                code: e.code,
                message: e.message,
            }),
            (None, None) => Err(DaemonError::Protocol("an empty answer".into())),
        }
    }

    /// Whether a daemon answers here, quickly.
    pub fn ping(&self) -> Result<DaemonStatus, DaemonError> {
        self.status_with(Duration::from_secs(2))
    }

    pub fn status(&self) -> Result<DaemonStatus, DaemonError> {
        self.status_with(Duration::from_secs(5))
    }

    fn status_with(&self, timeout: Duration) -> Result<DaemonStatus, DaemonError> {
        match self.call(Op::Status, timeout)? {
            Reply::Status { status } => Ok(status),
            _ => Err(DaemonError::Protocol("expected a status".into())),
        }
    }

    pub fn generate(&self, request: &CommandRequest) -> Result<GeneratedCommand, DaemonError> {
        match self.call(
            Op::Generate {
                request: request.clone(),
            },
            self.timeout,
        )? {
            Reply::Generated { command } => Ok(command),
            _ => Err(DaemonError::Protocol("expected a command".into())),
        }
    }

    pub fn explain(&self, command: &str, shell: ShellType) -> Result<String, DaemonError> {
        match self.call(
            Op::Explain {
                command: command.to_owned(),
                shell,
            },
            self.timeout,
        )? {
            Reply::Explanation { text } => Ok(text),
            _ => Err(DaemonError::Protocol("expected an explanation".into())),
        }
    }
}
