//! Checks a generated command against the machine it will run on: every program it calls is
//! installed (or a shell builtin), the shell accepts its syntax, and (optionally) every option
//! it gives a well-known tool is one that tool's own `--help` lists. The backend asks the
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
    /// `program` does not list `option` in its `--help` here; `help` holds the lines of that
    /// help that share a word with the request, to show the model what it does offer.
    UnknownOption {
        program: String,
        option: String,
        help: Vec<String>,
    },
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
            Self::UnknownOption {
                program,
                option,
                help,
            } => {
                let mut s = format!(
                    "`{program}` on this machine has no option `{option}`: `{program} --help` does not list it."
                );
                if !help.is_empty() {
                    s.push_str(" Options it does list that may fit:\n");
                    for line in help {
                        s.push_str(line);
                        s.push('\n');
                    }
                }
                s.push_str("Reply with the corrected command only.");
                s
            }
        }
    }

    /// A warning for the user when the model could not fix it.
    pub fn warning(&self) -> String {
        match self {
            Self::NotInstalled(p) => format!("`{p}` is not installed here"),
            Self::Syntax(e) => format!("the shell reports a syntax error: {e}"),
            Self::UnknownOption {
                program, option, ..
            } => format!("`{program} --help` here does not list `{option}`"),
        }
    }
}

/// What the checks need to know about the machine.
pub trait Probe {
    fn is_installed(&self, program: &str) -> bool;
    /// The shell's complaint when it cannot parse `command`, if any.
    fn syntax_error(&self, command: &str, shell: ShellType) -> Option<String>;
    /// What `program --help` prints, for the programs in [`HELP_LISTS_EVERY_OPTION`];
    /// `None` when it cannot be asked.
    fn help(&self, program: &str) -> Option<String> {
        let _ = program;
        None
    }
}

/// Programs whose `--help` lists every option they take and does nothing else, so asking is
/// harmless and a missing option really is missing. Tools with partial help (`ps`, `curl`),
/// with subcommands (`git`, `docker`) or with a syntax of their own (`awk`, `lsof`) are not
/// asked.
pub const HELP_LISTS_EVERY_OPTION: &[&str] = &[
    "basename",
    "cat",
    "chmod",
    "chown",
    "comm",
    "cp",
    "cut",
    "date",
    "df",
    "diff",
    "dirname",
    "du",
    "env",
    "find",
    "fold",
    "free",
    "grep",
    "gunzip",
    "gzip",
    "head",
    "id",
    "join",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "mv",
    "nl",
    "od",
    "paste",
    "readlink",
    "realpath",
    "rm",
    "rmdir",
    "sed",
    "seq",
    "sha256sum",
    "shuf",
    "sort",
    "split",
    "ss",
    "stat",
    "tac",
    "tail",
    "tar",
    "tee",
    "touch",
    "tr",
    "truncate",
    "uname",
    "uniq",
    "wc",
    "xargs",
];

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

/// What [`find_problem`] looks at beyond programs and syntax.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks<'a> {
    /// Check options against the local `--help` ([`HELP_LISTS_EVERY_OPTION`]).
    pub options: bool,
    /// The user's words, to pick the help lines the model is shown.
    pub request: &'a str,
}

/// The first problem with `command`, or `None`. Only the POSIX shells are checked; for fish,
/// PowerShell and cmd this says nothing.
pub fn find_problem(
    command: &str,
    shell: ShellType,
    probe: &dyn Probe,
    checks: Checks<'_>,
) -> Option<Problem> {
    if !matches!(shell, ShellType::Bash | ShellType::Zsh | ShellType::Sh) {
        return None;
    }
    if let Some(e) = probe.syntax_error(command, shell) {
        return Some(Problem::Syntax(e));
    }
    // Parsed once: both passes below read the same simple commands.
    let commands = simple_commands(command, shell);
    for cmd in &commands {
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
    if checks.options {
        return commands
            .iter()
            .find_map(|cmd| unknown_option(&cmd.argv, probe, checks.request));
    }
    None
}

/// The first option in `argv` that its program's `--help` does not list.
fn unknown_option(argv: &[String], probe: &dyn Probe, request: &str) -> Option<Problem> {
    let program = argv.first()?;
    if !HELP_LISTS_EVERY_OPTION.contains(&program.as_str()) {
        return None;
    }
    let help = probe.help(program)?;
    let args: Vec<String> = if program == "chmod" {
        // `chmod -x file`: a mode that takes away a permission, not an option.
        argv[1..]
            .iter()
            .filter(|a| !is_symbolic_mode(a))
            .cloned()
            .collect()
    } else {
        argv[1..].to_vec()
    };
    let missing = if program == "find" {
        find_options(&args).find(|p| !lists(&help, p))
    } else {
        gnu_options(&args).find(|o| !lists(&help, o))
    }?;
    Some(Problem::UnknownOption {
        program: program.clone(),
        help: relevant_lines(&help, request, program),
        option: missing,
    })
}

/// `-x`, `-rw`, `-wX,o-r`: a symbolic chmod mode that starts with a minus.
fn is_symbolic_mode(arg: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| "rwxXstugo+-=,".contains(c)))
}

