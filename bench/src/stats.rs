//! Small statistics shared by the harnesses: proportions with their 95 % Wilson interval.

use serde::Serialize;

/// `k` successes out of `n`, with the proportion and its 95 % Wilson score interval. The
/// Wilson interval stays inside [0, 1] and is honest at 0/n and n/n, where the normal
/// approximation collapses to a zero-width interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub k: usize,
    pub n: usize,
    /// `k / n`; NaN when `n` is 0 (nothing to measure).
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Proportion {
    pub fn new(k: usize, n: usize) -> Self {
        let (lo, hi) = wilson(k, n);
        let value = if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        };
        Self {
            k,
            n,
            value,
            lo,
            hi,
        }
    }
}

/// The 95 % Wilson score interval of `k` out of `n`; (0, 1) when `n` is 0.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    // Reference values from the closed form, checked by hand against published tables.
    #[rstest]
    #[case::half(50, 100, 0.4038, 0.5962)]
    #[case::all(10, 10, 0.7225, 1.0)]
    #[case::none(0, 10, 0.0, 0.2775)]
    #[case::rare(1, 100, 0.0018, 0.0545)]
    fn wilson_matches_reference(
        #[case] k: usize,
        #[case] n: usize,
        #[case] lo: f64,
        #[case] hi: f64,
    ) {
        let (l, h) = wilson(k, n);
        assert!(
            (l - lo).abs() < 5e-4 && (h - hi).abs() < 5e-4,
            "{k}/{n}: ({l}, {h})"
        );
    }

    #[test]
    fn empty_sample_is_uninformative() {
        let p = Proportion::new(0, 0);
        assert!(p.value.is_nan());
        assert_eq!((p.lo, p.hi), (0.0, 1.0));
    }
}
