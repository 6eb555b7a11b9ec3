//! Retrieved examples: the team-written request → command pairs closest to a request, found
//! by BM25 over `data/retrieval_bank.jsonl`, to sit between the cached prefix and the user's
//! turn (issue 19, item 4).
//!
//! The bank is compiled into the binary and indexed on first use (about 450 short lines:
//! well under a millisecond after the first call). Its commands are POSIX shell, so only
//! bash, zsh and sh requests get examples, and only pairs written for the same tool flavour
//! (GNU on Linux, BSD on macOS): a GNU-only flag shown to a macOS request teaches the wrong
//! thing. None of the pairs come from the public benchmarks caro is measured on;
//! `bench/tests/accuracy.rs` fails when one answers or rewords a dev or test item.

use crate::generator::ToolFlavor;
use crate::shell::ShellType;
use bm25::{Language, SearchEngine, SearchEngineBuilder};
use serde::Deserialize;
use std::sync::OnceLock;

const BANK: &str = include_str!("../data/retrieval_bank.jsonl");

/// One pair of the bank.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pair {
    /// The request, as a user would type it.
    pub nl: String,
    /// The command that answers it.
    pub cmd: String,
    pub shell: String,
    pub os: String,
    pub topic: String,
}

/// Every pair of the bank, in file order.
pub fn pairs() -> &'static [Pair] {
    &index().pairs
}

struct Index {
    pairs: Vec<Pair>,
    /// Over the pairs' requests; ids are positions in `pairs`. One engine per flavour, so
    /// term statistics and results come from the pairs that may be shown.
    gnu: SearchEngine<u32>,
    bsd: SearchEngine<u32>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        // The bank is part of the source tree and a unit test parses every line, so a bad
        // line here is a build defect; skipping it keeps a user's request working.
        let pairs: Vec<Pair> = BANK
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let engine = |os: &str| {
            let docs = pairs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.os == os)
                .map(|(i, p)| bm25::Document::new(i as u32, p.nl.clone()));
            SearchEngineBuilder::<u32>::with_documents(Language::English, docs).build()
        };
        let gnu = engine("linux");
        let bsd = engine("macos");
        Index { pairs, gnu, bsd }
    })
}

/// Up to `n` pairs closest to `request` for this shell and tool flavour, closest first.
/// Empty for shells the bank has no syntax for, when `n` is 0, and when no pair shares a
/// meaningful word with the request.
pub fn closest(
    request: &str,
    shell: ShellType,
    flavor: ToolFlavor,
    n: usize,
) -> Vec<&'static Pair> {
    if n == 0 || !matches!(shell, ShellType::Bash | ShellType::Zsh | ShellType::Sh) {
        return Vec::new();
    }
    let index = index();
    let engine = match flavor {
        ToolFlavor::Gnu => &index.gnu,
        ToolFlavor::Bsd => &index.bsd,
        ToolFlavor::Windows => return Vec::new(),
    };
    engine
        .search(request, n)
        .into_iter()
        .filter_map(|hit| index.pairs.get(hit.document.id as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_bank_parses() {
        let lines = BANK.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(pairs().len(), lines);
        assert!(
            lines >= 400,
            "issue 19 asks for at least 400 pairs, found {lines}"
        );
        for p in pairs() {
            assert!(!p.nl.trim().is_empty() && !p.cmd.trim().is_empty(), "{p:?}");
            assert!(!p.cmd.contains('\n'), "examples are single-line: {p:?}");
            assert!(matches!(p.os.as_str(), "linux" | "macos"), "{p:?}");
        }
    }

    #[test]
    fn the_closest_pair_shares_the_requests_words() {
        let hits = closest(
            "count the lines of every log file",
            ShellType::Bash,
            ToolFlavor::Gnu,
            3,
        );
        assert!(!hits.is_empty());
        assert!(hits.len() <= 3);
        let top = &hits[0].nl.to_lowercase();
        assert!(top.contains("line") || top.contains("log"), "{hits:?}");
        assert!(hits.iter().all(|p| p.os == "linux"));
    }

    #[test]
    fn a_macos_request_sees_only_bsd_pairs() {
        let hits = closest(
            "show disk usage of each folder",
            ShellType::Zsh,
            ToolFlavor::Bsd,
            5,
        );
        assert!(hits.iter().all(|p| p.os == "macos"), "{hits:?}");
    }

    #[test]
    fn shells_without_posix_syntax_and_n_zero_get_nothing() {
        for shell in [ShellType::Fish, ShellType::PowerShell, ShellType::Cmd] {
            assert!(closest("list files", shell, ToolFlavor::Gnu, 3).is_empty());
        }
        assert!(closest("list files", ShellType::Bash, ToolFlavor::Windows, 3).is_empty());
        assert!(closest("list files", ShellType::Bash, ToolFlavor::Gnu, 0).is_empty());
    }

    #[test]
    fn a_request_of_stop_words_or_noise_gets_nothing_and_does_not_panic() {
        for noise in ["", "   ", "the a of", "\u{1F600}\u{0}", "zzqx-unknownword"] {
            let _ = closest(noise, ShellType::Bash, ToolFlavor::Gnu, 3);
        }
        assert!(closest("", ShellType::Bash, ToolFlavor::Gnu, 3).is_empty());
    }
}
