//! Decoder-only transformer forward pass for the Qwen2 and Llama families, on candle's
//! quantized ops.
//!
//! Written for caro instead of using candle-transformers' models because caro needs two
//! things those lack: a KV cache that is a plain value (so the system prompt's cache can be
//! snapshotted and restored per request) and a token-embedding table that stays quantized
//! (the f32 copy costs ~0.9 GB on the 1.5B model).

use crate::EngineError;
use crate::attention::{Query, decode_attention_batch};
use crate::gguf::GgufFile;
use crate::matvec::{Rows, matvec_batch};
use crate::q4k::PackedQ4K;
use crate::vecmath::silu_mul;
use crate::weights::MappedGguf;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor, QuantizedType};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Model families this forward pass implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Qwen2,
    Llama,
}

impl Architecture {
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "qwen2" => Some(Self::Qwen2),
            "llama" => Some(Self::Llama),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }
}

/// Shapes and constants read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparams {
    pub arch: Architecture,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub n_embd: usize,
    pub head_dim: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub context_length: usize,
}

impl Hyperparams {
    pub fn from_gguf(
        gguf: &GgufFile,
        arch: Architecture,
    ) -> std::result::Result<Self, EngineError> {
        let a = arch.name();
        let n_head = gguf.usize(&format!("{a}.attention.head_count"))?;
        let n_embd = gguf.usize(&format!("{a}.embedding_length"))?;
        let n_kv_head = if gguf.has(&format!("{a}.attention.head_count_kv")) {
            gguf.usize(&format!("{a}.attention.head_count_kv"))?
        } else {
            n_head
        };
        if n_head == 0 || n_kv_head == 0 || n_embd % n_head != 0 || n_head % n_kv_head != 0 {
            return Err(gguf.corrupt(format!(
                "inconsistent attention shape: {n_embd} dims, {n_head} heads, {n_kv_head} kv heads"
            )));
        }
        let head_dim = n_embd / n_head;
        let rope_key = format!("{a}.rope.dimension_count");
        if gguf.has(&rope_key) && gguf.usize(&rope_key)? != head_dim {
            return Err(gguf.corrupt("partial rotary embeddings are not supported".to_owned()));
        }
        let rope_base_key = format!("{a}.rope.freq_base");
        let rope_base = if gguf.has(&rope_base_key) {
            gguf.f32(&rope_base_key)?
        } else {
            10_000.0
        };
        Ok(Self {
            arch,
            n_layer: gguf.usize(&format!("{a}.block_count"))?,
            n_head,
            n_kv_head,
            n_embd,
            head_dim,
            rope_base,
            rms_eps: gguf.f32(&format!("{a}.attention.layer_norm_rms_epsilon"))?,
            context_length: gguf.usize(&format!("{a}.context_length"))?,
        })
    }
}

/// Attention keys and values of every layer for the tokens seen so far.
///
/// Plain growable buffers, appended in place: concatenating tensors instead copied the whole
/// cache of every layer on every decoded token. The first positions may be shared, read-only,
/// with other caches ([`KvCache::share`]): best-of-k's branches read one copy of the prompt
/// instead of each holding its own.
/// `clone()` is an independent snapshot: it copies the cache's own positions and shares the
/// rest, which nothing writes again.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Positions `0..shared.len`, frozen.
    shared: Option<Arc<KvCache>>,
    /// Each layer's own positions, those after the shared ones.
    layers: Vec<LayerKv>,
    len: usize,
}

/// One layer's keys and values, position-major: `[position][kv head][head dim]`.
#[derive(Debug, Default)]
struct LayerKv {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Clone for LayerKv {
    /// A copy with the original's room to grow, and at least a quarter more. The derived
    /// clone allocated exactly the length, so a copied cache's next token copied the whole
    /// buffer a second time to grow it (issue 20); room costs no memory until it is written.
    fn clone(&self) -> Self {
        let copy = |from: &Vec<f32>| {
            let mut to = Vec::with_capacity(from.capacity().max(from.len() + from.len() / 4));
            to.extend_from_slice(from);
            to
        };
        Self {
            k: copy(&self.k),
            v: copy(&self.v),
        }
    }
}

impl LayerKv {
    /// Appends new positions after the first `kept` floats. A failed earlier call may have
    /// appended to some layers only; cutting back to the cache's length undoes that.
    fn append(&mut self, kept: usize, k: &[f32], v: &[f32]) {
        self.k.truncate(kept);
        self.v.truncate(kept);
        self.k.extend_from_slice(k);
        self.v.extend_from_slice(v);
    }
}

impl KvCache {
    /// Number of token positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions shared with other caches, which come before this cache's own.
    fn shared_len(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.len)
    }

