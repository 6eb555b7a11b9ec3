//! The product's preview: what a shell command would do to the user's current folder, found by
//! running it on a throwaway copy of that folder, never on the folder itself.

use crate::{
    Effects, Jail, Outcome, SandboxError, describe, exec, git_internal, make_removable, mode_of,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a preview may cost. The defaults keep a preview under a second or so for a project
/// folder and refuse a home folder or a build tree, whose copy would take longer than the
/// answer is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for one command; then everything it started is killed.
    pub time: Duration,
    /// Bytes kept of each of stdout and stderr.
    pub output: u64,
    /// The folder is refused when it holds more entries than this (files, folders, links, at
    /// any depth)...
    pub max_entries: usize,
    /// ...or more bytes of file data than this.
    pub max_bytes: u64,
    /// Largest file a command may write (RLIMIT_FSIZE).
    pub file_size: u64,
    /// Processes a command may start, for a user who is not root (see `process_limit`).
    pub processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(1),
            output: 64 << 10,
            max_entries: 2000,
            max_bytes: 64 << 20,
            file_size: 16 << 20,
            processes: 256,
        }
    }
}

/// Each empty tmpfs (`/tmp`, `/home`, `/root`) holds at most this: they live in RAM.
#[cfg(target_os = "linux")]
const TMPFS_BYTES: u64 = 64 << 20;

/// A run is killed when the machine runs this many more tasks than when it started (see
/// `Jail::task_fuse`): far above what a build or a pipeline starts, far below what a fork bomb
/// reaches within the time limit.
#[cfg(target_os = "linux")]
const TASK_FUSE: u64 = 2048;

/// Previewed commands run below the user's own programs and below the sandbox's own processes
/// (see `Jail::nice`), yet not so far below that a busy machine stalls an ordinary preview past
/// its time limit.
#[cfg(target_os = "linux")]
const NICENESS: u8 = 19;

/// A copy of one folder, ready to preview commands on. Every run gets a fresh copy of it, and
/// the folder itself is only read, once, by [`Preview::of_dir`].
#[derive(Debug)]
pub struct Preview {
    /// The folder's real absolute path: the copy's mount point inside.
    cwd: PathBuf,
    /// Holds the untouched copy (`golden`) and each run's copy; deleted on drop.
    root: tempfile::TempDir,
    before: BTreeMap<String, String>,
    limits: Limits,
    jail: Jail,
}

impl Drop for Preview {
    /// A command (or the user's own folder) may have left read-only folders in the copies,
    /// which would make the temporary folder undeletable, and leave a copy of the user's
    /// files behind: opened up first, then deleted with `root`.
    fn drop(&mut self) {
        crate::make_removable(self.root.path());
    }
}

impl Preview {
    /// Copies `cwd` for previews, after checking that bubblewrap works and that the folder is
    /// small enough ([`SandboxError::NotPreviewable`] says why not).
    pub fn of_dir(cwd: &Path, limits: Limits) -> Result<Self, SandboxError> {
        #[cfg(target_os = "linux")]
        {
            Self::prepare(cwd, limits)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (cwd, limits);
            Err(SandboxError::Unavailable(
                "bubblewrap exists only on Linux".into(),
            ))
        }
    }

