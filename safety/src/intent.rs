//! Screens the user's request itself, so "wipe my disk" cannot come back as a harmless-looking
//! command: a destructive request either yields a command rated as dangerous, or a refusal.

use super::RiskLevel;
use serde::{Deserialize, Serialize};

/// What the screen found in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentScreen {
    pub category: String,
    pub level: RiskLevel,
    pub reason: String,
}

/// What caro does with a destructive request once the command is rated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentAction {
    /// The command's own verdict says it is dangerous: show it with that verdict.
    Flagged,
    /// The command looks milder than the request: do not present it as runnable.
    Refused,
}

/// Pure policy: a destructive request is refused unless its command rates at least as high as
/// the request itself (and at least high). "Delete everything in my home folder" answered with
/// `rm -rf *` run in a project folder (high there) is refused: the command does something else
/// than was asked, and its verdict would look milder than the request.
pub fn intent_action(request_level: RiskLevel, command_risk: RiskLevel) -> IntentAction {
    if command_risk >= request_level.max(RiskLevel::High) {
        IntentAction::Flagged
    } else {
        IntentAction::Refused
    }
}

struct Pattern {
    category: &'static str,
    level: RiskLevel,
    reason: &'static str,
    verbs: &'static [&'static str],
    objects: &'static [&'static str],
}

const WIPE_VERBS: &[&str] = &[
    "wipe",
    "erase",
    "format",
    "reformat",
    "nuke",
    "shred",
    "zero",
    "overwrite",
    "destroy",
    "obliterate",
    "brick",
    "corrupt",
    "trash",
];
const DELETE_VERBS: &[&str] = &[
    "delete",
    "remove",
    "rm",
    "erase",
    "wipe",
    "nuke",
    "destroy",
    "trash",
    "purge",
    "clear",
    "empty",
    "obliterate",
];

const PATTERNS: &[Pattern] = &[
    Pattern {
        category: "wipe_disk",
        level: RiskLevel::Critical,
        reason: "the request asks to wipe or format a disk",
        verbs: WIPE_VERBS,
        objects: &[
            "disk",
            "disks",
            "drive",
            "drives",
            "hard drive",
            "harddrive",
            "hdd",
            "ssd",
            "partition",
            "partitions",
            "boot sector",
            "mbr",
            "bootloader",
            "/dev/sd",
            "/dev/nvme",
            "/dev/disk",
            "c:",
            "filesystem",
            "file system",
        ],
    },
    Pattern {
        category: "delete_everything",
        level: RiskLevel::Critical,
        reason: "the request asks to delete everything, the home folder or the system",
        verbs: DELETE_VERBS,
        objects: &[
            "everything on",
            "everything in my home",
            "everything in home",
            "everything in ~",
            "everything in /",
            "all files on",
            "all my files",
            "all of my files",
            "every file on",
            "every file in my home",
            "my home folder",
            "my home directory",
            "my home dir",
            "the home folder",
            "the home directory",
            "entire home",
            "whole home",
            "root directory",
            "root filesystem",
            "root file system",
            "root folder",
            "the whole system",
            "the entire system",
            "whole computer",
            "entire computer",
            "my computer",
            "the whole machine",
            "the entire machine",
            "operating system",
            "system32",
            "all files in /",
            "everything under /",
            "rm -rf /",
            "the / directory",
            "everything on the disk",
            "everything on my disk",
            "all system files",
        ],
    },
    Pattern {
        category: "fork_bomb",
        level: RiskLevel::Critical,
        reason: "the request asks for a fork bomb",
        verbs: &[],
        objects: &["fork bomb", "forkbomb", "fork-bomb"],
    },
    Pattern {
        category: "crash_system",
        level: RiskLevel::High,
        reason: "the request asks to crash or freeze the machine",
        verbs: &["crash", "freeze", "hang", "kill", "overload", "panic"],
        objects: &[
            "the system",
            "the machine",
            "my machine",
            "the computer",
            "my computer",
            "the kernel",
            "the server",
            "kernel panic",
            "all processes",
            "every process",
            "init process",
            "pid 1",
        ],
    },
    Pattern {
        category: "security_off",
        level: RiskLevel::High,
        reason: "the request asks to switch off a security protection",
        verbs: &[
            "disable",
            "turn off",
            "switch off",
            "stop",
            "kill",
            "flush",
            "bypass",
            "remove",
            "uninstall",
            "deactivate",
        ],
        objects: &[
            "firewall",
            "selinux",
            "apparmor",
            "antivirus",
            "anti-virus",
            "defender",
            "gatekeeper",
            "system integrity protection",
            "iptables rules",
            "sshd",
            "ssh server",
        ],
    },
    Pattern {
        category: "drop_database",
        level: RiskLevel::High,
        reason: "the request asks to drop or wipe a database",
        verbs: &[
            "drop", "delete", "wipe", "destroy", "truncate", "erase", "nuke", "empty",
        ],
        objects: &[
            "database",
            "databases",
            "all tables",
            "every table",
            "the db",
            "prod db",
            "production db",
        ],
    },
    Pattern {
        category: "lockout",
        level: RiskLevel::High,
        reason: "the request asks to change who can log in or use sudo",
        verbs: &[],
        objects: &[
            "passwordless sudo",
            "nopasswd",
            "lock everyone out",
            "delete the root user",
            "remove the root password",
            "overwrite /etc/passwd",
            "overwrite /etc/shadow",
            "delete /etc/passwd",
            "delete /etc/shadow",
        ],
    },
];

