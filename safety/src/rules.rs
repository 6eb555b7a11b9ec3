//! The built-in rules: typed data (id, level, shells, message, safer alternative) with a small
//! predicate over one normalized simple command each.

use super::ir::{self, Arg, Cmd, RedirOp, Stdin};
use super::paths::{Target, classify_in, classify_text};
use super::{Finding, RiskLevel};
use crate::shell::ShellType;

/// Which syntax families a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// bash, zsh, sh, fish.
    Posix,
    /// POSIX shells and PowerShell (where `rm`, `curl`, … may be the native programs).
    PosixAndPs,
    PowerShell,
    Cmd,
    /// PowerShell and cmd.
    Windows,
    All,
}

impl Scope {
    pub fn covers(self, shell: ShellType) -> bool {
        let ps = shell == ShellType::PowerShell;
        let cmd = shell == ShellType::Cmd;
        match self {
            Self::Posix => !ps && !cmd,
            Self::PosixAndPs => !cmd,
            Self::PowerShell => ps,
            Self::Cmd => cmd,
            Self::Windows => ps || cmd,
            Self::All => true,
        }
    }
}

/// Returns the detail to show (usually the offending word) when the rule matches.
type Check = fn(&Cmd) -> Option<String>;

/// One built-in rule.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRule {
    pub id: &'static str,
    pub level: RiskLevel,
    pub scope: Scope,
    /// One sentence that explains the danger.
    pub message: &'static str,
    pub alternative: Option<&'static str>,
    check: Check,
}

pub fn builtin_rules() -> &'static [BuiltinRule] {
    RULES
}

pub(crate) fn apply_builtin(cmd: &Cmd, shell: ShellType, out: &mut Vec<Finding>) {
    let family = cmd.shell.unwrap_or(shell);
    for rule in RULES {
        if !rule.scope.covers(family) {
            continue;
        }
        if let Some(detail) = (rule.check)(cmd) {
            let message = if detail.is_empty() {
                rule.message.to_string()
            } else {
                format!("{} (`{}`)", rule.message, detail)
            };
            out.push(Finding {
                rule_id: rule.id.into(),
                level: rule.level,
                message,
                alternative: rule.alternative.map(str::to_string),
                span: cmd.span,
            });
        }
    }
}

macro_rules! rule {
    ($id:literal, $level:ident, $scope:ident, $msg:literal, $alt:expr, $check:expr) => {
        BuiltinRule {
            id: $id,
            level: RiskLevel::$level,
            scope: Scope::$scope,
            message: $msg,
            alternative: $alt,
            check: $check,
        }
    };
}

