//! PowerShell front end: a tokenizer that knows PowerShell's quoting (`'…'`, `"…"`, backtick
//! escapes), its variables (`$env:USERPROFILE`, `$HOME`) and statement separators.

use super::ir::{self, Arg, Cmd, Extraction};
use super::{RiskLevel, Span};
use crate::shell::ShellType;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Arg),
    /// `;`, newline, `&&`, `||`, `(`, `)`, `{`, `}`: ends a command.
    Sep,
    Pipe,
}

const DOWNLOADERS: &[&str] = &[
    "iwr",
    "invoke-webrequest",
    "irm",
    "invoke-restmethod",
    "curl",
    "wget",
    "start-bitstransfer",
    "downloadstring",
    "downloadfile",
    "downloaddata",
    "net.webclient",
    "system.net.webclient",
    "httpclient",
];

/// How many rounds of folding `('a'+'b')` into `'ab'` one input gets. Each round can expose a
/// new group, so an input can ask for thousands; this many covers any name a person writes.
const MAX_FOLDS: usize = 16;

pub(crate) fn parse(src: &str, base: Option<Span>, depth: usize, ex: &mut Extraction) {
    // `& ('Remove'+'-Item') C:\ …`: a command name concatenated from literals is folded into
    // the literal it is before anything else reads the text, so the call is rated as that
    // command. A loop with a cap, not recursion: `('('+'')…` nested 2,600 deep (found by a
    // review for the fuzzer's lost crash) recursed once per round and overflowed the stack.
    let folded;
    let src = if src.contains("('") || src.contains("(\"") {
        let mut text = src.to_owned();
        let mut settled = false;
        for _ in 0..MAX_FOLDS {
            let next = fold_concat(&text);
            if next == text {
                settled = true;
                break;
            }
            text = next;
        }
        if !settled {
            // Past a limit is unanalysable, and unanalysable is never rated lower.
            ex.note(
                "input.too_complex",
                RiskLevel::Critical,
                format!(
                    "strings are concatenated more than {MAX_FOLDS} levels deep, so what runs cannot be worked out"
                ),
                base.or(Some(Span {
                    start: 0,
                    end: src.len(),
                })),
            );
        }
        folded = text;
        folded.as_str()
    } else {
        src
    };
    let lower = src.to_ascii_lowercase().replace('`', "");
    let tokens: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .filter(|t| !t.is_empty())
        .collect();
    let runs_code = tokens
        .iter()
        .any(|t| *t == "iex" || *t == "invoke-expression")
        || lower.contains("scriptblock]::create");
    let downloads = tokens.iter().any(|t| DOWNLOADERS.contains(t))
        || DOWNLOADERS
            .iter()
            .filter(|d| d.contains("download") || d.contains('.'))
            .any(|d| lower.contains(d));
    // `while ($true) { Start-Process powershell }`: processes started without end.
    if lower.contains("while")
        && (lower.contains("($true)") || lower.contains("(1)"))
        && (lower.contains("start-process") || lower.contains("saps "))
    {
        ex.note(
            "proc.fork_bomb",
            RiskLevel::Critical,
            "starts processes in an endless loop: a fork bomb that freezes the machine",
            base.or(Some(Span {
                start: 0,
                end: src.len(),
            })),
        );
    }
    // `bcdedit /deletevalue {default} osdevice`: PowerShell reads `{default}` as a script block,
    // so the boot entry's disk is matched on the text.
    if lower.contains("bcdedit")
        && lower.contains("/deletevalue")
        && (lower.contains("osdevice") || lower.contains(" device"))
    {
        ex.note(
            "win.boot_device",
            RiskLevel::Critical,
            "removes the boot entry's disk, so Windows no longer starts",
            base.or(Some(Span {
                start: 0,
                end: src.len(),
            })),
        );
    }
    // `iex (…FromBase64String('…'))`: the payload is a literal, so it is read as the script it is.
    if runs_code
        && depth < 8
        && let Some(decoded) = ir::ps_base64_literal(src)
    {
        ir::parse_into(&decoded, ShellType::PowerShell, base, depth + 1, ex);
    }
    if runs_code && downloads {
        ex.note(
            "exec.remote_code",
            RiskLevel::Critical,
            "downloads code and runs it at once (Invoke-Expression of a web response): whoever controls that URL controls this machine",
            base.or(Some(Span { start: 0, end: src.len() })),
        );
    }
    let mut vars: HashMap<String, Option<String>> = HashMap::new();
    let mut words: Vec<Arg> = Vec::new();
    let mut piped = false;
    let mut prev: Option<Cmd> = None;
    let span = base.or(Some(Span {
        start: 0,
        end: src.len(),
    }));
    let flush = |words: &mut Vec<Arg>,
                 piped: bool,
                 prev: &mut Option<Cmd>,
                 vars: &mut HashMap<String, Option<String>>,
                 ex: &mut Extraction| {
        if words.is_empty() {
            *prev = None;
            return;
        }
        let argv = std::mem::take(words);
        // `$x = 'C:\'` records a variable.
        if argv.len() >= 3 && argv[0].text.starts_with('$') && argv[1].text == "=" {
            let name = argv[0].text.trim_start_matches('$').to_ascii_lowercase();
            let val = &argv[2];
            vars.insert(
                name,
                if val.unknown {
                    None
                } else {
                    Some(val.text.clone())
                },
            );
            *prev = None;
            return;
        }
        *prev = ir::emit_stage(
            argv,
            piped,
            prev.take(),
            span,
            ShellType::PowerShell,
            depth,
            ex,
        );
    };
    // Statement by statement, so variables assigned earlier are known to later ones.
    let mut rest = src;
    let mut known = vars.clone();
    loop {
        let (stmt, tail) = split_statement(rest);
        for tok in tokenize(stmt, &known) {
            match tok {
                Tok::Word(a) => words.push(a),
                Tok::Sep => {
                    flush(&mut words, piped, &mut prev, &mut vars, ex);
                    piped = false;
                }
                Tok::Pipe => {
                    flush(&mut words, piped, &mut prev, &mut vars, ex);
                    piped = true;
                }
            }
        }
        flush(&mut words, piped, &mut prev, &mut vars, ex);
        piped = false;
        known = vars.clone();
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
}

/// Splits off the first top-level statement (at `;` or newline outside quotes and brackets).
fn split_statement(src: &str) -> (&str, Option<&str>) {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in src.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {
                if c == '`' {
                    escaped = true;
                }
            }
            None => match c {
                '`' => escaped = true,
                '\'' | '"' => quote = Some(c),
                '(' | '{' => depth += 1,
                ')' | '}' => depth -= 1,
                ';' | '\n' if depth <= 0 => return (&src[..i], Some(&src[i + 1..])),
                _ => {}
            },
        }
    }
    (src, None)
}

