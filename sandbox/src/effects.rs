//! What a command did to a folder, from the digests before and after (see
//! [`crate::digest_tree`]), in lists and in a line for the user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The changes between two digests of a folder. Paths are relative to the folder and sorted;
/// a folder ends with `/`, and the folder itself is `.`. A deleted (or created) folder is listed
/// once, not with everything inside it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Effects {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// Content changed, a symlink points elsewhere, or a file became a folder (or the reverse).
    pub modified: Vec<String>,
    /// Same content, other permission bits.
    pub permissions: Vec<String>,
}

/// Names listed per kind of change in [`Effects::summary`]; the rest are counted.
const SHOWN: usize = 5;

impl Effects {
    pub fn between(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Self {
        let mut effects = Self::default();
        let deleted: BTreeSet<&str> = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .map(String::as_str)
            .collect();
        let created: BTreeSet<&str> = after
            .keys()
            .filter(|k| !before.contains_key(*k))
            .map(String::as_str)
            .collect();
        effects.deleted = outermost(&deleted, before);
        effects.created = outermost(&created, after);
        for (path, old) in before {
            let Some(new) = after.get(path) else { continue };
            let (old, new) = (Entry::parse(old), Entry::parse(new));
            if old.kind != new.kind || old.content != new.content {
                effects.modified.push(shown(path, after));
            }
            if old.kind == new.kind && old.mode != new.mode {
                effects.permissions.push(shown(path, after));
            }
        }
        effects
    }

    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.deleted.is_empty()
            && self.modified.is_empty()
            && self.permissions.is_empty()
    }

