//! Remote backends against local servers that answer exactly as Ollama and vLLM document:
//! protocol, faults, retry counts, and fallback to the real embedded model.

use caro_core::remote::policy::FailureKind;
use caro_core::remote::{
    FallbackChain, MAX_REPLY_BYTES, OllamaBackend, RemoteBackend, RemoteConfig, VllmBackend,
};
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ShellType,
};
use caro_testkit::{QWEN_1_5B, model};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One runtime for every mock server; the blocking clients run on the test threads.
fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().expect("tokio runtime"))
}

fn server() -> MockServer {
    rt().block_on(MockServer::start())
}

fn mount(server: &MockServer, mock: Mock) {
    rt().block_on(mock.mount(server));
}

fn requests(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    rt().block_on(server.received_requests())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

/// `/api/chat` reply as Ollama sends it with `stream: false`.
fn ollama_reply(content: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "qwen2.5-coder:1.5b",
        "created_at": "2026-11-24T10:00:00.000000Z",
        "message": { "role": "assistant", "content": content },
        "done_reason": "stop",
        "done": true,
        "total_duration": 512_000_000u64,
        "load_duration": 12_000_000u64,
        "prompt_eval_count": 301,
        "prompt_eval_duration": 300_000_000u64,
        "eval_count": 9,
        "eval_duration": 190_000_000u64
    })
}

/// `/v1/chat/completions` reply as vLLM sends it.
fn openai_reply(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-7f3a",
        "object": "chat.completion",
        "created": 1_764_000_000u64,
        "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 310, "total_tokens": 322, "completion_tokens": 12 }
    })
}

fn cfg(url: &str) -> RemoteConfig {
    let mut c = RemoteConfig::new(url, "qwen2.5-coder:1.5b");
    c.timeout = Duration::from_secs(2);
    c.probe_timeout = Duration::from_millis(500);
    c
}

fn vllm_cfg(url: &str, key: Option<&str>) -> RemoteConfig {
    let mut c = cfg(url);
    c.model = "Qwen/Qwen2.5-Coder-7B-Instruct".into();
    c.api_key = key.map(str::to_string);
    c
}

fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash)
}

fn no_sleep(_: Duration) {}

/// The real embedded model, shared (its FIFO lock serialises the tests that fall back).
fn embedded() -> Arc<dyn CommandGenerator> {
    static E: OnceLock<Arc<EmbeddedModelBackend>> = OnceLock::new();
    E.get_or_init(|| {
        let c = EmbeddedConfig::builder()
            .temperature(0.0)
            .build()
            .expect("config");
        Arc::new(EmbeddedModelBackend::new(model(QWEN_1_5B), c).expect("embedded"))
    })
    .clone()
}

/// An embedded backend whose model file does not exist: fallback fails, and the error shows
/// the remote side's story without paying for a model load.
fn missing_embedded() -> Arc<dyn CommandGenerator> {
    Arc::new(
        EmbeddedModelBackend::new("/nonexistent/caro/model.gguf", EmbeddedConfig::default())
            .expect("backend"),
    )
}

// ---- protocol -----------------------------------------------------------------------------

#[test]
fn ollama_chat_sends_schema_and_options_and_parses_the_reply() {
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .and(body_partial_json(serde_json::json!({
                "model": "qwen2.5-coder:1.5b",
                "stream": false,
                "format": { "type": "object", "required": ["command"] },
                "options": { "num_predict": 100 }
            })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(ollama_reply(r#"{"command": "ls -la"}"#)),
            ),
    );
    let b = OllamaBackend::new(cfg(&s.uri()));
    let out = b.attempt(&request("list files")).expect("answer");
    assert_eq!(out.command, "ls -la");
    assert_eq!(out.backend, "ollama");
    assert_eq!(out.tokens.prompt, 301);
    assert_eq!(out.tokens.generated, 9);
    let sent = requests(&s, "/api/chat");
    assert_eq!(sent.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("json body");
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles.first(), Some(&"system"));
    assert_eq!(roles.last(), Some(&"user"));
}

#[test]
fn vllm_sends_bearer_key_and_reads_the_command_out_of_prose() {
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer k-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_reply(
                "Sure! To see folder sizes, run `du -sh *` in the directory.",
            ))),
    );
    let b = VllmBackend::new(vllm_cfg(&s.uri(), Some("k-123")));
    let out = b.attempt(&request("folder sizes")).expect("answer");
    assert_eq!(out.command, "du -sh *");
    assert_eq!(out.backend, "vllm");
    assert!(
        out.warnings.iter().any(|w| w.contains("extracted")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn vllm_without_a_model_uses_the_first_one_the_server_lists() {
    let s = server();
    mount(
        &s,
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "object": "list",
                "data": [{ "id": "served-model", "object": "model", "owned_by": "vllm" }]
            }))),
    );
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(
                serde_json::json!({ "model": "served-model" }),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_reply("uptime"))),
    );
    let mut c = cfg(&s.uri());
    c.model = String::new();
    let out = VllmBackend::new(c)
        .attempt(&request("how long has it been up"))
        .expect("answer");
    assert_eq!(
        (out.command.as_str(), out.model.as_str()),
        ("uptime", "served-model")
    );
}

