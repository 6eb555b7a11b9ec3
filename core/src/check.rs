//! Checks a generated command against the machine it will run on: every program it calls is
//! installed (or a shell builtin), and the shell accepts its syntax. The backend asks the
//! model once more when a check fails.
//!
//! The decision ([`find_problem`]) is pure; what it asks of the machine goes through
//! [`Probe`], so it is tested without touching `PATH`.

use crate::safety::simple_commands;
use crate::shell::ShellType;

/// What is wrong with a command, in words the model is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotInstalled(String),
    Syntax(String),
}

impl Problem {
    /// The follow-up message that asks the model for a corrected command.
    pub fn feedback(&self) -> String {
        match self {
            Self::NotInstalled(p) => format!(
                "`{p}` is not installed on this machine. Reply with one command that uses only installed standard tools."
            ),
            Self::Syntax(e) => format!(
                "That command has a syntax error ({e}). Reply with the corrected command only."
            ),
        }
    }

    /// A warning for the user when the model could not fix it.
    pub fn warning(&self) -> String {
        match self {
            Self::NotInstalled(p) => format!("`{p}` is not installed here"),
            Self::Syntax(e) => format!("the shell reports a syntax error: {e}"),
        }
    }
}

/// What the checks need to know about the machine.
pub trait Probe {
    fn is_installed(&self, program: &str) -> bool;
    /// The shell's complaint when it cannot parse `command`, if any.
    fn syntax_error(&self, command: &str, shell: ShellType) -> Option<String>;
}

/// Builtins and keywords of bash, zsh and POSIX sh that are not programs on `PATH`.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
    "autoload",
    "bindkey",
    "print",
    "setopt",
    "unsetopt",
    "whence",
    "where",
    "which",
    "zmodload",
    "rehash",
];

/// The first problem with `command`, or `None`. Only the POSIX shells are checked; for fish,
/// PowerShell and cmd this says nothing.
pub fn find_problem(command: &str, shell: ShellType, probe: &dyn Probe) -> Option<Problem> {
    if !matches!(shell, ShellType::Bash | ShellType::Zsh | ShellType::Sh) {
        return None;
    }
    if let Some(e) = probe.syntax_error(command, shell) {
        return Some(Problem::Syntax(e));
    }
    for cmd in simple_commands(command, shell) {
        let Some(program) = cmd.argv.first() else {
            continue;
        };
        // The parser keeps only a program's basename: one called by path (`./deploy.sh`) or
        // one named by an expansion is not a PATH lookup.
        let by_path = command.contains(&format!("/{program}"));
        let expanded = program.is_empty() || program.contains(['$', '`', '=', '{', '(']);
        if by_path || expanded || BUILTINS.contains(&program.as_str()) {
            continue;
        }
        if !probe.is_installed(program) {
            return Some(Problem::NotInstalled(program.clone()));
        }
    }
    None
}

/// The real machine: `PATH` lookups, and the shell's own `-n` (parse without running).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostProbe;

impl Probe for HostProbe {
    fn is_installed(&self, program: &str) -> bool {
        which::which(program).is_ok()
    }

    fn syntax_error(&self, command: &str, shell: ShellType) -> Option<String> {
        let sh = match shell {
            ShellType::Zsh if which::which("zsh").is_ok() => "zsh",
            ShellType::Sh => "sh",
            _ => "bash",
        };
        // No shell to ask is not a syntax error.
        let out = std::process::Command::new(sh)
            .args(["-n", "-c", command])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        if out.status.success() {
            return None;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        // bash prefixes its messages with "bash: -c: line 1: "; the model needs the rest.
        let msg = line
            .rsplit(": line ")
            .next()
            .map_or(line, |l| l.split_once(": ").map_or(l, |(_, m)| m));
        Some(if msg.is_empty() {
            "unparseable".to_owned()
        } else {
            msg.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    struct Fake;
    impl Probe for Fake {
        fn is_installed(&self, p: &str) -> bool {
            ["ls", "grep", "find", "git", "sort", "head", "rm"].contains(&p)
        }
        fn syntax_error(&self, c: &str, _: ShellType) -> Option<String> {
            c.contains("((").then(|| "unexpected token".to_owned())
        }
    }

    #[rstest]
    #[case::installed("ls -la | grep foo", None)]
    #[case::missing("tree -L 2", Some(Problem::NotInstalled("tree".into())))]
    #[case::missing_after_pipe("ls | fzf", Some(Problem::NotInstalled("fzf".into())))]
    #[case::builtin("cd src && ls", None)]
    #[case::unwrapped_sudo("sudo rm -rf build", None)]
    #[case::called_by_path("./scripts/deploy.sh --dry-run", None)]
    #[case::find_exec_child("find . -name '*.tmp' -exec shred {} +", Some(Problem::NotInstalled("shred".into())))]
    #[case::syntax("ls ((", Some(Problem::Syntax("unexpected token".into())))]
    fn problems(#[case] cmd: &str, #[case] want: Option<Problem>) {
        assert_eq!(find_problem(cmd, ShellType::Bash, &Fake), want);
    }

    #[test]
    fn other_shells_are_not_checked() {
        assert_eq!(find_problem("tree", ShellType::PowerShell, &Fake), None);
        assert_eq!(find_problem("tree", ShellType::Fish, &Fake), None);
    }

    #[test]
    #[cfg(unix)]
    fn host_probe_asks_the_real_shell() {
        let p = HostProbe;
        assert!(p.is_installed("sh"));
        assert!(!p.is_installed("caro-no-such-program-xyz"));
        assert_eq!(p.syntax_error("ls -la | sort", ShellType::Bash), None);
        let e = p.syntax_error("for x in; do", ShellType::Bash);
        assert!(e.is_some_and(|e| !e.is_empty()));
    }
}
