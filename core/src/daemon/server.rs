//! The daemon's server side: accept loop, per-connection request handling, peer checks, the
//! idle unload of the model, and stopping work nobody waits for.
//!
//! Issue 17: each request carries a [`Cancel`] that the generation polls between tokens. It
//! fires when the request's deadline passes, when its client hangs up (so an abandoned
//! request queued behind others is dropped at its turn, and one mid-generation stops), and
//! when the daemon is stopping (so SIGTERM does not wait for a long reply).
//!
//! Connections are bounded too: at most [`MAX_CONNECTIONS`] are served at once (each holds a
//! thread), and one that has not delivered a whole request line within [`IDLE_TIMEOUT`] of
//! the start of that request is answered `idle_timeout` and closed, so neither a crowd of
//! clients nor slow-loris peers that trickle a byte at a time can hold the daemon. A
//! connection past the cap is still read briefly, so a `status` request is answered there;
//! anything else gets `daemon_busy` and the connection is closed.

use super::protocol::{self, DaemonStatus, MAX_MESSAGE_BYTES, Op, Reply, Response, WireError};
use super::{DaemonError, socket_name};
use crate::cancel::Cancel;
use crate::embedded::EmbeddedModelBackend;
use crate::generator::CommandGenerator;
// StreamCommon gives Unix streams `set_recv_timeout`; Windows' have it without the trait.
#[cfg(unix)]
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::traits::{Listener as _, Stream as _};
use interprocess::local_socket::{Listener, ListenerNonblockingMode, ListenerOptions, Stream};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many connections the daemon serves at once. Each holds a thread and waits its turn at
/// the model, which answers one request at a time; beyond a few dozen waiting requests a new
/// one would not be answered within any client's deadline anyway, so it is told
/// `daemon_busy` at once instead of piling up threads.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to deliver one whole request line, counted from the start
/// of that request (not from its last byte, so trickling one byte at a time does not keep a
/// connection forever). Every caro client writes its request at once, so this only ever cuts
/// off stalled or hostile peers, and frees their slot under [`MAX_CONNECTIONS`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections past [`MAX_CONNECTIONS`] that are still read, so a `status` request gets its
/// answer; beyond these, a connection is told `daemon_busy` without being read.
const OVERFLOW_READERS: usize = 16;

/// How long a connection past the cap is given to send its request.
const OVERFLOW_READ: Duration = Duration::from_secs(1);

/// How long writing one answer may take: a peer that never reads cannot hold a thread.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon serves: the generator chain, and the embedded model it can explain with
/// and unload.
#[derive(Clone)]
pub struct Service {
    pub generator: Arc<dyn CommandGenerator>,
    pub embedded: Arc<EmbeddedModelBackend>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.generator.backend_info())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub socket: PathBuf,
    /// Unload the model after this long without a request; `None` keeps it loaded.
    pub idle_unload: Option<Duration>,
    /// The only user id allowed to connect (Unix). `None`: the owner of the socket file, which
    /// is the user running the daemon.
    pub allowed_uid: Option<u32>,
}

struct Shared {
    service: Service,
    opts: DaemonOptions,
    started: Instant,
    served: AtomicU64,
    /// Requests being answered now; the model is never unloaded under one.
    in_flight: AtomicUsize,
    last_request: Mutex<Instant>,
    allowed_uid: Option<u32>,
    /// Set once the accept loop ends: every request still running is cancelled.
    stopping: AtomicBool,
    /// Requests dropped because nobody waited for them any more.
    cancelled: AtomicU64,
    /// The deadline of a request whose client sent none.
    request_timeout: OnceLock<Duration>,
    /// Connections served now, and those past the cap being read for a `status` request.
    connections: AtomicUsize,
    overflow: AtomicUsize,
    /// See [`Daemon::set_connection_limits`].
    max_connections: OnceLock<usize>,
    idle_timeout: OnceLock<Duration>,
}

impl Shared {
    fn max_connections(&self) -> usize {
        self.max_connections
            .get()
            .copied()
            .unwrap_or(MAX_CONNECTIONS)
    }

    fn idle_timeout(&self) -> Duration {
        self.idle_timeout.get().copied().unwrap_or(IDLE_TIMEOUT)
    }
}

