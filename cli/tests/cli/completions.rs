//! `caro completions`: the scripts in real bash, zsh and fish.

use super::*;

/// The script `caro completions SHELL` prints.
fn completion_script(shell: &str) -> tempfile::NamedTempFile {
    let out = caro()
        .args(["completions", shell])
        .output()
        .expect("caro completions");
    assert!(out.status.success(), "{out:?}");
    assert!(!out.stdout.is_empty(), "empty {shell} script");
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), &out.stdout).expect("write script");
    file
}

/// In a real bash: after sourcing the script, `complete -p caro` names caro's completion
/// function, and completing `caro comp` offers the subcommand.
#[test]
fn bash_accepts_the_completion_script_and_completes_subcommands() {
    let script = completion_script("bash");
    let probe = format!(
        "source {} && complete -p caro && COMP_WORDS=(caro comp) COMP_CWORD=1 && \
         \"$(complete -p caro | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\" caro comp caro && \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("complete ") && l.contains(" -F ") && l.ends_with(" caro")),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "completions"), "{stdout}");
}

/// zsh and fish (Debian packages; scripts/test.sh installs them) parse their scripts, and fish
/// completes the subcommands from it.
#[test]
fn zsh_and_fish_accept_their_completion_scripts() {
    let zsh = completion_script("zsh");
    let out = std::process::Command::new("zsh")
        .args(["-n"])
        .arg(zsh.path())
        .output()
        .expect("zsh is needed for this test: apt-get install zsh");
    assert!(out.status.success(), "{out:?}");
    let fish = completion_script("fish");
    let probe = format!("source {}; complete -C 'caro comp'", fish.path().display());
    let out = std::process::Command::new("fish")
        .args(["--no-config", "-c", &probe])
        .output()
        .expect("fish is needed for this test: apt-get install fish");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.lines().any(|l| l.starts_with("completions")),
        "{stdout}"
    );
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    caro()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tcsh"));
}
