//! Attention for one decoded token, computed straight on the KV cache's buffers.
//!
//! Decode attends one query per head over every cached position: a few hundred short dot
//! products, for which candle's general matmul (and its per-call thread setup) cost more than
//! the arithmetic.
#![allow(unsafe_code)]

/// Attention of one new position over the `kv_len` cached ones, straight on the cache's
/// position-major `[position][kv head][head dim]` buffers: `q` is `[head][head dim]`, the
/// result `[head][head dim]`. Heads run in parallel. The tests' one-buffer form of
/// [`decode_attention_batch`].
#[cfg(test)]
pub fn decode_attention(
    q: &[f32],
    (k, v): (&[f32], &[f32]),
    kv_len: usize,
    heads: (usize, usize, usize),
    scale: f32,
) -> Vec<f32> {
    let seq = Query {
        q,
        kv: &[(k, v)],
        kv_len,
    };
    let mut outs = decode_attention_batch(&[seq], heads, scale);
    outs.pop().unwrap_or_default()
}

/// One sequence's part of a batched decode step: its new position's query (`[head][head
/// dim]`) and its KV cache, `kv_len` positions long.
pub struct Query<'a> {
    pub q: &'a [f32],
    /// The cache's keys and values as segments in position order, each a pair of
    /// position-major buffers of whole positions: best-of-k branches share the prompt's
    /// positions (issue 20), each adding its own after them. A position's arithmetic does not
    /// depend on the segment it lies in, so the result is the bits one buffer gives.
    pub kv: &'a [(&'a [f32], &'a [f32])],
    pub kv_len: usize,
}

/// The first `n` positions' rows (`row` floats each) of `segs`, in order; fewer when the
/// segments hold fewer.
fn rows<'a>(segs: impl Iterator<Item = &'a [f32]>, row: usize, n: usize, out: &mut Vec<&'a [f32]>) {
    out.clear();
    for seg in segs {
        let left = n - out.len();
        out.extend(seg.chunks_exact(row.max(1)).take(left));
    }
}

/// [`decode_attention`] for several sequences in one parallel pass: result i is sequence i's,
/// bit for bit what it gets alone. A pass ends at a barrier where one thread waits for the
/// other, and batched decode ran one pass per sequence and layer (224 a step for eight
/// sequences of the 1.5B model).
pub fn decode_attention_batch(
    seqs: &[Query<'_>],
    (n_head, n_kv_head, hd): (usize, usize, usize),
    scale: f32,
) -> Vec<Vec<f32>> {
    let n_rep = (n_head / n_kv_head.max(1)).max(1);
    let row = n_kv_head * hd;
    let mut outs: Vec<Vec<f32>> = seqs.iter().map(|_| vec![0f32; n_head * hd]).collect();
    // Contiguous heads per thread, not a shared cursor: heads that share a KV head then run
    // on one core, which reads that KV head's cold cache rows from memory once.
    let threads = crate::pool::threads();
    let per = n_head.div_ceil(threads);
    // Thread tid's part: heads tid * per.. (the last part may be shorter) of every sequence.
    let mut parts: Vec<Vec<(usize, &mut [f32])>> = (0..threads).map(|_| Vec::new()).collect();
    for (s, out) in outs.iter_mut().enumerate() {
        for (tid, chunk) in out.chunks_mut((per * hd).max(1)).enumerate() {
            parts[tid].push((s, chunk));
        }
    }
    crate::pool::per_thread(parts, |tid, part| {
        let mut w = Vec::new();
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        for (s, chunk) in part {
            let Query { q, kv, kv_len } = seqs[s];
            let heads = Heads {
                q,
                n_rep,
                hd,
                scale,
                first: tid * per,
            };
            // Segments shorter than `kv_len` are a caller's bug; attend over what is there
            // rather than read past it.
            match kv {
                // One buffer (every cache but a best-of-k branch's): positions by arithmetic,
                // as before segments existed.
                [(k, v)] => {
                    let kv_len = kv_len.min(k.len() / row.max(1)).min(v.len() / row.max(1));
                    let k = Buffer { buf: k, row };
                    let v = Buffer { buf: v, row };
                    heads.run(&k, &v, kv_len, &mut w, chunk);
                }
                _ => {
                    rows(kv.iter().map(|s| s.0), row, kv_len, &mut ks);
                    rows(kv.iter().map(|s| s.1), row, kv_len, &mut vs);
                    let kv_len = ks.len().min(vs.len());
                    heads.run(ks.as_slice(), vs.as_slice(), kv_len, &mut w, chunk);
                }
            }
        }
    });
    outs
}

/// One sequence's query heads `first..` on one thread.
struct Heads<'a> {
    q: &'a [f32],
    /// Query heads per KV head.
    n_rep: usize,
    hd: usize,
    scale: f32,
    first: usize,
}

