//! The prefix cache on disk, as a cold `caro` run uses it.

use super::*;

/// Issue 21: every cold `caro` prefilled the system prompt again, and the prompt named the
/// directory, so even a cache could only help in one folder. Now a cold run in one folder
/// saves the prefix's state in caro's cache (a scratch `$HOME` here, found the way a user's
/// is), a cold run in another folder reads it back, `caro status` lists it, and `caro model
/// rm` deletes it.
#[test]
fn a_cold_run_reuses_the_prefix_cache_a_run_in_another_folder_saved() {
    let home = tempfile::tempdir().expect("home");
    let (first_dir, second_dir) = (home.path().join("a"), home.path().join("b/c"));
    for d in [&first_dir, &second_dir] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let user = |cwd: &std::path::Path| {
        let mut c = caro();
        c.current_dir(cwd)
            .env("HOME", home.path())
            .env_remove("CARO_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("CARO_MODEL_PATH", model(QWEN_1_5B));
        c
    };
    let ask = |cwd: &std::path::Path| {
        json_exit(
            user(cwd).args(["--no-daemon", "--json", "show the current date"]),
            0,
        )
    };
    let cold = ask(&first_dir);
    assert_eq!(cold["tokens"]["cached"], 0, "{cold}");
    let caches = home.path().join(".cache/caro/models/prefix-cache");
    let files: Vec<_> = std::fs::read_dir(&caches)
        .expect("the first run saved the prefix")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    let again = ask(&second_dir);
    let cached = again["tokens"]["cached"].as_u64().expect("cached");
    let prompt = again["tokens"]["prompt"].as_u64().expect("prompt");
    assert!(cached > 100 && cached < prompt, "{again}");
    assert_eq!(
        again["command"], cold["command"],
        "same request, same answer"
    );

    let status = json_exit(user(home.path()).args(["status", "--json"]), 0);
    let listed = &status["embedded"]["prefix_cache"];
    assert_eq!(listed["files"][0]["model"], QWEN_1_5B, "{listed}");
    assert_eq!(
        listed["files"][0]["path"],
        files[0].to_str().expect("utf-8")
    );
    assert!(listed["bytes"].as_u64() > Some(1_000_000), "{listed}");

    user(home.path())
        .args(["model", "rm", "qwen2.5-coder-1.5b"])
        .assert()
        .success()
        .stderr(predicate::str::contains("prefix-cache"));
    assert!(
        !files[0].exists(),
        "model rm removes the model's prefix caches"
    );
    assert!(
        model(QWEN_1_5B).is_file(),
        "and nothing outside caro's cache"
    );
}

/// Issue 21: a damaged prefix cache file is detected and computed again, never trusted.
#[test]
fn a_damaged_prefix_cache_is_recomputed_and_the_answer_is_unchanged() {
    let cache = tempfile::tempdir().expect("cache");
    let ask = || {
        json_exit(
            caro()
                .env("CARO_CACHE_DIR", cache.path())
                .env("CARO_MODEL_PATH", model(QWEN_1_5B))
                .args(["--no-daemon", "--json", "show the current date"]),
            0,
        )
    };
    let first = ask();
    let dir = cache.path().join("prefix-cache");
    let file = std::fs::read_dir(&dir)
        .expect("saved")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("one file");
    let good = std::fs::read(&file).expect("read");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for (what, bytes) in [
        ("truncated", good[..good.len() / 3].to_vec()),
        ("one flipped bit", flipped),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&file, &bytes).expect("damage");
        let out = ask();
        assert_eq!(out["tokens"]["cached"], 0, "{what}: {out}");
        assert_eq!(out["command"], first["command"], "{what}");
        assert_eq!(
            std::fs::read(&file).expect("rewritten"),
            good,
            "{what}: the file is computed again, the same"
        );
    }
}
