//! Q4_K matrices repacked into 16-row tiles with integer scales, multiplied with AVX-512 VNNI
//! or AVX2.
//!
//! Decode reads every weight once per token, so its speed is set by how many bytes a weight
//! costs and how little work each byte needs. candle's x86 tiles widen Q4_K's 6-bit scales and
//! mins to f32 per row and subblock: 6 bits per weight, a third more than the file's 4.5, and
//! an f32 multiply per subblock. caro's [`PackedQ4K`] keeps the file's 6-bit scales and f16
//! factors, regrouped by row (4.5 bits per weight, the file's own size), sums each superblock
//! in 32-bit integers, and converts to float once per superblock, in the layout `vpdpbusd`
//! wants: 16 rows in the 16 lanes of a register, so no horizontal sums are needed. Up to four
//! prompt rows (or sequences, in batched decode) share each weight load.
//!
//! Two kernels read the same tiles (`cpu::features().int_dot()`): AVX-512 VNNI, and AVX2
//! (`vpmaddubsw` + `vpmaddwd`, the 16 rows as two 8-lane halves) for the many CPUs without
//! AVX-512. They compute the same integer sums and round the same floats in the same order,
//! so their outputs are equal bit for bit. Without either, candle's own kernels run.
#![allow(unsafe_code)]

use crate::cpu::IntDot;
use candle_core::Result;
use candle_core::quantized::k_quants::{BlockQ8K, GgmlType, QK_K};
use std::mem::offset_of;

/// Output rows per tile: one per 32-bit lane of a 512-bit register.
pub const TILE_ROWS: usize = 16;
/// Bytes of one Q4_K block in the file: d, dmin (f16), 12 bytes of packed 6-bit scales and
/// mins, 128 bytes of nibbles.
pub const Q4K_BYTES: usize = 144;
/// Prompt rows (or sequences) that share one pass over a weight tile. Eight on AVX2 (the
/// sums then no longer fit the sixteen registers) measured 2% faster batched decode of eight
/// sequences but 4-7% slower prefill on an AVX2 EPYC (2026-12-07), so both kernels take four.
const MAX_ROWS: usize = 4;

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
/// The kernel's aligned loads: a tile is 64-aligned, `qs` is read in 64-byte rows, `lo` and
/// `hi` in 16-byte rows, `d` and `dmin` whole (32 bytes).
const _: () = assert!(
    offset_of!(Tile, qs) == 0
        && offset_of!(Tile, lo) % 16 == 0
        && offset_of!(Tile, hi) % 16 == 0
        && offset_of!(Tile, d) % 32 == 0
        && offset_of!(Tile, dmin) % 32 == 0
);

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
        crate::cpu::features().int_dot().is_some()
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
        let Some(isa) = crate::cpu::features().int_dot() else {
            candle_core::bail!("the packed Q4_K kernel needs AVX-512 VNNI or AVX2")
        };
        self.matmul_on(isa, m, lhs, dst)
    }

    /// [`Self::matmul`] with the instructions chosen by the caller (the tests run each).
    fn matmul_on(&self, isa: IntDot, m: usize, lhs: &[f32], dst: &mut [f32]) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if lhs.len() != m * k || dst.len() != m * n {
            candle_core::bail!(
                "Q4_K matmul shapes: lhs {} for {m}x{k}, dst {} for {m}x{n}",
                lhs.len(),
                dst.len()
            )
        }
        if !crate::cpu::features().has(isa) {
            candle_core::bail!("this CPU does not run the {} Q4_K tiles", isa.name())
        }
        if m == 0 {
            return Ok(());
        }
        let kb = k / QK_K;
        let mut acts = vec![BlockQ8K::zeros(); m * kb];
        // Prompt row r's activations are blocks r kb..(r + 1) kb, one unit each.
        crate::pool::units([acts.as_mut_slice()], kb, |r, out| {
            crate::kernels::quantize_q8k(&lhs[r * k..(r + 1) * k], out);
        });
        let pairs: Vec<[i32; 8]> = acts.iter().map(subblock_sums).collect();
        for_each_unit(dst, (m, n), |nt, m0, out| {
            let job = Job {
                tiles: &self.tiles[nt * kb..(nt + 1) * kb],
                acts: &acts[m0 * kb..],
                pairs: &pairs[m0 * kb..],
            };
            // SAFETY: `cpu::features().has(isa)` was checked above.
            unsafe { job.with_sums(isa, out.len(), |sums| put(sums, nt, out)) };
        });
        Ok(())
    }
}