static RULES: &[BuiltinRule] = &[
    // ---- recursive deletion ------------------------------------------------------------
    rule!(
        "fs.delete_root",
        Critical,
        PosixAndPs,
        "deletes the root filesystem recursively: every file on the machine",
        Some("name the exact directory you mean, e.g. ./build"),
        |c| rm_target(c, true, &[Target::Root])
    ),
    rule!(
        "fs.no_preserve_root",
        Critical,
        Posix,
        "`--no-preserve-root` exists only to let rm delete `/`",
        None,
        |c| (c.program() == "rm" && c.gnu_flags().long.iter().any(|l| l == "no-preserve-root"))
            .then(String::new)
    ),
    rule!(
        "fs.delete_system_dir",
        Critical,
        PosixAndPs,
        "deletes a system directory recursively, which leaves the machine unbootable",
        None,
        |c| rm_target(c, true, &[Target::SystemDir])
    ),
    rule!(
        "fs.delete_home",
        Critical,
        PosixAndPs,
        "deletes your whole home folder recursively",
        Some("delete the specific folder inside it instead"),
        |c| rm_target(c, true, &[Target::Home])
    ),
    rule!(
        "fs.delete_protected_files",
        High,
        PosixAndPs,
        "deletes files directly in the root, a system directory or your home folder",
        None,
        |c| rm_target(c, false, &[Target::Root, Target::SystemDir, Target::Home])
    ),
    rule!(
        "fs.delete_under_system",
        High,
        PosixAndPs,
        "deletes system files recursively (inside /usr, /etc, /var, …)",
        None,
        |c| rm_target(c, true, &[Target::UnderSystem])
    ),
    rule!(
        "fs.delete_parent",
        High,
        PosixAndPs,
        "deletes the parent directory recursively, outside the folder you are in",
        Some("cd to the directory and name it explicitly"),
        |c| rm_target(c, true, &[Target::Parent])
    ),
    rule!(
        "fs.delete_cwd_all",
        High,
        PosixAndPs,
        "deletes everything in the current directory recursively",
        Some("check `pwd` first, or name the subfolder"),
        |c| rm_target(c, true, &[Target::CwdAll])
    ),
    rule!(
        "fs.delete_cwd_files",
        Moderate,
        PosixAndPs,
        "deletes every file in the current directory",
        Some("name the files, or look with `ls` first"),
        // By spelling, not by folder: `rm -f *` empties the folder wherever it runs (in a
        // system folder or home the rules for those fire as well).
        |c| rm_target(
            &Cmd {
                at: None,
                ..c.clone()
            },
            false,
            &[Target::CwdAll]
        )
    ),
    rule!(
        "fs.delete_under_home",
        Moderate,
        PosixAndPs,
        "deletes a folder inside your home folder recursively",
        None,
        |c| rm_target(c, true, &[Target::UnderHome])
    ),
    rule!(
        "fs.delete_unresolved",
        Moderate,
        PosixAndPs,
        "deletes a path built from a variable that is not set here; if it is empty the command hits something else",
        Some("use \"${VAR:?}\" so the shell stops when VAR is empty"),
        |c| rm_target(c, true, &[Target::Unknown]).or_else(|| rm_target(
            c,
            false,
            &[Target::Unknown]
        ))
    ),
    rule!(
        "fs.move_protected",
        Critical,
        Posix,
        "moves the root, a system directory or your home folder away",
        None,
        mv_protected
    ),
    rule!(
        "fs.find_delete_protected",
        Critical,
        Posix,
        "find deletes everything under the root, a system directory or your home folder",
        None,
        |c| find_delete(c, FindScope::Protected)
    ),
    rule!(
        "fs.find_delete_broad",
        High,
        Posix,
        "find deletes matching files across the whole system",
        Some("run it with -print first to see what matches"),
        |c| find_delete(c, FindScope::System)
    ),
    rule!(
        "fs.find_delete_here",
        High,
        Posix,
        "find deletes everything under the folder it starts in",
        Some("run it with -print first, or add -name/-mtime to narrow it"),
        |c| find_delete(c, FindScope::Here)
    ),
    rule!(
        "fs.find_delete_matching",
        Moderate,
        Posix,
        "find deletes every file it matches",
        Some("run it with -print first to see what matches"),
        |c| find_delete(c, FindScope::Matching)
    ),
    rule!(
        "fs.rsync_delete_protected",
        Critical,
        Posix,
        "rsync --delete onto the root, a system directory or your home folder removes everything not in the source",
        None,
        |c| rsync_delete(c, true)
    ),
    rule!(
        "fs.rsync_delete",
        Moderate,
        Posix,
        "rsync --delete removes files in the destination that are not in the source",
        Some("run it with --dry-run first"),
        |c| rsync_delete(c, false)
    ),
    // ---- permissions ---------------------------------------------------------------------
    rule!(
        "perm.recursive_system",
        Critical,
        Posix,
        "changes permissions or owner recursively on the root or a system directory, which breaks sudo, ssh and the system",
        None,
        |c| perm_recursive(c, &[Target::Root, Target::SystemDir])
    ),
    rule!(
        "perm.recursive_under_system",
        Moderate,
        Posix,
        "changes permissions or owner recursively inside a system directory",
        None,
        |c| perm_recursive(c, &[Target::UnderSystem])
    ),
    rule!(
        "perm.system_mode",
        High,
        Posix,
        "makes a system path world-writable or unreadable",
        None,
        chmod_system_mode
    ),
    rule!(
        "perm.world_writable_tree",
        Moderate,
        Posix,
        "makes a whole tree world-writable (777)",
        Some("use 755 for directories and 644 for files"),
        chmod_tree_777
    ),
    // ---- disks ---------------------------------------------------------------------------
    rule!(
        "disk.write_device",
        Critical,
        Posix,
        "writes straight onto a disk device, destroying its partitions and data",
        Some("write to an image file instead, e.g. of=disk.img"),
        write_device
    ),
    rule!(
        "disk.format",
        Critical,
        Posix,
        "creates a filesystem on a disk device, erasing it",
        Some("double-check the device with lsblk first"),
        mkfs_device
    ),
    rule!(
        "disk.wipe",
        Critical,
        Posix,
        "wipes or repartitions a disk device",
        Some("double-check the device with lsblk first"),
        wipe_device
    ),
    rule!(
        "disk.partition_interactive",
        High,
        Posix,
        "opens a partition editor on a disk device",
        None,
        partition_editor
    ),
    // ---- processes and the kernel ----------------------------------------------------------
    rule!(
        "proc.kill_init",
        Critical,
        Posix,
        "kills init (PID 1) or every process, which crashes or logs out the whole system",
        None,
        kill_init
    ),
    rule!(
        "sys.sysrq",
        Critical,
        Posix,
        "triggers a kernel SysRq action (crash, reboot or power-off at once)",
        None,
        |c| writes_to(c, |t| t.starts_with("/proc/sysrq-trigger"))
    ),
    rule!(
        "sys.shutdown",
        High,
        All,
        "shuts down or reboots the machine",
        None,
        shutdown
    ),
    rule!(
        "sys.crontab_remove",
        High,
        Posix,
        "deletes your whole crontab without asking",
        Some("crontab -e to edit, or crontab -l > backup first"),
        |c| (c.program() == "crontab" && c.gnu_flags().short.contains(&'r')).then(String::new)
    ),
    // ---- auth files and security -----------------------------------------------------------
    rule!(
        "sys.overwrite_auth",
        Critical,
        Posix,
        "overwrites or deletes a critical system file (passwd, shadow, sudoers, fstab, …), which can lock everyone out",
        None,
        overwrite_sensitive
    ),
    rule!(
        "sys.modify_auth",
        High,
        Posix,
        "edits a critical system file (passwd, shadow, sudoers, fstab, …) in place",
        Some("use visudo, vipw or usermod, which check the result"),
        modify_sensitive
    ),
    rule!(
        "sec.sudoers_nopasswd",
        Critical,
        Posix,
        "grants passwordless sudo (NOPASSWD) by writing to sudoers",
        None,
        sudoers_nopasswd
    ),
    rule!(
        "sec.firewall_off",
        High,
        All,
        "turns off or flushes the firewall",
        None,
        firewall_off
    ),
    rule!(
        "sec.selinux_off",
        High,
        Posix,
        "switches SELinux enforcement off",
        None,
        |c| (c.program() == "setenforce"
            && c.args()
                .first()
                .is_some_and(|a| a.text == "0" || a.text.eq_ignore_ascii_case("permissive")))
        .then(String::new)
    ),
    rule!(
        "sec.sshd_stop",
        High,
        Posix,
        "stops the SSH server, cutting off remote access",
        None,
        sshd_stop
    ),
    rule!(
        "sec.protection_off",
        High,
        All,
        "disables the OS's malware or integrity protection",
        None,
        protection_off
    ),
    // ---- remote code -------------------------------------------------------------------------
    rule!(
        "exec.remote_pipe_shell",
        Critical,
        PosixAndPs,
        "pipes a download straight into a shell: whoever controls that URL controls this machine",
        Some("download to a file, read it, then run it"),
        remote_pipe
    ),
    rule!(
        "exec.remote_subst_shell",
        Critical,
        PosixAndPs,
        "runs downloaded code through a substitution (`bash <(curl …)`, `eval \"$(curl …)\"`)",
        Some("download to a file, read it, then run it"),
        remote_subst
    ),
    // ---- version control, infrastructure, data --------------------------------------------------
    rule!(
        "vcs.force_push_main",
        High,
        All,
        "force-pushes to a main branch, rewriting history everyone shares",
        Some("git push --force-with-lease to a feature branch"),
        |c| force_push(c, true)
    ),
    rule!(
        "vcs.force_push",
        Moderate,
        All,
        "force-pushes, overwriting the remote branch's history",
        Some("git push --force-with-lease"),
        |c| force_push(c, false)
    ),
    rule!(
        "vcs.reset_hard",
        High,
        All,
        "git reset --hard throws away uncommitted changes for good",
        Some("git stash first"),
        |c| git_sub(c, "reset")
            .filter(|a| a.iter().any(|x| x.text == "--hard"))
            .map(|_| String::new())
    ),
    rule!(
        "vcs.clean_untracked",
        High,
        All,
        "git clean -fd/-x deletes untracked (and ignored) files for good",
        Some("git clean -n shows what would go"),
        |c| git_clean(c, true)
    ),
    rule!(
        "vcs.clean",
        Moderate,
        All,
        "git clean -f deletes untracked files",
        Some("git clean -n shows what would go"),
        |c| git_clean(c, false)
    ),
    rule!(
        "k8s.delete_broad",
        High,
        All,
        "deletes a Kubernetes namespace or every resource of a kind",
        None,
        kube_delete_broad
    ),
    rule!(
        "iac.destroy",
        High,
        All,
        "destroys all infrastructure managed by this project",
        Some("run `terraform plan -destroy` first"),
        iac_destroy
    ),
    rule!(
        "db.destructive_sql",
        High,
        All,
        "drops or empties a database or table",
        Some("take a backup (pg_dump, mysqldump) first"),
        destructive_sql
    ),
    rule!(
        "cloud.delete_storage",
        High,
        All,
        "deletes a cloud storage bucket or everything in it",
        None,
        cloud_storage_delete
    ),
    rule!(
        "cloud.delete_resources",
        High,
        All,
        "deletes cloud machines, databases or whole projects",
        None,
        cloud_resources_delete
    ),
    // ---- PowerShell --------------------------------------------------------------------------
    // ---- destructive but scoped: containers, clusters, accounts, packages, history --------
    rule!(
        "perm.setuid_shell",
        Critical,
        Posix,
        "sets the setuid/setgid bit on a shell or system program: any user can then run it as its owner, usually root",
        None,
        setuid_program
    ),
    rule!(
        "pkg.remove_essential",
        Critical,
        Posix,
        "removes a package the system cannot boot or log in without",
        None,
        remove_essential_package
    ),
    rule!(
        "container.delete_data",
        High,
        Posix,
        "deletes container volumes, and the data in them with them",
        Some("list them first (`docker volume ls`) and remove the ones you mean"),
        container_volumes
    ),
    rule!(
        "container.delete",
        Moderate,
        PosixAndPs,
        "force-removes containers or images, or prunes everything unused",
        None,
        container_delete
    ),
    rule!(
        "k8s.delete",
        Moderate,
        Posix,
        "deletes cluster resources",
        Some("run it with --dry-run=client first"),
        kube_delete_named
    ),
    rule!(
        "k8s.helm_uninstall",
        High,
        Posix,
        "uninstalls a Helm release and every resource it created",
        None,
        |c| (c.program() == "helm"
            && c.args()
                .iter()
                .any(|a| matches!(a.text.as_str(), "uninstall" | "delete" | "del" | "un")))
        .then(String::new)
    ),
    rule!(
        "acct.delete_user",
        High,
        Posix,
        "deletes a user account (with -r, its home folder and mail too)",
        None,
        |c| matches!(c.program(), "userdel" | "deluser" | "groupdel" | "delgroup")
            .then(|| c.display())
    ),
    rule!(
        "net.firewall_drop_all",
        High,
        Posix,
        "sets the firewall to drop all traffic or flushes its rules, which can cut off this session and every service",
        None,
        firewall_drop_all
    ),
    rule!(
        "fs.truncate_sensitive",
        High,
        Posix,
        "empties a log, a system file or a dotfile in your home folder (shell, ssh or git settings)",
        None,
        |c| truncated_file(c, true)
    ),
    rule!(
        "fs.truncate",
        Moderate,
        Posix,
        "empties a file; what it held is gone",
        None,
        |c| truncated_file(c, false)
    ),
    rule!(
        "fs.shred",
        Moderate,
        Posix,
        "overwrites files so that they can never be recovered",
        None,
        |c| (c.program() == "shred"
            && device_operand(c).is_none()
            && !c
                .args()
                .iter()
                .any(|a| a.text == "--help" || a.text == "--version"))
        .then(|| c.display())
    ),
    rule!(
        "vcs.destroy_history",
        High,
        Posix,
        "rewrites or deletes Git history that may exist nowhere else",
        Some("make a backup clone first"),
        git_destroy_history
    ),
    rule!(
        "vcs.discard_work",
        Moderate,
        Posix,
        "throws away stashed work, an unmerged branch or uncommitted changes",
        None,
        git_discard_work
    ),
    rule!(
        "sys.unmount_all",
        High,
        Posix,
        "unmounts every filesystem (or the root), which stops the system and running programs",
        None,
        |c| (c.program() == "umount"
            && c.args().iter().any(|a| {
                matches!(a.text.as_str(), "-a" | "--all" | "/") || a.text.starts_with("-a")
            }))
        .then(|| c.display())
    ),
    rule!(
        "dev.read_raw",
        High,
        Posix,
        "reads raw memory, I/O ports or a whole disk, which exposes every secret on the machine",
        None,
        read_raw_device
    ),
    rule!(
        "db.flush",
        High,
        Posix,
        "deletes a whole database or every key in it",
        None,
        db_flush
    ),
    rule!(
        "ps.format_disk",
        Critical,
        PowerShell,
        "formats or clears a disk or volume, erasing it",
        None,
        |c| ps_is(
            c,
            &[
                "format-volume",
                "clear-disk",
                "remove-partition",
                "initialize-disk"
            ]
        )
        .then(String::new)
    ),
    rule!(
        "ps.execution_policy",
        High,
        PowerShell,
        "lets any script run unsigned (execution policy Unrestricted or Bypass)",
        Some("Set-ExecutionPolicy RemoteSigned -Scope CurrentUser"),
        |c| (ps_is(c, &["set-executionpolicy"])
            && c.args().iter().any(|a| {
                let t = a.text.to_ascii_lowercase();
                t == "unrestricted" || t == "bypass"
            }))
        .then(String::new)
    ),
    rule!(
        "ps.registry_delete",
        High,
        PowerShell,
        "deletes machine-wide registry keys",
        None,
        |c| (ps_is(
            c,
            &[
                "remove-item",
                "ri",
                "rm",
                "del",
                "rd",
                "rmdir",
                "erase",
                "remove-itemproperty",
                "rp"
            ]
        ) && c
            .args()
            .iter()
            .any(|a| a.text.to_ascii_lowercase().starts_with("hklm:")))
        .then(String::new)
    ),
    rule!(
        "win.shadow_copies",
        Critical,
        Windows,
        "deletes Volume Shadow Copies, the backups ransomware removes first",
        None,
        shadow_delete
    ),
    // ---- cmd ---------------------------------------------------------------------------------
    rule!(
        "cmd.format",
        Critical,
        Cmd,
        "formats a drive, erasing it",
        None,
        |c| (c.program() == "format" || c.program() == "format.com").then(|| c
            .args()
            .first()
            .map(|a| a.text.clone())
            .unwrap_or_default())
    ),
    rule!(
        "cmd.delete_protected",
        Critical,
        Cmd,
        "deletes a drive root, a system folder or a user profile recursively",
        None,
        |c| cmd_delete(c, &[Target::Root, Target::SystemDir, Target::Home], true)
    ),
    rule!(
        "cmd.delete_drive_files",
        High,
        Cmd,
        "deletes files in a drive root or system folder",
        None,
        |c| cmd_delete(
            c,
            &[
                Target::Root,
                Target::SystemDir,
                Target::Home,
                Target::UnderSystem
            ],
            false
        )
    ),
    rule!(
        "cmd.delete_under_system",
        High,
        Cmd,
        "deletes system files recursively",
        None,
        |c| cmd_delete(c, &[Target::UnderSystem], true)
    ),
    rule!(
        "cmd.bcdedit_delete",
        Critical,
        Cmd,
        "deletes boot configuration entries, which can leave Windows unbootable",
        None,
        |c| (c.program().starts_with("bcdedit")
            && c.args()
                .iter()
                .any(|a| a.text.eq_ignore_ascii_case("/delete")))
        .then(String::new)
    ),
    rule!(
        "cmd.bcdedit_change",
        High,
        Cmd,
        "changes boot configuration",
        None,
        |c| (c.program().starts_with("bcdedit")
            && c.args().iter().any(|a| {
                let t = a.text.to_ascii_lowercase();
                t == "/deletevalue" || t == "/set"
            }))
        .then(String::new)
    ),
    rule!(
        "cmd.diskpart",
        High,
        Cmd,
        "runs diskpart, which can erase disks and partitions",
        None,
        |c| c.program().starts_with("diskpart").then(String::new)
    ),
    rule!(
        "cmd.registry_delete",
        High,
        Cmd,
        "deletes machine-wide registry keys",
        None,
        |c| (c.program().starts_with("reg")
            && c.args()
                .first()
                .is_some_and(|a| a.text.eq_ignore_ascii_case("delete"))
            && c.args().get(1).is_some_and(|a| {
                let t = a.text.to_ascii_lowercase();
                t.starts_with("hklm") || t.starts_with("hkey_local_machine")
            }))
        .then(String::new)
    ),
    rule!(
        "cmd.system_acl",
        High,
        Cmd,
        "takes ownership of or opens up permissions on system folders",
        None,
        cmd_system_acl
    ),
    // ---- issue 16, third corpus set: classes the older rules missed ------------------------
    rule!(
        "fs.replace_boot_or_shell",
        Critical,
        Posix,
        "overwrites or moves away the kernel, the boot loader, a login shell or init, so the machine no longer starts or nobody can log in",
        None,
        super::scoped::replace_boot_or_shell
    ),
    rule!(
        "fs.overwrite_system_file",
        High,
        Posix,
        "overwrites a system file or folder",
        Some("back it up first (`sudo cp FILE FILE.bak`) or edit it with sudoedit"),
        super::scoped::overwrite_system_file
    ),
    rule!(
        "fs.overwrite_user_file",
        Moderate,
        Posix,
        "replaces one of your files without a backup",
        Some("use `cp -i`/`mv -i` or `sed -i.bak`"),
        super::scoped::overwrite_user_file
    ),
    rule!(
        "disk.destroy_volume",
        Critical,
        Posix,
        "erases a whole disk, volume or storage pool",
        None,
        super::scoped::destroy_volume
    ),
    rule!(
        "perm.home_tree",
        Critical,
        Posix,
        "changes the permissions or owner of everything in your home folder, which breaks ssh, your keys and logins",
        None,
        super::scoped::perm_home_tree
    ),
    rule!(
        "perm.expose_keys",
        High,
        Posix,
        "makes private keys readable by other users",
        Some("keys should be 600 and ~/.ssh 700"),
        super::scoped::expose_keys
    ),
    rule!(
        "perm.setuid_in_temp",
        Critical,
        Posix,
        "makes a root-owned setuid program in a world-writable folder: a root shell for anyone",
        None,
        super::scoped::setuid_in_temp
    ),
    rule!(
        "perm.immutable_system",
        High,
        Posix,
        "freezes system files so that updates and tools can no longer change them",
        None,
        super::scoped::chattr_system
    ),
    rule!(
        "perm.lock_tree",
        Moderate,
        Posix,
        "removes every permission from a folder tree",
        None,
        super::scoped::lock_tree
    ),
    rule!(
        "perm.acl_everyone_full",
        Critical,
        Windows,
        "gives every user full control of the drive or Windows' own folders",
        None,
        super::scoped::acl_everyone_full
    ),
    rule!(
        "ps.system_acl",
        High,
        PowerShell,
        "takes ownership of or opens up permissions on system folders",
        None,
        cmd_system_acl
    ),
    rule!(
        "acct.takeover",
        Critical,
        All,
        "gives root or administrator rights away: an empty or known root password, a second uid 0, a guest or service account made an administrator",
        None,
        super::scoped::account_takeover
    ),
    rule!(
        "acct.lock_or_delete",
        High,
        All,
        "locks or deletes a user account",
        None,
        super::scoped::account_lock_or_delete
    ),
    rule!(
        "net.firewall_block_all",
        High,
        All,
        "sets the firewall to block all traffic, which cuts off this session and every service",
        None,
        super::scoped::firewall_block_all
    ),
    rule!(
        "sys.mount_over_system",
        High,
        All,
        "unmounts, hides or freezes filesystems the system or every user needs",
        None,
        super::scoped::mount_over_system
    ),
    rule!(
        "sys.force_unmount",
        Moderate,
        Posix,
        "unmounts a filesystem by force, losing what programs had not written yet",
        None,
        super::scoped::force_unmount
    ),
    rule!(
        "sched.wipe_all",
        High,
        All,
        "deletes every scheduled job",
        Some("list them first (`crontab -l`, `atq`, `schtasks /query`)"),
        super::scoped::jobs_wiped
    ),
    rule!(
        "sched.remove_job",
        Moderate,
        Windows,
        "deletes a scheduled task",
        None,
        super::scoped::job_removed
    ),
    rule!(
        "fs.mirror_broad",
        High,
        Posix,
        "mirrors onto the current folder, a system folder or another machine, deleting whatever the source lacks",
        Some("run it with --dry-run first"),
        super::scoped::mirror_broad
    ),
    rule!(
        "fs.mirror_protected",
        Critical,
        Windows,
        "mirrors onto a drive root, Windows or a user profile, deleting whatever the source lacks",
        None,
        |c| super::scoped::robocopy_mirror(c, &[Target::Root, Target::SystemDir, Target::Home])
    ),
    rule!(
        "fs.mirror_under_home",
        High,
        Windows,
        "mirrors onto a folder of your profile or the system, deleting whatever the source lacks",
        Some("run it with /L first to list what it would do"),
        |c| super::scoped::robocopy_mirror(c, &[Target::UnderHome, Target::UnderSystem])
    ),
    rule!(
        "fs.mirror",
        Moderate,
        Windows,
        "mirrors one folder onto another, deleting whatever the source lacks",
        Some("run it with /L first to list what it would do"),
        |c| super::scoped::robocopy_mirror(c, &[Target::Relative, Target::OtherAbsolute])
    ),
    rule!(
        "win.registry_core",
        Critical,
        Windows,
        "deletes the SYSTEM hive or Windows' own registry keys, so Windows no longer starts",
        None,
        super::scoped::registry_core
    ),
    rule!(
        "win.registry_user_all",
        High,
        Windows,
        "deletes every program's settings for this user",
        None,
        |c| super::scoped::registry_user(c, true)
    ),
    rule!(
        "win.registry_user_key",
        Moderate,
        Windows,
        "deletes a program's settings",
        Some("export the key first (`reg export`)"),
        |c| super::scoped::registry_user(c, false)
    ),
    rule!(
        "win.registry_weakens",
        High,
        Windows,
        "turns off Defender or opens remote desktop through the registry",
        None,
        super::scoped::registry_weakens
    ),
    rule!(
        "win.system_change",
        High,
        Windows,
        "deletes a service, kills a process Windows needs, disables every network adapter, clears event logs or recycle bins, excludes a whole drive from Defender or uninstalls every app",
        None,
        super::scoped::windows_system_change
    ),
    rule!(
        "win.boot_device",
        Critical,
        Windows,
        "removes the boot entry's disk or deletes a boot file, so Windows no longer starts",
        None,
        |c| super::scoped::bcd_boot_device(c).or_else(|| super::scoped::windows_boot_file(c))
    ),
    rule!(
        "sys.disrupt",
        High,
        Posix,
        "stops logins or remote access, or drops the machine to rescue mode",
        None,
        super::scoped::system_disrupt
    ),
    rule!(
        "net.reverse_shell",
        Critical,
        Posix,
        "hands a shell on this machine to another host",
        None,
        super::scoped::reverse_shell
    ),
    rule!(
        "net.remote_authorized_key",
        Critical,
        Posix,
        "adds a downloaded key to authorized_keys: whoever controls the URL can log in",
        None,
        super::scoped::remote_key
    ),
    rule!(
        "exec.mshta_remote",
        Critical,
        Cmd,
        "runs a remote HTML application with your rights",
        None,
        super::scoped::mshta_remote
    ),
    rule!(
        "k8s.delete_broad_extra",
        High,
        PosixAndPs,
        "deletes a resource type with every object of it, or drains a node deleting pods' local data",
        None,
        super::scoped::kube_broad_extra
    ),
    rule!(
        "container.rm_volumes",
        High,
        PosixAndPs,
        "removes containers together with their volumes and the data in them",
        None,
        super::scoped::container_rm_volumes
    ),
    rule!(
        "db.wholesale",
        High,
        PosixAndPs,
        "changes or deletes every row, document or key, or a whole keyspace or index",
        None,
        super::scoped::db_wholesale
    ),
    rule!(
        "cloud.delete_extra",
        High,
        All,
        "deletes cloud storage, accounts, volumes or resource groups",
        None,
        super::scoped::cloud_extra
    ),
    rule!(
        "cloud.delete_object",
        Moderate,
        All,
        "deletes a cloud storage object",
        None,
        super::scoped::cloud_object
    ),
    rule!(
        "fs.shred_sensitive",
        High,
        Posix,
        "shreds keys, system files, logs or everything here: nothing can bring them back",
        None,
        super::scoped::shred_broad
    ),
    rule!(
        "fs.sdelete",
        High,
        Windows,
        "securely deletes a profile folder or a drive: nothing can bring it back",
        None,
        super::scoped::sdelete
    ),
    rule!(
        "fs.empty_sensitive",
        High,
        All,
        "empties a log, a system file, the PowerShell profile or a dotfile in your home folder",
        None,
        super::scoped::emptied_sensitive
    ),
    rule!(
        "fs.empty_file",
        Moderate,
        All,
        "empties a file; what it held is gone",
        None,
        super::scoped::emptied_plain
    ),
    rule!(
        "vcs.delete_remote_main",
        High,
        PosixAndPs,
        "deletes or overwrites the main branch (or every branch) on the shared remote",
        None,
        |c| super::scoped::git_remote_delete(c, true)
    ),
    rule!(
        "vcs.delete_remote_branch",
        Moderate,
        PosixAndPs,
        "deletes a branch on the shared remote",
        None,
        |c| super::scoped::git_remote_delete(c, false)
    ),
    rule!(
        "vcs.checkout_force",
        Moderate,
        PosixAndPs,
        "throws away uncommitted changes",
        Some("`git stash` first"),
        super::scoped::git_checkout_force
    ),
    rule!(
        "dev.read_secret",
        High,
        Posix,
        "reads kernel memory or the keyboard, which exposes every secret typed or held on the machine",
        None,
        super::scoped::read_secret_device
    ),
    rule!(
        "pkg.remove_base",
        Critical,
        Posix,
        "removes a package the system cannot boot or log in without",
        None,
        super::scoped::remove_base_package
    ),
    rule!(
        "fs.bulk_delete_matching",
        Moderate,
        All,
        "deletes every file a search matches",
        Some("run the search alone first to see what it matches"),
        super::scoped::scoped_bulk_delete
    ),
    rule!(
        "win.move_protected",
        Critical,
        Windows,
        "moves a drive root, Windows or a user profile away",
        None,
        super::scoped::windows_move_protected
    ),
    rule!(
        "win.overwrite_system_file",
        High,
        Windows,
        "overwrites a file in a system folder",
        None,
        super::scoped::windows_overwrite_system
    ),
    rule!(
        "win.overwrite_user_file",
        Moderate,
        Windows,
        "replaces or empties one of your files",
        None,
        super::scoped::windows_overwrite_user
    ),
    rule!(
        "cmd.delete_here",
        High,
        Cmd,
        "deletes everything in the current or parent folder",
        None,
        |c| cmd_delete(c, &[Target::CwdAll, Target::Parent], true).or_else(|| cmd_delete(
            c,
            &[Target::CwdAll, Target::Parent],
            false
        ))
    ),
    rule!(
        "cmd.delete_under_home",
        Moderate,
        Cmd,
        "deletes a folder in your profile recursively",
        None,
        |c| cmd_delete(c, &[Target::UnderHome], true)
            .filter(|t| !t.to_ascii_lowercase().contains("\\temp"))
    ),
    rule!(
        "ps.pipeline_delete_here",
        High,
        PowerShell,
        "deletes everything the listing of this folder returns",
        None,
        super::scoped::ps_pipeline_delete_here
    ),
    rule!(
        "res.fill_disk",
        High,
        Posix,
        "writes endless data to a file until the disk or memory is full",
        Some("give dd a count="),
        super::scoped::fill_disk
    ),
    rule!(
        "vcs.delete_main_ref",
        High,
        PosixAndPs,
        "deletes the main branch",
        None,
        super::scoped::git_delete_main_ref
    ),
    rule!(
        "fs.delete_unknown_prefix",
        Moderate,
        Posix,
        "deletes recursively under a variable caro cannot know here",
        None,
        super::scoped::rm_unknown_prefix
    ),
    rule!(
        "exec.alias_body",
        Critical,
        Posix,
        "defines an alias that runs a critical command",
        None,
        |c| alias_body(c, RiskLevel::Critical)
    ),
    rule!(
        "exec.alias_body_high",
        High,
        Posix,
        "defines an alias that runs a dangerous command",
        None,
        |c| alias_body(c, RiskLevel::High)
    ),
    rule!(
        "acct.blank_root_password",
        Critical,
        Posix,
        "blanks root's password in /etc/shadow, so anyone can become root",
        None,
        super::scoped::blank_root_password
    ),
    rule!(
        "cmd.for_delete_all",
        High,
        Cmd,
        "deletes every file under the current folder",
        None,
        super::scoped::cmd_for_delete_all
    ),
];

