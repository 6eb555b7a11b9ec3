//! The warm-model daemon over a real Unix socket with the real SmolLM2 backend: same answers
//! as in-process, malformed and oversized messages, a client that leaves mid-request, peers of
//! another user, idle unload, and a stale socket file.

#![cfg(unix)]

use caro_core::daemon::{Daemon, DaemonClient, DaemonError, DaemonOptions, Service};
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ExecutionContext,
    ShellType,
};
use caro_testkit::{SMOL, model};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn greedy() -> EmbeddedConfig {
    EmbeddedConfig::builder()
        .temperature(0.0)
        .max_tokens(12)
        .build()
        .expect("config")
}

/// A bash request from a fixed Linux context (also the fault suite's).
pub fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash)
        .with_context(ExecutionContext::for_os("linux", Some("/home/test".into())))
}

struct Running {
    socket: PathBuf,
    backend: Arc<EmbeddedModelBackend>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(idle_unload: Option<Duration>, allowed_uid: Option<u32>) -> Running {
    start_with(greedy(), idle_unload, allowed_uid)
}

fn start_with(
    config: EmbeddedConfig,
    idle_unload: Option<Duration>,
    allowed_uid: Option<u32>,
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run").join("caro.sock");
    let backend = Arc::new(EmbeddedModelBackend::new(model(SMOL), config).expect("backend"));
    let service = Service {
        generator: backend.clone(),
        embedded: backend.clone(),
    };
    let daemon = Daemon::bind(
        service,
        DaemonOptions {
            socket: socket.clone(),
            idle_unload,
            allowed_uid,
        },
    )
    .expect("bind");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || daemon.run(&flag).expect("run"));
    Running {
        socket,
        backend,
        stop,
        thread: Some(thread),
        _dir: dir,
    }
}

/// Sends raw lines and reads one answer line per request line.
fn raw_exchange(socket: &Path, lines: &[&[u8]]) -> Vec<serde_json::Value> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut out = Vec::new();
    for l in lines {
        // The daemon may answer and hang up before an oversized message is fully written.
        let _ = s.write_all(l);
        let mut resp = String::new();
        if reader.read_line(&mut resp).unwrap_or(0) == 0 {
            break;
        }
        out.push(serde_json::from_str(&resp).expect("json answer"));
    }
    out
}

#[test]
fn daemon_answers_exactly_like_in_process() {
    let d = start(None, None);
    let client = DaemonClient::new(&d.socket);
    let local = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    for prompt in ["list files", "show the current date"] {
        let via_daemon = client.generate(&request(prompt));
        let in_process = local.generate_command(&request(prompt));
        match (via_daemon, in_process) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.command, b.command);
                assert_eq!(a.raw_output, b.raw_output);
            }
            (Err(DaemonError::Remote { code, .. }), Err(e)) => assert_eq!(code, e.code()),
            (a, b) => panic!("daemon and in-process differ: {a:?} vs {b:?}"),
        }
    }
    let status = client.status().expect("status");
    assert!(status.model_loaded);
    assert_eq!(status.requests_served, 2);
    assert_eq!(status.pid, std::process::id());
}

#[test]
fn socket_is_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let d = start(None, None);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&d.socket), 0o600);
    assert_eq!(mode(d.socket.parent().expect("dir")), 0o700);
}

#[test]
fn malformed_and_oversized_messages_get_errors_not_crashes() {
    let d = start(None, None);
    let answers = raw_exchange(
        &d.socket,
        &[
            b"this is not json\n",
            b"{\"v\":2,\"id\":9,\"op\":\"status\"}\n",
            b"{\"v\":1,\"id\":10,\"op\":\"format_disk\"}\n",
            b"{\"v\":1,\"id\":11,\"op\":\"status\"}\n",
        ],
    );
    let codes: Vec<_> = answers
        .iter()
        .map(|a| a["error"]["code"].as_str().unwrap_or("ok").to_owned())
        .collect();
    assert_eq!(
        codes,
        ["bad_request", "unsupported_version", "bad_request", "ok"]
    );
    assert_eq!(answers[1]["id"], 9, "the id is echoed when it can be read");
    assert_eq!(answers[3]["ok"]["kind"], "status");

    // 100 KB with no newline: refused, and that connection is closed.
    let mut big = vec![b'{'; 100 * 1024];
    big.push(b'\n');
    let answers = raw_exchange(
        &d.socket,
        &[&big, b"{\"v\":1,\"id\":1,\"op\":\"status\"}\n"],
    );
    assert_eq!(answers.len(), 1, "closed after the oversized message");
    assert_eq!(answers[0]["error"]["code"], "message_too_large");
    // The daemon itself is fine.
    DaemonClient::new(&d.socket)
        .status()
        .expect("still serving");
}

