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
    /// quantizer. `CARO_NO_VNNI` turns them off (the AVX2 tiles run instead, or candle's
    /// kernels where AVX2 is off too).
    pub vnni: bool,
    /// AVX2, FMA and F16C: the Q4_1 dot product, attention on the KV cache, exp and SiLU,
    /// and, without AVX-512 VNNI, the Q4_K tiles, the Q6_K rows and the activation
    /// quantizer. `CARO_NO_AVX2` turns them off (plain Rust, or candle's kernels, run
    /// instead).
    pub avx2: bool,
}

/// The integer instructions that multiply caro's Q4_K tiles and Q6_K rows by quantized
/// activations, best first. Both give exactly the same integer sums; the Q4_K tiles also
/// round the same way on either, so a tile's output does not depend on which one ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntDot {
    /// AVX-512 VNNI's `vpdpbusd`: 64 byte products a step, 16 rows in one register.
    Vnni,
    /// AVX2's `vpmaddubsw` then `vpmaddwd`: 32 byte products a step, 16 rows in two
    /// registers. Most x86-64 CPUs of the last decade have it and not AVX-512.
    Avx2,
}

impl IntDot {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vnni => "vnni",
            Self::Avx2 => "avx2",
        }
    }
}

impl Features {
    /// Which instructions caro's Q4_K and Q6_K kernels use here; `None` leaves those
    /// matrices to candle's kernels.
    pub fn int_dot(&self) -> Option<IntDot> {
        if self.vnni {
            Some(IntDot::Vnni)
        } else if self.avx2 {
            Some(IntDot::Avx2)
        } else {
            None
        }
    }

    /// Whether this CPU runs `isa` (and no switch turned it off): what a kernel's caller
    /// checks before it runs that kernel.
    pub fn has(&self, isa: IntDot) -> bool {
        match isa {
            IntDot::Vnni => self.vnni,
            IntDot::Avx2 => self.avx2,
        }
    }
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
        // The tiles take the best instructions left on.
        assert_eq!(probe(|_| true).int_dot(), None);
        if none.vnni {
            assert_eq!(none.int_dot(), Some(IntDot::Vnni));
            assert_eq!(no_vnni.int_dot(), Some(IntDot::Avx2));
            assert_eq!(no_avx2.int_dot(), Some(IntDot::Vnni));
        } else if none.avx2 {
            assert_eq!(none.int_dot(), Some(IntDot::Avx2));
            assert_eq!(no_avx2.int_dot(), None);
        }
        assert_eq!(none.has(IntDot::Vnni), none.vnni);
        assert_eq!(none.has(IntDot::Avx2), none.avx2);
        // The cached answer is the probe's with the process's own switches.
        assert_eq!(features(), probe(|name| std::env::var_os(name).is_some()));
    }
}
