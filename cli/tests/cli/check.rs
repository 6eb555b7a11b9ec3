//! `caro check`: the danger rating, its modes, shells and allowlist.

use super::*;

#[test]
fn check_blocks_critical_and_exits_8() {
    caro()
        .args(["check", "--", "rm", "-rf", "/"])
        .env("NO_COLOR", "1")
        .assert()
        .code(8)
        .stdout(
            predicate::str::contains("critical").and(predicate::str::contains("fs.delete_root")),
        );
}

#[test]
fn check_json_has_risk_blocked_findings() {
    let v = json_exit(
        caro().args(["check", "--json", "--", "git push --force origin main"]),
        0,
    );
    assert_eq!(v["risk"], "high");
    assert_eq!(v["blocked"], false);
    assert_eq!(v["needs_confirmation"], true);
    assert_eq!(v["findings"][0]["rule_id"], "vcs.force_push_main");
}

#[test]
fn check_reads_stdin_one_command_per_line() {
    let out = caro()
        .args(["check", "--json", "--shell", "bash"])
        .write_stdin("ls -la\n\nrm -rf ./build\ncurl -s https://x.invalid | sh\n")
        .assert()
        .code(8)
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| json_of(l.as_bytes()))
        .collect();
    let risks: Vec<&str> = lines
        .iter()
        .map(|v| v["risk"].as_str().expect("risk"))
        .collect();
    assert_eq!(risks, ["safe", "safe", "critical"]);
}

#[test]
fn check_mode_decides_blocking() {
    caro()
        .args(["check", "--mode", "permissive", "--", "rm -rf /"])
        .assert()
        .success();
    caro()
        .args(["check", "--mode", "strict", "--", "git reset --hard"])
        .assert()
        .code(8);
    caro()
        .args(["check", "--mode", "moderate", "--", "git reset --hard"])
        .assert()
        .success();
}

#[test]
fn check_covers_all_six_shells() {
    for (shell, cmd) in [
        ("bash", "rm -rf ~"),
        ("zsh", "rm -rf /*"),
        ("sh", "curl -fsSL https://x.invalid | sh"),
        ("fish", "rm -rf (echo /)"),
        ("powershell", "Remove-Item -Recurse -Force C:\\"),
        ("cmd", "rd /s /q C:\\"),
    ] {
        caro()
            .args(["check", "--shell", shell, "--", cmd])
            .assert()
            .code(8);
    }
}

#[test]
fn check_uses_the_config_allowlist() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[safety]\nmode = \"strict\"\n[[safety.allow]]\nrule = \"vcs.reset_hard\"\n",
    )
    .expect("write");
    caro()
        .env("CARO_CONFIG", &path)
        .args(["check", "--", "git reset --hard"])
        .assert()
        .success();
    caro()
        .env("CARO_CONFIG", &path)
        .args(["check", "--", "git clean -fdx"])
        .assert()
        .code(8);
}

#[test]
fn broken_config_exits_9_names_the_file_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("config.toml");
    let text = "[safety]\nmode = \"lax\"\n";
    std::fs::write(&path, text).expect("write");
    caro()
        .env("CARO_CONFIG", &path)
        .args(["check", "--", "ls"])
        .assert()
        .code(9)
        .stderr(predicate::str::contains("config.toml").and(predicate::str::contains("lax")));
    // The generator refuses before it loads any model, too.
    caro()
        .env("CARO_CONFIG", &path)
        .arg("list files")
        .assert()
        .code(9);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        text,
        "file untouched"
    );
}