    /// A short line for the user: "changes nothing", "would delete 3 files: a.log, b.log,
    /// c.log", "would create out.tar.gz; would modify notes.txt". Deletions come first: they
    /// are what the preview is for.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("delete", &self.deleted),
            ("create", &self.created),
            ("modify", &self.modified),
            ("change permissions of", &self.permissions),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(verb, names)| format!("would {verb} {}", list(names)))
        .collect();
        if parts.is_empty() {
            "changes nothing".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The paths of `set` whose parent folder is not in it too, as shown to the user.
fn outermost(set: &BTreeSet<&str>, tree: &BTreeMap<String, String>) -> Vec<String> {
    set.iter()
        .filter(|path| {
            Path::new(path)
                .parent()
                .and_then(Path::to_str)
                .is_none_or(|parent| !set.contains(parent))
        })
        .map(|path| shown(path, tree))
        .collect()
}

/// `path` with a `/` when `tree` says it is a folder.
fn shown(path: &str, tree: &BTreeMap<String, String>) -> String {
    let is_dir = tree
        .get(path)
        .is_some_and(|v| Entry::parse(v).kind == "dir");
    if is_dir && path != "." {
        format!("{path}/")
    } else {
        path.to_owned()
    }
}

/// "a.log" alone, or "3 files: a.log, b.log, c.log", or "7 files: a, b, c, d, e and 2 more".
fn list(names: &[String]) -> String {
    let name = |n: &String| {
        if n == "." {
            "this folder".to_owned()
        } else {
            n.clone()
        }
    };
    if let [one] = names {
        return name(one);
    }
    let folders = names
        .iter()
        .filter(|n| n.ends_with('/') || *n == ".")
        .count();
    let noun = match folders {
        0 => "files",
        f if f == names.len() => "folders",
        _ => "items",
    };
    let mut text = format!(
        "{} {noun}: {}",
        names.len(),
        names
            .iter()
            .take(SHOWN)
            .map(name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// One digest value: `dir MODE`, `file MODE HASH` or `link TARGET`.
struct Entry<'a> {
    kind: &'a str,
    mode: &'a str,
    content: &'a str,
}

impl<'a> Entry<'a> {
    fn parse(value: &'a str) -> Self {
        let (kind, rest) = value.split_once(' ').unwrap_or((value, ""));
        if kind == "link" {
            // A target may hold spaces; a link has no mode of its own.
            return Self {
                kind,
                mode: "",
                content: rest,
            };
        }
        let (mode, content) = rest.split_once(' ').unwrap_or((rest, ""));
        Self {
            kind,
            mode,
            content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn tree(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const PROJECT: &[(&str, &str)] = &[
        (".", "dir 755"),
        ("a.log", "file 644 aa"),
        ("b.log", "file 644 bb"),
        ("notes.txt", "file 644 nn"),
        ("run.sh", "file 755 rr"),
        ("src", "dir 755"),
        ("src/main.rs", "file 644 mm"),
        ("src/util", "dir 755"),
        ("src/util/x.rs", "file 644 xx"),
        ("latest", "link src/main.rs"),
    ];

    /// PROJECT with `drop` removed and `set` added or replaced.
    fn changed(drop: &[&str], set: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut t = tree(PROJECT);
        for d in drop {
            t.remove(*d);
        }
        t.extend(tree(set));
        t
    }

    #[rstest]
    #[case::nothing(changed(&[], &[]), Effects::default())]
    #[case::two_files_deleted(
        changed(&["a.log", "b.log"], &[]),
        Effects { deleted: names(&["a.log", "b.log"]), ..Effects::default() }
    )]
    #[case::deleted_folder_listed_once(
        changed(&["src", "src/main.rs", "src/util", "src/util/x.rs"], &[]),
        Effects { deleted: names(&["src/"]), ..Effects::default() }
    )]
    #[case::file_deleted_inside_a_kept_folder(
        changed(&["src/util/x.rs"], &[]),
        Effects { deleted: names(&["src/util/x.rs"]), ..Effects::default() }
    )]
    #[case::created_folder_listed_once(
        changed(&[], &[("out", "dir 755"), ("out/a", "file 644 a1"), ("out/b/c", "file 644 c1"), ("out/b", "dir 755")]),
        Effects { created: names(&["out/"]), ..Effects::default() }
    )]
    #[case::archive_created(
        changed(&[], &[("out.tar.gz", "file 644 tt")]),
        Effects { created: names(&["out.tar.gz"]), ..Effects::default() }
    )]
    #[case::content_modified(
        changed(&[], &[("notes.txt", "file 644 n2")]),
        Effects { modified: names(&["notes.txt"]), ..Effects::default() }
    )]
    #[case::permissions_changed(
        changed(&[], &[("run.sh", "file 644 rr"), ("src", "dir 700"), (".", "dir 0")]),
        Effects { permissions: names(&[".", "run.sh", "src/"]), ..Effects::default() }
    )]
    #[case::content_and_permissions_changed(
        changed(&[], &[("notes.txt", "file 600 n2")]),
        Effects { modified: names(&["notes.txt"]), permissions: names(&["notes.txt"]), ..Effects::default() }
    )]
    #[case::file_replaced_by_a_folder(
        changed(&[], &[("notes.txt", "dir 755")]),
        Effects { modified: names(&["notes.txt/"]), ..Effects::default() }
    )]
    #[case::link_pointed_elsewhere(
        changed(&[], &[("latest", "link notes.txt")]),
        Effects { modified: names(&["latest"]), ..Effects::default() }
    )]
    #[case::everything_emptied(
        tree(&[(".", "dir 755")]),
        Effects { deleted: names(&["a.log", "b.log", "latest", "notes.txt", "run.sh", "src/"]), ..Effects::default() }
    )]
    fn between_lists_each_change_once(
        #[case] after: BTreeMap<String, String>,
        #[case] expected: Effects,
    ) {
        let effects = Effects::between(&tree(PROJECT), &after);
        assert_eq!(effects, expected);
        assert_eq!(effects.is_empty(), expected == Effects::default());
    }

    #[rstest]
    #[case::nothing(Effects::default(), "changes nothing")]
    #[case::one_created(
        Effects { created: names(&["out.tar.gz"]), ..Effects::default() },
        "would create out.tar.gz"
    )]
    #[case::three_deleted(
        Effects { deleted: names(&["a.log", "b.log", "c.log"]), ..Effects::default() },
        "would delete 3 files: a.log, b.log, c.log"
    )]
    #[case::more_than_five(
        Effects { deleted: names(&["a", "b", "c", "d", "e", "f", "g"]), ..Effects::default() },
        "would delete 7 files: a, b, c, d, e and 2 more"
    )]
    #[case::folders(
        Effects { deleted: names(&["build/", "dist/"]), ..Effects::default() },
        "would delete 2 folders: build/, dist/"
    )]
    #[case::files_and_folders(
        Effects { deleted: names(&["a.log", "src/"]), ..Effects::default() },
        "would delete 2 items: a.log, src/"
    )]
    #[case::one_modified(
        Effects { modified: names(&["notes.txt"]), ..Effects::default() },
        "would modify notes.txt"
    )]
    #[case::one_permission(
        Effects { permissions: names(&["run.sh"]), ..Effects::default() },
        "would change permissions of run.sh"
    )]
    #[case::the_folder_itself(
        Effects { permissions: names(&[".", "a", "b/"]), ..Effects::default() },
        "would change permissions of 3 items: this folder, a, b/"
    )]
    #[case::several_kinds_deletions_first(
        Effects {
            created: names(&["new.txt"]),
            deleted: names(&["a.log", "b.log"]),
            modified: names(&["notes.txt"]),
            permissions: names(&["run.sh"]),
        },
        "would delete 2 files: a.log, b.log; would create new.txt; would modify notes.txt; would change permissions of run.sh"
    )]
    fn summary_reads_as_a_sentence(#[case] effects: Effects, #[case] text: &str) {
        assert_eq!(effects.summary(), text);
    }
}
