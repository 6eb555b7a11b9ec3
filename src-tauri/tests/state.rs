//! The tray app's state and commands without a webview: the real Qwen model, the real safety
//! validator, the real config file the CLI reads.

use caro_core::safety::{RiskLevel, SafetyMode};
use caro_core::settings::{self, BackendKind};
use caro_tray::state::AppState;
use std::path::PathBuf;

fn qwen() -> PathBuf {
    caro_testkit::model(caro_testkit::QWEN_1_5B)
}

struct Fixture {
    state: AppState,
    config: PathBuf,
    history: PathBuf,
    /// A scratch home folder: Run starts there, and verdicts treat it as the user's home.
    home: PathBuf,
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
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("proj").join("sub")).expect("mkdir");
    std::fs::write(home.join("notes.txt"), "mine").expect("write");
    std::fs::write(home.join("proj/sub/main.rs"), "fn main() {}").expect("write");
    let state = AppState::with_home(Some(config.clone()), history.clone(), false, home.clone())
        .expect("state");
    Fixture {
        state,
        config,
        history,
        home,
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

    // High asks first. (`chmod -R 777 ~` used to be the example; it is critical now, since it
    // breaks ssh and logins for the whole home folder.)
    let high = f.state.check("git reset --hard");
    assert_eq!(high.risk, RiskLevel::High, "{high:?}");
    assert!(high.needs_confirmation, "{high:?}");
    let err = f
        .state
        .execute("git reset --hard", false)
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

// ---- issue 16: the popup screens requests like the CLI and rates for the folder Run uses ----------

fn assert_intact(f: &Fixture) {
    assert_eq!(
        std::fs::read_to_string(f.home.join("notes.txt")).expect("notes.txt survives"),
        "mine"
    );
    assert!(
        f.home.join("proj/sub/main.rs").is_file(),
        "main.rs survives"
    );
}

// Issue 16: "wipe my home folder" answered with `rm -rf *` showed a moderate badge and ran.
#[test]
fn wipe_my_home_folder_is_refused_in_the_popup_and_nothing_runs() {
    let f = fixture();
    let a = f.state.generate("wipe my home folder").expect("generate");
    assert!(a.blocked, "{a:?}");
    assert!(a.refusal.is_some(), "{a:?}");
    assert_eq!(PathBuf::from(&a.cwd), f.home);
    let err = f.state.execute(&a.command, true).expect_err("refused");
    assert_eq!(err.code, "blocked");
    // Editing the command does not lift the refusal of the request.
    let edited = f.state.check("rm -rf ./*");
    assert!(edited.blocked, "{edited:?}");
    assert_intact(&f);
}

#[test]
fn rm_star_from_the_popups_home_folder_is_blocked() {
    let f = fixture();
    for cmd in ["rm -rf *", "rm -rf .", "find . -delete"] {
        let a = f.state.check(cmd);
        assert_eq!(a.risk, RiskLevel::Critical, "{cmd}: {a:?}");
        assert!(a.blocked);
        let err = f.state.execute(cmd, true).expect_err("blocked");
        assert_eq!(err.code, "blocked", "{cmd}");
    }
    assert_intact(&f);
}

#[test]
fn rm_star_in_a_project_folder_asks_in_the_popup() {
    let f = fixture();
    let sub = f.state.set_run_dir("~/proj/sub").expect("a folder");
    assert_eq!(sub, f.home.join("proj/sub"));
    let a = f.state.check("rm -rf *");
    assert_eq!(a.risk, RiskLevel::High, "{a:?}");
    assert!(a.needs_confirmation && !a.blocked);
    assert_eq!(PathBuf::from(&a.cwd), sub);
    let err = f.state.execute("rm -rf *", false).expect_err("asks first");
    assert_eq!(err.code, "needs_confirmation");
    assert_intact(&f);
    // Run runs in the folder the popup shows.
    let out = f.state.execute("pwd", false).expect("safe runs");
    assert_eq!(PathBuf::from(out.stdout.trim()), sub);
    // Only an existing folder, given in full, is accepted.
    assert_eq!(
        f.state.set_run_dir("proj").expect_err("relative").code,
        "bad_folder"
    );
    assert_eq!(
        f.state
            .set_run_dir("~/no-such-folder")
            .expect_err("missing")
            .code,
        "bad_folder"
    );
    assert_eq!(f.state.run_dir(), sub);
}

/// The CLI binary this test run built next to this test (`cargo test --workspace` builds it
/// for the CLI's own tests; scripts/test.sh runs exactly that).
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/state-<hash> → target/<profile>/caro
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(format!("caro{}", std::env::consts::EXE_SUFFIX)))
        .expect("a target folder");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with the workspace (`cargo test --release --workspace`, \
         as scripts/test.sh does) or build the CLI first (`cargo build --release -p caro-cli`)",
        bin.display()
    );
    bin
}

