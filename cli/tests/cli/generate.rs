//! The default command: an answer, its output and errors, `--execute`, `--help`.

use super::*;

#[test]
fn qwen_1_5b_finds_large_files_end_to_end() {
    let v = json_exit(
        caro().env("CARO_MODEL_PATH", model(QWEN_1_5B)).args([
            "--json",
            "find all files larger than 100MB in the current directory",
        ]),
        0,
    );
    let command = v["command"].as_str().expect("command");
    assert!(command.starts_with("find "), "{command}");
    assert!(command.contains("-size +100M"), "{command}");
    assert_eq!(v["backend_used"], "embedded");
    assert_eq!(v["model"], QWEN_1_5B);
    assert_eq!(v["shell"], "bash");
    assert_eq!(v["risk"], "safe", "{v}");
    assert_eq!(v["blocked"], false);
    assert_eq!(v["findings"], serde_json::json!([]));
    assert!(v["intent"].is_null());
    assert!(v["explanation"].is_null());
    assert!(v["warnings"].is_array());
    for k in ["load", "prefill", "decode", "total"] {
        assert!(v["timings_ms"][k].as_f64().expect(k) > 0.0, "{k}");
    }
}

/// Issue 18: the path a CPU without AVX-512 VNNI or AVX2 takes (candle's kernels, plain Rust
/// attention, exp and SiLU), end to end on the real model, forced by the switches: the CPUs
/// these tests run on have both, so without them that path would never run here.
#[test]
fn without_vnni_and_avx2_kernels_the_model_still_answers() {
    let v = json_exit(
        caro()
            .env("CARO_MODEL_PATH", model(QWEN_1_5B))
            .env("CARO_NO_VNNI", "1")
            .env("CARO_NO_AVX2", "1")
            .args([
                "--json",
                "find all files larger than 100MB in the current directory",
            ]),
        0,
    );
    let command = v["command"].as_str().expect("command");
    assert!(command.starts_with("find "), "{command}");
    assert!(command.contains("-size +100M"), "{command}");
    assert_eq!(v["risk"], "safe", "{v}");
}

