//! Checks for the classes issue 16's third corpus set found uncovered: overwriting system
//! files, volume managers, key and home permissions, account take-over, mounts, scheduled
//! jobs, mirrors, registry and services on Windows. Each is a predicate over one simple
//! command, used by a typed rule in [`super::rules`]; the one check that needs the whole
//! script (a file downloaded and then run) is [`download_then_run`].

use super::ir::{self, Arg, Cmd, RedirOp, Stdin};
use super::paths::{Target, classify_in, classify_text};

fn args_lower(c: &Cmd) -> Vec<String> {
    c.args()
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect()
}

fn class(c: &Cmd, a: &Arg) -> Target {
    classify_in(a, c.at.as_deref())
}

/// Files a command writes over: `> f`, the destination of `cp`/`mv`/`install`, `dd of=`,
/// every operand of `tee` without `-a`, the files `sed -i`/`perl -i` edit in place.
fn written(c: &Cmd) -> Vec<Arg> {
    let mut out: Vec<Arg> = c
        .redirects
        .iter()
        .filter(|r| r.op == RedirOp::Write)
        .map(|r| r.target.clone())
        .collect();
    let f = c.gnu_flags();
    match c.program() {
        "cp" | "mv" | "install" if f.operands.len() >= 2 => {
            out.extend(f.operands.last().cloned());
        }
        "dd" => out.extend(
            c.args()
                .iter()
                .filter(|a| a.text.starts_with("of="))
                .cloned(),
        ),
        "tee" if !f.has(&['a'], &["append"]) => out.extend(f.operands),
        "sed" if f.has(&['i'], &["in-place"]) => out.extend(f.operands.into_iter().skip(1)),
        "perl" if c.args().iter().any(|a| a.text.starts_with("-i")) => {
            out.extend(
                c.args()
                    .iter()
                    .skip(1)
                    .filter(|a| a.text.starts_with('/'))
                    .cloned(),
            );
        }
        _ => {}
    }
    out
}

fn path_of(a: &Arg) -> &str {
    a.text.strip_prefix("of=").unwrap_or(&a.text)
}

/// The kernel, boot loader, shells and init: without them the machine does not start or
/// nobody can log in.
fn boot_or_shell(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p.starts_with("/boot/")
        || matches!(
            p,
            "/boot"
                | "/bin/bash"
                | "/bin/sh"
                | "/bin/dash"
                | "/bin/zsh"
                | "/usr/bin/bash"
                | "/usr/bin/sh"
                | "/usr/bin/zsh"
                | "/sbin/init"
                | "/lib/systemd/systemd"
                | "/usr/lib/systemd/systemd"
                | "/bin/login"
                | "/usr/bin/login"
        )
}

/// `cat x > /boot/vmlinuz`, `sudo mv /bin/bash /tmp/`: the machine no longer boots or logs in.
pub(crate) fn replace_boot_or_shell(c: &Cmd) -> Option<String> {
    if let Some(a) = written(c).into_iter().find(|a| boot_or_shell(path_of(a))) {
        return Some(a.text);
    }
    if c.program() == "mv" {
        let f = c.gnu_flags();
        let n = f.operands.len();
        if n >= 2 {
            return f.operands[..n - 1]
                .iter()
                .find(|a| boot_or_shell(&a.text))
                .map(|a| a.text.clone());
        }
    }
    None
}

/// Local software (`/usr/local`, `/opt`) is the user's to install into.
fn local_software(path: &str) -> bool {
    path.starts_with("/usr/local/") || path.starts_with("/opt/")
}

/// `sudo cp hosts.new /etc/hosts`, `sudo tee /etc/fstab < x`, `sed -i … /etc/fstab`.
pub(crate) fn overwrite_system_file(c: &Cmd) -> Option<String> {
    written(c)
        .into_iter()
        .find(|a| {
            let t = classify_in(&Arg::lit(path_of(a)), c.at.as_deref());
            matches!(t, Target::UnderSystem | Target::SystemDir)
                && !local_software(path_of(a))
                && !path_of(a).starts_with("/proc/")
                && classify_text(path_of(a), false) != Target::Temp
                && !matches!(path_of(a).trim_end_matches('/'), "/tmp" | "/var/tmp")
        })
        .map(|a| a.text)
}

/// `cp -f x ~/notes.txt`, `mv -f a ~/Documents/b`, `sed -i 's/.*//' ~/todo.txt`: a file of
/// the user's own replaced, with no backup.
pub(crate) fn overwrite_user_file(c: &Cmd) -> Option<String> {
    let f = c.gnu_flags();
    let forced = match c.program() {
        "cp" | "mv" => f.has(&['f'], &["force"]),
        "sed" => c
            .args()
            .iter()
            .any(|a| a.text == "-i" || a.text == "--in-place"),
        _ => false,
    };
    if !forced {
        return None;
    }
    written(c)
        .into_iter()
        .find(|a| class(c, a) == Target::UnderHome && !a.text.ends_with('/'))
        .map(|a| a.text)
}

/// `badblocks -w /dev/sdb`, `zpool destroy`, `lvremove`: whole volumes or pools erased.
pub(crate) fn destroy_volume(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "badblocks" => {
            args.iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('w'))
                && args.iter().any(|a| a.starts_with("/dev/"))
        }
        "zpool" => has("destroy"),
        "lvremove" | "vgremove" | "pvremove" => true,
        _ => false,
    };
    hit.then(|| c.display())
}

/// `mke2fs -n` and `mkfs.ext4 -n` only show what they would do.
pub(crate) fn mkfs_dry_run(c: &Cmd) -> bool {
    let p = c.program();
    (p == "mke2fs" || p.starts_with("mkfs.ext")) && c.gnu_flags().has(&['n'], &[])
}

fn recursive_perm(c: &Cmd) -> bool {
    matches!(c.program(), "chmod" | "chown" | "chgrp")
        && (c.gnu_flags().has(&['R'], &["recursive"]))
}

/// `chmod -R 777 ~`, `chown -R nobody ~`: the whole home folder opened, locked or given away.
pub(crate) fn perm_home_tree(c: &Cmd) -> Option<String> {
    if !recursive_perm(c) {
        return None;
    }
    c.gnu_flags()
        .operands
        .iter()
        .skip(1)
        .find(|a| class(c, a) == Target::Home)
        .map(|a| a.text.clone())
}

