//! How one command runs in the sandbox, apart from the mounts: the options that differ
//! between the bench and the preview, and watching the processes of a run (the time limit,
//! the task fuse, the end of the PID namespace, RLIMIT_NPROC).

use crate::{
    MAX_ADDRESS_SPACE, MAX_FILE_BYTES, MAX_OUTPUT, Outcome, PROJECT, SandboxError, bwrap_args,
    read_capped,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a command runs: where the copy is mounted, who it runs as, and its limits. The bench and
/// the preview differ only here.
#[derive(Debug, Clone)]
pub(crate) struct Jail {
    /// The copy's mount point inside, and the command's current directory.
    pub(crate) mount: PathBuf,
    /// `$HOME` and `$USER` inside.
    pub(crate) home: String,
    pub(crate) user: String,
    /// Create `$HOME` (inside an empty tmpfs) so that `cd ~` and `touch ~/x` work as they would.
    pub(crate) make_home: bool,
    /// Empty tmpfs mounts besides `/tmp` and `/home`: host folders a command might name.
    pub(crate) hide: Vec<String>,
    /// Size of each tmpfs; `None` leaves the kernel's default (half the RAM).
    pub(crate) tmpfs_bytes: Option<u64>,
    pub(crate) output_cap: u64,
    pub(crate) file_limit: u64,
    /// Processes the command may start beyond those its user already runs (RLIMIT_NPROC
    /// counts all of the user's processes); `None` sets no limit.
    pub(crate) process_headroom: Option<u64>,
    /// Kill the run when the machine runs this many more tasks than when it started: a fork
    /// bomb run as root (which RLIMIT_NPROC does not limit) reached the machine's 32,768 PIDs
    /// within a second on two cores, so nothing else could fork, and took the kernel 10-20 s to
    /// tear down; cut at a few thousand, it is gone in well under a second. The count is the
    /// machine's (from /proc/loadavg), so a machine starting thousands of threads at the same
    /// time, or a fork bomb in a parallel run, cuts an innocent run short too.
    pub(crate) task_fuse: Option<u64>,
    /// The command's niceness inside. A fork bomb starves whatever runs at its own priority,
    /// for seconds: the thread that watches the fuse, bwrap, and bwrap's init in the
    /// namespace, which must run for the kernel to stop the namespace forking and kill it. Run
    /// below all of them, the bomb is stopped within a moment of the fuse.
    pub(crate) nice: Option<u8>,
}

impl Jail {
    pub(crate) fn bench() -> Self {
        Self {
            mount: PathBuf::from(PROJECT),
            home: "/home/user".into(),
            user: "user".into(),
            make_home: false,
            hide: Vec::new(),
            tmpfs_bytes: None,
            output_cap: MAX_OUTPUT,
            file_limit: MAX_FILE_BYTES,
            process_headroom: None,
            task_fuse: None,
            nice: None,
        }
    }
}

/// Runs `command` under `jail` with `dir` mounted, writing its output to files under `scratch`
/// (files, not pipes: a process left in the background can't hold the run open), then digests
/// `dir` with `digest`.
pub(crate) fn exec(
    jail: &Jail,
    dir: &Path,
    scratch: &Path,
    shell: &str,
    command: &str,
    limit: Duration,
    digest: fn(&Path) -> Result<BTreeMap<String, String>, SandboxError>,
) -> Result<Outcome, SandboxError> {
    let io = tempfile::Builder::new().prefix("io-").tempdir_in(scratch)?;
    let stdout_path = io.path().join("stdout");
    let stderr_path = io.path().join("stderr");
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--fsize={}", jail.file_limit))
        .arg(format!("--as={MAX_ADDRESS_SPACE}"));
    if let Some(nproc) = jail.process_headroom.and_then(process_limit) {
        cmd.arg(format!("--nproc={nproc}"));
    }
    cmd.arg("--").arg("bwrap");
    cmd.args(bwrap_args(dir, jail));
    if let Some(n) = jail.nice {
        cmd.args(["nice".into(), format!("--adjustment={n}")]);
    }
    cmd.args([shell, "-c", command])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?);
    let tasks_at_start = jail.task_fuse.and_then(|_| system_tasks());
    let mut child = cmd.spawn()?;
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                // Never leave a sandbox running behind an error.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        }
        let blown = match (jail.task_fuse, tasks_at_start) {
            (Some(fuse), Some(base)) => system_tasks().is_some_and(|now| now > base + fuse),
            _ => false,
        };
        if blown || start.elapsed() > limit {
            // bwrap is the namespace's parent: killing it takes down everything inside.
            timed_out = true;
            let init = children_of(child.id());
            let _ = child.kill();
            let status = child.wait()?;
            // The kernel empties the namespace after bwrap is gone, which takes a moment for
            // thousands of forks: the run is over when they are (or NAMESPACE_END has passed).
            wait_for_namespace_end(&init, NAMESPACE_END);
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Outcome {
        status: if timed_out { None } else { status.code() },
        timed_out,
        stdout: read_capped(&stdout_path, jail.output_cap)?,
        stderr: read_capped(&stderr_path, jail.output_cap)?,
        tree: digest(dir)?,
    })
}

/// How long a timed-out run waits at most for the kernel to empty its PID namespace. Once the
/// namespace's init has died, nothing in it can fork and everything in it has been sent
/// SIGKILL; what may remain after this wait is the kernel reaping a large fork bomb.
const NAMESPACE_END: Duration = Duration::from_secs(2);

/// The number of tasks (threads) on the machine: the fourth field of /proc/loadavg,
/// `running/total`.
fn system_tasks() -> Option<u64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// The host PIDs of `pid`'s children: for bwrap, its sandbox's init (PID 1 inside).
fn children_of(pid: u32) -> Vec<u32> {
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    // Kernels without CONFIG_PROC_CHILDREN: the parent is the second field after COMM.
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

/// Waits until each of `inits` is gone or a zombie: the kernel turns a namespace's init into a
/// zombie only after every other process in it has exited. Off Linux there is no /proc to
/// watch and no bwrap either.
fn wait_for_namespace_end(inits: &[u32], at_most: Duration) {
    let start = Instant::now();
    for pid in inits {
        while start.elapsed() < at_most {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `PID (COMM) STATE ...`; COMM may hold spaces and parentheses, so after the last ')'.
            let state = state.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            if state.is_none_or(|s| s.starts_with('Z') || s.starts_with('X')) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// RLIMIT_NPROC for a command that may start `headroom` processes. The kernel counts every
/// process and thread of the user, so a bare 256 would stop a desktop user (often over a
/// thousand threads) from forking at all: the limit is what the user runs now plus the
/// headroom. Root is never limited by RLIMIT_NPROC, so there is none: what contains a fork
/// bomb run as root is the PID namespace, which dies with bwrap when the time limit or the
/// task fuse kills it (see `Jail::task_fuse` and `Jail::nice`).
#[cfg(target_os = "linux")]
fn process_limit(headroom: u64) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by our effective user: no libc call (this crate forbids unsafe).
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    if uid == 0 {
        return None;
    }
    let mut tasks = 0u64;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let is_pid = entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit());
        if !is_pid || std::fs::metadata(&path).map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        tasks += std::fs::read_dir(path.join("task")).map_or(1, |t| t.count() as u64);
    }
    Some(tasks + headroom)
}

#[cfg(not(target_os = "linux"))]
fn process_limit(_headroom: u64) -> Option<u64> {
    None
}
