//! caro-sandbox: runs one shell command in a throwaway bubblewrap sandbox, on a fresh copy of a
//! folder, and reports its exit status, its output and what it did to the files.
//!
//! Two users share it: caro-bench's execution check ([`Sandbox`]: a fixture prepared once by a
//! setup script, mounted at [`PROJECT`]) and the product's preview ([`Preview`]: a copy of the
//! user's current folder, mounted at its real path, and the [`Effects`] a command would have).
//!
//! What keeps a destructive command contained:
//! - the system (`/usr`, a few files of `/etc`) is mounted read-only; nothing else of the host
//!   is visible: no home directories, no `/root`, no repository, an empty `/tmp`;
//! - the only writable host directory is the fresh copy, deleted afterwards;
//! - every namespace is unshared: no network, its own PIDs (everything it started dies with
//!   it), its own IPC and hostname; all capabilities are dropped;
//! - a wall-clock limit, and rlimits on file size and address space (and, for the preview of a
//!   user who is not root, on the number of processes).
//!
//! bubblewrap exists only on Linux; elsewhere [`Sandbox::new`] and [`Preview::of_dir`] fail with
//! [`SandboxError::Unavailable`], while [`digest_tree`] and [`Effects`] work everywhere.

#![forbid(unsafe_code)]

mod effects;
mod jail;
mod preview;

pub use effects::Effects;
pub use preview::{Limits, Preview};

use jail::{Jail, exec};

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where [`Sandbox`] mounts the copy inside, unless [`Sandbox::with_mount`] says otherwise; the
/// harness tells the model this is the current directory.
pub const PROJECT: &str = "/home/user/project";
/// [`Sandbox`]'s output beyond this is cut off before comparing, unless
/// [`Sandbox::with_output_cap`] sets another cap.
pub const MAX_OUTPUT: u64 = 1 << 20;
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
    /// The folder can't be previewed; the text says why, in words for the user.
    #[error("can't preview this command here: {0}")]
    NotPreviewable(String),
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What one command did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Exit status; `None` when it was killed (time limit, signal).
    pub status: Option<i32>,
    /// Killed by the time limit (or, in a [`Preview`], for starting thousands of processes).
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// The tree afterwards: relative path → kind, permissions and content hash (see
    /// [`digest_tree`]).
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
    jail: Jail,
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
            jail: Jail::bench(),
        };
        if let Some(setup) = setup {
            let script = std::fs::read_to_string(setup)?;
            let out = exec(
                &sandbox.jail,
                sandbox.golden.path(),
                sandbox.runs.path(),
                "bash",
                &script,
                Duration::from_secs(60),
                digest_tree,
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
        self.jail.file_limit = bytes;
        self
    }

    /// Mounts the copy at `path` inside instead of [`PROJECT`] for later runs (the setup script,
    /// run by [`Sandbox::new`], saw [`PROJECT`]).
    pub fn with_mount(mut self, path: impl Into<PathBuf>) -> Self {
        self.jail.mount = path.into();
        self
    }

    /// Cuts each later run's stdout and stderr at `bytes` instead of [`MAX_OUTPUT`].
    pub fn with_output_cap(mut self, bytes: u64) -> Self {
        self.jail.output_cap = bytes;
        self
    }

    /// Where the copy is mounted inside: the command's current directory.
    pub fn mount(&self) -> &Path {
        &self.jail.mount
    }

    /// Runs `command` with `shell` (`bash` or `sh`) in a fresh copy of the prepared fixture.
    pub fn run(&self, shell: &str, command: &str) -> Result<Outcome, SandboxError> {
        let work = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.runs.path())?;
        copy_tree(self.golden.path(), work.path())?;
        let out = exec(
            &self.jail,
            work.path(),
            self.runs.path(),
            shell,
            command,
            self.time_limit,
            digest_tree,
        );
        make_removable(work.path());
        out
    }

    /// The prepared fixture, for tests that check it stays untouched.
    pub fn golden(&self) -> &Path {
        self.golden.path()
    }
}

/// The command may have left read-only directories behind; make them removable.
fn make_removable(dir: &Path) {
    let _ = Command::new("chmod")
        .args(["-R", "u+rwX"])
        .arg(dir)
        .status();
}

