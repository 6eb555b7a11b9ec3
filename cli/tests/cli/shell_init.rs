//! `caro shell-init` in real terminals: tmux drives bash, zsh and fish through the key binding
//! against the real model (issue 22).

use super::{NO_DAEMON_SOCKET, QWEN_1_5B, caro, model, test_cache};
use predicates::prelude::*;
use rstest::rstest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PROMPT: &str = "caro-test$ ";
/// The prompt as tmux shows it: capture-pane drops trailing spaces.
const PROMPT_MARK: &str = "caro-test$";

/// One interactive shell in a detached tmux session on its own server, started with the
/// snippet exactly as the docs say to add it; the server is killed on drop.
struct Terminal {
    server: String,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Terminal {
    fn start(shell: &str) -> Self {
        let home = tempfile::tempdir().expect("home");
        let work = tempfile::tempdir().expect("work");
        let h = home.path();
        let bin = assert_cmd::cargo::cargo_bin("caro");
        let bin_dir = bin.parent().expect("bin dir");
        // The environment the shell starts with, and nothing else of ours.
        let env = [
            ("HOME", h.to_path_buf()),
            (
                "PATH",
                PathBuf::from(format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    bin_dir.display()
                )),
            ),
            ("TERM", "xterm-256color".into()),
            ("LANG", "C.UTF-8".into()),
            ("CARO_MODEL_PATH", model(QWEN_1_5B)),
            ("CARO_SOCKET", NO_DAEMON_SOCKET.into()),
            ("CARO_CACHE_DIR", test_cache()),
            ("CARO_CONFIG", "/nonexistent/caro/config.toml".into()),
            ("HF_HUB_OFFLINE", "1".into()),
            ("ZDOTDIR", h.to_path_buf()),
            ("XDG_CONFIG_HOME", h.join(".config")),
            ("XDG_DATA_HOME", h.join(".local/share")),
        ];
        let launch = match shell {
            "bash" => {
                std::fs::write(
                    h.join(".bashrc"),
                    format!("PS1='{PROMPT}'\neval \"$(caro shell-init bash)\"\n"),
                )
                .expect("bashrc");
                format!("bash --noprofile --rcfile {}/.bashrc -i", h.display())
            }
            "zsh" => {
                std::fs::write(
                    h.join(".zshrc"),
                    format!("PROMPT='{PROMPT}'\neval \"$(caro shell-init zsh)\"\n"),
                )
                .expect("zshrc");
                "zsh -i".to_owned()
            }
            "fish" => {
                let dir = h.join(".config/fish");
                std::fs::create_dir_all(&dir).expect("fish dir");
                std::fs::write(
                    dir.join("config.fish"),
                    format!(
                        "set -g fish_greeting\nfunction fish_prompt; echo -n '{PROMPT}'; end\n\
                         caro shell-init fish | source\n"
                    ),
                )
                .expect("config.fish");
                "fish -i".to_owned()
            }
            other => panic!("no terminal test for {other}"),
        };
        let vars: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}='{}'", v.display()))
            .collect();
        let command = format!("env -i {} {launch}", vars.join(" "));
        let server = format!("caro-test-{}-{shell}", std::process::id());
        let t = Self { server, home, work };
        t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "40",
            "-c",
            &t.work.path().display().to_string(),
            &command,
        ]);
        t.wait_for(
            &format!("the prompt of `{command}`"),
            Duration::from_secs(20),
            |screen| screen.contains(PROMPT_MARK),
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .expect("tmux is installed (scripts/need-packages.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    fn press(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "0", key]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0"])
    }

    /// What the user is editing now: the line under the cursor, after the prompt ("" while
    /// caro's "working" note covers it). Not the last prompt on screen: that can be an earlier
    /// one while the shell redraws.
    fn prompt_line(&self) -> String {
        let y: usize = self
            .tmux(&["display-message", "-p", "-t", "0", "#{cursor_y}"])
            .trim()
            .parse()
            .expect("cursor row");
        let screen = self.screen();
        let line = screen.lines().nth(y).unwrap_or_default();
        line.find(PROMPT_MARK)
            .map(|i| line[i + PROMPT_MARK.len()..].trim().to_owned())
            .unwrap_or_default()
    }

    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {what}; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

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
            if !working
                && ((!line.is_empty() && line != request)
                    || screen.contains("caro: refused")
                    || screen.contains("caro: blocked"))
            {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no answer for {request:?} after 120 s; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn work(&self) -> &Path {
        self.work.path()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.server, "kill-server"])
            .output();
        let _ = &self.home;
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