    #[cfg(target_os = "linux")]
    fn prepare(cwd: &Path, limits: Limits) -> Result<Self, SandboxError> {
        crate::check_bwrap()?;
        // The real path: the one `pwd` prints inside, and the one an absolute path in a
        // command names.
        let cwd = std::fs::canonicalize(cwd)?;
        refuse_system(&cwd)?;
        let bytes = measure(&cwd, &limits)?;
        let root = scratch_root(bytes)?;
        // Until the Preview owns `root` (and opens it up on drop), a failure opens it up here.
        let opened_up = |e: SandboxError| {
            crate::make_removable(root.path());
            e
        };
        let golden = root.path().join("golden");
        copy_dir(&cwd, &golden)
            .map_err(|e| {
                SandboxError::NotPreviewable(format!("the current folder could not be copied: {e}"))
            })
            .map_err(opened_up)?;
        let before = digest_copy(&golden).map_err(opened_up)?;
        let mut jail = jail_for(&cwd, &limits);
        let mut probed = crate::probe(&jail, &golden);
        // bubblewrap before 0.7 has no `--size`: its tmpfs mounts go uncapped rather than the
        // preview refused. (Probed again only then: each probe starts a sandbox, and the
        // preview is on the way to every answer.)
        if let Err(SandboxError::Unavailable(why)) = &probed
            && why.contains("--size")
        {
            jail.tmpfs_bytes = None;
            probed = crate::probe(&jail, &golden);
        }
        // The generic check passed, so a failure here is this folder's mount point.
        probed
            .map_err(|e| match e {
                SandboxError::Unavailable(why) => SandboxError::NotPreviewable(format!(
                    "the sandbox can't mount the current folder: {why}"
                )),
                other => other,
            })
            .map_err(opened_up)?;
        Ok(Self {
            cwd,
            root,
            before,
            limits,
            jail,
        })
    }

    /// Runs `command` with `shell` (`bash`, `sh`...) on a fresh copy of the folder.
    pub fn run(&self, shell: &str, command: &str) -> Result<Outcome, SandboxError> {
        let work = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.root.path())?;
        let copy = work.path().join("copy");
        copy_dir(&self.root.path().join("golden"), &copy).map_err(SandboxError::Setup)?;
        let out = exec(
            &self.jail,
            &copy,
            work.path(),
            shell,
            command,
            self.limits.time,
            digest_copy,
        );
        make_removable(&copy);
        out
    }

    /// [`Preview::run`] for each command, on as many threads as the machine has cores (each
    /// run mostly waits on its sandbox); the results are in the order of `commands`.
    pub fn run_all(&self, shell: &str, commands: &[String]) -> Vec<Result<Outcome, SandboxError>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(commands.len());
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Result<Outcome, SandboxError>>> =
            commands.iter().map(|_| None).collect();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(command) = commands.get(i) else {
                                break done;
                            };
                            done.push((i, self.run(shell, command)));
                        }
                    })
                })
                .collect();
            for worker in workers {
                // A panic in a run is a bug: pass it on rather than hide it in a result.
                let done = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SandboxError::Setup("the run never started".into()))))
            .collect()
    }

    /// The digest of the untouched copy (as [`Outcome::tree`], with the folder itself as `.`).
    pub fn before(&self) -> &BTreeMap<String, String> {
        &self.before
    }

    /// What `outcome`, a run of this preview, did to the folder's files.
    pub fn effects(&self, outcome: &Outcome) -> Effects {
        Effects::between(&self.before, &outcome.tree)
    }

    /// The folder's real absolute path, where the copy is mounted inside.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Folders that are in memory on Linux, most private first: the user's own runtime folder
/// (mode 0700, and capped by the system at a share of the RAM), then `/dev/shm`.
#[cfg(target_os = "linux")]
fn memory_folders() -> impl Iterator<Item = PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .into_iter()
        .chain([PathBuf::from("/dev/shm")])
}

/// Room a memory folder must have beyond the copies themselves, for what the commands write
/// in their second.
#[cfg(target_os = "linux")]
const MEMORY_MARGIN: u64 = 256 << 20;

