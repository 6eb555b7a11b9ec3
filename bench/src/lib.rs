//! caro's measurement harnesses: the accuracy dev set, its execution sandbox and scoring. The
//! speed benchmark (`caro-bench`) and the accuracy harness (`caro-accuracy`) are the binaries.

pub mod devset;
pub mod sandbox;
pub mod score;
pub mod sys;
