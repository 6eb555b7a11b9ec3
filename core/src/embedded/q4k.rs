//! Q4_K matrices repacked into 16-row tiles with integer scales, multiplied with AVX-512 VNNI.
//!
//! Decode reads every weight once per token, so its speed is set by how many bytes a weight
//! costs and how little work each byte needs. candle's x86 tiles widen Q4_K's 6-bit scales and
//! mins to f32 per row and subblock: 6 bits per weight, a third more than the file's 4.5, and
//! an f32 multiply per subblock. caro's [`PackedQ4K`] keeps the file's 6-bit scales and f16
//! factors, regrouped by row (4.5 bits per weight, the file's own size), sums each superblock
//! in 32-bit integers, and converts to float once per superblock, in the layout `vpdpbusd`
//! wants: 16 rows in the 16 lanes of a register, so no horizontal sums are needed. Up to four prompt rows share each weight load during prefill.
//!
//! Only used where AVX-512 VNNI is present (`cpu::features().vnni`); elsewhere candle's own
//! kernels run.
#![allow(unsafe_code)]

use candle_core::Result;
use candle_core::quantized::k_quants::{BlockQ8K, GgmlType, QK_K};

/// Output rows per tile: one per 32-bit lane of a 512-bit register.
pub const TILE_ROWS: usize = 16;
/// Bytes of one Q4_K block in the file: d, dmin (f16), 12 bytes of packed 6-bit scales and
/// mins, 128 bytes of nibbles.
pub const Q4K_BYTES: usize = 144;
const Q8K_BYTES: usize = 292;
/// Prompt rows that share one pass over a weight tile.
const MAX_ROWS: usize = 4;
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == Q8K_BYTES);

/// One superblock (256 inputs) of 16 output rows.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Tile {
    /// `[group (32)][row (16)][4 bytes]`: byte j of a group holds input 8g + j in its low
    /// nibble and 8g + j + 4 in its high nibble, so one 64-byte load feeds two `vpdpbusd`s.
    qs: [u8; QK_K / 8 * TILE_ROWS * 4],
    /// `[subblock (8)][row (16)]`: the low 4 bits of the 6-bit scale, then of the min.
    lo: [u8; 8 * TILE_ROWS],
    /// `[subblock pair (4)][row (16)]`: the top 2 bits of scale, min, next scale, next min.
    hi: [u8; 4 * TILE_ROWS],
    /// f16 bits.
    d: [u16; TILE_ROWS],
    /// f16 bits.
    dmin: [u16; TILE_ROWS],
}
/// Exactly the file's 144 bytes per row and superblock: decode is bound by memory
/// bandwidth, so every byte a tile adds is time.
const _: () = assert!(std::mem::size_of::<Tile>() == TILE_ROWS * Q4K_BYTES);

/// A Q4_K weight matrix of `n` rows by `k` inputs, in caro's tile layout.
pub struct PackedQ4K {
    tiles: Vec<Tile>,
    n: usize,
    k: usize,
}

impl std::fmt::Debug for PackedQ4K {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedQ4K({}x{})", self.n, self.k)
    }
}

/// ggml's unpacking of the 6-bit scale and min of subblock `j` from 12 packed bytes.
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

impl PackedQ4K {
    /// Whether this CPU and shape can use the packed kernel.
    pub fn supported(n: usize, k: usize) -> bool {
        super::cpu::features().vnni
            && n > 0
            && k > 0
            && n.is_multiple_of(TILE_ROWS)
            && k.is_multiple_of(QK_K)
    }

    /// Repacks `n * k / 256` Q4_K blocks, as stored in a GGUF file (row-major), into tiles.
    pub fn pack(blocks: &[u8], n: usize, k: usize) -> Result<Self> {
        if n == 0 || k == 0 || !n.is_multiple_of(TILE_ROWS) || !k.is_multiple_of(QK_K) {
            candle_core::bail!("Q4_K matrix {n}x{k} does not tile into 16x256 blocks")
        }
        let kb = k / QK_K;
        if blocks.len() != n * kb * Q4K_BYTES {
            candle_core::bail!(
                "Q4_K matrix {n}x{k} needs {} bytes, got {}",
                n * kb * Q4K_BYTES,
                blocks.len()
            )
        }
        let count = n / TILE_ROWS * kb;
        let mut tiles = Vec::with_capacity(count);
        for t in 0..n / TILE_ROWS {
            for b in 0..kb {
                tiles.push(Self::tile(blocks, kb, t, b));
            }
        }
        Ok(Self { tiles, n, k })
    }