fn lookup(name: &str, vars: &HashMap<String, Option<String>>) -> Option<String> {
    let n = name.to_ascii_lowercase();
    if let Some(v) = vars.get(&n) {
        return v.clone();
    }
    let n = n.trim_start_matches("env:");
    Some(
        match n {
            "home" | "userprofile" | "homepath" => "~",
            "systemroot" | "windir" => "C:\\Windows",
            "systemdrive" => "C:",
            "programfiles" | "programfiles(x86)" => "C:\\Program Files",
            "programdata" | "allusersprofile" => "C:\\ProgramData",
            "temp" | "tmp" => "C:\\Users\\me\\AppData\\Local\\Temp",
            "pwd" => ".",
            "true" => "$true",
            "false" => "$false",
            "null" => "",
            _ => return None,
        }
        .to_string(),
    )
}

fn tokenize(src: &str, vars: &HashMap<String, Option<String>>) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut cur = Arg::default();
    let mut in_word = false;
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let push_word = |toks: &mut Vec<Tok>, cur: &mut Arg, in_word: &mut bool| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(cur)));
        }
        *in_word = false;
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '`' => {
                if let Some(&d) = chars.get(i + 1) {
                    cur.text.push(d);
                    in_word = true;
                }
                i += 2;
                continue;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            cur.text.push('\'');
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    cur.text.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '`' {
                        if let Some(&d) = chars.get(i + 1) {
                            cur.text.push(d);
                        }
                        i += 2;
                        continue;
                    }
                    if chars[i] == '$' {
                        i = read_var(&chars, i, &mut cur, vars);
                        continue;
                    }
                    cur.text.push(chars[i]);
                    i += 1;
                }
            }
            '$' if chars
                .get(i + 1)
                .is_some_and(|d| d.is_ascii_alphabetic() || *d == '{' || *d == '_') =>
            {
                // A bare `$name` at the start of a statement is an assignment target; keep its name.
                let is_target = !in_word && toks.last().is_none_or(|t| matches!(t, Tok::Sep));
                if is_target && next_nonspace_is_eq(&chars, i) {
                    let start = i;
                    i += 1;
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                    {
                        i += 1;
                    }
                    cur.text
                        .push_str(&chars[start..i].iter().collect::<String>());
                    in_word = true;
                    continue;
                }
                in_word = true;
                i = read_var(&chars, i, &mut cur, vars);
                continue;
            }
            '|' => {
                push_word(&mut toks, &mut cur, &mut in_word);
                if chars.get(i + 1) == Some(&'|') {
                    toks.push(Tok::Sep);
                    i += 1;
                } else {
                    toks.push(Tok::Pipe);
                }
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                push_word(&mut toks, &mut cur, &mut in_word);
                toks.push(Tok::Sep);
                i += 1;
            }
            ';' | '\n' | '(' | ')' | '{' | '}' => {
                push_word(&mut toks, &mut cur, &mut in_word);
                toks.push(Tok::Sep);
            }
            '&' if !in_word => {
                // The call operator: `& cmd args` runs `cmd`; `& ('Remove'+'-Item')` or
                // `& $x` runs a name built at run time, which caro cannot read.
                push_word(&mut toks, &mut cur, &mut in_word);
                toks.push(Tok::Sep);
                toks.push(Tok::Word(Arg::lit("&")));
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if matches!(next, Some('(' | '$' | '{' | '[')) {
                    toks.push(Tok::Word(Arg {
                        unknown: true,
                        expanded: true,
                        ..Arg::default()
                    }));
                    toks.push(Tok::Sep);
                }
            }
            c if c.is_whitespace() => push_word(&mut toks, &mut cur, &mut in_word),
            _ => {
                cur.text.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    push_word(&mut toks, &mut cur, &mut in_word);
    toks
}

