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
        let verdict = validator.verdict(command, shell, at);
        let intent = screen_prompt(request).map(|i| {
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
