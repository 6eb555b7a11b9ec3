//! The shell integration `caro shell-init` prints: one key turns the request on the prompt
//! line into a command, left on the line unrun.
//!
//! The snippets only move text: the request goes to `caro --quiet`, which does everything
//! else (daemon first, the gate), and its stdout replaces the line only when it succeeded with
//! a command. A blocked answer or an error leaves the user's words where they were, and what
//! caro said is shown under them. Pure: the text depends only on the shell and the key.

use crate::shell::ShellType;
use std::fmt;
use std::str::FromStr;

/// The key when nothing else is configured: aichat's; free in bash and zsh, and in fish it
/// takes over "edit in $EDITOR", which Alt+V still does.
pub const DEFAULT_KEY: &str = "alt-e";

/// A key chord: Alt or Ctrl with one letter (Alt also with a digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    modifier: Modifier,
    ch: char,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Alt,
    Ctrl,
}

/// Why a key or shell cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellInitError {
    #[error(
        "key `{0}` is not one caro can bind: use alt-<letter or digit> or ctrl-<letter> \
         (not ctrl-m, j, i or h, which are Enter, newline, Tab and Backspace, nor ctrl-c, z, s \
         or q, which the terminal keeps), for example alt-e or ctrl-g"
    )]
    BadKey(String),
    #[error("no shell integration for {0}: caro has one for bash, zsh, fish and powershell")]
    UnsupportedShell(ShellType),
}

impl FromStr for Key {
    type Err = ShellInitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShellInitError::BadKey(s.to_owned());
        let lower = s.trim().to_ascii_lowercase();
        let (modifier, rest) = if let Some(r) = lower
            .strip_prefix("alt-")
            .or_else(|| lower.strip_prefix("alt+"))
            .or_else(|| lower.strip_prefix("meta-"))
        {
            (Modifier::Alt, r)
        } else if let Some(r) = lower
            .strip_prefix("ctrl-")
            .or_else(|| lower.strip_prefix("ctrl+"))
        {
            (Modifier::Ctrl, r)
        } else {
            return Err(bad());
        };
        let mut chars = rest.chars();
        let (Some(ch), None) = (chars.next(), chars.next()) else {
            return Err(bad());
        };
        let ok = match modifier {
            Modifier::Alt => ch.is_ascii_lowercase() || ch.is_ascii_digit(),
            // Ctrl with a digit is no character a terminal sends; Ctrl+M, J, I and H are Enter,
            // newline, Tab and Backspace, so binding them breaks the shell; C, Z, S and Q the
            // terminal takes (interrupt, suspend, flow control) before the shell sees them.
            Modifier::Ctrl => ch.is_ascii_lowercase() && !"mjihczsq".contains(ch),
        };
        if ok {
            Ok(Self { modifier, ch })
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.modifier {
            Modifier::Alt => write!(f, "alt-{}", self.ch),
            Modifier::Ctrl => write!(f, "ctrl-{}", self.ch),
        }
    }
}

impl Key {
    /// As readline's `bind` spells it.
    fn bash(self) -> String {
        match self.modifier {
            Modifier::Alt => format!("\\e{}", self.ch),
            Modifier::Ctrl => format!("\\C-{}", self.ch),
        }
    }

    /// As zsh's `bindkey` spells it.
    fn zsh(self) -> String {
        match self.modifier {
            Modifier::Alt => format!("^[{}", self.ch),
            Modifier::Ctrl => format!("^{}", self.ch.to_ascii_uppercase()),
        }
    }

    /// As fish's `bind` spells it: the escape form, which fish 3 and 4 both read, and only
    /// unquoted (in quotes `\e` is a backslash and an `e`).
    fn fish(self) -> String {
        match self.modifier {
            Modifier::Alt => format!("\\e{}", self.ch),
            Modifier::Ctrl => format!("\\c{}", self.ch),
        }
    }

