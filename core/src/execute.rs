//! Runs a command the user chose in their shell, and records it in that shell's history file.
//!
//! One invocation for every frontend (the CLI's `--execute`, the popup's Run), so a command
//! runs the same way wherever it was asked for. Deciding *whether* it may run is the gate's job
//! ([`crate::safety::Gate`]); this module only runs what was already allowed.

use crate::shell::ShellType;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a command could not be run (its own failure is an exit status, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lost track of {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl ExecuteError {
    /// A stable identifier for frontends.
    pub fn code(&self) -> &'static str {
        "run_failed"
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Spawn { program, .. } => Some(format!(
                "is {program} installed and on PATH? `--shell` (or `shell` in the config file) picks another shell"
            )),
            Self::Wait { .. } => None,
        }
    }
}

/// The program and arguments that make `shell` run `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

impl Invocation {
    pub fn new(shell: ShellType, command: &str) -> Self {
        let c = command.to_owned();
        let (program, args) = match shell {
            // Windows PowerShell is `powershell`; elsewhere only PowerShell 7 (`pwsh`) exists.
            ShellType::PowerShell => (
                if cfg!(windows) { "powershell" } else { "pwsh" },
                vec!["-NoProfile".to_owned(), "-Command".to_owned(), c],
            ),
            ShellType::Cmd => ("cmd", vec!["/C".to_owned(), c]),
            other => (other.as_str(), vec!["-c".to_owned(), c]),
        };
        Self {
            program: program.to_owned(),
            args,
        }
    }

    /// A process builder for it; the caller chooses the folder and the streams.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }

    /// The invocation as a POSIX shell would read it back, for "would run …" lines.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| {
                if !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_/.=".contains(c))
                {
                    a.clone()
                } else {
                    format!("'{}'", a.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `command` attached to this process's terminal (stdin, stdout and stderr inherited), in
/// the current folder, and returns its exit status (`None`: killed by a signal).
pub fn run_attached(shell: ShellType, command: &str) -> Result<Option<i32>, ExecuteError> {
    let inv = Invocation::new(shell, command);
    let status = inv
        .command()
        .status()
        .map_err(|source| ExecuteError::Spawn {
            program: inv.program.clone(),
            source,
        })?;
    Ok(status.code())
}

/// Limits for a command run with its output captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Killed after this long.
    pub time: Duration,
    /// Bytes kept of each stream; the rest is read and dropped so the command never blocks.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(30),
            output: 64 * 1024,
        }
    }
}

/// What a captured run produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Captured {
    /// `None` when it was killed (by the time limit or a signal).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

/// A stream read on its own thread into a shared buffer, so what arrived can be taken at any
/// moment, even while something still holds the pipe open.
struct Reader {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Reader {
    fn spawn(mut r: impl Read + Send + 'static, cap: usize) -> Self {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let shared = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    // A signal arriving mid-read is not the end of the output.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Past the cap the rest is read and dropped, so the writer never
                        // blocks on a full pipe.
                        if let Ok(mut b) = shared.lock() {
                            let room = cap.saturating_sub(b.len()).min(n);
                            b.extend_from_slice(&chunk[..room]);
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
        Self { buf, done }
    }

    /// Waits until the stream ends or `until`, then takes what was read.
    fn finish(self, until: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        let bytes = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// How long the output may keep coming after the shell exited: a command it left running in
/// the background (`server &`) holds the pipe open, and the popup must not wait for it.
const AFTER_EXIT: Duration = Duration::from_millis(500);

/// Runs `command` in `dir` with no input, its output captured up to the limits: for a
/// frontend without a terminal (the popup), which shows the output itself.
pub fn run_captured(
    shell: ShellType,
    command: &str,
    dir: &Path,
    limits: Limits,
) -> Result<Captured, ExecuteError> {
    capture(Invocation::new(shell, command), dir, limits)
}

fn capture(inv: Invocation, dir: &Path, limits: Limits) -> Result<Captured, ExecuteError> {
    let mut command = inv.command();
    // Its own process group, so the time limit reaches everything it started: killing only
    // the shell left `sleep` holding the output pipe, and the popup waited for it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecuteError::Spawn {
            program: inv.program.clone(),
            source,
        })?;
    let out = child.stdout.take().map(|r| Reader::spawn(r, limits.output));
    let err = child.stderr.take().map(|r| Reader::spawn(r, limits.output));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if started.elapsed() > limits.time => {
                kill_all(&mut child);
                timed_out = true;
                break child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                kill_all(&mut child);
                return Err(ExecuteError::Wait {
                    program: inv.program,
                    source,
                });
            }
        }
    };
    let until = Instant::now() + AFTER_EXIT;
    Ok(Captured {
        status,
        stdout: out.map(|r| r.finish(until)).unwrap_or_default(),
        stderr: err.map(|r| r.finish(until)).unwrap_or_default(),
        timed_out,
    })
}