/// Holds one unit of a connection counter for as long as it lives.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    /// Takes a unit of `counter` if fewer than `limit` are taken.
    fn take(counter: &'a AtomicUsize, limit: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(counter))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bound daemon. `run` serves until `stop` is set.
pub struct Daemon {
    /// Dropped before `_lock`, so the socket file is gone before another daemon may bind.
    listener: Listener,
    /// Held for the daemon's lifetime (Unix): a busy daemon still counts as running.
    _lock: Option<std::fs::File>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("socket", &self.shared.opts.socket)
            .finish_non_exhaustive()
    }
}

/// A daemon serving on its own thread ([`Daemon::spawn`]). Stopping it, or dropping it, waits
/// for the thread, so the socket and its lock are gone when that returns and a new daemon can
/// bind at once (the tray restarts its daemon after a settings change).
#[derive(Debug)]
pub struct Serving {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl Serving {
    /// Stops serving: the accept loop ends, a generation under way is cancelled at its next
    /// token, and the socket is removed. Returns how the service ended.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), DaemonError> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(DaemonError::Crashed("its thread panicked".to_owned())),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(error = %e, "the socket service stopped with an error");
        }
    }
}

impl Daemon {
    /// Binds the socket. Fails if another daemon answers there or holds its lock, if the path
    /// holds anything but a stale socket, or if its folder is open to other users; a stale
    /// socket file left by a crashed daemon is replaced.
    pub fn bind(service: Service, opts: DaemonOptions) -> Result<Self, DaemonError> {
        let path = opts.socket.clone();
        let io = |source| DaemonError::Io {
            path: path.clone(),
            source,
        };
        if super::DaemonClient::new(&path).ping().is_ok() {
            return Err(DaemonError::AlreadyRunning(path));
        }
        #[cfg(unix)]
        let lock = Some(super::place::claim(&path)?);
        #[cfg(not(unix))]
        let lock: Option<std::fs::File> = None;
        let name = socket_name(&path).map_err(io)?;
        // `claim` removed a stale socket; never let the listener delete whatever else is there.
        let options = ListenerOptions::new()
            .name(name)
            .nonblocking(ListenerNonblockingMode::Accept)
            .try_overwrite(false)
            .reclaim_name(true);
        #[cfg(unix)]
        let options = {
            use interprocess::os::unix::local_socket::ListenerOptionsExt;
            options.mode(0o600)
        };
        let listener = options.create_sync().map_err(io)?;
        let allowed_uid = opts.allowed_uid.or_else(|| owner_uid(&path));
        Ok(Self {
            listener,
            _lock: lock,
            shared: Arc::new(Shared {
                service,
                opts,
                started: Instant::now(),
                served: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                last_request: Mutex::new(Instant::now()),
                allowed_uid,
                stopping: AtomicBool::new(false),
                cancelled: AtomicU64::new(0),
                request_timeout: OnceLock::new(),
                connections: AtomicUsize::new(0),
                overflow: AtomicUsize::new(0),
                max_connections: OnceLock::new(),
                idle_timeout: OnceLock::new(),
            }),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.shared.opts.socket
    }

    /// Bounds each request whose client sends no deadline of its own (older clients, the
    /// tray). Set once, before [`run`](Self::run); later calls are ignored.
    pub fn set_request_timeout(&self, timeout: Duration) {
        let _ = self.shared.request_timeout.set(timeout);
    }

    /// Overrides [`MAX_CONNECTIONS`] and [`IDLE_TIMEOUT`] (tests use short ones). Set once,
    /// before [`run`](Self::run); later calls are ignored. A cap of 0 counts as 1.
    pub fn set_connection_limits(&self, max_connections: usize, idle_timeout: Duration) {
        let _ = self.shared.max_connections.set(max_connections.max(1));
        let _ = self.shared.idle_timeout.set(idle_timeout);
    }

    /// Serves on a thread of its own until the returned handle is stopped or dropped: for a
    /// frontend that keeps working while it serves (the tray app).
    pub fn spawn(self) -> Serving {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("caro-daemon".into())
            .spawn(move || self.run(&flag));
        match thread {
            Ok(thread) => Serving {
                stop,
                thread: Some(thread),
            },
            // No thread: nothing serves, and dropping the daemon (moved into the failed
            // spawn) already released the socket.
            Err(e) => {
                tracing::warn!(error = %e, "no thread for the socket service");
                Serving { stop, thread: None }
            }
        }
    }

    /// Serves connections, each on its own thread, until `stop` is set: at most
    /// [`MAX_CONNECTIONS`] at once, see the module's documentation. Requests reach the model
    /// one at a time, in order (the backend queues them).
    pub fn run(self, stop: &AtomicBool) -> Result<(), DaemonError> {
        let idle = self.shared.opts.idle_unload;
        let shared = self.shared.clone();
        let idle_stop = Arc::new(AtomicBool::new(false));
        let idle_flag = idle_stop.clone();
        let idle_thread =
            idle.map(|limit| std::thread::spawn(move || idle_unloader(&shared, limit, &idle_flag)));
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok(stream) => admit(stream, &self.shared),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // Before anything waits on the model: a generation under way stops at its next token,
        // so `shutdown` below (which takes the model's turn) does not wait for a long reply.
        self.shared.stopping.store(true, Ordering::SeqCst);
        idle_stop.store(true, Ordering::Relaxed);
        if let Some(t) = idle_thread {
            let _ = t.join();
        }
        self.shared.service.generator.shutdown();
        Ok(())
    }
}

/// Gives `stream` a thread of its own if the connection cap allows; otherwise a thread that
/// answers a `status` request only, or, past that too, `daemon_busy` on the accept thread.
fn admit(stream: Stream, shared: &Arc<Shared>) {
    if let Some(slot) = Slot::take(&shared.connections, shared.max_connections()) {
        // The thread owns the slot from here on (its `Slot` releases it); if no thread
        // starts, it is released below.
        std::mem::forget(slot);
        let shared = shared.clone();
        let spawned = std::thread::Builder::new().name("caro-conn".into()).spawn({
            let shared = shared.clone();
            move || {
                // Declared before the slot, so dropped after it: the socket closes only once
                // the slot is free, and a peer that reconnects the moment it sees the close
                // (a client retrying after `idle_timeout`) never finds its own old slot taken.
                let _open_until_the_slot_is_free = interprocess::TryClone::try_clone(&stream).ok();
                let _slot = Slot(&shared.connections);
                handle(stream, &shared);
            }
        });
        if spawned.is_err() {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    }
    let busy = || {
        WireError::new(
            "daemon_busy",
            format!(
                "the caro daemon is serving its limit of {} connections; try again in a \
                 moment, or run caro with --no-daemon to answer in-process",
                shared.max_connections()
            ),
        )
    };
    if let Some(slot) = Slot::take(&shared.overflow, OVERFLOW_READERS) {
        std::mem::forget(slot);
        let shared = shared.clone();
        let e = busy();
        let spawned = std::thread::Builder::new()
            .name("caro-overflow".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    let _slot = Slot(&shared.overflow);
                    answer_overflow(stream, &shared, e);
                }
            });
        if spawned.is_err() {
            shared.overflow.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    }
    tracing::warn!("refused a connection: too many at once");
    let _ = stream.set_send_timeout(Some(Duration::from_millis(100)));
    let mut stream = stream;
    let _ = stream.write_all(&protocol::encode(&Response::err(0, busy())));
}

/// A connection past the cap: a `status` request is answered, anything else is told `busy`.
fn answer_overflow(stream: Stream, shared: &Arc<Shared>, busy: WireError) {
    let Ok(mut writer) = interprocess::TryClone::try_clone(&stream) else {
        return;
    };
    let _ = writer.set_send_timeout(Some(WRITE_TIMEOUT));
    let response = if peer_allowed(&stream, shared.allowed_uid).is_err() {
        Response::err(0, busy)
    } else {
        let mut reader = BufReader::new(stream);
        let bound = OVERFLOW_READ.min(shared.idle_timeout());
        match read_request(&mut reader, Instant::now() + bound) {
            Ok(line) => match protocol::parse_request(&line) {
                Ok(req) if matches!(req.op, Op::Status) => status(req.id, shared),
                Ok(req) => Response::err(req.id, busy),
                Err((id, _)) => Response::err(id, busy),
            },
            Err(_) => Response::err(0, busy),
        }
    };
    let _ = writer.write_all(&protocol::encode(&response));
}

/// Why no request line was read.
enum ReadFail {
    /// The peer closed, or the socket failed: nothing to answer.
    Closed,
    TooLarge,
    /// No whole line before the deadline.
    TimedOut,
}

/// Reads one request line (without its line ending; blank lines are skipped) by `deadline`,
/// however the bytes trickle in, and at most [`MAX_MESSAGE_BYTES`] of it.
fn read_request(reader: &mut BufReader<Stream>, deadline: Instant) -> Result<Vec<u8>, ReadFail> {
    let mut line = Vec::with_capacity(512);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFail::TimedOut);
        }
        reader
            .get_ref()
            .set_recv_timeout(Some(left))
            .map_err(|_| ReadFail::Closed)?;
        let buf = match reader.fill_buf() {
            // A last request may end at the close instead of a newline.
            Ok([]) if line.iter().all(u8::is_ascii_whitespace) => return Err(ReadFail::Closed),
            Ok([]) => return Ok(line),
            Ok(buf) => buf,
            Err(e) if super::still_waiting(&e) => {
                continue;
            }
            Err(_) => return Err(ReadFail::Closed),
        };
        let (used, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        if line.len() > MAX_MESSAGE_BYTES + 1 || (!complete && line.len() > MAX_MESSAGE_BYTES) {
            return Err(ReadFail::TooLarge);
        }
        if complete {
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.iter().all(u8::is_ascii_whitespace) {
                line.clear();
                continue;
            }
            let len = body.len();
            line.truncate(len);
            return Ok(line);
        }
    }
}