/// Whether a chmod mode lets the group or others read or write.
fn opens_to_others(mode: &str) -> bool {
    if mode.chars().all(|d| d.is_ascii_digit()) && mode.len() >= 3 {
        let b = mode.as_bytes();
        let (g, o) = (b[b.len() - 2] - b'0', b[b.len() - 1] - b'0');
        return (g | o) & 6 != 0;
    }
    mode.split(',').any(|part| {
        let (who, perm) = match part.find(['+', '=']) {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => return false,
        };
        (who.is_empty() || who.contains(['g', 'o', 'a'])) && perm.contains(['r', 'w'])
    })
}

/// A private key: `~/.ssh/id_ed25519`, `/etc/ssh/ssh_host_rsa_key`, or the key folders.
fn private_key(path: &str) -> bool {
    let name = ir::basename(path);
    let key = (name.starts_with("id_") && !name.ends_with(".pub"))
        || (name.starts_with("ssh_host_") && name.ends_with("_key"));
    let folder = matches!(
        path.trim_end_matches('/').rsplit('/').next(),
        Some(".ssh" | ".gnupg")
    );
    key || folder
}

/// `chmod 644 /etc/ssh/ssh_host_ed25519_key`, `chmod -R 777 ~/.ssh`: private keys readable by
/// others.
pub(crate) fn expose_keys(c: &Cmd) -> Option<String> {
    if c.program() != "chmod" {
        return None;
    }
    let f = c.gnu_flags();
    let mode = f.operands.first()?.text.as_str();
    if !opens_to_others(mode) {
        return None;
    }
    let recursive = f.has(&['R'], &["recursive"]);
    f.operands[1..]
        .iter()
        .find(|a| {
            let name = ir::basename(&a.text);
            let is_folder = name == ".ssh" || name == ".gnupg";
            private_key(&a.text) && (recursive || !is_folder || mode.contains('7'))
        })
        .map(|a| a.text.clone())
}

/// `sudo chmod 4777 /tmp/x`: a root-owned setuid file where anyone can replace it.
pub(crate) fn setuid_in_temp(c: &Cmd) -> Option<String> {
    if !c.elevated {
        return None;
    }
    super::rules::setid_targets(c)?
        .iter()
        .find(|a| class(c, a) == Target::Temp)
        .map(|a| a.text.clone())
}

/// `chattr +i /etc/resolv.conf`: system files frozen so that updates and tools fail.
pub(crate) fn chattr_system(c: &Cmd) -> Option<String> {
    if c.program() != "chattr" {
        return None;
    }
    c.gnu_flags()
        .operands
        .iter()
        .find(|a| {
            matches!(
                class(c, a),
                Target::UnderSystem | Target::SystemDir | Target::SensitiveFile | Target::Root
            )
        })
        .map(|a| a.text.clone())
}

/// `chmod -R 000 ./data`: a folder of the user's made unreadable.
pub(crate) fn lock_tree(c: &Cmd) -> Option<String> {
    if c.program() != "chmod" || !c.gnu_flags().has(&['R'], &["recursive"]) {
        return None;
    }
    let f = c.gnu_flags();
    let mode = f.operands.first()?.text.as_str();
    let none = mode.trim_start_matches('0').is_empty() || mode == "a-rwx" || mode == "ugo-rwx";
    (none && f.operands.len() > 1).then(|| c.display())
}

/// `icacls C:\ /grant Everyone:F /t`: full control of the system for every user.
pub(crate) fn acl_everyone_full(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "icacls" | "icacls.exe" | "cacls") {
        return None;
    }
    let args = args_lower(c);
    let everyone = args
        .iter()
        .any(|a| a.starts_with("everyone:") || a.starts_with("*s-1-1-0:"));
    let full = args
        .iter()
        .any(|a| a.contains(":f") || a.contains(":(f)") || a.contains("(f)"));
    if !(everyone && full && args.iter().any(|a| a == "/grant" || a == "/grant:r")) {
        return None;
    }
    c.args()
        .iter()
        .find(|a| matches!(class(c, a), Target::Root | Target::SystemDir))
        .map(|a| a.text.clone())
}

// ---- accounts ------------------------------------------------------------------------------

const SERVICE_ACCOUNTS: &[&str] = &["nobody", "guest", "www-data", "daemon", "games", "ftp"];
const ADMIN_GROUPS: &[&str] = &["sudo", "wheel", "admin", "root", "administrators"];

/// `passwd -d root`, `chpasswd` for root, `useradd -o -u 0`, `userdel root`, a service
/// account made an administrator: the machine handed to whoever asks.
pub(crate) fn account_takeover(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let has = |w: &str| args.contains(&w);
    let hit = match c.program() {
        "passwd" => has("-d") && has("root"),
        "chpasswd" => match &c.stdin {
            Stdin::Literal(s) => s.trim_start().starts_with("root:"),
            Stdin::Pipe(up) => {
                ir::literal_output(up).is_some_and(|(s, _)| s.trim_start().starts_with("root:"))
            }
            Stdin::Inherited => false,
        },
        "useradd" | "usermod" if has("-u") => args.windows(2).any(|w| w[0] == "-u" && w[1] == "0"),
        "userdel" | "deluser" => has("root"),
        _ => false,
    };
    let groups = match c.program() {
        "usermod" | "gpasswd" | "adduser" => {
            args.iter().any(|a| ADMIN_GROUPS.contains(a))
                && args.iter().any(|a| SERVICE_ACCOUNTS.contains(a))
        }
        "add-localgroupmember" | "net" => {
            let l: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
            l.iter().any(|a| a == "administrators")
                && l.iter().any(|a| a == "guest")
                && (c.program() != "net" || l.iter().any(|a| a == "/add"))
        }
        _ => false,
    };
    (hit || groups).then(|| c.display())
}

/// `passwd -l`, `usermod -L`: an account locked; `Remove-LocalUser`, `net user x /delete`.
pub(crate) fn account_lock_or_delete(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "passwd" => has("-l") || has("--lock"),
        "usermod" => has("-l") && c.args().iter().any(|a| a.text == "-L"),
        "remove-localuser" => true,
        "net" => has("user") && has("/delete"),
        _ => false,
    };
    hit.then(|| c.display())
}

