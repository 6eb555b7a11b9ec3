//! Decode's matrix-vector products, and prefill's Q6_K products built from them: matrices
//! that read the same input (q/k/v, gate/up) run in one parallel pass over their rows, with
//! the input quantized once.
//!
//! Each parallel pass ends at a barrier where the faster thread waits for the slower, and
//! one decoded token makes seven passes per layer when every matrix runs alone, plus one
//! more per matrix to quantize its input. Sharing the passes leaves four per layer.
use crate::kernels::{self, Q6K_BYTES};
use crate::q4k::{Acts, PackedQ4K, TILE_ROWS};
use candle_core::Result;
use candle_core::quantized::k_quants::QK_K;

/// A matrix in a form caro's decode kernels multiply.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// caro's Q4_K tiles.
    Q4K(&'a PackedQ4K),
    /// Q6_K blocks as stored in the file, `n` rows of `k / 256` blocks.
    Q6K {
        blocks: &'a [u8],
        n: usize,
        k: usize,
    },
}

impl Rows<'_> {
    fn shape(&self) -> (usize, usize) {
        match self {
            Self::Q4K(p) => (p.rows(), p.cols()),
            Self::Q6K { n, k, .. } => (*n, *k),
        }
    }
}

/// `w * x` for each matrix `w` in `mats`, all of width `x.len()`, in one parallel pass: the
/// one-input case, the reference the batched tests compare with.
#[cfg(test)]
pub fn matvec(mats: &[Rows<'_>], x: &[f32]) -> Result<Vec<Vec<f32>>> {
    let outs = matvec_batch(mats, &[x])?;
    Ok(outs.into_iter().flatten().collect())
}

/// `w * x` for each matrix `w` in `mats` and each input `x` in `xs` (all of one width), in
/// one parallel pass: `out[i][r]` is `mats[i] * xs[r]`.
///
/// Batched decode (several sequences a step) is memory-bound on the weights: each 16-row
/// unit of a matrix is multiplied with every input while it is in the core's cache, so a
/// step reads the weights from memory once, not once per input.
pub fn matvec_batch(mats: &[Rows<'_>], xs: &[&[f32]]) -> Result<Vec<Vec<Vec<f32>>>> {
    if crate::cpu::features().int_dot().is_none() {
        candle_core::bail!("caro's decode kernels need AVX-512 VNNI or AVX2")
    }
    let Some(width) = xs.first().map(|x| x.len()) else {
        return Ok(mats.iter().map(|_| Vec::new()).collect());
    };
    if xs.iter().any(|x| x.len() != width) {
        candle_core::bail!("matvec inputs of different widths")
    }
    for m in mats {
        let (n, k) = m.shape();
        if k != width {
            candle_core::bail!("matvec input width {width}, weight expects {k}")
        }
        if let Rows::Q6K { blocks, .. } = m
            && blocks.len() != n * (k / QK_K) * Q6K_BYTES
        {
            candle_core::bail!("Q6_K matrix {n}x{k} has {} bytes", blocks.len())
        }
    }
    let acts = Acts::batch(xs)?;
    let m = xs.len();
    // Each matrix's outputs row-major by weight row, `[row][input]`, so that a unit of 16
    // weight rows writes one contiguous span for all the inputs.
    let mut outs: Vec<Vec<f32>> = mats.iter().map(|w| vec![0f32; w.shape().0 * m]).collect();
    // Work units are 16 weight rows; `starts[i]` is matrix i's first unit.
    let mut starts = Vec::with_capacity(mats.len() + 1);
    let mut total = 0;
    for w in mats {
        starts.push(total);
        total += w.shape().0.div_ceil(TILE_ROWS);
    }
    starts.push(total);
    let failed = std::sync::atomic::AtomicBool::new(false);
    // Unit u's 16 rows times m inputs (fewer rows at a matrix's end) go to the thread that
    // runs it.
    let parts = outs.iter_mut().map(Vec::as_mut_slice);
    crate::pool::units(parts, TILE_ROWS * m, |u, dst| {
        let i = starts.partition_point(|&s| s <= u) - 1;
        let t = u - starts[i];
        let (n, k) = mats[i].shape();
        let rows = t * TILE_ROWS..n.min((t + 1) * TILE_ROWS);
        let ok = match mats[i] {
            // A tile is 16 rows: caro packs only matrices whose rows fill their tiles.
            Rows::Q4K(p) => rows.len() == TILE_ROWS && p.tile_rows(t, &acts, dst).is_ok(),
            Rows::Q6K { blocks, .. } => {
                let row_bytes = k / QK_K * Q6K_BYTES;
                // Output row j's m values are dst[j m..(j + 1) m], in input order.
                rows.zip(dst.chunks_mut(m)).all(|(row, out)| {
                    kernels::q6k_rows(
                        &blocks[row * row_bytes..(row + 1) * row_bytes],
                        acts.all(),
                        out,
                    )
                })
            }
        };
        if !ok {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if failed.into_inner() {
        candle_core::bail!("a decode kernel rejected its matrix")
    }
    Ok(outs
        .into_iter()
        .map(|o| {
            if m == 1 {
                return vec![o];
            }
            (0..m)
                .map(|r| o.iter().skip(r).step_by(m).copied().collect())
                .collect()
        })
        .collect())
}

/// Inputs per pass in [`matmul`]: their Q8_K activations (at most about 330 KB for the 1.5B
/// model's widest input, 8960 values) stay in a core's L2 cache while every weight row passes
/// over them.
const MATMUL_INPUTS: usize = 32;

/// `dst (m x n) = lhs (m x k) * wᵀ`, row-major (prefill's shape), as passes of
/// [`matvec_batch`] over [`MATMUL_INPUTS`] inputs each: every weight row is read once per
/// pass and unpacked once per four inputs (eight with AVX2). candle's own `k_quants::matmul`
/// (16 prompt rows per group of four weight rows) unpacks each weight row again for every
/// prompt row, with its own Q6_K kernel on AVX2. Each output is bit for bit the value that
/// input gets decoded alone.
pub fn matmul(w: Rows<'_>, m: usize, lhs: &[f32], dst: &mut [f32]) -> Result<()> {
    let (n, k) = w.shape();
    if lhs.len() != m * k || dst.len() != m * n {
        candle_core::bail!(
            "matmul shapes: lhs {} for {m}x{k}, dst {} for {m}x{n}",
            lhs.len(),
            dst.len()
        )
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        candle_core::bail!("matmul input of width 0")
    }
    for (lhs, dst) in lhs
        .chunks(MATMUL_INPUTS * k)
        .zip(dst.chunks_mut(MATMUL_INPUTS * n))
    {
        let xs: Vec<&[f32]> = lhs.chunks(k).collect();
        let outs = matvec_batch(&[w], &xs)?;
        let Some(outs) = outs.first() else {
            candle_core::bail!("matvec lost an output")
        };
        for (out, dst) in outs.iter().zip(dst.chunks_mut(n)) {
            dst.copy_from_slice(out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q4k::tests::values;
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8K, GgmlType};

    #[allow(unsafe_code)]
    fn bytes<T>(blocks: &[T]) -> &[u8] {
        // SAFETY: called with GGML blocks only, which are plain bytes without padding (laid
        // out as in the file), so the slice's memory is size_of_val initialized bytes.
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), std::mem::size_of_val(blocks)) }
    }

    /// Whether this CPU runs the passes; says so loudly when it does not.
    fn passes_run() -> bool {
        crate::cpu::runs(
            crate::cpu::features().int_dot().is_some(),
            "the decode passes (AVX-512 VNNI or AVX2)",
        )
    }

    #[test]
    fn one_pass_over_q4k_and_q6k_matrices_matches_each_reference_dot_product() {
        if !passes_run() {
            return;
        }
        let k = 512;
        let kb = k / QK_K;
        // A Q6_K matrix whose rows do not fill its last 16-row unit, between two Q4_K ones.
        let (n4a, n6, n4b) = (32, 20, 16);
        let mut q4a = vec![BlockQ4K::zeros(); n4a * kb];
        BlockQ4K::from_float(&values(n4a * k, 1), &mut q4a);
        let mut q6 = vec![BlockQ6K::zeros(); n6 * kb];
        BlockQ6K::from_float(&values(n6 * k, 2), &mut q6);
        let mut q4b = vec![BlockQ4K::zeros(); n4b * kb];
        BlockQ4K::from_float(&values(n4b * k, 3), &mut q4b);
        let p4a = PackedQ4K::pack(bytes(&q4a), n4a, k).expect("pack");
        let p4b = PackedQ4K::pack(bytes(&q4b), n4b, k).expect("pack");
        let x = values(k, 4);
        let mats = [
            Rows::Q4K(&p4a),
            Rows::Q6K {
                blocks: bytes(&q6),
                n: n6,
                k,
            },
            Rows::Q4K(&p4b),
        ];
        let outs = matvec(&mats, &x).expect("matvec");
        let mut xq = vec![BlockQ8K::zeros(); kb];
        BlockQ8K::from_float(&x, &mut xq);
        let want: [Vec<f32>; 3] = [
            (0..n4a)
                .map(|r| BlockQ4K::vec_dot_unopt(k, &q4a[r * kb..(r + 1) * kb], &xq))
                .collect(),
            (0..n6)
                .map(|r| BlockQ6K::vec_dot_unopt(k, &q6[r * kb..(r + 1) * kb], &xq))
                .collect(),
            (0..n4b)
                .map(|r| BlockQ4K::vec_dot_unopt(k, &q4b[r * kb..(r + 1) * kb], &xq))
                .collect(),
        ];
        for (i, (got, want)) in outs.iter().zip(&want).enumerate() {
            assert_eq!(got.len(), want.len(), "matrix {i}");
            for (r, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                    "matrix {i} row {r}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn a_batched_pass_gives_each_input_exactly_its_own_pass() {
        if !passes_run() {
            return;
        }
        let k = 512;
        let kb = k / QK_K;
        // A Q6_K matrix whose rows do not fill its last 16-row unit, and a Q4_K one.
        let (n4, n6) = (48, 20);
        let mut q4 = vec![BlockQ4K::zeros(); n4 * kb];
        BlockQ4K::from_float(&values(n4 * k, 5), &mut q4);
        let mut q6 = vec![BlockQ6K::zeros(); n6 * kb];
        BlockQ6K::from_float(&values(n6 * k, 6), &mut q6);
        let p4 = PackedQ4K::pack(bytes(&q4), n4, k).expect("pack");
        let mats = [
            Rows::Q6K {
                blocks: bytes(&q6),
                n: n6,
                k,
            },
            Rows::Q4K(&p4),
        ];
        // Past eight, so the kernels' row groups (four or eight) run full and partial.
        let xs: Vec<Vec<f32>> = (0..11).map(|s| values(k, 10 + s)).collect();
        let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let batch = matvec_batch(&mats, &refs).expect("batch");
        assert_eq!(batch.len(), mats.len());
        for (r, x) in xs.iter().enumerate() {
            let alone = matvec(&mats, x).expect("one input");
            for (i, want) in alone.iter().enumerate() {
                // The same kernels on the same blocks: bit for bit.
                assert_eq!(&batch[i][r], want, "matrix {i}, input {r}");
            }
        }
        assert!(matvec_batch(&mats, &[&xs[0][..], &xs[1][..256]]).is_err());
    }

    /// Prefill's shape through the decode passes: every input row of a long prompt (more
    /// than one pass of inputs, and a partial last pass) gets exactly its own pass's values.
    #[test]
    fn a_matmul_gives_each_input_row_exactly_its_own_pass() {
        if !passes_run() {
            return;
        }
        let (n, k) = (20, 512);
        let mut q6 = vec![BlockQ6K::zeros(); n * k / QK_K];
        BlockQ6K::from_float(&values(n * k, 6), &mut q6);
        let w = Rows::Q6K {
            blocks: bytes(&q6),
            n,
            k,
        };
        for m in [1, MATMUL_INPUTS, 2 * MATMUL_INPUTS + 5] {
            let lhs = values(m * k, 40 + m as u32);
            let mut dst = vec![f32::NAN; m * n];
            matmul(w, m, &lhs, &mut dst).expect("matmul");
            for (r, x) in lhs.chunks(k).enumerate() {
                let [alone] = matvec(&[w], x)
                    .expect("alone")
                    .try_into()
                    .expect("one matrix");
                assert_eq!(&dst[r * n..(r + 1) * n], &alone[..], "{m} rows: row {r}");
            }
        }
        let mut dst = vec![0f32; 2 * n];
        assert!(matmul(w, 2, &values(k, 1), &mut dst).is_err());
        assert!(matmul(w, 0, &[], &mut []).is_ok());
    }

    #[test]
    fn matvec_rejects_a_width_or_size_that_does_not_fit() {
        if !passes_run() {
            return;
        }
        let q6 = vec![0u8; 16 * Q6K_BYTES];
        let x = vec![0f32; 256];
        let ok = Rows::Q6K {
            blocks: &q6,
            n: 16,
            k: 256,
        };
        assert!(matvec(&[ok], &x).is_ok());
        assert!(matvec(&[ok], &x[..128]).is_err());
        let short = Rows::Q6K {
            blocks: &q6[..15 * Q6K_BYTES],
            n: 16,
            k: 256,
        };
        assert!(matvec(&[short], &x).is_err());
    }
}