// ---- faults and retry counts ------------------------------------------------------------------

#[test]
fn connection_refused_retries_twice_then_falls_back_to_the_real_embedded_model() {
    // Port 9 (discard) on loopback: nothing listens, so every attempt is refused.
    let chain = FallbackChain::new(
        Box::new(OllamaBackend::new(cfg("http://127.0.0.1:9"))),
        embedded(),
    )
    .with_sleeper(no_sleep);
    let out = chain
        .generate_command(&request("list all files in this folder"))
        .expect("fallback answer");
    assert_eq!(out.backend, "embedded");
    let reason = out.fallback_reason.expect("fallback_reason");
    assert!(reason.contains("connection refused"), "{reason}");
    assert!(reason.contains("3 attempts"), "{reason}");
    assert!(!out.command.is_empty());
}

#[test]
fn server_error_three_times_falls_back_after_exactly_two_retries() {
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(ResponseTemplate::new(500).set_body_string("model crashed")),
    );
    let chain = FallbackChain::new(Box::new(OllamaBackend::new(cfg(&s.uri()))), embedded())
        .with_sleeper(no_sleep);
    let out = chain
        .generate_command(&request("show the current date"))
        .expect("fallback answer");
    assert_eq!(out.backend, "embedded");
    assert!(
        out.fallback_reason
            .as_deref()
            .is_some_and(|r| r.contains("HTTP 500")),
        "{:?}",
        out.fallback_reason
    );
    assert_eq!(requests(&s, "/api/chat").len(), 3, "1 attempt + 2 retries");
}

#[test]
fn server_error_then_success_is_retried() {
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(ollama_reply(r#"{"command":"pwd"}"#)),
            )
            .with_priority(2),
    );
    let chain = FallbackChain::new(
        Box::new(OllamaBackend::new(cfg(&s.uri()))),
        missing_embedded(),
    )
    .with_sleeper(no_sleep);
    let out = chain
        .generate_command(&request("where am i"))
        .expect("answer");
    assert_eq!(
        (out.command.as_str(), out.backend.as_str()),
        ("pwd", "ollama")
    );
    assert!(out.fallback_reason.is_none());
    assert_eq!(requests(&s, "/api/chat").len(), 2);
}

#[test]
fn timeout_is_retried_and_a_slow_answer_inside_the_limit_is_accepted() {
    let slow = server();
    mount(
        &slow,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(ollama_reply("ls"))
                    .set_delay(Duration::from_millis(1500)),
            ),
    );
    let mut c = cfg(&slow.uri());
    c.timeout = Duration::from_millis(400);
    let chain = FallbackChain::new(Box::new(OllamaBackend::new(c)), missing_embedded())
        .with_sleeper(no_sleep);
    let err = chain
        .generate_command(&request("list"))
        .expect_err("times out, and the fallback has no model");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(requests(&slow, "/api/chat").len(), 3);

    let mut c = cfg(&slow.uri());
    c.timeout = Duration::from_secs(5);
    let start = Instant::now();
    let out = OllamaBackend::new(c)
        .attempt(&request("list"))
        .expect("slow but in time");
    assert_eq!(out.command, "ls");
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn rejected_key_falls_back_after_one_request() {
    for status in [401u16, 403] {
        let s = server();
        mount(
            &s,
            Mock::given(method("POST"))
                .and(path("/v1/chat/completions"))
                .respond_with(
                    ResponseTemplate::new(status)
                        .set_body_json(serde_json::json!({"error": {"message": "bad key"}})),
                ),
        );
        let chain = FallbackChain::new(
            Box::new(VllmBackend::new(vllm_cfg(&s.uri(), Some("wrong")))),
            missing_embedded(),
        )
        .with_sleeper(no_sleep);
        let err = chain
            .generate_command(&request("list"))
            .expect_err("no model to fall back on");
        assert!(err.to_string().contains("rejected the API key"), "{err}");
        assert_eq!(
            requests(&s, "/v1/chat/completions").len(),
            1,
            "HTTP {status}: no retry"
        );
    }
}