    fn tile(blocks: &[u8], kb: usize, t: usize, b: usize) -> Tile {
        let mut tile = Tile {
            qs: [0; QK_K / 8 * TILE_ROWS * 4],
            lo: [0; 8 * TILE_ROWS],
            hi: [0; 4 * TILE_ROWS],
            d: [0; TILE_ROWS],
            dmin: [0; TILE_ROWS],
        };
        for r in 0..TILE_ROWS {
            let at = ((t * TILE_ROWS + r) * kb + b) * Q4K_BYTES;
            let blk = &blocks[at..at + Q4K_BYTES];
            tile.d[r] = u16::from_le_bytes([blk[0], blk[1]]);
            tile.dmin[r] = u16::from_le_bytes([blk[2], blk[3]]);
            for sub in 0..8 {
                let (sc, mn) = scale_min(sub, &blk[4..16]);
                tile.lo[sub * TILE_ROWS + r] = (sc & 0x0f) | (mn & 0x0f) << 4;
                tile.hi[sub / 2 * TILE_ROWS + r] |= ((sc >> 4) | (mn >> 4) << 2) << (4 * (sub % 2));
            }
            // The file's nibbles: 32-byte chunk c holds inputs 64c..64c+32 in its low nibbles
            // and 64c+32..64c+64 in its high nibbles.
            let qs = &blk[16..];
            let mut vals = [0u8; QK_K];
            for c in 0..4 {
                for j in 0..32 {
                    let byte = qs[c * 32 + j];
                    vals[c * 64 + j] = byte & 0x0f;
                    vals[c * 64 + 32 + j] = byte >> 4;
                }
            }
            for g in 0..QK_K / 8 {
                for j in 0..4 {
                    tile.qs[(g * TILE_ROWS + r) * 4 + j] =
                        vals[g * 8 + j] | (vals[g * 8 + j + 4] << 4);
                }
            }
        }
        tile
    }

    /// `dst (m x n) = lhs (m x k) * selfᵀ`, row-major, with the activations quantized to Q8_K
    /// as candle does for its own kernels.
    pub fn matmul(&self, m: usize, lhs: &[f32], dst: &mut [f32]) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if lhs.len() != m * k || dst.len() != m * n {
            candle_core::bail!(
                "Q4_K matmul shapes: lhs {} for {m}x{k}, dst {} for {m}x{n}",
                lhs.len(),
                dst.len()
            )
        }
        if !super::cpu::features().vnni {
            candle_core::bail!("the packed Q4_K kernel needs AVX-512 VNNI")
        }
        if m == 0 {
            return Ok(());
        }
        let kb = k / QK_K;
        let pool = candle_core::utils::barrier_pool();
        let mut acts = vec![BlockQ8K::zeros(); m * kb];
        {
            let acts_at = acts.as_mut_ptr() as usize;
            pool.execute_chunked(m, |rows| {
                for r in rows {
                    // SAFETY: each row writes its own kb blocks of `acts`.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut((acts_at as *mut BlockQ8K).add(r * kb), kb)
                    };
                    super::kernels::quantize_q8k(&lhs[r * k..(r + 1) * k], out);
                }
            });
        }
        let pairs: Vec<[i32; 8]> = acts.iter().map(subblock_sums).collect();
        let m_units = m.div_ceil(MAX_ROWS);
        let total = n / TILE_ROWS * m_units;
        let dst_at = dst.as_mut_ptr() as usize;
        let acts_at = acts.as_ptr() as usize;
        pool.execute_chunked(total, |units| {
            for unit in units {
                let nt = unit / m_units;
                let m0 = (unit % m_units) * MAX_ROWS;
                let rows = (m - m0).min(MAX_ROWS);
                let job = Job {
                    tiles: self.tiles[nt * kb..(nt + 1) * kb].as_ptr(),
                    kb,
                    acts: (acts_at as *const u8).wrapping_add(m0 * kb * Q8K_BYTES),
                    pairs: pairs[m0 * kb..].as_ptr(),
                    dst: (dst_at as *mut f32).wrapping_add(m0 * n + nt * TILE_ROWS),
                    n,
                };
                // SAFETY: the probe (`cpu::features().vnni`) checked the CPU features; the
                // job's pointers cover `rows` activation rows and this unit's 16 columns of
                // `rows` output rows, which no other unit writes.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match rows {
                        1 => avx512::unit::<1>(&job),
                        2 => avx512::unit::<2>(&job),
                        3 => avx512::unit::<3>(&job),
                        _ => avx512::unit::<4>(&job),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (job, rows);
            }
        });
        Ok(())
    }
}