fn bwrap_args(dir: &Path, jail: &Jail) -> Vec<String> {
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
    ]
    .map(String::from)
    .to_vec();
    // Empty, private and (for the preview) size-capped: a command writing outside its folder
    // writes into RAM that is freed when the sandbox ends.
    for dest in ["/tmp", "/home"]
        .into_iter()
        .chain(jail.hide.iter().map(String::as_str))
    {
        if let Some(bytes) = jail.tmpfs_bytes {
            a.extend(["--size".into(), bytes.to_string()]);
        }
        a.extend(["--tmpfs".into(), dest.into()]);
    }
    match jail.tmpfs_bytes {
        // The other places anyone may write, sized too: with several runs at once, uncapped
        // they could take gigabytes of RAM.
        Some(bytes) => {
            for dest in ["/var/tmp", "/dev/shm"] {
                a.extend([
                    "--size".into(),
                    bytes.to_string(),
                    "--tmpfs".into(),
                    dest.into(),
                ]);
            }
        }
        None => a.extend(["--dir", "/var/tmp"].map(String::from)),
    }
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
    if jail.make_home {
        a.extend(["--dir".into(), jail.home.clone()]);
    }
    // bwrap mounts in order: the copy goes on top of the empty tmpfs above (its mount point is
    // created inside it), so a copy of /home/alice/proj hides nothing and reveals nothing.
    let mount = jail.mount.display().to_string();
    a.extend(["--bind".into(), dir.display().to_string(), mount.clone()]);
    a.extend(["--chdir".into(), mount, "--clearenv".into()]);
    for (k, v) in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        ("HOME", jail.home.as_str()),
        ("USER", jail.user.as_str()),
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
    // An empty folder of its own to mount: never a host folder, writable inside.
    let empty = tempfile::Builder::new()
        .prefix("caro-probe-")
        .tempdir()
        .map_err(|e| SandboxError::Unavailable(format!("no temporary folder: {e}")))?;
    probe(&Jail::bench(), empty.path())
}

/// Runs `true` under `jail` with `dir` mounted: proves bwrap starts with exactly these options.
fn probe(jail: &Jail, dir: &Path) -> Result<(), SandboxError> {
    let out = Command::new("bwrap")
        .args(bwrap_args(dir, jail))
        .arg("true")
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

fn read_capped(path: &Path, cap: u64) -> Result<String, SandboxError> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(cap).read_to_end(&mut buf)?;
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
        if git_internal(&rel) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        tree.insert(rel, describe(entry.path(), &meta, mode_of(&meta))?);
    }
    Ok(tree)
}

/// Git's internals that [`digest_tree`] leaves out.
fn git_internal(rel: &str) -> bool {
    rel.starts_with(".git/") && !(rel == ".git/HEAD" || rel.starts_with(".git/refs/"))
}

/// The permission bits (on Windows, 1 for read-only).
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
    #[cfg(not(unix))]
    let mode = u32::from(meta.permissions().readonly());
    mode
}

/// One entry's digest: `dir MODE`, `file MODE SHA256` (or `unreadable`), `link TARGET` or
/// `special MODE`, with `mode` in octal.
fn describe(path: &Path, meta: &std::fs::Metadata, mode: u32) -> Result<String, SandboxError> {
    Ok(if meta.is_symlink() {
        format!("link {}", std::fs::read_link(path)?.display())
    } else if meta.is_dir() {
        format!("dir {mode:o}")
    } else if !meta.is_file() {
        // A FIFO, socket or device: reading a FIFO would wait for a writer forever.
        format!("special {mode:o}")
    } else {
        let hash = match std::fs::read(path) {
            Ok(bytes) => format!("{:x}", Sha256::digest(&bytes)),
            Err(_) => "unreadable".into(),
        };
        format!("file {mode:o} {hash}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(args: &[String], window: &[&str]) -> usize {
        args.windows(window.len())
            .position(|w| w.iter().zip(window).all(|(a, b)| a == b))
            .unwrap_or_else(|| panic!("{window:?} not in {args:?}"))
    }

    #[test]
    fn the_bench_sandbox_mounts_and_environment_are_as_before() {
        let args = bwrap_args(Path::new("/runs/run-1"), &Jail::bench());
        let proc_dev_tmp = [
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home", "--dir",
            "/var/tmp",
        ];
        position(&args, &proc_dev_tmp);
        position(
            &args,
            &[
                "--bind",
                "/runs/run-1",
                PROJECT,
                "--chdir",
                PROJECT,
                "--clearenv",
            ],
        );
        position(&args, &["--setenv", "HOME", "/home/user"]);
        position(&args, &["--setenv", "USER", "user"]);
        assert!(!args.iter().any(|a| a == "--size"), "{args:?}");
    }

    /// bwrap mounts in order: the copy must come after the empty tmpfs it sits in.
    #[test]
    fn a_copy_under_home_is_mounted_on_top_of_the_empty_home() {
        let jail = Jail {
            mount: PathBuf::from("/home/alice/proj"),
            home: "/home/alice".into(),
            user: "alice".into(),
            make_home: true,
            hide: vec!["/root".into()],
            tmpfs_bytes: Some(1 << 20),
            ..Jail::bench()
        };
        let args = bwrap_args(Path::new("/tmp/copy"), &jail);
        let home = position(&args, &["--size", "1048576", "--tmpfs", "/home"]);
        let root = position(&args, &["--size", "1048576", "--tmpfs", "/root"]);
        let made = position(&args, &["--dir", "/home/alice"]);
        let bind = position(&args, &["--bind", "/tmp/copy", "/home/alice/proj"]);
        assert!(home < made && root < made && made < bind, "{args:?}");
        position(&args, &["--chdir", "/home/alice/proj"]);
        position(&args, &["--setenv", "HOME", "/home/alice"]);
    }
}