/// One output row's share of a grab (see [`split_tiles`]): the first tile row it covers and
/// the row's columns from there.
type Span<'a> = (usize, &'a mut [f32]);

/// `f(nt, m0, out)` for every work unit of an `m x n` matmul into `dst`, in parallel. A unit is
/// the 16 columns of tile row `nt` for prompt rows `m0..m0 + out.len()` (up to [`MAX_ROWS`]),
/// and `out` holds those rows' spans, in which [`put`] finds the unit's columns. Units run
/// tile row by tile row, so neighbouring units share a weight tile, which stays in cache.
fn for_each_unit(
    dst: &mut [f32],
    (m, n): (usize, usize),
    f: impl Fn(usize, usize, &mut [Span<'_>]) + Sync,
) {
    let m_units = m.div_ceil(MAX_ROWS);
    let total = n / TILE_ROWS * m_units;
    let chunk = crate::pool::chunk(total);
    crate::pool::grabs(split_tiles(dst, (m, n), chunk), |g, mut rows| {
        for u in g * chunk..((g + 1) * chunk).min(total) {
            let (nt, m0) = (u / m_units, u % m_units * MAX_ROWS);
            f(nt, m0, &mut rows[m0..(m0 + MAX_ROWS).min(m)]);
        }
    });
}

/// `dst` (`m x n`, row-major) split for [`for_each_unit`]'s grabs of `chunk` units, unit u
/// being tile row `u / m_units` of prompt rows `MAX_ROWS * (u % m_units)..`: grab g gets, for
/// each of the m rows, the span of columns that its units write in that row.
///
/// A unit's 16 columns interleave with other units' in every row, so its output is no one
/// slice; but in each row, the tile rows that one grab's units write there are consecutive.
fn split_tiles(dst: &mut [f32], (m, n): (usize, usize), chunk: usize) -> Vec<Vec<Span<'_>>> {
    let m_units = m.div_ceil(MAX_ROWS);
    let tiles = n / TILE_ROWS;
    let grabs = (tiles * m_units).div_ceil(chunk);
    let mut spans: Vec<Vec<Span<'_>>> = (0..grabs).map(|_| Vec::with_capacity(m)).collect();
    for (r, row) in dst.chunks_exact_mut(n).take(m).enumerate() {
        let mu = r / MAX_ROWS;
        let (mut rest, mut first) = (row, 0);
        for (g, grab) in spans.iter_mut().enumerate() {
            // Unit nt m_units + mu comes before grab g + 1's first unit, (g + 1) chunk,
            // exactly when nt < ((g + 1) chunk - mu) / m_units.
            let end = ((g + 1) * chunk)
                .saturating_sub(mu)
                .div_ceil(m_units)
                .min(tiles);
            let (span, tail) = std::mem::take(&mut rest).split_at_mut((end - first) * TILE_ROWS);
            grab.push((first, span));
            (rest, first) = (tail, end);
        }
    }
    spans
}

/// Writes a unit's sums (one row of 16 per prompt row) into the unit's columns, tile row
/// `nt`, of each row's span.
fn put(sums: &[[f32; TILE_ROWS]], nt: usize, out: &mut [Span<'_>]) {
    for (sums, (first, span)) in sums.iter().zip(out) {
        span[(nt - *first) * TILE_ROWS..][..TILE_ROWS].copy_from_slice(sums);
    }
}

/// The sums of each 32-input subblock of a Q8_K block, for the mins term.
fn subblock_sums(blk: &BlockQ8K) -> [i32; 8] {
    // SAFETY: BlockQ8K is 292 initialized bytes (size asserted in kernels.rs): d (f32), 256
    // i8 quants, then 16 i16 sums of 16 quants at bytes 260..292, read here as 16 byte pairs
    // (alignment 1), borrowed as long as `blk`.
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

/// Input vectors quantized once for every matrix that reads them (decode's q/k/v and
/// gate/up share theirs): Q8_K blocks, row after row, plus the subblock sums the Q4_K tiles
/// need. One row in plain decode; one per sequence in batched decode.
pub struct Acts {
    blocks: Vec<BlockQ8K>,
    pairs: Vec<[i32; 8]>,
    /// Blocks per row.
    kb: usize,
}

impl Acts {
    /// Quantizes each of `xs` (one width, a multiple of 256 values), as rows one after
    /// another, on the calling thread: a few vectors are too little work to pay a parallel
    /// pass for.
    pub fn batch(xs: &[&[f32]]) -> Result<Self> {
        let width = xs.first().map_or(0, |x| x.len());
        if width == 0 || !width.is_multiple_of(QK_K) || xs.iter().any(|x| x.len() != width) {
            candle_core::bail!(
                "Q8_K inputs need one width, a multiple of {QK_K} values, got {:?}",
                xs.iter().map(|x| x.len()).collect::<Vec<_>>()
            )
        }
        let kb = width / QK_K;
        let mut blocks = vec![BlockQ8K::zeros(); xs.len() * kb];
        for (x, out) in xs.iter().zip(blocks.chunks_exact_mut(kb)) {
            crate::kernels::quantize_q8k(x, out);
        }
        let pairs = blocks.iter().map(subblock_sums).collect();
        Ok(Self { blocks, pairs, kb })
    }

    /// Every row's blocks, row after row.
    pub fn all(&self) -> &[BlockQ8K] {
        &self.blocks
    }

    /// How many input vectors.
    pub fn rows(&self) -> usize {
        self.blocks.len() / self.kb.max(1)
    }
}

impl PackedQ4K {
    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Rows `16 t .. 16 t + 16` of `self * x` for every input row `r` of `acts`, into
    /// `dst[j * m + r]` for output row `16 t + j` (`m` input rows). The tile is unpacked once
    /// for up to four inputs at a time, while it is in cache.
    pub fn tile_rows(&self, t: usize, acts: &Acts, dst: &mut [f32]) -> Result<()> {
        let Some(isa) = crate::cpu::features().int_dot() else {
            candle_core::bail!("the packed Q4_K kernel needs AVX-512 VNNI or AVX2")
        };
        self.tile_rows_on(isa, t, acts, dst)
    }

    /// [`Self::tile_rows`] with the instructions chosen by the caller (the tests run each).
    fn tile_rows_on(&self, isa: IntDot, t: usize, acts: &Acts, dst: &mut [f32]) -> Result<()> {
        let kb = self.k / QK_K;
        let m = acts.rows();
        if t >= self.n / TILE_ROWS || acts.kb != kb || dst.len() != TILE_ROWS * m {
            candle_core::bail!("Q4_K tile {t} does not fit this matrix and input")
        }
        if !crate::cpu::features().has(isa) {
            candle_core::bail!("this CPU does not run the {} Q4_K tiles", isa.name())
        }
        let mut put = |m0: usize, sums: &[[f32; TILE_ROWS]]| {
            for (i, row) in sums.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    dst[j * m + m0 + i] = *v;
                }
            }
        };
        for m0 in (0..m).step_by(MAX_ROWS) {
            let job = Job {
                tiles: &self.tiles[t * kb..(t + 1) * kb],
                acts: &acts.blocks[m0 * kb..],
                pairs: &acts.pairs[m0 * kb..],
            };
            // SAFETY: `cpu::features().has(isa)` was checked above; `sums` checks the lengths.
            unsafe { job.with_sums(isa, m - m0, |sums| put(m0, sums)) };
        }
        Ok(())
    }
}

/// One tile row (16 outputs) against up to four activation rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Job<'a> {
    /// The tile row's tiles, one per superblock (kb of them).
    tiles: &'a [Tile],
    /// The first activation row's Q8_K blocks, then the next rows' (kb blocks per row).
    acts: &'a [BlockQ8K],
    /// Their subblock sums, one entry per block.
    pairs: &'a [[i32; 8]],
}