/// The sums of each 32-input subblock of a Q8_K block, for the mins term.
fn subblock_sums(blk: &BlockQ8K) -> [i32; 8] {
    // SAFETY: BlockQ8K is d (f32), 256 i8 quants, then 16 i16 sums of 16 quants.
    let sums = unsafe {
        std::slice::from_raw_parts(
            (blk as *const BlockQ8K)
                .cast::<u8>()
                .add(4 + QK_K)
                .cast::<[u8; 2]>(),
            16,
        )
    };
    let s = |i: usize| i32::from(i16::from_le_bytes(sums[i]));
    std::array::from_fn(|j| s(2 * j) + s(2 * j + 1))
}

/// One input vector quantized once for every matrix that reads it (decode's q/k/v and
/// gate/up share theirs): Q8_K blocks, plus the subblock sums the Q4_K tiles need.
pub struct Acts {
    blocks: Vec<BlockQ8K>,
    pairs: Vec<[i32; 8]>,
}

impl Acts {
    /// Quantizes `x` (a multiple of 256 values) on the calling thread: one vector is too
    /// little work to pay a parallel pass for.
    pub fn new(x: &[f32]) -> Result<Self> {
        if x.is_empty() || !x.len().is_multiple_of(QK_K) {
            candle_core::bail!(
                "a Q8_K input needs a multiple of {QK_K} values, got {}",
                x.len()
            )
        }
        let mut blocks = vec![BlockQ8K::zeros(); x.len() / QK_K];
        super::kernels::quantize_q8k(x, &mut blocks);
        let pairs = blocks.iter().map(subblock_sums).collect();
        Ok(Self { blocks, pairs })
    }

    pub fn blocks(&self) -> &[BlockQ8K] {
        &self.blocks
    }
}

impl PackedQ4K {
    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Rows `16 t .. 16 t + 16` of `self * x` into `dst`, for one quantized input.
    pub fn tile_vector(&self, t: usize, acts: &Acts, dst: &mut [f32; TILE_ROWS]) -> Result<()> {
        let kb = self.k / QK_K;
        if t >= self.n / TILE_ROWS || acts.blocks.len() != kb || !super::cpu::features().vnni {
            candle_core::bail!("Q4_K tile {t} does not fit this matrix and input")
        }
        let job = Job {
            tiles: self.tiles[t * kb..(t + 1) * kb].as_ptr(),
            kb,
            acts: acts.blocks.as_ptr().cast(),
            pairs: acts.pairs.as_ptr(),
            dst: dst.as_mut_ptr(),
            n: TILE_ROWS,
        };
        // SAFETY: the probe (`cpu::features().vnni`) checked the CPU features; the job
        // covers kb tiles, one activation row of kb blocks and sums, and 16 output floats.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::unit::<1>(&job)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = job;
        Ok(())
    }
}

