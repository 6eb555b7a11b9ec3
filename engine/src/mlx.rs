//! The MLX engine: the Qwen2/Llama forward pass on Apple Silicon's GPU through mlx-rs.
//!
//! Compiled only on macOS/aarch64 with the `mlx` feature (mlx-sys builds MLX from source and
//! links Apple frameworks, so it cannot build on Linux). It has been compile-checked only in
//! CI's `check-mlx` job on macos-14; the tokenizer, chat template, prefix cache, sampling,
//! parsing and safety around it are the shared code tested on Linux.
//!
//! Weights come from the same GGUF as the Candle engine. MLX reads Q4_0, Q4_1 and Q8_0
//! natively (as packed weights plus `.scales`/`.biases`) and casts every other type, such as
//! the product model's Q4_K and Q6_K, to float16. Those are quantized again at load with MLX's
//! affine quantization at the bit width of the source type, so the model keeps its size and
//! runs MLX's quantized matmul kernels.

use crate::EngineError;
use crate::ModelVariant;
use crate::engine::{Engine, EngineCache};
use crate::gguf::GgufFile;
use crate::model::{Architecture, Hyperparams};
use candle_core::quantized::GgmlDType;
use mlx_rs::error::Exception;
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::io::GgufFile as MlxGguf;
use mlx_rs::ops::{self, concatenate_axis};
use mlx_rs::{Array, Dtype};

/// Group size for weights caro quantizes itself (MLX's default).
const GROUP: i32 = 64;
/// Group size of GGUF's own Q4_0/Q4_1/Q8_0 blocks as MLX loads them.
const GGUF_GROUP: i32 = 32;

fn mlx_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(format!("MLX: {e}"))
}

/// A weight matrix `(out, in)` in MLX's affine quantized layout.
struct QLinear {
    w: Array,
    scales: Array,
    biases: Array,
    group: i32,
    bits: i32,
}

impl QLinear {
    fn forward(&self, x: &Array) -> Result<Array, Exception> {
        ops::quantized_matmul(
            x,
            &self.w,
            &self.scales,
            &self.biases,
            true,
            self.group,
            self.bits,
        )
    }

    /// The full-precision matrix, for the token-embedding lookup.
    fn dequantize(&self) -> Result<Array, Exception> {
        ops::dequantize(&self.w, &self.scales, &self.biases, self.group, self.bits)
    }
}

struct Layer {
    attn_norm: Array,
    wq: QLinear,
    wk: QLinear,
    wv: QLinear,
    bq: Option<Array>,
    bk: Option<Array>,
    bv: Option<Array>,
    wo: QLinear,
    ffn_norm: Array,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// Keys and values of every layer, `(1, kv_heads, positions, head_dim)` each. MLX arrays are
/// reference-counted and never written in place, so `clone()` is a cheap snapshot.
#[derive(Clone, Default)]
pub struct MlxCache {
    layers: Vec<Option<(Array, Array)>>,
    len: usize,
}

impl std::fmt::Debug for MlxCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlxCache").field("len", &self.len).finish()
    }
}

pub struct MlxEngine {
    params: Hyperparams,
    /// `(vocab, hidden)` in float16, for row lookups.
    embed: Array,
    layers: Vec<Layer>,
    norm: Array,
    output: QLinear,
    max_positions: usize,
}

impl std::fmt::Debug for MlxEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlxEngine")
            .field("arch", &self.params.arch)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// The bit width that keeps a GGUF type's precision in MLX's affine quantization.
fn bits_for(dtype: GgmlDType) -> i32 {
    match dtype {
        GgmlDType::Q2K | GgmlDType::Q3K => 4,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q4K => 4,
        GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q5K => 5,
        GgmlDType::Q6K => 6,
        _ => 8,
    }
}

struct Weights<'a> {
    file: MlxGguf,
    header: &'a GgufFile,
}

