//! `caro shell-init` in real terminals: tmux drives bash, zsh and fish through the key binding
//! against the real model (issue 22).

use super::terminal::Terminal;
use super::{QWEN_1_5B, caro, model};
use predicates::prelude::*;
use rstest::rstest;
use std::time::{Duration, Instant};

impl Terminal {
    /// Types `request`, presses Alt+E, and waits until the line is no longer the request.
    fn ask(&self, request: &str) -> String {
        self.press("C-u");
        self.type_text(request);
        self.wait_for("the request on the line", Duration::from_secs(10), |_| {
            self.prompt_line() == request
        });
        self.press("M-e");
        let start = Instant::now();
        loop {
            let line = self.prompt_line();
            let screen = self.screen();
            // Done when caro no longer works on it and the line changed, or caro said why it
            // left it alone (bash and fish draw "working" over the prompt line meanwhile).
            let working = screen.contains("caro: working");
            // A refusal counts once the prompt is drawn again under it: fish prints the reason
            // before it repaints the line, and reading in between saw an empty line (a CI
            // flake). Had the text really been eaten, the line stays empty and this times out.
            let refused = screen.contains("caro: refused") || screen.contains("caro: blocked");
            if !working && !line.is_empty() && (line != request || refused) {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no answer for {request:?} after 120 s; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

// Issue 22's acceptance test: after `eval "$(caro shell-init SHELL)"`, a request typed at the
// prompt and Alt+E leave the command on the line, and nothing has run; Enter runs it; a
// refused request stays where it was, with the reason under or above it.
#[rstest]
#[case::bash("bash")]
#[case::zsh("zsh")]
#[case::fish("fish")]
fn alt_e_puts_the_command_on_the_prompt_line_and_runs_nothing(#[case] shell: &str) {
    let t = Terminal::start(shell);

    let line = t.ask("find all files larger than 100MB in the current directory");
    assert!(
        line.starts_with("find ") && line.contains("-size +100M"),
        "{shell}: the line holds {line:?}"
    );

    let marker = t.work().join("marker.txt");
    let line = t.ask("create an empty file named marker.txt");
    assert!(
        line.contains("marker.txt"),
        "{shell}: the line holds {line:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "{shell}: the command ran before Enter");
    t.press("Enter");
    t.wait_for(
        "the command to run after Enter",
        Duration::from_secs(10),
        |_| marker.exists(),
    );

    let request = "delete everything in my home folder";
    let line = t.ask(request);
    assert_eq!(line, request, "{shell}: the request must stay on the line");
    let screen = t.screen();
    assert!(
        screen.contains("caro: refused") || screen.contains("caro: blocked"),
        "{shell}: no reason shown:\n{screen}"
    );
}

#[test]
fn the_key_comes_from_the_flag_then_the_environment_then_the_default() {
    caro()
        .args(["shell-init", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            r#"bind -m emacs -x '"\ee": __caro_line'"#,
        ));
    caro()
        .env("CARO_SHELL_KEY", "ctrl-g")
        .args(["shell-init", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "bindkey -M emacs '^G' __caro_line",
        ));
    caro()
        .env("CARO_SHELL_KEY", "ctrl-g")
        .args(["shell-init", "fish", "--key", "alt-j"])
        .assert()
        .success()
        .stdout(predicate::str::contains(r"bind \ej __caro_line"));
    caro()
        .args(["shell-init", "bash", "--key", "shift-e"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("alt-<letter or digit>"));
    // A broken key in the environment names where it came from, stops nothing else, and
    // `--key` still overrides it.
    caro()
        .env("CARO_SHELL_KEY", "e")
        .args(["shell-init", "bash"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("CARO_SHELL_KEY"));
    caro()
        .env("CARO_SHELL_KEY", "e")
        .args(["shell-init", "bash", "--key", "ctrl-g"])
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""\C-g": __caro_line"#));
    caro()
        .env("CARO_SHELL_KEY", "e")
        .args(["check", "--", "ls"])
        .assert()
        .success();
    // The config file's key, under the variable.
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "version = 1\n[shell_integration]\nkey = \"alt-k\"\n",
    )
    .expect("config");
    caro()
        .env("CARO_CONFIG", &config)
        .args(["shell-init", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "bindkey -M emacs '^[k' __caro_line",
        ));
}

#[test]
fn quiet_prints_the_command_alone_and_the_refusal_in_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = caro()
        .current_dir(dir.path())
        .args(["--quiet", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("list files")
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ls"), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = caro()
        .current_dir(dir.path())
        .args(["--quiet", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("delete everything in my home folder")
        .assert()
        .code(8)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("caro: "), "{stderr}");
}

// Found in review: the first Alt+E on a new machine started the 1.1 GB download with its
// progress hidden, so the prompt said "working" for minutes.
#[test]
fn quiet_without_the_model_says_what_to_run_instead_of_downloading_it() {
    let cache = tempfile::tempdir().expect("cache");
    let out = caro()
        .env("CARO_CACHE_DIR", cache.path())
        .args(["--quiet", "list files"])
        .assert()
        .code(3)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One line of its own, before any download was tried (the tests' HF_HUB_OFFLINE would
    // have made that attempt fail with "offline").
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("caro: "), "{stderr}");
    assert!(stderr.contains("caro model pull"), "{stderr}");
    assert!(!stderr.contains("offline"), "{stderr}");
}

// Found in review: a config warning (logged through tracing) reached stderr under --quiet,
// and the key binding prints stderr above the prompt as if it were about the command.
#[test]
fn quiet_keeps_config_warnings_off_stderr() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "version = 1\n[vllm]\napi_key = \"sk-test\"\n").expect("config");
    // Without --quiet the warning shows, so the check below can fail.
    caro()
        .env("CARO_CONFIG", &config)
        .arg("--list-backends")
        .assert()
        .stderr(predicate::str::contains("clear text"));
    let out = caro()
        .env("CARO_CONFIG", &config)
        .current_dir(dir.path())
        .args(["--quiet", "--temperature", "0", "-m"])
        .arg(model(QWEN_1_5B))
        .arg("list files")
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
