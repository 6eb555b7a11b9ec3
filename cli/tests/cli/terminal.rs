//! A real terminal for tests: an interactive shell in a detached tmux session, driven by keys
//! and read off the screen.

use super::{NO_DAEMON_SOCKET, QWEN_1_5B, model, test_cache};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const PROMPT: &str = "caro-test$ ";
/// The prompt as tmux shows it: capture-pane drops trailing spaces.
pub const PROMPT_MARK: &str = "caro-test$";

/// One interactive shell in a detached tmux session on its own server, started with the
/// snippet exactly as the docs say to add it; the server is killed on drop.
pub struct Terminal {
    server: String,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Terminal {
    pub fn start(shell: &str) -> Self {
        Self::start_with(shell, &[])
    }

    /// [`Self::start`] with more variables in the shell's environment.
    pub fn start_with(shell: &str, extra: &[(&str, PathBuf)]) -> Self {
        let home = tempfile::tempdir().expect("home");
        let work = tempfile::tempdir().expect("work");
        let h = home.path();
        let bin = assert_cmd::cargo::cargo_bin("caro");
        let bin_dir = bin.parent().expect("bin dir");
        // The environment the shell starts with, and nothing else of ours.
        let mut env = vec![
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
        env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
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
        // One tmux server per terminal: tests run in parallel, several with the same shell.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let server = format!("caro-test-{}-{shell}-{n}", std::process::id());
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

    pub fn tmux(&self, args: &[&str]) -> String {
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

    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    pub fn press(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "0", key]);
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0"])
    }

    /// What the user is editing now: the line under the cursor, after the prompt ("" while
    /// caro's "working" note covers it). Not the last prompt on screen: that can be an earlier
    /// one while the shell redraws.
    pub fn prompt_line(&self) -> String {
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

    pub fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
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

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn work(&self) -> &Path {
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
