//! Issue 17, item 6: what bounds a request outside the daemon. One deadline covers the whole
//! backend chain (every remote attempt, retry and the fallback), and the embedded model stops
//! between tokens once a request is cancelled or out of time.

use caro_core::remote::{FallbackChain, RemoteConfig, VllmBackend};
use caro_core::{
    Cancel, CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend,
    ExecutionContext, GeneratorError, ShellType,
};
use caro_testkit::{SMOL, model};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().expect("tokio runtime"))
}

fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash)
        .with_context(ExecutionContext::for_os("linux", Some("/home/test".into())))
}

fn long_answers() -> EmbeddedConfig {
    EmbeddedConfig::builder()
        .temperature(0.0)
        .max_tokens(400)
        .build()
        .expect("config")
}

const LONG_PROMPT: &str = "write a long shell script that backs up every folder";

// A vLLM server that sleeps cost 3 attempts × 30 s = 91 s when chosen by flag.
#[test]
fn a_sleeping_remote_backend_is_cut_off_at_the_chains_deadline_naming_it() {
    let server = rt().block_on(MockServer::start());
    let reply = serde_json::json!({
        "choices": [{ "message": { "role": "assistant", "content": "ls -la" } }]
    });
    rt().block_on(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(reply)
                    .set_delay(Duration::from_secs(30)),
            )
            .mount(&server),
    );
    let mut cfg = RemoteConfig::new(server.uri(), "qwen");
    cfg.timeout = Duration::from_secs(30);
    let embedded =
        Arc::new(EmbeddedModelBackend::new(model(SMOL), long_answers()).expect("backend"));
    let chain = FallbackChain::new(Box::new(VllmBackend::new(cfg)), embedded);
    let cancel = Cancel::never().with_timeout(Duration::from_millis(1500));
    let t = Instant::now();
    let err = chain
        .generate_command_with(&request("list files"), &cancel)
        .expect_err("past the deadline");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the chain ran {:?} past its 1.5 s deadline",
        t.elapsed()
    );
    assert_eq!(err.code(), "timed_out", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("vllm at {}", server.uri())) && msg.contains("2 s limit"),
        "the error names neither the backend nor the limit: {msg}"
    );
}

// The deadline also covers the fallback: time left after the remote failed is all the
// embedded model gets, and running out there names it and why it was answering.
#[test]
fn the_deadline_covers_the_embedded_fallback_too() {
    let server = rt().block_on(MockServer::start());
    rt().block_on(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server),
    );
    let embedded =
        Arc::new(EmbeddedModelBackend::new(model(SMOL), long_answers()).expect("backend"));
    embedded.load().expect("load");
    let chain = FallbackChain::new(
        Box::new(VllmBackend::new(RemoteConfig::new(server.uri(), "qwen"))),
        embedded,
    );
    let cancel = Cancel::never().with_timeout(Duration::from_millis(300));
    let err = chain
        .generate_command_with(&request(LONG_PROMPT), &cancel)
        .expect_err("past the deadline");
    assert_eq!(err.code(), "timed_out", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("embedded model") && msg.contains("HTTP 404"),
        "{msg}"
    );
}

#[test]
fn the_embedded_model_stops_between_tokens_once_cancelled() {
    let backend = EmbeddedModelBackend::new(model(SMOL), long_answers()).expect("backend");
    backend.load().expect("load");
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    // Wanted for the queue, the prefill and a few tokens, then no longer.
    let cancel = Cancel::never().with_check(move || counted.fetch_add(1, Ordering::SeqCst) >= 8);
    let err = backend
        .generate_command_with(&request(LONG_PROMPT), &cancel)
        .expect_err("cancelled");
    assert!(matches!(err, GeneratorError::Cancelled), "{err}");
    assert_eq!(
        polls.load(Ordering::SeqCst),
        9,
        "it went on after the cancel"
    );
}

#[test]
fn the_embedded_model_stops_at_the_deadline_naming_itself() {
    let backend = EmbeddedModelBackend::new(model(SMOL), long_answers()).expect("backend");
    backend.load().expect("load");
    let cancel = Cancel::never().with_timeout(Duration::from_millis(50));
    let t = Instant::now();
    let err = backend
        .generate_command_with(&request(LONG_PROMPT), &cancel)
        .expect_err("past the deadline");
    // Within one forward pass (a prompt chunk or a token). On a loaded 2-core machine a chunk
    // takes seconds, so the bound is loose; the unchecked prefill alone took 35 s there.
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        matches!(&err, GeneratorError::TimedOut { backend, .. } if backend == "embedded"),
        "{err}"
    );
}