// ---- helpers ---------------------------------------------------------------------------

/// `alias ls='rm -rf ~'`: the alias body is what later runs under the alias's name, so it is
/// rated as that command (exactly at `level`).
fn alias_body(c: &Cmd, level: RiskLevel) -> Option<String> {
    if c.program() != "alias" {
        return None;
    }
    c.args().iter().find_map(|a| {
        let (_, body) = a.text.split_once('=')?;
        let shell = c.shell.unwrap_or(ShellType::Bash);
        (super::validate(body, shell).risk == level).then(|| body.to_string())
    })
}

fn ps_is(c: &Cmd, names: &[&str]) -> bool {
    names.contains(&c.program())
}

/// The first of `c`'s `args` whose target is one of `want`, as the detail to show: a relative
/// one says which folder it is in, since that is what decided the verdict.
fn first_match(c: &Cmd, args: &[Arg], want: &[Target]) -> Option<String> {
    let at = c.at.as_deref();
    args.iter()
        .find(|a| want.contains(&classify_in(a, at)))
        .map(|a| describe(a, at))
}

fn describe(a: &Arg, at: Option<&super::Location>) -> String {
    if a.text.is_empty() {
        return "(empty)".to_string();
    }
    let relative = !(a.text.starts_with(['/', '\\', '~']) || a.text.get(1..2) == Some(":"));
    match at {
        Some(at) if relative => format!("{} in {}", a.text, at.cwd),
        _ => a.text.clone(),
    }
}

