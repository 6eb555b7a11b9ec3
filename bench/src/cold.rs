//! Cold start, measured from outside: the real `caro` binary as separate processes, without
//! and with the prefix cache on disk, against the same request answered by a warm
//! `caro serve` (issue 21). Each process runs in a scratch home, cache and socket, so nothing
//! of the user's is read or written.

use crate::sys::percentile;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One process's answer as its `--json` reports it, and what it cost from outside.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Run {
    pub wall_ms: f64,
    pub load_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// The process's own peak resident memory (the client's, for a warm request).
    pub peak_rss_mb: Option<f64>,
    /// `daemon` or `in_process`, as the answer says.
    pub served_by: String,
}

/// Medians of each figure over several runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub runs: usize,
    pub wall_ms: f64,
    pub load_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub cached_tokens: u64,
    pub peak_rss_mb: Option<f64>,
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        let med = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            percentile(&v, 0.5)
        };
        Self {
            runs: runs.len(),
            wall_ms: med(|r| r.wall_ms),
            load_ms: med(|r| r.load_ms),
            prefill_ms: med(|r| r.prefill_ms),
            decode_ms: med(|r| r.decode_ms),
            cached_tokens: runs.iter().map(|r| r.cached_tokens).min().unwrap_or(0),
            peak_rss_mb: runs.iter().filter_map(|r| r.peak_rss_mb).reduce(f64::max),
        }
    }
}

/// The three ways one request is answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdStart {
    pub request: String,
    /// A fresh process with no prefix cache on disk: it prefills the prefix and saves it.
    pub cold_uncached: Summary,
    /// A fresh process, in another directory, that reads the prefix from disk.
    pub cold_cached: Summary,
    /// A client of a warm `caro serve`; its peak RSS is the daemon's.
    pub warm_daemon: Summary,
}

impl ColdStart {
    /// The goal: cold with the cache against (load + warm answer); at most 1.5.
    pub fn cached_over_load_plus_warm(&self) -> f64 {
        self.cold_cached.wall_ms / (self.cold_cached.load_ms + self.warm_daemon.wall_ms)
    }

    /// Cold with the cache against the warm daemon's wall time (the "done when": ≤ 2).
    pub fn cached_over_warm(&self) -> f64 {
        self.cold_cached.wall_ms / self.warm_daemon.wall_ms
    }

    pub fn uncached_over_cached(&self) -> f64 {
        self.cold_uncached.wall_ms / self.cold_cached.wall_ms
    }
}

/// A scratch environment for the `caro` processes: home, cache, config and socket.
struct Scratch {
    _dir: tempfile::TempDir,
    home: PathBuf,
    cache: PathBuf,
    socket: PathBuf,
    caro: PathBuf,
}

impl Scratch {
    fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new(&self.caro);
        c.current_dir(cwd)
            .env("HOME", &self.home)
            .env("CARO_CACHE_DIR", &self.cache)
            .env("CARO_CONFIG", self.home.join("config.toml"))
            .env("CARO_SOCKET", &self.socket)
            // The model comes from the config: a model given per request (`--model-path`,
            // `CARO_MODEL_PATH`) makes `caro` bypass the daemon.
            .env_remove("CARO_MODEL_PATH")
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("CARO_BACKEND")
            .env_remove("CARO_MODEL")
            .env_remove("CARO_LOG")
            .stdin(Stdio::null());
        c
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.home.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

/// Runs `cmd` to the end, timing it from spawn to exit, and reads its `--json` answer.
fn timed(mut cmd: Command) -> Result<Run> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().context("cannot start caro")?;
    let (status, peak_kb, out) = wait_with_rusage(child)?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if !status {
        bail!(
            "caro failed: {}{}",
            String::from_utf8_lossy(&out.0),
            String::from_utf8_lossy(&out.1)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.0).context("caro printed no JSON")?;
    let t = &v["timings_ms"];
    let num = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    Ok(Run {
        wall_ms,
        load_ms: num(&t["load"]),
        prefill_ms: num(&t["prefill"]),
        decode_ms: num(&t["decode"]),
        prompt_tokens: v["tokens"]["prompt"].as_u64().unwrap_or(0),
        cached_tokens: v["tokens"]["cached"].as_u64().unwrap_or(0),
        peak_rss_mb: peak_kb.map(|kb| kb as f64 / 1024.0),
        served_by: v["served_by"].as_str().unwrap_or_default().to_owned(),
    })
}

type Output = (Vec<u8>, Vec<u8>);

/// Waits for `child` with `wait4`, which also reports its peak resident memory (std's
/// `wait` does not, and the process is gone before `/proc` could be read).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn wait_with_rusage(mut child: std::process::Child) -> Result<(bool, Option<i64>, Output)> {
    use std::io::Read;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let mut out = Vec::new();
    if let Err(e) = stdout.read_to_end(&mut out) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.into());
    }
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; `pid` is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4: {e}");
        }
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((
        ok,
        Some(usage.ru_maxrss),
        (out, err.join().unwrap_or_default()),
    ))
}

