//! caro's own dot products on the GGUF's own blocks, chosen at run time: AVX-512 VNNI or
//! AVX2 for Q6_K weights against Q8_K activations, and AVX2 for Q4_1 against Q8_1
//! ([`FastQ4_1`]).
//!
//! Q6_K holds the output projection (the largest matrix, 151936 x 1536 in the 1.5B model) and
//! some of the down and value projections. caro multiplies Q6_K from the mapped file because
//! candle's tiles would be 1.5 times its size (see `weights.rs`); candle's own dot product for
//! those blocks is AVX2 `maddubs`. `vpdpbusd` multiplies 64 unsigned 6-bit weights by signed
//! 8-bit activations per instruction instead. [`FastQ6K`] is a drop-in [`GgmlType`] with the
//! same bytes as candle's block, so candle's threaded `k_quants::matmul` can drive it; without
//! AVX-512 VNNI, or with `CARO_NO_VNNI` set, it defers to candle's kernel. [`q6k_rows`]
//! multiplies one row by several inputs at once, with AVX2 where AVX-512 VNNI is missing:
//! batched decode's sequences, and prefill's prompt rows (`matvec::matmul`, which replaced
//! candle's matmul for mapped Q6_K wherever these rows run: candle unpacks each weight row
//! again for every prompt row, and on AVX2 with its own kernel).
//!
//! Measured (README, "Speed"): cold prefill 1.14x faster than with candle's Q6_K kernel,
//! decode unchanged. Q4_K is different: row by row on the file's blocks it prefills at less
//! than half the speed of 16-row tiles, so it gets caro's own compact tiles (`q4k.rs`).
#![allow(unsafe_code)]

use candle_core::quantized::GgmlDType;
use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ6K, BlockQ8_1, BlockQ8K, GgmlType, QK_K};

/// Bytes of one Q6_K block in the file.
pub const Q6K_BYTES: usize = 210;
/// Bytes of one Q8_K activation block (candle's [`BlockQ8K`]): f32 scale, 256 i8 quants,
/// then 16 i16 sums of 16 quants each.
pub(crate) const Q8K_BYTES: usize = 292;
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == Q6K_BYTES);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == Q8K_BYTES);

/// Bytes of one Q4_1 block (f16 scale, f16 minimum, 32 four-bit weights) and of one Q8_1
/// activation block (f16 scale, f16 scaled sum, 32 eight-bit values).
const Q4_1_BYTES: usize = 20;
const Q8_1_BYTES: usize = 36;
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == Q4_1_BYTES);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == Q8_1_BYTES);

/// A Q4_1 block, laid out exactly as in the file, with an AVX2 dot product.
///
/// candle detects AVX2 at run time for Q4_0, Q8_0 and the K quants, but has no vectorized
/// Q4_1 kernel, so models quantized to Q4_1 (the small test model, SmolLM2-135M) ran scalar: prefilling the ~420-token prompt took about 20 s on two
/// cores. Without AVX2 it defers to candle's scalar kernel.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct FastQ4_1(BlockQ4_1);

impl FastQ4_1 {
    fn inner(xs: &[Self]) -> &[BlockQ4_1] {
        // SAFETY: FastQ4_1 is repr(transparent) over BlockQ4_1, so the same memory holds
        // xs.len() valid BlockQ4_1 with the same layout and alignment, borrowed as long.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast(), xs.len()) }
    }

    fn inner_mut(xs: &mut [Self]) -> &mut [BlockQ4_1] {
        // SAFETY: as in `inner`, and the exclusive borrow of `xs` passes to the result.
        unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast(), xs.len()) }
    }
}

impl GgmlType for FastQ4_1 {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const BLCK_SIZE: usize = BlockQ4_1::BLCK_SIZE;
    type VecDotType = BlockQ8_1;

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        BlockQ4_1::to_float(Self::inner(xs), ys)
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        BlockQ4_1::from_float(xs, Self::inner_mut(ys))
    }

    fn vec_dot(n: usize, xs: &[Self], ys: &[BlockQ8_1]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            let nb = n / Self::BLCK_SIZE;
            if crate::cpu::features().avx2 && xs.len() >= nb && ys.len() >= nb {
                // SAFETY: the probe's `avx2` is AVX2, FMA and F16C; both slices hold at least
                // nb blocks of 20 and 36 bytes (FastQ4_1 and BlockQ8_1 are those bytes).
                return unsafe { avx2::q4_1(nb, xs.as_ptr().cast(), ys.as_ptr().cast()) };
            }
        }
        BlockQ4_1::vec_dot(n, Self::inner(xs), ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[BlockQ8_1]) -> f32 {
        BlockQ4_1::vec_dot_unopt(n, Self::inner(xs), ys)
    }
}

/// A Q8_K activation block (candle's layout) whose quantization from f32 is vectorized:
/// candle's is scalar, and in decode it runs on one thread before every matrix product.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct FastQ8K(BlockQ8K);

impl FastQ8K {
    fn inner(xs: &[Self]) -> &[BlockQ8K] {
        // SAFETY: FastQ8K is repr(transparent) over BlockQ8K, so the same memory holds
        // xs.len() valid BlockQ8K with the same layout and alignment, borrowed as long.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast(), xs.len()) }
    }

    fn inner_mut(xs: &mut [Self]) -> &mut [BlockQ8K] {
        // SAFETY: as in `inner`, and the exclusive borrow of `xs` passes to the result.
        unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast(), xs.len()) }
    }
}