const PS_REMOVE: &[&str] = &["remove-item", "ri", "del", "erase", "rd", "rmdir", "rm"];

/// Deletion by `rm` (POSIX flags) or `Remove-Item` and its aliases (PowerShell parameters).
/// `recursive` selects recursive deletes, otherwise plain ones.
fn rm_target(c: &Cmd, recursive: bool, want: &[Target]) -> Option<String> {
    let p = c.program();
    let ps = c.shell == Some(ShellType::PowerShell);
    if !ps && matches!(p, "rm" | "unlink" | "srm") {
        let f = c.gnu_flags();
        let rec = f.has(&['r', 'R'], &["recursive"]);
        return if rec == recursive {
            first_match(c, &f.operands, want)
        } else {
            None
        };
    }
    if ps && PS_REMOVE.contains(&p) {
        // `-WhatIf` only prints what would be removed.
        if c.args()
            .iter()
            .any(|a| a.text.eq_ignore_ascii_case("-whatif"))
        {
            return None;
        }
        let mut rec = false;
        let mut targets = Vec::new();
        let mut args = c.args().iter();
        while let Some(a) = args.next() {
            let t = a.text.to_ascii_lowercase();
            if let Some(name) = t.strip_prefix('-') {
                let name = name.split(':').next().unwrap_or(name);
                if !name.is_empty() && "recurse".starts_with(name) {
                    rec = true;
                } else if ["path", "literalpath", "lp", "pspath"]
                    .iter()
                    .any(|n| n.starts_with(name) && name.len() >= 2)
                {
                    if let Some(v) = args.next() {
                        targets.push(v.clone());
                    }
                } else if ["filter", "include", "exclude"]
                    .iter()
                    .any(|n| n.starts_with(name))
                {
                    args.next();
                } else if name.contains('r') && name.len() <= 3 && !name.contains('e') {
                    // `rm -rf` typed into PowerShell on Unix runs /bin/rm.
                    rec = true;
                }
            } else {
                targets.push(a.clone());
            }
        }
        if targets.is_empty() {
            // `Get-ChildItem C:\ -Recurse | Remove-Item`
            if let Stdin::Pipe(up) = &c.stdin
                && ["get-childitem", "gci", "ls", "dir"].contains(&up.program())
            {
                targets.extend(
                    up.args()
                        .iter()
                        .filter(|a| !a.text.starts_with('-'))
                        .cloned(),
                );
                rec |= up
                    .args()
                    .iter()
                    .any(|a| a.text.to_ascii_lowercase().starts_with("-r"));
            }
        }
        if rec == recursive {
            return first_match(c, &targets, want);
        }
    }
    None
}

fn mv_protected(c: &Cmd) -> Option<String> {
    if c.program() != "mv" {
        return None;
    }
    let f = c.gnu_flags();
    let n = f.operands.len();
    if n < 2 {
        return None;
    }
    first_match(
        c,
        &f.operands[..n - 1],
        &[Target::Root, Target::SystemDir, Target::Home],
    )
}

/// How broad a `find` that deletes is. `Protected`: everything under the root, a system
/// folder or home; `System`: matching files across the system; `Here`: everything under the
/// working directory; `Matching`: the files its predicates select in the user's own folders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FindScope {
    Protected,
    System,
    Here,
    Matching,
}