impl Heads<'_> {
    /// Each head of `chunk` (hd floats each) against the first `kv_len` positions of `k` and
    /// `v`, which hold at least that many (the caller's cut).
    fn run<P: Positions + ?Sized>(
        &self,
        k: &P,
        v: &P,
        kv_len: usize,
        w: &mut Vec<f32>,
        chunk: &mut [f32],
    ) {
        let hd = self.hd;
        w.resize(kv_len, 0f32);
        // Read once per sequence, not per head and token.
        #[cfg(target_arch = "x86_64")]
        let avx2 = crate::cpu::features().avx2;
        for (i, o) in chunk.chunks_mut(hd.max(1)).enumerate() {
            let h = self.first + i;
            let job = Head {
                q: &self.q[h * hd..(h + 1) * hd],
                k,
                v,
                off: (h / self.n_rep) * hd,
                kv_len,
                scale: self.scale,
            };
            #[cfg(target_arch = "x86_64")]
            if avx2 && hd.is_multiple_of(64) && job.off + hd <= k.width() && k.width() == v.width()
            {
                // SAFETY: the probe's `avx2` covers AVX2 and FMA; `k` and `v` hold kv_len
                // positions (the caller's cut) of `width()` >= off + hd floats, hd is a
                // multiple of 64, `job.q` and `o` hold hd floats (a slice of `q` and a chunk
                // of hd), and `w` holds kv_len.
                unsafe { head_avx2(&job, w, o) };
                continue;
            }
            head(&job, w, o);
        }
    }
}

/// Where each cached position's row (all KV heads, `width()` floats) lies: one buffer, or a
/// row per position gathered from a cache's segments. Generic, so that the one-buffer case
/// compiles to plain arithmetic on positions.
trait Positions {
    /// Floats per position.
    fn width(&self) -> usize;
    /// Position t's row.
    fn row(&self, t: usize) -> &[f32];
    /// The start of position t's row, computed without a bounds check: only positions the
    /// caller knows are there may be read from it, `width()` floats each.
    fn start(&self, t: usize) -> *const f32;
}

/// Positions one after another in one buffer.
struct Buffer<'a> {
    buf: &'a [f32],
    row: usize,
}

impl Positions for Buffer<'_> {
    fn width(&self) -> usize {
        self.row
    }
    #[inline(always)]
    fn row(&self, t: usize) -> &[f32] {
        &self.buf[t * self.row..][..self.row]
    }
    #[inline(always)]
    fn start(&self, t: usize) -> *const f32 {
        self.buf.as_ptr().wrapping_add(t * self.row)
    }
}

/// A row per position (each whole, from [`rows`]).
impl Positions for [&[f32]] {
    fn width(&self) -> usize {
        self.first().map_or(0, |r| r.len())
    }
    #[inline(always)]
    fn row(&self, t: usize) -> &[f32] {
        self[t]
    }
    #[inline(always)]
    fn start(&self, t: usize) -> *const f32 {
        self[t].as_ptr()
    }
}

/// One query head against its KV head's cached positions.
struct Head<'a, P: ?Sized> {
    q: &'a [f32],
    /// Each cached position's keys (all KV heads), in position order.
    k: &'a P,
    /// Each cached position's values, likewise.
    v: &'a P,
    /// This KV head's offset within a position.
    off: usize,
    kv_len: usize,
    scale: f32,
}