    /// As PSReadLine's `-Chord` spells it.
    fn powershell(self) -> String {
        match self.modifier {
            Modifier::Alt => format!("Alt+{}", self.ch),
            Modifier::Ctrl => format!("Ctrl+{}", self.ch),
        }
    }
}

/// The snippet for `shell`'s rc file, binding `key`.
pub fn snippet(shell: ShellType, key: Key) -> Result<String, ShellInitError> {
    let (template, spelled) = match shell {
        ShellType::Bash => (BASH, key.bash()),
        ShellType::Zsh => (ZSH, key.zsh()),
        ShellType::Fish => (FISH, key.fish()),
        ShellType::PowerShell => (POWERSHELL, key.powershell()),
        ShellType::Sh | ShellType::Cmd => return Err(ShellInitError::UnsupportedShell(shell)),
    };
    Ok(template
        .replace("@KEY@", &spelled)
        .replace("@NAME@", &key.to_string()))
}

const BASH: &str = r#"# caro shell integration for bash: @NAME@ turns the request on the prompt line into a
# command, left there unrun: Enter runs it, and it lands in your history as usual.
# Add to ~/.bashrc:  eval "$(caro shell-init bash)"
__caro_line() {
  local request=$READLINE_LINE cmd err st
  [[ $request == *[![:space:]]* ]] || return 0
  err=$(mktemp) || return 0
  printf '\r\033[Kcaro: working on it...' >&2
  cmd=$(command caro --quiet --shell bash -- "$request" </dev/null 2>"$err")
  st=$?
  printf '\r\033[K' >&2
  if [[ $st -eq 0 && -n $cmd ]]; then
    READLINE_LINE=$cmd
    READLINE_POINT=${#cmd}
  fi
  # Why it was refused, or how risky it is: above the prompt, the request left in place.
  [[ -s $err ]] && cat -- "$err" >&2
  rm -f -- "$err"
  return 0
}
bind -m emacs -x '"@KEY@": __caro_line'
bind -m vi-insert -x '"@KEY@": __caro_line'
"#;

const ZSH: &str = r#"# caro shell integration for zsh: @NAME@ turns the request on the prompt line into a
# command, left there unrun: Enter runs it, and it lands in your history as usual.
# Add to ~/.zshrc:  eval "$(caro shell-init zsh)"
__caro_line() {
  emulate -L zsh
  local request=$BUFFER cmd err st
  [[ $request == *[^[:space:]]* ]] || return 0
  err=$(mktemp) || return 0
  zle -R "caro: working on it..."
  cmd=$(command caro --quiet --shell zsh -- "$request" </dev/null 2>"$err")
  st=$?
  if (( st == 0 )) && [[ -n $cmd ]]; then
    BUFFER=$cmd
    CURSOR=${#BUFFER}
  fi
  # Why it was refused, or how risky it is: under the line, the request left in place.
  if [[ -s $err ]]; then
    zle -M "$(<"$err")"
  else
    zle -R
  fi
  rm -f -- "$err"
  return 0
}
zle -N __caro_line
bindkey -M emacs '@KEY@' __caro_line
bindkey -M viins '@KEY@' __caro_line
"#;

const FISH: &str = r#"# caro shell integration for fish: @NAME@ turns the request on the prompt line into a
# command, left there unrun: Enter runs it, and it lands in your history as usual.
# Add to ~/.config/fish/config.fish:  caro shell-init fish | source
function __caro_line --description 'caro: turn the request on the line into a command'
    set -l request (commandline)
    string match -qr '\S' -- "$request"; or return 0
    set -l err (mktemp); or return 0
    printf '\r\033[Kcaro: working on it...' >&2
    set -l cmd (command caro --quiet --shell fish -- "$request" </dev/null 2>$err)
    set -l st $status
    printf '\r\033[K' >&2
    if test $st -eq 0; and test -n "$cmd"
        set cmd (string join \n -- $cmd)
        commandline -r -- $cmd
        commandline -C (string length -- $cmd)
    end
    # Why it was refused, or how risky it is: above the prompt, the request left in place.
    if test -s $err
        cat -- $err >&2
    end
    rm -f -- $err
    commandline -f repaint
end
bind @KEY@ __caro_line
bind -M insert @KEY@ __caro_line
"#;

const POWERSHELL: &str = r#"# caro shell integration for PowerShell (PSReadLine): @NAME@ turns the request on the
# prompt line into a command, left there unrun: Enter runs it.
# Add to $PROFILE:  caro shell-init powershell | Out-String | Invoke-Expression
Set-PSReadLineKeyHandler -Chord '@KEY@' -BriefDescription caro -Description 'caro: turn the request on the line into a command' -ScriptBlock {
    $line = $null; $cursor = $null
    [Microsoft.PowerShell.PSConsoleReadLine]::GetBufferState([ref]$line, [ref]$cursor)
    if ([string]::IsNullOrWhiteSpace($line)) { return }
    $cmd = (& caro --quiet --shell powershell -- $line) -join "`n"
    if ($LASTEXITCODE -eq 0 -and $cmd) {
        [Microsoft.PowerShell.PSConsoleReadLine]::Replace(0, $line.Length, $cmd)
        [Microsoft.PowerShell.PSConsoleReadLine]::SetCursorPosition($cmd.Length)
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::default_alt_e("alt-e", r"\ee", "^[e", r"\ee", "Alt+e")]
    #[case::alt_digit("Alt+1", r"\e1", "^[1", r"\e1", "Alt+1")]
    #[case::ctrl_letter("ctrl-g", r"\C-g", "^G", r"\cg", "Ctrl+g")]
    fn keys_are_spelled_for_each_shell(
        #[case] text: &str,
        #[case] bash: &str,
        #[case] zsh: &str,
        #[case] fish: &str,
        #[case] ps: &str,
    ) {
        let k: Key = text.parse().expect("key");
        assert_eq!(
            (k.bash(), k.zsh(), k.fish(), k.powershell()),
            (bash.into(), zsh.into(), fish.into(), ps.into())
        );
    }

    #[rstest]
    #[case::no_modifier("e")]
    #[case::two_letters("alt-ee")]
    #[case::ctrl_digit("ctrl-1")]
    #[case::ctrl_m_is_enter("ctrl-m")]
    #[case::ctrl_i_is_tab("ctrl-i")]
    #[case::ctrl_c_never_reaches_the_shell("ctrl-c")]
    #[case::empty("")]
    #[case::shift("shift-e")]
    #[case::quote_injection("alt-'")]
    fn keys_caro_cannot_bind_are_errors(#[case] text: &str) {
        assert!(matches!(
            text.parse::<Key>(),
            Err(ShellInitError::BadKey(_))
        ));
    }

    #[test]
    fn every_snippet_binds_the_key_and_calls_caro_quietly_for_its_shell() {
        let key: Key = DEFAULT_KEY.parse().expect("key");
        for (shell, bound) in [
            (ShellType::Bash, r#"bind -m emacs -x '"\ee": __caro_line'"#),
            (ShellType::Zsh, "bindkey -M emacs '^[e' __caro_line"),
            (ShellType::Fish, r"bind \ee __caro_line"),
            (ShellType::PowerShell, "-Chord 'Alt+e'"),
        ] {
            let s = snippet(shell, key).expect("snippet");
            assert!(s.contains(bound), "{shell}: {s}");
            assert!(
                s.contains(&format!("--quiet --shell {}", shell.as_str())),
                "{shell}"
            );
            assert!(!s.contains('@'), "{shell}: a placeholder left: {s}");
        }
        assert_eq!(
            snippet(ShellType::Sh, key),
            Err(ShellInitError::UnsupportedShell(ShellType::Sh))
        );
    }
}
