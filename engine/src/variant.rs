//! Which tensor engine runs the model, and which model architectures it can run.

use serde::{Deserialize, Serialize};

/// `general.architecture` values the engine can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["qwen2", "llama"];

/// Which tensor engine runs the embedded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelVariant {
    /// Apple's MLX on the GPU of Apple Silicon.
    Mlx,
    /// Candle on the CPU, everywhere.
    Cpu,
}

impl ModelVariant {
    /// MLX on macOS/aarch64 builds with the `mlx` feature, the CPU engine everywhere else.
    pub fn detect() -> Self {
        if cfg!(all(
            feature = "mlx",
            target_os = "macos",
            target_arch = "aarch64"
        )) {
            Self::Mlx
        } else {
            Self::Cpu
        }
    }

    /// Parses an engine choice as the config file and `--engine` spell it: `auto` (`None`,
    /// meaning [`ModelVariant::detect`]), `cpu` or `mlx`.
    pub fn parse_choice(s: &str) -> Result<Option<Self>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "cpu" | "candle" => Ok(Some(Self::Cpu)),
            "mlx" => Ok(Some(Self::Mlx)),
            other => Err(format!("unknown engine {other:?} (use auto, cpu or mlx)")),
        }
    }

    pub fn engine_name(self) -> &'static str {
        match self {
            Self::Mlx => "mlx",
            Self::Cpu => "candle-cpu",
        }
    }
}

/// Why `--engine mlx` cannot run in this build.
pub const MLX_MISSING: &str = "the MLX engine is not in this build of caro: it needs an Apple Silicon Mac \
and a build with `--features mlx` (the -mlx release). Use `--engine cpu` (or engine \"auto\")";

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::auto("auto", Ok(None))]
    #[case::empty("", Ok(None))]
    #[case::cpu("cpu", Ok(Some(ModelVariant::Cpu)))]
    #[case::candle_alias("Candle", Ok(Some(ModelVariant::Cpu)))]
    #[case::mlx(" MLX ", Ok(Some(ModelVariant::Mlx)))]
    #[case::unknown("gpu", Err(()))]
    fn engine_choices_parse(#[case] text: &str, #[case] want: Result<Option<ModelVariant>, ()>) {
        assert_eq!(ModelVariant::parse_choice(text).map_err(|_| ()), want);
    }

    #[test]
    fn variant_is_cpu_without_mlx() {
        if !cfg!(all(
            feature = "mlx",
            target_os = "macos",
            target_arch = "aarch64"
        )) {
            assert_eq!(ModelVariant::detect(), ModelVariant::Cpu);
        }
    }
}