/// [`head`] with AVX2 and FMA, for head dims that are a multiple of 64 (release builds
/// target baseline x86-64, where the compiler's own loops run at SSE width and call libm's
/// scalar `expf`).
///
/// Scores take eight positions at a time, one accumulator each, reduced together at the end,
/// so each position costs one horizontal add instead of a dependent chain of them; the
/// softmax's exponentials are eight at a time; the weighted sum of values keeps eight
/// independent accumulators (64 head dims) so the FMAs are not waiting on each other.
///
/// # Safety
/// The CPU has AVX2 and FMA. With `hd = j.q.len()`: hd is a multiple of 64, `j.k` and `j.v`
/// hold at least `j.kv_len` positions of `width()` >= `j.off + hd` floats each, `w` holds at
/// least `j.kv_len` floats and `o` at least hd.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2<P: Positions + ?Sized>(j: &Head<'_, P>, w: &mut [f32], o: &mut [f32]) {
    use core::arch::x86_64::*;
    let hd = j.q.len();
    let n = j.kv_len;
    // Raw pointers for the hot loads, whose bounds follow from the contract: position t's
    // dims off..off + hd lie in its row of `k` and `v` for every t < n.
    let q = j.q.as_ptr();
    // Looked up once per position and block, not per load: the rows may lie in different
    // segments of the cache.
    let k = |t: usize| j.k.start(t).wrapping_add(j.off);
    let v = |t: usize| j.v.start(t).wrapping_add(j.off);
    let scale = _mm256_set1_ps(j.scale);
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut t = 0;
    while t + 8 <= n {
        let mut acc = [_mm256_setzero_ps(); 8];
        let rows: [*const f32; 8] = std::array::from_fn(|p| k(t + p));
        // Past the end, a prefetch of this block's own rows again: harmless and never read.
        let ahead: [*const f32; 8] = std::array::from_fn(|p| k((t + PREFETCH + p).min(n - 1)));
        for i in (0..hd).step_by(8) {
            // SAFETY: i + 8 <= hd (a multiple of 8) and `q` holds hd floats.
            let qv = unsafe { _mm256_loadu_ps(q.add(i)) };
            for (p, acc) in acc.iter_mut().enumerate() {
                // SAFETY: position t + p < n, and i + 8 <= hd (see `k` above).
                let kv = unsafe { _mm256_loadu_ps(rows[p].add(i)) };
                *acc = _mm256_fmadd_ps(qv, kv, *acc);
                if i % 16 == 0 {
                    // The cache is cold (every layer's weights streamed through since this
                    // layer last ran) and rows are strided, which the hardware prefetcher
                    // follows poorly. A prefetch never faults.
                    _mm_prefetch::<_MM_HINT_T0>(ahead[p].wrapping_add(i).cast());
                }
            }
        }
        // SAFETY: this function runs with AVX2.
        let s = _mm256_mul_ps(unsafe { sums8(&acc) }, scale);
        // SAFETY: the slice holds 8 floats (t + 8 <= n <= w.len()).
        unsafe { _mm256_storeu_ps(w[t..t + 8].as_mut_ptr(), s) };
        vmax = _mm256_max_ps(vmax, s);
        t += 8;
    }
    // SAFETY: this function runs with AVX2.
    let mut max = unsafe { hmax(vmax) };
    for (t, w) in w.iter_mut().enumerate().take(n).skip(t) {
        *w = dot(j.q, &j.k.row(t)[j.off..][..hd]) * j.scale;
        max = max.max(*w);
    }
    let vmax = _mm256_set1_ps(max);
    let mut vsum = _mm256_setzero_ps();
    let mut t = 0;
    while t + 8 <= n {
        let w8 = &mut w[t..t + 8];
        // SAFETY: `w8` holds 8 floats; this function runs with AVX2 and FMA (exp8's need).
        let e = unsafe {
            let e = crate::vecmath::exp8(_mm256_sub_ps(_mm256_loadu_ps(w8.as_ptr()), vmax));
            _mm256_storeu_ps(w8.as_mut_ptr(), e);
            e
        };
        vsum = _mm256_add_ps(vsum, e);
        t += 8;
    }
    // SAFETY: this function runs with AVX2.
    let mut sum = unsafe { hsum(vsum) };
    for w in w.iter_mut().take(n).skip(t) {
        *w = (*w - max).exp();
        sum += *w;
    }
    let inv = _mm256_set1_ps(1.0 / sum);
    for start in (0..hd).step_by(64) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (t, &wt) in w.iter().enumerate().take(n) {
            let wt = _mm256_set1_ps(wt);
            if t + PREFETCH < n {
                let ahead = v(t + PREFETCH);
                for l in 0..4 {
                    // A prefetch never faults; this one lies in position t + PREFETCH's row.
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(start + 16 * l).cast());
                }
            }
            let row = v(t);
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: position t < n, and start + 8 i + 8 <= start + 64 <= hd.
                let x = unsafe { _mm256_loadu_ps(row.add(start + i * 8)) };
                *acc = _mm256_fmadd_ps(wt, x, *acc);
            }
        }
        for (o, acc) in o[start..start + 64].chunks_exact_mut(8).zip(acc) {
            // SAFETY: `o` here is a chunk of 8 floats.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(acc, inv)) };
        }
    }
}

