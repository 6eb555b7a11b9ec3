//! Vector math on plain slices for the decode path: the exponential, and SiLU built on it.
//!
//! Release builds target baseline x86-64, so the compiler's own loops here would call libm's
//! scalar `expf` once per value: 8960 times per layer for the feed-forward gate alone.
#![allow(unsafe_code)]

/// `e^x` for eight values, to about 1 ulp: Cephes' `expf`, i.e. `2^n * p(r)` with
/// `x = n ln 2 + r`. Inputs are clamped to [-87, 88], where e^x stays a normal float.
///
/// # Safety
/// The CPU must have AVX2 and FMA; call it from functions compiled with them, so that it
/// inlines.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn exp8(x: core::arch::x86_64::__m256) -> core::arch::x86_64::__m256 {
    use core::arch::x86_64::*;
    // SAFETY: the caller guarantees AVX2 and FMA.
    unsafe {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_2e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(
            _mm256_mul_ps(p, r),
            r,
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
    }
}

/// `gate[i] = silu(gate[i]) * up[i]`, the feed-forward's gated activation.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().avx2 {
        let n = gate.len().min(up.len());
        // SAFETY: the probe's `avx2` covers AVX2 and FMA, all silu_mul_avx2 needs.
        unsafe { silu_mul_avx2(&mut gate[..n], &up[..n]) };
        return;
    }
    gate.iter_mut()
        .zip(up)
        .for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
}

/// [`silu_mul`] eight values at a time, over the shorter of the two slices.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
    use core::arch::x86_64::*;
    let mut g8 = gate.chunks_exact_mut(8);
    let mut u8 = up.chunks_exact(8);
    for (g, u) in (&mut g8).zip(&mut u8) {
        // SAFETY: both chunks hold 8 floats, and this function runs with AVX2 and FMA.
        unsafe {
            let x = _mm256_loadu_ps(g.as_ptr());
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            _mm256_storeu_ps(
                g.as_mut_ptr(),
                _mm256_mul_ps(s, _mm256_loadu_ps(u.as_ptr())),
            );
        }
    }
    for (g, u) in g8.into_remainder().iter_mut().zip(u8.remainder()) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_matches_the_scalar_formula_across_the_range() {
        // 8-wide body plus a tail; values from far negative (e^x clamps) to far positive.
        let gate: Vec<f32> = (0..203).map(|i| (i as f32 - 101.0) * 1.1).collect();
        let up: Vec<f32> = (0..203).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut got = gate.clone();
        silu_mul(&mut got, &up);
        for ((g, x), u) in got.iter().zip(&gate).zip(&up) {
            let want = x / (1.0 + (-x).exp()) * u;
            assert!(
                (g - want).abs() <= 2e-6 * want.abs().max(1e-3),
                "silu({x}) * {u}: {g} vs {want}"
            );
        }
    }
}
