//! The shell-neutral form the rules read: simple commands with normalized words, and the
//! unwrapping (wrappers, `sh -c`, `eval`, `find -exec`, `xargs`, payloads) every front end shares.

use super::{Finding, RiskLevel, Span};
use crate::shell::ShellType;
use base64::Engine;

/// How deep `sh -c "eval '…'"`-style nesting is followed before giving up.
const MAX_NESTING: usize = 8;
/// Upper bound on simple commands taken from one input, so pathological inputs stay linear.
const MAX_COMMANDS: usize = 4096;
/// How many upstream stages a pipeline stage keeps. Each stage holds a copy of the stages that
/// feed it (rules read what a command is fed), so without a cut a pipeline of n stages holds
/// n²/2 copies: 2,000 `a|` took 450 MB and 16 KB of them several GB (found in review).
const MAX_PIPELINE: usize = 64;

/// One word after quote removal and expansion, as the program would receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Arg {
    pub text: String,
    /// An expansion the checker could not resolve took part; it was taken as empty.
    pub unknown: bool,
    /// Programs whose output makes up this word (`$(curl …)`, `<(wget …)`).
    pub from: Vec<String>,
    /// Part of the text came from a variable or a command substitution, so the shell splits
    /// it into words: `c="rm -rf /"; $c` runs `rm`, not a program named `rm -rf /`.
    pub expanded: bool,
}

impl Arg {
    pub fn lit(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirOp {
    /// `>`, `>|`, `&>`, `2>`: truncates the target.
    Write,
    /// `>>`: appends.
    Append,
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub op: RedirOp,
    pub target: Arg,
}

/// What feeds a command's standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Stdin {
    #[default]
    Inherited,
    /// The previous stage of a pipeline.
    Pipe(Box<Cmd>),
    /// A heredoc or here-string with known text.
    Literal(String),
}

/// One simple command that would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cmd {
    /// `argv[0]` is the program: basename only, lower-case for PowerShell and cmd.
    pub argv: Vec<Arg>,
    pub redirects: Vec<Redirect>,
    pub stdin: Stdin,
    pub span: Option<Span>,
    /// Which syntax family produced it; rules are scoped by this.
    pub shell: Option<ShellType>,
    /// Ran under `sudo`/`doas`.
    pub elevated: bool,
    /// Where the command runs, when the caller said so: relative targets resolve against it.
    pub at: Option<std::sync::Arc<super::Location>>,
}

impl Cmd {
    pub fn program(&self) -> &str {
        self.argv.first().map(|a| a.text.as_str()).unwrap_or("")
    }