    /// Freezes every position so far into the shared part, without copying: clones made
    /// afterwards share them instead of copying them, and this cache goes on appending its
    /// own. Best-of-k calls it where a branch splits (a copy per new branch was ~20 MB for a
    /// 350-token prompt). A cache of one buffer is attended over by plain arithmetic on
    /// positions, a shared one through a row per position (`attention.rs`), which measured
    /// slower for a lone sequence: the prefix cache's per-request copy stays a copy.
    pub fn share(&mut self, model: &Transformer) {
        self.share_rows(model.kv_row(), model.layers.len());
    }

    /// [`Self::share`] for `n_layers` layers of `row` floats a position.
    fn share_rows(&mut self, row: usize, n_layers: usize) {
        let own = (self.len - self.shared_len()) * row;
        if own == 0 || self.layers.len() != n_layers {
            return;
        }
        // Whatever a failed pass appended past the length is not part of the cache.
        for l in &mut self.layers {
            l.k.truncate(own);
            l.v.truncate(own);
        }
        let frozen = KvCache {
            shared: self.shared.take(),
            layers: std::mem::replace(&mut self.layers, vec![LayerKv::default(); n_layers]),
            len: self.len,
        };
        self.shared = Some(Arc::new(frozen));
    }

    /// Layer `l`'s keys and values as segments in position order: the shared ones cut to
    /// their length, this cache's own buffers whole (a pass reads them after appending).
    fn segments<'a>(&'a self, l: usize, row: usize, out: &mut Vec<(&'a [f32], &'a [f32])>) {
        if let Some(s) = &self.shared {
            s.segments(l, row, out);
            let n = (s.len - s.shared_len()) * row;
            if let Some(last) = out.last_mut() {
                *last = (
                    last.0.get(..n).unwrap_or(last.0),
                    last.1.get(..n).unwrap_or(last.1),
                );
            }
        }
        match self.layers.get(l) {
            Some(own) => out.push((&own.k, &own.v)),
            // Keeps one segment per cache, which the cut above relies on.
            None => out.push((&[], &[])),
        }
    }

    /// Each layer's keys and values, position-major and exactly `len` positions, for the
    /// disk cache to write; `None` if a layer holds fewer.
    pub(crate) fn layers(&self, row: usize) -> Option<Vec<(Vec<f32>, Vec<f32>)>> {
        let n = self.len * row;
        let mut segs = Vec::new();
        (0..self.layers.len())
            .map(|l| {
                segs.clear();
                self.segments(l, row, &mut segs);
                let (mut k, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for (sk, sv) in &segs {
                    k.extend_from_slice(sk);
                    v.extend_from_slice(sv);
                }
                (k.len() >= n && v.len() >= n).then(|| {
                    k.truncate(n);
                    v.truncate(n);
                    (k, v)
                })
            })
            .collect()
    }

    /// A cache of `len` positions from each layer's keys and values; `None` unless there is
    /// one pair per layer of `model` and each buffer holds exactly `len` positions.
    pub(crate) fn from_layers(
        model: &Transformer,
        len: usize,
        layers: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Option<Self> {
        let row = model.kv_row();
        let fits = layers.len() == model.layers.len()
            && len <= model.max_positions
            && layers
                .iter()
                .all(|(k, v)| k.len() == len * row && v.len() == len * row);
        fits.then(|| Self {
            shared: None,
            layers: layers.into_iter().map(|(k, v)| LayerKv { k, v }).collect(),
            len,
        })
    }
}

/// A weight matrix, multiplied either by candle (`QMatMul`, which repacks Q4_K/Q8_0 into
/// faster tiles on first use) or by caro straight from the mapped blocks.
///
/// Q6_K goes direct: candle tiles it only for prefill (1.5x its size) and still reads the
/// original blocks for decode, so tiling it would keep both copies resident. Q4_K goes to
/// caro's own tiles where the CPU has AVX-512 VNNI or AVX2 (see `q4k.rs`).
enum Linear {
    Candle(QMatMul),
    Direct {
        w: Box<dyn QuantizedType>,
        n: usize,
        k: usize,
        /// The file's blocks when they are Q6_K, for caro's rows (`matvec.rs`): decode's
        /// shared passes and prefill's `matvec::matmul`.
        q6k: Option<(MappedGguf, Range<usize>)>,
    },
    /// Packed from the mapped blocks on first use, so loading stays a cheap mmap and the
    /// repacking cost lands in the first request, as with candle's tiles.
    Q4K {
        map: MappedGguf,
        range: Range<usize>,
        n: usize,
        k: usize,
        packed: OnceLock<Result<PackedQ4K>>,
    },
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Candle(m) => write!(f, "Candle({m:?})"),
            Self::Direct { w, n, k, .. } => write!(f, "Direct({:?}, {n}x{k})", w.dtype()),
            Self::Q4K { n, k, .. } => write!(f, "Q4K({n}x{k})"),
        }
    }
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Direct { w, n, k, .. } => match self.rows() {
                // Mapped Q6_K where caro's rows run: each weight row unpacked once per four
                // prompt rows (eight with AVX2), not once per row as in candle's matmul
                // (`matvec::matmul`).
                Some(rows) => {
                    let rows = rows?;
                    Self::direct(x, *n, *k, |m, lhs, dst| {
                        crate::matvec::matmul(rows, m, lhs, dst)
                    })
                }
                None => Self::direct(x, *n, *k, |m, lhs, dst| w.matmul_t((m, *k, *n), lhs, dst)),
            },
            Self::Q4K { n, k, .. } => {
                let packed = self.packed()?;
                Self::direct(x, *n, *k, |m, lhs, dst| packed.matmul(m, lhs, dst))
            }
        }
    }

    /// caro's tiles of a Q4_K matrix, packed on first use.
    fn packed(&self) -> Result<&PackedQ4K> {
        let Self::Q4K {
            map,
            range,
            n,
            k,
            packed,
        } = self
        else {
            candle_core::bail!("not a Q4_K matrix");
        };
        let packed = packed.get_or_init(|| match map.bytes(range.clone()) {
            Some(bytes) => PackedQ4K::pack(bytes, *n, *k),
            None => Err(candle_core::Error::Msg(
                "Q4_K matrix lies outside the model file".into(),
            )),
        });
        match packed {
            Ok(p) => Ok(p),
            Err(e) => candle_core::bail!("{e}"),
        }
    }

    /// Whether [`Self::vector`] works: candle's own matrices take tensors only.
    fn takes_slices(&self) -> bool {
        !matches!(self, Self::Candle(_))
    }

    /// This matrix in a form caro's decode kernels take, if it has one on this CPU.
    fn rows(&self) -> Option<Result<Rows<'_>>> {
        match self {
            Self::Candle(_) => None,
            Self::Q4K { .. } => Some(self.packed().map(Rows::Q4K)),
            Self::Direct { q6k, n, k, .. } => {
                let (map, range) = q6k.as_ref()?;
                crate::cpu::features().int_dot()?;
                Some(match map.bytes(range.clone()) {
                    Some(blocks) => Ok(Rows::Q6K {
                        blocks,
                        n: *n,
                        k: *k,
                    }),
                    None => Err(candle_core::Error::Msg(
                        "Q6_K matrix lies outside the model file".into(),
                    )),
                })
            }
        }
    }

    /// `w * x` for every `w` in `ws` and every `x` in `xs` (one per sequence; decode's q/k/v
    /// and gate/up share their inputs), without tensors: one parallel pass in which each
    /// matrix is read once for all the inputs when caro's kernels take them all, else matrix
    /// by matrix and input by input.
    fn vectors_batch<const N: usize>(
        ws: [&Self; N],
        xs: &[Vec<f32>],
    ) -> Result<[Vec<Vec<f32>>; N]> {
        let rows = ws.iter().map(|w| w.rows()).collect::<Option<Vec<_>>>();
        let outs = match rows {
            Some(rows) => {
                let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
                matvec_batch(&rows.into_iter().collect::<Result<Vec<_>>>()?, &refs)?
            }
            None => ws
                .iter()
                .map(|w| xs.iter().map(|x| w.vector_alone(x)).collect())
                .collect::<Result<Vec<_>>>()?,
        };
        outs.try_into()
            .map_err(|_| candle_core::Error::Msg("matvec lost an output".into()))
    }

    fn vector_alone(&self, x: &[f32]) -> Result<Vec<f32>> {
        match self {
            Self::Candle(_) => candle_core::bail!("candle matrices take tensors"),
            Self::Direct { w, n, k, .. } => {
                let mut dst = vec![0f32; *n];
                w.matmul_t((1, *k, *n), x, &mut dst)?;
                Ok(dst)
            }
            Self::Q4K { n, .. } => {
                let mut dst = vec![0f32; *n];
                self.packed()?.matmul(1, x, &mut dst)?;
                Ok(dst)
            }
        }
    }

    /// `x (.., k) * wᵀ` through `matmul(m, lhs, dst)`, for the matrices caro multiplies.
    fn direct(
        x: &Tensor,
        n: usize,
        k: usize,
        matmul: impl FnOnce(usize, &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&last, batch)) = dims.split_last() else {
            candle_core::bail!("matmul input has no dimensions");
        };
        if last != k {
            candle_core::bail!("matmul input width {last}, weight expects {k}");
        }
        let m: usize = batch.iter().product();
        let lhs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut dst = vec![0f32; m * n];
        matmul(m, &lhs, &mut dst)?;
        let mut out = batch.to_vec();
        out.push(n);
        Tensor::from_vec(dst, out, x.device())
    }
}

