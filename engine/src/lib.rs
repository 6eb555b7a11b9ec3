//! caro-engine: runs a GGUF language model on the CPU (Candle and caro's own kernels) or, on
//! Apple Silicon with the `mlx` feature, on MLX; tokens in, next-token logits out.
//!
//! All of caro's `unsafe` code lives in this crate: the memory-mapped weights and the SIMD
//! kernels. Every kernel is chosen at run time by the one CPU probe ([`cpu`]), never by the
//! build's target features. The crate knows nothing about prompts for shell commands, safety
//! or settings: that is caro-core's job.

// An unsafe block says why it is sound, right where it is.
#![warn(clippy::undocumented_unsafe_blocks)]

mod attention;
mod chat;
pub mod cpu;
mod engine;
mod error;
mod gguf;
mod kernels;
mod matvec;
#[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
mod mlx;
mod model;
mod pool;
mod q4k;
mod sampler;
mod variant;
mod vecmath;
mod weights;

pub use chat::{ChatMessage, TextCodec};
pub use engine::{Engine, EngineCache, KvSnapshot, load, mlx_compiled};
pub use error::EngineError;
pub use gguf::GgufFile;
pub use model::{Architecture, Hyperparams, KvCache, Transformer};
pub use sampler::{Choice, Sampler, choices};
pub use variant::{MLX_MISSING, ModelVariant, SUPPORTED_ARCHITECTURES};