/// The preview's own temporary folder, for the folder's copies: in memory where the system has
/// a memory folder that can hold them, else in the temporary folder. Every answer copies the
/// folder at least twice, and on a disk's ext4 `/tmp`, busy with those copies, creating the
/// files and folders cost 150-500 ms a preview on the 2-core machine (`perf`: `cp` in
/// `ext4_create` and `mkdirat`) against about 80 ms in memory. `bytes` is the folder's size:
/// the folder must have room for the untouched copy and one copy per parallel run, and a
/// margin, since a command's writes are capped per file, not in total, and in memory they
/// take RAM until its copy is deleted. A full memory folder would fail other programs' writes
/// there too, and would fail the preview's commands where the disk would not.
#[cfg(target_os = "linux")]
fn scratch_root(bytes: u64) -> Result<tempfile::TempDir, SandboxError> {
    let needed = room_needed(bytes);
    let mut builder = tempfile::Builder::new();
    builder.prefix("caro-preview-");
    // A memory folder that is missing or not writable (a container's read-only /dev/shm)
    // falls through to the next.
    for dir in memory_folders() {
        if has_room(&dir, needed)
            && let Ok(root) = builder.tempdir_in(&dir)
        {
            return Ok(root);
        }
    }
    Ok(builder.tempdir()?)
}

/// Bytes the copies of a folder of `bytes` need: the untouched copy, one per parallel run,
/// and the margin.
#[cfg(target_os = "linux")]
fn room_needed(bytes: u64) -> u64 {
    let runs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    bytes.saturating_mul(runs + 1).saturating_add(MEMORY_MARGIN)
}

/// Whether the file system of `dir` can hold `needed` bytes of copies ([`can_hold`]); false
/// when it cannot be asked.
#[cfg(target_os = "linux")]
fn has_room(dir: &Path, needed: u64) -> bool {
    rustix::fs::statvfs(dir)
        .is_ok_and(|fs| can_hold(fs.f_flag, fs.f_bavail.saturating_mul(fs.f_frsize), needed))
}

/// Whether a file system mounted with `flags`, with `available` bytes free, can hold copies
/// needing `needed` bytes: writable, and not `noexec`, which would fail `./build.sh` in the
/// preview (and change the vote among candidates) where the user's own folder runs it. A
/// container's /dev/shm is often both small (64 MiB) and `noexec`.
#[cfg(target_os = "linux")]
fn can_hold(flags: rustix::fs::StatVfsMountFlags, available: u64, needed: u64) -> bool {
    use rustix::fs::StatVfsMountFlags as F;
    !flags.intersects(F::NOEXEC | F::RDONLY) && available >= needed
}

/// `/` would copy the whole system, and the kernel's own file systems are no folders to copy.
#[cfg(target_os = "linux")]
fn refuse_system(cwd: &Path) -> Result<(), SandboxError> {
    if cwd == Path::new("/") {
        return Err(SandboxError::NotPreviewable(
            "the current folder is /, the whole system".into(),
        ));
    }
    for virtual_fs in ["/proc", "/sys", "/dev"] {
        if cwd.starts_with(virtual_fs) {
            return Err(SandboxError::NotPreviewable(format!(
                "the current folder is in {virtual_fs}, which the kernel makes up"
            )));
        }
    }
    Ok(())
}

/// Refuses a folder over the limits, and stops counting as soon as it is over: the walk of a
/// home folder ends after `max_entries` entries. Symlinks are counted, not followed.
#[cfg(target_os = "linux")]
fn measure(cwd: &Path, limits: &Limits) -> Result<u64, SandboxError> {
    let mut entries = 0usize;
    let mut bytes = 0u64;
    for entry in walkdir::WalkDir::new(cwd).min_depth(1).follow_links(false) {
        // What can't be read here can't be copied either; `cp` reports it.
        let Ok(entry) = entry else { continue };
        entries += 1;
        if entries > limits.max_entries {
            return Err(SandboxError::NotPreviewable(format!(
                "the current folder holds more than {} entries",
                limits.max_entries
            )));
        }
        if entry.file_type().is_file() {
            bytes += entry.metadata().map_or(0, |m| m.len());
            if bytes > limits.max_bytes {
                return Err(SandboxError::NotPreviewable(format!(
                    "the current folder holds more than {} of files",
                    human(limits.max_bytes)
                )));
            }
        }
    }
    Ok(bytes)
}

