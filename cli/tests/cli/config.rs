//! Backends and their fallback, the config file (migration, broken and odd files), `caro init`
//! and `caro status`.

use super::*;

#[test]
fn dead_ollama_falls_back_to_embedded_after_two_retries() {
    let v = json_exit(
        caro()
            .args(["--backend", "ollama", "--json", "--temperature", "0", "-m"])
            .arg(model(QWEN_1_5B))
            .env("CARO_OLLAMA_URL", "http://127.0.0.1:9")
            .arg("show the current date"),
        0,
    );
    assert_eq!(v["backend_used"], "embedded", "{v}");
    let reason = v["fallback_reason"].as_str().expect("fallback_reason");
    assert!(
        reason.contains("connection refused") && reason.contains("1 + 2 retries"),
        "{reason}"
    );
}

#[test]
fn vllm_with_a_bad_key_falls_back_after_one_request() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = rt().block_on(MockServer::start());
    rt().block_on(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"error": {"message": "invalid api key"}})),
            )
            .mount(&server),
    );
    let v = json_exit(
        caro()
            .args(["--backend", "vllm", "--json", "--temperature", "0", "-m"])
            .arg(model(QWEN_1_5B))
            .env("CARO_VLLM_URL", server.uri())
            .env("CARO_VLLM_MODEL", "served")
            .env("CARO_VLLM_API_KEY", "wrong-key")
            .arg("print the working directory"),
        0,
    );
    assert_eq!(v["backend_used"], "embedded", "{v}");
    assert!(
        v["fallback_reason"]
            .as_str()
            .is_some_and(|r| r.contains("rejected the API key")),
        "{v}"
    );
    let reqs = rt()
        .block_on(server.received_requests())
        .unwrap_or_default();
    let posts: Vec<_> = reqs
        .iter()
        .filter(|r| r.url.path() == "/v1/chat/completions")
        .collect();
    assert_eq!(posts.len(), 1, "no retry on 401");
    assert_eq!(
        posts[0]
            .headers
            .get("authorization")
            .and_then(|h| h.to_str().ok()),
        Some("Bearer wrong-key")
    );
}

fn selected(config: &std::path::Path, env_backend: Option<&str>, flag: Option<&str>) -> String {
    let mut cmd = caro();
    cmd.env("CARO_CONFIG", config)
        .env("CARO_OLLAMA_URL", "http://127.0.0.1:9")
        .env("CARO_VLLM_URL", "http://127.0.0.1:9");
    match env_backend {
        Some(b) => cmd.env("CARO_BACKEND", b),
        None => cmd.env_remove("CARO_BACKEND"),
    };
    cmd.args(["--list-backends", "--json"]);
    if let Some(f) = flag {
        cmd.args(["--backend", f]);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    let v = json_of(&out);
    v.as_array()
        .expect("list")
        .iter()
        .find(|b| b["selected"] == true)
        .and_then(|b| b["backend"].as_str())
        .expect("one selected")
        .to_owned()
}

#[test]
fn backend_selection_flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    assert_eq!(selected(&file, None, None), "embedded", "no file: default");
    std::fs::write(&file, "version = 1\ndefault_backend = \"vllm\"\n").expect("write");
    assert_eq!(selected(&file, None, None), "vllm", "file");
    assert_eq!(
        selected(&file, Some("ollama"), None),
        "ollama",
        "env over file"
    );
    assert_eq!(
        selected(&file, Some("ollama"), Some("embedded")),
        "embedded",
        "flag over env"
    );
}

#[test]
fn list_backends_marks_health_for_people() {
    caro()
        .env("CARO_OLLAMA_URL", "http://127.0.0.1:9")
        .env("CARO_VLLM_URL", "http://127.0.0.1:9")
        .env("CARO_MODEL_PATH", model(QWEN_1_5B))
        .env("NO_COLOR", "1")
        .arg("--list-backends")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("✓ embedded (selected, CPU)")
                .and(predicate::str::contains(
                    "✗ ollama (http://127.0.0.1:9, unreachable: connection refused)",
                ))
                .and(predicate::str::contains("✗ vllm")),
        );
}