#[cfg(unix)]
fn owner_uid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn owner_uid(_path: &Path) -> Option<u32> {
    None
}

fn idle_unloader(shared: &Shared, limit: Duration, stop: &AtomicBool) {
    let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        let quiet_for = shared
            .last_request
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        // The model's own clock counts requests that never came through the socket (the
        // tray's popup calls the model directly).
        let model_idle = shared.service.embedded.idle_for();
        let quiet_for = quiet_for.min(model_idle.unwrap_or_default());
        let busy = shared.in_flight.load(Ordering::SeqCst) > 0 || model_idle.is_none();
        if !busy && quiet_for >= limit && shared.service.embedded.is_loaded() {
            tracing::info!(idle_secs = quiet_for.as_secs(), "unloading the idle model");
            shared.service.generator.shutdown();
        }
    }
}

/// Refuses peers running as another user. The socket's 0600 mode already keeps them out; this
/// also stops root-owned or misconfigured paths from leaking the model to others.
fn peer_allowed(stream: &Stream, allowed: Option<u32>) -> Result<(), WireError> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        match stream.peer_creds().ok().and_then(|c| c.euid()) {
            Some(uid) if uid == allowed => Ok(()),
            Some(uid) => Err(WireError::new(
                "permission_denied",
                format!("user {uid} may not use this daemon (it serves user {allowed})"),
            )),
            None => Err(WireError::new(
                "permission_denied",
                "the peer's credentials could not be read",
            )),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (stream, allowed);
        Ok(())
    }
}