#[cfg(target_os = "linux")]
fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The sandbox of a preview: the copy at the folder's real path; `/home`, `/root` and `/tmp`
/// empty, so the host's files a command names (`~/.ssh`, `/tmp/x`) are not there; `$HOME` and
/// `$USER` the user's own, so `cd ~` and `$USER` expand as they would.
#[cfg(target_os = "linux")]
fn jail_for(cwd: &Path, limits: &Limits) -> Jail {
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".into());
    // Creating $HOME is safe where its parent is an empty tmpfs or bwrap's own empty root,
    // never through /bin or /lib, which lead into the read-only /usr.
    let make_home = ["/home", "/root", "/tmp", "/var"]
        .iter()
        .any(|top| Path::new(&home).starts_with(top));
    let hide = if Path::new("/root").exists() {
        vec!["/root".to_owned()]
    } else {
        Vec::new()
    };
    Jail {
        mount: cwd.to_path_buf(),
        home,
        user,
        make_home,
        hide,
        tmpfs_bytes: Some(TMPFS_BYTES),
        output_cap: limits.output,
        file_limit: limits.file_size,
        process_headroom: Some(limits.processes),
        task_fuse: Some(TASK_FUSE),
        nice: Some(NICENESS),
    }
}

/// `cp -a` keeps modes, times, symlinks and special files; `--reflink=auto` shares data blocks
/// where the file system can (btrfs, XFS) and copies them elsewhere. A copy it is because
/// bubblewrap 0.8 (Debian 12, Ubuntu 24.04) has no `--overlay-src`, which would have let the
/// command write to an overlay over the real folder. `--no-target-directory` makes `to` the
/// copy itself, with the folder's own mode.
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory"])
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().next().unwrap_or("cp failed").to_owned())
    }
}

/// [`crate::digest_tree`] for a copy this crate owns: it also records the folder itself as `.`
/// (`chmod 000 .` is an effect too), and it reads what the command made unreadable. A user who
/// is not root can't list a folder without r and x, nor read a file without r, so such an
/// entry's mode is recorded first, then opened up for the read and put back afterwards: the
/// golden copy must stay exactly as the user's folder is.
fn digest_copy(dir: &Path) -> Result<BTreeMap<String, String>, SandboxError> {
    let mut tree = BTreeMap::new();
    let mut opened = Vec::new();
    let walked = walk(dir, &mut tree, &mut opened);
    // Children first: a folder is closed again only after what is inside it.
    for (path, permissions) in opened.into_iter().rev() {
        let _ = std::fs::set_permissions(path, permissions);
    }
    walked.map(|()| tree)
}

/// The most a run's copy may hold for its digest: a command that writes more (thousands of
/// files, each under the file-size cap) is not previewed, rather than hashed for minutes.
const DIGEST_MAX_ENTRIES: usize = 20_000;
const DIGEST_MAX_BYTES: u64 = 256 << 20;

fn walk(
    dir: &Path,
    tree: &mut BTreeMap<String, String>,
    opened: &mut Vec<(PathBuf, std::fs::Permissions)>,
) -> Result<(), SandboxError> {
    let mut bytes = 0u64;
    let meta = dir.symlink_metadata()?;
    tree.insert(".".into(), describe(dir, &meta, mode_of(&meta))?);
    open_up(dir, &meta, opened);
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(listing) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            let rel = path
                .strip_prefix(dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            bytes += if meta.is_file() { meta.len() } else { 0 };
            if tree.len() >= DIGEST_MAX_ENTRIES || bytes > DIGEST_MAX_BYTES {
                return Err(SandboxError::NotPreviewable(format!(
                    "the command left more than {DIGEST_MAX_ENTRIES} entries or {} in the folder",
                    human(DIGEST_MAX_BYTES)
                )));
            }
            let mode = mode_of(&meta);
            open_up(&path, &meta, opened);
            if !git_internal(&rel) {
                tree.insert(rel, describe(&path, &meta, mode)?);
            }
            // Into .git too, as digest_tree does: its HEAD and refs count.
            if meta.is_dir() {
                folders.push(path);
            }
        }
    }
    Ok(())
}

