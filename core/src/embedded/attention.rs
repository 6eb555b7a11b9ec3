//! Attention for one decoded token, computed straight on the KV cache's buffers.
//!
//! Decode attends one query per head over every cached position: a few hundred short dot
//! products, for which candle's general matmul (and its per-call thread setup) cost more than
//! the arithmetic.
#![allow(unsafe_code)]

/// Attention of one new position over the `kv_len` cached ones, straight on the cache's
/// position-major `[position][kv head][head dim]` buffers: `q` is `[head][head dim]`, the result `[head][head dim]`. Heads run in parallel.
pub fn decode_attention(
    q: &[f32],
    (k, v): (&[f32], &[f32]),
    kv_len: usize,
    (n_head, n_kv_head, hd): (usize, usize, usize),
    scale: f32,
) -> Vec<f32> {
    let n_rep = (n_head / n_kv_head.max(1)).max(1);
    let row = n_kv_head * hd;
    let mut out = vec![0f32; n_head * hd];
    let out_at = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n_head, |heads| {
        let mut w = vec![0f32; kv_len];
        for h in heads {
            let g = h / n_rep;
            let qh = &q[h * hd..(h + 1) * hd];
            let mut max = f32::NEG_INFINITY;
            for (t, w) in w.iter_mut().enumerate() {
                *w = dot(qh, &k[t * row + g * hd..][..hd]) * scale;
                max = max.max(*w);
            }
            let mut sum = 0f32;
            for w in w.iter_mut() {
                *w = (*w - max).exp();
                sum += *w;
            }
            // SAFETY: each head writes only its own `hd` outputs.
            let o = unsafe { std::slice::from_raw_parts_mut((out_at as *mut f32).add(h * hd), hd) };
            for (t, &w) in w.iter().enumerate() {
                let w = w / sum;
                for (o, v) in o.iter_mut().zip(&v[t * row + g * hd..][..hd]) {
                    *o += w * v;
                }
            }
        }
    });
    out
}

/// A dot product the compiler vectorizes: 16 independent partial sums.
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
}
