//! The one CPU-feature probe: which of caro's own kernels this CPU runs, checked once at run
//! time (never assumed from the build's target), with the switches that turn them off.
//!
//! Every kernel family asks here, so one process never mixes answers, and the decode loop
//! reads a cached value instead of probing per head and per token.

use std::sync::OnceLock;

/// What this CPU runs of caro's own kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// AVX-512 F, BW and VNNI (and AVX2 and FMA, which every such CPU has and the Q6_K dot
    /// product also uses): the Q4_K tiles, the Q6_K dot product and the activation
    /// quantizer. `CARO_NO_VNNI` turns them off (candle's kernels run instead).
    pub vnni: bool,
    /// AVX2, FMA and F16C: the Q4_1 dot product, attention on the KV cache, exp and SiLU.
    /// `CARO_NO_AVX2` turns them off (plain Rust runs instead).
    pub avx2: bool,
}

/// This CPU's features, probed on first use.
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(|| probe(|name| std::env::var_os(name).is_some()))
}

/// [`features`] with the switches read through `switched_off`, so tests can set them.
fn probe(switched_off: impl Fn(&str) -> bool) -> Features {
    #[cfg(target_arch = "x86_64")]
    let (vnni, avx2) = (
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma"),
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (vnni, avx2) = (false, false);
    Features {
        vnni: vnni && !switched_off("CARO_NO_VNNI"),
        avx2: avx2 && !switched_off("CARO_NO_AVX2"),
    }
}

/// For a kernel's test: whether `kernel` runs on this CPU. When it does not, the test has
/// nothing to check, and this says so on stderr past the test harness's capture, so a skipped
/// test never reads as a pass.
#[cfg(test)]
pub(crate) fn runs(available: bool, kernel: &str) -> bool {
    if !available {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: this CPU does not run {kernel} (or a CARO_NO_* switch is set): nothing checked"
        );
    }
    available
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switches_turn_each_family_off() {
        let none = probe(|_| false);
        let no_vnni = probe(|k| k == "CARO_NO_VNNI");
        assert!(!no_vnni.vnni);
        assert_eq!(no_vnni.avx2, none.avx2, "CARO_NO_VNNI leaves AVX2 alone");
        let no_avx2 = probe(|k| k == "CARO_NO_AVX2");
        assert!(!no_avx2.avx2);
        assert_eq!(no_avx2.vnni, none.vnni, "CARO_NO_AVX2 leaves VNNI alone");
        // The cached answer is the probe's with the process's own switches.
        assert_eq!(features(), probe(|name| std::env::var_os(name).is_some()));
    }
}
