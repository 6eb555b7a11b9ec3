//! The chat messages sent to the model: a fixed system prompt, a few examples written by the
//! caro team, and the user's request last.
//!
//! The system prompt and the examples (the prefix) depend only on the shell, the OS and its
//! tool flavour, never on the directory or the request, so backends can cache their KV state
//! across requests, across folders, and on disk (issue 21). The directory's path is not in the
//! prompt at all: placed after the prefix (as a system message, or in the user's turn) it made
//! the 1.5B model write it into commands (`find project -name …` for "find config.json"),
//! and on the dev split that cost 11 of the first 50 items. The commands use relative paths,
//! and the safety verdict still knows the directory. The examples are our own: none come from
//! the public benchmarks caro is measured on.

use crate::generator::{CommandRequest, ToolFlavor};
use crate::shell::ShellType;

pub use caro_engine::ChatMessage;

/// Requests longer than this many characters are refused before tokenising, so a pasted log
/// file cannot make the tokenizer or the model chew for minutes.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// Messages for `request`: the cacheable prefix, then the user's turn. The first
/// [`prefix_len`] of them are the prefix.
pub fn build_messages(request: &CommandRequest) -> Vec<ChatMessage> {
    build_messages_with(request, &Grounding::default())
}

/// What joins the prompt after the cacheable prefix, about this request and this machine
/// (issue 19, item 4). Each part is measured on the test split before it is on by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grounding {
    /// Up to this many pairs of the team's bank closest to the request ([`crate::retrieval`]).
    pub retrieved: usize,
    /// A note on the request's folder ([`crate::workdir::Surroundings::note`]).
    pub folder_note: Option<String>,
}

/// [`build_messages`] with `grounding` between the prefix and the user's turn: the retrieved
/// pairs as earlier turns, the closest one last, then the folder note as a system message.
/// They come after the prefix so the prefix cache still holds.
pub fn build_messages_with(request: &CommandRequest, grounding: &Grounding) -> Vec<ChatMessage> {
    let mut messages = prefix_messages(request);
    let words = request.prompt.trim();
    let pairs = crate::retrieval::closest(
        words,
        request.shell,
        request.context.tool_flavor,
        grounding.retrieved,
    );
    for pair in pairs.iter().rev() {
        messages.push(ChatMessage::new("user", pair.nl.as_str()));
        messages.push(ChatMessage::new("assistant", pair.cmd.as_str()));
    }
    if let Some(note) = &grounding.folder_note {
        messages.push(ChatMessage::new("system", note.as_str()));
    }
    messages.push(ChatMessage::new("user", words));
    messages
}

/// How many of [`build_messages`]' messages form the cacheable prefix.
pub fn prefix_len(request: &CommandRequest) -> usize {
    1 + 2 * examples(request.shell, request.context.tool_flavor).len()
}

/// The messages before the request's own, identical for every request with the same shell,
/// OS and tool flavour, in any directory.
pub fn prefix_messages(request: &CommandRequest) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new("system", system_prompt(request))];
    for (ask, answer) in examples(request.shell, request.context.tool_flavor) {
        messages.push(ChatMessage::new("user", *ask));
        messages.push(ChatMessage::new("assistant", *answer));
    }
    messages
}

fn system_prompt(request: &CommandRequest) -> String {
    let shell = request.shell;
    let ctx = &request.context;
    let os = match ctx.os.as_str() {
        "macos" => "macOS",
        "linux" => "Linux",
        "windows" => "Windows",
        other => other,
    };
    let tools = match ctx.tool_flavor {
        ToolFlavor::Gnu => {
            "GNU coreutils, findutils, grep and sed (GNU flags such as `sed -i`, `stat -c`, `date -d`; no BSD-only flags)"
        }
        ToolFlavor::Bsd => {
            "BSD tools as shipped with macOS (no GNU-only flags: use `sed -i ''`, `stat -f`, `date -v`)"
        }
        ToolFlavor::Windows => "the tools built into Windows",
    };
    let syntax = match shell {
        ShellType::Fish => {
            "Use fish syntax: `(cmd)` for substitution, `set` for variables, `; and` / `; or` between commands."
        }
        ShellType::PowerShell => "Use PowerShell cmdlets and syntax.",
        ShellType::Cmd => "Use cmd.exe syntax and built-in Windows commands.",
        ShellType::Sh => "Use portable POSIX sh syntax, no bashisms.",
        ShellType::Bash | ShellType::Zsh => "Use standard POSIX tools with the shell's own syntax.",
    };
    format!(
        "You are caro, a tool that turns a request into exactly one {shell} command.\n\
         System: {os}. Shell: {shell}. Tools: {tools}.\n\
         Rules:\n\
         - Reply with the command only, on a single line: no explanation, no markdown, no code fences.\n\
         - {syntax}\n\
         - Work in the current directory unless the request names another place; use relative paths.\n\
         - Write every file and folder path exactly as the request gives it, folder prefix included.\n\
         - Do every part of the request: each filter, limit, order and option it asks for.\n\
         - Use real, widely available options only. Prefer the simplest command that fully does the job.\n\
         - Plain output: no colour or verbose flags unless asked.\n\
         - Quote file names and patterns that contain spaces or wildcards.\n\
         - Do not add sudo unless the request asks for it.\n\
         - If the request is destructive, write exactly what was asked and nothing broader."
    )
}