/// The options of a GNU-style command line, one per letter of a cluster: `-la` gives `-l` and
/// `-a`; `--sort=time` gives `--sort`. A cluster stops at its first non-letter, which starts
/// a value (`-k2,2`, `-d,`, `-n5`); numbers (`-5`) and everything after `--` are operands.
/// Not the safety parser's `flags`: those keep every character of a cluster (`-2`, `-,`) and
/// lowercase long names, which is right for comparing commands but not for asking `--help`.
fn gnu_options(args: &[String]) -> impl Iterator<Item = String> + '_ {
    args.iter()
        .take_while(|a| a.as_str() != "--")
        .flat_map(|a| {
            let mut out = Vec::new();
            if let Some(long) = a.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    out.push(format!("--{name}"));
                }
            } else if let Some(cluster) = a.strip_prefix('-') {
                out.extend(
                    cluster
                        .chars()
                        .take_while(char::is_ascii_alphabetic)
                        .map(|c| format!("-{c}")),
                );
            }
            out
        })
}

/// `find`'s single-dash words (`-name`, `-mtime`), not the values after them (`-7`, `-u+x`)
/// nor the command an `-exec` runs.
fn find_options(args: &[String]) -> impl Iterator<Item = String> + '_ {
    let mut in_exec = false;
    args.iter().filter_map(move |a| {
        if in_exec {
            in_exec = !(a == ";" || a == "+");
            return None;
        }
        if matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            in_exec = true;
            return Some(a.clone());
        }
        let word = a.strip_prefix('-')?;
        // -newerXY (-newermt …) is one family in the help.
        (word.len() > 1
            && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && word.starts_with(|c: char| c.is_ascii_alphabetic())
            && !word.starts_with("newer"))
        .then(|| a.clone())
    })
}

/// Whether `help` names `option` as a whole word: `-l` in `  -l, --long` but not in `-la`
/// or `--lines`. A long option may be abbreviated, as GNU getopt allows.
fn lists(help: &str, option: &str) -> bool {
    let long = option.starts_with("--");
    help.match_indices(option).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + option.len()..].chars().next();
        let starts = before.is_none_or(|c| c.is_whitespace() || "[(,|\"'`".contains(c));
        let ends =
            long || after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        starts && ends
    })
}

/// Up to eight option lines of `help` that share a word of four letters or more (other than
/// the program's name) with the request, most shared words first.
fn relevant_lines(help: &str, request: &str, program: &str) -> Vec<String> {
    // The program's own name is in half its help lines and picks none of them.
    let words: Vec<String> = request
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(str::to_lowercase)
        .filter(|w| w != program)
        .collect();
    let mut scored: Vec<(usize, &str)> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .map(|l| {
            let lower = l.to_lowercase();
            (
                words.iter().filter(|w| lower.contains(w.as_str())).count(),
                l,
            )
        })
        .filter(|(n, _)| *n > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored
        .into_iter()
        .take(8)
        .map(|(_, l)| l.trim().to_owned())
        .collect()
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

    fn help(&self, program: &str) -> Option<String> {
        static SEEN: std::sync::Mutex<Vec<(String, Option<String>)>> =
            std::sync::Mutex::new(Vec::new());
        if !HELP_LISTS_EVERY_OPTION.contains(&program) {
            return None;
        }
        let mut seen = SEEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, h)) = seen.iter().find(|(p, _)| p == program) {
            return h.clone();
        }
        let help = ask_for_help(program);
        seen.push((program.to_owned(), help.clone()));
        help
    }
}

