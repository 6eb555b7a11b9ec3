//! Remote backends: Ollama's native API and vLLM's OpenAI-compatible API, over blocking HTTP,
//! plus the chain that falls back to the embedded model when a server fails.

mod fallback;
mod ollama;
mod openai;
pub mod policy;

pub use fallback::FallbackChain;
pub use ollama::OllamaBackend;
pub use openai::VllmBackend;

use crate::generator::{CommandRequest, GeneratedCommand};
use policy::{FailureKind, RemoteFailure};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most of a 2xx reply body caro reads, for completions and probes alike. A completion
/// capped at `max_tokens` is a few KB and `/api/tags` or `/v1/models` a few hundred bytes per
/// model, so 1 MiB is far above any real answer; a server sending more (or an endless body) is
/// cut off with [`FailureKind::ReplyTooLarge`] instead of filling memory.
pub const MAX_REPLY_BYTES: u64 = 1 << 20;

/// Of an error reply (non-2xx) only this much is read: the message shows its first 200 chars.
const MAX_ERROR_BODY_BYTES: u64 = 4 << 10;

/// Settings shared by the HTTP backends.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// Server base URL, e.g. `http://localhost:11434`.
    pub url: String,
    /// Model name on the server. For vLLM, empty means "the first one `/v1/models` lists".
    pub model: String,
    /// Bearer token (vLLM).
    pub api_key: Option<String>,
    /// Whole-request timeout for generation.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Timeout of the health probe; kept short so a check never holds up a request.
    pub probe_timeout: Duration,
    pub temperature: f32,
    pub max_tokens: usize,
}

impl RemoteConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_millis(800),
            temperature: 0.2,
            max_tokens: 100,
        }
    }

    /// `http://` to a host other than loopback sends prompts (and keys) in clear text.
    pub fn plain_http_to_remote_host(&self) -> bool {
        let Ok(url) = reqwest::Url::parse(&self.url) else {
            return false;
        };
        if url.scheme() != "http" {
            return false;
        }
        match url.host() {
            Some(url::Host::Domain(d)) => d != "localhost",
            Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
            None => false,
        }
    }
}

/// One HTTP backend: a single attempt and a health probe. Retries and fallback live in
/// [`FallbackChain`], driven by [`policy::next_step`].
pub trait RemoteBackend: Send + Sync {
    fn name(&self) -> &'static str;
    fn url(&self) -> &str;
    fn attempt(&self, request: &CommandRequest) -> Result<GeneratedCommand, RemoteFailure>;
    /// One attempt that gives up after `limit` (or the backend's own timeout, if shorter), so
    /// the chain's deadline bounds every attempt, not only the number of them.
    fn attempt_within(
        &self,
        request: &CommandRequest,
        limit: Duration,
    ) -> Result<GeneratedCommand, RemoteFailure> {
        let _ = limit;
        self.attempt(request)
    }
    /// A cheap request that shows the server is up and speaks the protocol.
    fn probe(&self) -> Result<(), RemoteFailure>;
}

/// Maps a reqwest error to the policy's kinds.
fn classify(err: &reqwest::Error, what: &str) -> RemoteFailure {
    let kind = if err.is_timeout() {
        FailureKind::Timeout
    } else if err.is_connect() || err.is_request() {
        FailureKind::Connect
    } else if err.is_decode() || err.is_body() {
        FailureKind::Malformed
    } else {
        FailureKind::Connect
    };
    let mut message = format!("{what}: {}", root_cause(err));
    if kind == FailureKind::Timeout {
        message = format!("{what}: timed out");
    }
    RemoteFailure { kind, message }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.to_ascii_lowercase().contains("connection refused") {
        "connection refused".into()
    } else {
        text
    }
}

fn status_failure(status: reqwest::StatusCode, body: &str, what: &str) -> RemoteFailure {
    let code = status.as_u16();
    let kind = match code {
        401 | 403 => FailureKind::Auth(code),
        500..=599 => FailureKind::Server(code),
        _ => FailureKind::Client(code),
    };
    let detail: String = body.chars().take(200).collect();
    let message = match kind {
        FailureKind::Auth(_) => format!("{what}: the server rejected the API key (HTTP {code})"),
        _ if detail.trim().is_empty() => format!("{what}: HTTP {code}"),
        _ => format!("{what}: HTTP {code}: {}", detail.trim()),
    };
    RemoteFailure { kind, message }
}