impl Job<'_> {
    /// The tile row's 16 outputs for each of `ROWS` activation rows, computed with `isa`.
    ///
    /// # Safety
    /// The CPU runs `isa` (`cpu::features().has(isa)`).
    #[cfg(target_arch = "x86_64")]
    unsafe fn sums<const ROWS: usize>(&self, isa: IntDot) -> [[f32; TILE_ROWS]; ROWS] {
        // SAFETY: the caller guarantees the features; `unit` checks the job's lengths.
        unsafe {
            match isa {
                IntDot::Vnni => avx512::unit::<ROWS>(self),
                IntDot::Avx2 => avx2::unit::<ROWS>(self),
            }
        }
    }

    /// `put` with the sums of the job's first `rows` activation rows, at most [`MAX_ROWS`]
    /// (more are cut to that).
    ///
    /// # Safety
    /// The CPU runs `isa` (`cpu::features().has(isa)`).
    unsafe fn with_sums(&self, isa: IntDot, rows: usize, put: impl FnOnce(&[[f32; TILE_ROWS]])) {
        // SAFETY: the caller guarantees the features; `unit` checks the job's lengths.
        unsafe {
            match rows {
                1 => put(&self.sums::<1>(isa)),
                2 => put(&self.sums::<2>(isa)),
                3 => put(&self.sums::<3>(isa)),
                _ => put(&self.sums::<MAX_ROWS>(isa)),
            }
        }
    }

    /// Never called: no CPU but x86-64 has AVX-512 VNNI or AVX2, and every caller checks.
    ///
    /// # Safety
    /// As on x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn sums<const ROWS: usize>(&self, isa: IntDot) -> [[f32; TILE_ROWS]; ROWS] {
        unreachable!("no CPU but x86-64 runs the {} Q4_K tiles", isa.name())
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Job, TILE_ROWS};
    use crate::kernels::Q8K_BYTES;
    use core::arch::x86_64::*;

    /// `ROWS` activation rows against one tile row. Low and high nibbles accumulate apart so
    /// the `vpdpbusd` dependency chains stay short when `ROWS` is 1 (decode).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI. (The job's lengths are checked here.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn unit<const ROWS: usize>(job: &Job<'_>) -> [[f32; TILE_ROWS]; ROWS] {
        let kb = job.tiles.len();
        // The activation reads below rely on this: block b of row r < ROWS is
        // `acts[r * kb + b]`, 292 bytes (no padding) at byte r * stride + b * 292.
        assert!(
            job.acts.len() >= ROWS * kb && job.pairs.len() >= ROWS * kb,
            "a Q4_K job needs {ROWS} activation rows of {kb} blocks"
        );
        let acts = job.acts.as_ptr().cast::<u8>();
        let mask = _mm512_set1_epi8(0x0f);
        let m4 = _mm512_set1_epi32(0x0f);
        let m2 = _mm512_set1_epi32(0x03);
        let m12 = _mm512_set1_epi32(0x0c);
        let stride = kb * Q8K_BYTES;
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for (b, t) in job.tiles.iter().enumerate() {
            let mut tot = [_mm512_setzero_si512(); ROWS];
            let mut mins = [_mm512_setzero_si512(); ROWS];
            for sub in 0..8 {
                let mut lo = [_mm512_setzero_si512(); ROWS];
                let mut hi = [_mm512_setzero_si512(); ROWS];
                for g4 in 0..4 {
                    let g = sub * 4 + g4;
                    // SAFETY: g < 32, so bytes 64g..64g + 64 lie in `qs` (2048 bytes), which
                    // starts the 64-aligned tile: an aligned load.
                    let w = unsafe { _mm512_load_si512(t.qs.as_ptr().add(g * 64).cast()) };
                    let wl = _mm512_and_si512(w, mask);
                    let wh = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
                    for r in 0..ROWS {
                        // SAFETY: block b of row r lies in `acts` (asserted above); quants
                        // 8g..8g + 8 are its bytes 4 + 8g..12 + 8g <= 260. Unaligned reads.
                        let (al, ah) = unsafe {
                            let a = acts.add(r * stride + b * Q8K_BYTES + 4 + g * 8);
                            (
                                a.cast::<i32>().read_unaligned(),
                                a.add(4).cast::<i32>().read_unaligned(),
                            )
                        };
                        lo[r] = _mm512_dpbusd_epi32(lo[r], wl, _mm512_set1_epi32(al));
                        hi[r] = _mm512_dpbusd_epi32(hi[r], wh, _mm512_set1_epi32(ah));
                    }
                }
                // SAFETY: sub < 8 and pair sub / 2 < 4: 16 bytes each inside `lo` (128) and
                // `hi` (64), at 16-byte boundaries of the tile (offsets asserted at Tile).
                let (lo4, hi2) = unsafe {
                    (
                        _mm_load_si128(t.lo.as_ptr().add(sub * TILE_ROWS).cast()),
                        _mm_load_si128(t.hi.as_ptr().add(sub / 2 * TILE_ROWS).cast()),
                    )
                };
                let lo4 = _mm512_cvtepu8_epi32(lo4);
                let mut hi2 = _mm512_cvtepu8_epi32(hi2);
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
                    // SAFETY: r * kb + b < ROWS * kb <= pairs.len() (asserted above). Unchecked
                    // because a bounds check here measured about 4% slower prefill matmuls.
                    let pair = unsafe { job.pairs.get_unchecked(r * kb + b)[sub] };
                    tot[r] = _mm512_add_epi32(
                        tot[r],
                        _mm512_mullo_epi32(_mm512_add_epi32(lo[r], hi[r]), sc),
                    );
                    mins[r] =
                        _mm512_add_epi32(mins[r], _mm512_mullo_epi32(mn, _mm512_set1_epi32(pair)));
                }
            }
            // SAFETY: `d` and `dmin` are 16 f16 (32 bytes) each, at 32-byte boundaries of the
            // tile (offsets asserted at Tile).
            let (d, dmin) = unsafe {
                (
                    _mm256_load_si256(t.d.as_ptr().cast()),
                    _mm256_load_si256(t.dmin.as_ptr().cast()),
                )
            };
            let (d, dmin) = (_mm512_cvtph_ps(d), _mm512_cvtph_ps(dmin));
            for r in 0..ROWS {
                // SAFETY: block b of row r lies in `acts` (asserted above); its d (f32) is
                // bytes 0..4. Unaligned read.
                let ad = unsafe {
                    acts.add(r * stride + b * Q8K_BYTES)
                        .cast::<f32>()
                        .read_unaligned()
                };
                let ad = _mm512_set1_ps(ad);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot[r]), _mm512_mul_ps(d, ad), acc[r]);
                acc[r] =
                    _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[r]), _mm512_mul_ps(dmin, ad), acc[r]);
            }
        }
        let mut out = [[0f32; TILE_ROWS]; ROWS];
        for (out, acc) in out.iter_mut().zip(acc) {
            // SAFETY: `out` is one row of 16 floats.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), acc) };
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Job, TILE_ROWS, Tile};
    use crate::kernels::Q8K_BYTES;
    use core::arch::x86_64::*;

    /// Rows of a tile in one 256-bit register (8 lanes of 32 bits).
    const HALF: usize = TILE_ROWS / 2;

    /// `ROWS` activation rows against one tile row, the AVX-512 kernel's arithmetic on
    /// AVX2: each half of the tile (8 rows, 32 of every 64 bytes) in turn, while the tile
    /// is in L1. `vpmaddubsw` multiplies unsigned nibbles by signed activations into 16-bit
    /// pair sums; a subblock's eight of them (4 groups, low and high nibbles) add up to at
    /// most 16 * 15 * 128 = 30720 in 16 bits, so nothing saturates, and `vpmaddwd` with the
    /// scale in both halves of each lane gives (sum of the pair) * scale in 32 bits: the
    /// same integers as `vpdpbusd` then `vpmulld`. The floats then follow the AVX-512
    /// kernel lane for lane, so both give the same bits.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C. (The job's lengths are checked here.)
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn unit<const ROWS: usize>(job: &Job<'_>) -> [[f32; TILE_ROWS]; ROWS] {
        let kb = job.tiles.len();
        // The activation reads below rely on this: block b of row r < ROWS is
        // `acts[r * kb + b]`, 292 bytes (no padding) at byte r * stride + b * 292.
        assert!(
            job.acts.len() >= ROWS * kb && job.pairs.len() >= ROWS * kb,
            "a Q4_K job needs {ROWS} activation rows of {kb} blocks"
        );
        let acts = job.acts.as_ptr().cast::<u8>();
        let mask = _mm256_set1_epi8(0x0f);
        let m4 = _mm256_set1_epi32(0x0f);
        let m2 = _mm256_set1_epi32(0x03);
        let m12 = _mm256_set1_epi32(0x0c);
        let stride = kb * Q8K_BYTES;
        // `acc[h][r]`: half h of row r's outputs.
        let mut acc = [[_mm256_setzero_ps(); ROWS]; 2];
        for (b, t) in job.tiles.iter().enumerate() {
            for (h, acc) in acc.iter_mut().enumerate() {
                let mut tot = [_mm256_setzero_si256(); ROWS];
                for sub in 0..8 {
                    let mut pairs16 = [_mm256_setzero_si256(); ROWS];
                    for g4 in 0..4 {
                        let g = sub * 4 + g4;
                        if h == 0 {
                            // The tile two ahead, one cache line per group (its 32 lines of
                            // nibbles) and one per subblock pair (its 4 of scales and
                            // factors), spread over this tile's work.
                            let ahead = (t as *const Tile).wrapping_add(2).cast::<i8>();
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(g * 64));
                            if g4 == 0 && sub % 2 == 0 {
                                _mm_prefetch::<_MM_HINT_T0>(
                                    ahead.wrapping_add((32 + sub / 2) * 64),
                                );
                            }
                        }
                        // SAFETY: g < 32 and h < 2, so bytes 64g + 32h..+32 lie in `qs`
                        // (2048 bytes), which starts the 64-aligned tile: an aligned load.
                        let w =
                            unsafe { _mm256_load_si256(t.qs.as_ptr().add(g * 64 + h * 32).cast()) };
                        let wl = _mm256_and_si256(w, mask);
                        let wh = _mm256_and_si256(_mm256_srli_epi16::<4>(w), mask);
                        for (r, p) in pairs16.iter_mut().enumerate() {
                            // SAFETY: block b of row r lies in `acts` (asserted above); quants
                            // 8g..8g + 8 are its bytes 4 + 8g..12 + 8g <= 260. Unaligned reads.
                            let (al, ah) = unsafe {
                                let a = acts.add(r * stride + b * Q8K_BYTES + 4 + g * 8);
                                (
                                    a.cast::<i32>().read_unaligned(),
                                    a.add(4).cast::<i32>().read_unaligned(),
                                )
                            };
                            let lo = _mm256_maddubs_epi16(wl, _mm256_set1_epi32(al));
                            let hi = _mm256_maddubs_epi16(wh, _mm256_set1_epi32(ah));
                            *p = _mm256_add_epi16(*p, _mm256_add_epi16(lo, hi));
                        }
                    }
                    // SAFETY: sub < 8, pair sub / 2 < 4 and h < 2: 8 bytes each inside `lo`
                    // (128) and `hi` (64). Unaligned 8-byte loads.
                    let (lo4, hi2) = unsafe {
                        (
                            _mm_loadl_epi64(t.lo.as_ptr().add(sub * TILE_ROWS + h * HALF).cast()),
                            _mm_loadl_epi64(
                                t.hi.as_ptr().add(sub / 2 * TILE_ROWS + h * HALF).cast(),
                            ),
                        )
                    };
                    let lo4 = _mm256_cvtepu8_epi32(lo4);
                    let mut hi2 = _mm256_cvtepu8_epi32(hi2);
                    if sub % 2 == 1 {
                        hi2 = _mm256_srli_epi32::<4>(hi2);
                    }
                    let sc = _mm256_or_si256(
                        _mm256_and_si256(lo4, m4),
                        _mm256_slli_epi32::<4>(_mm256_and_si256(hi2, m2)),
                    );
                    // The scale (< 64) in both 16-bit halves of each lane.
                    let sc2 = _mm256_or_si256(sc, _mm256_slli_epi32::<16>(sc));
                    for r in 0..ROWS {
                        tot[r] = _mm256_add_epi32(tot[r], _mm256_madd_epi16(pairs16[r], sc2));
                    }
                }
                // The mins term needs no weights, so it runs after the nibbles, apart: kept
                // in the loop above, its accumulators pushed that loop's out of registers.
                // Two subblocks at once: the even one's min in the low 16 bits of each lane,
                // the odd one's in the high, times their activation sums (each a sum of 32
                // i8, so it fits i16) likewise: `vpmaddwd` adds both products into the same
                // 32-bit integer two `vpmulld`s would.
                let mut mins = [_mm256_setzero_si256(); ROWS];
                for pair in 0..4 {
                    // SAFETY: pair < 4 and h < 2: 8 bytes each inside `lo` (128) and `hi`
                    // (64). Unaligned 8-byte loads.
                    let (even, odd, hi2) = unsafe {
                        (
                            _mm_loadl_epi64(
                                t.lo.as_ptr().add(2 * pair * TILE_ROWS + h * HALF).cast(),
                            ),
                            _mm_loadl_epi64(
                                t.lo.as_ptr()
                                    .add((2 * pair + 1) * TILE_ROWS + h * HALF)
                                    .cast(),
                            ),
                            _mm_loadl_epi64(t.hi.as_ptr().add(pair * TILE_ROWS + h * HALF).cast()),
                        )
                    };
                    let hi2 = _mm256_cvtepu8_epi32(hi2);
                    let mn_even = _mm256_or_si256(
                        _mm256_srli_epi32::<4>(_mm256_cvtepu8_epi32(even)),
                        _mm256_slli_epi32::<2>(_mm256_and_si256(hi2, m12)),
                    );
                    let mn_odd = _mm256_or_si256(
                        _mm256_srli_epi32::<4>(_mm256_cvtepu8_epi32(odd)),
                        _mm256_slli_epi32::<2>(_mm256_and_si256(_mm256_srli_epi32::<4>(hi2), m12)),
                    );
                    let mn2 = _mm256_or_si256(mn_even, _mm256_slli_epi32::<16>(mn_odd));
                    for (r, mins) in mins.iter_mut().enumerate() {
                        // SAFETY: r * kb + b < ROWS * kb <= pairs.len() (asserted above).
                        let p = unsafe { job.pairs.get_unchecked(r * kb + b) };
                        let both = (p[2 * pair] & 0xffff) | (p[2 * pair + 1] << 16);
                        *mins = _mm256_add_epi32(
                            *mins,
                            _mm256_madd_epi16(mn2, _mm256_set1_epi32(both)),
                        );
                    }
                }
                // SAFETY: `d` and `dmin` are 16 f16 (32 bytes) each, at 32-byte boundaries of
                // the tile (offsets asserted at Tile); half h is their bytes 16h..16h + 16.
                let (d, dmin) = unsafe {
                    (
                        _mm_load_si128(t.d.as_ptr().add(h * HALF).cast()),
                        _mm_load_si128(t.dmin.as_ptr().add(h * HALF).cast()),
                    )
                };
                let (d, dmin) = (_mm256_cvtph_ps(d), _mm256_cvtph_ps(dmin));
                for (r, a) in acc.iter_mut().enumerate() {
                    // SAFETY: block b of row r lies in `acts` (asserted above); its d (f32) is
                    // bytes 0..4. Unaligned read.
                    let ad = unsafe {
                        acts.add(r * stride + b * Q8K_BYTES)
                            .cast::<f32>()
                            .read_unaligned()
                    };
                    let ad = _mm256_set1_ps(ad);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot[r]), _mm256_mul_ps(d, ad), *a);
                    *a = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins[r]), _mm256_mul_ps(dmin, ad), *a);
                }
            }
        }
        let mut out = [[0f32; TILE_ROWS]; ROWS];
        for (h, acc) in acc.into_iter().enumerate() {
            for (out, a) in out.iter_mut().zip(acc) {
                // SAFETY: `out` is one row of 16 floats; half h is floats 8h..8h + 8.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(h * HALF), a) };
            }
        }
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use candle_core::quantized::k_quants::BlockQ4K;

    /// Deterministic values in [-1, 1) (shared with `matvec.rs`'s tests).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// A pseudo-random `n x k` Q4_K matrix: its blocks as in the file, and packed.
    fn matrix(n: usize, k: usize) -> (Vec<BlockQ4K>, PackedQ4K) {
        let w = values(n * k, 7);
        let mut blocks = vec![BlockQ4K::zeros(); n * k / QK_K];
        BlockQ4K::from_float(&w, &mut blocks);
        // SAFETY: BlockQ4K is 144 plain bytes, laid out as in the file.
        let bytes = unsafe {
            std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), blocks.len() * Q4K_BYTES)
        };
        let packed = PackedQ4K::pack(bytes, n, k).expect("pack");
        (blocks, packed)
    }

    /// Each output of `isa`'s kernel against candle's scalar Q4_K reference dot product.
    fn check(isa: IntDot, m: usize, n: usize, k: usize) {
        let (blocks, packed) = matrix(n, k);
        let lhs = values(m * k, 11);
        let mut dst = vec![0f32; m * n];
        packed.matmul_on(isa, m, &lhs, &mut dst).expect("matmul");
        let kb = k / QK_K;
        for r in 0..m {
            let mut q = vec![BlockQ8K::zeros(); kb];
            BlockQ8K::from_float(&lhs[r * k..(r + 1) * k], &mut q);
            for c in 0..n {
                let want = BlockQ4K::vec_dot_unopt(k, &blocks[c * kb..(c + 1) * kb], &q);
                let got = dst[r * n + c];
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{isa:?}: row {r} col {c} ({m}x{n}x{k}): {got} vs {want}"
                );
            }
        }
    }

    /// Up to and past eight rows, so row groups of four run full and partial.
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 16, 256),
        (1, 48, 1536),
        (3, 32, 8960),
        (7, 64, 512),
        (8, 32, 512),
        (13, 48, 768),
    ];

    #[test]
    fn packed_q4k_matches_the_reference_dot_product_with_avx512_vnni() {
        if !crate::cpu::runs(crate::cpu::features().vnni, "the AVX-512 VNNI Q4_K tiles") {
            return;
        }
        for (m, n, k) in SHAPES {
            check(IntDot::Vnni, m, n, k);
        }
    }

    #[test]
    fn packed_q4k_matches_the_reference_dot_product_with_avx2() {
        if !crate::cpu::runs(crate::cpu::features().avx2, "the AVX2 Q4_K tiles") {
            return;
        }
        for (m, n, k) in SHAPES {
            check(IntDot::Avx2, m, n, k);
        }
    }

    /// The two kernels promise the same bits (so a tile's output, and the answer, does not
    /// depend on which one this CPU has): checked on every shape and row count, through
    /// both entry points, prefill's `matmul` and decode's `tile_rows`.
    #[test]
    fn the_avx2_and_avx512_tiles_give_the_same_bits() {
        let f = crate::cpu::features();
        if !crate::cpu::runs(
            f.vnni && f.avx2,
            "both the AVX-512 VNNI and the AVX2 Q4_K tiles",
        ) {
            return;
        }
        for (m, n, k) in SHAPES.into_iter().chain([(5, 32, 2048), (8, 16, 1536)]) {
            let (_, packed) = matrix(n, k);
            let lhs = values(m * k, 13);
            let run = |isa| {
                let mut dst = vec![0f32; m * n];
                packed.matmul_on(isa, m, &lhs, &mut dst).expect("matmul");
                dst
            };
            assert_eq!(run(IntDot::Avx2), run(IntDot::Vnni), "matmul {m}x{n}x{k}");
            let xs: Vec<&[f32]> = lhs.chunks(k).collect();
            let acts = Acts::batch(&xs).expect("acts");
            let tile = |isa| {
                let mut dst = vec![0f32; TILE_ROWS * m];
                packed
                    .tile_rows_on(isa, n / TILE_ROWS - 1, &acts, &mut dst)
                    .expect("tile");
                dst
            };
            assert_eq!(
                tile(IntDot::Avx2),
                tile(IntDot::Vnni),
                "tile_rows {m}x{n}x{k}"
            );
        }
    }

    /// What [`mark`] leaves in an `m x n` output: tile row and row of each element.
    fn marks(m: usize, n: usize) -> Vec<f32> {
        (0..m * n)
            .map(|i| ((i % n) / TILE_ROWS * 1000 + i / n) as f32)
            .collect()
    }

    /// A unit's stand-in for the kernel: writes its tile row and row into its outputs.
    fn mark(nt: usize, m0: usize, out: &mut [Span<'_>]) {
        let sums: Vec<[f32; TILE_ROWS]> = (0..out.len())
            .map(|r| [(nt * 1000 + m0 + r) as f32; TILE_ROWS])
            .collect();
        put(&sums, nt, out);
    }

    #[test]
    fn every_unit_writes_its_own_columns_of_its_own_rows() {
        for (m, n) in [(1usize, 16), (3, 48), (4, 32), (7, 64), (9, 160)] {
            let m_units = m.div_ceil(MAX_ROWS);
            let total = n / TILE_ROWS * m_units;
            for chunk in [1, 2, 3, 5, 7, total, total + 3] {
                let mut dst = vec![f32::NAN; m * n];
                let grabs = split_tiles(&mut dst, (m, n), chunk);
                assert_eq!(grabs.len(), total.div_ceil(chunk));
                for (g, mut rows) in grabs.into_iter().enumerate() {
                    for u in g * chunk..((g + 1) * chunk).min(total) {
                        let (nt, m0) = (u / m_units, u % m_units * MAX_ROWS);
                        mark(nt, m0, &mut rows[m0..(m0 + MAX_ROWS).min(m)]);
                    }
                }
                assert_eq!(dst, marks(m, n), "{m}x{n} by {chunk}");
            }
            // And through the pool, split as candle would.
            let mut dst = vec![f32::NAN; m * n];
            for_each_unit(&mut dst, (m, n), mark);
            assert_eq!(dst, marks(m, n), "{m}x{n}");
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