/// `nft … policy drop`, `firewall-cmd --panic-on`, Windows profiles set to block everything.
pub(crate) fn firewall_block_all(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let joined = args.join(" ");
    let hit = match c.program() {
        "nft" => joined.contains("policy drop"),
        "firewall-cmd" => has("--panic-on"),
        "set-netfirewallprofile" => {
            joined.contains("-defaultinboundaction block")
                && joined.contains("-defaultoutboundaction block")
        }
        "netsh" | "netsh.exe" => {
            has("advfirewall") && joined.contains("blockinbound,blockoutbound")
        }
        _ => false,
    };
    hit.then(|| c.display())
}

// ---- mounts --------------------------------------------------------------------------------

/// `umount -R /home`, `umount -fa`, `mount -o remount,ro /`, a filesystem mounted over
/// `/etc` or `/home`.
pub(crate) fn mount_over_system(c: &Cmd) -> Option<String> {
    let f = c.gnu_flags();
    match c.program() {
        "umount" => {
            let all = f.has(&['a'], &["all"]);
            let broad = f.operands.iter().any(|a| {
                matches!(class(c, a), Target::Root | Target::SystemDir | Target::Home)
                    || a.text.trim_end_matches('/') == "/home"
            });
            (all || broad).then(|| c.display())
        }
        "mount" => {
            let args = args_lower(c);
            let remount_ro = args
                .iter()
                .any(|a| a.contains("remount") && a.contains("ro"))
                && f.operands.iter().any(|a| a.text == "/");
            let target = f.operands.last();
            let over = f.operands.len() >= 2
                && target.is_some_and(|t| {
                    matches!(class(c, t), Target::Root | Target::SystemDir)
                        || t.text.trim_end_matches('/') == "/home"
                });
            (remount_ro || over).then(|| c.display())
        }
        "mountvol" | "mountvol.exe" => {
            let args = args_lower(c);
            args.iter()
                .any(|a| a == "/d" || a == "/p")
                .then(|| c.display())
        }
        _ => None,
    }
}

/// `umount -f /mnt/share`: one filesystem unmounted by force, open files with it.
pub(crate) fn force_unmount(c: &Cmd) -> Option<String> {
    (c.program() == "umount" && c.gnu_flags().has(&['f', 'l'], &["force", "lazy"]))
        .then(|| c.display())
}

// ---- scheduled jobs --------------------------------------------------------------------------

/// `crontab /dev/null`, `echo | crontab -`, `atrm $(atq …)`, every scheduled task removed.
pub(crate) fn jobs_wiped(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "crontab" => {
            let from_null = has("/dev/null");
            let blank_stdin = has("-")
                && match &c.stdin {
                    Stdin::Literal(s) => s.trim().is_empty(),
                    Stdin::Pipe(up) => {
                        ir::literal_output(up).is_some_and(|(s, _)| s.trim().is_empty())
                    }
                    Stdin::Inherited => false,
                };
            from_null || blank_stdin
        }
        "atrm" => c.args().iter().any(|a| a.from.iter().any(|f| f == "atq")),
        "schtasks" | "schtasks.exe" => has("/delete") && has("*"),
        "unregister-scheduledtask" => c.upstream().any(|u| {
            u.program() == "get-scheduledtask" && u.args().iter().all(|a| a.text.starts_with('-'))
        }),
        _ => false,
    };
    hit.then(|| c.display())
}

/// `schtasks /delete /tn X`, `Unregister-ScheduledTask -TaskName X`: one job removed.
pub(crate) fn job_removed(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "schtasks" | "schtasks.exe" => has("/delete"),
        "unregister-scheduledtask" => true,
        _ => false,
    };
    (hit && jobs_wiped(c).is_none()).then(|| c.display())
}

// ---- mirrors -------------------------------------------------------------------------------

/// `rsync --delete` onto the current folder, a system folder or another machine; `rclone sync`.
pub(crate) fn mirror_broad(c: &Cmd) -> Option<String> {
    match c.program() {
        "rsync" => {
            let f = c.gnu_flags();
            let deletes = f.long.iter().any(|l| l.starts_with("delete"));
            let dry = f.has(&['n'], &["dry-run"]);
            if !deletes || dry {
                return None;
            }
            let dest = f.operands.last()?;
            let remote = dest.text.contains(':') && !dest.text.starts_with('/');
            let broad = matches!(
                class(c, dest),
                Target::CwdAll | Target::Parent | Target::UnderSystem | Target::SystemDir
            ) || dest.text.trim_end_matches('/') == ".";
            (remote || broad).then(|| dest.text.clone())
        }
        "rclone" => args_lower(c)
            .iter()
            .any(|a| a == "sync")
            .then(|| c.display()),
        _ => None,
    }
}

/// `robocopy SRC DEST /MIR` (or `/PURGE`): DEST made to match SRC, its other files deleted.
pub(crate) fn robocopy_mirror(c: &Cmd, want: &[Target]) -> Option<String> {
    if !matches!(c.program(), "robocopy" | "robocopy.exe") {
        return None;
    }
    let args = args_lower(c);
    if !args.iter().any(|a| a == "/mir" || a == "/purge") {
        return None;
    }
    let dest = c
        .args()
        .iter()
        .filter(|a| !a.text.starts_with('/'))
        .nth(1)?;
    want.contains(&class(c, dest)).then(|| dest.text.clone())
}

// ---- Windows: registry, services, Defender ---------------------------------------------------

fn registry_hive(t: &str) -> Option<(&'static str, String)> {
    let l = t.to_ascii_lowercase().replace("registry::", "");
    for (short, long, name) in [
        ("hklm", "hkey_local_machine", "hklm"),
        ("hkcu", "hkey_current_user", "hkcu"),
    ] {
        for prefix in [short, long] {
            if let Some(rest) = l.strip_prefix(prefix) {
                let rest = rest.trim_start_matches(':').trim_matches('\\').to_string();
                return Some((name, rest));
            }
        }
    }
    None
}