/// A check that turns true once the client of `stream` has hung up. Only a full close counts
/// (`POLLHUP`): a client that shut down just its writing side still reads the answer.
#[cfg(unix)]
fn hang_up_check(stream: &Stream) -> Option<impl Fn() -> bool + Send + Sync + 'static> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let Stream::UdSocket(s) = stream;
    // A second descriptor of the same socket: polling it never reads, so it takes nothing
    // from the request stream.
    let watched = s.inner().try_clone().ok()?;
    Some(move || {
        let mut fds = [PollFd::new(&watched, PollFlags::empty())];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
    })
}

/// Without a portable hang-up test (named pipes), a request runs to its deadline.
#[cfg(not(unix))]
fn hang_up_check(_stream: &Stream) -> Option<fn() -> bool> {
    None
}

fn handle(stream: Stream, shared: &Arc<Shared>) {
    let mut writer = match interprocess::TryClone::try_clone(&stream) {
        Ok(w) => w,
        Err(_) => return,
    };
    let _ = writer.set_send_timeout(Some(WRITE_TIMEOUT));
    let hung_up: Option<Arc<dyn Fn() -> bool + Send + Sync>> = match hang_up_check(&stream) {
        Some(f) => Some(Arc::new(f)),
        None => None,
    };
    if let Err(e) = peer_allowed(&stream, shared.allowed_uid) {
        tracing::warn!(reason = %e.message, "refused a connection");
        let _ = writer.write_all(&protocol::encode(&Response::err(0, e)));
        return;
    }
    let idle = shared.idle_timeout();
    let mut reader = BufReader::new(stream);
    loop {
        // Each request must arrive whole within `idle` of the start of its wait.
        let line = match read_request(&mut reader, Instant::now() + idle) {
            Ok(line) => line,
            Err(ReadFail::Closed) => return,
            Err(ReadFail::TooLarge) => {
                let e = WireError::new(
                    "message_too_large",
                    format!("a message may hold at most {MAX_MESSAGE_BYTES} bytes"),
                );
                let _ = writer.write_all(&protocol::encode(&Response::err(0, e)));
                return;
            }
            Err(ReadFail::TimedOut) => {
                let e = WireError::new(
                    "idle_timeout",
                    format!(
                        "no whole request arrived within {} ms; the connection is closed \
                         (send one JSON request per line)",
                        idle.as_millis()
                    ),
                );
                let _ = writer.write_all(&protocol::encode(&Response::err(0, e)));
                return;
            }
        };
        let response = match protocol::parse_request(&line) {
            Ok(req) => answer(req.id, req.op, shared, hung_up.clone()),
            Err((id, e)) => Response::err(id, e),
        };
        // A client that left mid-request just loses its answer; the daemon carries on.
        if writer.write_all(&protocol::encode(&response)).is_err() {
            return;
        }
    }
}