#[test]
fn malformed_json_falls_back_without_retrying() {
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"choices\": [")),
    );
    let b = VllmBackend::new(vllm_cfg(&s.uri(), None));
    let fail = b.attempt(&request("list")).expect_err("malformed");
    assert_eq!(fail.kind, FailureKind::Malformed);
    let chain = FallbackChain::new(
        Box::new(VllmBackend::new(vllm_cfg(&s.uri(), None))),
        missing_embedded(),
    )
    .with_sleeper(no_sleep);
    assert!(chain.generate_command(&request("list")).is_err());
    assert_eq!(
        requests(&s, "/v1/chat/completions").len(),
        2,
        "one per call, no retries"
    );
}

// ---- health -------------------------------------------------------------------------------------

#[test]
fn health_probe_is_bounded_and_cached() {
    let s = server();
    mount(&s, Mock::given(method("GET")).and(path("/api/tags")).respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "models": [{ "name": "qwen2.5-coder:1.5b", "model": "qwen2.5-coder:1.5b", "size": 986_000_000u64 }]
    }))));
    let b = OllamaBackend::new(cfg(&s.uri()));
    assert!(b.is_available());
    assert!(b.is_available());
    assert_eq!(
        requests(&s, "/api/tags").len(),
        1,
        "second check came from the cache"
    );

    // A server that never answers: the probe gives up at its own short timeout.
    let hang = server();
    mount(
        &hang,
        Mock::given(method("GET"))
            .and(path("/api/tags"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10))),
    );
    let start = Instant::now();
    assert!(!OllamaBackend::new(cfg(&hang.uri())).is_available());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn probe_names_a_model_that_is_not_pulled() {
    let s = server();
    mount(
        &s,
        Mock::given(method("GET"))
            .and(path("/api/tags"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "models": [{ "name": "llama3:8b" }] })),
            ),
    );
    let err = OllamaBackend::new(cfg(&s.uri()))
        .health()
        .expect_err("model missing");
    assert!(err.message.contains("ollama pull"), "{}", err.message);
}

#[test]
fn plain_http_is_flagged_only_off_loopback() {
    assert!(!RemoteConfig::new("http://localhost:8000", "m").plain_http_to_remote_host());
    assert!(!RemoteConfig::new("http://127.0.0.1:8000", "m").plain_http_to_remote_host());
    assert!(!RemoteConfig::new("https://gpu.example.com", "m").plain_http_to_remote_host());
    assert!(RemoteConfig::new("http://gpu.example.com:8000", "m").plain_http_to_remote_host());
}

// ---- oversized replies (issue 17: an endless body drove caro to 4.6 GB in 9 s) -----------------

/// A loopback server that answers every request with `status` and a chunked body: `prefix`, then
/// `chunk` bytes of `a` after `chunk` bytes, `pace` apart, without end. Every loop is bounded:
/// it accepts connections for 30 s, and each connection stops after 20 s or 64 MiB, or as soon
/// as caro hangs up. Returns the server's URL.
fn endless_server(status: u16, prefix: &'static str, chunk: usize, pace: Duration) -> String {
    loopback_server(move |conn| answer_endlessly(conn, status, prefix, chunk, pace))
}

/// A loopback server that hands every connection to `answer` on a thread of its own,
/// accepting for 30 s. Returns its URL.
pub fn loopback_server(answer: impl Fn(TcpStream) + Send + Clone + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match listener.accept() {
                Ok((conn, _)) => {
                    let answer = answer.clone();
                    std::thread::spawn(move || answer(conn));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    url
}

fn answer_endlessly(mut conn: TcpStream, status: u16, prefix: &str, chunk: usize, pace: Duration) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    // The request head (the small JSON body after it is left unread).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let start = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{prefix}\r\n",
        prefix.len()
    );
    if conn.write_all(start.as_bytes()).is_err() {
        return;
    }
    let mut piece = format!("{chunk:x}\r\n").into_bytes();
    piece.extend(std::iter::repeat_n(b'a', chunk));
    piece.extend_from_slice(b"\r\n");
    let until = Instant::now() + Duration::from_secs(20);
    let mut sent = 0usize;
    while Instant::now() < until && sent < 64 << 20 {
        if conn.write_all(&piece).is_err() {
            return; // caro hung up
        }
        sent += chunk;
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
}

const OLLAMA_PREFIX: &str =
    r#"{"model":"qwen2.5-coder:1.5b","message":{"role":"assistant","content":""#;
const OPENAI_PREFIX: &str =
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":""#;

/// A generous timeout, so only the size cap can end these requests quickly.
fn patient(mut c: RemoteConfig) -> RemoteConfig {
    c.timeout = Duration::from_secs(30);
    c.probe_timeout = Duration::from_secs(30);
    c
}

/// The failure an oversized or endless reply must give, and soon.
fn assert_cut_off(fail: &caro_core::remote::policy::RemoteFailure, start: Instant) {
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fail.kind, FailureKind::ReplyTooLarge, "{}", fail.message);
    assert_eq!(fail.code(), "reply_too_large");
}

