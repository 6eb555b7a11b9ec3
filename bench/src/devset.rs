//! The accuracy dev set: JSONL items of a request and the commands that answer it, written by
//! the caro team (never taken from the public benchmarks caro is judged on).

use caro_core::ShellType;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The dev set shipped in the repository.
pub const DEFAULT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/accuracy/dev.jsonl");
/// The fixture tree every executed command starts from, and the script that finishes it.
pub const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/accuracy/fixture");
pub const SETUP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/accuracy/setup.sh");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Linux,
    Macos,
}

impl Platform {
    /// The name [`caro_core::ExecutionContext::for_os`] takes.
    pub fn os(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Macos => "macos",
        }
    }
}

/// One request and the commands that answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub nl: String,
    /// Every command that fully answers the request; a candidate matching any one scores.
    pub reference_cmds: Vec<String>,
    pub shell: String,
    pub platform: Platform,
    /// files, find, text, archives, processes, disk, networking, git.
    pub category: String,
    /// Whether running it in the fixture gives a comparable result. Off for answers that
    /// read live system state (processes, disk, network), need BSD tools, or write files
    /// that record access times (zip).
    #[serde(default = "yes")]
    pub exec: bool,
}

fn yes() -> bool {
    true
}

impl Item {
    pub fn shell_type(&self) -> ShellType {
        self.shell.parse().unwrap_or(ShellType::Bash)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevSetError {
    #[error("cannot read the dev set {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Item {
        path: String,
        line: usize,
        message: String,
    },
}

/// Reads and checks a dev set: every line an item, ids unique, at least one reference, a
/// shell caro knows, and no execution check on macOS items (this sandbox has GNU tools).
pub fn load(path: &Path) -> Result<Vec<Item>, DevSetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DevSetError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

pub fn parse(text: &str, path: &str) -> Result<Vec<Item>, DevSetError> {
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |message: String| DevSetError::Item {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        let item: Item = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if item.nl.trim().is_empty() {
            return Err(bad("empty request".into()));
        }
        if item.reference_cmds.is_empty() || item.reference_cmds.iter().any(|c| c.trim().is_empty())
        {
            return Err(bad(format!("{}: needs non-empty reference_cmds", item.id)));
        }
        if item.shell.parse::<ShellType>().is_err() {
            return Err(bad(format!("{}: unknown shell {:?}", item.id, item.shell)));
        }
        if item.exec && item.platform == Platform::Macos {
            return Err(bad(format!(
                "{}: macOS items cannot be executed here; set \"exec\": false",
                item.id
            )));
        }
        if !ids.insert(item.id.clone()) {
            return Err(bad(format!("duplicate id {}", item.id)));
        }
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_and_missing_references() {
        let ok = r#"{"id":"a","nl":"x","reference_cmds":["ls"],"shell":"bash","platform":"linux","category":"files"}"#;
        assert_eq!(parse(ok, "t").map(|v| v.len()).ok(), Some(1));
        let dup = format!("{ok}\n{ok}");
        assert!(parse(&dup, "t").is_err_and(|e| e.to_string().contains("duplicate id a")));
        let none = ok.replace(r#"["ls"]"#, "[]");
        assert!(parse(&none, "t").is_err_and(|e| e.to_string().contains("t:1")));
        let mac = ok.replace("linux", "macos");
        assert!(parse(&mac, "t").is_err_and(|e| e.to_string().contains("exec")));
    }
}