impl Weights<'_> {
    fn array(&self, name: &str) -> Result<Array, EngineError> {
        self.file
            .get_array(name)
            .map_err(mlx_err)?
            .ok_or_else(|| self.header.corrupt(format!("tensor `{name}` is missing")))
    }

    fn has(&self, name: &str) -> bool {
        self.header.content.tensor_infos.contains_key(name)
    }

    /// A float vector (norm weight, bias) in float32.
    fn vector(&self, name: &str) -> Result<Array, EngineError> {
        self.array(name)?.as_dtype(Dtype::Float32).map_err(mlx_err)
    }

    /// The token-embedding table in float16: MLX-native blocks dequantized, anything else as
    /// MLX read it (already float16; quantizing it again would only add error).
    fn embedding(&self, name: &str) -> Result<Array, EngineError> {
        let base = name.strip_suffix(".weight").unwrap_or(name);
        let native = self
            .file
            .get_array(&format!("{base}.scales"))
            .map_err(mlx_err)?
            .is_some();
        let table = if native {
            self.linear(name)?.dequantize().map_err(mlx_err)?
        } else {
            self.array(name)?
        };
        table.as_dtype(Dtype::Float16).map_err(mlx_err)
    }

    /// A weight matrix: GGUF's own MLX-native blocks as they are, anything else quantized now.
    fn linear(&self, name: &str) -> Result<QLinear, EngineError> {
        let w = self.array(name)?;
        let base = name.strip_suffix(".weight").unwrap_or(name);
        if let (Some(scales), Some(biases)) = (
            self.file
                .get_array(&format!("{base}.scales"))
                .map_err(mlx_err)?,
            self.file
                .get_array(&format!("{base}.biases"))
                .map_err(mlx_err)?,
        ) {
            // Packed u32 words: in_features = groups * 32, bits = 32 * words / in_features.
            let groups = scales.shape().last().copied().unwrap_or(0);
            let words = w.shape().last().copied().unwrap_or(0);
            let inputs = groups * GGUF_GROUP;
            if inputs == 0 {
                return Err(self.header.corrupt(format!("`{name}` has no columns")));
            }
            return Ok(QLinear {
                w,
                scales,
                biases,
                group: GGUF_GROUP,
                bits: 32 * words / inputs,
            });
        }
        let bits = self
            .header
            .content
            .tensor_infos
            .get(name)
            .map_or(8, |i| bits_for(i.ggml_dtype));
        let (w, scales, biases) = ops::quantize(&w, GROUP, bits).map_err(mlx_err)?;
        Ok(QLinear {
            w,
            scales,
            biases,
            group: GROUP,
            bits,
        })
    }
}