/// Kills `child` and, on Unix, every process of its group (it leads one: see [`capture`]).
fn kill_all(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let group = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

/// Where a shell keeps its history, from the environment caro runs in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryEnv {
    pub home: Option<PathBuf>,
    /// `$HISTFILE`, when exported (bash and zsh usually keep it unexported: then the default).
    pub histfile: Option<PathBuf>,
    /// `$ZDOTDIR`, where zsh keeps `.zsh_history` when it is set.
    pub zdotdir: Option<PathBuf>,
    /// `$XDG_DATA_HOME`, where fish keeps its history on every platform.
    pub xdg_data_home: Option<PathBuf>,
}

impl HistoryEnv {
    /// This process's environment.
    pub fn current() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            home: var("HOME").or_else(dirs::home_dir),
            histfile: var("HISTFILE"),
            zdotdir: var("ZDOTDIR"),
            xdg_data_home: var("XDG_DATA_HOME"),
        }
    }
}

/// zsh's history file is "metafied": a NUL or a byte in 0x83..=0xa2 (which UTF-8 uses inside
/// `—`, `é`, `ü`, …) is written as 0x83 and the byte XOR 0x20, or zsh reads it back wrong.
fn zsh_metafy(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b == 0 || (0x83..=0xa2).contains(&b) {
            out.extend([0x83, b ^ 0x20]);
        } else {
            out.push(b);
        }
    }
    out
}

/// The history file of `shell` and the entry for `command` in that shell's own format, run at
/// `now` (seconds since the epoch). `None` where caro cannot write it faithfully: shells whose
/// history caro does not write (PowerShell's PSReadLine file, cmd), a multi-line command for
/// bash (one line per entry: joined, it would be another command), or an unknown home. Pure.
pub fn history_entry(
    shell: ShellType,
    command: &str,
    now: u64,
    env: &HistoryEnv,
) -> Option<(PathBuf, Vec<u8>)> {
    let command = command.trim_end_matches(['\n', '\r']);
    let home = env.home.as_deref();
    match shell {
        ShellType::Bash | ShellType::Sh => {
            if command.contains('\n') {
                return None;
            }
            Some((
                env.histfile
                    .clone()
                    .or_else(|| home.map(|h| h.join(".bash_history")))?,
                format!("{command}\n").into_bytes(),
            ))
        }
        // zsh's extended format, which it reads whatever EXTENDED_HISTORY says; a line ending
        // in a backslash continues the entry, which is how zsh itself writes multi-line ones.
        ShellType::Zsh => {
            let dir = env.zdotdir.as_deref().or(home);
            Some((
                env.histfile
                    .clone()
                    .or_else(|| dir.map(|d| d.join(".zsh_history")))?,
                zsh_metafy(&format!(": {now}:0;{}\n", command.replace('\n', "\\\n"))),
            ))
        }
        // fish's YAML-like file; fish escapes backslashes and newlines in `cmd`.
        ShellType::Fish => Some((
            env.xdg_data_home
                .clone()
                .or_else(|| home.map(|h| h.join(".local").join("share")))?
                .join("fish")
                .join("fish_history"),
            format!(
                "- cmd: {}\n  when: {now}\n",
                command.replace('\\', "\\\\").replace('\n', "\\n")
            )
            .into_bytes(),
        )),
        ShellType::PowerShell | ShellType::Cmd => None,
    }
}

