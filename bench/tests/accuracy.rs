//! The accuracy harness: the sandbox contains destructive commands, both accuracy splits are sound and free of leaks, and
//! the harness scores a real model's answers end to end.

use caro_bench::devset::{self, Platform};
use caro_bench::sandbox::Sandbox;
use caro_testkit::model;
use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sandbox(limit_s: u64) -> Sandbox {
    Sandbox::new(
        Path::new(devset::FIXTURE_DIR),
        Some(Path::new(devset::SETUP_SCRIPT)),
        Duration::from_secs(limit_s),
    )
    .expect("bubblewrap sandbox (apt-get install bubblewrap)")
}

/// The host-side canary a destructive command would hit first if it could see the host.
fn canary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("caro-canary-")
        .tempdir()
        .expect("tempdir");
    let file = dir.path().join("precious.txt");
    std::fs::write(&file, "keep me").expect("write canary");
    (dir, file)
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn destructive_commands_cannot_touch_the_host() {
    let sb = sandbox(20);
    let (dir, file) = canary();
    let before = caro_bench::sandbox::digest_tree(sb.golden()).expect("digest");
    let repo = env!("CARGO_MANIFEST_DIR");
    let attacks = [
        "rm -rf --no-preserve-root /".to_owned(),
        "rm -rf ~ /tmp/* /var/tmp/* /usr/bin/env".to_owned(),
        format!(
            "rm -rf {}; echo gone > {}",
            dir.path().display(),
            file.display()
        ),
        format!("rm -rf {repo}; find / -xdev -delete"),
        "chmod -R 000 /usr; echo pwned > /usr/pwned; echo pwned > /etc/passwd".to_owned(),
        "kill -9 -1".to_owned(),
    ];
    for attack in &attacks {
        let out = sb.run("bash", attack).expect("run");
        assert!(!out.timed_out, "{attack}: {out:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("keep me")
    );
    assert!(Path::new("/usr/bin/env").is_file());
    assert!(!Path::new("/usr/pwned").exists());
    assert!(Path::new(repo).join("accuracy/dev.jsonl").is_file());
    assert!(std::fs::read_to_string("/etc/passwd").is_ok_and(|p| !p.contains("pwned")));
    // Each run starts from a fresh copy: the prepared fixture is as it was, and the next run
    // sees it whole.
    assert_eq!(
        caro_bench::sandbox::digest_tree(sb.golden()).expect("digest"),
        before
    );
    let out = sb.run("bash", "cat notes.txt | head -n 1").expect("run");
    assert_eq!(out.stdout, "buy more coffee\n");
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn the_host_is_invisible_and_the_network_unreachable() {
    let sb = sandbox(20);
    let (dir, _file) = canary();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for path in [
        dir.path().to_string_lossy().into_owned(),
        env!("CARGO_MANIFEST_DIR").to_owned(),
        format!("{home}/.cargo"),
        "/etc/shadow".to_owned(),
    ] {
        let out = sb.run("bash", &format!("ls -d {path}")).expect("run");
        assert!(!out.succeeded(), "{path} is visible inside: {out:?}");
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let out = sb
        .run(
            "bash",
            &format!("echo hello > /dev/tcp/127.0.0.1/{port} && echo connected; curl -sS -m 3 http://127.0.0.1:{port}/ && echo fetched"),
        )
        .expect("run");
    assert!(
        !out.stdout.contains("connected") && !out.stdout.contains("fetched"),
        "{out:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Ok((mut s, _)) => {
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            panic!("the sandbox reached the host's network: {got:?}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn time_limit_kills_the_command_and_everything_it_started() {
    let sb = sandbox(2);
    // A distinctive duration, so the process can be looked for on the host afterwards.
    let out = sb
        .run(
            "bash",
            "setsid nohup sleep 987.654 >/dev/null 2>&1 & sleep 999.321",
        )
        .expect("run");
    assert!(out.timed_out && out.status.is_none(), "{out:?}");
    std::thread::sleep(Duration::from_millis(500));
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.contains("sleep 987.654") && !ps.contains("sleep 999.321"),
        "left running after the time limit:\n{ps}"
    );
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn runaway_output_and_files_are_capped() {
    // A 1 MiB cap instead of the 64 MiB default: the same rlimit, proven without writing 64 MiB
    // (a clean-clone CI run on a machine short of disk once lost the size line here).
    let cap: u64 = 1 << 20;
    let sb = sandbox(20).with_file_limit(cap);
    let out = sb
        .run(
            "bash",
            "head -c 8M /dev/zero > huge.bin; stat -c %s huge.bin; yes | head -c 5M",
        )
        .expect("run");
    assert!(!out.timed_out, "{}", brief(&out));
    let size: u64 = out
        .stdout
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size line: {}", brief(&out)));
    assert!(size <= cap, "file grew to {size} bytes");
    assert!(
        out.stdout.len() <= 1 << 20,
        "stdout is {} bytes",
        out.stdout.len()
    );
}

/// An outcome shortened for a failure message: the status, stderr, and stdout's start.
fn brief(out: &caro_bench::sandbox::Outcome) -> String {
    format!(
        "status {:?}, timed out {}, stderr {:?}, stdout starts {:?}",
        out.status,
        out.timed_out,
        out.stderr.chars().take(300).collect::<String>(),
        out.stdout.chars().take(100).collect::<String>()
    )
}

#[test]
fn dev_set_is_our_own_and_covers_the_ground() {
    let items = devset::load(Path::new(devset::DEFAULT_PATH)).expect("dev set");
    assert!(items.len() >= 150, "{} items", items.len());
    let cats: BTreeSet<&str> = items.iter().map(|i| i.category.as_str()).collect();
    for c in [
        "files",
        "find",
        "text",
        "archives",
        "processes",
        "disk",
        "networking",
        "git",
    ] {
        assert!(cats.contains(c), "no {c} items");
    }
    assert!(items.iter().any(|i| i.platform == Platform::Macos));
    assert!(items.iter().filter(|i| i.exec).count() >= 100);
}

/// The frozen test split: at least 250 requests over every area the issue names.
#[test]
fn test_split_is_our_own_and_covers_the_ground() {
    let items = devset::load(Path::new(devset::TEST_PATH)).expect("test split");
    assert!(items.len() >= 250, "{} items", items.len());
    for c in [
        "files",
        "find",
        "text",
        "archives",
        "processes",
        "system",
        "users",
        "dates",
        "disk",
        "networking",
        "git",
        "packages",
        "containers",
    ] {
        let n = items.iter().filter(|i| i.category == c).count();
        assert!(n >= 10, "{n} {c} items");
    }
    assert!(items.iter().any(|i| i.platform == Platform::Macos));
    assert!(items.iter().filter(|i| i.exec).count() >= 150);
}

/// The prompt's examples and the retrieval bank are ours: none answers or rewords an item of
/// either split, and the test split repeats nothing of the dev split (issue 19: examples answered dev items almost
/// verbatim, so the dev figure measured memory).
#[test]
fn no_example_or_bank_pair_answers_an_item_and_no_test_item_repeats_a_dev_item() {
    use caro_bench::leaks::{self, Example};
    use caro_core::{CommandRequest, ExecutionContext, ShellType, prompt};
    let dev = devset::load(Path::new(devset::DEFAULT_PATH)).expect("dev split");
    let test = devset::load(Path::new(devset::TEST_PATH)).expect("test split");
    let mut examples = Vec::new();
    for shell in [
        ShellType::Bash,
        ShellType::Zsh,
        ShellType::Sh,
        ShellType::Fish,
        ShellType::PowerShell,
        ShellType::Cmd,
    ] {
        for os in ["linux", "macos", "windows"] {
            let request =
                CommandRequest::new("x", shell).with_context(ExecutionContext::for_os(os, None));
            let messages = prompt::prefix_messages(&request);
            for pair in messages[1..].chunks(2) {
                examples.push(Example {
                    source: format!("the {shell} prompt on {os}"),
                    request: pair[0].content.clone(),
                    command: pair[1].content.clone(),
                    shell,
                });
            }
        }
    }
    assert!(examples.len() >= 10, "{} examples", examples.len());
    let bank = retrieval_bank();
    assert!(
        bank.len() >= 400,
        "{} pairs in the retrieval bank",
        bank.len()
    );
    examples.extend(bank);
    let mut found = leaks::example_leaks(&examples, &dev);
    found.extend(leaks::example_leaks(&examples, &test));
    found.extend(leaks::split_leaks(&dev, &test));
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "{} leaks:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The team-written retrieval bank (`core/data/retrieval_bank.jsonl`): request → command
/// pairs that must stay disjoint from both splits.
fn retrieval_bank() -> Vec<caro_bench::leaks::Example> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/data/retrieval_bank.jsonl");
    let text = std::fs::read_to_string(&path).expect("retrieval bank");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).expect("bank line is JSON");
            let field = |k: &str| v[k].as_str().expect("bank field").to_owned();
            caro_bench::leaks::Example {
                source: format!("retrieval bank line {}", i + 1),
                request: field("nl"),
                command: field("cmd"),
                shell: field("shell").parse().expect("bank shell"),
            }
        })
        .collect()
}

/// Every executable reference of both splits succeeds in the fixture, deterministically.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn references_of_both_splits_run_in_the_sandbox() {
    let out = Command::new(env!("CARGO_BIN_EXE_caro-accuracy"))
        .arg("--check-references")
        .output()
        .expect("caro-accuracy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for split in ["dev", "test"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(split) && l.ends_with(": 0 problems")),
            "{stdout}"
        );
    }
}

/// The whole harness on the real 1.5B model: generation, sandboxed execution, scoring, the
/// per-item results and the table.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "the sandbox is bubblewrap: Linux only"
)]
fn harness_scores_real_answers_end_to_end() {
    let results = tempfile::NamedTempFile::new().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_caro-accuracy"))
        .arg("--model")
        .arg(model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"))
        .args([
            "--split",
            "dev",
            "--category",
            "git",
            "--limit",
            "3",
            "--temperature",
            "0",
            "--results",
        ])
        .arg(results.path())
        .output()
        .expect("caro-accuracy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| dev (3 items) | qwen2.5-coder-1.5b-instruct-q4_k_m.gguf | 0 |"),
        "{stdout}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(results.path())
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    // "what's the state of the git repo": any working answer is `git status`, which the
    // sandbox runs against the fixture's repository.
    let first = &lines[0];
    assert_eq!(first["id"], "git-01");
    assert_eq!(first["candidate"], "git status", "{first}");
    assert_eq!(first["exec_match"], true, "{first}");
    assert!(
        lines
            .iter()
            .all(|l| l["candidate"].is_string() && l["exec_match"].is_boolean())
    );
}