#[test]
fn upstream_config_is_migrated_with_backup() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    let upstream = "[backend]\nprimary = \"vllm\"\nenable_fallback = true\n\n[backend.vllm]\nbase_url = \"http://127.0.0.1:9\"\nmodel_name = \"codellama/CodeLlama-7b-hf\"\n\n[safety]\nlevel = \"strict\"\n\n[output]\nverbose = true\n";
    std::fs::write(&file, upstream).expect("write");
    let out = caro()
        .env("CARO_CONFIG", &file)
        .args(["status", "--json"])
        .assert()
        .success()
        .stderr(predicate::str::contains("migrated"))
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["backend"], "vllm");
    assert_eq!(v["backend_source"], "file");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml.bak")).expect("backup"),
        upstream
    );
    let now = std::fs::read_to_string(&file).expect("new");
    assert!(
        now.contains("default_backend = \"vllm\"")
            && now.contains("model = \"codellama/CodeLlama-7b-hf\""),
        "{now}"
    );
    assert!(
        now.contains("[unsupported.output]") || now.contains("[unsupported]"),
        "{now}"
    );
}

#[test]
fn corrupt_config_names_line_and_column_and_is_never_rewritten() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    let text = "version = 1\ndefault_backend = \"ollama\n";
    std::fs::write(&file, text).expect("write");
    for args in [
        vec!["status"],
        vec!["--list-backends"],
        vec!["init", "--backend", "embedded", "--yes"],
    ] {
        caro()
            .env("CARO_CONFIG", &file)
            .args(&args)
            .assert()
            .code(9)
            .stderr(
                predicate::str::contains("line 2").and(predicate::str::contains("config.toml")),
            );
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
}

#[test]
fn init_with_flags_writes_the_file_and_keeps_a_backup() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("caro").join("config.toml");
    caro()
        .env("CARO_CONFIG", &file)
        .args([
            "init",
            "--backend",
            "vllm",
            "--url",
            "http://127.0.0.1:9",
            "--api-key-env",
            "TEAM_KEY",
            "--yes",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("failed").and(predicate::str::contains("wrote")));
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(
        text.contains("default_backend = \"vllm\"") && text.contains("api_key_env = \"TEAM_KEY\""),
        "{text}"
    );
    assert!(
        !text.contains("api_key ="),
        "keys are never written: {text}"
    );
    caro()
        .env("CARO_CONFIG", &file)
        .args(["init", "--backend", "embedded", "--yes"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(file.with_file_name("config.toml.bak")).expect("backup"),
        text
    );
    // Without a terminal and without --yes, init asks nothing and changes nothing.
    caro()
        .env("CARO_CONFIG", &file)
        .arg("init")
        .assert()
        .code(2);
}

// ---- issue 17: reading the config file reliably ------------------------------------------------
// Only a config file that does not exist means "defaults". Devices, FIFOs, dangling links,
// loops and unreadable files are config errors (exit 9) that name the file, so a strict
// `[safety]` mode is never dropped without a word; `caro init` writes through a symlink and
// never overwrites a backup.

/// `caro check -- ls` with `CARO_CONFIG` at `config`: must fail fast with exit 9, naming it.
fn check_refuses_config(config: &std::path::Path, needle: &str) {
    caro()
        .env("CARO_CONFIG", config)
        .args(["check", "--", "ls"])
        // A regression reads forever (/dev/zero) or blocks (a FIFO): fail, don't hang.
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(9)
        .stderr(
            predicate::str::contains(config.to_string_lossy().into_owned())
                .and(predicate::str::contains(needle)),
        );
}

#[cfg(unix)]
#[test]
fn config_path_to_dev_zero_is_refused_not_read() {
    check_refuses_config(std::path::Path::new("/dev/zero"), "character device");
    check_refuses_config(std::path::Path::new("/dev/urandom"), "character device");
}

#[cfg(unix)]
#[test]
fn config_fifo_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("config.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    check_refuses_config(&fifo, "named pipe");
}

#[test]
fn config_path_to_a_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    check_refuses_config(dir.path(), "not a regular file");
}