fn deletes_registry(c: &Cmd) -> Option<&Arg> {
    let p = c.program();
    let ps = matches!(
        p,
        "remove-item"
            | "ri"
            | "rm"
            | "del"
            | "rd"
            | "rmdir"
            | "erase"
            | "remove-itemproperty"
            | "rp"
    );
    let cmd = p.starts_with("reg") && args_lower(c).first().is_some_and(|a| a == "delete");
    if !(ps || cmd) {
        return None;
    }
    c.args().iter().find(|a| registry_hive(&a.text).is_some())
}

/// The SYSTEM hive or Windows' own keys deleted: Windows no longer starts.
pub(crate) fn registry_core(c: &Cmd) -> Option<String> {
    let a = deletes_registry(c)?;
    let (hive, rest) = registry_hive(&a.text)?;
    let core = hive == "hklm"
        && (rest == "system"
            || rest == "software"
            || rest.starts_with("system\\currentcontrolset")
            || rest.starts_with("software\\microsoft\\windows"));
    core.then(|| a.text.clone())
}

/// A user's whole `Software` key, or one app's settings.
pub(crate) fn registry_user(c: &Cmd, whole: bool) -> Option<String> {
    let a = deletes_registry(c)?;
    let (hive, rest) = registry_hive(&a.text)?;
    if hive != "hkcu" {
        return None;
    }
    let is_whole = rest.is_empty() || rest == "software";
    (is_whole == whole).then(|| a.text.clone())
}

/// Registry writes that turn off Defender or open remote desktop.
pub(crate) fn registry_weakens(c: &Cmd) -> Option<String> {
    let joined = args_lower(c).join(" ");
    let writes = matches!(c.program(), "set-itemproperty" | "sp" | "new-itemproperty")
        || (c.program().starts_with("reg") && joined.starts_with("add"));
    let weak = joined.contains("disableantispyware")
        || joined.contains("disablerealtimemonitoring")
        || (joined.contains("fdenytsconnections") && joined.contains(" 0"));
    (writes && weak).then(|| c.display())
}

/// Defender exclusions for a whole drive, services deleted, critical processes killed, every
/// network adapter disabled, recycle bins emptied.
pub(crate) fn windows_system_change(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let critical_procs = ["lsass", "csrss", "wininit", "winlogon", "smss", "services"];
    let names_critical = |a: &String| {
        let n = a.trim_end_matches(".exe");
        critical_procs.contains(&n)
    };
    let hit = match c.program() {
        "add-mppreference" => {
            (has("-exclusionpath") || has("-exclusionprocess"))
                && c.args()
                    .iter()
                    .any(|a| class(c, a) == Target::Root || a.text == "*")
        }
        "sc" | "sc.exe" => has("delete"),
        "taskkill" | "taskkill.exe" => args.iter().any(names_critical),
        "stop-process" | "kill" | "spps" => args.iter().any(names_critical),
        "disable-netadapter" => has("*"),
        "clear-recyclebin" => true,
        "clear-eventlog" | "remove-eventlog" => true,
        "wevtutil" | "wevtutil.exe" => has("cl") || has("clear-log"),
        "remove-appxpackage" => c.upstream().any(|u| {
            u.program() == "get-appxpackage"
                && u.args()
                    .iter()
                    .all(|a| a.text.starts_with('-') || a.text == "*")
        }),
        "wmic" | "wmic.exe" => has("product") && has("uninstall"),
        _ => false,
    };
    hit.then(|| c.display())
}

/// `bcdedit /deletevalue {default} device|osdevice`: the boot entry loses its disk.
pub(crate) fn bcd_boot_device(c: &Cmd) -> Option<String> {
    if !c.program().starts_with("bcdedit") {
        return None;
    }
    let args = args_lower(c);
    (args.iter().any(|a| a == "/deletevalue")
        && args
            .iter()
            .any(|a| a == "device" || a == "osdevice" || a == "path"))
    .then(|| c.display())
}

/// `del C:\Windows\System32\hal.dll`: a file Windows needs to boot.
pub(crate) fn windows_boot_file(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "del" | "erase" | "remove-item" | "ri" | "rm") {
        return None;
    }
    c.args()
        .iter()
        .find(|a| {
            let l = a.text.to_ascii_lowercase();
            [
                "hal.dll",
                "ntoskrnl.exe",
                "winload.exe",
                "winload.efi",
                "bootmgr",
                "ntldr",
            ]
            .iter()
            .any(|f| l.ends_with(&format!("\\{f}")))
        })
        .map(|a| a.text.clone())
}

// ---- processes and services ------------------------------------------------------------------

/// Every root process or every sshd killed, rescue mode, logind masked, sshd booted out.
pub(crate) fn system_disrupt(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "systemctl" => {
            (has("isolate")
                && args
                    .iter()
                    .any(|a| a.starts_with("rescue") || a.starts_with("emergency")))
                || (has("mask")
                    && args
                        .iter()
                        .any(|a| a.starts_with("systemd-logind") || a.starts_with("dbus")))
        }
        "pkill" | "killall" => args.windows(2).any(|w| w[0] == "-u" && w[1] == "root"),
        "kill" => {
            c.args()
                .iter()
                .any(|a| a.from.iter().any(|f| f == "pgrep") && a.text.is_empty())
                && c.args().iter().any(|a| a.text.contains("sshd"))
        }
        "launchctl" => has("bootout") && args.iter().any(|a| a.contains("sshd")),
        _ => false,
    };
    hit.then(|| c.display())
}

// ---- remote code ---------------------------------------------------------------------------

/// `nc -e /bin/sh host port`, `bash -i >& /dev/tcp/host/port`: a shell handed to another machine.
pub(crate) fn reverse_shell(c: &Cmd) -> Option<String> {
    let p = c.program();
    if matches!(p, "nc" | "ncat" | "netcat" | "nc.traditional")
        && c.args().iter().any(|a| a.text == "-e" || a.text == "-c")
    {
        return Some(c.display());
    }
    c.redirects
        .iter()
        .find(|r| r.target.text.starts_with("/dev/tcp/") || r.target.text.starts_with("/dev/udp/"))
        .map(|r| r.target.text.clone())
}