impl MlxEngine {
    /// Loads `header`'s file into MLX. `header` is the GGUF as caro already parsed it, for the
    /// source type of each tensor.
    pub fn load(
        header: &mut GgufFile,
        params: Hyperparams,
        max_positions: usize,
    ) -> Result<Self, EngineError> {
        let file = MlxGguf::load(&header.path)
            .map_err(|e| header.corrupt(format!("MLX cannot read it: {e}")))?;
        let w = Weights {
            file,
            header: &*header,
        };
        let embed = w.embedding("token_embd.weight")?;
        // Tied embeddings (SmolLM2, Qwen2.5 0.5B) reuse the table as the output layer.
        let output = if w.has("output.weight") {
            w.linear("output.weight")?
        } else {
            w.linear("token_embd.weight")?
        };
        let bias = |n: &str| -> Result<Option<Array>, EngineError> {
            if params.arch == Architecture::Qwen2 && w.has(n) {
                Ok(Some(w.vector(n)?))
            } else {
                Ok(None)
            }
        };
        let layers = (0..params.n_layer)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}");
                Ok(Layer {
                    attn_norm: w.vector(&n("attn_norm.weight"))?,
                    wq: w.linear(&n("attn_q.weight"))?,
                    wk: w.linear(&n("attn_k.weight"))?,
                    wv: w.linear(&n("attn_v.weight"))?,
                    bq: bias(&n("attn_q.bias"))?,
                    bk: bias(&n("attn_k.bias"))?,
                    bv: bias(&n("attn_v.bias"))?,
                    wo: w.linear(&n("attn_output.weight"))?,
                    ffn_norm: w.vector(&n("ffn_norm.weight"))?,
                    gate: w.linear(&n("ffn_gate.weight"))?,
                    up: w.linear(&n("ffn_up.weight"))?,
                    down: w.linear(&n("ffn_down.weight"))?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let norm = w.vector("output_norm.weight")?;
        Ok(Self {
            max_positions: max_positions.min(params.context_length).max(1),
            params,
            embed,
            layers,
            norm,
            output,
        })
    }

    fn run(&self, tokens: &[u32], cache: &mut MlxCache) -> Result<Vec<f32>, Exception> {
        let p = &self.params;
        let seq = i32::try_from(tokens.len()).map_err(|_| Exception::custom("too many tokens"))?;
        let (heads, kv_heads, head_dim) = (p.n_head as i32, p.n_kv_head as i32, p.head_dim as i32);
        let offset = i32::try_from(cache.len).map_err(|_| Exception::custom("cache too long"))?;
        if cache.layers.len() != self.layers.len() {
            cache.layers = vec![None; self.layers.len()];
        }
        // llama.cpp's converter permutes Llama's q/k for interleaved rotation; Qwen2 GGUFs
        // keep the half-split (NeoX) layout.
        let traditional = p.arch == Architecture::Llama;
        let scale = 1.0 / (p.head_dim as f32).sqrt();
        let ids = Array::from_slice(tokens, &[1, seq]);
        let mut x = self.embed.take_axis(&ids, 0)?.as_dtype(Dtype::Float32)?;
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = fast::rms_norm(&x, Some(&layer.attn_norm), p.rms_eps)?;
            let proj = |w: &QLinear, b: &Option<Array>, n: i32| -> Result<Array, Exception> {
                let mut t = w.forward(&h)?;
                if let Some(b) = b {
                    t = t.add(b)?;
                }
                t.reshape(&[1, seq, n, head_dim])?
                    .transpose_axes(&[0, 2, 1, 3])
            };
            let q = proj(&layer.wq, &layer.bq, heads)?;
            let k = proj(&layer.wk, &layer.bk, kv_heads)?;
            let v = proj(&layer.wv, &layer.bv, kv_heads)?;
            let q = fast::rope(&q, head_dim, traditional, p.rope_base, 1.0, offset, None)?;
            let k = fast::rope(&k, head_dim, traditional, p.rope_base, 1.0, offset, None)?;
            let (k, v) = match slot.take() {
                None => (k, v),
                Some((ck, cv)) => (
                    concatenate_axis(&[ck, k], 2)?,
                    concatenate_axis(&[cv, v], 2)?,
                ),
            };
            *slot = Some((k.clone(), v.clone()));
            // MLX's causal mask is aligned to the last key, which is what a prefill after
            // cached positions needs; one query token attends to everything.
            let mask = (seq > 1).then_some(ScaledDotProductAttentionMask::Causal);
            let y = fast::scaled_dot_product_attention(&q, &k, &v, scale, mask, None)?
                .transpose_axes(&[0, 2, 1, 3])?
                .reshape(&[1, seq, heads * head_dim])?;
            x = x.add(layer.wo.forward(&y)?)?;
            let h = fast::rms_norm(&x, Some(&layer.ffn_norm), p.rms_eps)?;
            let gate = mlx_rs::nn::silu(layer.gate.forward(&h)?)?;
            let up = layer.up.forward(&h)?;
            x = x.add(layer.down.forward(&gate.multiply(&up)?)?)?;
        }
        cache.len += tokens.len();
        let last = x.take_axis(Array::from_slice(&[seq - 1], &[1]), 1)?;
        let last = fast::rms_norm(&last, Some(&self.norm), p.rms_eps)?;
        let logits = self.output.forward(&last)?.as_dtype(Dtype::Float32)?;
        logits.eval()?;
        Ok(logits
            .try_as_slice::<f32>()
            .map_err(|e| Exception::custom(e.to_string()))?
            .to_vec())
    }
}

impl Engine for MlxEngine {
    fn variant(&self) -> ModelVariant {
        ModelVariant::Mlx
    }

    fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn new_cache(&self) -> EngineCache {
        EngineCache::Mlx(MlxCache::default())
    }

    fn forward(&self, tokens: &[u32], cache: &mut EngineCache) -> Result<Vec<f32>, EngineError> {
        if tokens.is_empty() {
            return Err(mlx_err("forward called with no tokens"));
        }
        match cache {
            EngineCache::Mlx(c) => {
                if c.len + tokens.len() > self.max_positions {
                    return Err(mlx_err(format!(
                        "context overflow: {} positions, limit {}",
                        c.len + tokens.len(),
                        self.max_positions
                    )));
                }
                self.run(tokens, c).map_err(mlx_err)
            }
            EngineCache::Candle(_) => Err(mlx_err("a Candle cache was given to the MLX engine")),
        }
    }
}
