//! End-to-end tests of the `caro` binary on real models.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::PathBuf;

fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARO_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "test model {} is missing: run scripts/fetch-test-models.sh",
        path.display()
    );
    path
}

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN_1_5B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// `caro` with a clean environment: no user config, cache or model path leaks in.
fn caro() -> Command {
    let mut cmd = Command::cargo_bin("caro").expect("binary");
    cmd.env_remove("CARO_MODEL_PATH")
        .env("CARO_CACHE_DIR", "/nonexistent/caro-cache")
        .env("SHELL", "/bin/bash")
        .env_remove("CARO_LOG");
    cmd
}

fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[test]
fn qwen_1_5b_finds_large_files_end_to_end() {
    let out = caro()
        .env("CARO_MODEL_PATH", model(QWEN_1_5B))
        .args([
            "--json",
            "find all files larger than 100MB in the current directory",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    let command = v["command"].as_str().expect("command");
    assert!(command.starts_with("find "), "{command}");
    assert!(command.contains("-size +100M"), "{command}");
    assert_eq!(v["backend_used"], "embedded");
    assert_eq!(v["model"], QWEN_1_5B);
    assert_eq!(v["shell"], "bash");
    assert_ne!(v["risk"], "safe", "nothing is called safe without a check");
    assert_eq!(v["blocked"], false);
    assert!(v["explanation"].is_null());
    assert!(v["warnings"].is_array());
    for k in ["load", "prefill", "decode", "total"] {
        assert!(v["timings_ms"][k].as_f64().expect(k) > 0.0, "{k}");
    }
}

#[test]
fn human_output_puts_only_the_command_on_stdout() {
    let assert = caro()
        .args(["--temperature", "0", "-m"])
        .arg(model(SMOL))
        .args(["list", "the", "files", "here"])
        .env("NO_COLOR", "1")
        .assert()
        .success();
    let out = assert.get_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(!stdout.trim().is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("risk: unchecked"), "{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour off a TTY"
    );
}

#[test]
fn explain_and_verbose_timings() {
    let out = caro()
        .args(["--json", "--explain", "--temperature", "0", "-m"])
        .arg(model(SMOL))
        .arg("show the current directory")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert!(
        v["explanation"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
}

#[test]
fn empty_prompt_exits_5_with_an_example() {
    caro().assert().code(5).stderr(
        predicate::str::contains("request is empty").and(predicate::str::contains("example:")),
    );
    caro().arg("   ").assert().code(5);
}

#[test]
fn missing_model_exits_3_and_says_how_to_get_one() {
    caro().arg("list files").assert().code(3).stderr(
        predicate::str::contains("no model file found")
            .and(predicate::str::contains("scripts/setup.sh")),
    );
    caro()
        .args(["-m", "/no/such.gguf", "list files"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/no/such.gguf"));
}

#[test]
fn json_errors_are_code_and_message() {
    let out = caro()
        .args(["--json", "-m", "/no/such.gguf", "list"])
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such.gguf"))
    );
    assert!(v["error"]["hint"].is_string());
}

#[test]
fn corrupt_model_exits_4_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("broken.gguf");
    let src = std::fs::read(model(SMOL)).expect("read");
    std::fs::write(&path, &src[..src.len() / 3]).expect("write");
    caro()
        .arg("-m")
        .arg(&path)
        .arg("list files")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("truncated or corrupt"));
    assert_eq!(
        std::fs::metadata(&path).expect("still there").len(),
        (src.len() / 3) as u64
    );

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, "hello, not a model").expect("write");
    caro()
        .arg("-m")
        .arg(&junk)
        .arg("x")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not a GGUF"));
}

#[test]
fn overlong_prompt_exits_5() {
    caro()
        .args(["-m"])
        .arg(model(SMOL))
        .arg("word ".repeat(1000))
        .assert()
        .code(5)
        .stderr(predicate::str::contains("too long"));
}

#[test]
fn bad_sampling_option_is_a_usage_error() {
    caro()
        .args(["--top-p", "0", "-m"])
        .arg(model(SMOL))
        .arg("x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("top_p"));
}

#[test]
fn execute_without_a_terminal_runs_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    caro()
        .current_dir(dir.path())
        .args(["--execute", "--temperature", "0", "-m"])
        .arg(model(SMOL))
        .arg("create an empty file named marker.txt")
        .write_stdin("y\n")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("not run"));
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "nothing ran"
    );
}

#[test]
fn dry_run_shows_the_invocation() {
    caro()
        .args([
            "--execute",
            "--dry-run",
            "--shell",
            "zsh",
            "--temperature",
            "0",
            "-m",
        ])
        .arg(model(SMOL))
        .arg("list files")
        .assert()
        .success()
        .stderr(predicate::str::contains("would run").and(predicate::str::contains("zsh -c")));
}

#[test]
fn help_teaches_and_version_prints() {
    caro()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:").and(predicate::str::contains("Exit codes:")));
    caro()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("caro "));
    caro().args(["--shell", "tcsh", "x"]).assert().code(2);
}