/// One tile row (16 outputs) against up to four activation rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Job {
    tiles: *const Tile,
    kb: usize,
    /// Q8_K blocks of the first activation row; rows are `kb` blocks apart.
    acts: *const u8,
    pairs: *const [i32; 8],
    dst: *mut f32,
    /// Output row stride.
    n: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Job, Q8K_BYTES, TILE_ROWS};
    use core::arch::x86_64::*;

    /// `ROWS` activation rows against one tile row. Low and high nibbles accumulate apart so
    /// the `vpdpbusd` dependency chains stay short when `ROWS` is 1 (decode). No closures in
    /// here: a closure does not inherit `target_feature`, so its intrinsics would not inline.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn unit<const ROWS: usize>(job: &Job) {
        let mask = _mm512_set1_epi8(0x0f);
        let m4 = _mm512_set1_epi32(0x0f);
        let m2 = _mm512_set1_epi32(0x03);
        let m12 = _mm512_set1_epi32(0x0c);
        let stride = job.kb * Q8K_BYTES;
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for b in 0..job.kb {
            // SAFETY (whole body): the caller's job covers kb tiles, ROWS activation rows of
            // kb blocks, and ROWS output rows of 16 floats.
            let t = unsafe { &*job.tiles.add(b) };
            let mut tot = [_mm512_setzero_si512(); ROWS];
            let mut mins = [_mm512_setzero_si512(); ROWS];
            for sub in 0..8 {
                let mut lo = [_mm512_setzero_si512(); ROWS];
                let mut hi = [_mm512_setzero_si512(); ROWS];
                for g4 in 0..4 {
                    let g = sub * 4 + g4;
                    let w = unsafe { _mm512_load_si512(t.qs.as_ptr().add(g * 64).cast()) };
                    let wl = _mm512_and_si512(w, mask);
                    let wh = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
                    for r in 0..ROWS {
                        let a = unsafe { job.acts.add(r * stride + b * Q8K_BYTES + 4 + g * 8) };
                        let al = unsafe { a.cast::<i32>().read_unaligned() };
                        let ah = unsafe { a.add(4).cast::<i32>().read_unaligned() };
                        lo[r] = _mm512_dpbusd_epi32(lo[r], wl, _mm512_set1_epi32(al));
                        hi[r] = _mm512_dpbusd_epi32(hi[r], wh, _mm512_set1_epi32(ah));
                    }
                }
                let lo4 = _mm512_cvtepu8_epi32(unsafe {
                    _mm_load_si128(t.lo.as_ptr().add(sub * TILE_ROWS).cast())
                });
                let mut hi2 = _mm512_cvtepu8_epi32(unsafe {
                    _mm_load_si128(t.hi.as_ptr().add(sub / 2 * TILE_ROWS).cast())
                });
                if sub % 2 == 1 {
                    hi2 = _mm512_srli_epi32::<4>(hi2);
                }
                let sc = _mm512_or_si512(
                    _mm512_and_si512(lo4, m4),
                    _mm512_slli_epi32::<4>(_mm512_and_si512(hi2, m2)),
                );
                let mn = _mm512_or_si512(
                    _mm512_srli_epi32::<4>(lo4),
                    _mm512_slli_epi32::<2>(_mm512_and_si512(hi2, m12)),
                );
                for r in 0..ROWS {
                    let pair = unsafe { (*job.pairs.add(r * job.kb + b))[sub] };
                    tot[r] = _mm512_add_epi32(
                        tot[r],
                        _mm512_mullo_epi32(_mm512_add_epi32(lo[r], hi[r]), sc),
                    );
                    mins[r] =
                        _mm512_add_epi32(mins[r], _mm512_mullo_epi32(mn, _mm512_set1_epi32(pair)));
                }
            }
            let d = _mm512_cvtph_ps(unsafe { _mm256_load_si256(t.d.as_ptr().cast()) });
            let dmin = _mm512_cvtph_ps(unsafe { _mm256_load_si256(t.dmin.as_ptr().cast()) });
            for r in 0..ROWS {
                let ad = unsafe {
                    _mm512_set1_ps(
                        job.acts
                            .add(r * stride + b * Q8K_BYTES)
                            .cast::<f32>()
                            .read_unaligned(),
                    )
                };
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot[r]), _mm512_mul_ps(d, ad), acc[r]);
                acc[r] =
                    _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[r]), _mm512_mul_ps(dmin, ad), acc[r]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            unsafe { _mm512_storeu_ps(job.dst.add(r * job.n), *acc) };
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use candle_core::quantized::k_quants::BlockQ4K;

    /// Deterministic values in [-1, 1) (shared with `matvec.rs`'s tests).
    pub(in crate::embedded) fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Each output against candle's scalar Q4_K reference dot product.
    fn check(m: usize, n: usize, k: usize) {
        let w = values(n * k, 7);
        let mut blocks = vec![BlockQ4K::zeros(); n * k / QK_K];
        BlockQ4K::from_float(&w, &mut blocks);
        // SAFETY: BlockQ4K is 144 plain bytes, laid out as in the file.
        let bytes = unsafe {
            std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), blocks.len() * Q4K_BYTES)
        };
        let packed = PackedQ4K::pack(bytes, n, k).expect("pack");
        let lhs = values(m * k, 11);
        let mut dst = vec![0f32; m * n];
        packed.matmul(m, &lhs, &mut dst).expect("matmul");
        let kb = k / QK_K;
        for r in 0..m {
            let mut q = vec![BlockQ8K::zeros(); kb];
            BlockQ8K::from_float(&lhs[r * k..(r + 1) * k], &mut q);
            for c in 0..n {
                let want = BlockQ4K::vec_dot_unopt(k, &blocks[c * kb..(c + 1) * kb], &q);
                let got = dst[r * n + c];
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "row {r} col {c} ({m}x{n}x{k}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn packed_q4k_matches_the_reference_dot_product() {
        // Without AVX-512 VNNI caro never builds these tiles (candle's kernels run instead).
        if !crate::embedded::cpu::runs(PackedQ4K::supported(16, 256), "the AVX-512 VNNI Q4_K tiles")
        {
            return;
        }
        for (m, n, k) in [(1, 16, 256), (1, 48, 1536), (3, 32, 8960), (7, 64, 512)] {
            check(m, n, k);
        }
    }

    #[test]
    fn pack_rejects_shapes_and_sizes_that_do_not_fit() {
        assert!(PackedQ4K::pack(&[0; Q4K_BYTES], 1, 256).is_err());
        assert!(PackedQ4K::pack(&[0; Q4K_BYTES * 15], 16, 256).is_err());
        assert!(PackedQ4K::pack(&[0; Q4K_BYTES * 16], 16, 256).is_ok());
        assert!(PackedQ4K::pack(&[0; Q4K_BYTES * 16], 16, 200).is_err());
    }
}