/// Issue 18: the CLI and the popup answer the same request with the same command, verdict and
/// gate, because both ask core's pipeline. The real CLI binary and the popup's state, the
/// same config file, model, home folder and working folder.
#[test]
fn the_cli_and_the_popup_give_the_same_answer_verdict_and_gate() {
    let f = fixture();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut gates = Vec::new();
    for request in [
        "find all files larger than 100MB in the current directory",
        "delete everything in this folder",
    ] {
        let popup = f.state.generate(request).expect("the popup answers");
        let out = std::process::Command::new(cli_binary())
            .args(["--json", "--no-daemon", request])
            .current_dir(&f.home)
            .env("HOME", &f.home)
            .env("CARO_CONFIG", &f.config)
            .env("XDG_DATA_HOME", scratch.path().join("data"))
            .env("XDG_STATE_HOME", scratch.path().join("state"))
            .env("XDG_CACHE_HOME", scratch.path().join("cache"))
            .env_remove("CARO_BACKEND")
            .env_remove("CARO_MODEL")
            .env_remove("CARO_ENGINE")
            .env_remove("CARO_SAFETY_MODE")
            .output()
            .expect("the CLI runs");
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{request}: not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let command = cli["command"].as_str().or(cli["refused_command"].as_str());
        assert_eq!(command, Some(popup.command.as_str()), "{request}: {cli}");
        assert_eq!(cli["blocked"], popup.blocked, "{request}: {cli}");
        assert_eq!(
            cli["needs_confirmation"], popup.needs_confirmation,
            "{request}: {cli}"
        );
        assert_eq!(
            cli["risk"],
            serde_json::to_value(popup.risk).expect("risk"),
            "{request}: {cli}"
        );
        assert_eq!(
            cli["mode"],
            serde_json::to_value(popup.mode).expect("mode"),
            "{request}"
        );
        assert_eq!(cli["cwd"].as_str(), Some(popup.cwd.as_str()), "{request}");
        let rules = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["rule_id"].as_str().map(str::to_owned))
                .collect()
        };
        let popup_rules: Vec<String> = popup.findings.iter().map(|f| f.rule_id.clone()).collect();
        assert_eq!(rules(&cli["findings"]), popup_rules, "{request}");
        // The CLI's exit code says the same: 0 for an answer it would hand over, else blocked.
        assert_eq!(out.status.success(), !popup.blocked, "{request}: {cli}");
        gates.push(popup.blocked);
    }
    // Both sides of the gate were compared: an answer handed over, and one refused.
    assert_eq!(gates, [false, true]);
    assert_intact(&f);
}

/// Regression (issue 18): the popup's Revise screened the composed text (the request, the
/// command and the instruction joined), and nested each revision inside the one before. Now
/// it is core's conversation: each turn screened alone, the history in the user's words.
#[test]
fn revising_twice_in_the_popup_keeps_the_users_words_and_screens_each_turn() {
    let f = fixture();
    let a = f
        .state
        .generate("show the size of my home folder")
        .expect("generate");
    assert!(!a.blocked, "{a:?}");
    let r = f.state.revise("remove the -s flag").expect("revise");
    assert!(!r.blocked, "{r:?}");
    let r2 = f
        .state
        .revise("human readable sizes")
        .expect("revise again");
    assert_eq!(
        r2.prompt,
        "show the size of my home folder → remove the -s flag → human readable sizes"
    );
    assert!(!r2.blocked, "{r2:?}");
    // An edit is what a later revision changes; an empty instruction is refused with a code.
    f.state.check("du -h ~/proj");
    assert_eq!(
        f.state.revise("   ").expect_err("empty").code,
        "empty_instruction"
    );
}