/// Where tensors come from: the file's mapped pages when possible, else a heap copy.
struct Loader<'a> {
    gguf: &'a mut GgufFile,
    map: Option<MappedGguf>,
    device: Device,
    /// File ranges of the matrices candle repacks, per layer, to release after first use.
    packed: Vec<Range<usize>>,
}

impl Loader<'_> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        if let Some(t) = self
            .map
            .as_ref()
            .and_then(|m| m.qtensor(&self.gguf.content, name))
        {
            return t;
        }
        let GgufFile {
            content, reader, ..
        } = &mut *self.gguf;
        content.tensor(reader, name, &self.device)
    }

    fn linear(&mut self, name: &str) -> Result<Linear> {
        let content = &self.gguf.content;
        if let (Some(map), Some(info)) = (&self.map, content.tensor_infos.get(name))
            && let Some(w) = map.raw(content, name)
            && let Ok((n, k)) = info.shape.dims2()
        {
            let q6k = (info.ggml_dtype == GgmlDType::Q6K)
                .then(|| Some((map.clone(), MappedGguf::range(content, name)?)))
                .flatten();
            return Ok(Linear::Direct { w, n, k, q6k });
        }
        if let (Some(map), Some(info)) = (&self.map, content.tensor_infos.get(name))
            && info.ggml_dtype == GgmlDType::Q4K
            && let Ok((n, k)) = info.shape.dims2()
            && PackedQ4K::supported(n, k)
            && let Some(range) = MappedGguf::range(content, name)
        {
            self.packed.push(range.clone());
            return Ok(Linear::Q4K {
                map: map.clone(),
                range,
                n,
                k,
                packed: OnceLock::new(),
            });
        }
        if self.map.is_some()
            && let Some(r) = MappedGguf::range(content, name)
        {
            self.packed.push(r);
        }
        // Read into memory, Q4_1 still gets caro's kernel: candle's sums in another order, and
        // the answer must not depend on whether the weights were mapped.
        let q4_1 = content
            .tensor_infos
            .get(name)
            .filter(|info| info.ggml_dtype == GgmlDType::Q4_1)
            .and_then(|info| info.shape.dims2().ok());
        let t = self.qtensor(name)?;
        if let Some((n, k)) = q4_1
            && let Some(w) = crate::weights::heap_q4_1(&t.data()?)
        {
            return Ok(Linear::Direct { w, n, k, q6k: None });
        }
        Ok(Linear::Candle(QMatMul::from_qtensor(t)?))
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// The norms and biases as plain vectors, when every matrix takes slices: decode then
    /// runs without tensors (see [`Transformer::decode_rows`]).
    vectors: Option<LayerVectors>,
    /// File ranges of this layer's repacked matrices, and whether they were released.
    packed: Vec<Range<usize>>,
    released: AtomicBool,
}

