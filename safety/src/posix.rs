//! POSIX-family front end: tree-sitter-bash turns bash, zsh, sh (and fish, rewritten) into
//! simple commands with their words expanded the way the shell would expand them.

use super::ir::{self, Arg, Cmd, Extraction, RedirOp, Redirect, Stdin};
use super::{RiskLevel, Span};
use crate::shell::ShellType;
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use tree_sitter::{Node, ParseOptions, ParseState, Parser};

/// Syntax trees deeper than this are not walked further (the walk is recursive).
const MAX_TREE_DEPTH: usize = 256;

/// The most the bash grammar may spend on one input. tree-sitter-bash's external scanner is
/// quadratic on some unbalanced inputs (11 KB of mostly `)` took 0.5 s, found by fuzzing),
/// while real commands, even 16 KB ones, parse in a few milliseconds: the budget only ever
/// stops garbage, and keeps a verdict's cost bounded for the daemon and the popup.
const PARSE_BUDGET: Duration = Duration::from_millis(250);

pub(crate) fn parse(
    src: &str,
    shell: ShellType,
    base: Option<Span>,
    depth: usize,
    ex: &mut Extraction,
) {
    if shell == ShellType::Fish && fish_fork_bomb(src) {
        ex.note(
            "proc.fork_bomb",
            RiskLevel::Critical,
            "a fish function that pipes itself into itself in the background: a fork bomb that freezes the machine",
            base.or(Some(Span {
                start: 0,
                end: src.len(),
            })),
        );
    }
    let rewritten;
    let text = if shell == ShellType::Fish {
        rewritten = fish_to_posix(src);
        rewritten.as_str()
    } else {
        src
    };
    let mut parser = Parser::new();
    let started = Instant::now();
    let over_budget = Cell::new(false);
    let mut progress = |_: &ParseState| {
        if started.elapsed() > PARSE_BUDGET {
            over_budget.set(true);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let bytes = text.as_bytes();
    let tree = parser
        .set_language(&tree_sitter_bash::LANGUAGE.into())
        .ok()
        .and_then(|_| {
            parser.parse_with_options(
                &mut |at, _| bytes.get(at..).unwrap_or_default(),
                None,
                Some(ParseOptions::new().progress_callback(&mut progress)),
            )
        });
    if over_budget.get() {
        // Unanalysable is never safe, and never merely "review it": past a limit is critical,
        // like input that is too long or too deeply nested.
        ex.note(
            "input.too_complex",
            RiskLevel::Critical,
            format!(
                "the shell parser could not finish reading it within {} ms, so it cannot be checked",
                PARSE_BUDGET.as_millis()
            ),
            base.or(Some(Span {
                start: 0,
                end: src.len(),
            })),
        );
        return;
    }
    let Some(tree) = tree else {
        fallback(
            text,
            shell,
            base,
            depth,
            ex,
            "the shell parser gave up on it",
        );
        return;
    };
    let root = tree.root_node();
    let mut walker = Walker {
        src: text,
        shell,
        base,
        depth,
        vars: HashMap::new(),
        ex,
        cwd: None,
        tree_depth: 0,
        too_deep: false,
    };
    walker.stmt(root, Stdin::Inherited);
    let too_deep = walker.too_deep;
    if root.has_error() || too_deep {
        fallback(text, shell, base, depth, ex, "it is not valid shell syntax");
    }
}

struct Walker<'a, 'e> {
    src: &'a str,
    shell: ShellType,
    base: Option<Span>,
    depth: usize,
    /// Variables assigned earlier in the same input; `None` means assigned but unknown.
    vars: HashMap<String, Option<String>>,
    ex: &'e mut Extraction,
    /// Directory set by an earlier `cd` on the same line, when known.
    cwd: Option<String>,
    tree_depth: usize,
    too_deep: bool,
}

impl Walker<'_, '_> {
    fn text(&self, n: Node) -> &str {
        self.src.get(n.byte_range()).unwrap_or("")
    }

    fn span(&self, n: Node) -> Option<Span> {
        self.base.or(Some(Span {
            start: n.start_byte(),
            end: n.end_byte(),
        }))
    }

    /// Visits a statement; returns the command whose output feeds a following pipe stage.
    fn stmt(&mut self, n: Node, stdin: Stdin) -> Option<Cmd> {
        if !self.ex.visit() {
            return None;
        }
        if self.tree_depth >= MAX_TREE_DEPTH {
            self.too_deep = true;
            return None;
        }
        self.tree_depth += 1;
        let out = self.stmt_inner(n, stdin);
        self.tree_depth -= 1;
        out
    }

    fn stmt_inner(&mut self, n: Node, stdin: Stdin) -> Option<Cmd> {
        match n.kind() {
            "command" => self.command(n, stdin, Vec::new()),
            "pipeline" => {
                let mut prev: Option<Cmd> = None;
                let mut first = Some(stdin);
                let mut cursor = n.walk();
                let stages: Vec<Node> = n.named_children(&mut cursor).collect();
                for stage in stages {
                    let input = match (first.take(), prev.take()) {
                        (Some(s), _) => s,
                        (None, Some(p)) => ir::pipe_from(p, self.ex),
                        (None, None) => Stdin::Inherited,
                    };
                    prev = self.stmt(stage, input);
                }
                prev
            }
            "redirected_statement" => self.redirected(n, stdin),
            "variable_assignment" => {
                self.assign(n);
                None
            }
            "declaration_command" => {
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                for k in kids {
                    if k.kind() == "variable_assignment" {
                        self.assign(k);
                    } else {
                        self.value(k);
                    }
                }
                None
            }
            "unset_command" => {
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                for k in kids {
                    let name = self.text(k).to_string();
                    self.vars.remove(&name);
                }
                None
            }
            "for_statement" => {
                self.for_loop(n);
                None
            }
            "function_definition" => {
                self.function(n);
                None
            }
            "while_statement" | "c_style_for_statement" => {
                if endless_loop_starting_jobs(self.src, n) {
                    self.ex.note(
                        "proc.fork_bomb",
                        RiskLevel::Critical,
                        "an endless loop starts background jobs without waiting for them: it exhausts the process table and freezes the machine",
                        self.span(n),
                    );
                }
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                for k in kids {
                    self.stmt(k, Stdin::Inherited);
                }
                None
            }
            "comment" | "heredoc_body" | "heredoc_start" | "heredoc_end" => None,
            "command_substitution"
            | "process_substitution"
            | "string"
            | "concatenation"
            | "expansion"
            | "simple_expansion" => {
                self.value(n);
                None
            }
            _ => {
                let mut last = None;
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                for k in kids {
                    if let Some(c) = self.stmt(k, stdin.clone()) {
                        last = Some(c);
                    }
                }
                last
            }
        }
    }

    fn command(
        &mut self,
        n: Node,
        mut stdin: Stdin,
        extra_redirects: Vec<Redirect>,
    ) -> Option<Cmd> {
        let mut argv: Vec<Arg> = Vec::new();
        let mut redirects = extra_redirects;
        let mut prefix_env: Vec<(String, Option<String>)> = Vec::new();
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.named_children(&mut cursor).collect();
        for k in kids {
            match k.kind() {
                "variable_assignment" => {
                    let (name, val) = self.assignment_of(k);
                    prefix_env.push((name, val));
                }
                "command_name" => {
                    if let Some(c) = k.named_child(0) {
                        argv.extend(self.words(c));
                    } else {
                        argv.push(Arg::lit(self.text(k)));
                    }
                }
                "file_redirect" => redirects.extend(self.file_redirect(k)),
                "herestring_redirect" => {
                    if let Some(c) = k.named_child(0) {
                        let v = self.value(c);
                        stdin = Stdin::Literal(v.text);
                    }
                }
                "comment" => {}
                _ => argv.extend(self.words(k)),
            }
        }
        if argv.is_empty() {
            // `X=/` alone assigns for the rest of the line.
            for (name, val) in prefix_env {
                self.vars.insert(name, val);
            }
            if redirects.is_empty() {
                return None;
            }
        }
        if self.shell == ShellType::Fish && argv.first().is_some_and(|a| a.text == "set") {
            self.fish_set(&argv);
        }
        if self.shell != ShellType::Fish
            && argv.first().is_some_and(|a| a.text == "set")
            && argv.get(1).is_some_and(|a| a.text == "--")
        {
            // `set -- a b c` sets the positional parameters that `"$@"` then runs.
            let words: Vec<&str> = argv[2..].iter().map(|a| a.text.as_str()).collect();
            let unknown = argv[2..].iter().any(|a| a.unknown);
            let joined = (!unknown).then(|| words.join(" "));
            self.vars.insert("@".into(), joined.clone());
            self.vars.insert("*".into(), joined);
            for (i, w) in words.iter().enumerate().take(9) {
                self.vars
                    .insert((i + 1).to_string(), (!unknown).then(|| (*w).to_string()));
            }
        }
        // A known IFS splits expanded words at its characters, as the shell would:
        // `IFS=_; c=rm_-rf_/; $c` runs `rm -rf /`.
        if let Some(Some(ifs)) = self.vars.get("IFS").cloned()
            && !ifs.is_empty()
        {
            for a in argv.iter_mut().filter(|a| a.expanded && !a.unknown) {
                a.text = a
                    .text
                    .chars()
                    .map(|c| if ifs.contains(c) { ' ' } else { c })
                    .collect();
            }
        }
        if let Some(first) = argv.first_mut()
            && first.expanded
            && (matches!(self.vars.get("IFS"), Some(None))
                || first
                    .text
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.ends_with('/')))
        {
            // A changed IFS splits the value where caro cannot follow it.
            first.unknown = true;
        }
        self.follow_cd(&mut argv);
        let cmd = Cmd {
            argv,
            redirects,
            stdin,
            span: self.span(n),
            shell: Some(self.shell),
            elevated: false,
            at: None,
        };
        let idx = ir::emit(cmd, self.depth, self.ex)?;
        self.ex.cmds.get(idx).cloned()
    }

    /// Tracks `cd DIR` so that `cd / && rm -rf *` is read as `rm -rf /*`, and rewrites the
    /// relative path operands of file-destroying commands against it.
    fn follow_cd(&mut self, argv: &mut [Arg]) {
        const PATH_COMMANDS: &[&str] = &[
            "rm", "rmdir", "mv", "chmod", "chown", "chgrp", "find", "rsync", "shred", "srm",
            "unlink", "cp",
        ];
        let Some(program) = argv.first().map(|a| a.text.clone()) else {
            return;
        };
        if program == "cd" || program == "pushd" {
            let target = argv.iter().skip(1).find(|a| !a.text.starts_with('-'));
            self.cwd = match target {
                None => Some("~".into()),
                Some(t) if t.unknown => None,
                Some(t) if t.text.starts_with('/') || t.text.starts_with('~') => {
                    Some(t.text.clone())
                }
                Some(t) => self.cwd.as_ref().map(|c| format!("{c}/{}", t.text)),
            };
            return;
        }
        let Some(cwd) = &self.cwd else { return };
        if !PATH_COMMANDS.contains(&program.as_str()) {
            return;
        }
        for a in argv.iter_mut().skip(1) {
            let t = &a.text;
            if t.is_empty() || t.starts_with(['-', '/', '~']) || t.contains('=') {
                continue;
            }
            a.text = format!("{cwd}/{t}");
        }
    }

    fn redirected(&mut self, n: Node, stdin: Stdin) -> Option<Cmd> {
        let mut redirects = Vec::new();
        let mut input = stdin;
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.named_children(&mut cursor).collect();
        let body = n.child_by_field_name("body");
        for k in &kids {
            match k.kind() {
                "file_redirect" => redirects.extend(self.file_redirect(*k)),
                "herestring_redirect" => {
                    if let Some(c) = k.named_child(0) {
                        input = Stdin::Literal(self.value(c).text);
                    }
                }
                "heredoc_redirect" => {
                    let mut c2 = k.walk();
                    for h in k.named_children(&mut c2) {
                        if h.kind() == "heredoc_body" {
                            input = Stdin::Literal(self.text(h).to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(body) = body else {
            // A bare redirection (`> /dev/sda`) still writes.
            let cmd = Cmd {
                argv: Vec::new(),
                redirects,
                stdin: input,
                span: self.span(n),
                shell: Some(self.shell),
                elevated: false,
                at: None,
            };
            self.ex.cmds.push(cmd.clone());
            return Some(cmd);
        };
        if body.kind() == "command" {
            return self.command(body, input, redirects);
        }
        let before = self.ex.cmds.len();
        let out = self.stmt(body, input);
        // Compound bodies: the redirection applies to every command inside.
        for c in self.ex.cmds[before..].iter_mut() {
            c.redirects.extend(redirects.iter().cloned());
        }
        if self.ex.cmds.len() == before && !redirects.is_empty() {
            self.ex.cmds.push(Cmd {
                argv: Vec::new(),
                redirects,
                stdin: Stdin::Inherited,
                span: self.span(n),
                shell: Some(self.shell),
                elevated: false,
                at: None,
            });
        }
        out
    }

    fn file_redirect(&mut self, n: Node) -> Option<Redirect> {
        let mut op = String::new();
        let mut cursor = n.walk();
        for c in n.children(&mut cursor) {
            if !c.is_named() {
                op.push_str(c.kind());
            }
        }
        let dest = n.child_by_field_name("destination").or_else(|| {
            let mut c = n.walk();
            n.named_children(&mut c)
                .filter(|k| k.kind() != "file_descriptor")
                .last()
        })?;
        let target = self.value(dest);
        if op.contains('&') && target.text.chars().all(|c| c.is_ascii_digit() || c == '-') {
            return None; // `2>&1`, `>&-`
        }
        let op = if op.contains(">>") {
            RedirOp::Append
        } else if op.contains('>') {
            RedirOp::Write
        } else {
            RedirOp::Read
        };
        Some(Redirect { op, target })
    }

    fn assignment_of(&mut self, n: Node) -> (String, Option<String>) {
        let name = n
            .child_by_field_name("name")
            .map(|k| self.text(k).to_string())
            .unwrap_or_default();
        let val = match n.child_by_field_name("value") {
            // `a=(rm -rf /)`: an array, kept as its words joined, which `"${a[@]}"` runs.
            Some(v) if v.kind() == "array" => {
                let mut cursor = v.walk();
                let kids: Vec<Node> = v.named_children(&mut cursor).collect();
                let words: Vec<Arg> = kids.into_iter().map(|k| self.value(k)).collect();
                if words.iter().any(|w| w.unknown) {
                    None
                } else {
                    Some(
                        words
                            .iter()
                            .map(|w| w.text.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                }
            }
            Some(v) => {
                let a = self.value(v);
                if a.unknown { None } else { Some(a.text) }
            }
            None => Some(String::new()),
        };
        (name, val)
    }

    fn assign(&mut self, n: Node) {
        let (name, val) = self.assignment_of(n);
        self.vars.insert(name, val);
    }

    fn fish_set(&mut self, argv: &[Arg]) {
        let mut rest = argv[1..].iter().skip_while(|a| a.text.starts_with('-'));
        if let Some(name) = rest.next() {
            let vals: Vec<&Arg> = rest.collect();
            let unknown = vals.iter().any(|a| a.unknown);
            let joined = vals
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            self.vars
                .insert(name.text.clone(), if unknown { None } else { Some(joined) });
        }
    }

    fn for_loop(&mut self, n: Node) {
        let var = n
            .child_by_field_name("variable")
            .map(|k| self.text(k).to_string())
            .unwrap_or_default();
        let mut values: Vec<Arg> = Vec::new();
        let mut cursor = n.walk();
        let value_nodes: Vec<Node> = n.children_by_field_name("value", &mut cursor).collect();
        for v in value_nodes {
            values.extend(self.words(v));
        }
        let Some(body) = n.child_by_field_name("body") else {
            return;
        };
        if values.is_empty() {
            self.vars.insert(var.clone(), None);
            self.stmt(body, Stdin::Inherited);
            return;
        }
        // Walk the body once per value (bounded), so `for d in / ~; do rm -rf $d; done` is seen.
        for v in values.into_iter().take(8) {
            let val = if v.unknown { None } else { Some(v.text) };
            self.vars.insert(var.clone(), val);
            self.stmt(body, Stdin::Inherited);
        }
    }

    fn function(&mut self, n: Node) {
        let name = n
            .child_by_field_name("name")
            .map(|k| self.text(k).to_string())
            .unwrap_or_default();
        let Some(body) = n.child_by_field_name("body") else {
            return;
        };
        let before = self.ex.cmds.len();
        self.stmt(body, Stdin::Inherited);
        let calls_itself = self.ex.cmds[before..].iter().any(|c| c.program() == name);
        let body_text = self.text(body);
        if calls_itself && (body_text.contains('&') || body_text.contains('|')) {
            self.ex.note(
                "proc.fork_bomb",
                RiskLevel::Critical,
                format!("`{name}` calls itself in the background or through a pipe: a fork bomb that exhausts the process table and freezes the machine"),
                self.span(n),
            );
        }
    }

    /// A word node as one or more arguments (brace expansion can make several).
    fn words(&mut self, n: Node) -> Vec<Arg> {
        let v = self.value(n);
        let quoted = matches!(n.kind(), "string" | "raw_string" | "ansi_c_string");
        if !quoted && v.text.contains('{') && v.text.contains(',') {
            return expand_braces(&v);
        }
        vec![v]
    }

    fn value(&mut self, n: Node) -> Arg {
        if self.tree_depth >= MAX_TREE_DEPTH {
            self.too_deep = true;
            return Arg {
                unknown: true,
                ..Arg::default()
            };
        }
        self.tree_depth += 1;
        let out = self.value_inner(n);
        self.tree_depth -= 1;
        out
    }

    fn value_inner(&mut self, n: Node) -> Arg {
        let text = self.text(n).to_string();
        match n.kind() {
            "word"
            | "number"
            | "command_name"
            | "special_variable_name"
            | "variable_name"
            | "file_descriptor"
            | "regex"
            | "extglob_pattern" => {
                if n.named_child_count() > 0 {
                    return self.pieces(n, n.start_byte(), n.end_byte(), false);
                }
                Arg::lit(unescape_unquoted(&text))
            }
            "raw_string" => {
                let inner = text
                    .strip_prefix('\'')
                    .and_then(|t| t.strip_suffix('\''))
                    .unwrap_or(&text);
                Arg::lit(literal_tilde(inner))
            }
            "ansi_c_string" => {
                let inner = text
                    .strip_prefix("$'")
                    .and_then(|t| t.strip_suffix('\''))
                    .unwrap_or(&text);
                Arg::lit(ir::unescape_c(inner))
            }
            "string" | "translated_string" => {
                let open = if n.kind() == "translated_string" {
                    2
                } else {
                    1
                };
                let start = (n.start_byte() + open).min(n.end_byte());
                let end = n.end_byte().saturating_sub(1).max(start);
                let mut a = self.pieces(n, start, end, true);
                // Only a tilde typed inside the quotes is literal; `"$HOME"` still means home.
                if self.src.get(start..start + 1) == Some("~") {
                    a.text = literal_tilde(&a.text);
                }
                a
            }
            "concatenation" => self.pieces(n, n.start_byte(), n.end_byte(), false),
            "simple_expansion" | "expansion" => self.expand(n),
            "command_substitution" => self.substitution(n),
            "process_substitution" => {
                let before = self.ex.cmds.len();
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                for k in kids {
                    self.stmt(k, Stdin::Inherited);
                }
                let from = self.ex.cmds[before..]
                    .iter()
                    .map(|c| c.program().to_string())
                    .collect();
                Arg {
                    text: "/dev/fd/63".into(),
                    from,
                    ..Arg::default()
                }
            }
            "arithmetic_expansion" => Arg {
                unknown: true,
                expanded: true,
                ..Arg::default()
            },
            _ => {
                // Anything else may still hide substitutions: walk them, keep the text.
                let mut cursor = n.walk();
                let kids: Vec<Node> = n.named_children(&mut cursor).collect();
                let mut arg = Arg::lit(unescape_unquoted(&text));
                for k in kids {
                    let v = self.value(k);
                    arg.unknown |= v.unknown;
                    arg.expanded |= v.expanded;
                    arg.from.extend(v.from);
                }
                arg
            }
        }
    }

    /// Concatenates children's values with the literal text between them.
    fn pieces(&mut self, n: Node, start: usize, end: usize, quoted: bool) -> Arg {
        let mut out = Arg::default();
        let mut pos = start;
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.named_children(&mut cursor).collect();
        for k in kids {
            if k.start_byte() < pos || k.end_byte() > end {
                continue;
            }
            if k.start_byte() > pos {
                let gap = self.src.get(pos..k.start_byte()).unwrap_or("");
                out.text.push_str(&unescape_gap(gap, quoted));
            }
            let v = if k.kind() == "string_content" {
                Arg::lit(unescape_gap(self.text(k), true))
            } else {
                self.value(k)
            };
            out.text.push_str(&v.text);
            out.unknown |= v.unknown;
            out.expanded |= v.expanded;
            out.from.extend(v.from);
            pos = k.end_byte();
        }
        if pos < end {
            let gap = self.src.get(pos..end).unwrap_or("");
            out.text.push_str(&unescape_gap(gap, quoted));
        }
        out
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        match name {
            "HOME" => Some("~".into()),
            "PWD" => Some(".".into()),
            "TMPDIR" => Some("/tmp".into()),
            // The user's own program choices: `$EDITOR file` opens an editor. Unset here, they
            // stand for the usual programs rather than for "anything could run".
            "EDITOR" | "VISUAL" => Some("vi".into()),
            "PAGER" => Some("less".into()),
            "SHELL" => Some("sh".into()),
            _ => None,
        }
    }

    fn expand(&mut self, n: Node) -> Arg {
        let text = self.text(n).to_string();
        let unknown = Arg {
            unknown: true,
            expanded: true,
            ..Arg::default()
        };
        if n.kind() == "simple_expansion" {
            let name = text.trim_start_matches('$');
            return match self.lookup(name) {
                Some(v) => expanded(v),
                None => unknown,
            };
        }
        // `${…}`: walk children for nested substitutions, then read the operator by hand.
        let inner = text
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or("")
            .to_string();
        let mut nested = Arg::default();
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.named_children(&mut cursor).collect();
        for k in kids {
            if matches!(
                k.kind(),
                "command_substitution" | "expansion" | "simple_expansion" | "string"
            ) {
                let v = self.value(k);
                nested.from.extend(v.from);
            }
        }
        let name_len = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .count();
        let (name, rest) = inner.split_at(name_len.min(inner.len()));
        let value = self.lookup(name);
        for op in [":-", "-", ":=", "="] {
            if let Some(default) = rest.strip_prefix(op) {
                let word = unescape_unquoted(default.trim_matches(['"', '\'']));
                return match value {
                    Some(v) if !(v.is_empty() && op.starts_with(':')) => expanded(v),
                    Some(_) => expanded(word),
                    // Unset or not: the default is what a careless script gets.
                    None => Arg {
                        text: word,
                        unknown: true,
                        from: nested.from,
                        expanded: true,
                    },
                };
            }
        }
        if rest.is_empty() || rest == "[@]" || rest == "[*]" {
            return match value {
                Some(v) => expanded(v),
                None => Arg {
                    from: nested.from,
                    ..unknown
                },
            };
        }
        Arg {
            from: nested.from,
            ..unknown
        }
    }

    fn substitution(&mut self, n: Node) -> Arg {
        let before = self.ex.cmds.len();
        let mut last = None;
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.named_children(&mut cursor).collect();
        let count = kids.len();
        for k in kids {
            last = self.stmt(k, Stdin::Inherited).or(last);
        }
        let from: Vec<String> = self.ex.cmds[before..]
            .iter()
            .map(|c| c.program().to_string())
            .collect();
        // `$(echo cm0gLXJmIC8K | base64 -d)` has a knowable value.
        if count == 1
            && let Some((text, _)) = last.as_ref().and_then(ir::literal_output)
        {
            return Arg {
                text: text.trim_end_matches('\n').to_string(),
                unknown: false,
                from,
                expanded: true,
            };
        }
        Arg {
            text: String::new(),
            unknown: true,
            from,
            expanded: true,
        }
    }
}

/// `while true; do … & done`, `until false`, `for ((;;))`: a loop with no exit whose body puts
/// a job in the background.
fn endless_loop_starting_jobs(src: &str, n: Node) -> bool {
    let text = |k: Node| src.get(k.byte_range()).unwrap_or("");
    let Some(body) = n.child_by_field_name("body") else {
        return false;
    };
    let endless = if n.kind() == "c_style_for_statement" {
        n.child_by_field_name("condition").is_none()
    } else {
        let until = n.child(0).is_some_and(|k| text(k) == "until");
        let cond = n
            .child_by_field_name("condition")
            .map(|c| text(c).trim().trim_end_matches(';').trim().to_string())
            .unwrap_or_default();
        let always = ["true", ":", "[ 1 ]", "[[ 1 ]]", "((1))", "/bin/true"];
        if until {
            cond == "false" || cond == "/bin/false"
        } else {
            always.contains(&cond.as_str())
        }
    };
    endless && has_background_job(text(body))
}

/// A lone `&` (not `&&`, `>&`, `&>`, `|&`) puts the command before it in the background.
fn has_background_job(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'&'
            && !matches!(b.get(i + 1), Some(b'&' | b'>'))
            && !(i > 0 && matches!(b[i - 1], b'&' | b'>' | b'|' | b'<'))
    })
}

/// A word whose known value came from an expansion.
fn expanded(text: String) -> Arg {
    Arg {
        text,
        expanded: true,
        ..Arg::default()
    }
}

/// Inside double quotes a leading `~` is literal, so `rm -rf "~"` names a folder called `~`.
fn literal_tilde(s: &str) -> String {
    if s.starts_with('~') {
        format!("./{s}")
    } else {
        s.to_string()
    }
}

/// Backslash removal outside quotes: `\r\m` → `rm`, `\ ` → space.
fn unescape_unquoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\n') | None => {}
                Some(d) => out.push(d),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Literal text between expansions: inside double quotes only `\"`, `\\`, `\$` and `` \` ``
/// are escapes; outside, any backslash escapes. Quote characters themselves are dropped.
fn unescape_gap(s: &str, quoted: bool) -> String {
    if !quoted {
        return unescape_unquoted(&s.replace(['"', '\''], ""));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) {
            if let Some(d) = chars.next() {
                out.push(d);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One level of `{a,b}` brace expansion: `/{bin,usr}` → `/bin`, `/usr`.
fn expand_braces(arg: &Arg) -> Vec<Arg> {
    let t = &arg.text;
    let (Some(open), Some(close)) = (t.find('{'), t.rfind('}')) else {
        return vec![arg.clone()];
    };
    if close < open {
        return vec![arg.clone()];
    }
    let (pre, body, post) = (&t[..open], &t[open + 1..close], &t[close + 1..]);
    if !body.contains(',') || body.contains('{') {
        return vec![arg.clone()];
    }
    body.split(',')
        .take(32)
        .map(|alt| Arg {
            text: format!("{pre}{alt}{post}"),
            ..arg.clone()
        })
        .collect()
}

/// Rewrites fish syntax that tree-sitter-bash cannot read: `(cmd)` substitution becomes `$(cmd)`.
pub(crate) fn fish_to_posix(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 8);
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    if let Some(d) = chars.next() {
                        out.push(d);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '(' && prev != '$' {
                    out.push('$');
                }
                if c == '\\' {
                    out.push(c);
                    if let Some(d) = chars.next() {
                        out.push(d);
                        prev = d;
                        continue;
                    }
                }
                out.push(c);
            }
        }
        prev = c;
    }
    out
}

/// Conservative word splitter for text the parser rejects: splits on every control operator,
/// removes quotes, and reads `$HOME` as `~` and any other `$X` as unknown. Pipes still link
/// stages, so `curl … | sh` is caught even in broken syntax.
pub(crate) fn fallback(
    src: &str,
    shell: ShellType,
    base: Option<Span>,
    depth: usize,
    ex: &mut Extraction,
    why: &str,
) {
    ex.note(
        "parse.unparsed",
        RiskLevel::Moderate,
        format!("could not be parsed as {shell} ({why}); checked word by word instead, so review it yourself"),
        base,
    );
    let mut prev: Option<Cmd> = None;
    for (words, piped, start, end) in split_segments(src) {
        if words.is_empty() {
            prev = None;
            continue;
        }
        let argv: Vec<Arg> = words
            .into_iter()
            .map(|(w, unknown)| Arg {
                text: w,
                unknown,
                from: Vec::new(),
                expanded: unknown,
            })
            .collect();
        prev = ir::emit_stage(
            argv,
            piped,
            prev.take(),
            base.or(Some(Span { start, end })),
            shell,
            depth,
            ex,
        );
    }
}

type Segment = (Vec<(String, bool)>, bool, usize, usize);

fn split_segments(src: &str) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut words: Vec<(String, bool)> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut unknown = false;
    let mut quote: Option<char> = None;
    let mut piped_next = false;
    let mut seg_start = 0;
    let bytes: Vec<(usize, char)> = src.char_indices().collect();
    let mut i = 0;
    let flush_word = |words: &mut Vec<(String, bool)>,
                      word: &mut String,
                      in_word: &mut bool,
                      unknown: &mut bool| {
        if *in_word {
            let w = std::mem::take(word);
            let w = w.replace("${HOME}", "~").replace("$HOME", "~");
            let has_var = w.contains('$');
            let w = if has_var { strip_vars(&w) } else { w };
            words.push((w, has_var || *unknown));
        }
        *in_word = false;
        *unknown = false;
    };
    while i < bytes.len() {
        let (pos, c) = bytes[i];
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' && i + 1 < bytes.len() {
                    i += 1;
                    word.push(bytes[i].1);
                } else {
                    word.push(c);
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' if i + 1 < bytes.len() => {
                    i += 1;
                    word.push(bytes[i].1);
                    in_word = true;
                }
                c if c.is_whitespace() && c != '\n' => {
                    flush_word(&mut words, &mut word, &mut in_word, &mut unknown)
                }
                ';' | '&' | '|' | '\n' | '(' | ')' | '`' | '{' | '}' => {
                    if (c == '{' || c == '}') && in_word {
                        word.push(c);
                        i += 1;
                        continue;
                    }
                    // `$(` opens a substitution: the `$` is not a word of its own.
                    if c == '(' && word.ends_with('$') {
                        word.pop();
                        in_word = !word.is_empty();
                    }
                    flush_word(&mut words, &mut word, &mut in_word, &mut unknown);
                    let piped = piped_next;
                    segs.push((std::mem::take(&mut words), piped, seg_start, pos));
                    piped_next = c == '|' && bytes.get(i + 1).map(|b| b.1) != Some('|');
                    if c == '|' && !piped_next {
                        i += 1;
                    }
                    seg_start = pos + c.len_utf8();
                }
                _ => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
        i += 1;
    }
    flush_word(&mut words, &mut word, &mut in_word, &mut unknown);
    segs.push((words, piped_next, seg_start, src.len()));
    segs
}

/// Drops `$NAME` and `${NAME}` references (their value is unknown), keeping the rest.
fn strip_vars(w: &str) -> String {
    let mut out = String::new();
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for d in chars.by_ref() {
                if d == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
            {
                chars.next();
            }
        }
    }
    out
}

/// fish's `function b; b | b &; end`: a function whose body runs itself twice through a
/// background pipe.
fn fish_fork_bomb(src: &str) -> bool {
    let squeezed: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    squeezed.match_indices("function").any(|(i, _)| {
        let rest = &squeezed[i + "function".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '-')
            .collect();
        !name.is_empty() && rest.contains(&format!("{name}|{name}&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fish_substitution_becomes_dollar_paren() {
        assert_eq!(fish_to_posix("rm -rf (echo /)"), "rm -rf $(echo /)");
        assert_eq!(fish_to_posix("echo '(x)' $(y)"), "echo '(x)' $(y)");
    }

    #[test]
    fn braces_expand_one_level() {
        let v: Vec<String> = expand_braces(&Arg::lit("/{bin,usr}"))
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(v, ["/bin", "/usr"]);
    }
}