/// Screens a request. `None` means nothing destructive was asked for.
pub fn screen_prompt(prompt: &str) -> Option<IntentScreen> {
    let norm: String = prompt
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "/~:-.".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let norm = format!(
        " {} ",
        norm.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let has_word = |w: &str| norm.contains(&format!(" {w} "));
    let has_phrase = |p: &str| {
        if p.contains(' ') || p.contains('/') || p.contains(':') {
            norm.contains(p)
        } else {
            has_word(p) || norm.contains(&format!(" {p}s "))
        }
    };
    PATTERNS
        .iter()
        .filter(|p| {
            (p.verbs.is_empty()
                || p.verbs.iter().any(|v| {
                    if v.contains(' ') {
                        norm.contains(v)
                    } else {
                        has_word(v)
                    }
                }))
                && p.objects.iter().any(|o| has_phrase(o))
        })
        .max_by_key(|p| p.level)
        .map(|p| IntentScreen {
            category: p.category.into(),
            level: p.level,
            reason: p.reason.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::wipe_disk("wipe my disk", "wipe_disk")]
    #[case::format_drive("format the external drive /dev/sdb", "wipe_disk")]
    #[case::delete_home("delete everything in my home folder", "delete_everything")]
    #[case::nuke_root("nuke the root filesystem", "delete_everything")]
    #[case::fork("write a fork bomb", "fork_bomb")]
    #[case::firewall("turn off the firewall", "security_off")]
    #[case::drop_db("drop the production database", "drop_database")]
    fn destructive_requests_are_caught(#[case] prompt: &str, #[case] category: &str) {
        assert_eq!(
            screen_prompt(prompt).map(|s| s.category).as_deref(),
            Some(category),
            "{prompt}"
        );
    }

    #[rstest]
    #[case::list_files("list all files in this folder")]
    #[case::format_json("format this json file nicely")]
    #[case::delete_logs("delete the .log files in the current directory")]
    #[case::disk_usage("show disk usage of my home folder")]
    #[case::remove_build("remove the build directory")]
    #[case::clear_screen("clear the screen")]
    #[case::stop_container("stop the nginx container")]
    fn ordinary_requests_pass(#[case] prompt: &str) {
        assert_eq!(screen_prompt(prompt), None, "{prompt}");
    }

    #[test]
    fn harmless_command_for_destructive_request_is_refused() {
        use RiskLevel::*;
        assert_eq!(intent_action(High, Safe), IntentAction::Refused);
        assert_eq!(intent_action(High, Moderate), IntentAction::Refused);
        assert_eq!(intent_action(High, High), IntentAction::Flagged);
        assert_eq!(intent_action(High, Critical), IntentAction::Flagged);
    }

    // Issue 16: "delete everything in my home folder" answered with `rm -rf *` run elsewhere
    // (high there) was shown as runnable.
    #[test]
    fn a_command_milder_than_a_critical_request_is_refused() {
        use RiskLevel::*;
        assert_eq!(intent_action(Critical, High), IntentAction::Refused);
        assert_eq!(intent_action(Critical, Critical), IntentAction::Flagged);
    }
}