#[derive(Debug)]
struct LayerVectors {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
}

impl Layer {
    fn load(l: &mut Loader<'_>, i: usize, has_bias: bool) -> Result<Self> {
        let name = |n: &str| format!("blk.{i}.{n}");
        let device = l.device.clone();
        let bias = |l: &mut Loader<'_>, n: &str| -> Result<Option<Tensor>> {
            if has_bias {
                Ok(Some(l.qtensor(&name(n))?.dequantize(&device)?))
            } else {
                Ok(None)
            }
        };
        let bq = bias(l, "attn_q.bias")?;
        let bk = bias(l, "attn_k.bias")?;
        let bv = bias(l, "attn_v.bias")?;
        l.packed.clear();
        let mut layer = Self {
            attn_norm: l.qtensor(&name("attn_norm.weight"))?.dequantize(&device)?,
            wq: l.linear(&name("attn_q.weight"))?,
            wk: l.linear(&name("attn_k.weight"))?,
            wv: l.linear(&name("attn_v.weight"))?,
            bq,
            bk,
            bv,
            wo: l.linear(&name("attn_output.weight"))?,
            ffn_norm: l.qtensor(&name("ffn_norm.weight"))?.dequantize(&device)?,
            gate: l.linear(&name("ffn_gate.weight"))?,
            up: l.linear(&name("ffn_up.weight"))?,
            down: l.linear(&name("ffn_down.weight"))?,
            vectors: None,
            packed: std::mem::take(&mut l.packed),
            released: AtomicBool::new(false),
        };
        let linears = [
            &layer.wq,
            &layer.wk,
            &layer.wv,
            &layer.wo,
            &layer.gate,
            &layer.up,
            &layer.down,
        ];
        if linears.iter().all(|w| w.takes_slices()) {
            let vec = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let opt = |t: &Option<Tensor>| t.as_ref().map(vec).transpose();
            layer.vectors = Some(LayerVectors {
                attn_norm: vec(&layer.attn_norm)?,
                ffn_norm: vec(&layer.ffn_norm)?,
                bq: opt(&layer.bq)?,
                bk: opt(&layer.bk)?,
                bv: opt(&layer.bv)?,
            });
        }
        Ok(layer)
    }
}