type Example = (&'static str, &'static str);

/// Team-written examples. They teach the reply format and each shell's idiom, and avoid the
/// requests caro is evaluated on: `bench/tests/accuracy.rs` fails when one answers or rewords
/// an item of the dev or test split (one did: the docs archive, a dev item verbatim).
fn examples(shell: ShellType, flavor: ToolFlavor) -> &'static [Example] {
    const POSIX_GNU: &[Example] = &[
        (
            "show the five biggest things in this folder",
            "du -sh -- * | sort -rh | head -n 5",
        ),
        (
            "how many lines are in each .rs file under src",
            "find src -name '*.rs' -exec wc -l {} +",
        ),
        (
            "which process is using port 5432",
            "ss -ltnp 'sport = :5432'",
        ),
        (
            "pack the assets folder into assets.tar.gz",
            "tar -czf assets.tar.gz assets",
        ),
    ];
    const POSIX_BSD: &[Example] = &[
        (
            "show the five biggest things in this folder",
            "du -sh -- * | sort -rh | head -n 5",
        ),
        (
            "how many lines are in each .rs file under src",
            "find src -name '*.rs' -exec wc -l {} +",
        ),
        (
            "which process is using port 5432",
            "lsof -nP -iTCP:5432 -sTCP:LISTEN",
        ),
        (
            "pack the assets folder into assets.tar.gz",
            "tar -czf assets.tar.gz assets",
        ),
    ];
    const FISH: &[Example] = &[
        (
            "show the five biggest things in this folder",
            "du -sh -- * | sort -rh | head -n 5",
        ),
        ("set GOPATH to ~/go for this session", "set -x GOPATH ~/go"),
        ("print how many files are in the current dir", "count *"),
    ];
    const POWERSHELL: &[Example] = &[
        (
            "show the five biggest files in this folder",
            "Get-ChildItem -File | Sort-Object Length -Descending | Select-Object -First 5",
        ),
        (
            "which process is using port 5432",
            "Get-NetTCPConnection -LocalPort 5432 | Select-Object OwningProcess",
        ),
        (
            "pack the docs folder into docs.zip",
            "Compress-Archive -Path docs -DestinationPath docs.zip",
        ),
    ];
    const CMD: &[Example] = &[
        ("list the files in this folder, newest first", "dir /o:-d"),
        (
            "which process is using port 5432",
            "netstat -ano | findstr :5432",
        ),
        (
            "copy the docs folder to D:\\backup",
            "xcopy docs D:\\backup\\docs /e /i",
        ),
    ];
    match (shell, flavor) {
        (ShellType::Fish, _) => FISH,
        (ShellType::PowerShell, _) => POWERSHELL,
        (ShellType::Cmd, _) => CMD,
        (_, ToolFlavor::Bsd) => POSIX_BSD,
        _ => POSIX_GNU,
    }
}

/// The request that revises `command`, the answer to `request`, as `instruction` says: the
/// original words stay first, so the request screen still sees what was asked for, and a
/// refused request stays refused however it is revised. One wording for every frontend.
pub fn revision_request(request: &str, command: &str, instruction: &str) -> String {
    format!(
        "{} — start from `{}` and change it: {}",
        request.trim(),
        command.trim(),
        instruction.trim()
    )
}