/// Gives the owner what reading needs (r and x on a folder, r on a file), remembering the
/// permissions to put back. Symlinks are left alone: chmod would follow them.
#[cfg(unix)]
fn open_up(
    path: &Path,
    meta: &std::fs::Metadata,
    opened: &mut Vec<(PathBuf, std::fs::Permissions)>,
) {
    use std::os::unix::fs::PermissionsExt;
    let need = if meta.is_dir() {
        0o500
    } else if meta.is_file() {
        0o400
    } else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & need != need
        && std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | need)).is_ok()
    {
        opened.push((path.to_path_buf(), meta.permissions()));
    }
}

#[cfg(not(unix))]
fn open_up(_: &Path, _: &std::fs::Metadata, _: &mut Vec<(PathBuf, std::fs::Permissions)>) {}

// Linux only: the sizes are those of the refusals, and the modes are Unix permissions.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rstest::rstest;
    use rustix::fs::StatVfsMountFlags as F;

    #[rstest]
    #[case::mebibytes(64 << 20, "64 MiB")]
    #[case::kibibytes(512 << 10, "512 KiB")]
    #[case::odd_bytes(1000, "1000 bytes")]
    fn sizes_read_as_people_write_them(#[case] bytes: u64, #[case] text: &str) {
        assert_eq!(human(bytes), text);
    }

    #[test]
    fn the_digest_of_a_copy_reads_locked_entries_and_puts_their_modes_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        std::fs::write(locked.join("inside.txt"), "x").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "y").expect("write");
        let set = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        set(&locked.join("inside.txt"), 0o000);
        set(&dir.path().join("secret.txt"), 0o000);
        set(&locked, 0o000);

        let tree = digest_copy(dir.path()).expect("digest");

        assert_eq!(tree["locked"], "dir 0");
        assert!(
            tree["locked/inside.txt"].starts_with("file 0 2d711642"),
            "{tree:?}"
        );
        assert!(
            tree["secret.txt"].starts_with("file 0 a1fce436"),
            "{tree:?}"
        );
        assert!(tree["."].starts_with("dir "));
        let mode = |p: &Path| {
            std::fs::symlink_metadata(p)
                .expect("stat")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&locked), 0o000);
        set(&locked, 0o700);
        assert_eq!(mode(&locked.join("inside.txt")), 0o000);
        assert_eq!(mode(&dir.path().join("secret.txt")), 0o000);
    }

    /// Regression: the copies sat in the disk's /tmp, where creating their files and folders
    /// took most of a preview's time (see [`scratch_root`]).
    #[test]
    fn the_copies_go_to_a_folder_in_memory() {
        let usable = memory_folders()
            .any(|d| has_room(&d, room_needed(1 << 20)) && tempfile::tempdir_in(&d).is_ok());
        if !usable {
            // Past the test harness's capture, so that a skip never reads as a pass.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: no memory folder here can hold a preview ($XDG_RUNTIME_DIR unset, /dev/shm small, read-only or noexec): nothing checked"
            );
            return;
        }
        let root = scratch_root(1 << 20).expect("a temporary folder");
        assert!(
            memory_folders().any(|d| root.path().starts_with(d)),
            "{}",
            root.path().display()
        );
    }

    #[rstest]
    #[case::roomy_and_writable(F::empty(), 1 << 30, true)]
    #[case::too_small(F::empty(), (1 << 20) - 1, false)]
    #[case::programs_may_not_run_from_it(F::NOEXEC, 1 << 30, false)]
    #[case::read_only(F::RDONLY | F::NOSUID, 1 << 30, false)]
    #[case::nosuid_and_nodev_do_not_matter(F::NOSUID | F::NODEV, 1 << 20, true)]
    fn a_memory_folder_is_used_only_when_it_can_hold_the_copies(
        #[case] flags: F,
        #[case] available: u64,
        #[case] want: bool,
    ) {
        assert_eq!(can_hold(flags, available, 1 << 20), want);
    }
}
