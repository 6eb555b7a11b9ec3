//! A local HTTP server that speaks the Hugging Face hub's file layout
//! (`/{repo}/resolve/{revision}/{file}`), with HEAD, ETag, X-Repo-Commit and Range, plus the
//! faults the download tests need: a connection cut halfway, and a per-response delay.
//!
//! Used by core's download tests, the CLI's `caro model pull` tests and the tray's first-launch
//! test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Inclusive byte range asked for, if any.
    pub range: Option<(u64, u64)>,
}

/// A served file: its bytes and its ETag.
type Served = (Arc<Vec<u8>>, String);

#[derive(Default)]
struct Shared {
    files: Mutex<HashMap<String, Served>>,
    log: Mutex<Vec<Request>>,
    /// Cut the first GET whose body would cross this offset, once.
    cut_at: Mutex<Option<u64>>,
    delay: Mutex<Duration>,
    body_bytes: AtomicU64,
}

/// The server; it runs until the test process ends.
pub struct FakeHub {
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHub")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FakeHub {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    /// On a fixed address, for a test whose app under test was told the endpoint beforehand.
    pub fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        Self { endpoint, shared }
    }

    /// Serves `data` at `/{repo}/resolve/{revision}/{file}`; the ETag is its sha256, as the hub
    /// gives for LFS files.
    pub fn add(&self, repo: &str, revision: &str, file: &str, data: Arc<Vec<u8>>, etag: &str) {
        self.shared.files.lock().expect("lock").insert(
            format!("/{repo}/resolve/{revision}/{file}"),
            (data, etag.to_owned()),
        );
    }

    pub fn cut_once_at(&self, offset: u64) {
        *self.shared.cut_at.lock().expect("lock") = Some(offset);
    }

    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().expect("lock") = d;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().expect("lock").clone()
    }

    pub fn clear_log(&self) {
        self.shared.log.lock().expect("lock").clear();
        self.shared.body_bytes.store(0, Ordering::SeqCst);
    }

    /// Body bytes sent for GET requests since the last `clear_log`.
    pub fn body_bytes(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::SeqCst)
    }
}

fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let a: u64 = a.parse().ok()?;
    // hf-hub asks for one byte past the end on the last chunk; the real hub clamps, so do we.
    let b: u64 = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        b.parse::<u64>().ok()?.min(len.saturating_sub(1))
    };
    (a <= b && a < len).then_some((a, b))
}

fn serve(stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut range_header = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("range")
        {
            range_header = Some(v.trim().to_owned());
        }
    }
    let file = s.files.lock().expect("lock").get(&path).cloned();
    let mut out = stream;
    let Some((data, etag)) = file else {
        s.log.lock().expect("lock").push(Request {
            method,
            path,
            range: None,
        });
        let _ = out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-Error-Code: EntryNotFound\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    let len = data.len() as u64;
    let range = range_header.as_deref().and_then(|r| parse_range(r, len));
    s.log.lock().expect("lock").push(Request {
        method: method.clone(),
        path,
        range,
    });
    let delay = *s.delay.lock().expect("lock");
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let common = format!(
        "ETag: \"{etag}\"\r\nX-Linked-Etag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n"
    );
    let (status, start, end) = match range {
        Some((a, b)) => ("206 Partial Content", a, b),
        None => ("200 OK", 0, len.saturating_sub(1)),
    };
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    let mut head = format!("HTTP/1.1 {status}\r\n{common}Content-Length: {body_len}\r\n");
    if range.is_some() {
        head.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n"));
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() || method == "HEAD" || body_len == 0 {
        return;
    }
    let mut stop = end + 1;
    let mut cut = false;
    {
        let mut c = s.cut_at.lock().expect("lock");
        if let Some(at) = *c
            && start < at
            && at < stop
            && body_len > 1
        {
            stop = at;
            cut = true;
            *c = None;
        }
    }
    let body = &data[start as usize..stop as usize];
    if out.write_all(body).is_ok() {
        s.body_bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
    }
    if cut {
        // The client sees the connection drop with the body incomplete.
        let _ = out.shutdown(std::net::Shutdown::Both);
    }
}
