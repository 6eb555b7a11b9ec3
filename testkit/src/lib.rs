//! Test support shared by caro's test suites, in one place: the test models and a fake Hugging
//! Face hub. Dev-only: no crate that ships depends on it.

pub mod fakehub;

use std::path::PathBuf;

/// Only for tests that never need a usable command: SmolLM2's greedy output changes with the
/// CPU's SIMD width, so anything that must produce a command uses the 1.5B model.
pub const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model caro ships with.
pub const QWEN_1_5B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// Where scripts/fetch-test-models.sh puts the test models: `$CARO_TEST_MODELS_DIR`, else the
/// workspace's `target/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("CARO_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models"))
}

/// The test model file `name`. A missing model fails the test loudly, saying what to run:
/// a test that needs a model never passes without one.
pub fn model(name: &str) -> PathBuf {
    let path = models_dir().join(name);
    assert!(
        path.is_file(),
        "test model {} is missing: run scripts/fetch-test-models.sh first",
        path.display()
    );
    path
}