fn find_delete(c: &Cmd, scope: FindScope) -> Option<String> {
    if c.program() != "find" {
        return None;
    }
    let call = ir::parse_find(c);
    // `-exec rm {} \;` deletes what it finds just as `-delete` does.
    let exec_deletes = call.execs.iter().any(|e| {
        e.first()
            .is_some_and(|p| matches!(ir::basename(&p.text), "rm" | "unlink" | "shred" | "srm"))
    });
    if !call.delete && !exec_deletes {
        return None;
    }
    let at = c.at.as_deref();
    let classes: Vec<(Target, &Arg)> = call.paths.iter().map(|p| (classify_in(p, at), p)).collect();
    let hit = |pred: &dyn Fn(Target) -> bool| {
        classes
            .iter()
            .find(|(t, _)| pred(*t))
            .map(|(_, p)| describe(p, at))
    };
    match scope {
        FindScope::Protected => hit(&|t| !call.filtered && t.is_catastrophic()),
        FindScope::System => hit(&|t| {
            (call.filtered && matches!(t, Target::Root | Target::SystemDir))
                || (!call.filtered && t == Target::UnderSystem)
        }),
        FindScope::Here => hit(&|t| !call.filtered && matches!(t, Target::CwdAll | Target::Parent)),
        FindScope::Matching => {
            // Only when no broader rule fires for the same command.
            let broader = [FindScope::Protected, FindScope::System, FindScope::Here]
                .into_iter()
                .any(|s| find_delete(c, s).is_some());
            if broader {
                return None;
            }
            hit(&|t| t != Target::PseudoDevice)
        }
    }
}

fn rsync_delete(c: &Cmd, protected: bool) -> Option<String> {
    if c.program() != "rsync" {
        return None;
    }
    let f = c.gnu_flags();
    if !f
        .long
        .iter()
        .any(|l| l.starts_with("delete") || l == "remove-source-files")
        || f.long.iter().any(|l| l == "dry-run")
        || f.short.contains(&'n')
    {
        return None;
    }
    let dest = f.operands.last()?;
    let catastrophic = classify_in(dest, c.at.as_deref()).is_catastrophic();
    (catastrophic == protected).then(|| dest.text.clone())
}

fn perm_recursive(c: &Cmd, want: &[Target]) -> Option<String> {
    if !matches!(c.program(), "chmod" | "chown" | "chgrp" | "setfacl") {
        return None;
    }
    let f = c.gnu_flags();
    if !f.has(&['R'], &["recursive"]) {
        return None;
    }
    let skip = usize::from(!f.long.iter().any(|l| l == "reference"));
    first_match(c, f.operands.get(skip..).unwrap_or(&[]), want)
}

fn is_open_mode(m: &str) -> bool {
    let m = m.trim_start_matches('0');
    matches!(
        m,
        "777"
            | "666"
            | ""
            | "000"
            | "a+rwx"
            | "ugo+rwx"
            | "o+w"
            | "a+w"
            | "o+rwx"
            | "+rwx"
            | "a=rwx"
            | "a-rwx"
            | "ugo-rwx"
            | "a="
    ) || (m.len() == 3 && m.ends_with('7') && m.chars().all(|c| c.is_ascii_digit()))
        || (m.len() == 4 && m.chars().all(|c| c.is_ascii_digit()) && m.ends_with("777"))
}

fn chmod_system_mode(c: &Cmd) -> Option<String> {
    if c.program() != "chmod" {
        return None;
    }
    let f = c.gnu_flags();
    let mode = f.operands.first()?;
    if !is_open_mode(&mode.text) {
        return None;
    }
    first_match(
        c,
        &f.operands[1..],
        &[
            Target::Root,
            Target::SystemDir,
            Target::UnderSystem,
            Target::Home,
        ],
    )
}

fn chmod_tree_777(c: &Cmd) -> Option<String> {
    if c.program() != "chmod" || !c.gnu_flags().has(&['R'], &["recursive"]) {
        return None;
    }
    let f = c.gnu_flags();
    let mode = f.operands.first()?;
    let m = mode.text.trim_start_matches('0');
    (m == "777" || m == "a+rwx" || m == "ugo+rwx" || m == "o+w").then(String::new)
}