fn next_nonspace_is_eq(chars: &[char], mut i: usize) -> bool {
    i += 1;
    while i < chars.len()
        && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
    {
        i += 1;
    }
    while i < chars.len() && chars[i] == ' ' {
        i += 1;
    }
    chars.get(i) == Some(&'=') && chars.get(i + 1) != Some(&'=')
}

/// Reads `$name`, `$env:NAME` or `${name}` at `i`, appends its value, returns the next index.
fn read_var(
    chars: &[char],
    mut i: usize,
    cur: &mut Arg,
    vars: &HashMap<String, Option<String>>,
) -> usize {
    i += 1;
    let mut name = String::new();
    if chars.get(i) == Some(&'{') {
        i += 1;
        while i < chars.len() && chars[i] != '}' {
            name.push(chars[i]);
            i += 1;
        }
        i += 1;
    } else {
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            name.push(chars[i]);
            i += 1;
        }
    }
    if name.is_empty() {
        cur.text.push('$');
        return i;
    }
    match lookup(&name, vars) {
        Some(v) => cur.text.push_str(&v),
        None => cur.unknown = true,
    }
    cur.expanded = true;
    i
}

/// Replaces every `( 'a' + 'b' … )` made only of string literals with the literal `'ab'`.
fn fold_concat(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')').map(|c| open + c) else {
            break;
        };
        let group = &rest[open..=close];
        match ir::ps_constant_concat(group).filter(|_| group.contains('+')) {
            Some(name) => {
                out.push_str(&rest[..open]);
                out.push('\'');
                out.push_str(&name.to_ascii_lowercase());
                out.push('\'');
            }
            None => out.push_str(&rest[..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        tokenize(src, &HashMap::new())
            .into_iter()
            .filter_map(|t| match t {
                Tok::Word(a) => Some(a.text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn backticks_and_quotes_are_removed() {
        assert_eq!(
            words("R`emove-Item -Recurse 'C:\\'"),
            ["Remove-Item", "-Recurse", "C:\\"]
        );
        assert_eq!(words("rm \"$env:USERPROFILE\\x\""), ["rm", "~\\x"]);
    }
}