#[test]
fn an_endless_reply_is_cut_off_with_a_coded_error() {
    let url = endless_server(200, OLLAMA_PREFIX, 16 * 1024, Duration::ZERO);
    let b = OllamaBackend::new(patient(cfg(&url)));
    let start = Instant::now();
    let fail = b
        .attempt(&request("list files"))
        .expect_err("endless reply");
    assert_cut_off(&fail, start);
    assert!(fail.message.contains("1 MiB"), "{}", fail.message);
    assert!(
        fail.message.contains("an Ollama server"),
        "{}",
        fail.message
    );

    // The code reaches GeneratorError, which the CLI, the daemon and the tray app report.
    let err = b
        .generate_command(&request("list files"))
        .expect_err("endless reply");
    assert_eq!(err.code(), "reply_too_large", "{err}");
}

#[test]
fn an_endless_vllm_reply_is_cut_off_with_a_coded_error() {
    let url = endless_server(200, OPENAI_PREFIX, 16 * 1024, Duration::ZERO);
    let b = VllmBackend::new(patient(vllm_cfg(&url, Some("k"))));
    let start = Instant::now();
    let fail = b
        .attempt(&request("list files"))
        .expect_err("endless reply");
    assert_cut_off(&fail, start);
    assert!(
        fail.message.contains("OpenAI-compatible"),
        "{}",
        fail.message
    );
    let err = b
        .generate_command(&request("list files"))
        .expect_err("endless reply");
    assert_eq!(err.code(), "reply_too_large", "{err}");
}

#[test]
fn an_endless_probe_reply_is_cut_off_with_a_coded_error() {
    let ollama = endless_server(200, r#"{"models":[{"name":""#, 16 * 1024, Duration::ZERO);
    let vllm = endless_server(
        200,
        r#"{"object":"list","data":[{"id":""#,
        16 * 1024,
        Duration::ZERO,
    );
    let backends: [Box<dyn RemoteBackend>; 2] = [
        Box::new(OllamaBackend::new(patient(cfg(&ollama)))),
        Box::new(VllmBackend::new(patient(vllm_cfg(&vllm, None)))),
    ];
    for b in backends {
        let start = Instant::now();
        let fail = b.probe().expect_err("endless /api/tags or /v1/models");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}: {:?}",
            b.name(),
            start.elapsed()
        );
        assert_eq!(fail.code(), "reply_too_large", "{}", fail.message);
    }
    // vLLM with no model configured probes before it asks: the same cap applies there.
    let mut c = patient(vllm_cfg(&vllm, None));
    c.model = String::new();
    let fail = VllmBackend::new(c)
        .attempt(&request("list files"))
        .expect_err("endless /v1/models");
    assert_eq!(fail.code(), "reply_too_large", "{}", fail.message);
}

#[test]
fn an_oversized_reply_is_refused_and_falls_back_without_retrying() {
    // Well-formed JSON, just larger than any answer, sent with a Content-Length.
    let huge = "a".repeat(MAX_REPLY_BYTES as usize + 4096);
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ollama_reply(&huge))),
    );
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_reply(&huge))),
    );
    let fail = VllmBackend::new(vllm_cfg(&s.uri(), None))
        .attempt(&request("list"))
        .expect_err("too large");
    assert_eq!(fail.kind, FailureKind::ReplyTooLarge, "{}", fail.message);

    let chain = FallbackChain::new(
        Box::new(OllamaBackend::new(cfg(&s.uri()))),
        missing_embedded(),
    )
    .with_sleeper(no_sleep);
    let err = chain
        .generate_command(&request("list"))
        .expect_err("no model to fall back on");
    assert_eq!(err.code(), "reply_too_large", "{err}");
    assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
    assert_eq!(
        requests(&s, "/api/chat").len(),
        1,
        "the same server would send the same reply: no retry"
    );
}