fn blocking_client(cfg: &RemoteConfig) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .user_agent(concat!("caro/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building only fails when the TLS backend cannot start; fall back to defaults so the
        // error surfaces on the first request instead of here.
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// Health results are reused for a few seconds, so `is_available()` never costs a round trip
/// per request.
#[derive(Debug, Default)]
struct HealthCache {
    last: Mutex<Option<(Instant, Result<(), RemoteFailure>)>>,
}

const HEALTH_TTL: Duration = Duration::from_secs(5);

impl HealthCache {
    fn get_or(
        &self,
        probe: impl FnOnce() -> Result<(), RemoteFailure>,
    ) -> Result<(), RemoteFailure> {
        let mut guard = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, res)) = guard.as_ref()
            && at.elapsed() < HEALTH_TTL
        {
            return res.clone();
        }
        let res = probe();
        *guard = Some((Instant::now(), res.clone()));
        res
    }

    fn clear(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// What both HTTP backends hold: settings, base URL, the two clients and the health cache.
#[derive(Debug)]
struct Http {
    /// `ollama` or `vllm`.
    name: &'static str,
    cfg: RemoteConfig,
    base: String,
    client: reqwest::blocking::Client,
    /// Same settings with the short probe timeout.
    probe_client: reqwest::blocking::Client,
    health: HealthCache,
}

impl Http {
    fn new(cfg: RemoteConfig, name: &'static str) -> Self {
        if cfg.plain_http_to_remote_host() {
            tracing::warn!(url = %cfg.url, "{name} is reached over plain http on a non-loopback host: the prompt and any key travel unencrypted; use https");
        }
        let probe_cfg = RemoteConfig {
            timeout: cfg.probe_timeout,
            connect_timeout: cfg.probe_timeout,
            ..cfg.clone()
        };
        Self {
            name,
            base: base_url(&cfg.url),
            client: blocking_client(&cfg),
            probe_client: blocking_client(&probe_cfg),
            cfg,
            health: HealthCache::default(),
        }
    }

    /// Sends the request; the body of a 2xx reply, or the failure the policy needs.
    ///
    /// The body is read through [`read_bounded`]: at most [`MAX_REPLY_BYTES`] (a larger
    /// `Content-Length` is refused before reading), and for at most `timeout` after the headers,
    /// the same budget `Response::text` had (`timeout` is the client's: `cfg.timeout` or
    /// `cfg.probe_timeout`).
    fn fetch(
        &self,
        rb: reqwest::blocking::RequestBuilder,
        what: &str,
        timeout: Duration,
    ) -> Result<String, RemoteFailure> {
        let mut resp = rb.send().map_err(|e| classify(&e, what))?;
        let status = resp.status();
        // A configured timeout past what an Instant holds is "no limit", not a panic.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        if !status.is_success() {
            // The status says what failed; the body only adds detail, so a body that cannot
            // be read does not hide it.
            let body = read_bounded(&mut resp, MAX_ERROR_BODY_BYTES, deadline, what)
                .map(|(body, _)| body)
                .unwrap_or_default();
            return Err(status_failure(
                status,
                &String::from_utf8_lossy(&body),
                what,
            ));
        }
        if resp.content_length().is_some_and(|n| n > MAX_REPLY_BYTES) {
            return Err(self.too_large(what));
        }
        let (body, complete) = read_bounded(&mut resp, MAX_REPLY_BYTES, deadline, what)?;
        if !complete {
            return Err(self.too_large(what));
        }
        Ok(String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn too_large(&self, what: &str) -> RemoteFailure {
        let server = match self.name {
            "ollama" => "an Ollama server (by default http://localhost:11434)",
            _ => "a vLLM or other OpenAI-compatible server",
        };
        RemoteFailure {
            kind: FailureKind::ReplyTooLarge,
            message: format!(
                "{what}: the reply is larger than {} MiB, far more than any answer, so caro \
                 stopped reading it; check that this URL points at {server} and not at another \
                 service",
                MAX_REPLY_BYTES >> 20
            ),
        }
    }
}

/// Reads at most `cap` bytes of a body, giving up at `deadline`. `Ok((bytes, complete))`:
/// `complete` is false when the body went on past `cap` (the bytes are then the first `cap`).
///
/// The deadline is checked between reads; reqwest bounds each single read by the client's
/// timeout, so a body that stalls can hold on for up to one more timeout past `deadline`.
fn read_bounded(
    body: &mut impl Read,
    cap: u64,
    deadline: Instant,
    what: &str,
) -> Result<(Vec<u8>, bool), RemoteFailure> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // One byte past the cap tells "exactly cap" from "more than cap".
    let mut limited = body.take(cap + 1);
    loop {
        if Instant::now() >= deadline {
            return Err(RemoteFailure {
                kind: FailureKind::Timeout,
                message: format!("{what}: timed out"),
            });
        }
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(&e, what)),
        }
    }
    let complete = out.len() as u64 <= cap;
    out.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    Ok((out, complete))
}

/// Maps an error from reading a body: reqwest wraps its own errors in `io::Error`.
fn io_failure(err: &std::io::Error, what: &str) -> RemoteFailure {
    if let Some(e) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<reqwest::Error>())
    {
        return classify(e, what);
    }
    if err.kind() == std::io::ErrorKind::TimedOut {
        return RemoteFailure {
            kind: FailureKind::Timeout,
            message: format!("{what}: timed out"),
        };
    }
    RemoteFailure {
        kind: FailureKind::Malformed,
        message: format!("{what}: {}", root_cause(err)),
    }
}

/// Turns a remote reply into an answer with the same parsing the embedded backend uses.
fn answer(
    backend: &'static str,
    model: &str,
    raw: String,
    timings: crate::generator::Timings,
    tokens: crate::generator::TokenCounts,
    mut warnings: Vec<String>,
) -> Result<GeneratedCommand, RemoteFailure> {
    let command = crate::reply::extract_command(&raw).ok_or_else(|| RemoteFailure {
        kind: FailureKind::NoCommand,
        message: format!("{backend}: the reply held no usable command"),
    })?;
    if command != raw.trim() {
        warnings.push("the command was extracted from a longer reply".to_owned());
    }
    Ok(GeneratedCommand {
        command,
        explanation: None,
        backend: backend.to_owned(),
        model: model.to_owned(),
        timings,
        tokens,
        warnings,
        raw_output: raw,
        candidates: Vec::new(),
        fallback_reason: None,
    })
}

/// The base URL without a trailing slash or `/v1`, so both spellings work.
fn base_url(url: &str) -> String {
    let t = url.trim().trim_end_matches('/');
    t.strip_suffix("/v1").unwrap_or(t).to_string()
}
