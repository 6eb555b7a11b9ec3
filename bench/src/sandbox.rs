//! A throwaway bubblewrap sandbox that runs one shell command in a fresh copy of the fixture
//! tree and reports its exit status, output and what it did to the files.
//!
//! What keeps a destructive command contained:
//! - the system (`/usr`, a few files of `/etc`) is mounted read-only; nothing else of the host
//!   is visible: no home directories, no `/root`, no repository, an empty `/tmp`;
//! - the only writable host directory is the fresh copy, deleted afterwards;
//! - every namespace is unshared: no network, its own PIDs (everything it started dies with
//!   it), its own IPC and hostname; all capabilities are dropped;
//! - a wall-clock limit, and rlimits on file size and address space.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the copy is mounted inside; the harness tells the model this is the current directory.
pub const PROJECT: &str = "/home/user/project";
/// Output beyond this is cut off before comparing.
const MAX_OUTPUT: u64 = 1 << 20;
/// Any file the command writes is capped at this size (RLIMIT_FSIZE), unless
/// [`Sandbox::with_file_limit`] sets another.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
const MAX_ADDRESS_SPACE: u64 = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap (bwrap) is not usable here: {0}. Install it (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user namespaces"
    )]
    Unavailable(String),
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What one command did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Exit status; `None` when it was killed (time limit, signal).
    pub status: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// The tree afterwards: relative path → kind, permissions and content hash.
    #[serde(skip)]
    pub tree: BTreeMap<String, String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status == Some(0)
    }
}

/// A prepared fixture (copied and finished by its setup script once) and the runs made from it.
#[derive(Debug)]
pub struct Sandbox {
    golden: tempfile::TempDir,
    runs: tempfile::TempDir,
    time_limit: Duration,
    file_limit: u64,
}

impl Sandbox {
    /// Copies `fixture` and runs `setup` (a bash script) in the copy, inside the sandbox.
    pub fn new(
        fixture: &Path,
        setup: Option<&Path>,
        time_limit: Duration,
    ) -> Result<Self, SandboxError> {
        check_bwrap()?;
        let golden = tempfile::Builder::new().prefix("caro-fixture-").tempdir()?;
        copy_tree(fixture, golden.path())?;
        let sandbox = Self {
            golden,
            runs: tempfile::Builder::new().prefix("caro-runs-").tempdir()?,
            time_limit,
            file_limit: MAX_FILE_BYTES,
        };
        if let Some(setup) = setup {
            let script = std::fs::read_to_string(setup)?;
            let out = sandbox.exec_in(
                sandbox.golden.path(),
                "bash",
                &script,
                Duration::from_secs(60),
            )?;
            if !out.succeeded() {
                return Err(SandboxError::Setup(format!(
                    "{} exited with {:?}: {}",
                    setup.display(),
                    out.status,
                    out.stderr.trim()
                )));
            }
        }
        Ok(sandbox)
    }

    /// Caps each file a later run writes at `bytes` instead of [`MAX_FILE_BYTES`], so a test
    /// can prove the cap without filling a nearly full disk.
    pub fn with_file_limit(mut self, bytes: u64) -> Self {
        self.file_limit = bytes;
        self
    }

    /// Runs `command` with `shell` (`bash` or `sh`) in a fresh copy of the prepared fixture.
    pub fn run(&self, shell: &str, command: &str) -> Result<Outcome, SandboxError> {
        let work = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.runs.path())?;
        copy_tree(self.golden.path(), work.path())?;
        let out = self.exec_in(work.path(), shell, command, self.time_limit);
        // The command may have left read-only directories behind; make them removable.
        let _ = Command::new("chmod")
            .args(["-R", "u+rwX"])
            .arg(work.path())
            .status();
        out
    }

    fn exec_in(
        &self,
        dir: &Path,
        shell: &str,
        command: &str,
        limit: Duration,
    ) -> Result<Outcome, SandboxError> {
        let io = tempfile::Builder::new()
            .prefix("io-")
            .tempdir_in(self.runs.path())?;
        let stdout_path = io.path().join("stdout");
        let stderr_path = io.path().join("stderr");
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--fsize={}", self.file_limit))
            .arg(format!("--as={MAX_ADDRESS_SPACE}"))
            .arg("--")
            .arg("bwrap");
        cmd.args(bwrap_args(dir));
        cmd.args([shell, "-c", command])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?);
        let mut child = cmd.spawn()?;
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if start.elapsed() > limit {
                // bwrap is the namespace's parent: killing it takes down everything inside.
                timed_out = true;
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Outcome {
            status: if timed_out { None } else { status.code() },
            timed_out,
            stdout: read_capped(&stdout_path)?,
            stderr: read_capped(&stderr_path)?,
            tree: digest_tree(dir)?,
        })
    }

    /// The prepared fixture, for tests that check it stays untouched.
    pub fn golden(&self) -> &Path {
        self.golden.path()
    }
}

