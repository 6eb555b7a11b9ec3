//! Runs a command in the user's shell with a time limit and captured output, and appends it to
//! that shell's history file so it shows up in the terminal's history too.

use crate::state::{ApiError, RunOutput};
use caro_core::ShellType;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);
const MAX_OUTPUT: usize = 64 * 1024;

fn invocation(shell: ShellType, command: &str) -> Command {
    let mut c = match shell {
        ShellType::PowerShell => {
            let mut c = Command::new(if cfg!(windows) { "powershell" } else { "pwsh" });
            c.args(["-NoProfile", "-Command"]);
            c
        }
        ShellType::Cmd => {
            let mut c = Command::new("cmd");
            c.arg("/C");
            c
        }
        other => {
            let mut c = Command::new(other.as_str());
            c.arg("-c");
            c
        }
    };
    c.arg(command);
    c
}

fn read_capped(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.by_ref().take(MAX_OUTPUT as u64).read_to_end(&mut buf);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `command` in `dir`, the folder the popup shows and the verdict was made for.
pub fn run(command: &str, shell: ShellType, dir: &std::path::Path) -> Result<RunOutput, ApiError> {
    let mut child = invocation(shell, command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            ApiError::new(
                "run_failed",
                format!("could not start {}: {e}", shell.as_str()),
            )
        })?;
    let out = child.stdout.take().map(read_capped);
    let err = child.stderr.take().map(read_capped);
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if started.elapsed() > LIMIT => {
                let _ = child.kill();
                timed_out = true;
                break child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(ApiError::new("run_failed", e.to_string())),
        }
    };
    Ok(RunOutput {
        status,
        stdout: out.and_then(|h| h.join().ok()).unwrap_or_default(),
        stderr: err.and_then(|h| h.join().ok()).unwrap_or_default(),
        timed_out,
    })
}

/// The line to add to the shell's history file, and the file, if caro knows the format.
pub fn history_line(
    shell: ShellType,
    command: &str,
    now: u64,
) -> Option<(std::path::PathBuf, String)> {
    let home = dirs::home_dir()?;
    let one_line = command.replace('\n', " ");
    match shell {
        ShellType::Bash | ShellType::Sh => Some((
            std::env::var_os("HISTFILE").map_or_else(|| home.join(".bash_history"), Into::into),
            format!("{one_line}\n"),
        )),
        ShellType::Zsh => Some((
            std::env::var_os("HISTFILE").map_or_else(|| home.join(".zsh_history"), Into::into),
            format!(": {now}:0;{one_line}\n"),
        )),
        ShellType::Fish => Some((
            dirs::data_dir()?.join("fish").join("fish_history"),
            format!("- cmd: {one_line}\n  when: {now}\n"),
        )),
        _ => None,
    }
}

pub fn append_shell_history(command: &str, shell: ShellType) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Some((path, line)) = history_line(shell, command, now) else {
        return;
    };
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "could not append to the shell history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_in_the_shell_and_captures_both_streams() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = run("echo out; echo err >&2; exit 3", ShellType::Sh, dir.path()).expect("run");
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
        let pwd = run("pwd", ShellType::Sh, dir.path()).expect("run");
        assert_eq!(std::path::PathBuf::from(pwd.stdout.trim()), dir.path());
    }

    #[test]
    fn history_lines_follow_each_shells_format() {
        let zsh = history_line(ShellType::Zsh, "ls\n-la", 1700000000).expect("zsh");
        assert_eq!(zsh.1, ": 1700000000:0;ls -la\n");
        let fish = history_line(ShellType::Fish, "ls", 5).expect("fish");
        assert_eq!(fish.1, "- cmd: ls\n  when: 5\n");
        assert!(history_line(ShellType::Cmd, "dir", 0).is_none());
    }
}