#[test]
fn a_client_leaving_mid_request_does_not_hurt_the_daemon() {
    let d = start(None, None);
    let req = format!(
        "{}\n",
        serde_json::json!({"v": 1, "id": 1, "op": "generate", "request": request("list files")})
    );
    for _ in 0..3 {
        let mut s = UnixStream::connect(&d.socket).expect("connect");
        s.write_all(req.as_bytes()).expect("write");
        drop(s);
    }
    let client = DaemonClient::new(&d.socket);
    let r = client.generate(&request("count lines in a file"));
    assert!(
        matches!(r, Ok(_) | Err(DaemonError::Remote { .. })),
        "the daemon still answers: {r:?}"
    );
    assert!(client.status().expect("status").requests_served >= 1);
}

#[test]
fn peers_of_another_user_are_refused() {
    use std::os::unix::fs::MetadataExt;
    // A file this process creates is owned by its effective uid.
    let probe = tempfile::NamedTempFile::new().expect("tempfile");
    let me = probe.as_file().metadata().expect("meta").uid();
    // The daemon serves a different uid than the one this test runs as.
    let d = start(None, Some(me.wrapping_add(4242)));
    let err = DaemonClient::new(&d.socket).status().expect_err("refused");
    assert_eq!(err.code(), "permission_denied", "{err}");
}

#[test]
fn the_idle_model_is_unloaded_and_reloads_on_demand() {
    let d = start(Some(Duration::from_millis(300)), None);
    let client = DaemonClient::new(&d.socket);
    let _ = client.generate(&request("list files"));
    assert!(client.status().expect("status").model_loaded);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.status().expect("status").model_loaded {
        assert!(
            std::time::Instant::now() < deadline,
            "the model stayed loaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = client.generate(&request("list files"));
    assert!(client.status().expect("status").model_loaded, "reloaded");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused_and_a_stale_socket_is_replaced() {
    let d = start(None, None);
    let backend = Arc::new(EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend"));
    let second = Daemon::bind(
        Service {
            generator: backend.clone(),
            embedded: backend,
        },
        DaemonOptions {
            socket: d.socket.clone(),
            idle_unload: None,
            allowed_uid: None,
        },
    );
    assert!(matches!(second, Err(DaemonError::AlreadyRunning(_))));

    // A socket file nobody listens on, as a crashed daemon leaves it.
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = dir.path().join("caro.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let err = DaemonClient::new(&stale)
        .status()
        .expect_err("nobody there");
    assert_eq!(err.code(), "daemon_not_running");
    let backend = Arc::new(EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend"));
    let fresh = Daemon::bind(
        Service {
            generator: backend.clone(),
            embedded: backend,
        },
        DaemonOptions {
            socket: stale.clone(),
            idle_unload: None,
            allowed_uid: None,
        },
    )
    .expect("the stale socket is replaced");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || fresh.run(&flag));
    DaemonClient::new(&stale).status().expect("serving");
    stop.store(true, Ordering::SeqCst);
    t.join().expect("join").expect("run");
}

fn bind_at(socket: &Path) -> Result<Daemon, DaemonError> {
    let backend = Arc::new(EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend"));
    Daemon::bind(
        Service {
            generator: backend.clone(),
            embedded: backend,
        },
        DaemonOptions {
            socket: socket.to_owned(),
            idle_unload: None,
            allowed_uid: None,
        },
    )
}

/// The tray restarts its daemon after a settings change: the stopped one must have let go of
/// the socket and its lock when `stop` returns, or the new one is refused (the tray used to
/// sleep 100 ms and hope).
#[test]
fn a_spawned_daemon_stopped_frees_its_socket_for_the_next_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("caro.sock");
    for round in 0..3 {
        let serving = bind_at(&socket)
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .spawn();
        DaemonClient::new(&socket)
            .status()
            .unwrap_or_else(|e| panic!("round {round}: not serving: {e}"));
        serving.stop().expect("stopped cleanly");
        assert!(!socket.exists(), "round {round}: the socket file is gone");
        let err = DaemonClient::new(&socket).status().expect_err("stopped");
        assert_eq!(err.code(), "daemon_not_running");
    }
    // Dropping the handle stops it too.
    drop(bind_at(&socket).expect("bind").spawn());
    bind_at(&socket).expect("free again after a drop");
}

// Issue 17, item 1: `CARO_SOCKET=x/notes.txt caro serve` deleted notes.txt.
#[test]
fn a_socket_path_that_names_a_file_never_deletes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "data\n").expect("write");
    let err = bind_at(&notes).expect_err("a document is not a socket");
    assert_eq!(err.code(), "socket_path_taken", "{err}");
    assert!(err.hint().is_some());
    assert_eq!(
        std::fs::read_to_string(&notes).expect("still there"),
        "data\n"
    );
    // A folder or a link at the path is refused the same way.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    assert_eq!(
        bind_at(&sub).expect_err("folder").code(),
        "socket_path_taken"
    );
    assert!(sub.is_dir());
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&notes, &link).expect("symlink");
    assert_eq!(
        bind_at(&link).expect_err("link").code(),
        "socket_path_taken"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).expect("still there"),
        "data\n"
    );
}