/// Appends `command` to `shell`'s history file, so it comes back with the up arrow in the next
/// terminal. Only to a file that exists: none means the user keeps history elsewhere or not at
/// all, and caro must not start one. Returns the file written, `None` when nothing was.
pub fn append_history(
    shell: ShellType,
    command: &str,
    env: &HistoryEnv,
) -> std::io::Result<Option<PathBuf>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Some((path, entry)) = history_entry(shell, command, now, env) else {
        return Ok(None);
    };
    // One write of the whole entry with O_APPEND: a shell appending at the same moment never
    // interleaves inside it.
    let file = std::fs::OpenOptions::new().append(true).open(&path);
    match file {
        Ok(mut f) => {
            f.write_all(&entry)?;
            Ok(Some(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_at(home: &Path) -> HistoryEnv {
        HistoryEnv {
            home: Some(home.to_owned()),
            ..HistoryEnv::default()
        }
    }

    #[test]
    fn posix_shells_use_dash_c_and_powershell_skips_the_profile() {
        let i = Invocation::new(ShellType::Zsh, "ls -la");
        assert_eq!(i.program, "zsh");
        assert_eq!(i.args, ["-c", "ls -la"]);
        assert_eq!(Invocation::new(ShellType::Cmd, "dir").args[0], "/C");
        assert_eq!(
            Invocation::new(ShellType::PowerShell, "ls").args[..2],
            ["-NoProfile", "-Command"]
        );
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        assert_eq!(
            Invocation::new(ShellType::Bash, "echo 'hi'").display(),
            r"bash -c 'echo '\''hi'\'''"
        );
        assert_eq!(Invocation::new(ShellType::Sh, "").display(), "sh -c ''");
    }

    #[cfg(unix)]
    #[test]
    fn runs_in_the_folder_and_captures_both_streams() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = run_captured(
            ShellType::Sh,
            "echo out; echo err >&2; exit 3",
            dir.path(),
            Limits::default(),
        )
        .expect("run");
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        assert!(!out.timed_out);
        let pwd =
            run_captured(ShellType::Sh, "pwd -P", dir.path(), Limits::default()).expect("run");
        let real = dir.path().canonicalize().expect("canonical");
        assert_eq!(Path::new(pwd.stdout.trim()), real);
    }

    #[cfg(unix)]
    #[test]
    fn a_command_past_the_limits_is_cut_off_not_waited_for() {
        let dir = tempfile::tempdir().expect("tmp");
        let limits = Limits {
            time: Duration::from_millis(300),
            output: 10,
        };
        let t = Instant::now();
        let out = run_captured(
            ShellType::Sh,
            "yes | head -c 100000; sleep 20",
            dir.path(),
            limits,
        )
        .expect("run");
        assert!(out.timed_out, "{out:?}");
        // `sleep`, the shell's child, was killed with it: nothing held the pipe open.
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(out.stdout.len(), 10);
    }

    // Found in review: `server &` kept the output pipe open after the shell exited, and the
    // popup waited for it past any limit.
    #[cfg(unix)]
    #[test]
    fn a_background_job_holding_the_pipe_does_not_hold_the_answer() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = Instant::now();
        let out = run_captured(
            ShellType::Sh,
            "sleep 5 & echo started",
            dir.path(),
            Limits::default(),
        )
        .expect("run");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!((out.status, out.stdout.as_str()), (Some(0), "started\n"));
        assert!(!out.timed_out);
    }

    #[test]
    fn a_missing_shell_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let inv = Invocation {
            program: "caro-no-such-shell".to_owned(),
            args: vec!["-c".to_owned(), "ls".to_owned()],
        };
        let e = capture(inv, dir.path(), Limits::default()).expect_err("no such program");
        assert_eq!(e.code(), "run_failed");
        assert!(
            e.to_string().contains("could not start caro-no-such-shell"),
            "{e}"
        );
        assert!(e.hint().is_some_and(|h| h.contains("caro-no-such-shell")));
    }

    #[test]
    fn history_entries_follow_each_shells_format() {
        let home = Path::new("/home/u");
        let env = env_at(home);
        let (p, line) = history_entry(ShellType::Bash, "ls -la\n", 7, &env).expect("bash");
        assert_eq!(
            (p, line),
            (home.join(".bash_history"), b"ls -la\n".to_vec())
        );
        let (p, line) =
            history_entry(ShellType::Zsh, "echo a\necho b\n", 1_700_000_000, &env).expect("zsh");
        assert_eq!(p, home.join(".zsh_history"));
        assert_eq!(line, b": 1700000000:0;echo a\\\necho b\n");
        let (p, line) = history_entry(ShellType::Fish, r"printf 'a\n'", 5, &env).expect("fish");
        assert_eq!(p, home.join(".local/share/fish/fish_history"));
        assert_eq!(line, b"- cmd: printf 'a\\\\n'\n  when: 5\n");
        assert!(history_entry(ShellType::Cmd, "dir", 0, &env).is_none());
        assert!(history_entry(ShellType::PowerShell, "ls", 0, &env).is_none());
    }

    // Found in review: joined into one line, `cd build` + `make` came back as `cd build make`.
    #[test]
    fn a_multi_line_command_is_kept_out_of_bash_history_rather_than_changed() {
        let env = env_at(Path::new("/home/u"));
        assert!(history_entry(ShellType::Bash, "cd build\nmake", 0, &env).is_none());
        assert!(history_entry(ShellType::Zsh, "cd build\nmake", 0, &env).is_some());
    }

    // Found in review: zsh reads its file metafied, so `—` (e2 80 94) must be written with
    // 0x94 escaped, or it comes back as another character.
    #[test]
    fn zsh_entries_are_metafied_as_zsh_writes_them() {
        let env = env_at(Path::new("/home/u"));
        let (_, line) = history_entry(ShellType::Zsh, "echo —", 1, &env).expect("zsh");
        assert_eq!(line, b": 1:0;echo \xe2\x80\x83\xb4\n");
        assert_eq!(zsh_metafy("plain ascii"), b"plain ascii");
    }

    #[test]
    fn histfile_zdotdir_and_xdg_data_home_win_over_the_defaults() {
        let env = HistoryEnv {
            home: Some("/home/u".into()),
            histfile: Some("/h/mine".into()),
            zdotdir: Some("/z".into()),
            xdg_data_home: Some("/data".into()),
        };
        assert_eq!(
            history_entry(ShellType::Zsh, "ls", 0, &env).expect("zsh").0,
            Path::new("/h/mine")
        );
        let zdot = HistoryEnv {
            histfile: None,
            ..env.clone()
        };
        assert_eq!(
            history_entry(ShellType::Zsh, "ls", 0, &zdot)
                .expect("zsh")
                .0,
            Path::new("/z/.zsh_history")
        );
        assert_eq!(
            history_entry(ShellType::Fish, "ls", 0, &env)
                .expect("fish")
                .0,
            Path::new("/data/fish/fish_history")
        );
        assert!(history_entry(ShellType::Bash, "ls", 0, &HistoryEnv::default()).is_none());
    }

    #[test]
    fn appending_keeps_what_the_file_had_and_never_starts_a_history() {
        let home = tempfile::tempdir().expect("tmp");
        let env = env_at(home.path());
        let file = home.path().join(".bash_history");
        std::fs::write(&file, "git status\n").expect("seed");
        let written = append_history(ShellType::Bash, "ls -la", &env).expect("append");
        assert_eq!(written.as_deref(), Some(file.as_path()));
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "git status\nls -la\n"
        );
        // Found in review: a user without a zsh or fish history (unset HISTFILE, history kept
        // elsewhere) got one created. Nothing is written, and no folder appears.
        assert_eq!(
            append_history(ShellType::Zsh, "ls", &env).expect("append"),
            None
        );
        assert_eq!(
            append_history(ShellType::Fish, "ls", &env).expect("append"),
            None
        );
        assert!(!home.path().join(".zsh_history").exists());
        assert!(!home.path().join(".local").exists());
    }
}