/// A download appended to `authorized_keys`: whoever controls the URL can log in.
pub(crate) fn remote_key(c: &Cmd) -> Option<String> {
    let key = |t: &str| ir::basename(t).starts_with("authorized_keys");
    let downloads = matches!(c.program(), "curl" | "wget");
    if downloads && let Some(r) = c.redirects.iter().find(|r| key(&r.target.text)) {
        return Some(r.target.text.clone());
    }
    if c.program() == "tee" && c.upstream().any(|u| matches!(u.program(), "curl" | "wget")) {
        return c
            .args()
            .iter()
            .find(|a| key(&a.text))
            .map(|a| a.text.clone());
    }
    None
}

/// `mshta https://…`: a remote HTML application run with the user's rights.
pub(crate) fn mshta_remote(c: &Cmd) -> Option<String> {
    (matches!(c.program(), "mshta" | "mshta.exe")
        && c.args()
            .iter()
            .any(|a| a.text.starts_with("http") || a.text.starts_with("javascript:")))
    .then(|| c.display())
}

/// The files a command downloads into (`curl -o F`, `wget -O F`, `curl … > F`,
/// `certutil -urlcache -f URL F`, `iwr -OutFile F`), by basename.
fn downloaded(c: &Cmd) -> Vec<String> {
    let mut out = Vec::new();
    let args = c.args();
    let value_after = |names: &[&str]| -> Vec<String> {
        args.windows(2)
            .filter(|w| names.iter().any(|n| w[0].text.eq_ignore_ascii_case(n)))
            .map(|w| w[1].text.clone())
            .collect()
    };
    match c.program() {
        "curl" => {
            out.extend(value_after(&["-o", "--output"]));
            out.extend(
                c.redirects
                    .iter()
                    .filter(|r| r.op == RedirOp::Write)
                    .map(|r| r.target.text.clone()),
            );
        }
        "wget" => {
            out.extend(value_after(&["-O", "--output-document"]));
            out.extend(
                args.iter()
                    .filter_map(|a| a.text.strip_prefix("--output-document="))
                    .map(str::to_string),
            );
        }
        "certutil" | "certutil.exe"
            if args
                .iter()
                .any(|a| a.text.eq_ignore_ascii_case("-urlcache")) =>
        {
            out.extend(args.last().map(|a| a.text.clone()));
        }
        "invoke-webrequest" | "iwr" | "wget.exe" | "curl.exe" => {
            out.extend(value_after(&["-outfile", "-o"]));
        }
        _ => {}
    }
    out.into_iter()
        .filter(|f| !f.is_empty() && f != "-" && !f.starts_with("/dev/"))
        .map(|f| ir::basename(&f.replace('\\', "/")).to_ascii_lowercase())
        .collect()
}

/// A file downloaded earlier in the same command line and then run, directly or by a shell or
/// interpreter: `curl -o i.sh URL && bash i.sh`. The whole-script counterpart of `curl | sh`.
pub(crate) fn download_then_run(cmds: &[Cmd]) -> Option<(usize, String)> {
    let mut files: Vec<String> = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        if !files.is_empty() {
            let name = |t: &str| ir::basename(&t.replace('\\', "/")).to_ascii_lowercase();
            let direct = files.contains(&name(c.program()))
                || c.argv
                    .first()
                    .is_some_and(|a| files.contains(&name(&a.text)));
            let runner = ir::is_shell(c.program())
                || matches!(
                    c.program(),
                    "source"
                        | "."
                        | "python"
                        | "python3"
                        | "perl"
                        | "ruby"
                        | "node"
                        | "php"
                        | "start"
                        | "cmd"
                        | "powershell"
                        | "pwsh"
                );
            let via = runner && c.args().iter().any(|a| files.contains(&name(&a.text)));
            if direct || via {
                return Some((i, c.display()));
            }
        }
        files.extend(downloaded(c));
    }
    None
}

/// `kubectl delete crd …` takes every resource of that kind with it; `kubectl drain
/// --delete-emptydir-data` deletes pods' local data.
pub(crate) fn kube_broad_extra(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "kubectl" | "oc") {
        return None;
    }
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let crd = has("delete")
        && args
            .iter()
            .any(|a| a == "crd" || a == "crds" || a.starts_with("customresourcedefinition"));
    let drain = has("drain")
        && args
            .iter()
            .any(|a| a == "--delete-emptydir-data" || a == "--delete-local-data");
    (crd || drain).then(|| c.display())
}

/// `docker rm -v` deletes the container's anonymous volumes too.
pub(crate) fn container_rm_volumes(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "docker" | "podman" | "nerdctl") {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let rm = args.first().is_some_and(|a| *a == "rm")
        || (args.first() == Some(&"container") && args.get(1) == Some(&"rm"));
    let v = args.iter().any(|a| {
        *a == "--volumes" || (a.starts_with('-') && !a.starts_with("--") && a.contains('v'))
    });
    (rm && v).then(|| c.display())
}