// Issue 17, item 2: `CARO_SOCKET=/tmp/c.sock caro serve` as root chmodded /tmp to 0700.
#[test]
fn a_folder_open_to_others_is_refused_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let err = bind_at(&shared.join("c.sock")).expect_err("a shared folder");
    assert_eq!(err.code(), "socket_dir_unsafe", "{err}");
    let mode = std::fs::metadata(&shared)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o1777, "the folder's mode was changed");
    assert!(!shared.join("c.sock").exists());

    // A folder caro makes itself is private.
    let made = dir.path().join("new").join("deeper");
    let d = bind_at(&made.join("c.sock")).expect("bind in a new folder");
    let mode = std::fs::metadata(&made).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    drop(d);
}

// Issue 17, item 3: a second daemon took over the socket of one too busy to answer a ping.
#[test]
fn a_busy_daemon_keeps_its_socket_from_a_second_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("caro.sock");
    // A daemon that holds its lock but does not answer: a socket nobody accepts on in time.
    let _silent = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let lock = std::fs::File::create(caro_lock(&socket)).expect("lock file");
    lock.try_lock().expect("lock");
    assert!(caro_core::daemon::lock_held(&socket));
    let err = bind_at(&socket).expect_err("the busy daemon keeps its socket");
    assert!(matches!(err, DaemonError::AlreadyRunning(_)), "{err}");
    assert!(socket.exists(), "the busy daemon's socket was removed");

    // Once it is gone, its socket is stale and a new daemon takes the path.
    drop(lock);
    drop(_silent);
    assert!(!caro_core::daemon::lock_held(&socket));
    let d = bind_at(&socket).expect("stale socket replaced");
    assert!(
        caro_core::daemon::lock_held(&socket),
        "the new daemon holds the lock"
    );
    drop(d);
    assert!(!socket.exists(), "a stopped daemon removes its own socket");
    assert!(!caro_core::daemon::lock_held(&socket));
}

