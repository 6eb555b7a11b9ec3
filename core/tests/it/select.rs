//! Issue 20: best-of-k's choice and preview, run in the real bubblewrap sandbox on a scratch
//! folder. Needs bubblewrap (CI installs it); without it these fail rather than pass unrun.

use caro_core::safety::{Location, SafetyMode, SafetyValidator, ShellType};
use caro_core::select::{Method, best_of};
use std::path::Path;

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("scratch");
    for (name, text) in [
        ("a.log", "one\n"),
        ("b.log", "two\n"),
        ("notes.txt", "keep\n"),
    ] {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    all.sort();
    all
}

fn choose(candidates: &[&str], dir: &Path) -> caro_core::select::Choice {
    let candidates: Vec<String> = candidates.iter().map(|c| (*c).to_owned()).collect();
    let at = Location::new(dir, Some(Path::new("/nonexistent-home")));
    best_of(
        &candidates,
        ShellType::Bash,
        &SafetyValidator::new(SafetyMode::Moderate),
        Some(&at),
        Some(dir),
    )
}

#[test]
fn the_candidates_most_of_which_do_the_same_thing_win() {
    let dir = scratch();
    let before = files(dir.path());
    // The greedy candidate counts one kind of file; two samples count every file.
    let c = choose(
        &["ls *.txt | wc -l", "ls | wc -l", "ls -1 | wc -l"],
        dir.path(),
    );
    assert_eq!(c.index, 1, "{c:?}");
    assert_eq!(c.selection.method, Method::Execution);
    assert_eq!(
        (
            c.selection.k,
            c.selection.distinct,
            c.selection.executed,
            c.selection.agreeing
        ),
        (3, 3, 3, 2)
    );
    assert_eq!(c.effects.summary, "changes nothing");
    assert_eq!(files(dir.path()), before);
}

#[test]
fn candidates_that_fail_in_the_sandbox_lose_to_one_that_works_however_many_they_are() {
    let dir = scratch();
    let before = files(dir.path());
    // Two samples agree on an error (no such folder); the one that works stands alone.
    let c = choose(&["ls logs", "ls logs/", "ls *.log"], dir.path());
    assert_eq!(c.index, 2, "{c:?}");
    assert_eq!(c.selection.method, Method::Execution);
    assert_eq!(c.selection.agreeing, 1);
    assert!(c.effects.previewed, "{c:?}");
    assert_eq!(files(dir.path()), before);
}

#[test]
fn the_preview_names_what_would_be_deleted_and_created_and_the_folder_keeps_them() {
    let dir = scratch();
    let before = files(dir.path());
    let c = choose(&["rm a.log b.log"], dir.path());
    assert!(c.effects.previewed, "{c:?}");
    assert_eq!(c.effects.summary, "would delete 2 files: a.log, b.log");
    assert_eq!(c.selection.method, Method::Single);
    let c = choose(&["touch out.txt"], dir.path());
    assert_eq!(c.effects.summary, "would create out.txt");
    assert_eq!(files(dir.path()), before, "the real folder is untouched");
}

#[test]
fn a_critical_candidate_is_never_executed() {
    let dir = scratch();
    let before = files(dir.path());
    // Rated critical in the home folder and anywhere: neither may run, even sandboxed.
    let c = choose(&["rm -rf / --no-preserve-root", "rm -rf ~/*"], dir.path());
    assert_eq!(c.selection.executed, 0, "{c:?}");
    assert!(!c.effects.previewed);
    assert!(
        c.effects.summary.contains("never runs high or critical"),
        "{}",
        c.effects.summary
    );
    assert_eq!(c.selection.method, Method::Structure);
    // Beside a safe one, only the safe one runs.
    let c = choose(&["rm -rf / --no-preserve-root", "ls"], dir.path());
    assert_eq!(c.selection.executed, 1, "{c:?}");
    assert_eq!(files(dir.path()), before);
}

#[test]
fn without_a_sandbox_for_the_shell_the_vote_is_on_structure_and_says_so() {
    let dir = scratch();
    let candidates: Vec<String> = ["ls -la", "ls -al", "ls"].map(String::from).to_vec();
    let c = best_of(
        &candidates,
        ShellType::Fish,
        &SafetyValidator::new(SafetyMode::Moderate),
        None,
        Some(dir.path()),
    );
    assert_eq!((c.index, c.selection.agreeing), (0, 2));
    assert_eq!(c.selection.method, Method::Structure);
    assert!(
        c.selection
            .note
            .as_deref()
            .is_some_and(|n| n.contains("fish")),
        "{c:?}"
    );
    assert!(c.effects.summary.starts_with("not previewed:"));
}

/// Review of issue 20: when the command shown is not the model's first answer, the first
/// answer's warnings go (they were about it) and one warning names it.
#[test]
fn a_chosen_sample_replaces_the_first_answer_and_its_warnings() {
    let dir = scratch();
    let mut answer = caro_core::GeneratedCommand {
        command: "ls *.txt | wc -l".into(),
        explanation: None,
        backend: "embedded".into(),
        model: "m".into(),
        timings: Default::default(),
        tokens: Default::default(),
        warnings: vec!["the command was extracted from a longer reply".into()],
        raw_output: String::new(),
        fallback_reason: None,
        candidates: ["ls *.txt | wc -l", "ls | wc -l", "ls -1 | wc -l"]
            .map(String::from)
            .to_vec(),
    };
    let at = Location::new(dir.path(), Some(Path::new("/nonexistent-home")));
    let c = caro_core::select::settle(
        &mut answer,
        ShellType::Bash,
        &SafetyValidator::new(SafetyMode::Moderate),
        Some(&at),
        Some(dir.path()),
    );
    assert_eq!(c.index, 1);
    assert_eq!(answer.command, "ls | wc -l");
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains("`ls *.txt | wc -l`"),
        "{:?}",
        answer.warnings
    );
}
