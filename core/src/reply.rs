//! Pulls the command out of a model's reply, whatever shape it came in: bare text, JSON, a
//! fenced block, or prose with the command in backticks. Also decides when a reply being
//! streamed already holds a complete command, so generation can stop early.

/// Extracts the command from a model reply, or `None` when there is none.
pub fn extract_command(reply: &str) -> Option<String> {
    let reply = strip_special_tokens(reply);
    let reply = reply.trim();
    if reply.is_empty() {
        return None;
    }
    // A fenced block is authoritative: an empty one means no command, not "try the prose".
    let found = if reply.contains("```") {
        from_json(reply).or_else(|| from_fence(reply))
    } else {
        from_json(reply)
            .or_else(|| from_inline_code(reply))
            .or_else(|| from_plain(reply))
    };
    found.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty())
}

/// Whether a partial reply already contains a whole command, so decoding can stop.
///
/// A plain reply is complete at its first line break; a fenced one when its fence closes.
/// A line ending in `\` continues, and so does an unfinished JSON object.
pub fn is_complete(partial: &str) -> bool {
    let text = strip_special_tokens(partial);
    let text = text.trim_start();
    if text.starts_with("```") {
        let after_open = match text.find('\n') {
            Some(i) => &text[i + 1..],
            None => return false,
        };
        return after_open.contains("```");
    }
    if text.starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(text.trim_end()).is_ok();
    }
    match text.find('\n') {
        Some(i) => {
            let line = text[..i].trim_end();
            !line.is_empty() && !line.ends_with('\\') && !line.ends_with('`')
        }
        None => false,
    }
}

fn strip_special_tokens(s: &str) -> String {
    let mut out = s.to_owned();
    for tok in [
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_start|>",
        "</s>",
        "<|eot_id|>",
    ] {
        out = out.replace(tok, "");
    }
    out
}

fn from_json(reply: &str) -> Option<String> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    if end < start {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&reply[start..=end]).ok()?;
    ["command", "cmd", "shell_command"]
        .iter()
        .find_map(|k| value.get(k)?.as_str().map(str::to_owned))
}

fn from_fence(reply: &str) -> Option<String> {
    let open = reply.find("```")?;
    let rest = &reply[open + 3..];
    // The opening fence's info string (```bash) runs to the end of its line.
    let body_start = rest.find('\n').map(|i| i + 1)?;
    let body = &rest[body_start..];
    let body = match body.find("```") {
        Some(close) => &body[..close],
        None => body,
    };
    first_command_in_lines(body)
}

fn from_inline_code(reply: &str) -> Option<String> {
    // Only for prose: a reply that *is* a command may legitimately contain backticks.
    let first_line = reply.lines().next().unwrap_or_default();
    if !looks_like_prose(first_line) {
        return None;
    }
    let mut spans = Vec::new();
    let mut rest = reply;
    while let Some(a) = rest.find('`') {
        let after = &rest[a + 1..];
        let Some(b) = after.find('`') else { break };
        spans.push(&after[..b]);
        rest = &after[b + 1..];
    }
    // Prose often quotes single words (`find`) before the real command.
    spans
        .iter()
        .find(|s| s.trim().contains(' '))
        .or_else(|| spans.first())
        .map(|s| s.trim().to_owned())
}

fn looks_like_prose(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let starts_capital = line.chars().next().is_some_and(char::is_uppercase);
    let lead = [
        "you ", "use ", "to ", "the ", "this ", "here", "run ", "try ",
    ];
    let lower = line.to_ascii_lowercase();
    (starts_capital && words.len() > 3 && line.contains('`'))
        || lead.iter().any(|l| lower.starts_with(l)) && line.contains('`')
}

fn from_plain(reply: &str) -> Option<String> {
    first_command_in_lines(reply)
}

