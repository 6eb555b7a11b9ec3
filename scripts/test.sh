#!/usr/bin/env bash
# Fetch the test models (cached after the first run) and run the whole test suite.
# Extra arguments go to `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/fetch-test-models.sh smollm2-135m qwen2.5-coder-1.5b
# Release: the tests run real models, which are ~20x slower unoptimised.
cargo test --release --locked --workspace "$@"