#[test]
fn a_reply_of_exactly_the_cap_is_still_read() {
    let mut reply = ollama_reply(r#"{"command": "ls"}"#);
    reply["padding"] = "".into();
    let bare = serde_json::to_string(&reply).expect("json").len();
    reply["padding"] = "a".repeat(MAX_REPLY_BYTES as usize - bare).into();
    let body = serde_json::to_string(&reply).expect("json");
    assert_eq!(body.len() as u64, MAX_REPLY_BYTES);
    let s = server();
    mount(
        &s,
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(body.into_bytes(), "application/json"),
            ),
    );
    let out = OllamaBackend::new(cfg(&s.uri()))
        .attempt(&request("list"))
        .expect("a reply at the cap is accepted");
    assert_eq!(out.command, "ls");
}

#[test]
fn an_endless_error_reply_still_reports_the_status() {
    let url = endless_server(500, "model crashed: ", 16 * 1024, Duration::ZERO);
    let start = Instant::now();
    let fail = OllamaBackend::new(patient(cfg(&url)))
        .attempt(&request("list"))
        .expect_err("500");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fail.kind, FailureKind::Server(500), "{}", fail.message);
    assert!(fail.message.contains("model crashed"), "{}", fail.message);
}

#[test]
fn a_reply_that_trickles_without_end_times_out() {
    // Under the cap for as long as it lasts: the request's timeout is what ends it.
    let url = endless_server(200, OLLAMA_PREFIX, 1, Duration::from_millis(20));
    let mut c = cfg(&url);
    c.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let fail = OllamaBackend::new(c)
        .attempt(&request("list"))
        .expect_err("trickle");
    assert_eq!(fail.kind, FailureKind::Timeout, "{}", fail.message);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

// ---- a real OpenAI-compatible server ------------------------------------------------------------

/// llama.cpp's llama-server, built by `scripts/build-llama-server.sh`, serving the 1.5B test
/// model; killed when dropped.
struct LlamaServer {
    child: std::process::Child,
    url: String,
    /// llama-server's log, shown when it dies or never answers.
    log: tempfile::NamedTempFile,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn llama_server_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CARO_LLAMA_SERVER") {
        // Relative paths are from the workspace root (test binaries run in the crate's folder).
        let p = std::path::PathBuf::from(p);
        return if p.is_absolute() {
            p
        } else {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(p)
        };
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/llama-server");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("llama-server-"))
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no llama-server in {}: run scripts/build-llama-server.sh",
                dir.display()
            )
        })
}

fn start_llama_server(api_key: &str) -> LlamaServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = std::process::Command::new(llama_server_binary())
        .args(["-m"])
        .arg(model(QWEN_1_5B))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-c",
            "2048",
            "-t",
            "2",
            "--api-key",
            api_key,
            "--alias",
            "qwen-test",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("start llama-server");
    let mut server = LlamaServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ok = client
            .get(format!("{}/health", server.url))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return server;
        }
        // A server that died (SIGILL from an instruction set the CPU lists but cannot run, in
        // the CI run that failed) is reported at once, with its log, not after the deadline.
        if let Some(status) = server.child.try_wait().expect("wait") {
            panic!(
                "llama-server exited ({status}) before it answered /health; its log ends:\n{}",
                log_tail(&server)
            );
        }
        assert!(
            Instant::now() < deadline,
            "llama-server did not come up in 180 s; its log ends:\n{}",
            log_tail(&server)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn log_tail(server: &LlamaServer) -> String {
    let text = std::fs::read_to_string(server.log.path()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn vllm_backend_works_against_a_real_llama_server() {
    let server = start_llama_server("test-key");
    // No model configured: the backend asks /v1/models, as with a vLLM that serves one model.
    let mut c = RemoteConfig::new(server.url.clone(), "");
    c.api_key = Some("test-key".into());
    c.temperature = 0.0;
    c.timeout = Duration::from_secs(120);
    let b = VllmBackend::new(c);
    assert!(b.is_available(), "{:?}", b.health());
    let out = b
        .attempt(&request(
            "list all files in the current directory, including hidden ones",
        ))
        .expect("answer");
    assert_eq!(out.backend, "vllm");
    assert_eq!(out.model, "qwen-test");
    assert!(out.command.starts_with("ls"), "{}", out.command);
    assert!(
        out.tokens.prompt > 100 && out.tokens.generated > 0,
        "{:?}",
        out.tokens
    );

    // The same server with the wrong key: rejected, and the policy falls back at once.
    let mut bad = RemoteConfig::new(server.url.clone(), "qwen-test");
    bad.api_key = Some("wrong".into());
    let fail = VllmBackend::new(bad)
        .attempt(&request("list files"))
        .expect_err("401");
    assert_eq!(fail.kind, FailureKind::Auth(401), "{}", fail.message);
}
