//! What the request's folder holds, in a few words the model is told: whether the paths the
//! request names exist there (and what is there instead), and a short listing (issue 19,
//! item 4, "where the request points").
//!
//! [`look`] reads the disk; [`Surroundings::note`] is pure. The note goes after the cached
//! prefix, so it never invalidates the prefix cache, and it never holds the folder's own path:
//! that made the 1.5B model write the path into commands (issue 21).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Names shown from the folder itself, at most.
pub const LISTING_LIMIT: usize = 12;
/// Paths of the request that are looked up, at most.
const NAMED_LIMIT: usize = 4;

/// A path the request names, as it was written, and what is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub path: String,
    pub found: Found,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    File,
    Folder,
    /// Nothing there; the names in the same folder that look alike (`notes.txt.gz` for
    /// `notes.txt.gzip`), at most three.
    Missing {
        alike: Vec<String>,
    },
}

/// What was seen in the folder, ready for [`Surroundings::note`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surroundings {
    /// The request's paths, in the order written.
    pub named: Vec<Named>,
    /// The folder's names in order, folders with a trailing `/`, at most [`LISTING_LIMIT`].
    pub listing: Vec<String>,
    /// How many more names the folder has.
    pub more: usize,
}

impl Surroundings {
    /// The text the model sees, or `None` when there is nothing to say: `paths` describes the
    /// request's own paths, `listing` adds the folder's names.
    pub fn note(&self, paths: bool, listing: bool) -> Option<String> {
        let mut parts = Vec::new();
        for n in self.named.iter().filter(|_| paths) {
            parts.push(match &n.found {
                Found::File => format!("`{}` is a file here.", n.path),
                Found::Folder => format!("`{}` is a folder here.", n.path),
                Found::Missing { alike } if alike.is_empty() => {
                    format!("`{}` does not exist here.", n.path)
                }
                Found::Missing { alike } => format!(
                    "`{}` does not exist here; nearby: {}.",
                    n.path,
                    alike
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if listing && !self.listing.is_empty() {
            let mut names = self.listing.join(" ");
            if self.more > 0 {
                names.push_str(&format!(" (+{} more)", self.more));
            }
            parts.push(format!("The current folder holds: {names}"));
        }
        (!parts.is_empty()).then(|| parts.join("\n"))
    }
}

/// Looks in `dir` for the paths `request` names and lists `dir`. Unreadable entries are left
/// out; nothing here fails the request.
pub fn look(dir: &Path, request: &str) -> Surroundings {
    let named = named_paths(request)
        .into_iter()
        .take(NAMED_LIMIT)
        .filter_map(|path| {
            let full = expand(dir, &path);
            let found = match std::fs::metadata(&full) {
                Ok(m) if m.is_dir() => Found::Folder,
                Ok(_) => Found::File,
                // "the .tmp files": an extension, not a dotfile that is missing.
                Err(_) if is_bare_extension(&path) => return None,
                Err(_) => Found::Missing {
                    alike: alike(dir, &full, &path),
                },
            };
            Some(Named { path, found })
        })
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        format!("{name}/")
                    } else {
                        name
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    // Visible names first, then dotfiles, each alphabetical: what `ls` and then `ls -A` show.
    names.sort_by(|a, b| (a.starts_with('.'), a).cmp(&(b.starts_with('.'), b)));
    let more = names.len().saturating_sub(LISTING_LIMIT);
    names.truncate(LISTING_LIMIT);
    Surroundings {
        named,
        listing: names,
        more,
    }
}

/// Words of the request that are paths: they hold a `/`, start with `~` or `.`, or end in a
/// file extension (`notes.txt`). Backticks and quotes around them and a sentence's final
/// punctuation are dropped; URLs, `user@host:` targets and globs are not paths here.
fn named_paths(request: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in request.split_whitespace() {
        // Quotes around the word and the sentence's punctuation after it, in any nesting.
        let mut w = word;
        loop {
            let t = w
                .trim_matches(|c: char| "`'\"()[]{}<>".contains(c))
                .trim_end_matches([',', ';', ':', '?', '!', '.']);
            if t == w {
                break;
            }
            w = t;
        }
        if w.len() < 2
            || w.contains("://")
            || w.contains(['@', '*', '?', '$', '=', '|', '&'])
            || w.starts_with('-')
        {
            continue;
        }
        let extension = w.rsplit_once('.').is_some_and(|(stem, ext)| {
            !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && ext.chars().any(|c| c.is_ascii_alphabetic())
        });
        let pathy = w.contains('/') || w.starts_with('~') || w.starts_with('.');
        // A dotted number (`1.5`, `10.0.0.5`) is a version or an address, not a file.
        let numeric = w.chars().all(|c| c.is_ascii_digit() || c == '.');
        if (pathy || extension) && !numeric && !out.iter().any(|o| o == w) {
            out.push(w.to_owned());
        }
    }
    out
}

fn expand(dir: &Path, path: &str) -> std::path::PathBuf {
    if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), dirs::home_dir()) {
        return home.join(rest);
    }
    dir.join(path)
}

/// `.tmp`, `.log`: a leading dot, no other dot or slash.
fn is_bare_extension(word: &str) -> bool {
    word.strip_prefix('.')
        .is_some_and(|rest| !rest.contains(['.', '/']))
}

/// Where a missing name may be instead: for a bare name (`debug.log`), the same name one
/// folder down (`logs/debug.log`); otherwise, names in its folder that share its first part
/// (`notes.txt.gz` for `notes.txt.gzip`). At most three.
fn alike(dir: &Path, full: &Path, written: &str) -> Vec<String> {
    let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
        return Vec::new();
    };
    if !written.contains('/') && !written.starts_with('~') {
        let mut below: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter(|e| e.path().join(name).exists())
                    .map(|e| format!("{}/{}", e.file_name().to_string_lossy(), written))
                    .collect()
            })
            .unwrap_or_default();
        if !below.is_empty() {
            below.sort();
            below.truncate(3);
            return below;
        }
    }
    let name = name.to_string_lossy();
    let stem = name.split('.').next().unwrap_or(&name).to_lowercase();
    if stem.len() < 3 {
        return Vec::new();
    }
    // Shown as the request would write them: under the same folder prefix.
    let prefix = written
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/"))
        .unwrap_or_default();
    let mut found: Vec<String> = std::fs::read_dir(parent)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.to_lowercase().starts_with(&stem))
                .map(|n| format!("{prefix}{n}"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.truncate(3);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::file_and_folder("gzip backups/notes.txt, keep it", &["backups/notes.txt"])]
    #[case::quoted_and_final_dot("show `src/main.rs`.", &["src/main.rs"])]
    #[case::home_and_absolute("copy ~/a.conf to /etc/app", &["~/a.conf", "/etc/app"])]
    #[case::bare_file("count the lines of notes.txt", &["notes.txt"])]
    #[case::no_urls_hosts_globs_numbers(
        "fetch https://x.org/a.tar.gz to web@host:/srv, all *.log, version 1.5, ip 10.0.0.5",
        &[]
    )]
    #[case::plain_words("list the biggest files here", &[])]
    fn paths_in_a_request(#[case] request: &str, #[case] want: &[&str]) {
        assert_eq!(named_paths(request), want);
    }

    #[test]
    fn the_folder_is_looked_at_and_described() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("backups")).expect("mkdir");
        std::fs::write(dir.path().join("backups/notes.txt.gz"), "x").expect("write");
        std::fs::write(dir.path().join("README.md"), "x").expect("write");
        std::fs::write(dir.path().join(".env"), "x").expect("write");
        let s = look(
            dir.path(),
            "check backups/notes.txt.gzip and README.md in backups, the .tmp files, notes.txt.gz",
        );
        assert_eq!(
            s.named,
            vec![
                Named {
                    path: "backups/notes.txt.gzip".into(),
                    found: Found::Missing {
                        alike: vec!["backups/notes.txt.gz".into()]
                    }
                },
                Named {
                    path: "README.md".into(),
                    found: Found::File
                },
                Named {
                    path: "notes.txt.gz".into(),
                    found: Found::Missing {
                        alike: vec!["backups/notes.txt.gz".into()]
                    }
                },
            ]
        );
        assert_eq!(s.listing, ["README.md", "backups/", ".env"]);
        let note = s.note(true, true).expect("a note");
        assert!(note.contains("nearby: `backups/notes.txt.gz`"), "{note}");
        assert!(note.contains("holds: README.md backups/ .env"), "{note}");
        assert!(
            !note.contains(&dir.path().display().to_string()),
            "no folder path: {note}"
        );
        assert!(!s.note(true, false).expect("paths only").contains("holds"));
    }

    #[test]
    fn a_long_folder_is_cut_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..(LISTING_LIMIT + 3) {
            std::fs::write(dir.path().join(format!("f{i:02}")), "").expect("write");
        }
        let s = look(dir.path(), "list files");
        assert_eq!((s.listing.len(), s.more), (LISTING_LIMIT, 3));
        assert!(s.note(true, true).expect("note").ends_with("(+3 more)"));
        assert_eq!(s.note(true, false), None, "nothing named, no listing asked");
        assert_eq!(s.note(false, false), None);
    }

    #[test]
    fn a_missing_or_unreadable_folder_says_nothing_and_does_not_fail() {
        let s = look(Path::new("/nonexistent/caro/dir"), "show notes.txt");
        assert!(s.listing.is_empty());
        assert_eq!(
            s.note(true, true).as_deref(),
            Some("`notes.txt` does not exist here.")
        );
    }
}
