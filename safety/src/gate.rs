//! The safety gate: the one decision every frontend (CLI, popup, daemon client) presents for a
//! generated command — its verdict where it will run, and the screen of the request itself.

use super::intent::{IntentAction, IntentScreen, intent_action, screen_prompt};
use super::{Location, SafetyValidator, Verdict};
use crate::shell::ShellType;

/// What may be done with a generated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub verdict: Verdict,
    /// Set when the request itself asked for something destructive.
    pub intent: Option<(IntentScreen, IntentAction)>,
}

impl Gate {
    /// Rates `command`, generated for `request`, as `shell` would run it in `at` (`None`: an
    /// unknown folder). Pure: the same inputs give the same gate in every frontend.
    pub fn decide(
        validator: &SafetyValidator,
        request: &str,
        command: &str,
        shell: ShellType,
        at: Option<&Location>,
    ) -> Self {
        Self::decide_turns(validator, &[request], command, shell, at)
    }

    /// [`Self::decide`] for a request made in turns: the first words, then each revision's
    /// instruction. Each turn is screened on its own, never joined to another or to a command
    /// (joined, "remove the -s flag" after "the size of my home folder" read as deleting the
    /// home folder), and the most dangerous turn counts, so a refused request stays refused
    /// however it is revised.
    pub fn decide_turns(
        validator: &SafetyValidator,
        turns: &[&str],
        command: &str,
        shell: ShellType,
        at: Option<&Location>,
    ) -> Self {
        let verdict = validator.verdict(command, shell, at);
        let intent = turns
            .iter()
            .filter_map(|t| screen_prompt(t))
            .max_by_key(|i| i.level)
            .map(|i| {
                let action = intent_action(i.level, verdict.risk);
                (i, action)
            });
        Self { verdict, intent }
    }

    /// Refused outright: the validator blocks the command, or the request was destructive and
    /// the command looks milder than it (so its verdict cannot be trusted).
    pub fn blocked(&self) -> bool {
        self.verdict.blocked || matches!(self.intent, Some((_, IntentAction::Refused)))
    }

    /// Runs only after the user says yes.
    pub fn needs_confirmation(&self) -> bool {
        self.verdict.needs_confirmation && !self.blocked()
    }

    /// The refusal to show when [`Self::blocked`], in one sentence.
    pub fn refusal(&self) -> Option<String> {
        if let Some((intent, IntentAction::Refused)) = &self.intent {
            return Some(format!(
                "refused: {}, but the command does not look like it does that",
                intent.reason
            ));
        }
        self.verdict.blocked.then(|| {
            format!(
                "blocked: {} command in {} mode{}",
                self.verdict.risk,
                self.verdict.mode,
                self.verdict
                    .headline()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SafetyMode;

    fn home() -> Location {
        Location {
            cwd: "/tmp/scratch-home".into(),
            home: Some("/tmp/scratch-home".into()),
        }
    }

    // Issue 16: the popup showed `rm -rf *` for "wipe my home folder" as moderate.
    #[test]
    fn a_request_to_wipe_home_answered_with_rm_star_is_blocked() {
        let v = SafetyValidator::new(SafetyMode::Moderate);
        let g = Gate::decide(
            &v,
            "wipe my home folder",
            "rm -rf *",
            ShellType::Bash,
            Some(&home()),
        );
        assert!(g.blocked(), "{g:?}");
        assert!(g.refusal().is_some());
        // Without a location the request screen still refuses a milder-looking command.
        let g = Gate::decide(&v, "wipe my home folder", "ls", ShellType::Bash, None);
        assert!(g.blocked());
    }

    // Found in review of the CLI's Revise: the joined text "show the size of my home folder —
    // start from `du -sh ~` and change it: remove the -s flag" read as deleting the home folder.
    #[test]
    fn revision_turns_are_screened_one_by_one_and_the_worst_counts() {
        let v = SafetyValidator::new(SafetyMode::Moderate);
        let turns = ["show the size of my home folder", "remove the -s flag"];
        let joined = crate::screen_prompt(&turns.join(" — start from `du -sh ~` and change it: "));
        assert!(joined.is_some(), "the joined text is what misread");
        let g = Gate::decide_turns(&v, &turns, "du -h ~", ShellType::Bash, None);
        assert!(g.intent.is_none() && !g.blocked(), "{g:?}");
        // A destructive first request, or a destructive instruction, still refuses.
        for turns in [
            ["wipe my home folder", "only the logs"],
            ["list my home folder", "then wipe my home folder"],
        ] {
            let g = Gate::decide_turns(&v, &turns, "ls", ShellType::Bash, None);
            assert!(g.blocked(), "{turns:?}: {g:?}");
        }
    }

    #[test]
    fn everything_in_a_project_folder_asks_first() {
        let v = SafetyValidator::new(SafetyMode::Moderate);
        let at = home().in_dir(std::path::Path::new("proj/sub"));
        let g = Gate::decide(
            &v,
            "clean this folder",
            "rm -rf *",
            ShellType::Bash,
            Some(&at),
        );
        assert!(!g.blocked(), "{g:?}");
        assert!(g.needs_confirmation());
        assert_eq!(g.verdict.cwd.as_deref(), Some(at.cwd.as_str()));
    }
}
