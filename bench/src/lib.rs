//! caro's measurement harnesses: the accuracy splits, their execution sandbox, scoring and leak checks, and
//! the safety corpus's figures, and cold starts of the real `caro` binary. The speed benchmark (`caro-bench`), the accuracy harness
//! (`caro-accuracy`) and the safety benchmark (`caro-safety-bench`) are the binaries.

#[cfg(unix)]
pub mod cold;
pub mod devset;
pub mod leaks;
pub mod safety_corpus;
pub mod score;
pub mod stats;
pub mod sys;

/// The execution sandbox lives in its own crate, which the product's preview shares.
pub use caro_sandbox as sandbox;