/// The loaded weights. Immutable once loaded: all per-sequence state lives in [`KvCache`].
#[derive(Debug)]
pub struct Transformer {
    pub params: Hyperparams,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `norm` as a vector, for the decode path.
    norm_vector: Vec<f32>,
    output: Linear,
    /// The mapped file, when the weights are mapped rather than copied.
    map: Option<MappedGguf>,
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
    device: Device,
}

impl Transformer {
    /// Loads the weights. `max_positions` bounds the rotary tables (and thus the context).
    ///
    /// Quantized tensors borrow the file's pages (see [`crate::weights`]) unless `map` is
    /// false or the mapping fails, in which case they are copied onto the heap.
    pub fn load(
        gguf: &mut GgufFile,
        params: Hyperparams,
        max_positions: usize,
        map: bool,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let max_positions = max_positions.min(params.context_length).max(1);
        let map = if map {
            MappedGguf::open(&gguf.path)
                .inspect_err(|e| tracing::warn!("cannot map the model, reading it instead: {e}"))
                .ok()
        } else {
            None
        };
        let mut l = Loader {
            gguf,
            map: map.clone(),
            device: device.clone(),
            packed: Vec::new(),
        };
        let embed = Arc::new(l.qtensor("token_embd.weight")?);
        let output = if l.gguf.content.tensor_infos.contains_key("output.weight") {
            let out = l.linear("output.weight")?;
            l.packed.clear();
            out
        } else {
            // Tied embeddings (SmolLM2, Qwen2.5 0.5B) share one quantized table.
            Linear::Candle(QMatMul::from_arc(embed.clone())?)
        };
        let norm = l.qtensor("output_norm.weight")?.dequantize(&device)?;
        let has_bias = params.arch == Architecture::Qwen2;
        let layers = (0..params.n_layer)
            .map(|i| Layer::load(&mut l, i, has_bias))
            .collect::<Result<Vec<_>>>()?;
        let (cos, sin) = rope_tables(params.head_dim, params.rope_base, max_positions, &device)?;
        Ok(Self {
            params,
            embed,
            layers,
            norm_vector: norm.flatten_all()?.to_vec1::<f32>()?,
            norm,
            output,
            map,
            cos,
            sin,
            max_positions,
            device,
        })
    }

    /// Whether the weights are memory-mapped.
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    /// Largest number of positions a [`KvCache`] may reach.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Floats one position takes in one layer's keys (and again in its values).
    pub(crate) fn kv_row(&self) -> usize {
        self.params.n_kv_head * self.params.head_dim
    }

