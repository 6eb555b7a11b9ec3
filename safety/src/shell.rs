//! Target shells, and detection of the user's shell from the environment.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A shell that caro writes commands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellType {
    Bash,
    Zsh,
    Fish,
    Sh,
    #[serde(rename = "powershell")]
    PowerShell,
    Cmd,
}

impl ShellType {
    pub const ALL: [ShellType; 6] = [
        ShellType::Bash,
        ShellType::Zsh,
        ShellType::Fish,
        ShellType::Sh,
        ShellType::PowerShell,
        ShellType::Cmd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Zsh => "zsh",
            Self::Fish => "fish",
            Self::Sh => "sh",
            Self::PowerShell => "powershell",
            Self::Cmd => "cmd",
        }
    }

    /// POSIX-family shells share syntax for pipes, redirection and `$(…)`.
    pub fn is_posix_family(self) -> bool {
        matches!(self, Self::Bash | Self::Zsh | Self::Sh)
    }

    /// Detects the shell from the process environment.
    pub fn detect() -> Self {
        Self::detect_from(|k| std::env::var(k).ok(), cfg!(windows))
    }

    /// Pure detection over an environment lookup, so it can be tested on any platform.
    ///
    /// `$SHELL` is the login shell on Unix. On Windows `PSModulePath` is set inside PowerShell,
    /// but also system-wide on newer versions, so a `$SHELL` (Git Bash, MSYS) wins over it.
    pub fn detect_from(env: impl Fn(&str) -> Option<String>, windows: bool) -> Self {
        if let Some(shell) = env("SHELL") {
            let name = shell
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or_default()
                .trim_end_matches(".exe");
            if let Ok(s) = name.parse() {
                return s;
            }
        }
        if windows {
            if env("PSModulePath").is_some() {
                return Self::PowerShell;
            }
            return Self::Cmd;
        }
        Self::Sh
    }
}

impl fmt::Display for ShellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown shell name.
#[derive(Debug, thiserror::Error)]
#[error("unknown shell `{0}` (expected one of: bash, zsh, fish, sh, powershell, cmd)")]
pub struct UnknownShell(pub String);

impl FromStr for ShellType {
    type Err = UnknownShell;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bash" => Self::Bash,
            "zsh" => Self::Zsh,
            "fish" => Self::Fish,
            "sh" | "dash" | "ash" | "ksh" => Self::Sh,
            "powershell" | "pwsh" | "ps" => Self::PowerShell,
            "cmd" => Self::Cmd,
            _ => return Err(UnknownShell(s.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[rstest]
    #[case::bash(&[("SHELL", "/bin/bash")], false, ShellType::Bash)]
    #[case::zsh_homebrew(&[("SHELL", "/opt/homebrew/bin/zsh")], false, ShellType::Zsh)]
    #[case::fish(&[("SHELL", "/usr/bin/fish")], false, ShellType::Fish)]
    #[case::dash_is_sh(&[("SHELL", "/bin/dash")], false, ShellType::Sh)]
    #[case::unknown_falls_back_to_sh(&[("SHELL", "/bin/tcsh")], false, ShellType::Sh)]
    #[case::nothing_set(&[], false, ShellType::Sh)]
    #[case::windows_powershell(&[("PSModulePath", "C:\\x")], true, ShellType::PowerShell)]
    #[case::windows_cmd(&[], true, ShellType::Cmd)]
    #[case::git_bash_on_windows(&[("SHELL", "C:\\Program Files\\Git\\bin\\bash.exe"), ("PSModulePath", "x")], true, ShellType::Bash)]
    fn detects_shell(#[case] env: &[(&str, &str)], #[case] windows: bool, #[case] want: ShellType) {
        assert_eq!(ShellType::detect_from(env_of(env), windows), want);
    }

    #[test]
    fn round_trips_names() {
        for s in ShellType::ALL {
            assert_eq!(s.as_str().parse::<ShellType>().ok(), Some(s));
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!("tcsh".parse::<ShellType>().is_err());
    }
}