fn answer(
    id: u64,
    op: Op,
    shared: &Arc<Shared>,
    hung_up: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
) -> Response {
    let svc = &shared.service;
    let cancel = |timeout_ms: Option<u64>| {
        let stopping = shared.clone();
        let mut cancel =
            Cancel::never().with_check(move || stopping.stopping.load(Ordering::SeqCst));
        if let Some(hung_up) = hung_up.clone() {
            cancel = cancel.with_check(move || hung_up());
        }
        // The daemon's own limit also bounds a client's longer one.
        if let Some(t) = shared.request_timeout.get() {
            cancel = cancel.with_timeout(*t);
        }
        if let Some(ms) = timeout_ms {
            cancel = cancel.with_timeout(Duration::from_millis(ms));
        }
        cancel
    };
    match op {
        Op::Status => status(id, shared),
        Op::Generate {
            request,
            timeout_ms,
        } => {
            let cancel = cancel(timeout_ms);
            busy(id, shared, || {
                svc.generator
                    .generate_command_with(&request, &cancel)
                    .map(|command| Reply::Generated { command })
            })
        }
        Op::Explain {
            command,
            shell,
            timeout_ms,
        } => {
            let cancel = cancel(timeout_ms);
            busy(id, shared, || {
                svc.embedded
                    .explain_with(&command, shell, &cancel)
                    .map(|text| Reply::Explanation { text })
            })
        }
    }
}

/// Marks a request in flight for as long as it lives, so the idle unloader waits for it.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_request.lock() {
            *t = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn busy(
    id: u64,
    shared: &Shared,
    work: impl FnOnce() -> Result<Reply, crate::GeneratorError>,
) -> Response {
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(shared);
    let result = work();
    match result {
        Ok(reply) => {
            shared.served.fetch_add(1, Ordering::Relaxed);
            Response::ok(id, reply)
        }
        Err(crate::GeneratorError::Cancelled) => {
            shared.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id, "dropped a request nobody waits for");
            let message = if shared.stopping.load(Ordering::SeqCst) {
                "the caro daemon is stopping; the request was cancelled"
            } else {
                "the request was cancelled: its client hung up"
            };
            Response::err(id, WireError::new("cancelled", message))
        }
        Err(e) => {
            shared.served.fetch_add(1, Ordering::Relaxed);
            Response::err(id, WireError::new(e.code(), e.to_string()))
        }
    }
}

fn status(id: u64, shared: &Shared) -> Response {
    let svc = &shared.service;
    Response::ok(
        id,
        Reply::Status {
            status: DaemonStatus {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                backend: svc.generator.backend_info(),
                model_loaded: svc.embedded.is_loaded(),
                uptime_secs: shared.started.elapsed().as_secs(),
                requests_served: shared.served.load(Ordering::Relaxed),
                requests_cancelled: shared.cancelled.load(Ordering::Relaxed),
                idle_unload_secs: shared.opts.idle_unload.map(|d| d.as_secs()),
            },
        },
    )
}