/// Positions ahead to prefetch: far enough to cover a DRAM round trip.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 64;

/// Lane p of the result is the sum of the eight lanes of `a[p]`.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sums8(a: &[core::arch::x86_64::__m256; 8]) -> core::arch::x86_64::__m256 {
    use core::arch::x86_64::*;
    // SAFETY: the caller guarantees AVX2.
    unsafe {
        let s0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let s4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(s0123, s4567),
            _mm256_permute2f128_ps::<0x31>(s0123, s4567),
        )
    }
}

/// The sum of the eight lanes.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hsum(x: core::arch::x86_64::__m256) -> f32 {
    let mut l = [0f32; 8];
    // SAFETY: `l` holds 8 floats; the caller guarantees AVX.
    unsafe { core::arch::x86_64::_mm256_storeu_ps(l.as_mut_ptr(), x) };
    l.iter().sum()
}

/// The largest of the eight lanes.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hmax(x: core::arch::x86_64::__m256) -> f32 {
    let mut l = [0f32; 8];
    // SAFETY: `l` holds 8 floats; the caller guarantees AVX.
    unsafe { core::arch::x86_64::_mm256_storeu_ps(l.as_mut_ptr(), x) };
    l.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Scores of every cached position in `w`, softmax-weighted (unnormalised); returns
/// 1 / their sum.
#[inline(always)]
fn scores<P: Positions + ?Sized>(j: &Head<'_, P>, w: &mut [f32]) -> f32 {
    let hd = j.q.len();
    let mut max = f32::NEG_INFINITY;
    for (t, w) in w.iter_mut().enumerate().take(j.kv_len) {
        *w = dot(j.q, &j.k.row(t)[j.off..][..hd]) * j.scale;
        max = max.max(*w);
    }
    let mut sum = 0f32;
    for w in w.iter_mut().take(j.kv_len) {
        *w = (*w - max).exp();
        sum += *w;
    }
    1.0 / sum
}

/// `o = inv * sum over positions of w[t] * v[t]`.
fn weighted_values<P: Positions + ?Sized>(j: &Head<'_, P>, w: &[f32], inv: f32, o: &mut [f32]) {
    o.fill(0.0);
    for (t, &wt) in w.iter().enumerate().take(j.kv_len) {
        let vr = &j.v.row(t)[j.off..][..o.len()];
        for (o, x) in o.iter_mut().zip(vr) {
            *o += wt * x;
        }
    }
    for o in o.iter_mut() {
        *o *= inv;
    }
}

fn head<P: Positions + ?Sized>(j: &Head<'_, P>, w: &mut [f32], o: &mut [f32]) {
    let inv = scores(j, w);
    weighted_values(j, w, inv, o);
}

