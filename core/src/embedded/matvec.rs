//! Decode's matrix-vector products: matrices that read the same input (q/k/v, gate/up) run
//! in one parallel pass over their rows, with the input quantized once.
//!
//! Each parallel pass ends at a barrier where the faster thread waits for the slower, and
//! one decoded token makes seven passes per layer when every matrix runs alone, plus one
//! more per matrix to quantize its input. Sharing the passes leaves four per layer.
#![allow(unsafe_code)]

use super::kernels::{self, Q6K_BYTES};
use super::q4k::{Acts, PackedQ4K, TILE_ROWS};
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

/// `w * x` for each matrix `w` in `mats`, all of width `x.len()`, in one parallel pass.
pub fn matvec(mats: &[Rows<'_>], x: &[f32]) -> Result<Vec<Vec<f32>>> {
    if !super::cpu::features().vnni {
        candle_core::bail!("caro's decode kernels need AVX-512 VNNI")
    }
    for m in mats {
        let (n, k) = m.shape();
        if k != x.len() {
            candle_core::bail!("matvec input width {}, weight expects {k}", x.len())
        }
        if let Rows::Q6K { blocks, .. } = m
            && blocks.len() != n * (k / QK_K) * Q6K_BYTES
        {
            candle_core::bail!("Q6_K matrix {n}x{k} has {} bytes", blocks.len())
        }
    }
    let acts = Acts::new(x)?;
    let mut outs: Vec<Vec<f32>> = mats.iter().map(|m| vec![0f32; m.shape().0]).collect();
    // Work units are 16 output rows; `starts[i]` is matrix i's first unit.
    let mut starts = Vec::with_capacity(mats.len() + 1);
    let mut total = 0;
    for m in mats {
        starts.push(total);
        total += m.shape().0.div_ceil(TILE_ROWS);
    }
    starts.push(total);
    let at: Vec<usize> = outs.iter_mut().map(|o| o.as_mut_ptr() as usize).collect();
    let failed = std::sync::atomic::AtomicBool::new(false);
    candle_core::utils::barrier_pool().execute_chunked(total, |units| {
        for u in units {
            let i = starts.partition_point(|&s| s <= u) - 1;
            let t = u - starts[i];
            let (n, k) = mats[i].shape();
            let rows = t * TILE_ROWS..n.min((t + 1) * TILE_ROWS);
            // SAFETY: unit u alone writes rows 16t..16t+16 of output i, which holds n floats.
            let dst = unsafe {
                std::slice::from_raw_parts_mut((at[i] as *mut f32).add(rows.start), rows.len())
            };
            let ok = match mats[i] {
                Rows::Q4K(p) => dst
                    .try_into()
                    .ok()
                    .and_then(|d| p.tile_vector(t, &acts, d).ok())
                    .is_some(),
                Rows::Q6K { blocks, .. } => {
                    let row_bytes = k / QK_K * Q6K_BYTES;
                    rows.clone().zip(dst.iter_mut()).all(|(r, d)| {
                        kernels::q6k_row(&blocks[r * row_bytes..(r + 1) * row_bytes], acts.blocks())
                            .map(|v| *d = v)
                            .is_some()
                    })
                }
            };
            if !ok {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    if failed.into_inner() {
        candle_core::bail!("a decode kernel rejected its matrix")
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::q4k::tests::values;
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8K, GgmlType};

    fn bytes<T>(blocks: &[T]) -> &[u8] {
        // SAFETY: GGML blocks are plain bytes, laid out as in the file.
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), std::mem::size_of_val(blocks)) }
    }

    #[test]
    fn one_pass_over_q4k_and_q6k_matrices_matches_each_reference_dot_product() {
        use crate::embedded::cpu;
        if !cpu::runs(cpu::features().vnni, "the AVX-512 VNNI decode passes") {
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
    fn matvec_rejects_a_width_or_size_that_does_not_fit() {
        use crate::embedded::cpu;
        if !cpu::runs(cpu::features().vnni, "the AVX-512 VNNI decode passes") {
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
