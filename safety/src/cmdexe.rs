//! cmd.exe front end: a tokenizer for its quoting (`"…"`, `^` escapes), `%VAR%` expansion and
//! command separators (`&`, `&&`, `||`, `|`).

use super::ir::{self, Arg, Cmd, Extraction};
use super::{RiskLevel, Span};
use crate::shell::ShellType;
use std::collections::HashMap;

pub(crate) fn parse(src: &str, base: Option<Span>, depth: usize, ex: &mut Extraction) {
    let span = base.or(Some(Span {
        start: 0,
        end: src.len(),
    }));
    let squeezed: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.contains("%0|%0") || squeezed.contains("start%0") && squeezed.contains("goto") {
        ex.note("proc.fork_bomb", RiskLevel::Critical, "the batch file starts copies of itself without end: a fork bomb that freezes the machine", span);
    }
    let mut vars: HashMap<String, Option<String>> = HashMap::new();
    let mut prev: Option<Cmd> = None;
    // cmd expands `%x%` when it reads the line, before a `set` on it has run; `call` and
    // delayed expansion (`!x!`) expand again when the command runs. So a segment that names a
    // variable the line itself sets is read a second time with every `set` on the line:
    // `set x=rd& call %x% /s /q C:\` runs `rd /s /q C:\`.
    let first = segments(src, &HashMap::new());
    let mut assigned: HashMap<String, Option<String>> = HashMap::new();
    for (words, _) in &first {
        let words: Vec<&str> = words
            .iter()
            .map(|a| a.text.trim_start_matches('@'))
            .skip_while(|w| w.eq_ignore_ascii_case("call"))
            .collect();
        if words.len() >= 2
            && words[0].eq_ignore_ascii_case("set")
            && let Some((k, v)) = words[1..].join(" ").split_once('=')
        {
            assigned.insert(k.trim().to_ascii_lowercase(), Some(v.to_string()));
        }
    }
    let late = segments(src, &assigned);
    let segs: Vec<(Vec<Arg>, bool)> = if !assigned.is_empty() && late.len() == first.len() {
        first
            .into_iter()
            .zip(late)
            .map(|(a, b)| {
                if a.0.iter().any(|w| w.unknown || w.text.contains('!')) {
                    b
                } else {
                    a
                }
            })
            .collect()
    } else {
        first
    };
    for (words, piped) in segs {
        if words.is_empty() {
            prev = None;
            continue;
        }
        let mut argv = words;
        argv[0].text = argv[0].text.trim_start_matches('@').to_string();
        while argv
            .first()
            .is_some_and(|a| a.text.eq_ignore_ascii_case("call"))
        {
            argv.remove(0);
        }
        if argv.is_empty() {
            continue;
        }
        if argv[0].text.eq_ignore_ascii_case("set") && argv.len() >= 2 {
            let rest = argv[1..]
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some((k, v)) = rest.split_once('=') {
                vars.insert(k.trim().to_ascii_lowercase(), Some(v.to_string()));
            }
        }
        // `/s/q` is two switches.
        let mut split = Vec::new();
        // A variable's value is split into words like the rest of the line: `%b%` holding
        // `/s /q C:\*` is three words.
        let argv: Vec<Arg> = argv
            .into_iter()
            .flat_map(|a| {
                if a.expanded && !a.unknown && a.text.split_whitespace().nth(1).is_some() {
                    a.text
                        .split_whitespace()
                        .map(|w| Arg {
                            text: w.to_string(),
                            ..a.clone()
                        })
                        .collect::<Vec<_>>()
                } else {
                    vec![a]
                }
            })
            .collect();
        for a in argv {
            if a.text.starts_with('/') && a.text[1..].contains('/') && !a.text.contains(':') {
                split.extend(a.text.split('/').filter(|s| !s.is_empty()).map(|s| Arg {
                    text: format!("/{s}"),
                    ..a.clone()
                }));
            } else {
                split.push(a);
            }
        }
        prev = ir::emit_stage(split, piped, prev.take(), span, ShellType::Cmd, depth, ex);
    }
}

fn lookup(name: &str, vars: &HashMap<String, Option<String>>) -> Option<String> {
    let n = name.to_ascii_lowercase();
    if let Some(v) = vars.get(&n) {
        return v.clone();
    }
    Some(
        match n.as_str() {
            "userprofile" | "homepath" => "~",
            "systemroot" | "windir" => "C:\\Windows",
            "systemdrive" | "homedrive" => "C:",
            "programfiles" | "programfiles(x86)" => "C:\\Program Files",
            "programdata" | "allusersprofile" => "C:\\ProgramData",
            "temp" | "tmp" => "C:\\Users\\me\\AppData\\Local\\Temp",
            "cd" => ".",
            _ => return None,
        }
        .to_string(),
    )
}

/// Command segments with their words, and whether each is fed by a pipe.
fn segments(src: &str, vars: &HashMap<String, Option<String>>) -> Vec<(Vec<Arg>, bool)> {
    let mut out = Vec::new();
    let mut words: Vec<Arg> = Vec::new();
    let mut cur = Arg::default();
    let mut in_word = false;
    let mut in_quote = false;
    let mut piped = false;
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Delayed expansion, `!x!`, of a variable set on the same line.
        if c == '!'
            && let Some(end) = chars[i + 1..].iter().position(|&d| d == '!')
        {
            let name: String = chars[i + 1..i + 1 + end].iter().collect();
            if let Some(Some(v)) = vars.get(&name.to_ascii_lowercase()) {
                cur.text.push_str(v);
                cur.expanded = true;
                in_word = true;
                i += end + 2;
                continue;
            }
        }
        if c == '%'
            && let Some(end) = chars[i + 1..].iter().position(|&d| d == '%')
        {
            let name: String = chars[i + 1..i + 1 + end].iter().collect();
            if !name.is_empty()
                && name
                    .chars()
                    .all(|d| d.is_ascii_alphanumeric() || "_()".contains(d))
            {
                match lookup(&name, vars) {
                    Some(v) => cur.text.push_str(&v),
                    None => cur.unknown = true,
                }
                // cmd expands `%x%` before it splits the line, so the value is split too.
                cur.expanded = true;
                in_word = true;
                i += end + 2;
                continue;
            }
        }
        if in_quote {
            if c == '"' {
                in_quote = false;
            } else {
                cur.text.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            '^' => {
                if let Some(&d) = chars.get(i + 1) {
                    cur.text.push(d);
                    in_word = true;
                }
                i += 1;
            }
            '"' => {
                in_quote = true;
                in_word = true;
            }
            '&' | '|' | '\n' | '(' | ')' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                out.push((std::mem::take(&mut words), piped));
                let double = chars.get(i + 1) == Some(&c);
                piped = c == '|' && !double;
                if double {
                    i += 1;
                }
            }
            '>' | '<' => {
                // Redirection targets are not arguments; skip the operator and its target.
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                while i + 1 < chars.len() && (chars[i + 1] == '>' || chars[i + 1] == '&') {
                    i += 1;
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            _ => {
                cur.text.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    if in_word {
        words.push(cur);
    }
    out.push((words, piped));
    out
}