    pub fn args(&self) -> &[Arg] {
        self.argv.get(1..).unwrap_or(&[])
    }

    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// GNU-style option parsing: `-rf`, `-r -f`, `--recursive`, `--opt=value`, `--` ends options.
    pub fn gnu_flags(&self) -> Flags {
        let mut flags = Flags::default();
        let mut ended = false;
        for arg in self.args() {
            let t = arg.text.as_str();
            if ended || t == "-" || !t.starts_with('-') {
                flags.operands.push(arg.clone());
            } else if t == "--" {
                ended = true;
            } else if let Some(long) = t.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                flags.long.push(name.to_ascii_lowercase());
            } else {
                flags.short.extend(t[1..].chars());
            }
        }
        flags
    }

    /// A command this one runs (`find -exec`, `xargs`): same place, shell and privileges.
    pub fn child(&self, argv: Vec<Arg>) -> Cmd {
        Cmd {
            argv,
            redirects: Vec::new(),
            stdin: Stdin::Inherited,
            span: self.span,
            shell: self.shell,
            elevated: self.elevated,
            at: self.at.clone(),
        }
    }

    /// Commands earlier in the same pipeline, nearest first.
    pub fn upstream(&self) -> impl Iterator<Item = &Cmd> {
        let mut cur = match &self.stdin {
            Stdin::Pipe(p) => Some(p.as_ref()),
            _ => None,
        };
        std::iter::from_fn(move || {
            let c = cur?;
            cur = match &c.stdin {
                Stdin::Pipe(p) => Some(p.as_ref()),
                _ => None,
            };
            Some(c)
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub short: Vec<char>,
    pub long: Vec<String>,
    pub operands: Vec<Arg>,
}

impl Flags {
    pub fn has(&self, short: &[char], long: &[&str]) -> bool {
        self.short.iter().any(|c| short.contains(c))
            || self.long.iter().any(|l| long.contains(&l.as_str()))
    }
}

/// Every command found, and findings about the input's structure (parse failures, fork bombs,
/// remote code).
#[derive(Debug, Default)]
pub(crate) struct Extraction {
    pub cmds: Vec<Cmd>,
    pub findings: Vec<Finding>,
    /// Statements walked so far, nested parses included (see [`Extraction::visit`]).
    visits: usize,
}

/// Upper bound on statements walked for one input. A loop body is walked once per value (up to
/// 8), so ten nested `for` loops asked for 8^10 walks (found in review); real commands, even
/// 16 KB ones, walk a few thousand.
const MAX_VISITS: usize = 100_000;

impl Extraction {
    /// Counts one statement walked; false once the input has cost [`MAX_VISITS`], which rates it
    /// unanalysable (critical) and stops the walk.
    pub fn visit(&mut self) -> bool {
        self.visits += 1;
        if self.visits <= MAX_VISITS {
            return true;
        }
        if self.visits == MAX_VISITS + 1 {
            self.note(
                "input.too_complex",
                RiskLevel::Critical,
                format!("checking it would walk more than {MAX_VISITS} statements; the rest cannot be checked"),
                None,
            );
        }
        false
    }

    pub fn note(
        &mut self,
        rule_id: &str,
        level: RiskLevel,
        message: impl Into<String>,
        span: Option<Span>,
    ) {
        self.findings.push(Finding {
            rule_id: rule_id.into(),
            level,
            message: message.into(),
            alternative: None,
            span,
        });
    }
}

pub(crate) fn extract(src: &str, shell: ShellType) -> Extraction {
    let mut ex = Extraction::default();
    parse_into(src, shell, None, 0, &mut ex);
    ex
}

/// Parses `src` as `shell` and emits its commands. `base` is the span every finding inherits
/// when `src` is text nested inside the checked command.
pub(crate) fn parse_into(
    src: &str,
    shell: ShellType,
    base: Option<Span>,
    depth: usize,
    ex: &mut Extraction,
) {
    if depth > MAX_NESTING {
        // Critical, not high: what lies past the limit was never read, so it may be anything.
        ex.note(
            "input.too_deep",
            RiskLevel::Critical,
            "commands nested this deep inside `sh -c`/`eval` cannot be checked; nesting is a way to hide what runs",
            base,
        );
        return;
    }
    if src.trim().is_empty() {
        return;
    }
    match shell {
        ShellType::PowerShell => super::powershell::parse(src, base, depth, ex),
        ShellType::Cmd => super::cmdexe::parse(src, base, depth, ex),
        _ => super::posix::parse(src, shell, base, depth, ex),
    }
}

const SHELLS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
];
const POWERSHELLS: &[&str] = &["pwsh", "powershell", "pwsh.exe", "powershell.exe"];

pub(crate) fn is_shell(p: &str) -> bool {
    SHELLS.contains(&p) || POWERSHELLS.contains(&p)
}

fn shell_of_program(p: &str) -> ShellType {
    match p {
        "fish" => ShellType::Fish,
        "zsh" => ShellType::Zsh,
        "cmd" | "cmd.exe" => ShellType::Cmd,
        x if POWERSHELLS.contains(&x) => ShellType::PowerShell,
        _ => ShellType::Bash,
    }
}

/// Strips a program path: `/usr/bin/rm` → `rm`, `C:\Windows\cmd.exe` → `cmd.exe`.
pub(crate) fn basename(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

/// What a stage reads when `upstream` pipes into it. Past [`MAX_PIPELINE`] stages the oldest
/// are dropped, so memory and the recursive walks over the chain stay bounded, and the input
/// is rated unanalysable (critical): nobody writes such a pipeline by hand.
pub(crate) fn pipe_from(mut upstream: Cmd, ex: &mut Extraction) -> Stdin {
    /// Cuts the chain below `keep` stages; recursion no deeper than `keep`.
    fn cut(cmd: &mut Cmd, keep: usize) -> bool {
        match &mut cmd.stdin {
            Stdin::Pipe(_) if keep == 0 => {
                cmd.stdin = Stdin::Inherited;
                true
            }
            Stdin::Pipe(up) => cut(up, keep - 1),
            _ => false,
        }
    }
    if cut(&mut upstream, MAX_PIPELINE)
        && !ex.findings.iter().any(|f| f.rule_id == "input.too_complex")
    {
        ex.note(
            "input.too_complex",
            RiskLevel::Critical,
            format!("a pipeline of more than {MAX_PIPELINE} stages; the rest cannot be checked"),
            upstream.span,
        );
    }
    Stdin::Pipe(Box::new(upstream))
}

/// Records one stage of a pipeline read by a word-splitting front end (fallback, PowerShell,
/// cmd): linked to the previous stage when `piped`. Returns what the next stage reads from.
pub(crate) fn emit_stage(
    argv: Vec<Arg>,
    piped: bool,
    prev: Option<Cmd>,
    span: Option<Span>,
    shell: ShellType,
    depth: usize,
    ex: &mut Extraction,
) -> Option<Cmd> {
    let stdin = match (piped, prev) {
        (true, Some(p)) => pipe_from(p, ex),
        _ => Stdin::Inherited,
    };
    let cmd = Cmd {
        argv,
        redirects: Vec::new(),
        stdin,
        span,
        shell: Some(shell),
        elevated: false,
        at: None,
    };
    emit(cmd, depth, ex).and_then(|i| ex.cmds.get(i).cloned())
}

/// Normalizes, unwraps and records one raw simple command, then follows whatever it runs.
/// Returns the index of the recorded command in `ex.cmds`, so a caller can attach redirections.
pub(crate) fn emit(mut cmd: Cmd, depth: usize, ex: &mut Extraction) -> Option<usize> {
    if ex.cmds.len() >= MAX_COMMANDS {
        if ex.cmds.len() == MAX_COMMANDS
            && !ex.findings.iter().any(|f| f.rule_id == "input.too_complex")
        {
            ex.note(
                "input.too_complex",
                RiskLevel::Critical,
                format!("the command holds more than {MAX_COMMANDS} simple commands; the rest cannot be checked"),
                None,
            );
        }
        return None;
    }
    let shell = cmd.shell.unwrap_or(ShellType::Bash);
    if !resolve_command_word(&mut cmd, ex) {
        return None;
    }
    if let Some(first) = cmd.argv.first_mut() {
        let name = basename(&first.text).to_string();
        first.text = if matches!(shell, ShellType::PowerShell | ShellType::Cmd) {
            name.to_ascii_lowercase()
        } else {
            name
        };
    }
    if !unwrap_wrappers(&mut cmd) {
        return None;
    }
    let program = cmd.program().to_string();
    let base = cmd.span;
    let index = ex.cmds.len();
    ex.cmds.push(cmd.clone());

    // `sh -c SCRIPT`, `bash -lc SCRIPT`, `su -c SCRIPT`, `pwsh -Command SCRIPT`, `cmd /c SCRIPT`.
    if let Some((script, inner)) = inline_script(&cmd) {
        if script.unknown {
            ex.note(
                "exec.unresolved_script",
                RiskLevel::High,
                "a shell runs a script built by an expansion caro cannot resolve here, so any command could run",
                base,
            );
        }
        parse_into(&script.text, inner, base, depth + 1, ex);
    }
    match program.as_str() {
        "eval" => {
            let unknown = cmd.args().iter().any(|a| {
                a.unknown && (a.from.is_empty() || !a.from.iter().all(|p| is_shell_setup(p)))
            });
            if unknown {
                ex.note(
                    "exec.unresolved_script",
                    RiskLevel::High,
                    "eval runs text built by an expansion caro cannot resolve here, so any command could run",
                    base,
                );
            }
            let text = cmd
                .args()
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            parse_into(&text, shell_or_bash(shell), base, depth + 1, ex);
        }
        "ssh" => {
            // Everything after the host runs on the remote shell.
            let ops = ssh_remote_command(&cmd);
            if !ops.is_empty() {
                parse_into(&ops, ShellType::Bash, base, depth + 1, ex);
            }
        }
        "watch" => {
            // Options come first (`-n 2`, `-d`); the rest is the command line.
            let args = cmd.args();
            let mut i = 0;
            while i < args.len() && args[i].text.starts_with('-') {
                i += if matches!(
                    args[i].text.as_str(),
                    "-n" | "--interval" | "-q" | "--equexit"
                ) {
                    2
                } else {
                    1
                };
            }
            let ops: Vec<&str> = args[i.min(args.len())..]
                .iter()
                .map(|a| a.text.as_str())
                .collect();
            if !ops.is_empty() {
                parse_into(&ops.join(" "), ShellType::Bash, base, depth + 1, ex);
            }
        }
        "iex" | "invoke-expression" if shell == ShellType::PowerShell => {
            // A base64 literal decoded in place is read as the script it is:
            // `iex ([Text.Encoding]::Unicode.GetString([Convert]::FromBase64String('…')))`.
            let joined: String = cmd
                .args()
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(decoded) = ps_base64_literal(&joined) {
                parse_into(&decoded, ShellType::PowerShell, base, depth + 1, ex);
            }
            // Only a plain string can be read; anything built at run time could be anything.
            match cmd.args() {
                [code] if !code.unknown && !code.expanded => {
                    parse_into(&code.text, ShellType::PowerShell, base, depth + 1, ex);
                }
                _ => ex.note(
                    "exec.unresolved_script",
                    RiskLevel::High,
                    "Invoke-Expression runs code built at run time that caro cannot read here, so any command could run",
                    base,
                ),
            }
        }
        "find" => find_exec(&cmd, depth, ex),
        "xargs" => xargs(&cmd, depth, ex),
        _ => {}
    }
    // A shell reading its script from stdin: `… | sh`, `sh <<EOF`, `bash <<< "…"`.
    if is_shell(&program) && reads_script_from_stdin(&cmd) {
        let inner = shell_of_program(&program);
        match &cmd.stdin {
            Stdin::Literal(text) => parse_into(text, inner, base, depth + 1, ex),
            Stdin::Pipe(up) => {
                if let Some((text, decoded)) = literal_output(up) {
                    if decoded {
                        ex.note(
                            "exec.obfuscated_payload",
                            RiskLevel::High,
                            "decodes a hidden payload and runs it in a shell; encoding is how malicious commands dodge review",
                            base,
                        );
                    }
                    parse_into(&text, inner, base, depth + 1, ex);
                } else if cmd.upstream().any(is_decoder) {
                    ex.note(
                        "exec.obfuscated_payload",
                        RiskLevel::High,
                        "decodes a payload and runs it in a shell without showing what it is",
                        base,
                    );
                }
            }
            Stdin::Inherited => {}
        }
    }
    interpreter_code(&cmd, depth, ex);
    Some(index)
}

/// Reads the command word the way the shell would: an expanded word is split into words, and
/// one whose value caro cannot know is noted as at least high, since then anything may run.
/// Returns false when nothing is left to run.
fn resolve_command_word(cmd: &mut Cmd, ex: &mut Extraction) -> bool {
    let Some(first) = cmd.argv.first() else {
        return false;
    };
    let ps_call = cmd.shell == Some(ShellType::PowerShell)
        && matches!(first.text.as_str(), "&" | ".")
        && !first.unknown;
    if ps_call {
        // `& 'C:\tools\x.exe' …` names a program; `& ('Remove'+'-Item')` builds one from
        // literals, which is folded; `$c = 'Get-ChildItem'; & $c` names one through a variable
        // caro followed.
        cmd.argv.remove(0);
        if let Some(first) = cmd.argv.first_mut()
            && !first.unknown
        {
            if let Some(name) = ps_constant_concat(&first.text) {
                first.text = name.to_ascii_lowercase();
                first.expanded = false;
            } else if first.expanded
                && !first.text.is_empty()
                && !first.text.contains(['(', ')', '+', '$', '[', '{', ' '])
            {
                first.text = first.text.to_ascii_lowercase();
                first.expanded = false;
            }
        }
        let literal = cmd.argv.first().is_some_and(|a| {
            !a.unknown
                && !a.expanded
                && !a.text.is_empty()
                && !a.text.contains(['(', ')', '+', '$', '[', '{'])
        });
        if !literal {
            unresolved_command(cmd, ex);
            return !cmd.argv.is_empty() || !cmd.redirects.is_empty();
        }
        return true;
    }
    let first = &cmd.argv[0];
    if first.unknown {
        unresolved_command(cmd, ex);
        // Kept while it still has something to rate: `$X > /dev/sda` writes the disk whatever
        // `$X` is.
        return !first.text.trim().is_empty() || cmd.argv.len() > 1 || !cmd.redirects.is_empty();
    }
    if first.expanded && first.text.split_whitespace().nth(1).is_some() {
        let words: Vec<Arg> = first
            .text
            .split_whitespace()
            .map(|w| Arg {
                text: w.to_string(),
                ..first.clone()
            })
            .collect();
        cmd.argv.splice(0..1, words);
    }
    true
}

fn unresolved_command(cmd: &Cmd, ex: &mut Extraction) {
    ex.note(
        "exec.unresolved_command",
        RiskLevel::High,
        "the program to run is built by an expansion caro cannot resolve here, so any command could run",
        cmd.span,
    );
}

/// Tools whose output is shell setup the user installed them to produce: `eval "$(ssh-agent -s)"`,
/// `eval "$(direnv hook bash)"`. Their output is unknown here but is the tool's own, not text a
/// command could smuggle in.
const SHELL_SETUP_TOOLS: &[&str] = &[
    "ssh-agent",
    "gpg-agent",
    "keychain",
    "direnv",
    "starship",
    "pyenv",
    "rbenv",
    "nodenv",
    "goenv",
    "jenv",
    "plenv",
    "zoxide",
    "fnm",
    "mise",
    "rtx",
    "asdf",
    "atuin",
    "thefuck",
    "dircolors",
    "brew",
    "opam",
    "luarocks",
    "oh-my-posh",
    "conda",
    "micromamba",
    "nvm",
    "register-python-argcomplete",
    "mcfly",
    "fzf",
    "navi",
    "broot",
    "aws_completer",
];

fn is_shell_setup(program: &str) -> bool {
    SHELL_SETUP_TOOLS.contains(&program)
}

fn shell_or_bash(shell: ShellType) -> ShellType {
    if matches!(shell, ShellType::PowerShell | ShellType::Cmd) {
        shell
    } else {
        ShellType::Bash
    }
}

/// Strips `sudo`, `env`, `nice`, … so rules see the real program. Returns false when the
/// command only looks something up (`command -v rm`) and runs nothing.
fn unwrap_wrappers(cmd: &mut Cmd) -> bool {
    for _ in 0..16 {
        let program = cmd.program().to_string();
        // Options that take a value, per wrapper, so `sudo -u root rm` skips `root`.
        let valued: &[&str] = match program.as_str() {
            "sudo" => &[
                "-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "-R",
            ],
            "doas" => &["-u", "-C"],
            "env" => &["-u", "-C", "--unset", "--chdir"],
            "nice" => &["-n", "--adjustment"],
            "ionice" => &["-c", "-n", "-p", "-t"],
            "chrt" | "taskset" => &[],
            "nohup" | "time" | "builtin" | "exec" | "command" | "caffeinate" | "unbuffer"
            | "and" | "or" | "not" | "begin" | "then" | "do" | "else" | "!" | "stdbuf"
            | "setsid" | "torsocks" | "proxychains" | "proxychains4" | "nocorrect" | "noglob"
            | "busybox" | "timeout" | "gtimeout" | "flock" | "chroot" => {
                &["-a", "-s", "-k", "--signal", "--kill-after", "-p"]
            }
            _ => return true,
        };
        if program == "command" && cmd.args().iter().any(|a| a.text == "-v" || a.text == "-V") {
            return false;
        }
        if program == "busybox" && cmd.args().first().is_some_and(|a| a.text.starts_with('-')) {
            return true;
        }
        if program == "sudo" || program == "doas" {
            cmd.elevated = true;
        }
        let args = cmd.args().to_vec();
        let mut i = 0;
        while i < args.len() {
            let t = args[i].text.as_str();
            if program == "env" && t == "-S" {
                // `env -S "rm -rf /"` splits its argument into words.
                let rest: Vec<Arg> = args[i + 1..]
                    .iter()
                    .flat_map(|a| a.text.split_whitespace().map(Arg::lit).collect::<Vec<_>>())
                    .collect();
                cmd.argv = rest;
                i = usize::MAX;
                break;
            }
            if program == "env" && t.contains('=') && !t.starts_with('-') {
                i += 1;
                continue;
            }
            if t == "--" {
                i += 1;
                break;
            }
            if t.starts_with('-') && t.len() > 1 {
                i += if valued.contains(&t) { 2 } else { 1 };
                continue;
            }
            break;
        }
        if i == usize::MAX {
            // argv was replaced by `env -S`.
        } else {
            // Wrappers whose first operand is not the program.
            let skip = match program.as_str() {
                "timeout" | "gtimeout" | "flock" | "chroot" | "taskset" => 1,
                "chrt" => 1,
                _ => 0,
            };
            let start = (i + skip).min(args.len());
            cmd.argv = args[start..].to_vec();
        }
        if cmd.argv.is_empty() {
            return false;
        }
        let name = basename(&cmd.argv[0].text).to_string();
        cmd.argv[0].text = name;
    }
    true
}

/// The script of `sh -c`, `su -c`, `pwsh -Command`, `cmd /c`, and which shell runs it. The
/// script's `unknown` says an expansion caro could not resolve took part.
fn inline_script(cmd: &Cmd) -> Option<(Arg, ShellType)> {
    let joined = |args: &[Arg]| Arg {
        text: args
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        unknown: args.iter().any(|a| a.unknown),
        ..Arg::default()
    };
    let p = cmd.program();
    let args = cmd.args();
    if POWERSHELLS.contains(&p) {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let t = a.text.to_ascii_lowercase();
            if ["-c", "-command", "/c", "-com", "-comm", "-comma", "-comman"].contains(&t.as_str())
            {
                let rest: Vec<Arg> = it.cloned().collect();
                return Some((joined(&rest), ShellType::PowerShell));
            }
            if t.starts_with("-e") && "-encodedcommand".starts_with(&t) && t.len() >= 2 {
                let payload = it.next()?;
                // A payload that is not valid base64 of UTF-16 cannot be read: unknown.
                let decoded = decode_utf16_base64(&payload.text);
                return Some((
                    Arg {
                        unknown: decoded.is_none() || payload.unknown,
                        text: decoded.unwrap_or_default(),
                        ..Arg::default()
                    },
                    ShellType::PowerShell,
                ));
            }
            if !t.starts_with('-') {
                // `pwsh script.ps1` or a bare command string.
                let rest: Vec<Arg> = std::iter::once(a).chain(it).cloned().collect();
                return Some((joined(&rest), ShellType::PowerShell));
            }
        }
        return None;
    }
    if p == "cmd" || p == "cmd.exe" {
        let pos = args.iter().position(|a| {
            let t = a.text.to_ascii_lowercase();
            t == "/c" || t == "/k" || t == "/r"
        })?;
        return Some((joined(&args[pos + 1..]), ShellType::Cmd));
    }
    let posix_shell = SHELLS.contains(&p) && p != "busybox";
    if posix_shell || p == "su" || p == "runuser" || p == "script" {
        for (i, a) in args.iter().enumerate() {
            let t = a.text.as_str();
            let is_c = t == "-c"
                || t == "--command"
                || (t.starts_with('-') && !t.starts_with("--") && t.ends_with('c') && posix_shell);
            if is_c {
                let script = args.get(i + 1)?;
                let inner = if posix_shell {
                    shell_of_program(p)
                } else {
                    ShellType::Bash
                };
                return Some((script.clone(), inner));
            }
        }
    }
    None
}

/// The text of `[Convert]::FromBase64String('…')` in a PowerShell expression, decoded as
/// UTF-16 when the expression says `Unicode`, else as UTF-8.
pub(crate) fn ps_base64_literal(expr: &str) -> Option<String> {
    let lower = expr.to_ascii_lowercase();
    let at = lower.find("frombase64string(")? + "frombase64string(".len();
    let rest = expr[at..].trim_start();
    let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"')?;
    let body = &rest[1..];
    let payload = &body[..body.find(quote)?];
    if lower.contains("unicode") {
        decode_utf16_base64(payload)
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// `('Remove'+'-Item')`: a command name concatenated from string literals only.
pub(crate) fn ps_constant_concat(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut out = String::new();
    for part in inner.split('+') {
        let p = part.trim();
        let q = p.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        out.push_str(p.strip_prefix(q)?.strip_suffix(q)?);
    }
    (!out.is_empty()).then_some(out)
}

fn decode_utf16_base64(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn ssh_remote_command(cmd: &Cmd) -> String {
    // Options of ssh that take a value.
    const VALUED: &str = "BbcDEeFIiJLlmOopQRSWw";
    let args = cmd.args();
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text.as_str();
        if t.starts_with('-') && t.len() > 1 {
            let last = t.chars().last().unwrap_or(' ');
            i += if t.len() == 2 && VALUED.contains(last) {
                2
            } else {
                1
            };
            continue;
        }
        break;
    }
    args.get(i + 1..)
        .unwrap_or(&[])
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when a shell would read its script from stdin: no script operand, or `-s`.
pub(crate) fn reads_script_from_stdin(cmd: &Cmd) -> bool {
    if matches!(cmd.stdin, Stdin::Inherited) {
        return false;
    }
    if inline_script(cmd).is_some() {
        return false;
    }
    let mut operands = 0;
    for a in cmd.args() {
        let t = a.text.as_str();
        if t == "-s" || t == "-" {
            return true;
        }
        if !t.starts_with('-') {
            operands += 1;
        }
    }
    operands == 0
}

pub(crate) fn is_decoder(c: &Cmd) -> bool {
    let f = c.gnu_flags();
    match c.program() {
        "base64" | "base32" | "basenc" => f.has(&['d', 'D'], &["decode"]),
        "xxd" => f.has(&['r'], &["revert"]),
        "openssl" => c
            .args()
            .iter()
            .any(|a| a.text == "-d" || a.text == "base64"),
        "gunzip" | "zcat" | "bunzip2" | "xz" | "unxz" | "uudecode" | "rev" => true,
        "gzip" | "bzip2" => f.has(&['d'], &["decompress"]),
        _ => false,
    }
}

/// What a pipeline stage prints when it only transforms literal text: `echo`, `printf`,
/// `base64 -d`, `rev`, `xxd -r -p`. The flag says whether a decoding step took part.
pub(crate) fn literal_output(cmd: &Cmd) -> Option<(String, bool)> {
    let input = || -> Option<(String, bool)> {
        match &cmd.stdin {
            Stdin::Pipe(up) => literal_output(up),
            Stdin::Literal(s) => Some((s.clone(), false)),
            Stdin::Inherited => None,
        }
    };
    if cmd.argv.iter().any(|a| a.unknown) {
        return None;
    }
    match cmd.program() {
        "echo" => {
            let words: Vec<&str> = cmd
                .args()
                .iter()
                .map(|a| a.text.as_str())
                .skip_while(|t| matches!(*t, "-n" | "-e" | "-E" | "-ne" | "-en"))
                .collect();
            Some((unescape_c(&words.join(" ")), false))
        }
        "printf" => {
            let mut args = cmd.args().iter().map(|a| a.text.as_str());
            let mut fmt = args.next()?.to_string();
            for a in args {
                if let Some(pos) = fmt.find("%s").or_else(|| fmt.find("%b")) {
                    fmt.replace_range(pos..pos + 2, a);
                } else {
                    break;
                }
            }
            Some((unescape_c(&fmt), false))
        }
        "cat" if cmd.args().is_empty() => input(),
        "base64" | "base32" | "basenc" if is_decoder(cmd) => {
            let (text, _) = input()?;
            let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let bytes = engines.iter().find_map(|e| e.decode(&clean).ok())?;
            Some((String::from_utf8_lossy(&bytes).into_owned(), true))
        }
        "rev" => {
            let (text, d) = input()?;
            let out: Vec<String> = text.lines().map(|l| l.chars().rev().collect()).collect();
            let _ = d;
            // Reversing text hides it from a reader just as encoding does.
            Some((out.join("\n"), true))
        }
        "xxd" if is_decoder(cmd) => {
            let (text, _) = input()?;
            let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            Some((String::from_utf8_lossy(&bytes?).into_owned(), true))
        }
        "tee" => input(),
        _ => None,
    }
}

/// `\n`, `\t`, `\xHH` and octal `\NNN` escapes, as `echo -e`, `printf` and `$'…'` read them.
pub(crate) fn unescape_c(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('x') => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                if let Some(ch) = char::from_u32(v) {
                    out.push(ch);
                }
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                if let Some(ch) = char::from_u32(v) {
                    out.push(ch);
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Options of `find` that take one value (so their value is not read as a path or action).
const FIND_VALUED: &[&str] = &[
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
    "-type",
    "-xtype",
    "-size",
    "-mtime",
    "-mmin",
    "-atime",
    "-amin",
    "-ctime",
    "-cmin",
    "-newer",
    "-user",
    "-group",
    "-uid",
    "-gid",
    "-perm",
    "-maxdepth",
    "-mindepth",
    "-links",
    "-inum",
    "-samefile",
    "-fstype",
    "-printf",
    "-fprint",
    "-lname",
    "-ilname",
    "-regextype",
    "-used",
    "-context",
    "-newermt",
    "-anewer",
    "-cnewer",
];
/// Predicates that narrow what `find` matches: with one of these, `find / … -delete` is not
/// "delete everything".
const FIND_FILTERS: &[&str] = &[
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
    "-size",
    "-mtime",
    "-mmin",
    "-atime",
    "-amin",
    "-ctime",
    "-cmin",
    "-newer",
    "-user",
    "-group",
    "-uid",
    "-gid",
    "-perm",
    "-empty",
    "-links",
    "-inum",
    "-samefile",
    "-lname",
    "-ilname",
    "-nouser",
    "-nogroup",
    "-newermt",
    "-used",
];

/// A parsed `find` invocation: start paths, whether predicates narrow it, and its actions.
#[derive(Debug, Default)]
pub(crate) struct FindCall {
    pub paths: Vec<Arg>,
    pub filtered: bool,
    pub delete: bool,
    pub execs: Vec<Vec<Arg>>,
}

pub(crate) fn parse_find(cmd: &Cmd) -> FindCall {
    let mut call = FindCall::default();
    let args = cmd.args();
    let mut i = 0;
    // Leading -H/-L/-P options, then paths up to the first expression token.
    while i < args.len() && matches!(args[i].text.as_str(), "-H" | "-L" | "-P") {
        i += 1;
    }
    while i < args.len() {
        let t = args[i].text.as_str();
        if t.starts_with('-') || t == "(" || t == "!" || t == "\\(" {
            break;
        }
        call.paths.push(args[i].clone());
        i += 1;
    }
    if call.paths.is_empty() {
        call.paths.push(Arg::lit("."));
    }
    while i < args.len() {
        let t = args[i].text.as_str();
        // `-name '*'` narrows nothing.
        let match_all = matches!(t, "-name" | "-iname" | "-path" | "-ipath" | "-wholename")
            && args
                .get(i + 1)
                .is_some_and(|v| matches!(v.text.as_str(), "*" | "**" | "*.*"));
        if FIND_FILTERS.contains(&t) && !match_all {
            call.filtered = true;
        }
        if t == "-delete" {
            call.delete = true;
        }
        if matches!(t, "-exec" | "-execdir" | "-ok" | "-okdir") {
            let mut inner = Vec::new();
            i += 1;
            while i < args.len()
                && args[i].text != ";"
                && args[i].text != "+"
                && args[i].text != "\\;"
            {
                inner.push(args[i].clone());
                i += 1;
            }
            call.execs.push(inner);
        } else if FIND_VALUED.contains(&t) {
            i += 1;
        }
        i += 1;
    }
    call
}

/// The path `find` hands to `-exec` for a start path: the path itself when nothing narrows the
/// match (it visits the start path first), else a marker for "something below it".
pub(crate) fn found_under(path: &Arg, filtered: bool) -> Arg {
    if !filtered {
        return path.clone();
    }
    let base = path.text.trim_end_matches('/');
    Arg {
        text: format!("{base}/{}", super::paths::FOUND_MARKER),
        ..path.clone()
    }
}

fn find_exec(cmd: &Cmd, depth: usize, ex: &mut Extraction) {
    let call = parse_find(cmd);
    for inner in &call.execs {
        for path in call.paths.iter().take(8) {
            let found = found_under(path, call.filtered);
            let argv: Vec<Arg> = inner
                .iter()
                .map(|a| {
                    if a.text.contains("{}") {
                        Arg {
                            text: a.text.replace("{}", &found.text),
                            ..found.clone()
                        }
                    } else {
                        a.clone()
                    }
                })
                .collect();
            if argv.is_empty() {
                continue;
            }
            emit(cmd.child(argv), depth + 1, ex);
        }
    }
}

/// `… | xargs CMD ARGS`: CMD runs with ARGS plus words read from stdin. When the upstream
/// stage is `find`, `ls` or `echo` with known paths, those become the extra arguments.
fn xargs(cmd: &Cmd, depth: usize, ex: &mut Extraction) {
    let args = cmd.args();
    let mut i = 0;
    let mut replace: Option<String> = None;
    while i < args.len() {
        let t = args[i].text.as_str();
        if !t.starts_with('-') {
            break;
        }
        match t {
            "-I" | "-i" => {
                replace = Some(
                    args.get(i + 1)
                        .map(|a| a.text.clone())
                        .unwrap_or_else(|| "{}".into()),
                );
                i += 2;
            }
            "-n" | "-L" | "-P" | "-d" | "-a" | "-s" | "-E" | "-e" => i += 2,
            _ => {
                if let Some(r) = t.strip_prefix("-I") {
                    replace = Some(r.to_string());
                }
                i += 1;
            }
        }
    }
    let inner: Vec<Arg> = args[i.min(args.len())..].to_vec();
    if inner.is_empty() {
        return;
    }
    let parallel_unbounded = args[..i.min(args.len())]
        .windows(2)
        .any(|w| w[0].text == "-P" && w[1].text == "0")
        || args[..i.min(args.len())]
            .iter()
            .any(|a| a.text == "-P0" || a.text == "--max-procs=0");
    if parallel_unbounded && cmd.upstream().any(|u| u.program() == "yes") {
        ex.note(
            "proc.fork_bomb",
            RiskLevel::Critical,
            "xargs -P0 starts a process for every line of an endless input at once: it exhausts the process table and freezes the machine",
            cmd.span,
        );
    }
    let fed: Vec<Arg> = match &cmd.stdin {
        // `xargs rm -rf <<< "/"`: a here-string or heredoc feeds known words.
        Stdin::Literal(text) => text.split_whitespace().map(Arg::lit).collect(),
        Stdin::Pipe(up) => match up.program() {
            "find" => {
                let call = parse_find(up);
                call.paths
                    .iter()
                    .map(|p| found_under(p, call.filtered))
                    .collect()
            }
            "ls" | "echo" | "printf" => up.gnu_flags().operands,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let argv: Vec<Arg> = match &replace {
        Some(r) => {
            let with = fed.first().cloned().unwrap_or_default();
            inner
                .iter()
                .map(|a| {
                    if a.text.contains(r.as_str()) {
                        Arg {
                            text: a.text.replace(r.as_str(), &with.text),
                            ..with.clone()
                        }
                    } else {
                        a.clone()
                    }
                })
                .collect()
        }
        None => inner.into_iter().chain(fed).collect(),
    };
    emit(cmd.child(argv), depth + 1, ex);
}

/// Inline code for `python -c`, `perl -e`, `ruby -e`, `node -e`, `php -r`: shell strings it
/// hands to `system()`-like calls are checked as shell, and fork loops and recursive deletes of
/// literal paths are flagged.
fn interpreter_code(cmd: &Cmd, depth: usize, ex: &mut Extraction) {
    let p = cmd.program();
    let flag: &[&str] = if p.starts_with("python") || p == "pypy" || p == "pypy3" {
        &["-c"]
    } else if p == "perl" || p == "ruby" {
        &["-e", "-E"]
    } else if p == "node" || p == "nodejs" || p == "deno" || p == "bun" {
        &["-e", "--eval", "-p", "--print"]
    } else if p == "php" {
        &["-r"]
    } else {
        return;
    };
    let args = cmd.args();
    let Some(pos) = args.iter().position(|a| {
        flag.contains(&a.text.as_str())
            || (p == "perl"
                && a.text.starts_with('-')
                && (a.text.ends_with('e') || a.text.ends_with('E'))
                && !a.text.starts_with("--")
                // `-le`, `-ne`: clustered switches; not `-MFile::Path=remove_tree`.
                && a.text[1..].chars().all(|c| c.is_ascii_alphabetic()))
    }) else {
        return;
    };
    let Some(code) = args.get(pos + 1) else {
        return;
    };
    let code = code.text.as_str();
    let lower = code.to_ascii_lowercase();
    let base = cmd.span;
    let forks = lower.contains("fork");
    let loops = lower.contains("while")
        || lower.contains("for ")
        || lower.contains("loop")
        || lower.contains("until");
    // `while(true) spawn(…)`: processes started without end are a fork bomb too.
    let spawns = ["spawn(", "popen(", "start-process", "exec("]
        .iter()
        .any(|k| lower.contains(k));
    let endless = [
        "while(true)",
        "while (true)",
        "while true",
        "while 1",
        "for(;;)",
        "loop {",
        "loop do",
    ]
    .iter()
    .any(|k| lower.contains(k));
    if (forks && loops) || (spawns && endless) {
        ex.note("proc.fork_bomb", RiskLevel::Critical, "a loop of fork() calls: a fork bomb that exhausts the process table and freezes the machine", base);
    }
    let literals = string_literals(code);
    let runs_shell = [
        "system",
        "popen",
        "subprocess",
        "exec",
        "spawn",
        "shell_exec",
        "passthru",
        "`",
        "%x",
        "call(",
        "run(",
        "check_output",
    ]
    .iter()
    .any(|k| lower.contains(k));
    if runs_shell {
        for lit in &literals {
            parse_into(lit, ShellType::Bash, base, depth + 1, ex);
        }
        // An argument list: `subprocess.run(['rm', '-rf', '/'])`, `system "rm", "-rf", "/"`.
        if literals.len() > 1 {
            parse_into(&literals.join(" "), ShellType::Bash, base, depth + 1, ex);
        }
        // Perl and Ruby backticks hold shell directly.
        for part in code.split('`').skip(1).step_by(2) {
            parse_into(part, ShellType::Bash, base, depth + 1, ex);
        }
    }
    let deletes_tree = [
        "rmtree",
        "rm_rf",
        "rmsync",
        "rmdirsync",
        "remove_dir_all",
        "rm_r(",
        "remove_tree",
        "rmdir(",
    ]
    .iter()
    .any(|k| lower.contains(k));
    // Single files removed or rewritten: `os.remove('/etc/passwd')`, `unlink "/etc/shadow"`,
    // `open('/etc/hosts', 'w')`, `fs.writeFileSync('/etc/sudoers', …)`.
    let removes_file = [
        "remove(",
        "unlink",
        "os.truncate",
        "file.delete",
        "delete_file",
        "rmsync",
    ]
    .iter()
    .any(|k| lower.contains(k));
    let writes_file = [
        "writefile",
        "write_text",
        "write_bytes",
        ".write(",
        "truncate(",
        "file.write",
    ]
    .iter()
    .any(|k| lower.contains(k))
        || (lower.contains("open(")
            && ["'w", "\"w", "'a", "\"a", "'r+", "\"r+"]
                .iter()
                .any(|m| lower.contains(m)));
    if removes_file || writes_file {
        let verb = if removes_file { "deletes" } else { "rewrites" };
        for lit in &literals {
            let (rule, level) = match super::paths::classify(&Arg::lit(lit.clone())) {
                super::paths::Target::Relative | super::paths::Target::UnderHome
                    if removes_file && lit.contains('.') =>
                {
                    ex.note(
                        "fs.interpreter_deletes_file",
                        RiskLevel::Moderate,
                        format!("inline {p} code deletes {lit:?}"),
                        base,
                    );
                    continue;
                }
                super::paths::Target::SensitiveFile => {
                    ("fs.interpreter_rewrites_auth", RiskLevel::Critical)
                }
                super::paths::Target::Root
                | super::paths::Target::SystemDir
                | super::paths::Target::UnderSystem => {
                    ("fs.interpreter_rewrites_system", RiskLevel::High)
                }
                _ => continue,
            };
            ex.note(
                rule,
                level,
                format!("inline {p} code {verb} {lit:?}, a system file"),
                base,
            );
        }
    }
    // Code that is not in the snippet: `exec(os.environ['CODE'])`, `eval(process.argv[1])`;
    // fetched from the network, it hands the machine to whoever serves it.
    let dynamic = ["exec(", "eval("].iter().any(|k| {
        lower.match_indices(k).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let next = lower[i + k.len()..].trim_start().chars().next();
            !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_')
                && !matches!(next, Some('\'' | '"' | '`' | ')'))
        })
    });
    if dynamic {
        let fetched = [
            "urlopen",
            "requests.get",
            "http.get",
            "fetch(",
            "net::http",
            "open-uri",
        ]
        .iter()
        .any(|k| lower.contains(k));
        if fetched {
            ex.note("exec.interpreter_remote_code", RiskLevel::Critical, format!("inline {p} code runs code it downloads, which hands this machine to whoever serves it"), base);
        } else {
            ex.note(
                "exec.interpreter_dynamic_code",
                RiskLevel::High,
                format!(
                    "inline {p} code runs code that is not in the command, so it cannot be checked"
                ),
                base,
            );
        }
    }
    if deletes_tree {
        let home = [
            "dir.home",
            "os.homedir()",
            "path.home()",
            "expanduser(\"~\")",
            "env['home']",
            "env[\"home\"]",
            "getenv('home')",
            "getenv(\"home\")",
        ]
        .iter()
        .any(|k| lower.contains(k));
        if home {
            ex.note(
                "fs.recursive_delete_protected",
                RiskLevel::Critical,
                format!("inline {p} code deletes your home folder recursively"),
                base,
            );
        }
        for lit in &literals {
            if matches!(
                super::paths::classify(&Arg::lit(lit.clone())),
                super::paths::Target::CwdAll | super::paths::Target::Parent
            ) {
                ex.note(
                    "fs.interpreter_delete_here",
                    RiskLevel::High,
                    format!(
                        "inline {p} code deletes {lit:?} recursively: everything in this folder"
                    ),
                    base,
                );
            }
        }
        for lit in &literals {
            let class = super::paths::classify(&Arg::lit(lit.clone()));
            if class.is_catastrophic() {
                ex.note(
                    "fs.recursive_delete_protected",
                    RiskLevel::Critical,
                    format!("inline {p} code deletes {lit:?} recursively, which would destroy the system or your home folder"),
                    base,
                );
            }
        }
    }
}

/// The contents of '…' and "…" literals in a snippet of script code (escapes undone).
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' {
            let mut s = String::new();
            let mut closed = false;
            while let Some(d) = chars.next() {
                if d == '\\' {
                    if let Some(e) = chars.next() {
                        s.push(e);
                    }
                } else if d == c {
                    closed = true;
                    break;
                } else {
                    s.push(d);
                }
            }
            if closed && out.len() < 64 {
                out.push(s);
            }
        }
    }
    out
}
