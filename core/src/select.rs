//! Best-of-k (issue 20): which of the model's candidate commands to show, chosen by what they
//! do in a throwaway sandbox where there is one, else by agreement on their structure; and the
//! chosen command's preview of its effects.
//!
//! The decision ([`choose`]) is pure: it sees each distinct candidate's votes, its model rank
//! and, where it ran, a key for its result. [`best_of`] gathers those (rating each candidate,
//! running the runnable ones in [`caro_sandbox::Preview`]) and calls it.

use crate::safety::{Location, RiskLevel, SafetyValidator, ShellType, simple_commands};
use caro_sandbox::{Effects, Limits, Outcome, Preview};
use serde::Serialize;
use std::path::Path;

/// How the command shown was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The model wrote one distinct command.
    Single,
    /// The largest group of candidates that did the same thing in the sandbox.
    Execution,
    /// The largest group of candidates with the same normalized structure (no sandbox here).
    Structure,
}

impl Method {
    /// As `--json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Execution => "execution",
            Self::Structure => "structure",
        }
    }
}

/// `--json`'s `selection`: what best-of-k did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Candidates considered: the model's first answer, and the others that passed the
    /// command check.
    pub k: usize,
    /// Of those, how many differ in their normalized structure.
    pub distinct: usize,
    /// How many distinct candidates ran in the sandbox.
    pub executed: usize,
    /// How many candidates (of `k`) agree with the one chosen.
    pub agreeing: usize,
    pub method: Method,
    /// Why the choice was not made by execution, when it could have been.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `--json`'s `effects`: what the chosen command did in the sandbox, or why it was not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectsPreview {
    pub previewed: bool,
    /// One line for a person: "would delete 2 files: a.log, b.log", "changes nothing",
    /// "not previewed: …".
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Effects>,
    /// The command's exit status in the sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

impl EffectsPreview {
    fn not(why: impl std::fmt::Display) -> Self {
        Self {
            previewed: false,
            summary: format!("not previewed: {why}"),
            changes: None,
            exit_status: None,
        }
    }

    /// A run that was cut off still shows what it had done by then, for the record; its
    /// summary says it was not previewed.
    fn with_changes(mut self, e: &Effects) -> Self {
        self.changes = Some(e.clone());
        self
    }
}

/// The command chosen, as an index into the candidates given to [`best_of`], with how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub index: usize,
    pub selection: Selection,
    pub effects: EffectsPreview,
}

