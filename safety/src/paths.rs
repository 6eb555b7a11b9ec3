//! Classifies a path argument by how bad it is to destroy: the root, system directories, the
//! home folder, raw disks, or ordinary files in the working directory.

use super::Location;
use super::ir::Arg;

/// Stands for "some file below this directory" where `find` narrows its matches.
pub(crate) const FOUND_MARKER: &str = "\u{1}found";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/`, `/*`, `C:\`, or an expansion that collapses to them.
    Root,
    /// A top-level system directory or all of its contents: `/etc`, `/usr/*`, `C:\Windows`.
    SystemDir,
    /// A home folder as a whole: `~`, `$HOME`, `/home/alice`, `C:\Users\bob`.
    Home,
    /// Something inside a system directory: `/etc/nginx`, `/usr/lib/x`.
    UnderSystem,
    /// Something inside a home folder given by absolute path or `~`.
    UnderHome,
    /// A critical single file: `/etc/passwd`, `/etc/shadow`, `/etc/sudoers`.
    SensitiveFile,
    /// A raw block device or memory device.
    Device,
    /// A harmless device: `/dev/null`, `/dev/stdout`, ttys.
    PseudoDevice,
    /// Everything in the working directory: `.`, `*`, `./*`.
    CwdAll,
    /// The parent directory or above: `..`, `../..`.
    Parent,
    /// `/tmp/…` and friends.
    Temp,
    /// Another absolute path (`/mnt/x`, `/data`).
    OtherAbsolute,
    /// A relative path in the working directory.
    Relative,
    /// Nothing known: an unresolved variable that expanded to nothing.
    Unknown,
}

impl Target {
    /// Destroying it wrecks the system or the user's data as a whole.
    pub fn is_catastrophic(self) -> bool {
        matches!(self, Self::Root | Self::SystemDir | Self::Home)
    }
}

const SYSTEM_DIRS: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "opt",
    "proc",
    "root",
    "sbin",
    "srv",
    "sys",
    "usr",
    "var",
    "home",
    "users",
    "system",
    "library",
    "applications",
    "private",
    "snap",
    "nix",
    "run",
    "efi",
];
const SENSITIVE_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/group",
    "/etc/gshadow",
    "/etc/fstab",
    "/etc/ssh/sshd_config",
    "/etc/pam.d",
    "/boot/grub/grub.cfg",
    "/etc/master.passwd",
    "/private/etc/sudoers",
];
const DEVICE_PREFIXES: &[&str] = &[
    "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "disk", "rdisk", "md", "dm-", "mapper/", "mem",
    "kmem", "port", "sr", "nbd", "loop", "zd", "bcache",
];
const PSEUDO_DEVICES: &[&str] = &[
    "null", "zero", "stdout", "stderr", "stdin", "tty", "random", "urandom", "full", "ptmx", "fd/",
    "pts/", "tty", "console", "shm/",
];

/// Lexically normalizes `/a//b/./c/../d` → `/a/b/d`, keeping track of glob-only tails:
/// `/usr/*` is "all of /usr".
fn normalize_abs(path: &str) -> (Vec<String>, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut all_contents = false;
    for seg in path.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s.to_string()),
        }
    }
    // Trailing `*`, `.*`, `{*,.*}` mean "everything in the directory".
    while let Some(last) = parts.last() {
        if is_glob_all(last) {
            parts.pop();
            all_contents = true;
        } else {
            break;
        }
    }
    (parts, all_contents)
}

fn is_glob_all(seg: &str) -> bool {
    matches!(
        seg,
        "*" | ".*" | "*.*" | "**" | ".[!.]*" | "{*,.*}" | "{.*,*}" | "?*" | "[!.]*"
    )
}

/// Windows drive prefix: `C:`, `c:\`, `D:/`.
fn strip_drive(p: &str) -> Option<&str> {
    let b = p.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        Some(&p[2..])
    } else {
        None
    }
}

pub(crate) fn classify(arg: &Arg) -> Target {
    classify_text(&arg.text, arg.unknown)
}

/// Like [`classify`], for a command that runs in `at`: a relative target is what it names
/// there (`*` in the home folder is the home folder), and an absolute one that is the user's
/// real home folder is `Home`. Without a location this is [`classify`].
pub(crate) fn classify_in(arg: &Arg, at: Option<&Location>) -> Target {
    let plain = classify(arg);
    let Some(at) = at else {
        return plain;
    };
    let text = arg.text.trim();
    if arg.unknown || text.is_empty() || text.starts_with('~') {
        return plain;
    }
    let relative = matches!(plain, Target::CwdAll | Target::Parent | Target::Relative);
    let absolute = if relative {
        format!("{}/{text}", at.cwd.trim_end_matches(['/', '\\']))
    } else {
        text.to_string()
    };
    let real = classify_text(&absolute, false);
    // The root or a system folder stays what it is even where it is someone's home (`HOME=/`
    // for a service account), so the rules for those still see it.
    if !matches!(
        real,
        Target::Root | Target::SystemDir | Target::SensitiveFile
    ) && at.home.as_deref().is_some_and(|h| same_dir(&absolute, h))
    {
        return Target::Home;
    }
    match real {
        // Where it lands matters more than how it was spelt.
        real @ (Target::Root
        | Target::SystemDir
        | Target::Home
        | Target::UnderSystem
        | Target::SensitiveFile) => real,
        // A folder of the user's own or elsewhere: keep the spelling's class, so that `*` in a
        // project is "everything here" and `build` is an ordinary relative path.
        _ => plain,
    }
}

/// Whether two absolute paths name the same folder, or `a` is all of `b`'s contents (`b/*`).
fn same_dir(a: &str, b: &str) -> bool {
    let split = |p: &str| {
        let (drive, rest) = match strip_drive(p) {
            Some(rest) => (p[..2].to_ascii_lowercase(), rest.to_string()),
            None => (String::new(), p.to_string()),
        };
        (drive, normalize_abs(&rest).0)
    };
    split(a) == split(b)
}

pub(crate) fn classify_text(raw: &str, unknown: bool) -> Target {
    let text = raw.trim();
    if text.is_empty() {
        return if unknown {
            Target::Unknown
        } else {
            Target::Relative
        };
    }
    // Home folder spellings: `~`, `~/`, `~user`, `$HOME` (already rewritten to `~` by the front ends).
    if let Some(rest) = text.strip_prefix('~') {
        let rest = rest.split_once(['/', '\\']).map(|(_, r)| r).unwrap_or("");
        let (parts, _) = normalize_abs(rest);
        return if parts.is_empty() {
            Target::Home
        } else {
            Target::UnderHome
        };
    }
    if let Some(rest) = strip_drive(text) {
        return classify_windows(rest);
    }
    if text.starts_with("\\\\") {
        return Target::OtherAbsolute;
    }
    if text.starts_with('/') || text.starts_with('\\') {
        let lower = text.to_ascii_lowercase();
        if let Some(dev) = lower.strip_prefix("/dev/") {
            if PSEUDO_DEVICES.iter().any(|p| dev.starts_with(p)) {
                return Target::PseudoDevice;
            }
            if DEVICE_PREFIXES.iter().any(|p| dev.starts_with(p)) {
                return Target::Device;
            }
        }
        let (parts, _all) = normalize_abs(text);
        let joined = format!("/{}", parts.join("/"));
        if SENSITIVE_FILES
            .iter()
            .any(|f| joined == *f || joined.starts_with(&format!("{f}/")))
            || joined.starts_with("/etc/sudoers")
        {
            return Target::SensitiveFile;
        }
        let Some(first) = parts.first() else {
            return Target::Root;
        };
        let first_l = first.to_ascii_lowercase();
        if first == FOUND_MARKER {
            return Target::UnderSystem;
        }
        if matches!(first_l.as_str(), "tmp" | "temp")
            || (parts.len() >= 2 && (first_l == "var" || first_l == "private") && parts[1] == "tmp")
        {
            // `/tmp` itself or all of it: other programs' files live there.
            let whole = parts.len() == 1 || (parts.len() == 2 && first_l != "tmp");
            return if whole {
                Target::UnderSystem
            } else {
                Target::Temp
            };
        }
        let home_root = first_l == "home" || first_l == "users";
        if home_root && parts.len() == 2 {
            return Target::Home;
        }
        if home_root && parts.len() > 2 {
            return Target::UnderHome;
        }
        if first_l == "root" {
            return if parts.len() == 1 {
                Target::Home
            } else {
                Target::UnderHome
            };
        }
        // Second-level directories the system cannot run without.
        let core_pair = parts.len() == 2
            && matches!(
                (first_l.as_str(), parts[1].to_ascii_lowercase().as_str()),
                (
                    "usr",
                    "bin"
                        | "sbin"
                        | "lib"
                        | "lib32"
                        | "lib64"
                        | "libexec"
                        | "share"
                        | "local"
                        | "include"
                ) | ("var", "lib" | "db" | "spool")
                    | ("system", "library")
                    | ("etc", "ssh" | "pam.d" | "systemd")
            );
        if core_pair {
            return Target::SystemDir;
        }
        if SYSTEM_DIRS.contains(&first_l.as_str()) {
            return if parts.len() == 1 {
                Target::SystemDir
            } else {
                Target::UnderSystem
            };
        }
        if matches!(first_l.as_str(), "mnt" | "media" | "volumes") && parts.len() == 1 {
            return Target::SystemDir;
        }
        return Target::OtherAbsolute;
    }
    // Relative paths.
    match normalize_rel(text) {
        Rel::Cwd => Target::CwdAll,
        Rel::Parent => Target::Parent,
        Rel::Inside => Target::Relative,
    }
}

enum Rel {
    Cwd,
    Parent,
    Inside,
}

fn normalize_rel(text: &str) -> Rel {
    let mut depth: i64 = 0;
    let mut went_out = false;
    let segs: Vec<&str> = text.split(['/', '\\']).collect();
    for (i, seg) in segs.iter().enumerate() {
        match *seg {
            "" | "." => {}
            ".." => {
                depth -= 1;
                went_out |= depth < 0;
            }
            s if is_glob_all(s) && i == segs.len() - 1 => {}
            _ => depth += 1,
        }
    }
    // `..` and `../..` leave the working directory; `../sibling` names a sibling folder.
    if depth < 0 {
        return Rel::Parent;
    }
    if went_out || depth > 0 {
        Rel::Inside
    } else {
        Rel::Cwd
    }
}

const WIN_SYSTEM: &[&str] = &[
    "windows",
    "program files",
    "program files (x86)",
    "programdata",
    "users",
    "boot",
    "system volume information",
    "recovery",
    "$recycle.bin",
];

fn classify_windows(rest: &str) -> Target {
    let (parts, _) = normalize_abs(rest);
    let Some(first) = parts.first() else {
        return Target::Root;
    };
    let first = first.to_ascii_lowercase();
    if first == "users" {
        return match parts.len() {
            1 => Target::SystemDir,
            2 => Target::Home,
            _ => Target::UnderHome,
        };
    }
    if parts.len() > 1
        && parts
            .iter()
            .any(|p| p.eq_ignore_ascii_case("temp") || p.eq_ignore_ascii_case("tmp"))
    {
        return Target::Temp;
    }
    let core_dir = first == "windows"
        && parts.len() == 2
        && matches!(
            parts[1].to_ascii_lowercase().as_str(),
            "system32" | "syswow64" | "winsxs" | "boot"
        );
    if core_dir {
        return Target::SystemDir;
    }
    if WIN_SYSTEM.contains(&first.as_str()) {
        return if parts.len() == 1 {
            Target::SystemDir
        } else {
            Target::UnderSystem
        };
    }
    Target::OtherAbsolute
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/", Target::Root)]
    #[case("/*", Target::Root)]
    #[case("//", Target::Root)]
    #[case("/usr/..", Target::Root)]
    #[case("/etc", Target::SystemDir)]
    #[case("/etc/", Target::SystemDir)]
    #[case("/usr/*", Target::SystemDir)]
    #[case("/etc/nginx", Target::UnderSystem)]
    #[case("/usr/bin", Target::SystemDir)]
    #[case("/usr/local/lib", Target::UnderSystem)]
    #[case("/etc/passwd", Target::SensitiveFile)]
    #[case("/etc/sudoers.d/x", Target::SensitiveFile)]
    #[case("~", Target::Home)]
    #[case("~/", Target::Home)]
    #[case("~/*", Target::Home)]
    #[case("~/Documents", Target::UnderHome)]
    #[case("/home/alice", Target::Home)]
    #[case("/home/alice/.cache", Target::UnderHome)]
    #[case("/dev/sda", Target::Device)]
    #[case("/dev/nvme0n1p1", Target::Device)]
    #[case("/dev/null", Target::PseudoDevice)]
    #[case("/tmp/build", Target::Temp)]
    #[case("/tmp", Target::UnderSystem)]
    #[case(".", Target::CwdAll)]
    #[case("*", Target::CwdAll)]
    #[case("./*", Target::CwdAll)]
    #[case("..", Target::Parent)]
    #[case("../..", Target::Parent)]
    #[case("./build", Target::Relative)]
    #[case("../build", Target::Relative)]
    #[case("../*", Target::Parent)]
    #[case("node_modules", Target::Relative)]
    #[case("build/..", Target::CwdAll)]
    #[case("C:\\", Target::Root)]
    #[case("c:/", Target::Root)]
    #[case("C:\\Windows\\System32", Target::SystemDir)]
    #[case("C:\\Windows\\Temp", Target::Temp)]
    #[case("C:\\Windows\\Fonts", Target::UnderSystem)]
    #[case("C:\\Users\\bob", Target::Home)]
    #[case("/data/x", Target::OtherAbsolute)]
    fn classifies(#[case] path: &str, #[case] want: Target) {
        assert_eq!(classify_text(path, false), want, "{path}");
    }

    fn at(cwd: &str) -> Location {
        Location {
            cwd: cwd.into(),
            home: Some("/tmp/h".into()),
        }
    }

    #[rstest]
    #[case::everything_in_home("*", "/tmp/h", Target::Home)]
    #[case::dot_in_home(".", "/tmp/h/", Target::Home)]
    #[case::parent_of_a_home_project("..", "/tmp/h/proj", Target::Home)]
    #[case::everything_in_a_project("*", "/tmp/h/proj/sub", Target::CwdAll)]
    #[case::parent_inside_a_project("..", "/tmp/h/proj/sub", Target::Parent)]
    #[case::a_file_in_a_project("build", "/tmp/h/proj", Target::Relative)]
    #[case::home_by_absolute_path("/tmp/h", "/srv", Target::Home)]
    #[case::home_contents_by_absolute_path("/tmp/h/*", "/srv", Target::Home)]
    #[case::everything_in_root("*", "/", Target::Root)]
    #[case::a_system_dir_by_relative_path("etc", "/", Target::SystemDir)]
    #[case::everything_in_a_system_dir("./*", "/etc", Target::SystemDir)]
    #[case::everything_in_tmp("*", "/tmp", Target::UnderSystem)]
    fn classifies_where_the_command_runs(
        #[case] path: &str,
        #[case] cwd: &str,
        #[case] want: Target,
    ) {
        assert_eq!(
            classify_in(&Arg::lit(path), Some(&at(cwd))),
            want,
            "{path} in {cwd}"
        );
    }

    #[test]
    fn the_root_stays_the_root_where_home_is_the_root() {
        let at = Location {
            cwd: "/".into(),
            home: Some("/".into()),
        };
        assert_eq!(classify_in(&Arg::lit("/"), Some(&at)), Target::Root);
        assert_eq!(classify_in(&Arg::lit("*"), Some(&at)), Target::Root);
    }

    #[test]
    fn unresolved_expansion_that_vanished_is_unknown() {
        assert_eq!(classify_text("", true), Target::Unknown);
    }
}
