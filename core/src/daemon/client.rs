//! The daemon's client side, used by the CLI: connect, send one request, read one answer.
//!
//! Every wait is bounded (issue 17: a frozen daemon held the CLI for 300 s without a word):
//! the answer is awaited in short slices, each reported to the caller's `on_wait` callback so
//! a frontend can say what is happening; past the bound the call fails with
//! [`DaemonError::TimedOut`]. The library itself never prints.

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

/// How often a waiting call reports to its `on_wait` callback.
pub const WAIT_TICK: Duration = Duration::from_secs(1);

/// What the client allows past the request's deadline for the daemon's own answer (its
/// `timed_out` error, or a reply finished just in time) to arrive.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// A client for one daemon socket. Each call opens its own connection.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    path: PathBuf,
    /// The request's deadline, sent to the daemon so it stops generating past it.
    deadline: Option<Duration>,
    /// How long to wait for an answer at most: the deadline plus a grace period, or, with no
    /// deadline, long enough for a cold model load plus a full prefill on a slow machine.
    pub timeout: Duration,
}

impl DaemonClient {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            deadline: None,
            timeout: Duration::from_secs(300),
        }
    }

    /// Sets the request's deadline (`None`: none), and bounds the client's wait by it.
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        if let Some(d) = deadline {
            self.timeout = d.saturating_add(ANSWER_GRACE);
        }
        self
    }

    fn deadline_ms(&self) -> Option<u64> {
        self.deadline
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `op` and waits at most `timeout` for the answer, calling `on_wait` with the time
    /// waited so far every [`WAIT_TICK`].
    fn call(
        &self,
        op: Op,
        timeout: Duration,
        on_wait: &mut dyn FnMut(Duration),
    ) -> Result<Reply, DaemonError> {
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
        let started = std::time::Instant::now();
        stream
            .set_send_timeout(Some(Duration::from_secs(10).min(timeout)))
            .map_err(io)?;
        let req = Request {
            v: PROTOCOL_VERSION,
            id: 1,
            op,
        };
        let mut writer = interprocess::TryClone::try_clone(&stream).map_err(io)?;
        // A daemon at its connection cap answers `daemon_busy` and hangs up, maybe before the
        // request is written: its answer is still read, and says more than the broken pipe.
        let write_err = writer.write_all(&protocol::encode(&req)).err();
        let mut line = Vec::new();
        let recv_timeout = |s: &Stream| {
            let left = timeout.saturating_sub(started.elapsed());
            s.set_recv_timeout(Some(left.clamp(Duration::from_millis(1), WAIT_TICK)))
        };
        recv_timeout(&stream).map_err(io)?;
        let mut reader = BufReader::new(stream).take(MAX_MESSAGE_BYTES as u64 * 4);
        loop {
            // A timed-out read keeps what it had read in `line`; the next one goes on from
            // there.
            match reader.read_until(b'\n', &mut line) {
                Ok(_) => break,
                Err(e) if super::still_waiting(&e) => {
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(DaemonError::TimedOut {
                            path: self.path.clone(),
                            waited,
                        });
                    }
                    on_wait(waited);
                    recv_timeout(reader.get_ref().get_ref()).map_err(io)?;
                }
                Err(e) => return Err(io(write_err.unwrap_or(e))),
            }
        }
        if let (true, Some(e)) = (line.is_empty(), write_err) {
            return Err(io(e));
        }
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
        match self.call(Op::Status, timeout, &mut |_| {})? {
            Reply::Status { status } => Ok(status),
            _ => Err(DaemonError::Protocol("expected a status".into())),
        }
    }

    pub fn generate(&self, request: &CommandRequest) -> Result<GeneratedCommand, DaemonError> {
        self.generate_with(request, &mut |_| {})
    }

    /// [`generate`](Self::generate), calling `on_wait` with the time waited so far about once
    /// a second while no answer has come.
    pub fn generate_with(
        &self,
        request: &CommandRequest,
        on_wait: &mut dyn FnMut(Duration),
    ) -> Result<GeneratedCommand, DaemonError> {
        match self.call(
            Op::Generate {
                request: request.clone(),
                timeout_ms: self.deadline_ms(),
            },
            self.timeout,
            on_wait,
        )? {
            Reply::Generated { command } => Ok(command),
            _ => Err(DaemonError::Protocol("expected a command".into())),
        }
    }

    pub fn explain(&self, command: &str, shell: ShellType) -> Result<String, DaemonError> {
        self.explain_with(command, shell, &mut |_| {})
    }

    /// [`explain`](Self::explain) with the `on_wait` reports of [`generate_with`](Self::generate_with).
    pub fn explain_with(
        &self,
        command: &str,
        shell: ShellType,
        on_wait: &mut dyn FnMut(Duration),
    ) -> Result<String, DaemonError> {
        match self.call(
            Op::Explain {
                command: command.to_owned(),
                shell,
                timeout_ms: self.deadline_ms(),
            },
            self.timeout,
            on_wait,
        )? {
            Reply::Explanation { text } => Ok(text),
            _ => Err(DaemonError::Protocol("expected an explanation".into())),
        }
    }
}