/// A dot product the compiler vectorizes: 16 independent partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same attention written the obvious way.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        len: usize,
        heads: (usize, usize, usize),
    ) -> Vec<f32> {
        let (n_head, n_kv, hd) = heads;
        let mut out = vec![0f32; n_head * hd];
        for h in 0..n_head {
            let g = h / (n_head / n_kv);
            let s: Vec<f32> = (0..len)
                .map(|t| {
                    (0..hd)
                        .map(|i| q[h * hd + i] * k[(t * n_kv + g) * hd + i])
                        .sum::<f32>()
                        * 0.125
                })
                .collect();
            let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let z: f32 = e.iter().sum();
            for t in 0..len {
                for i in 0..hd {
                    out[h * hd + i] += e[t] / z * v[(t * n_kv + g) * hd + i];
                }
            }
        }
        out
    }

    #[test]
    fn decode_attention_matches_the_plain_formula() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for (heads, len) in [((12, 2, 64), 37), ((4, 4, 20), 1), ((9, 3, 128), 300)] {
            let (n_head, n_kv, hd) = heads;
            let q: Vec<f32> = (0..n_head * hd).map(val).collect();
            let k: Vec<f32> = (0..len * n_kv * hd).map(|i| val(i + 3)).collect();
            let v: Vec<f32> = (0..len * n_kv * hd).map(|i| val(i + 11)).collect();
            let got = decode_attention(&q, (&k, &v), len, heads, 0.125);
            let want = reference(&q, &k, &v, len, heads);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{heads:?} len {len}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn a_batch_gives_each_sequence_exactly_its_attention_alone() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for heads in [(12, 2, 128), (9, 3, 20), (1, 1, 64)] {
            let (n_head, n_kv, hd) = heads;
            // Different lengths and contents per sequence, as after different steps.
            type Seq = (Vec<f32>, Vec<f32>, Vec<f32>, usize);
            let seqs: Vec<Seq> = [37, 1, 300, 64]
                .iter()
                .enumerate()
                .map(|(s, &len)| {
                    let q = (0..n_head * hd).map(|i| val(i + 100 * s)).collect();
                    let k = (0..len * n_kv * hd).map(|i| val(i + 3 + s)).collect();
                    let v = (0..len * n_kv * hd).map(|i| val(i + 11 * s)).collect();
                    (q, k, v, len)
                })
                .collect();
            let segs: Vec<[(&[f32], &[f32]); 1]> =
                seqs.iter().map(|(_, k, v, _)| [(&k[..], &v[..])]).collect();
            let queries: Vec<Query<'_>> = seqs
                .iter()
                .zip(&segs)
                .map(|((q, _, _, kv_len), kv)| Query {
                    q,
                    kv,
                    kv_len: *kv_len,
                })
                .collect();
            let got = decode_attention_batch(&queries, heads, 0.125);
            assert_eq!(got.len(), seqs.len());
            for ((q, k, v, len), got) in seqs.iter().zip(&got) {
                let alone = decode_attention(q, (k, v), *len, heads, 0.125);
                let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(&alone), "{heads:?} len {len}");
                let want = reference(q, k, v, *len, heads);
                assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-4));
            }
        }
        assert!(decode_attention_batch(&[], (12, 2, 128), 0.125).is_empty());
    }

    /// Issue 20: best-of-k branches share the prompt's positions and each keeps its own after
    /// them. Cut anywhere, inside or between the kernel's blocks of eight positions, the
    /// segments give exactly the attention of one buffer.
    #[test]
    fn a_cache_in_segments_gives_the_bits_of_one_buffer() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        for heads in [(12, 2, 128), (9, 3, 20)] {
            let (n_head, n_kv, hd) = heads;
            let row = n_kv * hd;
            let len = 300;
            let q: Vec<f32> = (0..n_head * hd).map(|i| val(i + 5)).collect();
            let k: Vec<f32> = (0..len * row).map(|i| val(i + 3)).collect();
            let v: Vec<f32> = (0..len * row).map(|i| val(i + 11)).collect();
            let one = decode_attention(&q, (&k, &v), len, heads, 0.125);
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for cuts in [vec![8], vec![5], vec![0, 3, 3, 150, 299], vec![297, 299]] {
                let mut bounds = vec![0];
                bounds.extend(&cuts);
                bounds.push(len);
                let kv: Vec<(&[f32], &[f32])> = bounds
                    .windows(2)
                    .map(|b| (&k[b[0] * row..b[1] * row], &v[b[0] * row..b[1] * row]))
                    .collect();
                let got = decode_attention_batch(
                    &[Query {
                        q: &q,
                        kv: &kv,
                        kv_len: len,
                    }],
                    heads,
                    0.125,
                );
                assert_eq!(bits(&got[0]), bits(&one), "{heads:?} cut at {cuts:?}");
            }
        }
    }
}