/// Quantizes `xs` (a multiple of 256 values) into `ys` as candle's `BlockQ8K::from_float`
/// does, with AVX-512 or AVX2 where the CPU has them: every matrix product quantizes its
/// input first, and candle's loop is scalar (batched decode quantizes one input per
/// sequence, on one thread, before each parallel pass). The AVX2 kernel gives candle's bytes
/// for every input (it hands the blocks it cannot match to candle's code); the AVX-512 one
/// for finite blocks whose largest magnitude is at least about 1e-36 (its tests cover no
/// others), which activations always are.
pub fn quantize_q8k(xs: &[f32], ys: &mut [BlockQ8K]) {
    match crate::cpu::features().int_dot() {
        Some(isa) => quantize_q8k_on(isa, xs, ys),
        None => BlockQ8K::from_float(xs, ys),
    }
}

/// [`quantize_q8k`] with the instructions chosen by the caller (the tests run each); candle's
/// scalar code where this CPU does not run `isa`.
fn quantize_q8k_on(isa: crate::cpu::IntDot, xs: &[f32], ys: &mut [BlockQ8K]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().has(isa) && xs.len() == ys.len() * QK_K {
        use crate::cpu::IntDot;
        let (xs, _) = xs.as_chunks::<QK_K>();
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            match isa {
                // SAFETY: the probe's `vnni` includes AVX-512 F and BW.
                IntDot::Vnni => unsafe { avx512::q8k(x, y) },
                IntDot::Avx2 => {
                    // SAFETY: the probe's `avx2` includes AVX2.
                    let done = unsafe { avx2::q8k(x, y) };
                    if !done {
                        BlockQ8K::from_float(x, std::slice::from_mut(y))
                    }
                }
            }
        }
        return;
    }
    let _ = isa;
    BlockQ8K::from_float(xs, ys)
}

/// The first of `x` whose magnitude is `amax` (their largest), with its sign: candle's Q8_K
/// scale divides by it, so both vector quantizers take the same one. `amax` itself if none
/// matches (never, for the largest magnitude of finite values).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn first_of_magnitude(x: &[f32], amax: f32) -> f32 {
    x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax)
}

/// One Q6_K row dotted with each of `out.len()` quantized inputs, which lie one after
/// another in `acts` (`row.len() / 210` blocks each): `out[r]` for input r. The row is
/// unpacked once for up to four inputs (AVX-512) or eight (AVX2). False (and `out`
/// untouched) without AVX-512 VNNI or AVX2 (`cpu::features().int_dot()`), or when the
/// lengths disagree.
pub fn q6k_rows(row: &[u8], acts: &[BlockQ8K], out: &mut [f32]) -> bool {
    match crate::cpu::features().int_dot() {
        Some(isa) => q6k_rows_on(isa, row, acts, out),
        None => false,
    }
}

/// [`q6k_rows`] with the instructions chosen by the caller (the tests run each). False when
/// this CPU does not run `isa`.
fn q6k_rows_on(isa: crate::cpu::IntDot, row: &[u8], acts: &[BlockQ8K], out: &mut [f32]) -> bool {
    let nb = row.len() / Q6K_BYTES;
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().has(isa)
        && nb > 0
        && row.len() == nb * Q6K_BYTES
        && acts.len() == nb * out.len()
    {
        use crate::cpu::IntDot;
        let stride = nb * Q8K_BYTES;
        // Inputs per unpacked row: the AVX2 kernel unpacks one register of weights at a time
        // and has room for eight sums beside it.
        let group = match isa {
            IntDot::Vnni => 4,
            IntDot::Avx2 => 8,
        };
        for (g, out) in out.chunks_mut(group).enumerate() {
            let y = acts[g * group * nb..].as_ptr().cast::<u8>();
            let x = row.as_ptr();
            // SAFETY: `has(isa)` covers the kernel's features (VNNI: AVX-512 F, BW, VNNI,
            // AVX2, FMA; AVX2: AVX2, FMA, F16C); `row` holds nb blocks of 210 bytes, and from
            // input `group * g` on `acts` holds out.len() rows of nb 292-byte blocks, `stride`
            // bytes apart (lengths above).
            unsafe {
                match (isa, out.len()) {
                    (IntDot::Vnni, 1) => out.copy_from_slice(&avx512::q6k::<1>(nb, x, y, stride)),
                    (IntDot::Vnni, 2) => out.copy_from_slice(&avx512::q6k::<2>(nb, x, y, stride)),
                    (IntDot::Vnni, 3) => out.copy_from_slice(&avx512::q6k::<3>(nb, x, y, stride)),
                    (IntDot::Vnni, _) => out.copy_from_slice(&avx512::q6k::<4>(nb, x, y, stride)),
                    (IntDot::Avx2, 1) => out.copy_from_slice(&avx2::q6k::<1>(nb, x, y, stride)),
                    (IntDot::Avx2, 2) => out.copy_from_slice(&avx2::q6k::<2>(nb, x, y, stride)),
                    (IntDot::Avx2, 3) => out.copy_from_slice(&avx2::q6k::<3>(nb, x, y, stride)),
                    (IntDot::Avx2, 4) => out.copy_from_slice(&avx2::q6k::<4>(nb, x, y, stride)),
                    (IntDot::Avx2, 5) => out.copy_from_slice(&avx2::q6k::<5>(nb, x, y, stride)),
                    (IntDot::Avx2, 6) => out.copy_from_slice(&avx2::q6k::<6>(nb, x, y, stride)),
                    (IntDot::Avx2, 7) => out.copy_from_slice(&avx2::q6k::<7>(nb, x, y, stride)),
                    (IntDot::Avx2, _) => out.copy_from_slice(&avx2::q6k::<8>(nb, x, y, stride)),
                }
            }
        }
        return true;
    }
    let _ = (isa, row, acts, out, nb);
    false
}

