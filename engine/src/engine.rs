//! The seam between the embedded backend and the tensor engine that runs the model.
//!
//! Everything else the backend does (tokenizer, chat template, prefix-cache policy, sampling,
//! output parsing, safety) is shared and tested on Linux; only weight loading and the forward
//! pass live behind [`Engine`]. Candle on the CPU is the engine everywhere; MLX on Apple
//! Silicon's GPU is the other, compiled only on macOS/aarch64 with the `mlx` feature.

use crate::EngineError;
use crate::ModelVariant;
use crate::gguf::GgufFile;
use crate::model::{Hyperparams, KvCache, Transformer};

/// The attention state of one sequence, in the engine's own representation. Cloning is a
/// cheap snapshot (the prefix cache restores one per request).
#[derive(Debug, Clone)]
pub enum EngineCache {
    Candle(KvCache),
    #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
    Mlx(crate::mlx::MlxCache),
}

/// A loaded model that turns tokens into next-token logits.
pub trait Engine: Send + std::fmt::Debug {
    fn variant(&self) -> ModelVariant;

    /// Largest number of positions a cache may reach.
    fn max_positions(&self) -> usize;

    fn new_cache(&self) -> EngineCache;

    /// Runs `tokens` after the positions already in `cache`, appends them to it, and returns
    /// the logits for the last token.
    fn forward(&self, tokens: &[u32], cache: &mut EngineCache) -> Result<Vec<f32>, EngineError>;

    /// Advances each sequence by its one token (`tokens[i]` after `caches[i]`) and returns
    /// each one's logits, exactly as [`Engine::forward`] would one at a time. The default
    /// does that; an engine that shares each weight read among the sequences overrides it.
    fn forward_batch(
        &self,
        tokens: &[u32],
        caches: &mut [EngineCache],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        if tokens.len() != caches.len() {
            return Err(inference(format!(
                "{} tokens for {} sequences",
                tokens.len(),
                caches.len()
            )));
        }
        tokens
            .iter()
            .zip(caches.iter_mut())
            .map(|(&t, c)| self.forward(&[t], c))
            .collect()
    }

    /// What, besides the weights and the tokens, decides the cache's exact numbers: the
    /// engine and the kernels it picked on this CPU. Part of the disk cache's key. `None`
    /// for an engine whose cache cannot be saved (MLX keeps its cache on the GPU).
    fn cache_signature(&self) -> Option<String> {
        None
    }

    /// The cache's keys and values as plain buffers, to save on disk.
    fn export_cache(&self, _cache: &EngineCache) -> Option<KvSnapshot> {
        None
    }

    /// A cache from saved buffers; `None` when they do not fit this model.
    fn import_cache(&self, _snapshot: KvSnapshot) -> Option<EngineCache> {
        None
    }

    /// Makes the cache's positions so far shared, so that its clones read them instead of
    /// copying them (best-of-k's branches where they split). Nothing changes in what the
    /// cache holds. The default leaves clones copying.
    fn share_cache(&self, _cache: &mut EngineCache) {}
}

/// A cache's contents as plain buffers: `len` positions, and per layer its keys and values,
/// position-major, `row` floats per position each.
#[derive(Debug, Clone, PartialEq)]
pub struct KvSnapshot {
    pub len: usize,
    pub row: usize,
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
}

fn inference(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
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

    fn forward(&self, tokens: &[u32], cache: &mut EngineCache) -> Result<Vec<f32>, EngineError> {
        match cache {
            EngineCache::Candle(c) => Transformer::forward(self, tokens, c).map_err(inference),
            #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
            EngineCache::Mlx(_) => Err(inference("an MLX cache was given to the Candle engine")),
        }
    }

    fn forward_batch(
        &self,
        tokens: &[u32],
        caches: &mut [EngineCache],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        // The batched pass needs every cache in candle's form; the caches are taken out and
        // put back so each sequence keeps its own.
        #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
        if caches.iter().any(|c| !matches!(c, EngineCache::Candle(_))) {
            return Err(inference("an MLX cache was given to the Candle engine"));
        }
        let mut kv: Vec<KvCache> = caches
            .iter_mut()
            .map(|c| {
                match std::mem::replace(c, EngineCache::Candle(Transformer::new_cache(self))) {
                    EngineCache::Candle(k) => k,
                    // Ruled out above.
                    #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
                    EngineCache::Mlx(_) => Transformer::new_cache(self),
                }
            })
            .collect();
        let out = Transformer::forward_batch(self, tokens, &mut kv).map_err(inference);
        for (c, k) in caches.iter_mut().zip(kv) {
            *c = EngineCache::Candle(k);
        }
        out
    }

    fn cache_signature(&self) -> Option<String> {
        // The kernels differ in rounding (VNNI tiles, the AVX2 tiles and Q4_1 path, candle's
        // own), so a cache computed with one set is not reused by a process that picked
        // another; the two switches decide which set runs (`cpu::Features::int_dot`).
        // Mapped weights take caro's kernels, weights read into memory some of candle's.
        let f = crate::cpu::features();
        Some(format!(
            "candle-cpu;vnni={};avx2={};mapped={}",
            f.vnni,
            f.avx2,
            self.is_mapped()
        ))
    }

    fn export_cache(&self, cache: &EngineCache) -> Option<KvSnapshot> {
        match cache {
            EngineCache::Candle(c) => {
                // Only the cache's positions: a failed forward pass may have left more.
                let layers = c.layers(self.kv_row())?;
                Some(KvSnapshot {
                    len: c.len(),
                    row: self.kv_row(),
                    layers,
                })
            }
            #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
            EngineCache::Mlx(_) => None,
        }
    }

    fn share_cache(&self, cache: &mut EngineCache) {
        match cache {
            EngineCache::Candle(c) => c.share(self),
            #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
            EngineCache::Mlx(_) => {}
        }
    }

    fn import_cache(&self, snapshot: KvSnapshot) -> Option<EngineCache> {
        if snapshot.row != self.kv_row() || snapshot.layers.len() != self.n_layers() {
            return None;
        }
        KvCache::from_layers(self, snapshot.len, snapshot.layers).map(EngineCache::Candle)
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
) -> Result<Box<dyn Engine>, EngineError> {
    match variant {
        ModelVariant::Cpu => {
            let model = Transformer::load(gguf, params, max_positions, mmap)
                .map_err(|e| gguf.corrupt(format!("cannot load tensors: {e}")))?;
            Ok(Box::new(model))
        }
        #[cfg(all(feature = "mlx", target_os = "macos", target_arch = "aarch64"))]
        ModelVariant::Mlx => Ok(Box::new(crate::mlx::MlxEngine::load(
            gguf,
            params,
            max_positions,
        )?)),
        #[cfg(not(all(feature = "mlx", target_os = "macos", target_arch = "aarch64")))]
        ModelVariant::Mlx => Err(EngineError::MlxMissing),
    }
}