#[test]
fn human_output_puts_only_the_command_on_stdout() {
    let assert = caro()
        .args(["--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .args(["list", "the", "files", "here"])
        .env("NO_COLOR", "1")
        .assert()
        .success();
    let out = assert.get_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(!stdout.trim().is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("risk: safe"), "{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour off a TTY"
    );
}

#[test]
fn explain_and_verbose_timings() {
    let v = json_exit(
        caro()
            .args(["--json", "--explain", "--temperature", "0", "-m"])
            .arg(model(QWEN_1_5B))
            .arg("show the current directory"),
        0,
    );
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
        predicate::str::contains("offline (HF_HUB_OFFLINE is set)")
            .and(predicate::str::contains("caro model pull")),
    );
    caro()
        .args(["-m", "/no/such.gguf", "list files"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/no/such.gguf"));
}

// Issue 21: with the developer's own `caro serve` running, this test's `caro` asked that
// daemon, which had a model and answered, so "missing model" failed.
#[test]
#[cfg(unix)]
fn tests_never_reach_a_daemon_of_the_developers_own() {
    let home = tempfile::tempdir().expect("tempdir");
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!("version = 1\n[embedded]\nmodel_path = {:?}\n", model(SMOL)),
    )
    .expect("config");
    // The developer's daemon, at caro's default socket for this XDG_RUNTIME_DIR.
    let user_env = |cmd: &mut std::process::Command| {
        cmd.env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", home.path())
            .env_remove("CARO_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("CARO_CONFIG", &config)
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("CARO_SOCKET")
            .env_remove("CARO_MODEL_PATH");
    };
    let mut serve = std::process::Command::new(assert_cmd::cargo::cargo_bin("caro"));
    serve.args(["serve", "--idle-unload", "0"]);
    user_env(&mut serve);
    let mut child = serve
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let socket = runtime.join("caro").join("caro.sock");
    wait_for_socket(&socket);
    // The same environment, through the tests' own `caro()`: no model, so exit 3, in-process.
    caro()
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", home.path())
        .arg("list files")
        .assert()
        .code(3);
    let mut status = std::process::Command::new(assert_cmd::cargo::cargo_bin("caro"));
    status.args(["status", "--json"]);
    user_env(&mut status);
    let out = status.output().expect("caro status");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let v = json_of(&out.stdout);
    assert_eq!(v["daemon"]["running"], true, "{v}");
    assert_eq!(
        v["daemon"]["requests_served"], 0,
        "a test's caro reached the developer's daemon: {v}"
    );
}

#[test]
#[cfg(not(all(target_os = "macos", target_arch = "aarch64")))]
fn engine_mlx_off_apple_silicon_says_to_use_the_cpu() {
    let v = json_exit(
        caro()
            .args(["--json", "--engine", "mlx", "-m"])
            .arg(model(SMOL))
            .arg("list files"),
        2,
    );
    assert_eq!(v["error"]["code"], "invalid_config", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("--engine cpu"), "{msg}");
    // `caro status` reports the engine chosen.
    let v = json_exit(
        caro().env("CARO_ENGINE", "cpu").args(["status", "--json"]),
        0,
    );
    assert_eq!(v["embedded"]["engine"], "candle-cpu", "{v}");
}

#[test]
fn json_errors_are_code_and_message() {
    let v = json_exit(caro().args(["--json", "-m", "/no/such.gguf", "list"]), 3);
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
fn execute_runs_a_safe_command_without_asking_and_adds_it_to_the_history() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join(".bash_history"), "git status\n").expect("seed");
    caro()
        .env("HOME", home.path())
        .current_dir(dir.path())
        .args(["--execute", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("create an empty file named marker.txt")
        .assert()
        .success()
        .stderr(predicate::str::contains("risk: safe"));
    assert!(
        dir.path().join("marker.txt").is_file(),
        "the safe command ran"
    );
    // Issue 22: what caro ran comes back with the up arrow, after what was already there.
    let history = std::fs::read_to_string(home.path().join(".bash_history")).expect("history");
    let mut lines = history.lines();
    assert_eq!(lines.next(), Some("git status"), "{history}");
    assert!(
        lines.next().is_some_and(|l| l.contains("marker.txt")),
        "{history}"
    );

    // CARO_HISTORY=0 (or `[shell_integration] history = false`) runs it and leaves the
    // history alone.
    std::fs::remove_file(dir.path().join("marker.txt")).expect("rm");
    caro()
        .env("HOME", home.path())
        .env("CARO_HISTORY", "0")
        .current_dir(dir.path())
        .args(["--execute", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("create an empty file named marker.txt")
        .assert()
        .success();
    assert!(dir.path().join("marker.txt").is_file(), "it ran");
    assert_eq!(
        std::fs::read_to_string(home.path().join(".bash_history")).expect("history"),
        history
    );
}

#[test]
fn execute_without_a_terminal_never_runs_what_needs_confirmation() {
    // `rm -rf *` in a folder that is not home is high, which the default mode asks about;
    // with no terminal to ask on, nothing runs.
    let dir = tempfile::tempdir().expect("tmp");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(dir.path().join("keep.txt"), "data").expect("write");
    caro()
        .current_dir(dir.path())
        .args(["--execute", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("recursively delete all files and folders in the current directory")
        .env("HOME", home.path())
        .write_stdin("y\n")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("not run"));
    assert!(dir.path().join("keep.txt").is_file(), "nothing ran");
    assert!(
        !home.path().join(".bash_history").exists(),
        "what did not run is not in the history"
    );
}

#[test]
fn destructive_request_is_blocked_or_refused_and_never_printed() {
    let dir = tempfile::tempdir().expect("tmp");
    let v = json_exit(
        caro()
            .current_dir(dir.path())
            .args(["--json", "--temperature", "0", "-m"])
            .arg(model(QWEN_1_5B))
            .arg("delete everything in my home folder"),
        8,
    );
    assert_eq!(v["blocked"], true, "{v}");
    assert_eq!(v["intent"]["category"], "delete_everything", "{v}");
    let action = v["intent"]["action"].as_str().expect("action");
    assert!(action == "refused" || action == "flagged", "{v}");
    // Human mode: stdout stays empty, so `$(caro …)` can never pick the command up.
    caro()
        .current_dir(dir.path())
        .args(["--execute", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("delete everything in my home folder")
        .assert()
        .code(8)
        .stdout("");
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
        .arg(model(QWEN_1_5B))
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

/// Issue 20: best-of-k end to end on the real model. `--json` says how the command was chosen
/// among the candidates, and the preview says what it would do, run in the sandbox on a copy:
/// the folder itself is left as it was.
#[test]
fn candidates_are_chosen_and_previewed_without_touching_the_folder() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.txt"), "keep\n").expect("seed");
    let v = json_exit(
        caro()
            .current_dir(dir.path())
            .env("CARO_MODEL_PATH", model(QWEN_1_5B))
            .args([
                "--json",
                "--candidates",
                "3",
                "create an empty file named marker.txt",
            ]),
        0,
    );
    let command = v["command"].as_str().expect("command");
    assert!(command.contains("marker.txt"), "{v}");
    let s = &v["selection"];
    let k = s["k"].as_u64().expect("k");
    assert!((1..=3).contains(&k), "{v}");
    assert!(s["distinct"].as_u64().expect("distinct") <= k, "{v}");
    assert!(
        ["single", "execution"].contains(&s["method"].as_str().expect("method")),
        "{v}"
    );
    assert_eq!(v["effects"]["previewed"], true, "{v}");
    assert_eq!(v["effects"]["summary"], "would create marker.txt", "{v}");
    assert!(
        !dir.path().join("marker.txt").exists(),
        "the preview ran on a copy"
    );

    // Human output shows the preview before anything runs.
    caro()
        .current_dir(dir.path())
        .args(["--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("create an empty file named marker.txt")
        .assert()
        .success()
        .stderr(predicate::str::contains("preview: would create marker.txt"));
    assert!(!dir.path().join("marker.txt").exists());
}

#[test]
fn candidates_out_of_range_is_a_usage_error() {
    caro()
        .args(["--candidates", "9", "list files"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--candidates"));
}
