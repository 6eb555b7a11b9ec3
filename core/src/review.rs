//! What a person may do with an answer before anything runs: one list, decided from the gate,
//! for a frontend that offers the choice (the CLI's loop).

use crate::safety::Gate;

/// One thing to do with a generated command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Run it (a confirm-level command asks once more first).
    Run,
    /// Change it by hand; the edited command is rated again before anything runs.
    Edit,
    /// Ask for a change in words, keeping the request and this answer.
    Revise,
    /// Say what it does.
    Explain,
    /// Put it on the clipboard.
    Copy,
    /// Leave, running nothing.
    Cancel,
}

impl Choice {
    /// The key that picks it: a letter of its name, none shared.
    pub fn key(self) -> char {
        match self {
            Self::Run => 'r',
            Self::Edit => 'e',
            Self::Revise => 'v',
            Self::Explain => 'x',
            Self::Copy => 'c',
            Self::Cancel => 'q',
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Edit => "edit",
            Self::Revise => "revise",
            Self::Explain => "explain",
            Self::Copy => "copy",
            Self::Cancel => "cancel",
        }
    }
}

const ALL: &[Choice] = &[
    Choice::Run,
    Choice::Edit,
    Choice::Revise,
    Choice::Explain,
    Choice::Copy,
    Choice::Cancel,
];
/// A blocked command is never handed over, by hand or by clipboard: only a new answer or words
/// about this one.
const BLOCKED: &[Choice] = &[Choice::Revise, Choice::Explain, Choice::Cancel];

/// What is on offer for a command with this gate.
pub fn choices(gate: &Gate) -> &'static [Choice] {
    if gate.blocked() { BLOCKED } else { ALL }
}

/// The choice `key` picks for this gate, if it is on offer (case does not matter).
pub fn pick(gate: &Gate, key: char) -> Option<Choice> {
    let key = key.to_ascii_lowercase();
    choices(gate).iter().copied().find(|c| c.key() == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::{SafetyMode, SafetyValidator};
    use crate::shell::ShellType;

    fn gate(request: &str, command: &str) -> Gate {
        let v = SafetyValidator::new(SafetyMode::Moderate);
        Gate::decide(&v, request, command, ShellType::Bash, None)
    }

    #[test]
    fn a_safe_command_offers_everything() {
        let g = gate("list files", "ls -la");
        assert_eq!(choices(&g), ALL);
        assert_eq!(pick(&g, 'R'), Some(Choice::Run));
        assert_eq!(pick(&g, 'c'), Some(Choice::Copy));
        assert_eq!(pick(&g, 'z'), None);
    }

    #[test]
    fn a_blocked_command_cannot_be_run_edited_or_copied() {
        let g = gate("clean up", "rm -rf /");
        assert!(g.blocked());
        for k in ['r', 'e', 'c'] {
            assert_eq!(pick(&g, k), None, "{k}");
        }
        assert_eq!(pick(&g, 'v'), Some(Choice::Revise));
        assert_eq!(pick(&g, 'x'), Some(Choice::Explain));
        assert_eq!(pick(&g, 'q'), Some(Choice::Cancel));
    }

    #[test]
    fn keys_are_distinct() {
        let keys: std::collections::BTreeSet<char> = ALL.iter().map(|c| c.key()).collect();
        assert_eq!(keys.len(), ALL.len());
    }
}