#[cfg(unix)]
#[test]
fn dangling_config_symlink_is_an_error_not_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("config.toml");
    std::os::unix::fs::symlink(dir.path().join("dotfiles/caro.toml"), &link).expect("ln");
    check_refuses_config(&link, "does not exist");
    // A prompt is refused too, before any model is looked for.
    caro()
        .env("CARO_CONFIG", &link)
        .arg("list files")
        .assert()
        .code(9);
}

#[cfg(unix)]
#[test]
fn config_symlink_loop_is_an_error_not_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (
        dir.path().join("config.toml"),
        dir.path().join("other.toml"),
    );
    std::os::unix::fs::symlink(&b, &a).expect("ln");
    std::os::unix::fs::symlink(&a, &b).expect("ln");
    check_refuses_config(&a, "symbolic links");
}

#[cfg(unix)]
#[test]
fn unreadable_config_is_an_error_not_defaults() {
    // A path through a file (ENOTDIR) cannot be read, for root too (a chmod 000 file is
    // readable by root, so that case would test nothing where CI runs).
    let dir = tempfile::tempdir().expect("tmp");
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").expect("write");
    check_refuses_config(&blocker.join("config.toml"), "ot a directory");
}

#[test]
fn out_of_range_config_value_exits_9_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "version = 1\n[embedded]\ntemperature = 99.0\n").expect("write");
    check_refuses_config(&file, "temperature must be between 0 and 5");
    caro()
        .env("CARO_CONFIG", &file)
        .arg("list files")
        .assert()
        .code(9)
        .stderr(
            predicate::str::contains("config.toml").and(predicate::str::contains("temperature")),
        );
}

#[cfg(unix)]
#[test]
fn init_writes_through_a_config_symlink() {
    let dir = tempfile::tempdir().expect("tmp");
    let target = dir.path().join("dotfiles").join("caro.toml");
    std::fs::create_dir_all(target.parent().expect("dir")).expect("mkdir");
    let before = "version = 1\ndefault_backend = \"vllm\"\n";
    std::fs::write(&target, before).expect("write");
    let link = dir.path().join("config.toml");
    std::os::unix::fs::symlink(&target, &link).expect("ln");
    caro()
        .env("CARO_CONFIG", &link)
        .args(["init", "--backend", "embedded", "--yes"])
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink(),
        "init replaced the symlink with a plain file"
    );
    let after = std::fs::read_to_string(&target).expect("target");
    assert!(after.contains("default_backend = \"embedded\""), "{after}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml.bak")).expect("backup"),
        before
    );
}

#[test]
fn init_keeps_every_earlier_backup() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    let original = "version = 1\ndefault_backend = \"vllm\"\n";
    std::fs::write(&file, original).expect("write");
    let mut versions = vec![original.to_owned()];
    for _ in 0..3 {
        caro()
            .env("CARO_CONFIG", &file)
            .args(["init", "--backend", "embedded", "--yes"])
            .assert()
            .success()
            .stderr(predicate::str::contains("kept as"));
        versions.push(std::fs::read_to_string(&file).expect("written"));
    }
    for (name, expected) in ["config.toml.bak", "config.toml.bak.1", "config.toml.bak.2"]
        .into_iter()
        .zip(&versions)
    {
        assert_eq!(
            &std::fs::read_to_string(dir.path().join(name)).expect(name),
            expected,
            "{name}"
        );
    }
    assert!(!dir.path().join("config.toml.bak.3").exists());
}

#[test]
fn status_reports_backend_source_and_recorded_timings() {
    let dir = tempfile::tempdir().expect("tmp");
    let cache = dir.path().join("models");
    caro()
        .env("CARO_CACHE_DIR", &cache)
        .args(["--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("print the date")
        .assert()
        .success();
    let v = json_exit(
        caro()
            .env("CARO_CACHE_DIR", &cache)
            .env("CARO_OLLAMA_URL", "http://127.0.0.1:9")
            .env("CARO_VLLM_URL", "http://127.0.0.1:9")
            .args(["status", "--json"]),
        0,
    );
    assert_eq!(v["backend"], "embedded");
    assert_eq!(v["stats"]["count"], 1, "{v}");
    assert!(v["stats"]["last_ms"].as_f64().expect("ms") > 0.0);
}
