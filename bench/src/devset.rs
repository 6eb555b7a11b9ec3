//! The accuracy splits: JSONL items of a request and the commands that answer it, written by
//! the caro team (never taken from the public benchmarks caro is judged on). `dev` is the
//! split prompts, examples and parameters are tuned on; `test` is frozen and never tuned on.

use caro_safety::ShellType;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The dev split shipped in the repository: tune on this one.
pub const DEFAULT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/accuracy/dev.jsonl");
/// The frozen test split: report on this one, never choose anything by it.
pub const TEST_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/accuracy/test.jsonl");

/// The two splits shipped in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Dev,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Dev => DEFAULT_PATH,
            Self::Test => TEST_PATH,
        }
    }
}

/// Whether the order of output lines is part of the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Line order counts (the default): the request asks for an order, or the output is a
    /// file's or a stream's contents, where `cat f` is not "reverse the lines of f".
    #[default]
    Strict,
    /// The output is a set printed in traversal order (find results, matches across files):
    /// `ls` and `find` answer "list the Python files" equally well.
    Any,
}
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
    /// How executed outputs are compared; `"order": "any"` in the item where line order is
    /// not part of the answer.
    #[serde(default, skip_serializing_if = "is_strict")]
    pub order: Order,
}

fn is_strict(o: &Order) -> bool {
    *o == Order::Strict
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
        if !item.exec && item.order != Order::Strict {
            return Err(bad(format!(
                "{}: \"order\" only applies to executed items",
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

    #[test]
    fn order_is_strict_unless_the_item_says_any() {
        let ok = r#"{"id":"a","nl":"x","reference_cmds":["ls"],"shell":"bash","platform":"linux","category":"files"}"#;
        assert_eq!(parse(ok, "t").expect("item")[0].order, Order::Strict);
        let any = ok.replace(r#""files""#, r#""files","order":"any""#);
        assert_eq!(parse(&any, "t").expect("item")[0].order, Order::Any);
        let unexecuted = ok.replace(r#""files""#, r#""files","exec":false,"order":"any""#);
        assert!(parse(&unexecuted, "t").is_err_and(|e| e.to_string().contains("order")));
    }
}