fn bwrap_args(dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/home",
        "--dir",
        "/var/tmp",
    ]
    .map(String::from)
    .to_vec();
    if Path::new("/lib64").exists() {
        a.extend(["--symlink", "usr/lib64", "/lib64"].map(String::from));
    }
    // Only what programs need to start and name users, never the host's secrets.
    for etc in [
        "/etc/alternatives",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/magic",
        "/etc/mime.types",
    ] {
        a.extend(["--ro-bind-try", etc, etc].map(String::from));
    }
    a.extend(["--bind".into(), dir.display().to_string(), PROJECT.into()]);
    a.extend(["--chdir", PROJECT, "--clearenv"].map(String::from));
    for (k, v) in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        ("HOME", "/home/user"),
        ("USER", "user"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TZ", "UTC"),
        ("TERM", "dumb"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_PAGER", "cat"),
        // Commits made in the sandbox get the same hashes on every run.
        ("GIT_AUTHOR_NAME", "Sam Sandbox"),
        ("GIT_AUTHOR_EMAIL", "sam@example.com"),
        ("GIT_COMMITTER_NAME", "Sam Sandbox"),
        ("GIT_COMMITTER_EMAIL", "sam@example.com"),
        ("GIT_AUTHOR_DATE", "2026-03-01T12:00:00Z"),
        ("GIT_COMMITTER_DATE", "2026-03-01T12:00:00Z"),
        ("PAGER", "cat"),
    ] {
        a.extend(["--setenv".into(), k.into(), v.into()]);
    }
    a
}

fn check_bwrap() -> Result<(), SandboxError> {
    let out = Command::new("bwrap")
        .args(bwrap_probe_args())
        .output()
        .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Unavailable(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn bwrap_probe_args() -> Vec<String> {
    let mut a = bwrap_args(Path::new("/usr"));
    a.extend(["true".into()]);
    a
}

fn read_capped(path: &Path) -> Result<String, SandboxError> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_OUTPUT)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `cp -a`: keeps modes, times and symlinks, which the fixture's `find -mtime` items rely on.
fn copy_tree(from: &Path, to: &Path) -> Result<(), SandboxError> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(PathBuf::from(from).join("."))
        .arg(to)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(SandboxError::Setup(format!(
            "cp -a {} failed",
            from.display()
        )))
    }
}

/// Every entry under `dir` with its kind, permission bits and content hash. Git's internals
/// (index stat data, logs, objects) differ between copies made at different times, so of
/// `.git` only `HEAD` and the refs count.
pub fn digest_tree(dir: &Path) -> Result<BTreeMap<String, String>, SandboxError> {
    let mut tree = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        let rel = entry
            .path()
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if rel.starts_with(".git/") && !(rel == ".git/HEAD" || rel.starts_with(".git/refs/")) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        #[cfg(not(unix))]
        let mode = u32::from(meta.permissions().readonly());
        let value = if meta.is_symlink() {
            format!("link {}", std::fs::read_link(entry.path())?.display())
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            let hash = match std::fs::read(entry.path()) {
                Ok(bytes) => format!("{:x}", Sha256::digest(&bytes)),
                Err(_) => "unreadable".into(),
            };
            format!("file {mode:o} {hash}")
        };
        tree.insert(rel, value);
    }
    Ok(tree)
}
