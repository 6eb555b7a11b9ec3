//! End-to-end tests of the `caro` binary on real models, one module per command or concern;
//! this file holds what they share: a `caro` with a clean environment and JSON helpers.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::PathBuf;

mod check;
mod completions;
mod config;
mod errors;
mod faults;
mod gate;
mod generate;
mod model;
mod prefix_cache;
mod review;
mod serve;
mod shell_init;
mod terminal;

use caro_testkit::{QWEN_1_5B, SMOL, model};

/// Where `caro()` looks for a daemon: nowhere, so a `caro serve` or tray app of the developer's
/// never answers a test (issue 21). Tests of the daemon set their own `CARO_SOCKET`.
const NO_DAEMON_SOCKET: &str = "/nonexistent/caro/caro.sock";

/// The tests' own model cache (stats, prefix caches; no models), under cargo's target dir: a
/// developer's cache never leaks in, and tests run as root no longer create `/nonexistent`.
/// Shared by the tests, as one user's cache is; tests of the cache itself use their own.
fn test_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-cache")
}

/// The home folder of every test that does not bring its own (created on first use).
fn test_home() -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-home");
    std::fs::create_dir_all(&home).expect("test home");
    home
}

/// `caro` with a clean environment: no user config, cache, model path or daemon leaks in.
fn caro() -> Command {
    let mut cmd = Command::cargo_bin("caro").expect("binary");
    cmd.env_remove("CARO_MODEL_PATH")
        .env("CARO_CACHE_DIR", test_cache())
        .env("CARO_CONFIG", "/nonexistent/caro/config.toml")
        .env("CARO_SOCKET", NO_DAEMON_SOCKET)
        .env("SHELL", "/bin/bash")
        // `--execute` appends to the shell's history: never the developer's own.
        .env("HOME", test_home())
        .env_remove("HISTFILE")
        .env_remove("XDG_DATA_HOME")
        // No test downloads a model unless it says so.
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_ENDPOINT")
        .env_remove("CARO_MODEL")
        .env_remove("CARO_LOG");
    cmd
}

/// Runs `cmd`, expects exit `code`, and parses its stdout as JSON.
fn json_exit(cmd: &mut assert_cmd::Command, code: i32) -> serde_json::Value {
    json_of(&cmd.assert().code(code).get_output().stdout)
}

fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// One runtime for the tests' mock servers (wiremock).
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("runtime"))
}

/// An address nothing listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// Waits until a starting `caro serve` has made its socket (30 s at most).
fn wait_for_socket(socket: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "caro serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