/// First non-comment line, with `\` continuations joined and prompt markers removed.
fn first_command_in_lines(text: &str) -> Option<String> {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim();
        if out.is_empty() {
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let line = strip_prompt_marker(line);
            if line.is_empty() {
                continue;
            }
            out.push_str(line);
        } else {
            out.push(' ');
            out.push_str(line);
        }
        if let Some(stripped) = out.strip_suffix('\\') {
            out = stripped.trim_end().to_owned();
            continue;
        }
        break;
    }
    let mut out = out.trim();
    // A whole reply wrapped in one pair of backticks; `echo `date`` keeps its own.
    if out.len() >= 2
        && out.starts_with('`')
        && out.ends_with('`')
        && out[1..out.len() - 1].find('`').is_none()
    {
        out = out[1..out.len() - 1].trim();
    }
    let out = out.to_owned();
    (!out.is_empty()).then_some(out)
}

fn strip_prompt_marker(line: &str) -> &str {
    let mut line = line;
    for marker in ["Command:", "command:", "$ ", "PS> ", "> ", "% "] {
        if let Some(rest) = line.strip_prefix(marker) {
            line = rest.trim_start();
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bare("find . -type f -size +100M", "find . -type f -size +100M")]
    #[case::bare_with_end_token("ls -la<|im_end|>", "ls -la")]
    #[case::bare_then_explanation("du -sh * | sort -h\nThis lists sizes.", "du -sh * | sort -h")]
    #[case::fenced_bash(
        "```bash\nfind . -name '*.log' -delete\n```",
        "find . -name '*.log' -delete"
    )]
    #[case::fenced_no_lang("```\nls -lt\n```", "ls -lt")]
    #[case::fenced_after_prose(
        "Here is the command:\n```sh\n# list\ndf -h\n```\nIt shows disks.",
        "df -h"
    )]
    #[case::fenced_unclosed("```bash\ngrep -rn TODO src", "grep -rn TODO src")]
    #[case::json(
        r#"{"command": "ps aux --sort=-%mem | head"}"#,
        "ps aux --sort=-%mem | head"
    )]
    #[case::json_in_prose(r#"Sure! {"cmd": "uptime"} done"#, "uptime")]
    #[case::prose_inline(
        "You can use `find . -mtime -1` to list recent files.",
        "find . -mtime -1"
    )]
    #[case::prose_skips_single_word_span(
        "Use `tar` like this: `tar -czf a.tgz dir`",
        "tar -czf a.tgz dir"
    )]
    #[case::dollar_prompt("$ git status", "git status")]
    #[case::command_label("Command: wc -l file.txt", "wc -l file.txt")]
    #[case::continuation("tar -czf out.tgz \\\n  src docs", "tar -czf out.tgz src docs")]
    #[case::backticks_inside_command("echo `date`", "echo `date`")]
    #[case::whole_reply_in_backticks("`ls -a`", "ls -a")]
    fn extracts(#[case] reply: &str, #[case] want: &str) {
        assert_eq!(extract_command(reply).as_deref(), Some(want));
    }

    #[rstest]
    #[case::empty("")]
    #[case::whitespace("  \n\t ")]
    #[case::only_special("<|im_end|>")]
    #[case::only_comment("# nothing to do")]
    #[case::empty_fence("```bash\n```")]
    fn finds_nothing(#[case] reply: &str) {
        assert_eq!(extract_command(reply), None);
    }

    #[test]
    fn garbage_never_panics() {
        for reply in [
            "```",
            "{",
            "}{",
            "`",
            "```\n```\n```",
            "{\"command\": 5}",
            "\\",
            "\u{0}\u{1}",
        ] {
            let _ = extract_command(reply);
            let _ = is_complete(reply);
        }
    }

    #[rstest]
    #[case::no_newline_yet("ls -la", false)]
    #[case::line_done("ls -la\n", true)]
    #[case::continuation("tar -czf a \\\n", false)]
    #[case::fence_open("```bash\nls\n", false)]
    #[case::fence_closed("```bash\nls\n```", true)]
    #[case::leading_blank_line("\nls\n", true)]
    #[case::json_partial("{\"command\": \"ls", false)]
    #[case::json_done("{\"command\": \"ls\"}", true)]
    fn completion(#[case] partial: &str, #[case] want: bool) {
        assert_eq!(is_complete(partial), want, "{partial:?}");
    }
}