/// The normalized structure of a command, the safety parser's simple commands: program,
/// sorted options, other words, redirections. `ls -la` and `ls -al` share it; a command the
/// parser cannot read is its own trimmed text.
pub fn structure(command: &str, shell: ShellType) -> String {
    let cmds = simple_commands(command, shell);
    if cmds.is_empty() {
        return command.trim().to_owned();
    }
    cmds.iter()
        .map(|c| {
            // Options are in `flags` by name; an option's own value (`--max-depth=1`) is
            // kept whole, so two values are two structures.
            let words: Vec<&str> = c
                .argv
                .iter()
                .skip(1)
                .filter(|w| !w.starts_with('-') || (w.starts_with("--") && w.contains('=')))
                .map(String::as_str)
                .collect();
            format!(
                "{}{} {} {} {}{}",
                if c.elevated { "sudo " } else { "" },
                c.argv.first().map_or("", String::as_str),
                c.flags.join(","),
                words.join(" "),
                c.redirects.join(" "),
                if c.piped { " |" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ; ")
}

/// One distinct candidate as [`choose`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// How many of the model's candidates share its structure.
    pub votes: usize,
    /// What it did in the sandbox, as a key equal for equal results; `None` when it did not
    /// run (not rated safe or moderate, no sandbox, or it timed out).
    pub result: Option<String>,
    /// It ran in the sandbox to the end and exited non-zero.
    pub failed: bool,
}

/// Which distinct candidate to show (they are in the model's order) and how many candidates
/// agree with it. Candidates that ran group by their result; one that did not run stands
/// alone with its own votes. A group that failed in the sandbox (exited non-zero) ranks below
/// every candidate that did not fail: a failing command is rarely what was asked for,
/// however many samples share its error. One that did not run (rated high or critical, or
/// no sandbox) or did not finish in time is not held to have failed. Then the heaviest group
/// wins, ties going to the group holding the candidate the model ranked highest; within a
/// group, its highest-ranked member is shown.
///
/// The failure tier was chosen on the dev split (issue 20, k = 8: 4 items more than the plain
/// majority out of 128; `bench/analysis/best_of_k.py`), and judged on the test split.
pub fn choose(candidates: &[Ranked]) -> (usize, usize) {
    let mut best: Option<(usize, usize)> = None;
    for (i, c) in candidates.iter().enumerate() {
        let weight = match &c.result {
            Some(key) => {
                // The group is counted once, from its highest-ranked member.
                if candidates[..i]
                    .iter()
                    .any(|o| o.result.as_ref() == Some(key))
                {
                    continue;
                }
                candidates
                    .iter()
                    .filter(|o| o.result.as_ref() == Some(key))
                    .map(|o| o.votes)
                    .sum()
            }
            None => c.votes,
        };
        let rank = (!c.failed, weight);
        if best.is_none_or(|(b, w)| rank > (!candidates[b].failed, w)) {
            best = Some((i, weight));
        }
    }
    best.unwrap_or((0, 0))
}

/// Whether a command may run in the sandbox: never one rated high or critical, whatever the
/// sandbox promises.
pub fn may_preview(risk: RiskLevel) -> bool {
    matches!(risk, RiskLevel::Safe | RiskLevel::Moderate)
}

/// The sandbox's shell for `shell`: only bash and sh are previewed.
fn sandbox_shell(shell: ShellType) -> Option<&'static str> {
    match shell {
        ShellType::Bash => Some("bash"),
        ShellType::Sh => Some("sh"),
        _ => None,
    }
}

/// What counts as the same result: exit status, output and changes to the folder. A run that
/// timed out agrees with nothing.
fn result_key(outcome: &Outcome, effects: &Effects) -> Option<String> {
    if outcome.timed_out {
        return None;
    }
    Some(format!(
        "{:?}\u{1}{}\u{1}{}",
        outcome.status,
        outcome.stdout,
        serde_json::to_string(effects).unwrap_or_default()
    ))
}

/// Chooses among `candidates` (the model's order, the first the greedy one; one command when
/// best-of-k is off) and previews the chosen one's effects in a sandbox holding a copy of
/// `cwd`. Each candidate is rated for `at`; only those rated safe or moderate run. Never
/// touches `cwd` itself.
pub fn best_of(
    candidates: &[String],
    shell: ShellType,
    validator: &SafetyValidator,
    at: Option<&Location>,
    cwd: Option<&Path>,
) -> Choice {
    let k = candidates.len();
    // Distinct structures, each at its first (highest-ranked) candidate, with its votes.
    let mut distinct: Vec<(usize, String, usize)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let key = structure(c, shell);
        match distinct.iter_mut().find(|(_, s, _)| *s == key) {
            Some(d) => d.2 += 1,
            None => distinct.push((i, key, 1)),
        }
    }
    let risks: Vec<RiskLevel> = distinct
        .iter()
        .map(|(i, _, _)| validator.verdict(&candidates[*i], shell, at).risk)
        .collect();
    let runnable: Vec<usize> = (0..distinct.len())
        .filter(|&d| may_preview(risks[d]))
        .collect();
    let sandbox = match (sandbox_shell(shell), cwd) {
        // Nothing may run: the folder is not even copied.
        _ if runnable.is_empty() => {
            Err("every candidate is rated high or critical, and none of those runs".to_owned())
        }
        (None, _) => Err(format!(
            "the sandbox runs bash and sh commands, not {}",
            shell.as_str()
        )),
        (Some(_), None) => Err("the current folder is not known".to_owned()),
        (Some(_), Some(dir)) => Preview::of_dir(dir, Limits::default()).map_err(|e| e.to_string()),
    };
    let mut outcomes: Vec<Option<Result<Outcome, String>>> = vec![None; distinct.len()];
    if let (Ok(sb), Some(sh)) = (&sandbox, sandbox_shell(shell)) {
        let commands: Vec<String> = runnable
            .iter()
            .map(|&d| candidates[distinct[d].0].clone())
            .collect();
        for (&d, out) in runnable.iter().zip(sb.run_all(sh, &commands)) {
            outcomes[d] = Some(out.map_err(|e| e.to_string()));
        }
    }
    let effects: Vec<Option<Effects>> = outcomes
        .iter()
        .map(|o| match (o, &sandbox) {
            (Some(Ok(out)), Ok(sb)) => Some(sb.effects(out)),
            _ => None,
        })
        .collect();
    let ranked: Vec<Ranked> = distinct
        .iter()
        .enumerate()
        .map(|(d, (_, _, votes))| Ranked {
            votes: *votes,
            result: match (&outcomes[d], &effects[d]) {
                (Some(Ok(out)), Some(e)) => result_key(out, e),
                _ => None,
            },
            failed: matches!(&outcomes[d], Some(Ok(out)) if !out.timed_out && !out.succeeded()),
        })
        .collect();
    // A run cut off at the time limit says nothing about what the command does.
    let executed = outcomes
        .iter()
        .filter(|o| matches!(o, Some(Ok(out)) if !out.timed_out))
        .count();
    let (chosen, agreeing) = choose(&ranked);
    let method = if distinct.len() <= 1 {
        Method::Single
    } else if executed > 0 {
        Method::Execution
    } else {
        Method::Structure
    };
    let note = match (&sandbox, method) {
        (Err(why), Method::Structure) => Some(format!("chosen by structure: {why}")),
        (Ok(_), Method::Structure) => {
            Some("chosen by structure: no candidate could run in the sandbox".to_owned())
        }
        _ => None,
    };
    let preview = match (&sandbox, &outcomes.get(chosen), effects.get(chosen)) {
        _ if !runnable.contains(&chosen) => EffectsPreview::not(format!(
            "it is rated {}, and caro never runs high or critical commands, even in a sandbox",
            risks.get(chosen).copied().unwrap_or(RiskLevel::Critical)
        )),
        (Err(why), _, _) => EffectsPreview::not(why),
        (Ok(_), Some(Some(Ok(out))), Some(Some(e))) if out.timed_out => {
            EffectsPreview::not(format!(
                "it did not finish within {} s",
                Limits::default().time.as_secs_f32()
            ))
            .with_changes(e)
        }
        (Ok(_), Some(Some(Ok(out))), Some(Some(e))) => EffectsPreview {
            previewed: true,
            summary: e.summary(),
            changes: Some(e.clone()),
            exit_status: out.status,
        },
        (Ok(_), Some(Some(Err(why))), _) => EffectsPreview::not(why),
        _ => EffectsPreview::not("the sandbox did not run it"),
    };
    Choice {
        index: distinct.get(chosen).map_or(0, |d| d.0),
        selection: Selection {
            k,
            distinct: distinct.len(),
            executed,
            agreeing,
            method,
            note,
        },
        effects: preview,
    }
}

/// [`best_of`] over `answer`'s candidates (or its one command), with the chosen one made
/// `answer.command`. The frontends call this before the gate, so the verdict is the chosen
/// command's.
pub fn settle(
    answer: &mut crate::GeneratedCommand,
    shell: ShellType,
    validator: &SafetyValidator,
    at: Option<&Location>,
    cwd: Option<&Path>,
) -> Choice {
    if answer.candidates.is_empty() {
        answer.candidates.push(answer.command.clone());
    }
    let choice = best_of(&answer.candidates, shell, validator, at, cwd);
    if let Some(c) = answer.candidates.get(choice.index)
        && *c != answer.command
    {
        // The warnings were about the model's first answer, which is not the one shown.
        let first = std::mem::replace(&mut answer.command, c.clone());
        answer.warnings = vec![format!(
            "chosen by {} over the model's first answer `{first}`: {} of {} candidates agree with it",
            choice.selection.method.as_str(),
            choice.selection.agreeing,
            choice.selection.k
        )];
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ran(votes: usize, result: &str) -> Ranked {
        Ranked {
            votes,
            result: Some(result.to_owned()),
            failed: false,
        }
    }

    fn failed(votes: usize, result: &str) -> Ranked {
        Ranked {
            failed: true,
            ..ran(votes, result)
        }
    }

    fn unrun(votes: usize) -> Ranked {
        Ranked {
            votes,
            result: None,
            failed: false,
        }
    }

    #[rstest]
    #[case::one_candidate(vec![ran(1, "a")], (0, 1))]
    #[case::the_agreeing_pair_beats_the_greedy(vec![ran(1, "a"), ran(1, "b"), ran(1, "b")], (1, 2))]
    #[case::a_tie_goes_to_the_model_rank(vec![ran(1, "a"), ran(1, "b")], (0, 1))]
    #[case::votes_count_inside_a_group(vec![ran(1, "a"), ran(3, "b")], (1, 3))]
    #[case::an_unrun_candidate_keeps_its_votes(vec![unrun(3), ran(1, "a"), ran(1, "a")], (0, 3))]
    #[case::unrun_candidates_never_group(vec![unrun(1), unrun(1), ran(1, "a")], (0, 1))]
    #[case::structure_vote_without_a_sandbox(vec![unrun(1), unrun(2)], (1, 2))]
    #[case::a_success_beats_a_larger_failing_group(vec![failed(1, "e"), failed(1, "e"), failed(1, "e"), ran(1, "a")], (3, 1))]
    #[case::a_failure_loses_to_an_unrun_candidate(vec![failed(3, "e"), unrun(1)], (1, 1))]
    #[case::a_failing_greedy_answer_loses_its_tie(vec![failed(1, "e"), ran(1, "a")], (1, 1))]
    #[case::among_failures_the_heaviest_wins(vec![failed(1, "e"), failed(2, "f")], (1, 2))]
    #[case::among_successes_the_heaviest_wins(vec![ran(1, "a"), ran(2, "b"), failed(4, "e")], (1, 2))]
    fn the_heaviest_group_wins(#[case] candidates: Vec<Ranked>, #[case] want: (usize, usize)) {
        assert_eq!(choose(&candidates), want);
    }

    #[rstest]
    #[case::option_order("ls -la", "ls -al")]
    #[case::split_options("ls -l -a", "ls -al")]
    #[case::spacing("ls  -la   src", "ls -la src")]
    fn the_same_structure(#[case] a: &str, #[case] b: &str) {
        assert_eq!(structure(a, ShellType::Bash), structure(b, ShellType::Bash));
    }

    #[rstest]
    #[case::other_target("rm a.log", "rm b.log")]
    #[case::other_program("ls", "ls | wc -l")]
    #[case::redirect("echo hi", "echo hi > out")]
    #[case::option_value("du --max-depth=1", "du --max-depth=5")]
    fn other_structures(#[case] a: &str, #[case] b: &str) {
        assert_ne!(structure(a, ShellType::Bash), structure(b, ShellType::Bash));
    }

    #[rstest]
    #[case::safe(RiskLevel::Safe, true)]
    #[case::moderate(RiskLevel::Moderate, true)]
    #[case::high(RiskLevel::High, false)]
    #[case::critical(RiskLevel::Critical, false)]
    fn only_safe_and_moderate_may_run(#[case] risk: RiskLevel, #[case] runs: bool) {
        assert_eq!(may_preview(risk), runs);
    }
}