#[cfg(not(target_os = "linux"))]
fn wait_with_rusage(child: std::process::Child) -> Result<(bool, Option<i64>, Output)> {
    let o = child.wait_with_output()?;
    Ok((o.status.success(), None, (o.stdout, o.stderr)))
}

/// Measures `request` answered by cold `caro` processes without and with the prefix cache
/// on disk, and by a warm `caro serve`, `runs` times each, in this order on one machine.
pub fn measure(caro: &Path, model: &Path, request: &str, runs: usize) -> Result<ColdStart> {
    let dir = tempfile::tempdir()?;
    let s = Scratch {
        home: dir.path().join("home"),
        cache: dir.path().join("cache"),
        socket: dir.path().join("caro.sock"),
        // The processes run in folders of their own, so relative paths would break.
        caro: std::path::absolute(caro)?,
        _dir: dir,
    };
    std::fs::create_dir_all(&s.home)?;
    std::fs::write(
        s.home.join("config.toml"),
        format!(
            "version = 1\n[embedded]\nmodel_path = {:?}\n",
            std::path::absolute(model)?
        ),
    )?;
    let (here, there) = (s.dir("a")?, s.dir("b/c")?);
    let ask = |cwd: &Path, extra: &[&str]| {
        let mut c = s.command(cwd);
        c.args(extra).args(["--json", request]);
        timed(c)
    };

    let mut uncached = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(s.cache.join("prefix-cache"));
        uncached.push(ask(&here, &["--no-daemon"])?);
    }
    let mut cached = Vec::new();
    for _ in 0..runs {
        let r = ask(&there, &["--no-daemon"])?;
        if r.cached_tokens == 0 {
            bail!("a cold process in another directory did not use the prefix cache on disk");
        }
        cached.push(r);
    }

    let mut daemon = s
        .command(&here)
        .args(["serve", "--idle-unload", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start caro serve")?;
    let warm = (|| -> Result<Vec<Run>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&s.socket).is_err() {
            if Instant::now() > deadline {
                bail!("caro serve did not open its socket");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The first request loads the model; the user of a warm daemon never waits for that.
        ask(&here, &[])?;
        let mut warm = Vec::new();
        for _ in 0..runs {
            let mut r = ask(&there, &[])?;
            if r.served_by != "daemon" {
                bail!(
                    "the warm request was answered {}, not by caro serve",
                    r.served_by
                );
            }
            r.peak_rss_mb = crate::sys::peak_rss_mb(&daemon.id().to_string());
            warm.push(r);
        }
        Ok(warm)
    })();
    let _ = daemon.kill();
    let _ = daemon.wait();
    Ok(ColdStart {
        request: request.to_owned(),
        cold_uncached: Summary::of(&uncached),
        cold_cached: Summary::of(&cached),
        warm_daemon: Summary::of(&warm?),
    })
}