// Issue 17, item 3: status waited for the generation to finish, so a busy daemon looked dead.
#[test]
fn status_answers_while_a_request_is_generating() {
    let long_answers = EmbeddedConfig::builder()
        .temperature(0.0)
        .max_tokens(400)
        .build()
        .expect("config");
    let d = start_with(long_answers, None, None);
    let socket = d.socket.clone();
    let long = std::thread::spawn(move || {
        DaemonClient::new(&socket).generate(&request(
            "write a long shell script that backs up every folder",
        ))
    });
    let client = DaemonClient::new(&d.socket);
    let mut answered_while_busy = false;
    while !long.is_finished() {
        let t = std::time::Instant::now();
        client.ping().expect("a busy daemon still answers status");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "status waited for the generation"
        );
        answered_while_busy = true;
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = long.join();
    assert!(answered_while_busy);
}

fn caro_lock(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

// Issue 16: the tray's idle unload ignored the popup, which calls the model directly, so the
// model unloaded while someone was using it.
#[test]
fn use_of_the_model_outside_the_socket_keeps_it_loaded() {
    let d = start(Some(Duration::from_millis(400)), None);
    let client = DaemonClient::new(&d.socket);
    let _ = client.generate(&request("list files"));
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        // As the popup does: straight to the backend, not through the daemon.
        d.backend
            .generate_command(&request("list files"))
            .expect("generate");
        assert!(
            client.status().expect("status").model_loaded,
            "unloaded while in use"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.status().expect("status").model_loaded {
        assert!(
            std::time::Instant::now() < deadline,
            "never unloaded once idle"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// A socket another program listens on (an ssh-agent's, given as --socket by mistake) is not a
// stale caro socket: it is left alone.
#[test]
fn a_live_socket_of_another_program_is_never_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let err = bind_at(&socket).expect_err("someone listens there");
    assert_eq!(err.code(), "socket_path_taken", "{err}");
    assert!(socket.exists(), "the other program's socket was removed");
    std::os::unix::net::UnixStream::connect(&socket).expect("still answers");
}

// ---- Issue 17, item 6: every wait is bounded, and work nobody waits for stops. ----

/// Long replies: the model keeps generating for seconds, so a cancel lands mid-generation.
fn long_answers() -> EmbeddedConfig {
    EmbeddedConfig::builder()
        .temperature(0.0)
        .max_tokens(400)
        .build()
        .expect("config")
}

const LONG_PROMPT: &str = "write a long shell script that backs up every folder";

/// Sends a generate request on a raw connection and hangs up without reading the answer.
fn send_and_hang_up(socket: &Path, prompt: &str) {
    let line = format!(
        "{}\n",
        serde_json::json!({"v": 1, "id": 9, "op": "generate", "request": request(prompt)})
    );
    let mut s = UnixStream::connect(socket).expect("connect");
    s.write_all(line.as_bytes()).expect("write");
}

/// Waits until `cond` holds, failing the test after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// A frozen daemon held the client for 300 s without a word.
#[test]
fn a_frozen_daemon_is_given_up_on_within_the_bound_and_each_second_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("caro.sock");
    // Accepts, reads, never answers: a daemon stuck in a generation that never ends.
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let _frozen = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let mut client = DaemonClient::new(&socket).with_deadline(Some(Duration::from_secs(60)));
    client.timeout = Duration::from_millis(2500);
    let mut reports = Vec::new();
    let t = std::time::Instant::now();
    let err = client
        .generate_with(&request("list files"), &mut |waited| reports.push(waited))
        .expect_err("no answer");
    let took = t.elapsed();
    assert!(matches!(err, DaemonError::TimedOut { .. }), "{err}");
    assert_eq!(err.code(), "daemon_timeout");
    assert!(err.hint().is_some());
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_secs(4),
        "gave up after {took:?}, not at its 2.5 s bound"
    );
    // The caller hears about the wait once a second, so a frontend can say what is going on.
    assert!(
        reports.len() >= 2 && reports[0] >= Duration::from_millis(900),
        "reports: {reports:?}"
    );
}

// Two abandoned requests queued before a real one were generated anyway (31.6 s instead of
// 9.5 s).
#[test]
fn requests_whose_client_hung_up_are_dropped_before_they_are_generated() {
    let d = start_with(long_answers(), None, None);
    let socket = d.socket.clone();
    let busy =
        std::thread::spawn(move || DaemonClient::new(&socket).generate(&request(LONG_PROMPT)));
    wait_for(
        "the first request holds the model",
        Duration::from_secs(30),
        || d.backend.idle_for().is_none(),
    );
    send_and_hang_up(&d.socket, LONG_PROMPT);
    send_and_hang_up(&d.socket, LONG_PROMPT);
    let client = DaemonClient::new(&d.socket);
    // Queued behind the busy one and the two abandoned ones.
    std::thread::sleep(Duration::from_millis(200));
    client
        .generate(&request("list files"))
        .expect("the real request is answered");
    busy.join()
        .expect("thread")
        .expect("the first request is answered");
    let status = client.status().expect("status");
    assert_eq!(
        (status.requests_cancelled, status.requests_served),
        (2, 2),
        "the abandoned requests were generated: {status:?}"
    );
}

// A client that left mid-generation kept the model busy until the reply was complete.
#[test]
fn a_client_hanging_up_mid_generation_stops_it_within_a_token() {
    let d = start_with(long_answers(), None, None);
    d.backend.load().expect("load");
    let line = format!(
        "{}\n",
        serde_json::json!({"v": 1, "id": 3, "op": "generate", "request": request(LONG_PROMPT)})
    );
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.write_all(line.as_bytes()).expect("write");
    wait_for("the request is generating", Duration::from_secs(10), || {
        d.backend.idle_for().is_none()
    });
    std::thread::sleep(Duration::from_millis(150));
    drop(s);
    // Within one forward pass; loose, since a pass takes seconds on a loaded machine.
    wait_for("the model is released", Duration::from_secs(30), || {
        d.backend.idle_for().is_some()
    });
    // A request generated to its end counts as served; only a stopped one as cancelled.
    let status = DaemonClient::new(&d.socket).status().expect("status");
    assert_eq!(status.requests_cancelled, 1, "{status:?}");
    assert_eq!(status.requests_served, 0, "{status:?}");
}

// SIGTERM on `caro serve` waited 51 s for the current generation to finish.
#[test]
fn stopping_the_daemon_cancels_the_generation_under_way_and_cleans_up() {
    let mut d = start_with(long_answers(), None, None);
    d.backend.load().expect("load");
    let socket = d.socket.clone();
    let waiting =
        std::thread::spawn(move || DaemonClient::new(&socket).generate(&request(LONG_PROMPT)));
    wait_for("the request is generating", Duration::from_secs(10), || {
        d.backend.idle_for().is_none()
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = std::time::Instant::now();
    d.stop.store(true, Ordering::SeqCst);
    d.thread.take().expect("running").join().expect("run");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stopping waited {:?} for the generation",
        t.elapsed()
    );
    let answer = waiting.join().expect("thread");
    match answer {
        Err(DaemonError::Remote { code, message }) => {
            assert_eq!(code, "cancelled", "{message}");
            assert!(message.contains("stopping"), "{message}");
        }
        other => panic!("the generation was not cancelled: {other:?}"),
    }
    assert!(!d.socket.exists(), "the socket file stayed behind");
    assert!(
        !caro_core::daemon::lock_held(&d.socket),
        "the lock is still held"
    );
}

// The daemon bounds a request whose client sent no deadline by its own setting.
#[test]
fn the_daemons_own_limit_bounds_a_request_that_sets_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("caro.sock");
    let backend =
        Arc::new(EmbeddedModelBackend::new(model(SMOL), long_answers()).expect("backend"));
    backend.load().expect("load");
    let daemon = Daemon::bind(
        Service {
            generator: backend.clone(),
            embedded: backend,
        },
        DaemonOptions {
            socket: socket.clone(),
            idle_unload: None,
            allowed_uid: None,
        },
    )
    .expect("bind");
    daemon.set_request_timeout(Duration::from_millis(200));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || daemon.run(&flag).expect("run"));
    let t = std::time::Instant::now();
    let err = DaemonClient::new(&socket)
        .generate(&request(LONG_PROMPT))
        .expect_err("past the daemon's limit");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(err.code(), "timed_out", "{err}");
    assert!(err.to_string().contains("embedded"), "{err}");
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("run");
}