/// Messages that ask for a one-sentence explanation of `command` (a separate, on-demand call
/// so the command itself is never slowed down by it).
pub fn explain_messages(command: &str, shell: ShellType) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            "system",
            format!(
                "You explain {shell} commands. Reply with one or two plain sentences that say what the command does \
                 and any risk it carries. No markdown."
            ),
        ),
        ChatMessage::new("user", command),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::ExecutionContext;

    fn request(prompt: &str, shell: ShellType, os: &str) -> CommandRequest {
        CommandRequest::new(prompt, shell)
            .with_context(ExecutionContext::for_os(os, Some("/home/ada/proj".into())))
    }

    #[test]
    fn user_message_is_last_and_trimmed() {
        let m = build_messages(&request("  list files \n", ShellType::Bash, "linux"));
        let last = m.last().expect("messages");
        assert_eq!((last.role, last.content.as_str()), ("user", "list files"));
        assert_eq!(m[0].role, "system");
    }

    #[test]
    fn system_prompt_names_os_shell_and_flavor() {
        let m = build_messages(&request("x", ShellType::Zsh, "macos"));
        let sys = &m[0].content;
        for needle in ["macOS", "zsh", "BSD"] {
            assert!(sys.contains(needle), "missing {needle}: {sys}");
        }
        let m = build_messages(&request("x", ShellType::Bash, "linux"));
        assert!(m[0].content.contains("GNU"));
    }

    #[test]
    fn only_the_users_turn_follows_the_prefix() {
        let r = request("x", ShellType::Bash, "linux");
        let m = build_messages(&r);
        let n = prefix_len(&r);
        assert_eq!(m[..n], prefix_messages(&r)[..]);
        assert_eq!(m.len(), n + 1);
        assert!(m[..n].iter().all(|m| !m.content.contains("/home/ada")));
    }

    /// Issue 21: a prefix that named the directory was cached for one folder only.
    #[test]
    fn prefix_is_independent_of_the_request_and_the_directory() {
        let a = prefix_messages(&request("one", ShellType::Bash, "linux"));
        let b = prefix_messages(&request("two entirely different", ShellType::Bash, "linux"));
        assert_eq!(a, b);
        let elsewhere = CommandRequest::new("one", ShellType::Bash)
            .with_context(ExecutionContext::for_os("linux", Some("/srv/other".into())));
        assert_eq!(a, prefix_messages(&elsewhere));
        let c = prefix_messages(&request("one", ShellType::PowerShell, "windows"));
        assert_ne!(a, c);
        for shell in ShellType::ALL {
            let r = request("x", shell, "linux");
            assert_eq!(prefix_messages(&r).len(), prefix_len(&r));
        }
    }

    #[test]
    fn examples_alternate_roles() {
        for shell in ShellType::ALL {
            let m = prefix_messages(&request("x", shell, "linux"));
            for pair in m[1..].chunks(2) {
                assert_eq!(pair[0].role, "user");
                assert_eq!(pair[1].role, "assistant");
                assert!(!pair[1].content.contains('\n'), "examples are single-line");
            }
        }
    }

    #[test]
    fn grounding_sits_between_the_prefix_and_the_request_closest_pair_last() {
        let r = request(
            "count the lines in every log file",
            ShellType::Bash,
            "linux",
        );
        let n = prefix_len(&r);
        let grounding = Grounding {
            retrieved: 2,
            folder_note: Some("`logs` is a folder here.".into()),
        };
        let m = build_messages_with(&r, &grounding);
        assert_eq!(
            m[..n],
            prefix_messages(&r)[..],
            "the cached prefix is unchanged"
        );
        assert_eq!(m.len(), n + 2 * 2 + 2);
        let closest = crate::retrieval::closest(&r.prompt, r.shell, r.context.tool_flavor, 2);
        assert_eq!(m[m.len() - 4].content, closest[0].nl);
        assert_eq!(m[m.len() - 3].content, closest[0].cmd);
        assert_eq!(
            (m[m.len() - 2].role, m[m.len() - 2].content.as_str()),
            ("system", "`logs` is a folder here.")
        );
        assert_eq!(
            m.last().map(|m| m.content.as_str()),
            Some(r.prompt.as_str())
        );
        assert_eq!(
            build_messages_with(&r, &Grounding::default()),
            build_messages(&r)
        );
    }

    #[test]
    fn a_revision_keeps_the_request_first_so_the_screen_still_sees_it() {
        let r = revision_request("wipe my home folder ", "ls", " only the logs");
        assert_eq!(
            r,
            "wipe my home folder — start from `ls` and change it: only the logs"
        );
        assert!(crate::safety::screen_prompt(&r).is_some());
    }
}
