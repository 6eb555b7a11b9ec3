//! Recent requests, kept in a small JSON file in the app's data folder; the user can clear them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const KEEP: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub prompt: String,
    pub command: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

impl Entry {
    pub fn new(prompt: &str, command: &str) -> Self {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            prompt: prompt.to_owned(),
            command: command.to_owned(),
            at,
        }
    }
}

#[derive(Debug)]
pub struct History {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl History {
    /// Opens the file; a missing or unreadable one starts empty (and is replaced on the next save).
    pub fn open(path: PathBuf) -> Self {
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, entries }
    }

    /// Newest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn push(&mut self, e: Entry) {
        self.entries.retain(|x| x.prompt != e.prompt);
        self.entries.insert(0, e);
        self.entries.truncate(KEEP);
        if let Err(err) = self.save() {
            tracing::warn!(error = %err, "could not save the request history");
        }
    }

    pub fn clear(&mut self) -> std::io::Result<()> {
        self.entries.clear();
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &self.entries)?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_deduplicated_capped_and_persistent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h").join("history.json");
        let mut h = History::open(path.clone());
        for i in 0..(KEEP + 5) {
            h.push(Entry::new(&format!("p{i}"), "ls"));
        }
        h.push(Entry::new("p10", "ls -la"));
        assert_eq!(h.entries().len(), KEEP);
        assert_eq!(h.entries()[0].prompt, "p10");
        assert_eq!(h.entries()[0].command, "ls -la");
        let again = History::open(path.clone());
        assert_eq!(again.entries(), h.entries());
        h.clear().expect("clear");
        assert!(h.entries().is_empty());
        assert!(!path.exists());
        assert!(History::open(path).entries().is_empty());
    }

    #[test]
    fn a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.json");
        std::fs::write(&path, b"{not json").expect("write");
        assert!(History::open(path).entries().is_empty());
    }
}