/// Database statements and commands that empty data wholesale, beyond `DROP`/`TRUNCATE`:
/// `UPDATE` without `WHERE`, `deleteMany({})`, `DROP KEYSPACE`, every Redis key deleted, an
/// Elasticsearch index deleted over HTTP.
pub(crate) fn db_wholesale(c: &Cmd) -> Option<String> {
    let p = c.program();
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
    let upper: Vec<String> = texts
        .iter()
        .map(|t| {
            t.to_ascii_uppercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let any = |f: &dyn Fn(&str) -> bool| upper.iter().any(|t| f(t));
    let hit = match p {
        "psql" | "mysql" | "mariadb" | "sqlite3" | "sqlcmd" | "cockroach" | "duckdb" => any(&|t| {
            t.split(';').any(|s| {
                let s = s.trim();
                s.starts_with("UPDATE ") && s.contains(" SET ") && !s.contains(" WHERE ")
            })
        }),
        "mongo" | "mongosh" => any(&|t| {
            let t = t.replace(' ', "");
            t.contains("DELETEMANY({})") || t.contains("REMOVE({})") || t.contains(".DROP(")
        }),
        "cqlsh" => any(&|t| {
            t.contains("DROP KEYSPACE") || t.contains("DROP TABLE") || t.contains("TRUNCATE")
        }),
        "redis-cli" => {
            let flush_stdin = upper
                .last()
                .is_some_and(|t| t == "FLUSHALL" || t == "FLUSHDB")
                && !matches!(c.stdin, Stdin::Inherited);
            let del_all = upper.first().is_some_and(|t| t == "DEL")
                && c.upstream().any(|u| {
                    u.program() == "redis-cli"
                        && u.args()
                            .iter()
                            .any(|a| a.text == "--scan" || a.text == "KEYS")
                });
            flush_stdin || del_all
        }
        "xargs" => {
            let a: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
            a.windows(2)
                .any(|w| w[0] == "redis-cli" && w[1].eq_ignore_ascii_case("del"))
                && c.upstream().any(|u| {
                    u.program() == "redis-cli"
                        && u.args()
                            .iter()
                            .any(|a| a.text == "--scan" || a.text == "KEYS")
                })
        }
        "curl" => {
            let a: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
            let delete = a.windows(2).any(|w| {
                (w[0] == "-X" || w[0] == "--request") && w[1].eq_ignore_ascii_case("DELETE")
            }) || a.iter().any(|x| x.eq_ignore_ascii_case("-XDELETE"));
            delete && a.iter().any(|x| x.contains(":9200") || x.contains("/_all"))
        }
        _ => false,
    };
    hit.then(|| c.display())
}

/// Cloud deletions the older rules miss: a bucket mirrored from an empty folder, IAM users,
/// volumes, blob batches, Azure resource groups from PowerShell.
pub(crate) fn cloud_extra(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    let hit = match c.program() {
        "aws" => {
            let dry = has("--dryrun") || has("--dry-run");
            !dry && ((has("s3") && has("sync") && has("--delete"))
                || args.iter().any(|a| {
                    matches!(
                        a.as_str(),
                        "delete-user"
                            | "delete-role"
                            | "delete-volume"
                            | "delete-snapshot"
                            | "delete-function"
                            | "delete-repository"
                            | "delete-secret"
                            | "delete-hosted-zone"
                    )
                }))
        }
        "az" => has("delete-batch"),
        "remove-azresourcegroup" | "remove-azvm" | "remove-azstorageaccount" => true,
        _ => false,
    };
    hit.then(|| c.display())
}

/// `aws s3 rm s3://b/key`: one object deleted.
pub(crate) fn cloud_object(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    (c.program() == "aws" && has("s3") && has("rm") && !has("--recursive") && !has("--dryrun"))
        .then(|| c.display())
}

/// Dry runs of cloud and infrastructure tools change nothing.
pub(crate) fn infra_dry_run(c: &Cmd) -> bool {
    let args = args_lower(c);
    let has = |w: &str| args.iter().any(|a| a == w);
    match c.program() {
        "aws" => has("--dryrun") || has("--dry-run"),
        "terraform" | "tofu" => has("plan"),
        _ => false,
    }
}

/// `shred` on keys, system files, logs or everything here.
pub(crate) fn shred_broad(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "shred" | "srm") {
        return None;
    }
    c.gnu_flags()
        .operands
        .iter()
        .find(|a| {
            private_key(&a.text)
                || a.text.contains("/.ssh/")
                || a.text.contains("/.gnupg/")
                || matches!(
                    class(c, a),
                    Target::UnderSystem | Target::SystemDir | Target::CwdAll | Target::Parent
                )
        })
        .map(|a| a.text.clone())
}

/// `sdelete` on a user's folders.
pub(crate) fn sdelete(c: &Cmd) -> Option<String> {
    if !matches!(
        c.program(),
        "sdelete" | "sdelete.exe" | "sdelete64" | "sdelete64.exe"
    ) {
        return None;
    }
    c.args()
        .iter()
        .find(|a| {
            matches!(
                class(c, a),
                Target::Home | Target::UnderHome | Target::Root | Target::SystemDir
            )
        })
        .map(|a| a.text.clone())
}

/// A file emptied by `echo "" > f`, `print -n > f`, `sort f > f`, `cp /dev/null f`,
/// `tee f < /dev/null`, `type nul > f`, PowerShell's `Clear-Content` and `'' | Out-File`.
/// Returns the emptied file.
pub(crate) fn emptied(c: &Cmd) -> Option<&Arg> {
    let p = c.program();
    let writes = || {
        c.redirects
            .iter()
            .filter(|r| r.op == RedirOp::Write)
            .map(|r| &r.target)
    };
    let blank_args = c
        .args()
        .iter()
        .all(|a| a.text.trim().is_empty() || a.text == "-n" || a.text == "-e");
    match p {
        "echo" | "print" | "printf" if blank_args => writes().next(),
        "type" if c.args().iter().any(|a| a.text.eq_ignore_ascii_case("nul")) => writes().next(),
        "sort" | "uniq" | "grep" | "sed" | "awk" | "cut" | "tr" | "head" | "tail" => {
            let ops = c.gnu_flags().operands;
            writes().find(|w| ops.iter().any(|o| o.text == w.text))
        }
        "cp" => {
            let ops = c.gnu_flags().operands;
            (ops.len() == 2 && ops[0].text == "/dev/null").then(|| &c.argv[c.argv.len() - 1])
        }
        "tee" => {
            let null = c
                .redirects
                .iter()
                .any(|r| r.op == RedirOp::Read && r.target.text == "/dev/null");
            null.then(|| c.args().iter().find(|a| !a.text.starts_with('-')))
                .flatten()
        }
        "clear-content" | "clc" => c.args().iter().find(|a| !a.text.starts_with('-')),
        "out-file" | "set-content" | "sc" => {
            let blank = c
                .upstream()
                .next()
                .is_some_and(|u| u.argv.iter().all(|a| a.text.trim().is_empty()))
                || c.args()
                    .windows(2)
                    .any(|w| w[0].text.eq_ignore_ascii_case("-value") && w[1].text.is_empty())
                || (p != "out-file"
                    && c.args().iter().filter(|a| !a.text.starts_with('-')).count() == 2
                    && c.args().last().is_some_and(|a| a.text.is_empty()));
            blank
                .then(|| {
                    c.args().iter().find(|a| {
                        !a.text.starts_with('-')
                            && !a.text.is_empty()
                            && !a.text.eq_ignore_ascii_case("-value")
                    })
                })
                .flatten()
        }
        _ => None,
    }
}

/// Whether an emptied file matters beyond itself: a system file, a log, a dotfile or key file in
/// the home folder, the PowerShell profile.
pub(crate) fn sensitive_target(c: &Cmd, a: &Arg) -> bool {
    let t = &a.text;
    let cl = class(c, a);
    let name = ir::basename(&t.replace('\\', "/")).to_ascii_lowercase();
    matches!(
        cl,
        Target::UnderSystem | Target::SystemDir | Target::SensitiveFile
    ) || t.contains("/var/log")
        || (name.starts_with('.') && matches!(cl, Target::UnderHome | Target::Relative))
        || t.contains("/.ssh/")
        || t.contains("/.config/")
        || t.eq_ignore_ascii_case("$profile")
}

pub(crate) fn emptied_sensitive(c: &Cmd) -> Option<String> {
    // `Clear-Content $PROFILE`: a file named by a variable caro cannot know may be anything.
    emptied(c)
        .filter(|a| sensitive_target(c, a) || (a.unknown && a.text.is_empty()))
        .map(|a| a.text.clone())
}

pub(crate) fn emptied_plain(c: &Cmd) -> Option<String> {
    emptied(c)
        .filter(|a| {
            !sensitive_target(c, a)
                && (!a.unknown || !a.text.is_empty())
                && classify_text(&a.text, false) != Target::PseudoDevice
        })
        .map(|a| a.text.clone())
}

/// `git push origin --delete main`, `git push origin :main`, `git push --mirror --force`.
pub(crate) fn git_remote_delete(c: &Cmd, main: bool) -> Option<String> {
    if c.program() != "git" {
        return None;
    }
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    let push = args.iter().position(|a| *a == "push")?;
    let rest = &args[push + 1..];
    let mirror_force =
        rest.contains(&"--mirror") && rest.iter().any(|a| *a == "--force" || *a == "-f");
    let is_main = |r: &str| {
        matches!(
            r.trim_start_matches(':').trim_start_matches("refs/heads/"),
            "main" | "master" | "trunk" | "production" | "prod" | "release"
        )
    };
    let deleting = rest.contains(&"--delete") || rest.contains(&"-d");
    let operands: Vec<&str> = rest
        .iter()
        .filter(|a| !a.starts_with('-'))
        .skip(1)
        .copied()
        .collect();
    let deleted: Vec<&str> = operands
        .iter()
        .filter_map(|r| {
            if deleting {
                Some(*r)
            } else {
                r.strip_prefix(':')
            }
        })
        .collect();
    if main {
        (mirror_force || deleted.iter().any(|r| is_main(r))).then(|| c.display())
    } else {
        (!deleted.is_empty() && !deleted.iter().any(|r| is_main(r))).then(|| c.display())
    }
}

/// `git checkout -f`: uncommitted changes thrown away.
pub(crate) fn git_checkout_force(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    (c.program() == "git"
        && args.first() == Some(&"checkout")
        && args.iter().any(|a| *a == "-f" || *a == "--force"))
    .then(|| c.display())
}

/// Raw memory and input devices read by any program: `cat /proc/kcore`, `cat /dev/input/event0`.
pub(crate) fn read_secret_device(c: &Cmd) -> Option<String> {
    let secret =
        |t: &str| t == "/proc/kcore" || t.starts_with("/dev/input/event") || t == "/dev/input/mice";
    c.args()
        .iter()
        .map(|a| a.text.as_str())
        .chain(
            c.redirects
                .iter()
                .filter(|r| r.op == RedirOp::Read)
                .map(|r| r.target.text.as_str()),
        )
        .find(|t| secret(t.strip_prefix("if=").unwrap_or(t)))
        .map(str::to_string)
}

/// Removing the packages every install has (`base`, `busybox` on Alpine, udev).
pub(crate) fn remove_base_package(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let removes = match c.program() {
        "pacman" => args.iter().any(|a| a.starts_with("-r")),
        "apk" => args.first().is_some_and(|a| a == "del"),
        "dnf" | "yum" | "zypper" => args
            .iter()
            .any(|a| matches!(a.as_str(), "remove" | "erase" | "rm")),
        _ => false,
    };
    if !removes {
        return None;
    }
    args.iter()
        .find(|a| {
            matches!(
                a.as_str(),
                "base" | "busybox" | "alpine-base" | "musl" | "systemd-udev" | "udev" | "linux"
            )
        })
        .cloned()
}

/// A folder of the user's deleted file by file: `find … | xargs rm`, PowerShell's
/// `Get-ChildItem -Recurse … | Remove-Item`, cmd's `forfiles … del`.
pub(crate) fn scoped_bulk_delete(c: &Cmd) -> Option<String> {
    let p = c.program();
    let hit = match p {
        "xargs" => {
            c.args().iter().any(|a| a.text == "rm") && c.upstream().any(|u| u.program() == "find")
        }
        "remove-item" | "ri" | "del" | "rm" | "erase" => c.upstream().any(|u| {
            matches!(u.program(), "get-childitem" | "gci" | "ls" | "dir")
                && u.args().iter().any(|a| {
                    let l = a.text.to_ascii_lowercase();
                    l == "-filter" || l == "-include"
                })
        }),
        "forfiles" | "forfiles.exe" => args_lower(c).iter().any(|a| a.contains("del ")),
        _ => false,
    };
    hit.then(|| c.display())
}

/// cmd's `for /r %f in (*) do del "%f"`: every file under the current folder.
pub(crate) fn cmd_for_delete_all(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    (c.program() == "for"
        && args.iter().any(|a| a == "/r")
        && args.iter().any(|a| a == "(*)" || a == "(*.*)")
        && args.iter().any(|a| a == "del" || a == "erase"))
    .then(|| c.display())
}

/// `Move-Item C:\Windows …`, `move C:\Users …`: Windows or every profile moved away.
pub(crate) fn windows_move_protected(c: &Cmd) -> Option<String> {
    if !matches!(c.program(), "move-item" | "mi" | "move" | "mv") {
        return None;
    }
    let paths: Vec<&Arg> = c
        .args()
        .iter()
        .filter(|a| !a.text.starts_with(['-', '/']))
        .collect();
    let n = paths.len();
    if n < 2 {
        return None;
    }
    paths[..n - 1]
        .iter()
        .find(|a| matches!(class(c, a), Target::Root | Target::SystemDir | Target::Home))
        .map(|a| a.text.clone())
}

/// The destination a Windows copy or write command replaces: the last path of `copy`,
/// `move`, `xcopy`, `Copy-Item`, `Move-Item`, or the file `Set-Content`/`Out-File` writes.
fn windows_destination(c: &Cmd) -> Option<&Arg> {
    let paths: Vec<&Arg> = c
        .args()
        .iter()
        .filter(|a| !a.text.is_empty() && !a.text.starts_with(['-', '/']))
        .collect();
    match c.program() {
        "copy" | "move" | "xcopy" | "copy-item" | "cp" | "cpi" | "move-item" | "mi" => {
            (paths.len() >= 2).then(|| paths[paths.len() - 1])
        }
        "set-content" | "out-file" => paths.first().copied(),
        _ => None,
    }
}

/// `copy /y hosts C:\Windows\System32\drivers\etc\hosts`, `Set-Content C:\Windows\… ''`.
pub(crate) fn windows_overwrite_system(c: &Cmd) -> Option<String> {
    windows_destination(c)
        .filter(|a| matches!(class(c, a), Target::UnderSystem | Target::SystemDir))
        .map(|a| a.text.clone())
}

/// `copy /y NUL %USERPROFILE%\Documents\x.xlsx`: a file of the user's emptied or replaced.
pub(crate) fn windows_overwrite_user(c: &Cmd) -> Option<String> {
    let args = args_lower(c);
    let forced = args
        .iter()
        .any(|a| a == "/y" || a == "-force" || a == "nul");
    (forced || c.program() == "set-content")
        .then(|| windows_destination(c))
        .flatten()
        .filter(|a| class(c, a) == Target::UnderHome)
        .map(|a| a.text.clone())
}

/// PowerShell's `Get-ChildItem | Remove-Item -Recurse` with no filter: everything here.
pub(crate) fn ps_pipeline_delete_here(c: &Cmd) -> Option<String> {
    if !matches!(
        c.program(),
        "remove-item" | "ri" | "del" | "rm" | "erase" | "rd"
    ) {
        return None;
    }
    let own_path = c.args().iter().any(|a| !a.text.starts_with('-'));
    let from_listing = c.upstream().next().is_some_and(|u| {
        matches!(u.program(), "get-childitem" | "gci" | "ls" | "dir")
            && u.args().iter().all(|a| a.text.starts_with('-'))
            && !u.args().iter().any(|a| {
                let l = a.text.to_ascii_lowercase();
                l == "-filter" || l == "-include"
            })
    });
    (!own_path && from_listing).then(|| c.display())
}

/// `dd if=/dev/zero of=/fill` with no count, `cat /dev/zero > /dev/shm/x`: a filesystem (or
/// memory) filled until nothing else can write.
pub(crate) fn fill_disk(c: &Cmd) -> Option<String> {
    let endless = |t: &str| matches!(t, "/dev/zero" | "/dev/urandom" | "/dev/random");
    match c.program() {
        "dd" => {
            let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
            let from = args
                .iter()
                .any(|a| a.strip_prefix("if=").is_some_and(endless));
            let bounded = args.iter().any(|a| a.starts_with("count="));
            let to = args.iter().find_map(|a| a.strip_prefix("of="))?;
            (from && !bounded && (!to.starts_with("/dev/") || to.starts_with("/dev/shm/")))
                .then(|| to.to_string())
        }
        "cat" if c.args().iter().any(|a| endless(&a.text)) => c
            .redirects
            .iter()
            .find(|r| {
                r.op != RedirOp::Read
                    && (!r.target.text.starts_with("/dev/")
                        || r.target.text.starts_with("/dev/shm/"))
            })
            .map(|r| r.target.text.clone()),
        _ => None,
    }
}

/// `git update-ref -d refs/heads/main`: the main branch deleted.
pub(crate) fn git_delete_main_ref(c: &Cmd) -> Option<String> {
    let args: Vec<&str> = c.args().iter().map(|a| a.text.as_str()).collect();
    (c.program() == "git"
        && args.first() == Some(&"update-ref")
        && args.contains(&"-d")
        && args.iter().any(|a| {
            matches!(
                a.trim_start_matches("refs/heads/"),
                "main" | "master" | "trunk" | "production"
            ) && a.starts_with("refs/heads/")
        }))
    .then(|| c.display())
}

/// `rm -r "$DIR"/cache`: a recursive delete whose target depends on a variable caro cannot know.
pub(crate) fn rm_unknown_prefix(c: &Cmd) -> Option<String> {
    if c.program() != "rm" || !c.gnu_flags().has(&['r', 'R'], &["recursive"]) {
        return None;
    }
    c.gnu_flags()
        .operands
        .iter()
        .find(|a| a.unknown && !a.text.is_empty())
        .map(|a| a.text.clone())
}

/// `perl -i -pe 's/^root:[^:]*:/root::/' /etc/shadow`: root's password hash blanked, so anyone
/// can become root.
pub(crate) fn blank_root_password(c: &Cmd) -> Option<String> {
    let edits = matches!(c.program(), "sed" | "perl")
        && c.args().iter().any(|a| a.text.ends_with("/etc/shadow"));
    (edits && c.args().iter().any(|a| a.text.contains("root::"))).then(|| c.display())
}

/// `(crontab -l; echo '* * * * * curl … | sh') | crontab -`: a job written into the crontab on
/// the same line, rated as the command it schedules. Returns the index of the `crontab`, the
/// job and its level.
pub(crate) fn scheduled_job(
    cmds: &[Cmd],
    shell: crate::shell::ShellType,
) -> Option<(usize, String, super::RiskLevel)> {
    let at = cmds
        .iter()
        .position(|c| c.program() == "crontab" && c.args().iter().any(|a| a.text == "-"))?;
    cmds.iter()
        .filter(|c| matches!(c.program(), "echo" | "printf"))
        .flat_map(|c| c.args().iter())
        .flat_map(|a| a.text.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let job = if fields.first().is_some_and(|f| f.starts_with('@')) {
                fields.get(1..)?.join(" ")
            } else {
                fields.get(5..)?.join(" ")
            };
            let level = super::validate(&job, shell).risk;
            (level >= super::RiskLevel::High).then_some((at, job, level))
        })
        .max_by_key(|(_, _, l)| *l)
}
