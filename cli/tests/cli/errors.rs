//! Errors that say what happened: usage errors as JSON, the context, a backend that is down, the safety table in --help.

use super::*;

// Issue 17: `caro --json --bogus` printed clap's text, so a script reading stdout got nothing.
#[test]
fn usage_errors_under_json_are_json_objects() {
    let v = json_exit(caro().args(["--json", "--bogus", "list files"]), 2);
    assert_eq!(v["error"]["code"], "usage", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("--bogus"), "{message}");
    assert!(
        v["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--help")),
        "{v}"
    );
    // A bad value, a flag after the prompt, and a subcommand's own --json are the same.
    let v = json_exit(caro().args(["--temperature", "abc", "--json", "x"]), 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("abc")),
        "{v}"
    );
    let v = json_exit(
        caro().args(["check", "--json", "--mode", "lax", "--", "ls"]),
        2,
    );
    assert_eq!(v["error"]["code"], "usage", "{v}");
    // Without --json, and with --json only as a word after `--`, it stays clap's text.
    for args in [&["--bogus", "x"][..], &["--bogus", "--", "--json"][..]] {
        let out = caro().args(args).assert().code(2).get_output().clone();
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
    }
    // Help is not an error, even with --json.
    caro()
        .args(["--json", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage:"));
}

// Issue 17: a reply budget that fills the context was reported as "the request is too long:
// 11 tokens, the limit is 0".
#[test]
fn max_tokens_filling_the_context_says_the_context_is_too_small() {
    let v = json_exit(
        caro()
            .args(["--no-daemon", "--json", "--max-tokens", "4000", "-m"])
            .arg(model(SMOL))
            .arg("list files"),
        5,
    );
    assert_eq!(v["error"]["code"], "context_too_small", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    for part in ["context window", "4000", "--max-tokens"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(!message.contains("limit is 0"), "{message}");
}

// Issue 17: with the config's backend down and no embedded model, the error was only "no model
// file found", hiding that the server the user chose is unreachable.
#[test]
fn configured_backend_down_without_a_model_names_the_backend() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    let url = dead_endpoint();
    std::fs::write(
        &config,
        format!("version = 1\ndefault_backend = \"ollama\"\n\n[ollama]\nurl = \"{url}\"\nmodel = \"qwen2.5-coder:7b\"\n"),
    )
    .expect("write");
    let v = json_exit(
        caro()
            .env("CARO_CONFIG", &config)
            .args(["--no-daemon", "--json", "list files"]),
        10,
    );
    assert_eq!(v["error"]["code"], "remote_failed", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    for part in ["ollama", url.as_str(), "no model file found"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    caro()
        .env("CARO_CONFIG", &config)
        .args(["--no-daemon", "list files"])
        .assert()
        .code(10)
        .stderr(predicate::str::contains(format!("ollama at {url}")));
}

// Issue 17: `--help` said strict mode would "confirm moderate and high, block high and
// critical". The table it prints now must be what `caro check` does in each mode.
#[test]
fn help_safety_table_matches_what_the_gate_does() {
    let help = caro()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(help).expect("utf-8");
    let rows: Vec<Vec<&str>> = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("mode        asks first"))
        .skip(1)
        .take(3)
        .map(|l| {
            l.trim()
                .split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "no mode table in:\n{help}");
    let sample = [
        ("safe", "ls -la"),
        ("moderate", "git push --force"),
        ("high", "git reset --hard"),
        ("critical", "rm -rf /"),
    ];
    for row in &rows {
        let [mode, asks, blocks] = row[..] else {
            panic!("row {row:?}")
        };
        let names = |cell: &str| -> Vec<String> { cell.split(", ").map(str::to_owned).collect() };
        let (asks, blocks) = (names(asks), names(blocks));
        for (level, command) in sample {
            let v = json_of(
                &caro()
                    .args(["check", "--json", "--mode", mode, "--", command])
                    .assert()
                    .get_output()
                    .stdout,
            );
            assert_eq!(v["risk"], level, "{command}: {v}");
            let level = level.to_owned();
            assert_eq!(v["blocked"], blocks.contains(&level), "{mode} {level}: {v}");
            assert_eq!(
                v["needs_confirmation"],
                asks.contains(&level),
                "{mode} {level}: {v}"
            );
        }
    }
}
