//! Fault injection on the real binary (issue 17): a daemon killed mid-request, and the config
//! file replaced or garbled while caro runs. Each test asserts an answer or a coded error
//! within its bound, never a crash or a hang, and that a file of the user's is left as it was.
//! Only SmolLM2 is used: these tests are about the process, not the commands.

use super::{SMOL, json_of, model};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SENTINEL: &str = "the user's notes: do not touch\n";

/// A private folder with a SmolLM2 config, a socket path and a file of the user's.
struct Home {
    dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    sentinel: PathBuf,
}

fn smol_config(max_tokens: usize) -> String {
    format!(
        "version = 1\n[embedded]\nmodel_path = {:?}\ntemperature = 0.0\nmax_tokens = {max_tokens}\n",
        model(SMOL)
    )
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("run").join("caro.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, smol_config(8)).expect("config");
        let sentinel = dir.path().join("notes.txt");
        std::fs::write(&sentinel, SENTINEL).expect("sentinel");
        Self {
            dir,
            socket,
            config,
            sentinel,
        }
    }

    fn assert_sentinel(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.sentinel).expect("the user's file is still there"),
            SENTINEL
        );
    }

    /// `caro serve` on this folder's socket and config, started and listening.
    fn serve(&self) -> Child {
        let child = Command::new(assert_cmd::cargo::cargo_bin("caro"))
            .args(["serve", "--idle-unload", "0"])
            .env("CARO_SOCKET", &self.socket)
            .env("CARO_CONFIG", &self.config)
            .env("CARO_CACHE_DIR", self.dir.path().join("cache"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("CARO_MODEL_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.status_running() {
            assert!(Instant::now() < deadline, "caro serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn status_running(&self) -> bool {
        let out = self
            .caro()
            .args(["status", "--json"])
            .output()
            .expect("status");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .is_ok_and(|v| v["daemon"]["running"] == true)
    }

    /// The `caro` client, as a plain process (so it can run while the test acts).
    fn caro(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("caro"));
        // The clean environment of the other tests' `caro()`.
        cmd.env_remove("CARO_MODEL_PATH")
            .env("CARO_CACHE_DIR", self.dir.path().join("cache"))
            .env("SHELL", "/bin/bash")
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_ENDPOINT")
            .env_remove("CARO_MODEL")
            .env_remove("CARO_LOG")
            .env("CARO_SOCKET", &self.socket)
            .env("CARO_CONFIG", &self.config)
            .stdin(Stdio::null());
        cmd
    }

    fn spawn_request(&self, prompt: &str) -> Child {
        self.caro()
            .args(["--json", "--timeout", DEADLINE_SECS, prompt])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn caro")
    }
}

/// Waits for `child` at most `bound`; a child still running then is a hang.
fn finish_within(mut child: Child, bound: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what}: still running after {bound:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An answer, or a coded error from the documented table: never a signal, a panic (101), the
/// catch-all exit 1, or output that is not the promised JSON.
fn assert_answer_or_coded_error(out: &Output, what: &str) -> serde_json::Value {
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{what}: killed by a signal; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        (0..=12).contains(&code) && code != 1 && code != 2,
        "{what}: exit {code}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out.stdout);
    if code == 0 {
        assert!(v["command"].is_string(), "{what}: {v}");
    } else {
        assert!(v["error"]["code"].is_string(), "{what}: {v}");
    }
    v
}

/// The deadline each `caro` run is given (`--timeout`): a cold SmolLM2 load and prefill
/// takes 1 to 20 s on a 2-core machine, depending on the load.
const DEADLINE_SECS: &str = "20";

/// How long one `caro` run may take at most: its deadline, the 5 s the client allows a
/// daemon past it, and room for a loaded machine. Past it, the run counts as hung.
const BOUND: Duration = Duration::from_secs(40);

#[test]
fn a_daemon_killed_mid_request_never_hangs_its_client_and_a_new_one_replaces_its_socket() {
    let home = Home::new();
    let mut daemon = home.serve();
    // The daemon's first request loads the model and prefills the whole prompt: the kill
    // lands in the middle of it.
    let client = home.spawn_request("list files");
    std::thread::sleep(Duration::from_millis(300));
    daemon.kill().expect("SIGKILL the daemon");
    let _ = daemon.wait();

    // The client either answers in-process or exits with a coded error, within its bound.
    let out = finish_within(client, BOUND, "the request under the killed daemon");
    let v = assert_answer_or_coded_error(&out, "the request under the killed daemon");
    if out.status.success() {
        assert_eq!(v["served_by"], "in_process", "{v}");
    }

    // The killed daemon's socket file is left behind; a new daemon replaces it and serves.
    assert!(home.socket.exists(), "SIGKILL leaves the socket file");
    let mut again = home.serve();
    let out = home
        .caro()
        .args(["status", "--json"])
        .output()
        .expect("status");
    let v = json_of(&out.stdout);
    assert_eq!(v["daemon"]["running"], true, "{v}");
    assert_eq!(v["daemon"]["pid"], again.id(), "{v}");
    let _ = Command::new("kill")
        .args(["-INT", &again.id().to_string()])
        .status();
    let _ = again.wait();
    home.assert_sentinel();
}

/// Runs `caro --no-daemon` and does `meddle` to its config `after` it started.
fn meddle_with_config_mid_run(home: &Home, after: Duration, meddle: impl FnOnce(&Path)) -> Output {
    std::fs::write(&home.config, smol_config(8)).expect("config");
    let child = home
        .caro()
        .args([
            "--json",
            "--no-daemon",
            "--timeout",
            DEADLINE_SECS,
            "list files",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn caro");
    std::thread::sleep(after);
    meddle(&home.config);
    finish_within(child, BOUND, "caro with its config meddled")
}

#[test]
fn a_config_replaced_or_garbled_mid_run_gives_an_answer_or_exit_9_never_a_crash() {
    const GARBAGE: &[u8] = b"[embedded\0\xff\xfe = = \n";
    // Both runs at once (each is a cold model load and prefill): one has its config
    // atomically replaced, as an editor or `caro init` saves it; the other has it truncated
    // in place and filled with garbage.
    let (replaced, garbled) = (Home::new(), Home::new());
    let after = Duration::from_millis(100);
    let runs = std::thread::scope(|s| {
        let r = s.spawn(|| {
            meddle_with_config_mid_run(&replaced, after, |config| {
                let part = config.with_extension("toml.new");
                std::fs::write(&part, smol_config(4)).expect("new config");
                std::fs::rename(&part, config).expect("rename");
            })
        });
        let g = s.spawn(|| {
            meddle_with_config_mid_run(&garbled, after, |config| {
                std::fs::write(config, GARBAGE).expect("garble");
            })
        });
        (r.join().expect("replaced"), g.join().expect("garbled"))
    });
    assert_answer_or_coded_error(&runs.0, "config replaced");
    let v = assert_answer_or_coded_error(&runs.1, "config garbled");
    if let Some(code) = runs.1.status.code().filter(|c| *c != 0) {
        // 9 if the garbled file was read; 6 or 12 (the deadline) from the model otherwise.
        assert!(
            matches!(code, 6 | 9 | 12),
            "config garbled: exit {code}: {v}"
        );
    }
    // The garbled file is left as it was for the user to see, and read again it is exit 9.
    assert_eq!(std::fs::read(&garbled.config).expect("config"), GARBAGE);
    let out = garbled
        .caro()
        .args(["--json", "--no-daemon", "list files"])
        .output()
        .expect("caro");
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    replaced.assert_sentinel();
    garbled.assert_sentinel();
}