impl GgmlType for FastQ8K {
    const DTYPE: GgmlDType = GgmlDType::Q8K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = FastQ8K;

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        BlockQ8K::to_float(Self::inner(xs), ys)
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        quantize_q8k(xs, Self::inner_mut(ys))
    }

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self]) -> f32 {
        BlockQ8K::vec_dot(n, Self::inner(xs), Self::inner(ys))
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self]) -> f32 {
        BlockQ8K::vec_dot_unopt(n, Self::inner(xs), Self::inner(ys))
    }
}

/// A Q6_K block, laid out exactly as in the file, with caro's dot product.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct FastQ6K(BlockQ6K);

impl FastQ6K {
    fn inner(xs: &[Self]) -> &[BlockQ6K] {
        // SAFETY: FastQ6K is repr(transparent) over BlockQ6K, so the same memory holds
        // xs.len() valid BlockQ6K with the same layout and alignment, borrowed as long.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast(), xs.len()) }
    }

    fn inner_mut(xs: &mut [Self]) -> &mut [BlockQ6K] {
        // SAFETY: as in `inner`, and the exclusive borrow of `xs` passes to the result.
        unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast(), xs.len()) }
    }
}

impl GgmlType for FastQ6K {
    const DTYPE: GgmlDType = GgmlDType::Q6K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = FastQ8K;

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        BlockQ6K::to_float(Self::inner(xs), ys)
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        BlockQ6K::from_float(xs, Self::inner_mut(ys))
    }

    fn vec_dot(n: usize, xs: &[Self], ys: &[FastQ8K]) -> f32 {
        // caro's rows where they run (AVX-512 VNNI or AVX2), so a matrix gives the same
        // values whether decode multiplies it in a shared pass or alone.
        let nb = n / QK_K;
        if let (Some(xs), Some(ys)) = (xs.get(..nb), ys.get(..nb)) {
            let row = Self::inner(xs);
            // SAFETY: BlockQ6K is 210 plain bytes laid out as in the file (size asserted at
            // the top), so `row` is nb * 210 initialized bytes, borrowed as long as `xs`.
            let bytes =
                unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), nb * Q6K_BYTES) };
            let mut out = [0f32];
            if q6k_rows(bytes, FastQ8K::inner(ys), &mut out) {
                return out[0];
            }
        }
        BlockQ6K::vec_dot(n, Self::inner(xs), FastQ8K::inner(ys))
    }

    fn vec_dot_4(
        n: usize,
        xs0: &[Self],
        xs1: &[Self],
        xs2: &[Self],
        xs3: &[Self],
        ys: &[FastQ8K],
    ) -> (f32, f32, f32, f32) {
        // Four single-row calls: a kernel interleaving the four rows block by block measured
        // half the decode speed; rows read one after another suit the hardware prefetcher.
        if crate::cpu::features().int_dot().is_some() {
            return (
                Self::vec_dot(n, xs0, ys),
                Self::vec_dot(n, xs1, ys),
                Self::vec_dot(n, xs2, ys),
                Self::vec_dot(n, xs3, ys),
            );
        }
        // candle's own four-row kernels (NEON on Apple Silicon).
        BlockQ6K::vec_dot_4(
            n,
            Self::inner(xs0),
            Self::inner(xs1),
            Self::inner(xs2),
            Self::inner(xs3),
            FastQ8K::inner(ys),
        )
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[FastQ8K]) -> f32 {
        BlockQ6K::vec_dot_unopt(n, Self::inner(xs), FastQ8K::inner(ys))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ8K, Q4_1_BYTES, Q6K_BYTES, Q8_1_BYTES, Q8K_BYTES, QK_K};
    use core::arch::x86_64::*;

    /// Reads the f16 at `p` (unaligned) as f32.
    ///
    /// # Safety
    /// The CPU has F16C, and `p` points at 2 readable bytes.
    #[target_feature(enable = "f16c")]
    #[inline]
    unsafe fn half(p: *const u8) -> f32 {
        // SAFETY: the caller guarantees 2 readable bytes; `read_unaligned` needs no alignment.
        let bits = unsafe { p.cast::<u16>().read_unaligned() };
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    /// One Q4_1 row (`nb` blocks of 20 bytes) dotted with one Q8_1 row (`nb` blocks of 36
    /// bytes), as ggml's `ggml_vec_dot_q4_1_q8_1`: per block, d_x d_y times the integer dot
    /// product of the unsigned nibbles with the signed activations, plus m_x times the
    /// activation block's scaled sum.
    ///
    /// # Safety
    /// The CPU runs AVX2, FMA and F16C; `x` points at `nb * 20` readable bytes and `y` at
    /// `nb * 36`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q4_1(nb: usize, x: *const u8, y: *const u8) -> f32 {
        // Two blocks per step into separate accumulators: one accumulator made every block
        // wait for the previous block's fused multiply-add.
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut mins = [0f32; 2];
        let pairs = nb / 2;
        for i in 0..pairs {
            for (j, (acc, mins)) in acc.iter_mut().zip(mins.iter_mut()).enumerate() {
                // SAFETY: block 2i + j < 2 * pairs <= nb, so both blocks lie in the caller's
                // rows; this function has block's features.
                unsafe {
                    block(
                        x.add((2 * i + j) * Q4_1_BYTES),
                        y.add((2 * i + j) * Q8_1_BYTES),
                        acc,
                        mins,
                    )
                };
            }
        }
        if nb % 2 == 1 {
            // SAFETY: block nb - 1 is the rows' last; this function has block's features.
            unsafe {
                block(
                    x.add((nb - 1) * Q4_1_BYTES),
                    y.add((nb - 1) * Q8_1_BYTES),
                    &mut acc[0],
                    &mut mins[0],
                )
            };
        }
        let acc = _mm256_add_ps(acc[0], acc[1]);
        let sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        let sum = _mm_add_ss(sum, _mm_shuffle_ps::<1>(sum, sum));
        _mm_cvtss_f32(sum) + mins[0] + mins[1]
    }

    /// Adds one block's product: d_x d_y times the integer dot product into `acc`, and
    /// m_x times the activations' scaled sum into `mins`.
    ///
    /// # Safety
    /// The CPU runs AVX2, FMA and F16C; `xb` points at one Q4_1 block (20 readable bytes)
    /// and `yb` at one Q8_1 block (36).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block(xb: *const u8, yb: *const u8, acc: &mut __m256, mins: &mut f32) {
        // SAFETY: both blocks start with two f16 (bytes 0..4); this function runs with F16C.
        let (xd, xm, yd, ys) = unsafe { (half(xb), half(xb.add(2)), half(yb), half(yb.add(2))) };
        *mins += xm * ys;
        // Weight j is the low nibble of byte j, weight j + 16 its high nibble.
        // SAFETY: the block's nibbles are bytes 4..20 of its 20.
        let packed = unsafe { _mm_loadu_si128(xb.add(4).cast()) };
        let qx = _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
            _mm256_set1_epi8(0x0f),
        );
        // SAFETY: the activations are bytes 4..36 of the Q8_1 block's 36.
        let qy = unsafe { _mm256_loadu_si256(yb.add(4).cast()) };
        // Unsigned 4-bit times signed 8-bit pairs fit i16 (at most 2 * 15 * 128).
        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(qx, qy), _mm256_set1_epi16(1));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(xd * yd), _mm256_cvtepi32_ps(dot), *acc);
    }
    /// One Q8_K block from 256 finite floats, as candle's scalar `from_float`: scale by
    /// -127 over the first value of largest magnitude, round half away from zero, clamp to
    /// i8, and sum each 16 quants. False (and `y` untouched) when a value is NaN or
    /// infinite, or the scale overflows (the largest magnitude under about 1e-36, where
    /// 0 times the scale is NaN): candle's scalar code then decides (it skips NaNs when it
    /// looks for the largest magnitude, and its float-to-i8 cast turns NaN into 0), so the
    /// result never depends on whether this kernel or candle's code ran.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8k(x: &[f32; QK_K], y: &mut BlockQ8K) -> bool {
        let xp = x.as_ptr();
        // SAFETY: called with i < 32 only, so floats 8i..8i + 8 lie in x's 256.
        let xs = |i: usize| unsafe { _mm256_loadu_ps(xp.add(8 * i)) };
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
        let mut m = _mm256_setzero_ps();
        let mut odd = _mm256_setzero_ps();
        for i in 0..32 {
            let v = xs(i);
            m = _mm256_max_ps(m, _mm256_and_ps(v, abs));
            // NaN is unordered with itself; infinity minus itself is NaN.
            odd = _mm256_or_ps(odd, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, _mm256_sub_ps(v, v)));
        }
        if _mm256_movemask_ps(odd) != 0 {
            return false;
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
        // candle's fields are private: the block is written as its 292 bytes, d (f32) at 0,
        // the quants at 4..260, the sums (i16) at 260..292. Every bit pattern is a valid
        // BlockQ8K, and `y` is borrowed exclusively.
        let y = (y as *mut BlockQ8K).cast::<u8>();
        if amax == 0.0 {
            // SAFETY: the block's 292 bytes (see above).
            unsafe { std::ptr::write_bytes(y, 0, Q8K_BYTES) };
            return true;
        }
        let iscale = -127.0 / super::first_of_magnitude(x, amax);
        if !iscale.is_finite() {
            return false;
        }
        let scale = _mm256_set1_ps(iscale);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        // packs interleave 128-bit lanes; this puts the 32 bytes back in input order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let quant = |i: usize| {
            let v = _mm256_mul_ps(xs(i), scale);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            // v - trunc(v) is exact, so this is f32::round's half-away-from-zero.
            let away = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_and_ps(_mm256_sub_ps(v, t), abs), half);
            let step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(v, sign)));
            let r = _mm256_add_ps(t, step);
            _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi))
        };
        let mut sums = [_mm256_setzero_si256(); 8];
        for (j, sum) in sums.iter_mut().enumerate() {
            // Quants 32j..32j + 32: groups 2j and 2j + 1 of 16.
            let q = [
                quant(4 * j),
                quant(4 * j + 1),
                quant(4 * j + 2),
                quant(4 * j + 3),
            ];
            // Already clamped to -128..=127, so the saturating packs change nothing.
            let b = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(
                    _mm256_packs_epi32(q[0], q[1]),
                    _mm256_packs_epi32(q[2], q[3]),
                ),
                order,
            );
            // SAFETY: j < 8: bytes 4 + 32j..36 + 32j <= 260 of the block. Unaligned store.
            unsafe { _mm256_storeu_si256(y.add(4 + 32 * j).cast(), b) };
            // Lanes 0, 1, 4 and 5 add up to group 2j's sum, lanes 2, 3, 6 and 7 to group
            // 2j + 1's (`vphaddd` adds neighbours within each 128-bit half).
            *sum = _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        }
        // Registers 2j and 2j + 1 cover groups 4j..4j + 4; one more `vphaddd` leaves each
        // group's sum split over the same lane of the two 128-bit halves.
        for (j, pair) in sums.chunks_exact(2).enumerate() {
            let h = _mm256_hadd_epi32(pair[0], pair[1]);
            let t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            // t holds the four 16-value sums of groups 4j..4j + 4, in order.
            let t16 = _mm_packs_epi32(t, t);
            // SAFETY: j < 4: sums 4j..4j + 4 are bytes 260 + 8j..268 + 8j <= 292.
            unsafe { _mm_storel_epi64(y.add(4 + QK_K + 8 * j).cast(), t16) };
        }
        // SAFETY: d is the block's bytes 0..4.
        unsafe { y.cast::<f32>().write_unaligned(1.0 / iscale) };
        true
    }

    /// One Q6_K row (210-byte blocks) dotted with `ROWS` Q8_K rows, each `nb` blocks,
    /// `stride` bytes apart, with AVX2: the AVX-512 kernel's scheme (the weights unsigned,
    /// 0..63, unpacked once per block for all the rows, and 32 times each scaled 16-value
    /// activation sum subtracted at the end), 32 weights a step. `vpmaddubsw` gives 16-bit
    /// pair sums of at most 2 * 63 * 128 = 16128 (no saturation); `vpmaddwd` multiplies them
    /// by their 16-value group's scale and adds pairs into 32 bits. The integer sums are the
    /// AVX-512 kernel's; the floats are added in another order, so the last bits may differ.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `x` points at `nb` Q6_K blocks (`nb * 210` readable
    /// bytes) and `y` at `ROWS` rows of `nb` Q8_K blocks, row r's at `y + r * stride`
    /// (`nb * 292` readable bytes each).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q6k<const ROWS: usize>(
        nb: usize,
        x: *const u8,
        y: *const u8,
        stride: usize,
    ) -> [f32; ROWS] {
        let m4 = _mm256_set1_epi8(0x0f);
        let m3 = _mm256_set1_epi8(0x03);
        let m30 = _mm256_set1_epi8(0x30);
        let mut acc = [_mm256_setzero_ps(); ROWS];
        for i in 0..nb {
            let xb = x.wrapping_add(i * Q6K_BYTES);
            // The block two ahead, while this one is multiplied: one sequence's decode waited
            // on memory here. Its 210 bytes may touch a fifth cache line, which is the next
            // block's first prefetch. A prefetch never faults, so past the row's end is
            // harmless.
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(xb.wrapping_add(2 * Q6K_BYTES + 64 * line).cast());
            }
            // SAFETY: xb is block i < nb of the Q6_K row: its 16 i8 scales are bytes
            // 192..208 and its f16 d bytes 208..210.
            let (scales, sc, xd) = unsafe {
                (
                    _mm_loadu_si128(xb.add(192).cast()),
                    xb.add(192).cast::<[i8; 16]>().read_unaligned(),
                    half(xb.add(208)),
                )
            };
            let sc16 = _mm256_cvtepi8_epi16(scales);
            let mut sumi = [_mm256_setzero_si256(); ROWS];
            for h in 0..2 {
                // Weights 128h + 32j .. + 32, one register j at a time, multiplied into every
                // row before the next is unpacked: with up to eight rows, all four registers
                // at once did not fit the sixteen AVX2 registers beside the sums.
                for j in 0..4 {
                    // SAFETY: h < 2 and j < 4: the low nibbles are bytes 64h + 32 (j % 2)..+32
                    // < 128 of block i and the high bits bytes 128 + 32h..160 + 32h <= 192.
                    // Unaligned loads.
                    let (ql, qh) = unsafe {
                        (
                            _mm256_loadu_si256(xb.add(64 * h + 32 * (j % 2)).cast()),
                            _mm256_loadu_si256(xb.add(128 + 32 * h).cast()),
                        )
                    };
                    // ggml's order: low nibbles of the first then second 32 bytes, then the
                    // high nibbles; the top two bits from qh's bit pairs 0, 1, 2, 3.
                    let qh = if j % 2 == 1 {
                        _mm256_srli_epi16::<2>(qh)
                    } else {
                        qh
                    };
                    let w = if j < 2 {
                        _mm256_or_si256(
                            _mm256_and_si256(ql, m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(qh, m3)),
                        )
                    } else {
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql), m4),
                            _mm256_and_si256(qh, m30),
                        )
                    };
                    // The register's 32 weights are two 16-value groups, 8h + 2j and
                    // 8h + 2j + 1: each group's scale in the 8 16-bit lanes its pair sums
                    // land in.
                    let g = 8 * h + 2 * j;
                    let s = _mm256_set_m128i(
                        _mm_set1_epi16(i16::from(sc[g + 1])),
                        _mm_set1_epi16(i16::from(sc[g])),
                    );
                    for (r, sumi) in sumi.iter_mut().enumerate() {
                        // SAFETY: block i < nb of row r < ROWS (the caller's contract); its
                        // quants 128h + 32j..+32 are bytes 4 + 128h + 32j..+32 <= 260 of 292.
                        let a = unsafe {
                            _mm256_loadu_si256(
                                y.add(r * stride + i * Q8K_BYTES + 4 + 128 * h + 32 * j)
                                    .cast(),
                            )
                        };
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), s);
                        *sumi = _mm256_add_epi32(*sumi, p);
                    }
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                // SAFETY: block i < nb of row r < ROWS: d (f32) is bytes 0..4 and the 16 i16
                // sums bytes 260..292. Unaligned loads.
                let (yd, bsums) = unsafe {
                    let yb = y.add(r * stride + i * Q8K_BYTES);
                    (
                        yb.cast::<f32>().read_unaligned(),
                        _mm256_loadu_si256(yb.add(4 + 256).cast()),
                    )
                };
                // 32 * sum over groups of scale * activation sum: the unsigned offset.
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums));
                let sumi = _mm256_sub_epi32(sumi, offset);
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(yd * xd), _mm256_cvtepi32_ps(sumi), *acc);
            }
        }
        acc.map(|a| {
            let sum = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
            let sum = _mm_add_ss(sum, _mm_shuffle_ps::<1>(sum, sum));
            _mm_cvtss_f32(sum)
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BlockQ8K, Q6K_BYTES, Q8K_BYTES, QK_K};
    use core::arch::x86_64::*;
    use half::f16;

    const fn lanes(groups: [i32; 4]) -> [i32; 16] {
        let mut out = [0; 16];
        let mut l = 0;
        while l < 16 {
            out[l] = groups[l / 4];
            l += 1;
        }
        out
    }
    /// For each quarter (64 weights) of a block: lane l takes 16-value group 4q + l / 4.
    static IDX: [[i32; 16]; 4] = [
        lanes([0, 1, 2, 3]),
        lanes([4, 5, 6, 7]),
        lanes([8, 9, 10, 11]),
        lanes([12, 13, 14, 15]),
    ];

    /// One Q8_K block from 256 floats, as candle's scalar `from_float`: scale by -127 over
    /// the first value of largest magnitude, round half away from zero, clamp to i8, and
    /// sum each 16 quants.
    ///
    /// # Safety
    /// The CPU has AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn q8k(x: &[f32; QK_K], y: &mut BlockQ8K) {
        // candle's fields are private: the block is written as its 292 bytes, d (f32) at 0,
        // the quants at 4..260, the sums (i16) at 260..292. Every bit pattern is a valid
        // BlockQ8K, and `y` is borrowed exclusively.
        let y = (y as *mut BlockQ8K).cast::<u8>();
        let xp = x.as_ptr();
        // SAFETY: called with i < 16 only, so floats 16i..16i + 16 lie in x's 256; the
        // caller guarantees AVX-512 F.
        let xs = |i: usize| unsafe { _mm512_loadu_ps(xp.add(16 * i)) };
        let mut m = _mm512_setzero_ps();
        for i in 0..16 {
            m = _mm512_max_ps(m, _mm512_abs_ps(xs(i)));
        }
        let amax = _mm512_reduce_max_ps(m);
        if amax == 0.0 || amax.is_nan() {
            // SAFETY: the block's 292 bytes (see above).
            unsafe { std::ptr::write_bytes(y, 0, Q8K_BYTES) };
            return;
        }
        let iscale = -127.0 / super::first_of_magnitude(x, amax);
        let scale = _mm512_set1_ps(iscale);
        let half = _mm512_set1_ps(0.5);
        let one = _mm512_set1_ps(1.0);
        let sign = _mm512_set1_epi32(i32::MIN);
        let (lo, hi) = (_mm512_set1_ps(-128.0), _mm512_set1_ps(127.0));
        for i in 0..16 {
            let v = _mm512_mul_ps(xs(i), scale);
            let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            // v - trunc(v) is exact, so this is f32::round's half-away-from-zero.
            let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(v, t)), half);
            // ±1 with v's sign (integer ops: the float and/or need AVX-512 DQ).
            let step = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(one),
                _mm512_and_si512(_mm512_castps_si512(v), sign),
            ));
            let r = _mm512_mask_add_ps(t, away, t, step);
            let q = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(r, lo), hi));
            let sum = _mm512_reduce_add_epi32(q) as i16;
            // SAFETY: i < 16, so quants 16i..16i + 16 are bytes 4 + 16i..20 + 16i < 260 and
            // sum i is bytes 260 + 2i..262 + 2i <= 292, both in the block (unaligned writes).
            unsafe {
                _mm_storeu_si128(y.add(4 + 16 * i).cast(), _mm512_cvtepi32_epi8(q));
                y.add(4 + 256 + 2 * i).cast::<i16>().write_unaligned(sum);
            }
        }
        // SAFETY: d is the block's bytes 0..4.
        unsafe { y.cast::<f32>().write_unaligned(1.0 / iscale) };
    }

    /// One Q6_K row (210-byte blocks) dotted with `ROWS` Q8_K rows, each `nb` blocks,
    /// `stride` bytes apart: the weights are unpacked once per block for all the rows
    /// (batched decode reads each weight row once for every sequence).
    ///
    /// Each half-block of 128 weights is 64 bytes of low nibbles and 32 bytes of high bit
    /// pairs. The weights are used unsigned (0..63, i.e. q + 32), and 32 times each scaled
    /// 16-value activation sum is subtracted at the end.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI, AVX2 and FMA; `x` points at `nb` Q6_K blocks
    /// (`nb * 210` readable bytes) and `y` at `ROWS` rows of `nb` Q8_K blocks, row r's at
    /// `y + r * stride` (`nb * 292` readable bytes each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    pub(super) unsafe fn q6k<const ROWS: usize>(
        nb: usize,
        x: *const u8,
        y: *const u8,
        stride: usize,
    ) -> [f32; ROWS] {
        let m4 = _mm512_set1_epi8(0x0f);
        let m3 = _mm512_set1_epi8(0x03);
        let m30 = _mm512_set1_epi8(0x30);
        // SAFETY: each IDX row is 16 i32, one 64-byte (unaligned) load.
        let idx = unsafe {
            [
                _mm512_loadu_si512(IDX[0].as_ptr().cast()),
                _mm512_loadu_si512(IDX[1].as_ptr().cast()),
                _mm512_loadu_si512(IDX[2].as_ptr().cast()),
                _mm512_loadu_si512(IDX[3].as_ptr().cast()),
            ]
        };
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for i in 0..nb {
            let xb = x.wrapping_add(i * Q6K_BYTES);
            // SAFETY: xb is block i < nb of the Q6_K row: its 16 i8 scales are bytes
            // 192..208 and its f16 d bytes 208..210.
            let (scales, xd) = unsafe {
                (
                    _mm_loadu_si128(xb.add(192).cast()),
                    xb.add(208).cast::<u16>().read_unaligned(),
                )
            };
            let xd = f16::from_bits(xd).to_f32();
            let sc32 = _mm512_cvtepi8_epi32(scales);
            let sc16 = _mm256_cvtepi8_epi16(scales);
            // The block's 256 weights as four 64-byte groups, and each group's scales.
            let mut w = [_mm512_setzero_si512(); 4];
            for h in 0..2 {
                // SAFETY: h < 2: half h's low nibbles are bytes 64h..64h + 64 < 128 of block
                // i and its high bits bytes 128 + 32h..160 + 32h <= 192.
                let (ql, qh) = unsafe {
                    (
                        _mm512_loadu_si512(xb.add(64 * h).cast()),
                        _mm256_loadu_si256(xb.add(128 + 32 * h).cast()),
                    )
                };
                let qhz =
                    _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
                w[2 * h] = _mm512_or_si512(
                    _mm512_and_si512(ql, m4),
                    _mm512_slli_epi16(_mm512_and_si512(qhz, m3), 4),
                );
                w[2 * h + 1] = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                    _mm512_and_si512(qhz, m30),
                );
            }
            let sg = [
                _mm512_permutexvar_epi32(idx[0], sc32),
                _mm512_permutexvar_epi32(idx[1], sc32),
                _mm512_permutexvar_epi32(idx[2], sc32),
                _mm512_permutexvar_epi32(idx[3], sc32),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: block i < nb of row r < ROWS (the caller's contract). The Q8_K
                // block is d (bytes 0..4), 256 quants (4..260, four 64-byte loads) and 16
                // i16 sums (260..292, one 32-byte load); all loads are unaligned.
                let (yd, a, bsums) = unsafe {
                    let yb = y.add(r * stride + i * Q8K_BYTES);
                    let a = [
                        _mm512_loadu_si512(yb.add(4).cast()),
                        _mm512_loadu_si512(yb.add(4 + 64).cast()),
                        _mm512_loadu_si512(yb.add(4 + 128).cast()),
                        _mm512_loadu_si512(yb.add(4 + 192).cast()),
                    ];
                    let bsums = _mm256_loadu_si256(yb.add(4 + 256).cast());
                    (yb.cast::<f32>().read_unaligned(), a, bsums)
                };
                // 32 * sum over groups of scale * activation sum: the unsigned offset.
                let offset = _mm256_madd_epi16(sc16, bsums);
                let mut sumi = _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_slli_epi32(_mm512_zextsi256_si512(offset), 5),
                );
                for g in 0..4 {
                    let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[g], a[g]);
                    sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p, sg[g]));
                }
                *acc = _mm512_fmadd_ps(_mm512_set1_ps(yd * xd), _mm512_cvtepi32_ps(sumi), *acc);
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values with a spread like real activations and weights.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * 4.0
            })
            .collect()
    }

    fn quantize<T: GgmlType>(xs: &[f32]) -> Vec<T> {
        let mut out = vec![T::zeros(); xs.len() / T::BLCK_SIZE];
        T::from_float(xs, &mut out);
        out
    }

    fn check<F: GgmlType<VecDotType = FastQ8K>>() {
        for (k, seed) in [(256, 1), (1536, 2), (8960, 3)] {
            let acts: Vec<FastQ8K> = quantize(&values(k, seed));
            let rows: Vec<Vec<F>> = (0..4).map(|r| quantize(&values(k, 100 + r))).collect();
            let reference: Vec<f32> = rows.iter().map(|w| F::vec_dot_unopt(k, w, &acts)).collect();
            let tol = |r: f32| 1e-3 * r.abs().max(1.0);
            for (w, &want) in rows.iter().zip(&reference) {
                let got = F::vec_dot(k, w, &acts);
                assert!((got - want).abs() <= tol(want), "k={k}: {got} vs {want}");
            }
            let four = F::vec_dot_4(k, &rows[0], &rows[1], &rows[2], &rows[3], &acts);
            for (got, want) in [four.0, four.1, four.2, four.3].into_iter().zip(reference) {
                assert!(
                    (got - want).abs() <= tol(want),
                    "k={k} (4 rows): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn q4_1_matches_the_reference_dot_product() {
        use crate::cpu;
        if !cpu::runs(cpu::features().avx2, "the AVX2 Q4_1 dot product") {
            return;
        }
        for (k, seed) in [(32, 1), (96, 4), (576, 2), (1536, 3)] {
            let acts: Vec<BlockQ8_1> = quantize(&values(k, seed));
            for r in 0..4 {
                let w: Vec<FastQ4_1> = quantize(&values(k, 100 + r));
                let want = FastQ4_1::vec_dot_unopt(k, &w, &acts);
                let got = FastQ4_1::vec_dot(k, &w, &acts);
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "k={k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn q6k_matches_the_reference_dot_product() {
        use crate::cpu;
        if !cpu::runs(
            cpu::features().int_dot().is_some(),
            "caro's Q6_K dot product (AVX-512 VNNI or AVX2)",
        ) {
            return;
        }
        check::<FastQ6K>();
    }

    /// `isa`'s decode rows against candle's scalar reference, for one to nine inputs at a
    /// time (every row count the kernel is instantiated for, and chunks of four with a
    /// remainder), and each input's value equal bit for bit to the value it gets alone.
    fn check_rows(isa: crate::cpu::IntDot) {
        for (k, seed) in [(256, 1), (1536, 2), (8960, 3)] {
            let w: Vec<BlockQ6K> = quantize(&values(k, 100 + seed));
            let row = {
                // SAFETY: BlockQ6K is 210 plain bytes, laid out as in the file (size asserted
                // at the top), borrowed as long as `w`.
                unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), w.len() * Q6K_BYTES) }
            };
            let inputs: Vec<Vec<BlockQ8K>> = (0..9)
                .map(|r| quantize(&values(k, seed * 10 + r)))
                .collect();
            let alone: Vec<f32> = inputs
                .iter()
                .map(|a| {
                    let mut out = [f32::NAN];
                    assert!(
                        q6k_rows_on(isa, row, a, &mut out),
                        "{isa:?} refused one input"
                    );
                    out[0]
                })
                .collect();
            for (a, got) in inputs.iter().zip(&alone) {
                let want = BlockQ6K::vec_dot_unopt(k, &w, a);
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{isa:?} k={k}: {got} vs {want}"
                );
            }
            for m in 1..=9 {
                let acts: Vec<BlockQ8K> = inputs[..m].concat();
                let mut out = vec![f32::NAN; m];
                assert!(
                    q6k_rows_on(isa, row, &acts, &mut out),
                    "{isa:?} refused {m} inputs"
                );
                assert_eq!(out, alone[..m], "{isa:?} k={k}, {m} inputs at once");
            }
            // Lengths that disagree are refused, with the output untouched.
            let mut out = [f32::NAN; 2];
            assert!(!q6k_rows_on(isa, row, &inputs[0], &mut out));
            assert!(out.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn q6k_rows_match_the_reference_with_avx512_vnni() {
        use crate::cpu;
        if !cpu::runs(cpu::features().vnni, "the AVX-512 VNNI Q6_K rows") {
            return;
        }
        check_rows(cpu::IntDot::Vnni);
    }

    #[test]
    fn q6k_rows_match_the_reference_with_avx2() {
        use crate::cpu;
        if !cpu::runs(cpu::features().avx2, "the AVX2 Q6_K rows") {
            return;
        }
        check_rows(cpu::IntDot::Avx2);
    }

    fn bytes(b: &[BlockQ8K]) -> &[u8] {
        // SAFETY: BlockQ8K is 292 bytes of f32, i8 and i16 with no padding (size asserted at
        // the top), so the blocks are b.len() * 292 initialized bytes, borrowed as long as b.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), b.len() * Q8K_BYTES) }
    }

    #[test]
    fn q8k_quantization_matches_candles_bit_for_bit_with_avx512() {
        use crate::cpu;
        if !cpu::runs(cpu::features().vnni, "the AVX-512 activation quantizer") {
            return;
        }
        q8k_matches_candle(cpu::IntDot::Vnni, false);
    }

    #[test]
    fn q8k_quantization_matches_candles_bit_for_bit_with_avx2() {
        use crate::cpu;
        if !cpu::runs(cpu::features().avx2, "the AVX2 activation quantizer") {
            return;
        }
        q8k_matches_candle(cpu::IntDot::Avx2, true);
    }

    /// `quantize_q8k_on(isa)` against candle's scalar code, bytes compared, on random
    /// values, zeros, tiny values, exact halves, ties and saturation; with `odd`, also on
    /// blocks holding NaN or infinity among ordinary values.
    fn q8k_matches_candle(isa: crate::cpu::IntDot, odd: bool) {
        let mut inputs = vec![values(4096, 9), vec![0.0; 256], vec![1e-30; 256]];
        let mut neg = values(256, 5);
        neg[77] = -40.0;
        inputs.push(neg);
        // Exact halves after scaling (the largest magnitude is -127, so the scale is 1),
        // a tie between +max and -max, and values that saturate.
        let mut ties: Vec<f32> = (0..256).map(|i| (i as f32 - 128.0) / 2.0).collect();
        ties[0] = -127.0;
        inputs.push(ties);
        let mut signs = values(256, 4);
        signs[3] = 50.0;
        signs[9] = -50.0;
        inputs.push(signs);
        if odd {
            // A NaN, then an infinity, in one block of three, the others ordinary.
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut xs = values(768, 6);
                xs[300] = bad;
                inputs.push(xs);
            }
            // Magnitudes so small that -127 over the largest overflows, with zeros of both
            // signs beside them (0 times an infinite scale is NaN).
            for tiny in [1e-38f32, -3e-39, f32::MIN_POSITIVE] {
                let mut xs = vec![0.0f32; 256];
                xs[7] = tiny;
                xs[8] = -0.0;
                xs[100] = tiny / 2.0;
                inputs.push(xs);
            }
        }
        for xs in inputs {
            let mut want = vec![BlockQ8K::zeros(); xs.len() / QK_K];
            BlockQ8K::from_float(&xs, &mut want);
            // Filled with garbage first, so a block the kernel skipped would show.
            let mut got = vec![BlockQ8K::zeros(); xs.len() / QK_K];
            BlockQ8K::from_float(&values(xs.len(), 77), &mut got);
            quantize_q8k_on(isa, &xs, &mut got);
            assert_eq!(bytes(&got), bytes(&want));
        }
    }
}