/// A write (redirect, `tee`, `dd of=`, `cp` destination) whose target satisfies `pred`.
fn writes_to(c: &Cmd, pred: impl Fn(&str) -> bool) -> Option<String> {
    for r in &c.redirects {
        if r.op != RedirOp::Read && pred(&r.target.text) {
            return Some(r.target.text.clone());
        }
    }
    match c.program() {
        "tee" => c
            .gnu_flags()
            .operands
            .into_iter()
            .find(|a| pred(&a.text))
            .map(|a| a.text),
        "dd" => c.args().iter().find_map(|a| {
            a.text
                .strip_prefix("of=")
                .filter(|t| pred(t))
                .map(str::to_string)
        }),
        "cp" | "install" | "pv" | "cat" => {
            let f = c.gnu_flags();
            if c.program() == "cp" || c.program() == "install" {
                f.operands
                    .last()
                    .filter(|a| f.operands.len() >= 2 && pred(&a.text))
                    .map(|a| a.text.clone())
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_device(t: &str) -> bool {
    classify_text(t, false) == Target::Device
}

fn write_device(c: &Cmd) -> Option<String> {
    writes_to(c, is_device)
}

fn device_operand(c: &Cmd) -> Option<String> {
    c.args()
        .iter()
        .find(|a| is_device(&a.text) || a.text.strip_prefix("of=").is_some_and(is_device))
        .map(|a| a.text.clone())
}

fn mkfs_device(c: &Cmd) -> Option<String> {
    let p = c.program();
    let mkfs = p == "mkfs"
        || p.starts_with("mkfs.")
        || p == "mke2fs"
        || p == "mkswap"
        || p.starts_with("newfs")
        || p == "mkntfs"
        || p == "mkdosfs";
    if !mkfs || super::scoped::mkfs_dry_run(c) {
        return None;
    }
    device_operand(c)
}

fn wipe_device(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    match c.program() {
        "wipefs" | "blkdiscard" | "shred" | "scrub" => device_operand(c),
        "sgdisk" | "gdisk" => {
            let f = c.gnu_flags();
            let destructive = f.has(
                &['Z', 'z', 'o', 'd', 'n', 'g'],
                &["zap-all", "zap", "clear", "delete", "new", "mbrtogpt"],
            );
            if destructive { device_operand(c) } else { None }
        }
        "parted" => {
            let destructive = args
                .iter()
                .any(|a| ["mklabel", "mktable", "mkpart", "rm", "resizepart", "mkfs"].contains(a));
            if destructive { device_operand(c) } else { None }
        }
        "sfdisk" => {
            let f = c.gnu_flags();
            let read_only = f.has(
                &['l', 'd', 's', 'V'],
                &["list", "dump", "show-size", "verify", "json"],
            );
            if read_only { None } else { device_operand(c) }
        }
        "hdparm" => args
            .iter()
            .any(|a| a.starts_with("--security-erase") || a.starts_with("--trim-sector"))
            .then(|| device_operand(c).unwrap_or_default()),
        "nvme" => (args
            .first()
            .is_some_and(|a| *a == "format" || *a == "sanitize"))
        .then(String::new),
        "diskutil" => args
            .first()
            .filter(|a| {
                let a = a.to_ascii_lowercase();
                [
                    "erasedisk",
                    "erasevolume",
                    "zerodisk",
                    "randomdisk",
                    "secureerase",
                    "partitiondisk",
                    "reformat",
                    "apfs",
                ]
                .contains(&a.as_str())
                    && (a != "apfs"
                        || args
                            .get(1)
                            .is_some_and(|b| b.to_ascii_lowercase().starts_with("delete")))
            })
            .map(|a| a.to_string()),
        "cryptsetup" => args
            .iter()
            .any(|a| *a == "luksFormat" || *a == "erase" || *a == "luksErase")
            .then(|| device_operand(c).unwrap_or_default()),
        _ => None,
    }
}

fn partition_editor(c: &Cmd) -> Option<String> {
    let p = c.program();
    if !matches!(p, "fdisk" | "cfdisk" | "parted" | "gdisk" | "cgdisk") {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let read_only = args.iter().any(|a| {
        matches!(
            *a,
            "-l" | "--list" | "print" | "-p" | "--print" | "-s" | "unit" | "-h" | "--help"
        )
    });
    if read_only || wipe_device(c).is_some() {
        return None;
    }
    device_operand(c)
}

fn kill_init(c: &Cmd) -> Option<String> {
    match c.program() {
        "kill" => {
            let args = c.args();
            let mut i = 0;
            // A leading signal spec: -9, -KILL, -s KILL, -n 9.
            if let Some(a) = args.first() {
                if a.text == "-s" || a.text == "-n" {
                    i = 2;
                } else if a.text.starts_with('-') && a.text != "--" && args.len() > 1 {
                    i = 1;
                }
            }
            args.iter()
                .skip(i)
                .map(|a| a.text.as_str())
                .filter(|t| *t != "--")
                .find(|t| *t == "1" || *t == "-1")
                .map(str::to_string)
        }
        "killall" | "pkill" | "killall5" => {
            if c.program() == "killall5" {
                return Some(String::new());
            }
            c.gnu_flags()
                .operands
                .iter()
                .find(|a| {
                    matches!(
                        a.text.as_str(),
                        "init" | "systemd" | "launchd" | "kernel_task"
                    )
                })
                .map(|a| a.text.clone())
        }
        _ => None,
    }
}

fn shutdown(c: &Cmd) -> Option<String> {
    let args: Vec<String> = c
        .args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let p = c.program();
    match p {
        "shutdown" | "shutdown.exe" => {
            let cancel = args
                .iter()
                .any(|a| a == "-c" || a == "/a" || a == "-a" || a == "--help" || a == "/?");
            (!cancel).then(String::new)
        }
        "reboot" | "halt" | "poweroff" => (!args.iter().any(|a| a == "--help")).then(String::new),
        "init" | "telinit" => args.first().filter(|a| *a == "0" || *a == "6").cloned(),
        "systemctl" | "loginctl" => args
            .iter()
            .find(|a| ["poweroff", "reboot", "halt", "kexec", "soft-reboot"].contains(&a.as_str()))
            .cloned(),
        "stop-computer" | "restart-computer" => Some(String::new()),
        _ => None,
    }
}

fn sensitive(t: &str) -> bool {
    classify_text(t, false) == Target::SensitiveFile
}

fn overwrite_sensitive(c: &Cmd) -> Option<String> {
    for r in &c.redirects {
        if r.op == RedirOp::Write && sensitive(&r.target.text) {
            return Some(r.target.text.clone());
        }
    }
    let f = c.gnu_flags();
    match c.program() {
        "tee" if !f.has(&['a'], &["append"]) => f
            .operands
            .iter()
            .find(|a| sensitive(&a.text))
            .map(|a| a.text.clone()),
        "cp" | "mv" | "install" | "ln" => f
            .operands
            .last()
            .filter(|a| f.operands.len() >= 2 && sensitive(&a.text))
            .map(|a| a.text.clone()),
        "rm" | "shred" | "unlink" | "truncate" => f
            .operands
            .iter()
            .find(|a| sensitive(&a.text))
            .map(|a| a.text.clone()),
        "dd" => c.args().iter().find_map(|a| {
            a.text
                .strip_prefix("of=")
                .filter(|t| sensitive(t))
                .map(str::to_string)
        }),
        "chmod" => {
            let mode = f.operands.first()?;
            if is_open_mode(&mode.text) {
                f.operands[1..]
                    .iter()
                    .find(|a| sensitive(&a.text))
                    .map(|a| a.text.clone())
            } else {
                None
            }
        }
        _ => None,
    }
}

fn modify_sensitive(c: &Cmd) -> Option<String> {
    if overwrite_sensitive(c).is_some() {
        return None;
    }
    for r in &c.redirects {
        if r.op == RedirOp::Append && sensitive(&r.target.text) {
            return Some(r.target.text.clone());
        }
    }
    let f = c.gnu_flags();
    match c.program() {
        "tee" => f
            .operands
            .iter()
            .find(|a| sensitive(&a.text))
            .map(|a| a.text.clone()),
        "sed" | "perl" if f.short.contains(&'i') || f.long.iter().any(|l| l == "in-place") => f
            .operands
            .iter()
            .find(|a| sensitive(&a.text))
            .map(|a| a.text.clone()),
        "chmod" | "chown" | "chattr" => f
            .operands
            .iter()
            .skip(1)
            .find(|a| sensitive(&a.text) && a.text.contains("sudoers"))
            .map(|a| a.text.clone()),
        _ => None,
    }
}

fn sudoers_nopasswd(c: &Cmd) -> Option<String> {
    let into_sudoers = c
        .redirects
        .iter()
        .any(|r| r.op != RedirOp::Read && r.target.text.contains("sudoers"))
        || (c.program() == "tee" && c.args().iter().any(|a| a.text.contains("sudoers")));
    if !into_sudoers {
        return None;
    }
    let mentions = |cmd: &Cmd| cmd.argv.iter().any(|a| a.text.contains("NOPASSWD"));
    let stdin_mentions = match &c.stdin {
        Stdin::Literal(s) => s.contains("NOPASSWD"),
        _ => false,
    };
    (mentions(c) || stdin_mentions || c.upstream().any(mentions)).then(String::new)
}

fn firewall_off(c: &Cmd) -> Option<String> {
    let args: Vec<String> = c
        .args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let has = |x: &str| args.iter().any(|a| a == x);
    let hit = match c.program() {
        "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" => {
            // `-P` (policy) is not `-p` (protocol): `-A INPUT -p tcp … -j ACCEPT` opens one port.
            let raw: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
            has("-f")
                || has("--flush")
                || raw.windows(3).any(|w| {
                    (w[0] == "-P" || w[0] == "--policy")
                        && w[1].eq_ignore_ascii_case("input")
                        && w[2].eq_ignore_ascii_case("accept")
                })
        }
        "nft" => has("flush") && has("ruleset"),
        "ufw" => has("disable") || has("reset"),
        "pfctl" => has("-d"),
        "systemctl" | "service" => {
            (has("stop") || has("disable") || has("mask"))
                && args.iter().any(|a| {
                    [
                        "firewalld",
                        "ufw",
                        "nftables",
                        "iptables",
                        "firewalld.service",
                        "ufw.service",
                    ]
                    .contains(&a.as_str())
                })
        }
        "netsh" | "netsh.exe" => has("advfirewall") && has("off"),
        "set-netfirewallprofile" => {
            args.windows(2)
                .any(|w| w[0].starts_with("-enabled") && (w[1] == "false" || w[1] == "$false"))
                || args.iter().any(|a| a == "-enabled:$false")
        }
        "disable-netfirewallrule" => has("*") || args.is_empty(),
        _ => false,
    };
    hit.then(String::new)
}

fn sshd_stop(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let is_ssh = |a: &&str| {
        matches!(
            *a,
            "ssh" | "sshd" | "ssh.service" | "sshd.service" | "ssh.socket"
        )
    };
    match c.program() {
        "systemctl" => (args
            .iter()
            .any(|a| matches!(*a, "stop" | "disable" | "mask" | "kill"))
            && args.iter().any(is_ssh))
        .then(String::new),
        "service" => (args.first().is_some_and(is_ssh)
            && args.get(1).is_some_and(|a| *a == "stop"))
        .then(String::new),
        "launchctl" => (args.iter().any(|a| *a == "unload" || *a == "disable")
            && args.iter().any(|a| a.contains("ssh")))
        .then(String::new),
        _ => None,
    }
}

fn protection_off(c: &Cmd) -> Option<String> {
    let args: Vec<String> = c
        .args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let hit = match c.program() {
        "set-mppreference" => {
            args.iter().any(|a| a.starts_with("-disable"))
                && !args.iter().any(|a| a == "$false" || a == "0")
        }
        "spctl" => args
            .iter()
            .any(|a| a == "--master-disable" || a == "--global-disable"),
        "csrutil" => args.first().is_some_and(|a| a == "disable"),
        "stop-service" | "sc" | "sc.exe" | "net" => {
            args.iter()
                .any(|a| a == "windefend" || a == "mpssvc" || a == "wscsvc")
                && !args.iter().any(|a| a == "query" || a == "start")
        }
        _ => false,
    };
    hit.then(String::new)
}

const DOWNLOADERS: &[&str] = &[
    "curl",
    "wget",
    "fetch",
    "http",
    "https",
    "aria2c",
    "lwp-request",
    "GET",
    "lynx",
    "links",
    "iwr",
    "invoke-webrequest",
    "irm",
    "invoke-restmethod",
    "nc",
    "ncat",
    "socat",
    "ftp",
    "tftp",
    "scp",
    "gh",
];
const CODE_RUNNERS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "mksh",
    "ash",
    "fish",
    "csh",
    "tcsh",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "pwsh",
    "powershell",
    "iex",
    "invoke-expression",
    "deno",
    "bun",
    "lua",
    "tclsh",
    "busybox",
];

fn is_runner(p: &str) -> bool {
    CODE_RUNNERS.contains(&p) || p.starts_with("python3.")
}

fn remote_pipe(c: &Cmd) -> Option<String> {
    let p = c.program();
    // fish's `source` with no file reads its script from stdin: `curl … | source`.
    if p == "source" && c.args().is_empty() {
        return c
            .upstream()
            .find(|u| DOWNLOADERS.contains(&u.program()))
            .map(|u| format!("{} | source", u.program()));
    }
    if !is_runner(p) {
        return None;
    }
    let stdin_script = if ir::is_shell(p) {
        ir::reads_script_from_stdin(c)
    } else {
        !matches!(c.stdin, Stdin::Inherited)
            && c.gnu_flags().operands.iter().all(|a| a.text == "-")
            && !c
                .args()
                .iter()
                .any(|a| matches!(a.text.as_str(), "-c" | "-e" | "-E" | "-r" | "-m"))
    };
    if !stdin_script && p != "iex" && p != "invoke-expression" {
        return None;
    }
    c.upstream()
        .find(|u| DOWNLOADERS.contains(&u.program()))
        .map(|u| format!("{} | {p}", u.program()))
}

fn remote_subst(c: &Cmd) -> Option<String> {
    let p = c.program();
    if !(is_runner(p) || matches!(p, "eval" | "source" | "." | "exec")) {
        return None;
    }
    c.args()
        .iter()
        .find(|a| a.from.iter().any(|f| DOWNLOADERS.contains(&f.as_str())))
        .map(|a| a.from.join(","))
}

/// `git [-C dir] [-c k=v] SUB args…`: the args after the subcommand.
fn git_sub<'a>(c: &'a Cmd, sub: &str) -> Option<&'a [Arg]> {
    if c.program() != "git" {
        return None;
    }
    let args = c.args();
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text.as_str();
        if t == "-C" || t == "-c" || t == "--git-dir" || t == "--work-tree" {
            i += 2;
        } else if t.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    (args.get(i)?.text == sub).then(|| &args[i + 1..])
}

fn force_push(c: &Cmd, main: bool) -> Option<String> {
    let args = git_sub(c, "push")?;
    let mut force = false;
    let mut lease = false;
    let mut operands = Vec::new();
    for a in args {
        let t = a.text.as_str();
        if t == "--force"
            || t == "-f"
            || (t.starts_with('-') && !t.starts_with("--") && t.contains('f'))
        {
            force = true;
        } else if t.starts_with("--force-with-lease") || t == "--force-if-includes" {
            lease = true;
        } else if !t.starts_with('-') {
            operands.push(t);
        }
    }
    let refspecs: Vec<&str> = operands.iter().skip(1).copied().collect();
    if refspecs.iter().any(|r| r.starts_with('+')) {
        force = true;
    }
    let is_main = |r: &&str| {
        let dest = r.trim_start_matches('+').rsplit(':').next().unwrap_or(r);
        let dest = dest.trim_start_matches("refs/heads/");
        matches!(
            dest,
            "main" | "master" | "trunk" | "production" | "prod" | "release"
        )
    };
    let to_main = refspecs.iter().any(is_main);
    let branch_known = !refspecs.is_empty();
    if main {
        (force && to_main).then(|| refspecs.join(" "))
    } else {
        // Plain force to an unnamed or feature branch, or a lease-protected force to main.
        let _ = branch_known;
        ((force && !to_main) || (lease && !force && to_main)).then(String::new)
    }
}

fn git_clean(c: &Cmd, broad: bool) -> Option<String> {
    let args = git_sub(c, "clean")?;
    let mut short = String::new();
    let mut long = Vec::new();
    for a in args {
        if let Some(l) = a.text.strip_prefix("--") {
            long.push(l.to_string());
        } else if let Some(s) = a.text.strip_prefix('-') {
            short.push_str(s);
        }
    }
    if short.contains('n') || long.iter().any(|l| l == "dry-run") || short.contains('i') {
        return None;
    }
    let force = short.contains('f') || long.iter().any(|l| l == "force");
    let wide = short.contains('d') || short.contains('x') || short.contains('X');
    (force && wide == broad).then(String::new)
}

const SYSTEM_PROGRAMS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "python", "python3", "perl", "ruby",
    "node", "php", "find", "vim", "vi", "nano", "less", "more", "awk", "gawk", "env", "cp", "mv",
    "tar", "zip", "nmap", "tee", "dd", "cat", "chmod", "chown", "sudo", "su", "passwd",
];

/// The files a `chmod` gives a setuid or setgid bit (`u+s`, `g=s`, `4755`, `7755`), if it does.
pub(crate) fn setid_targets(c: &Cmd) -> Option<Vec<Arg>> {
    if c.program() != "chmod" {
        return None;
    }
    let f = c.gnu_flags();
    let mode = f.operands.first()?.text.as_str();
    let digits = mode.len() == 4 && mode.chars().all(|d| d.is_ascii_digit());
    // The leading octal digit: 4 is setuid, 2 setgid, 1 sticky; any of 2..=7 sets one of the two.
    let setid = mode.contains("+s")
        || mode.contains("=s")
        || (digits && (mode.as_bytes()[0] - b'0') & 6 != 0);
    setid.then(|| f.operands[1..].to_vec())
}

fn setuid_program(c: &Cmd) -> Option<String> {
    setid_targets(c)?
        .iter()
        .find(|a| {
            let name = ir::basename(&a.text);
            let sys = matches!(
                classify_in(a, c.at.as_deref()),
                Target::SystemDir | Target::UnderSystem
            );
            sys || SYSTEM_PROGRAMS.contains(&name)
        })
        .map(|a| a.text.clone())
}

const ESSENTIAL_PACKAGES: &[&str] = &[
    "systemd",
    "libc6",
    "glibc",
    "libc-bin",
    "bash",
    "coreutils",
    "sudo",
    "apt",
    "dpkg",
    "rpm",
    "yum",
    "dnf",
    "pacman",
    "util-linux",
    "login",
    "passwd",
    "init",
    "base-files",
    "base-passwd",
    "grub",
    "grub2",
    "grub-pc",
    "grub-efi",
    "openssh-server",
    "linux-image",
    "kernel",
    "kernel-core",
    "linux",
    "sysvinit",
    "upstart",
    "libpam-modules",
    "pam",
    "python3",
    "libssl3",
    "openssl",
    "ca-certificates",
    "filesystem",
    "shadow",
    "e2fsprogs",
];

fn remove_essential_package(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let removing = match c.program() {
        "apt" | "apt-get" | "aptitude" => args
            .iter()
            .any(|a| matches!(*a, "remove" | "purge" | "autoremove")),
        "yum" | "dnf" | "zypper" | "microdnf" => {
            args.iter().any(|a| matches!(*a, "remove" | "erase" | "rm"))
        }
        "pacman" => args.iter().any(|a| a.starts_with("-R")),
        "rpm" => args.iter().any(|a| *a == "-e" || *a == "--erase"),
        "dpkg" => {
            if args.iter().any(|a| a.contains("force-remove-essential")) {
                return Some("--force-remove-essential".into());
            }
            args.iter()
                .any(|a| matches!(*a, "-r" | "-P" | "--remove" | "--purge"))
        }
        "snap" => args.first().is_some_and(|a| *a == "remove"),
        _ => false,
    };
    if !removing {
        return None;
    }
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .find(|a| {
            let name = a.split([':', '=']).next().unwrap_or(a);
            ESSENTIAL_PACKAGES.contains(&name)
                || name.starts_with("linux-image")
                || name.starts_with("kernel-")
                || name.starts_with("grub")
                || name.starts_with("libc6")
        })
        .map(|a| a.to_string())
}

fn is_container_cli(p: &str) -> bool {
    matches!(p, "docker" | "podman" | "nerdctl")
}

fn container_volumes(c: &Cmd) -> Option<String> {
    let p = c.program();
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |w: &str| args.contains(&w);
    let volumes = is_container_cli(p)
        && ((has("volume") && (has("rm") || has("prune") || has("remove")))
            || (has("system") && has("prune") && has("--volumes"))
            || (has("compose") && has("down") && (has("-v") || has("--volumes"))));
    let compose = p == "docker-compose" && has("down") && (has("-v") || has("--volumes"));
    (volumes || compose).then(|| c.display())
}

fn container_delete(c: &Cmd) -> Option<String> {
    if !is_container_cli(c.program()) || container_volumes(c).is_some() {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |w: &str| args.contains(&w);
    let forced = args.iter().any(|a| {
        *a == "-f"
            || *a == "--force"
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
    });
    let removes = has("rm") || has("rmi") || has("remove");
    let prunes = has("prune");
    let kills_all = (has("kill") || has("stop")) && args.iter().any(|a| a.starts_with("$("));
    ((removes && forced) || prunes || kills_all).then(|| c.display())
}

fn kube_delete_named(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "kubectl" | "oc") || kube_delete_broad(c).is_some() {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let dry = args.iter().any(|a| a.starts_with("--dry-run"));
    (args.contains(&"delete") && !dry).then(|| c.display())
}

fn firewall_drop_all(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    match c.program() {
        "iptables" | "ip6tables" => {
            let policy_drop = args.windows(3).any(|w| {
                (w[0] == "-P" || w[0] == "--policy")
                    && matches!(w[1], "INPUT" | "OUTPUT" | "FORWARD")
                    && matches!(w[2], "DROP" | "REJECT")
            });
            let flush = args.iter().any(|a| matches!(*a, "-F" | "--flush"));
            (policy_drop || flush).then(|| c.display())
        }
        "nft" => (args.contains(&"flush") && args.contains(&"ruleset")).then(|| c.display()),
        _ => None,
    }
}

/// A file emptied: `> f`, `: > f`, `true > f`, `cat /dev/null > f`, `truncate -s 0 f`.
/// `sensitive` selects logs, system files and dotfiles in the home folder.
fn truncated_file(c: &Cmd, sensitive: bool) -> Option<String> {
    let p = c.program();
    let mut targets: Vec<&Arg> = Vec::new();
    let empty_writer = matches!(p, "" | ":" | "true")
        || (p == "cat" && c.args().iter().all(|a| a.text == "/dev/null"))
        || (p == "echo" && c.args().iter().all(|a| a.text == "-n"));
    if empty_writer {
        targets.extend(
            c.redirects
                .iter()
                .filter(|r| r.op == RedirOp::Write)
                .map(|r| &r.target),
        );
    }
    if p == "truncate" {
        let args = c.args();
        let zero = args.windows(2).any(|w| {
            (w[0].text == "-s" || w[0].text == "--size")
                && w[1].text.trim_start_matches('0').is_empty()
        }) || args.iter().any(|a| a.text == "-s0" || a.text == "--size=0");
        if zero {
            let mut skip = false;
            for a in args {
                if skip {
                    skip = false;
                    continue;
                }
                if a.text == "-s" || a.text == "--size" || a.text == "-r" {
                    skip = true;
                } else if !a.text.starts_with('-') {
                    targets.push(a);
                }
            }
        }
    }
    let at = c.at.as_deref();
    targets
        .into_iter()
        .filter(|t| classify_text(&t.text, false) != Target::PseudoDevice)
        .find(|t| {
            let class = classify_in(t, at);
            let dotfile = ir::basename(&t.text).starts_with('.')
                && matches!(class, Target::UnderHome | Target::Relative);
            let is_sensitive = dotfile
                || matches!(
                    class,
                    Target::UnderSystem | Target::SystemDir | Target::SensitiveFile
                )
                || t.text.contains("/var/log")
                || t.text.contains("/.ssh/");
            is_sensitive == sensitive
        })
        .map(|t| describe(t, at))
}

fn git_destroy_history(c: &Cmd) -> Option<String> {
    if c.program() == "rm" && c.gnu_flags().has(&['r', 'R'], &["recursive"]) {
        return c
            .gnu_flags()
            .operands
            .iter()
            .find(|a| a.text.trim_end_matches('/') == ".git" || a.text.ends_with("/.git"))
            .map(|a| a.text.clone());
    }
    if c.program() != "git" {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |w: &str| args.contains(&w);
    let rewrite = has("filter-branch") || has("filter-repo");
    let expire = has("reflog")
        && has("expire")
        && args
            .iter()
            .any(|a| a.starts_with("--expire=now") || a.starts_with("--expire-unreachable=now"));
    let prune = has("gc")
        && args
            .iter()
            .any(|a| *a == "--prune=now" || *a == "--prune=all");
    (rewrite || expire || prune).then(|| c.display())
}

fn git_discard_work(c: &Cmd) -> Option<String> {
    if c.program() != "git" {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let sub = args.iter().position(|a| !a.starts_with('-'))?;
    let rest = &args[sub + 1..];
    let has = |w: &str| rest.contains(&w);
    let hit = match args[sub] {
        "stash" => has("clear") || has("drop"),
        "branch" => rest
            .iter()
            .any(|a| *a == "-D" || (a.starts_with("-d") && has("--force"))),
        "checkout" => has("--") && rest.iter().any(|a| *a == "." || *a == "*"),
        "restore" => !has("--staged") && rest.iter().any(|a| *a == "." || *a == "*"),
        "update-ref" => has("-d"),
        _ => false,
    };
    hit.then(|| c.display())
}

/// Programs that read a file's bytes (as opposed to naming it: `ls`, `mount`, `sgdisk -p`).
const BYTE_READERS: &[&str] = &[
    "cat",
    "head",
    "tail",
    "xxd",
    "hexdump",
    "od",
    "strings",
    "less",
    "more",
    "tac",
    "base64",
    "nc",
    "ncat",
    "socat",
    "pv",
    "gzip",
    "zstd",
    "xz",
    "bzip2",
    "md5sum",
    "sha256sum",
    "cp",
];

fn read_raw_device(c: &Cmd) -> Option<String> {
    let reader = BYTE_READERS.contains(&c.program());
    let raw = |t: &str| {
        let t = t.strip_prefix("if=").unwrap_or(t);
        let secret = matches!(t, "/dev/mem" | "/dev/kmem" | "/dev/port");
        // `dd if=/dev/sda of=disk.img` is how disks are backed up; reading one raw elsewhere
        // (`cat /dev/sda | nc …`) is how they are copied off the machine.
        (secret && (reader || c.program() == "dd"))
            || (reader && classify_text(t, false) == Target::Device)
    };
    c.args()
        .iter()
        .map(|a| a.text.as_str())
        .chain(
            c.redirects
                .iter()
                .filter(|r| r.op == RedirOp::Read)
                .map(|r| r.target.text.as_str()),
        )
        .find(|t| raw(t) && !t.starts_with("of="))
        .map(str::to_string)
}

fn db_flush(c: &Cmd) -> Option<String> {
    let args: Vec<String> = c
        .args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "redis-cli" | "valkey-cli" | "keydb-cli" => has("flushall") || has("flushdb"),
        "dropdb" => true,
        "mysqladmin" => has("drop"),
        "mongo" | "mongosh" => args.iter().any(|a| a.contains("dropdatabase")),
        _ => false,
    };
    hit.then(|| c.display())
}

fn kube_delete_broad(c: &Cmd) -> Option<String> {
    if c.program() != "kubectl" && c.program() != "oc" {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let pos = args.iter().position(|a| *a == "delete")?;
    let rest = &args[pos + 1..];
    let ns = rest.first().is_some_and(|k| {
        matches!(*k, "namespace" | "namespaces" | "ns")
            || k.starts_with("namespace/")
            || k.starts_with("ns/")
    });
    let all = rest
        .iter()
        .any(|a| matches!(*a, "--all" | "-A" | "--all-namespaces"));
    (ns || all).then(|| rest.join(" "))
}

fn iac_destroy(c: &Cmd) -> Option<String> {
    if super::scoped::infra_dry_run(c) {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let hit = match c.program() {
        "terraform" | "tofu" | "terragrunt" => {
            args.iter().any(|a| *a == "destroy" || *a == "-destroy")
        }
        "pulumi" | "cdk" | "cdktf" => args.first().is_some_and(|a| *a == "destroy"),
        "sam" | "serverless" | "sls" => args.iter().any(|a| *a == "delete" || *a == "remove"),
        _ => false,
    };
    hit.then(String::new)
}

fn destructive_sql(c: &Cmd) -> Option<String> {
    let p = c.program();
    match p {
        "dropdb" => return Some(String::new()),
        "mysqladmin" => return c.args().iter().any(|a| a.text == "drop").then(String::new),
        "redis-cli" => {
            return c
                .args()
                .iter()
                .any(|a| {
                    a.text.eq_ignore_ascii_case("flushall")
                        || a.text.eq_ignore_ascii_case("flushdb")
                })
                .then(String::new);
        }
        _ => {}
    }
    let clients = [
        "psql",
        "mysql",
        "mariadb",
        "sqlite3",
        "sqlcmd",
        "mongo",
        "mongosh",
        "cockroach",
        "clickhouse-client",
        "duckdb",
        "invoke-sqlcmd",
        "bq",
        "snowsql",
    ];
    if !clients.contains(&p) {
        return None;
    }
    let mut texts: Vec<String> = c.args().iter().map(|a| a.text.clone()).collect();
    match &c.stdin {
        Stdin::Literal(s) => texts.push(s.clone()),
        Stdin::Pipe(up) => {
            if let Some((s, _)) = ir::literal_output(up) {
                texts.push(s);
            }
        }
        Stdin::Inherited => {}
    }
    for t in texts {
        let sql = t
            .to_ascii_uppercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for kw in [
            "DROP DATABASE",
            "DROP SCHEMA",
            "DROP TABLE",
            "TRUNCATE ",
            "DROPDATABASE(",
            "DROP OWNED",
            ".DROP()",
        ] {
            if sql.contains(kw) {
                return Some(kw.trim().to_ascii_lowercase());
            }
        }
        // DELETE without WHERE empties the table.
        for stmt in sql.split(';') {
            let s = stmt.trim();
            if s.starts_with("DELETE FROM") && !s.contains(" WHERE ") {
                return Some("delete without where".into());
            }
        }
    }
    None
}

fn cloud_storage_delete(c: &Cmd) -> Option<String> {
    if super::scoped::infra_dry_run(c) {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |x: &str| args.contains(&x);
    let hit = match c.program() {
        "aws" => {
            (has("s3") && (has("rb") || (has("rm") && has("--recursive"))))
                || (has("s3api") && has("delete-bucket"))
        }
        "gsutil" => {
            has("rb")
                || (has("rm")
                    && args.iter().any(|a| {
                        *a == "-r"
                            || *a == "-rf"
                            || *a == "-R"
                            || a.ends_with("/**")
                            || a.ends_with("/*")
                    }))
        }
        "gcloud" => {
            has("storage")
                && (has("rm") && (has("-r") || has("--recursive"))
                    || (has("buckets") && has("delete")))
        }
        "az" => {
            has("storage") && has("delete") && (has("container") || has("account") || has("blob"))
        }
        "mc" => has("rb") || (has("rm") && (has("--recursive") || has("-r"))),
        "rclone" => has("purge") || has("delete"),
        _ => false,
    };
    hit.then(String::new)
}

fn cloud_resources_delete(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |x: &str| args.contains(&x);
    let hit = match c.program() {
        "aws" => args.iter().any(|a| {
            a.starts_with("terminate-instances")
                || a.starts_with("delete-db-instance")
                || a.starts_with("delete-db-cluster")
                || *a == "delete-stack"
                || *a == "delete-cluster"
                || *a == "delete-table"
        }),
        "gcloud" => {
            has("delete") && (has("projects") || has("instances") || has("clusters") || has("sql"))
        }
        "az" => has("delete") && (has("group") || has("vm") || has("aks")),
        "doctl" => has("delete") && (has("droplet") || has("cluster") || has("database")),
        _ => false,
    };
    hit.then(String::new)
}

fn shadow_delete(c: &Cmd) -> Option<String> {
    let args: Vec<String> = c
        .args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let has = |x: &str| args.iter().any(|a| a == x);
    let hit = match c.program() {
        "vssadmin" | "vssadmin.exe" => has("delete") && has("shadows"),
        "wmic" | "wmic.exe" => has("shadowcopy") && has("delete"),
        "remove-wmiobject" | "remove-ciminstance" => c.upstream().any(|u| {
            u.args()
                .iter()
                .any(|a| a.text.to_ascii_lowercase().contains("shadowcopy"))
        }),
        "wbadmin" | "wbadmin.exe" => {
            has("delete") && (has("catalog") || has("systemstatebackup") || has("backup"))
        }
        _ => false,
    };
    hit.then(String::new)
}

fn cmd_delete(c: &Cmd, want: &[Target], recursive: bool) -> Option<String> {
    let p = c.program();
    let is_del = matches!(p, "del" | "erase");
    let is_rd = matches!(p, "rd" | "rmdir");
    if !is_del && !is_rd {
        return None;
    }
    let switches: Vec<String> = c
        .args()
        .iter()
        .filter(|a| a.text.starts_with('/'))
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    let rec = switches.iter().any(|s| s == "/s");
    if rec != recursive || (is_rd && !rec) {
        return None;
    }
    let targets: Vec<Arg> = c
        .args()
        .iter()
        .filter(|a| !a.text.starts_with('/') || a.text.len() > 3)
        .cloned()
        .collect();
    first_match(c, &targets, want)
}

fn cmd_system_acl(c: &Cmd) -> Option<String> {
    let p = c.program();
    if !matches!(
        p,
        "takeown" | "icacls" | "cacls" | "takeown.exe" | "icacls.exe"
    ) {
        return None;
    }
    let args = c.args();
    let rec = args
        .iter()
        .any(|a| matches!(a.text.to_ascii_lowercase().as_str(), "/r" | "/t"));
    if !rec {
        return None;
    }
    first_match(
        c,
        args,
        &[Target::Root, Target::SystemDir, Target::UnderSystem],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_messages_are_sentences() {
        let mut ids = std::collections::HashSet::new();
        for r in RULES {
            assert!(ids.insert(r.id), "duplicate rule id {}", r.id);
            assert!(r.id.contains('.'), "{}", r.id);
            assert!(
                !r.message.ends_with('.'),
                "{}: messages are fragments, no full stop",
                r.id
            );
        }
    }
}