/// `program --help` in the C locale (English option text), given two seconds. Only a
/// successful run that lists options counts: a BusyBox or BSD tool that rejects `--help`
/// is not checked at all.
fn ask_for_help(program: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let path = which::which(program).ok()?;
    let mut child = Command::new(path)
        .arg("--help")
        .env("LC_ALL", "C")
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
            text
        })
    })?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let text = reader.join().ok()?;
    text.lines()
        .any(|l| l.trim_start().starts_with('-'))
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    struct Fake;
    impl Probe for Fake {
        fn is_installed(&self, p: &str) -> bool {
            ["ls", "grep", "find", "git", "sort", "head", "rm", "chmod"].contains(&p)
        }
        fn syntax_error(&self, c: &str, _: ShellType) -> Option<String> {
            c.contains("((").then(|| "unexpected token".to_owned())
        }
        fn help(&self, p: &str) -> Option<String> {
            match p {
                "sort" => Some(
                    "  -k, --key=KEYDEF    sort via a key\n  -n, --numeric-sort  compare numerically\n  -r, --reverse       reverse the result\n  -t, --field-separator=SEP\n  -h, --human-numeric-sort\n".into(),
                ),
                "chmod" => Some(
                    "  -c, --changes\n  -f, --silent, --quiet\n  -v, --verbose\n  -R, --recursive\n".into(),
                ),
                "find" => Some(
                    "      -name PATTERN -mtime N -type [bcdpflsD] -size N -delete\n      -exec COMMAND ; -exec COMMAND {} + -maxdepth LEVELS\n".into(),
                ),
                _ => None,
            }
        }
    }

    fn options(request: &str) -> Checks<'_> {
        Checks {
            options: true,
            request,
        }
    }

    fn unknown(program: &str, option: &str) -> Option<Problem> {
        Some(Problem::UnknownOption {
            program: program.into(),
            option: option.into(),
            help: Vec::new(),
        })
    }

    #[rstest]
    #[case::listed_cluster("sort -rn data.txt", None)]
    #[case::value_after_letter("sort -t, -k2,2n data.txt", None)]
    #[case::long_with_value("sort --key=2 --reverse data.txt", None)]
    #[case::long_abbreviated("sort --rev data.txt", None)]
    #[case::invented_short("sort -z data.txt", unknown("sort", "-z"))]
    #[case::invented_letter_in_cluster("sort -rq data.txt", unknown("sort", "-q"))]
    #[case::invented_long("sort --descending data.txt", unknown("sort", "--descending"))]
    #[case::after_double_dash("sort -- -z", None)]
    #[case::piped_program("ls | sort -x", unknown("sort", "-x"))]
    #[case::find_predicates("find . -type f -name '*.log' -mtime -7 -size +1M", None)]
    #[case::find_exec_child_flags_not_finds("find . -name '*.tmp' -exec rm -f {} +", None)]
    #[case::find_newer_family("find . -newermt 2024-01-01", None)]
    #[case::find_invented("find . -filename x", unknown("find", "-filename"))]
    #[case::unlisted_program_not_asked("ls --no-such-thing", None)]
    #[case::chmod_mode_is_not_an_option("chmod -x scripts/deploy.sh", None)]
    #[case::chmod_mode_clusters("chmod -wx,o-r f && chmod -R -w d", None)]
    #[case::chmod_invented_option("chmod --deep 644 f", unknown("chmod", "--deep"))]
    fn options_against_help(#[case] cmd: &str, #[case] want: Option<Problem>) {
        let got = find_problem(cmd, ShellType::Bash, &Fake, options("")).map(|p| match p {
            Problem::UnknownOption {
                program, option, ..
            } => Problem::UnknownOption {
                program,
                option,
                help: Vec::new(),
            },
            other => other,
        });
        assert_eq!(got, want);
        assert_eq!(
            find_problem(cmd, ShellType::Bash, &Fake, Checks::default()),
            None,
            "options are checked only when asked"
        );
    }

    #[test]
    fn the_feedback_shows_the_help_lines_that_fit_the_request() {
        let p = find_problem(
            "sort --descending sizes.txt",
            ShellType::Bash,
            &Fake,
            options("sort sizes.txt numerically in reverse"),
        )
        .expect("a problem");
        let Problem::UnknownOption { help, .. } = &p else {
            panic!("{p:?}")
        };
        assert_eq!(help.len(), 2, "{help:?}");
        assert!(help.iter().any(|l| l.contains("--reverse")));
        let text = p.feedback();
        assert!(
            text.contains("--descending") && text.contains("--reverse"),
            "{text}"
        );
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
        assert_eq!(
            find_problem(cmd, ShellType::Bash, &Fake, Checks::default()),
            want
        );
    }

    #[test]
    fn other_shells_are_not_checked() {
        for shell in [ShellType::PowerShell, ShellType::Fish] {
            assert_eq!(find_problem("tree", shell, &Fake, options("x")), None);
        }
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

    /// The real `--help` of GNU coreutils: `tail -r` is BSD's and GNU tail lacks it, the
    /// kind of borrowed flag the 1.5B model writes on Linux.
    #[test]
    #[cfg(target_os = "linux")]
    fn host_probe_reads_the_real_help() {
        let p = HostProbe;
        let help = p.help("tail").expect("GNU tail answers --help");
        assert!(lists(&help, "-n") && lists(&help, "--lines"));
        let got = find_problem("tail -r notes.txt", ShellType::Bash, &p, options("reverse"));
        assert!(
            matches!(&got, Some(Problem::UnknownOption { option, .. }) if option == "-r"),
            "{got:?}"
        );
        assert_eq!(
            find_problem("tail -n 5 notes.txt", ShellType::Bash, &p, options("")),
            None
        );
        assert_eq!(p.help("git"), None, "only the listed programs are asked");
    }
}
