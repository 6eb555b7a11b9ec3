//! The tray app's state and commands without a webview: the real Qwen model, the real safety
//! validator, the real config file the CLI reads.

use caro_core::safety::{RiskLevel, SafetyMode};
use caro_core::settings::{self, BackendKind};
use caro_tray::state::AppState;
use std::path::PathBuf;

fn qwen() -> PathBuf {
    let dir = std::env::var_os("CARO_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models"));
    let p = dir.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert!(p.is_file(), "run scripts/fetch-test-models.sh first");
    p
}

struct Fixture {
    state: AppState,
    config: PathBuf,
    history: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\ndefault_backend = \"embedded\"\n[embedded]\nmodel_path = {:?}\ntemperature = 0.0\n",
            qwen()
        ),
    )
    .expect("config");
    let history = dir.path().join("data").join("history.json");
    let state =
        AppState::with_options(Some(config.clone()), history.clone(), false).expect("state");
    Fixture {
        state,
        config,
        history,
        _dir: dir,
    }
}

#[test]
fn generate_rates_records_and_revise_refines() {
    let f = fixture();
    assert!(
        !f.state.status().model_loaded,
        "nothing loads before the first request"
    );
    let a = f
        .state
        .generate("find all files larger than 100MB in the current directory")
        .expect("generate");
    assert!(a.command.starts_with("find "), "{}", a.command);
    assert_eq!(a.risk, RiskLevel::Safe);
    assert!(!a.blocked);
    assert!(f.state.status().model_loaded, "the model stays warm");
    assert_eq!(f.state.history()[0].command, a.command);
    assert!(f.history.is_file(), "history persisted");

    let r = f.state.revise("search only in /var/log").expect("revise");
    assert_ne!(r.command, a.command, "revise changes the command");
    assert!(r.command.contains("/var/log"), "{}", r.command);
    // Regression: the history showed the long request composed for the model.
    assert_eq!(
        f.state.history()[0].prompt,
        "find all files larger than 100MB in the current directory → search only in /var/log"
    );
    assert_eq!(r.prompt, f.state.history()[0].prompt);

    f.state.forget().expect("forget");
    assert!(f.state.history().is_empty());
    assert!(!f.history.exists());
}

#[test]
fn edited_commands_are_rated_again_and_blocked_ones_never_run() {
    let f = fixture();
    let critical = f.state.check("rm -rf /");
    assert_eq!(critical.risk, RiskLevel::Critical);
    assert!(critical.blocked);
    assert!(!critical.findings.is_empty());
    let err = f.state.execute("rm -rf /", true).expect_err("blocked");
    assert_eq!(err.code, "blocked");

    let high = f.state.check("chmod -R 777 ~");
    assert!(high.needs_confirmation, "{high:?}");
    let err = f
        .state
        .execute("chmod -R 777 ~", false)
        .expect_err("asks first");
    assert_eq!(err.code, "needs_confirmation");

    let out = f
        .state
        .execute("echo hello from caro", false)
        .expect("safe runs");
    assert_eq!(out.stdout.trim(), "hello from caro");
    assert_eq!(out.status, Some(0));
}

#[test]
fn tray_changes_write_the_cli_config_and_take_effect() {
    let f = fixture();
    f.state.set_mode(SafetyMode::Strict).expect("mode");
    f.state.set_backend(BackendKind::Ollama).expect("backend");
    let on_disk = settings::load(&f.config).expect("load").config;
    assert_eq!(on_disk.safety.mode, Some(SafetyMode::Strict));
    assert_eq!(on_disk.default_backend, Some(BackendKind::Ollama));
    assert_eq!(
        on_disk.embedded.model_path.as_deref(),
        Some(qwen().as_path()),
        "other settings survive"
    );
    let s = f.state.status();
    assert_eq!(s.mode, SafetyMode::Strict);
    assert_eq!(s.backend, BackendKind::Ollama);
    // Strict blocks what moderate only asks about.
    assert!(f.state.check("chmod -R 777 ~").blocked);
    let lines = f.state.check_backends();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("embedded: ready"), "{lines:?}");
}

#[test]
fn changes_the_cli_writes_reach_the_app() {
    let f = fixture();
    assert_eq!(f.state.status().mode, SafetyMode::Moderate);
    // What `caro init` or an editor would do: rewrite the file.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut c = settings::load(&f.config).expect("load").config;
    c.safety.mode = Some(SafetyMode::Permissive);
    settings::save(&f.config, &c).expect("save");
    assert_eq!(f.state.status().mode, SafetyMode::Permissive);
    // A broken edit is ignored; the last good settings stay.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f.config, "safety = [").expect("break");
    assert_eq!(f.state.status().mode, SafetyMode::Permissive);
}

#[test]
fn a_broken_config_is_a_coded_error_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "default_backend = [").expect("write");
    let err = AppState::with_options(Some(config.clone()), dir.path().join("h.json"), false)
        .expect_err("invalid");
    assert_eq!(err.code, "config_invalid");
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        "default_backend = ["
    );
}
