//! The seam between the embedded backend and the tensor engine that runs the model.
//!
//! Everything else the backend does (tokenizer, chat template, prefix-cache policy, sampling,
//! output parsing, safety) is shared and tested on Linux; only weight loading and the forward
//! pass live behind [`Engine`]. Candle on the CPU is the engine everywhere; MLX on Apple
//! Silicon's GPU is the other, compiled only on macOS/aarch64 with the `mlx` feature.

use super::ModelVariant;
use super::gguf::GgufFile;
use super::model::{Hyperparams, KvCache, Transformer};
use crate::error::GeneratorError;

/// The attention state of one sequence, in the engine's own representation. Cloning is a
/// cheap snapshot (the prefix cache restores one per request).
#[derive(Debug, Clone)]
pub enum EngineCache {
    Candle(KvCache),
    #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
    Mlx(super::mlx::MlxCache),
}

/// A loaded model that turns tokens into next-token logits.
pub trait Engine: Send + std::fmt::Debug {
    fn variant(&self) -> ModelVariant;

    /// Largest number of positions a cache may reach.
    fn max_positions(&self) -> usize;

    fn new_cache(&self) -> EngineCache;

    /// Runs `tokens` after the positions already in `cache`, appends them to it, and returns
    /// the logits for the last token.
    fn forward(&self, tokens: &[u32], cache: &mut EngineCache) -> Result<Vec<f32>, GeneratorError>;
}

fn inference(e: impl std::fmt::Display) -> GeneratorError {
    GeneratorError::Inference(e.to_string())
}

impl Engine for Transformer {
    fn variant(&self) -> ModelVariant {
        ModelVariant::Cpu
    }

    fn max_positions(&self) -> usize {
        Transformer::max_positions(self)
    }

    fn new_cache(&self) -> EngineCache {
        EngineCache::Candle(Transformer::new_cache(self))
    }

    fn forward(&self, tokens: &[u32], cache: &mut EngineCache) -> Result<Vec<f32>, GeneratorError> {
        match cache {
            EngineCache::Candle(c) => Transformer::forward(self, tokens, c).map_err(inference),
            #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
            EngineCache::Mlx(_) => Err(inference("an MLX cache was given to the Candle engine")),
        }
    }
}

/// Whether this build has the MLX engine.
pub const fn mlx_compiled() -> bool {
    cfg!(all(
        feature = "mlx",
        target_os = "macos",
        target_arch = "aarch64"
    ))
}

/// Loads the weights of `gguf` into the engine `variant` names.
pub fn load(
    variant: ModelVariant,
    gguf: &mut GgufFile,
    params: Hyperparams,
    max_positions: usize,
    mmap: bool,
) -> Result<Box<dyn Engine>, GeneratorError> {
    match variant {
        ModelVariant::Cpu => {
            let model = Transformer::load(gguf, params, max_positions, mmap)
                .map_err(|e| gguf.corrupt(format!("cannot load tensors: {e}")))?;
            Ok(Box::new(model))
        }
        #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
        ModelVariant::Mlx => Ok(Box::new(super::mlx::MlxEngine::load(
            gguf,
            params,
            max_positions,
        )?)),
        #[cfg(not(all(feature = "mlx", target_os = "macos", target_arch = "aarch64")))]
        ModelVariant::Mlx => Err(GeneratorError::InvalidConfig(
            crate::embedded::MLX_MISSING.to_owned(),
        )),
    }
}
