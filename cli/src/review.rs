//! The choice after an answer on a terminal: run, edit, revise, explain, copy or cancel, one
//! key each. What is on offer is core's decision (`caro_core::review`); this only presents it.

use crate::output::{self, Author, BOLD, DIM, WARN};
use crate::run::{Answers, Halt};
use crate::{Cli, clipboard, exit};
use caro_core::GeneratedCommand;
use caro_core::pipeline::{Conversation, Pipeline};
use caro_core::review::{self, Choice};
use caro_core::safety::{Gate, Location};
use console::{Key, Term};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// The loop runs for a person at a terminal: stdin, stdout and stderr all TTYs, and no flag
/// that asks for a script's output or for a run without a choice. Piped or redirected, caro
/// prints the command alone, as before.
pub fn wanted(cli: &Cli) -> bool {
    !cli.json
        && !cli.quiet
        && !cli.execute
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

/// Offers the choices for `answer` until one ends the run; returns the run's exit code.
pub fn run(
    answers: &mut Answers,
    pipeline: &Pipeline,
    mut conversation: Conversation,
    mut answer: GeneratedCommand,
    mut gate: Gate,
) -> ExitCode {
    let term = Term::stderr();
    let here = Location::current();
    // A terminal that keeps answering with nothing readable (closed, or not the one we
    // checked) must not spin the loop forever.
    let mut unreadable = 0;
    loop {
        let offered = review::choices(&gate);
        let _ = write!(anstream::stderr(), "{}", menu(offered, term.size().1));
        let _ = std::io::stderr().flush();
        // Keys typed while the model worked (the start of the next command, a paste) must not
        // pick Run for a command nobody has read yet.
        discard_typeahead();
        let key = term.read_key_raw();
        let _ = write!(anstream::stderr(), "\r\x1b[2K");
        unreadable = if matches!(key, Ok(Key::Unknown)) {
            unreadable + 1
        } else {
            0
        };
        if matches!(key, Ok(Key::CtrlC)) {
            // As everywhere else in a terminal: interrupted, nothing run, exit 130.
            let _ = writeln!(anstream::stderr(), "{DIM}nothing run{DIM:#}");
            return ExitCode::from(130);
        }
        let choice = match key {
            // Ctrl-D, like Escape, leaves.
            Ok(Key::Char('\u{4}') | Key::Escape) | Err(_) => Some(Choice::Cancel),
            _ if unreadable > 20 => Some(Choice::Cancel),
            Ok(Key::Char(c)) => review::pick(&gate, c),
            Ok(_) => None,
        };
        let Some(choice) = choice else { continue };
        match choice {
            Choice::Cancel => {
                let _ = writeln!(anstream::stderr(), "{DIM}nothing run{DIM:#}");
                return if gate.blocked() {
                    ExitCode::from(exit::BLOCKED)
                } else {
                    ExitCode::SUCCESS
                };
            }
            Choice::Run => {
                // The model's memory is the user's again while their command runs.
                answers.release();
                return crate::run::execute(pipeline, &gate, &answer.command, false);
            }
            Choice::Copy => match clipboard::copy(&answer.command) {
                Ok(()) => {
                    let _ = writeln!(anstream::stderr(), "{DIM}copied to the clipboard{DIM:#}");
                    return ExitCode::SUCCESS;
                }
                Err(e) => {
                    let _ = writeln!(anstream::stderr(), "{WARN}not copied:{WARN:#} {e}");
                }
            },
            Choice::Explain => {
                let _ = write!(anstream::stderr(), "{DIM}explaining…{DIM:#}");
                let _ = std::io::stderr().flush();
                let explained = answers.explain(&answer.command, false);
                let _ = write!(anstream::stderr(), "\r\x1b[2K");
                match explained {
                    Ok(text) if !text.trim().is_empty() => {
                        let _ = writeln!(anstream::stderr(), "{}", text.trim());
                    }
                    Ok(_) => {
                        let _ = writeln!(
                            anstream::stderr(),
                            "{WARN}no explanation:{WARN:#} the model gave none"
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(anstream::stderr(), "{WARN}no explanation:{WARN:#} {e}");
                    }
                }
            }
            Choice::Edit => {
                let Some(edited) = ask_line(&term, "edit", &answer.command) else {
                    continue;
                };
                if edited == answer.command {
                    continue;
                }
                // Whatever the user typed is rated like any answer before it can run.
                answer = GeneratedCommand {
                    command: edited,
                    explanation: None,
                    warnings: Vec::new(),
                    fallback_reason: None,
                    // The user's command is the one rated, never swapped for a candidate.
                    candidates: Vec::new(),
                    ..answer
                };
                conversation.answered(&answer.command);
                gate = pipeline.gate(Some(&conversation), &answer.command, here.as_ref());
                output::print_rated(&answer, &gate, false, Author::User);
            }
            Choice::Revise => {
                let Some(instruction) = ask_line(&term, "revise", "") else {
                    continue;
                };
                // Kept only once the model answers: a failed revision changes nothing.
                let mut revised = conversation.clone();
                if let Err(e) = revised.revise(&instruction) {
                    let _ = writeln!(anstream::stderr(), "{WARN}not revised:{WARN:#} {e}");
                    continue;
                }
                match answers.generate(revised.request()) {
                    Ok(mut a) => {
                        // Issue 20: a revision is chosen and previewed like the first answer.
                        let choice = caro_core::select::settle(
                            &mut a,
                            pipeline.shell(),
                            pipeline.validator(),
                            here.as_ref(),
                            here.as_ref().map(|l| std::path::Path::new(&l.cwd)),
                        );
                        gate = pipeline.gate(Some(&revised), &a.command, here.as_ref());
                        revised.answered(&a.command);
                        conversation = revised;
                        answer = a;
                        output::print_human(&answer, &gate, false);
                        if !gate.blocked() {
                            output::print_choice(&choice, false);
                        }
                    }
                    Err(Halt::Error(e)) => output::print_error(&e, e.hint().as_deref()),
                    Err(Halt::Stop(code)) => return code,
                }
            }
        }
    }
}

/// The choices in one line: each key in bold before its name; on a terminal too narrow for
/// that, the keys alone, so the line never wraps (a wrapped menu is not cleared whole).
fn menu(offered: &[Choice], columns: u16) -> String {
    let long: usize = offered.iter().map(|c| c.label().len() + 5).sum::<usize>() + 3;
    let items: Vec<String> = if usize::from(columns) > long {
        offered
            .iter()
            .map(|c| format!("{BOLD}{}{BOLD:#} {}", c.key(), c.label()))
            .collect()
    } else {
        offered
            .iter()
            .map(|c| format!("{BOLD}{}{BOLD:#}", c.key()))
            .collect()
    };
    format!(
        "{DIM}›{DIM:#} {}  ",
        items.join(&format!(" {DIM}·{DIM:#} "))
    )
}

/// Drops what was typed but not yet read.
fn discard_typeahead() {
    #[cfg(unix)]
    let _ = rustix::termios::tcflush(std::io::stdin(), rustix::termios::QueueSelector::IFlush);
}

/// A line from the user, prefilled with `initial`; `None` when it is empty or the terminal
/// failed (nothing changes then).
fn ask_line(term: &Term, prompt: &str, initial: &str) -> Option<String> {
    let line = dialoguer::Input::<String>::with_theme(&dialoguer::theme::SimpleTheme)
        .with_prompt(prompt)
        .with_initial_text(initial)
        .allow_empty(true)
        .report(false)
        .interact_text_on(term)
        .ok()?;
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}