    /// Number of transformer layers (one key/value pair each in a [`KvCache`]).
    pub(crate) fn n_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            shared: None,
            layers: vec![LayerKv::default(); self.layers.len()],
            len: 0,
        }
    }

    /// Runs `tokens` through the model after the positions already in `cache`, appends their
    /// keys and values to it, and returns the logits for the last token as a `(vocab,)` vector.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let p = &self.params;
        let seq = tokens.len();
        if seq == 0 {
            candle_core::bail!("forward called with no tokens");
        }
        if cache.len + seq > self.max_positions {
            candle_core::bail!(
                "context overflow: {} positions, limit {}",
                cache.len + seq,
                self.max_positions
            );
        }
        if cache.layers.len() != self.layers.len() {
            *cache = self.new_cache();
        }
        if let [token] = tokens
            && self.layers.iter().all(|l| l.vectors.is_some())
        {
            let mut logits = self.decode_rows(&[*token], std::slice::from_mut(cache))?;
            return logits
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("decode lost its logits".into()));
        }
        let pos = cache.len;
        let row = p.n_kv_head * p.head_dim;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.embedding(&ids)?.unsqueeze(0)?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let kv_len = pos + seq;
        let mask = if seq > 1 {
            Some(causal_mask(seq, pos, &self.device)?)
        } else {
            None
        };
        let n_rep = p.n_head / p.n_kv_head;
        let scale = 1.0 / (p.head_dim as f64).sqrt();
        let eps = p.rms_eps;
        let base = cache.shared_len();

        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let proj = |w: &Linear, b: &Option<Tensor>, heads: usize| -> Result<Tensor> {
                let mut t = w.forward(&h)?;
                if let Some(b) = b {
                    t = t.broadcast_add(b)?;
                }
                t.reshape((1, seq, heads, p.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = proj(&layer.wq, &layer.bq, p.n_head)?;
            let k = proj(&layer.wk, &layer.bk, p.n_kv_head)?;
            let v = proj(&layer.wv, &layer.bv, p.n_kv_head)?;
            let (q, k) = match p.arch {
                // llama.cpp's converter permutes Llama's q/k for interleaved rotation; Qwen2
                // GGUFs keep the NeoX half-split layout.
                Architecture::Llama => (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                ),
                Architecture::Qwen2 => (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                ),
            };
            let rows = |t: &Tensor| t.transpose(1, 2)?.flatten_all()?.to_vec1::<f32>();
            cache.layers[l].append((pos - base) * row, &rows(&k)?, &rows(&v)?);
            let mut segs = Vec::new();
            cache.segments(l, row, &mut segs);

            let y = if seq == 1 {
                let q = q.flatten_all()?.to_vec1::<f32>()?;
                let query = Query {
                    q: &q,
                    kv: &segs,
                    kv_len,
                };
                let heads = (p.n_head, p.n_kv_head, p.head_dim);
                let y = decode_attention_batch(&[query], heads, scale as f32)
                    .pop()
                    .unwrap_or_default();
                Tensor::from_vec(y, (1, 1, p.n_embd), &self.device)?
            } else {
                // `values`: the values' buffers, else the keys'.
                let cached = |values: bool| {
                    fn pick<'a>(s: &(&'a [f32], &'a [f32]), values: bool) -> &'a [f32] {
                        if values { s.1 } else { s.0 }
                    }
                    let part = |s| pick(s, values);
                    let shape = (1, kv_len, p.n_kv_head, p.head_dim);
                    let t = match &segs[..] {
                        [one] => Tensor::from_slice(part(one), shape, &self.device)?,
                        // A cache with shared positions: one copy into the tensor, as the
                        // single buffer gets from `from_slice`.
                        many => {
                            let mut all = Vec::with_capacity(kv_len * row);
                            for s in many {
                                all.extend_from_slice(part(s));
                            }
                            Tensor::from_vec(all, shape, &self.device)?
                        }
                    };
                    t.transpose(1, 2)?.contiguous()
                };
                let (k, v) = (cached(false)?, cached(true)?);
                // Grouped-query attention without materialising repeated K/V: the n_rep
                // query heads that share a KV head are stacked along the row axis.
                let q = q.reshape((1, p.n_kv_head, n_rep * seq, p.head_dim))?;
                let att = (q.matmul(&k.t()?)? * scale)?;
                let att = match &mask {
                    Some(m) => att
                        .reshape((1, p.n_kv_head, n_rep, seq, kv_len))?
                        .broadcast_add(m)?
                        .reshape((1, p.n_kv_head, n_rep * seq, kv_len))?,
                    None => att,
                };
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                att.matmul(&v)?
                    .reshape((1, p.n_head, seq, p.head_dim))?
                    .transpose(1, 2)?
                    .reshape((1, seq, p.n_embd))?
            };
            x = (x + layer.wo.forward(&y)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let up = layer.up.forward(&h)?;
            x = (x + layer.down.forward(&(gate * up)?)?)?;

            self.release_repacked(layer);
        }
        cache.len = kv_len;
        let last = x.narrow(1, seq - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, eps)?;
        self.output
            .forward(&last)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()
    }
}

impl Transformer {
    /// After a layer's first forward pass its Q4_K (and, through candle, Q8_0) matrices live
    /// in tiles, and the mapped originals are not read again (if they ever are, they fault
    /// back in), so their pages go back to the kernel.
    fn release_repacked(&self, layer: &Layer) {
        if let Some(map) = &self.map
            && !layer.released.swap(true, Ordering::Relaxed)
        {
            for r in &layer.packed {
                map.release(r.clone());
            }
        }
    }
}

impl Transformer {
    /// One decoded token for each of several sequences: `tokens[i]` continues the sequence
    /// whose cache is `caches[i]` (they may be at different positions), and the result's
    /// `i`th entry is its next-token logits.
    ///
    /// Decode is memory-bound: a step reads every weight once (about 1 GB for the 1.5B
    /// model). Here each matrix is read once per step for all the sequences, which is what
    /// makes several candidates cost little more than one; attention runs per sequence over
    /// its own cache. Where the model has no vector form on this CPU, the sequences are
    /// decoded one after another, with the same results.
    pub fn forward_batch(&self, tokens: &[u32], caches: &mut [KvCache]) -> Result<Vec<Vec<f32>>> {
        if tokens.len() != caches.len() {
            candle_core::bail!("{} tokens for {} sequences", tokens.len(), caches.len());
        }
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        if !self.layers.iter().all(|l| l.vectors.is_some()) {
            return tokens
                .iter()
                .zip(caches.iter_mut())
                .map(|(&t, c)| self.forward(&[t], c))
                .collect();
        }
        for c in caches.iter_mut() {
            if c.len + 1 > self.max_positions {
                candle_core::bail!(
                    "context overflow: {} positions, limit {}",
                    c.len + 1,
                    self.max_positions
                );
            }
            if c.layers.len() != self.layers.len() {
                *c = self.new_cache();
            }
        }
        self.decode_rows(tokens, caches)
    }

    /// One decoded token for each sequence (one in plain decode, several in a batch) on
    /// plain vectors. Each candle op on a 1-row tensor costs a few microseconds of
    /// allocation and dispatch, on one thread while the other waits; a layer has about
    /// twenty of them. The caller has checked the caches' room and shape.
    fn decode_rows(&self, tokens: &[u32], caches: &mut [KvCache]) -> Result<Vec<Vec<f32>>> {
        let p = &self.params;
        let hd = p.head_dim;
        let row = p.n_kv_head * hd;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut xs = self.embed.embedding(&ids)?.to_vec2::<f32>()?;
        let rope_at = caches
            .iter()
            .map(|c| {
                Ok((
                    self.cos.get(c.len)?.to_vec1()?,
                    self.sin.get(c.len)?.to_vec1()?,
                ))
            })
            .collect::<Result<Vec<(Vec<f32>, Vec<f32>)>>>()?;
        let eps = p.rms_eps;
        let scale = 1.0 / (hd as f32).sqrt();
        for (l, layer) in self.layers.iter().enumerate() {
            let Some(vs) = &layer.vectors else {
                candle_core::bail!("layer has no vector form");
            };
            let hs: Vec<Vec<f32>> = xs.iter().map(|x| rms_norm(x, &vs.attn_norm, eps)).collect();
            let [mut qs, mut ks, mut vs_] =
                Linear::vectors_batch([&layer.wq, &layer.wk, &layer.wv], &hs)?;
            for (s, cache) in caches.iter_mut().enumerate() {
                let (q, k, v) = (&mut qs[s], &mut ks[s], &mut vs_[s]);
                for (t, b) in [(&mut *q, &vs.bq), (&mut *k, &vs.bk), (&mut *v, &vs.bv)] {
                    if let Some(b) = b {
                        t.iter_mut().zip(b).for_each(|(t, b)| *t += b);
                    }
                }
                if q.len() != p.n_head * hd || k.len() != row || v.len() != row {
                    candle_core::bail!("attention projections do not match the head layout");
                }
                let (cos, sin) = &rope_at[s];
                for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                    rope(head, cos, sin, p.arch);
                }
                let kept = (cache.len - cache.shared_len()) * row;
                cache.layers[l].append(kept, k, v);
            }
            // Every sequence in one parallel pass, each over its own cache.
            let segs: Vec<Vec<(&[f32], &[f32])>> = caches
                .iter()
                .map(|c| {
                    let mut segs = Vec::new();
                    c.segments(l, row, &mut segs);
                    segs
                })
                .collect();
            let queries: Vec<Query<'_>> = caches
                .iter()
                .zip(&qs)
                .zip(&segs)
                .map(|((c, q), kv)| Query {
                    q,
                    kv,
                    kv_len: c.len + 1,
                })
                .collect();
            let ys = decode_attention_batch(&queries, (p.n_head, p.n_kv_head, hd), scale);
            let [outs] = Linear::vectors_batch([&layer.wo], &ys)?;
            for (x, o) in xs.iter_mut().zip(&outs) {
                add(x, o);
            }
            let hs: Vec<Vec<f32>> = xs.iter().map(|x| rms_norm(x, &vs.ffn_norm, eps)).collect();
            let [mut gates, ups] = Linear::vectors_batch([&layer.gate, &layer.up], &hs)?;
            for (g, u) in gates.iter_mut().zip(&ups) {
                silu_mul(g, u);
            }
            let [downs] = Linear::vectors_batch([&layer.down], &gates)?;
            for (x, d) in xs.iter_mut().zip(&downs) {
                add(x, d);
            }
            self.release_repacked(layer);
        }
        for c in caches.iter_mut() {
            c.len += 1;
        }
        let lasts: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| rms_norm(x, &self.norm_vector, eps))
            .collect();
        if self.output.takes_slices() {
            let [logits] = Linear::vectors_batch([&self.output], &lasts)?;
            return Ok(logits);
        }
        // candle's matrices, one sequence at a time: candle picks other kernels for several
        // rows, and a sequence's logits must not depend on the batch it is in.
        lasts
            .into_iter()
            .map(|last| {
                let n = last.len();
                self.output
                    .forward(&Tensor::from_vec(last, (1, 1, n), &self.device)?)?
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1()
            })
            .collect()
    }
}

