//! caro-core: turns a request in plain English into one shell command, on the user's machine.
//!
//! The crate knows nothing about its frontends (CLI, tray app): it exposes a [`CommandGenerator`]
//! trait, the embedded Candle backend that implements it, the prompt and reply handling that every
//! backend shares, and model-file discovery. It never prints and never exits.
//!
//! The model itself runs in caro-engine, where all of caro's `unsafe` code lives; this crate
//! has none.

#![forbid(unsafe_code)]

pub mod answers;
pub mod cancel;
pub mod chain;
pub mod daemon;
pub mod embedded;
pub mod error;
pub mod execute;
pub mod generator;
pub mod models;
pub mod pipeline;
pub mod preflight;
pub mod prompt;
pub mod remote;
pub mod reply;
pub mod retrieval;
pub mod review;
pub mod select;
pub mod settings;
pub mod shell_init;
pub mod stats;
pub mod workdir;

/// The safety validator lives in its own crate (no I/O, no model); these paths keep working.
pub use caro_safety as safety;
pub use caro_safety::shell;

pub use cancel::Cancel;
pub use embedded::EmbeddedConfig;
pub use embedded::{EmbeddedModelBackend, ModelVariant};
pub use error::GeneratorError;
pub use generator::{
    BackendInfo, CommandGenerator, CommandRequest, ExecutionContext, GeneratedCommand, Timings,
    TokenCounts, ToolFlavor,
};
pub use safety::{Action, Finding, RiskLevel, SafetyMode, SafetyValidator, Verdict};
pub use shell::ShellType;
