//! Attention for one decoded token, computed straight on the KV cache's buffers.
//!
//! Decode attends one query per head over every cached position: a few hundred short dot
//! products, for which candle's general matmul (and its per-call thread setup) cost more than
//! the arithmetic.
#![allow(unsafe_code)]

/// Attention of one new position over the `kv_len` cached ones, straight on the cache's
/// position-major `[position][kv head][head dim]` buffers: `q` is `[head][head dim]`, the
/// result `[head][head dim]`. Heads run in parallel.
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
            let job = Head {
                q: &q[h * hd..(h + 1) * hd],
                k,
                v,
                row,
                off: (h / n_rep) * hd,
                kv_len,
                scale,
            };
            // SAFETY: each head writes only its own `hd` outputs.
            let o = unsafe { std::slice::from_raw_parts_mut((out_at as *mut f32).add(h * hd), hd) };
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features.
                unsafe { head_avx2(&job, &mut w, o) };
                continue;
            }
            head(&job, &mut w, o);
        }
    });
    out
}

/// One query head against its KV head's cached positions.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    /// Floats per cached position (all KV heads).
    row: usize,
    /// This KV head's offset within a position.
    off: usize,
    kv_len: usize,
    scale: f32,
}

/// [`head`] with AVX2 and FMA: release builds target baseline x86-64 (SSE2), where the
/// scores loop runs at half the width, and the weighted sum of values is written out by hand
/// because the compiler leaves it scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(j: &Head<'_>, w: &mut [f32], o: &mut [f32]) {
    use core::arch::x86_64::*;
    let inv = scores(j, w);
    let hd = j.q.len();
    let full = hd / 32 * 32;
    for start in (0..full).step_by(32) {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (t, &wt) in w.iter().enumerate().take(j.kv_len) {
            let vr = &j.v[t * j.row + j.off + start..][..32];
            let wt = _mm256_set1_ps(wt);
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `vr` holds 32 floats.
                let x = unsafe { _mm256_loadu_ps(vr.as_ptr().add(i * 8)) };
                *acc = _mm256_fmadd_ps(wt, x, *acc);
            }
        }
        let inv = _mm256_set1_ps(inv);
        for (i, acc) in acc.iter().enumerate() {
            // SAFETY: `o` has `hd` floats and start + 32 <= hd.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr().add(start + i * 8), _mm256_mul_ps(*acc, inv))
            };
        }
    }
    weighted_values(j, w, inv, &mut o[full..], full);
}

/// Scores of every cached position in `w`, softmax-weighted (unnormalised); returns
/// 1 / their sum.
#[inline(always)]
fn scores(j: &Head<'_>, w: &mut [f32]) -> f32 {
    let hd = j.q.len();
    let mut max = f32::NEG_INFINITY;
    for (t, w) in w.iter_mut().enumerate().take(j.kv_len) {
        *w = dot(j.q, &j.k[t * j.row + j.off..][..hd]) * j.scale;
        max = max.max(*w);
    }
    let mut sum = 0f32;
    for w in w.iter_mut().take(j.kv_len) {
        *w = (*w - max).exp();
        sum += *w;
    }
    1.0 / sum
}

/// `o = inv * sum over positions of w[t] * v[t]`, for head dims `from..from + o.len()`.
#[inline(always)]
fn weighted_values(j: &Head<'_>, w: &[f32], inv: f32, o: &mut [f32], from: usize) {
    o.fill(0.0);
    for (t, &wt) in w.iter().enumerate().take(j.kv_len) {
        let vr = &j.v[t * j.row + j.off + from..][..o.len()];
        for (o, x) in o.iter_mut().zip(vr) {
            *o += wt * x;
        }
    }
    for o in o.iter_mut() {
        *o *= inv;
    }
}

fn head(j: &Head<'_>, w: &mut [f32], o: &mut [f32]) {
    let inv = scores(j, w);
    weighted_values(j, w, inv, o, 0);
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
}
