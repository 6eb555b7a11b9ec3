//! `caro serve`: the warm-model daemon, its memory, and who may reach it.

use super::*;

/// `caro serve` as a child process; killed (Ctrl-C) on drop.
struct Serve {
    child: std::process::Child,
    socket: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn serve_qwen() -> Serve {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run").join("caro.sock");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[embedded]\nmodel_path = {:?}\ntemperature = 0.0\n",
            model(QWEN_1_5B)
        ),
    )
    .expect("config");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("caro"))
        .args(["serve", "--idle-unload", "0"])
        .env("CARO_SOCKET", &socket)
        .env("CARO_CONFIG", &config)
        .env("CARO_CACHE_DIR", test_cache())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("CARO_MODEL_PATH")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    wait_for_socket(&socket);
    Serve {
        child,
        socket,
        config,
        _dir: dir,
    }
}

fn via(serve: &Serve, extra: &[&str], prompt: &str) -> serde_json::Value {
    let out = caro()
        .env("CARO_SOCKET", &serve.socket)
        .env("CARO_CONFIG", &serve.config)
        .arg("--json")
        .args(extra)
        .arg(prompt)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    json_of(&out)
}

/// Resident bytes of the mappings of files named `file` in process `pid`.
#[cfg(target_os = "linux")]
fn mapped_rss(pid: u32, file: &str) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut current = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            current = fields.len() >= 6 && fields[5..].join(" ").ends_with(file);
        } else if current && fields.first() == Some(&"Rss:") {
            kb += fields
                .get(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kb * 1024
}

/// Regression: every tensor used to be copied onto the heap, and candle's repacked tiles came
/// on top, so the 1.1 GB model took 2.3 GB. The weights are now mapped and the pages candle
/// no longer reads are given back: a warm daemon keeps well under half the file resident.
#[test]
#[cfg(target_os = "linux")]
fn warm_daemon_gives_back_the_mapped_pages_it_repacked() {
    let serve = serve_qwen();
    let v = via(&serve, &[], "show disk usage of this folder");
    assert_eq!(v["served_by"], "daemon", "{v}");
    let size = std::fs::metadata(model(QWEN_1_5B)).expect("model").len();
    let rss = mapped_rss(serve.child.id(), QWEN_1_5B);
    assert!(rss > 0, "the daemon does not map the model file");
    assert!(
        rss < size / 2,
        "{rss} of {size} model bytes stay resident after a request"
    );
}

#[test]
fn cli_through_the_daemon_answers_like_in_process() {
    let serve = serve_qwen();
    let prompt = "find all files larger than 100MB in the current directory";
    let warm = via(&serve, &[], prompt);
    assert_eq!(warm["served_by"], "daemon", "{warm}");
    let local = via(&serve, &["--no-daemon"], prompt);
    assert_eq!(local["served_by"], "in_process");
    assert_eq!(warm["command"], local["command"]);
    assert_eq!(warm["risk"], local["risk"]);
    // A second request reuses the loaded model: no load time.
    let again = via(&serve, &[], "show disk usage of this folder");
    assert_eq!(again["served_by"], "daemon");
    assert_eq!(again["timings_ms"]["load"], 0.0, "{again}");
    // Per-request sampling flags bypass the daemon, which answers with its own settings.
    let own = via(&serve, &["--temperature", "0"], "list files");
    assert_eq!(own["served_by"], "in_process");

    let v = json_exit(
        caro()
            .env("CARO_SOCKET", &serve.socket)
            .env("CARO_CONFIG", &serve.config)
            .args(["status", "--json"]),
        0,
    );
    assert_eq!(v["daemon"]["running"], true, "{v}");
    assert_eq!(v["daemon"]["model_loaded"], true);
    assert!(v["daemon"]["requests_served"].as_u64().expect("count") >= 2);
}

#[cfg(unix)]
#[test]
#[allow(clippy::print_stderr)] // says why the test did nothing, where it cannot act as another user
fn another_user_cannot_reach_the_daemon() {
    // Needs root to act as a second user; CI runs as root.
    let me = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id");
    if String::from_utf8_lossy(&me.stdout).trim() != "0"
        || !PathBuf::from("/usr/bin/setpriv").exists()
    {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let serve = serve_qwen();
    // The binary must be reachable by `nobody`: copy it somewhere world-readable.
    let bin_dir = tempfile::Builder::new()
        .prefix("caro-bin")
        .tempdir_in("/tmp")
        .expect("dir");
    let bin = bin_dir.path().join("caro");
    std::fs::copy(assert_cmd::cargo::cargo_bin("caro"), &bin).expect("copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["status", "--json"])
        .env("CARO_SOCKET", &serve.socket)
        .env("CARO_CONFIG", "/nonexistent/caro/config.toml")
        .env("CARO_CACHE_DIR", "/nonexistent/caro-cache")
        .env("HOME", "/nonexistent")
        .output()
        .expect("setpriv");
    let v = json_of(&out.stdout);
    assert_eq!(v["daemon"]["running"], false, "{v}");
    assert!(
        v["daemon"]["error"]
            .as_str()
            .expect("error")
            .contains("Permission denied"),
        "{v}"
    );
    // The owner still gets through.
    let owner = via(&serve, &[], "list files");
    assert_eq!(owner["served_by"], "daemon");
}