/// `x / rms(x) * w`, as candle_nn's `rms_norm`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    let r = 1.0 / (mean + eps).sqrt();
    x.iter().zip(w).map(|(x, w)| x * r * w).collect()
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// Rotates one head in place by this position's angles: Qwen2 rotates the two halves of the
/// head against each other (NeoX), llama.cpp's Llama GGUFs rotate adjacent pairs.
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], arch: Architecture) {
    let half = x.len() / 2;
    for i in 0..half.min(cos.len()) {
        let (a, b) = match arch {
            Architecture::Qwen2 => (i, i + half),
            Architecture::Llama => (2 * i, 2 * i + 1),
        };
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * cos[i] - xb * sin[i];
        x[b] = xb * cos[i] + xa * sin[i];
    }
}

fn rope_tables(
    head_dim: usize,
    base: f32,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let half = inv_freq.len();
    let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
    let t = Tensor::arange(0u32, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?;
    let freqs = t.matmul(&inv_freq)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

/// Additive mask of shape (seq, pos + seq): query i may attend to keys 0..=pos + i.
fn causal_mask(seq: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let kv = pos + seq;
    let data: Vec<f32> = (0..seq)
        .flat_map(|i| (0..kv).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(data, (seq, kv), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: a branch's copy of the cache grows in place on its next tokens.
    #[test]
    fn a_copied_layer_cache_has_room_for_the_next_positions() {
        let layer = LayerKv {
            k: vec![1.0; 400 * 256],
            v: vec![2.0; 400 * 256],
        };
        assert_eq!(
            layer.k.capacity(),
            layer.k.len(),
            "the case the derived clone had"
        );
        let mut copy = layer.clone();
        assert_eq!(
            (copy.k.as_slice(), copy.v.as_slice()),
            (&layer.k[..], &layer.v[..])
        );
        assert!(copy.k.capacity() >= 500 * 256 && copy.v.capacity() >= 500 * 256);
        for pos in 400..500 {
            copy.append(pos * 256, &[3.0; 256], &[4.0; 256]);
        }
        assert_eq!((copy.k[500 * 256 - 1], copy.v[400 * 256]), (3.0, 4.0));
    }

    /// Issue 20: a cache whose positions were shared (twice, as a branch that splits again)
    /// holds the same keys and values as one that kept them all, a clone appends without
    /// touching the original, and what a failed pass left past the length is not shared.
    #[test]
    fn shared_positions_are_the_caches_own_and_clones_do_not_write_them() {
        let (row, layers) = (4, 2);
        let pos = |p: usize, l: usize, kv: usize| vec![(100 * p + 10 * l + kv) as f32; row];
        // Appends position c.len with the values named `p`.
        let push = |c: &mut KvCache, p: usize| {
            let kept = (c.len - c.shared_len()) * row;
            for (l, layer) in c.layers.iter_mut().enumerate() {
                layer.append(kept, &pos(p, l, 0), &pos(p, l, 1));
            }
            c.len += 1;
        };
        let mut c = KvCache {
            shared: None,
            layers: vec![LayerKv::default(); layers],
            len: 0,
        };
        for p in 0..3 {
            push(&mut c, p);
        }
        // A failed pass's leftover past the length, on the first layer only.
        c.layers[0].k.extend_from_slice(&[9.0; 4]);
        c.share_rows(row, layers);
        let mut branch = c.clone();
        push(&mut branch, 3);
        branch.share_rows(row, layers);
        branch.share_rows(row, layers);
        let mut twig = branch.clone();
        push(&mut twig, 4);
        // The original's own next position, other values than the branch's.
        push(&mut c, 7);
        let want = |n: usize, p3: usize| -> Vec<(Vec<f32>, Vec<f32>)> {
            (0..layers)
                .map(|l| {
                    let at = |p| if p == 3 { p3 } else { p };
                    let kv = |x| (0..n).flat_map(|p| pos(at(p), l, x)).collect();
                    (kv(0), kv(1))
                })
                .collect()
        };
        assert_eq!(twig.layers(row), Some(want(5, 3)));
        assert_eq!(branch.layers(row), Some(want(4, 3)));
        assert_eq!(c.layers(row), Some(want(4, 7)));
        let mut segs = Vec::new();
        twig.segments(1, row, &mut segs);
        assert_eq!(
            segs.iter().map(|s| s.0.len() / row).collect::<Vec<_>>(),
            [3, 1, 1],
            "the prompt, the branch's token, the twig's own"
        );
        assert!(
            Arc::ptr_eq(
                c.shared.as_ref().expect("shared"),
                branch
                    .shared
                    .as_ref()
                    .and_then(|b| b.shared.as_ref())
                    .expect("nested")
            ),
            "one copy of the first three positions"
        );
    }

    #[test]
    fn mask_allows_prefix_and_past_only() {
        let m = causal_mask(2, 3, &Device::Cpu)
            .and_then(|t| t.to_vec2::<f32>())
            .expect("mask");
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0; 5]);
    }

    #[test]
    fn rope_tables_start_at_identity() {
        let (cos, sin) = rope_tables(8, 10_000.0, 4, &Device::Cpu).expect("tables");
        assert_eq!(cos.dims(), &[4, 4]);
        let c0 = cos.to_vec2::<f32>().expect("cos")[0].clone();
        let s0 = sin.to_vec2::<f32>().expect("sin")[0].clone();
        assert!(c0.iter().all(|&c| (c - 1.0).abs() < 1e-6));
        assert!(s0.iter().all(|&s| s.abs() < 1e-6));
    }
}
