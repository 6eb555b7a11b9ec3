#!/usr/bin/env bash
# Fetch the test models and build llama-server (both cached after the first run), then run
# the whole test suite.
# Extra arguments go to `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# The tools the tests run: the accuracy sandbox and what its references use, the shells the
# completion tests run (the list is in need-packages.sh).
scripts/need-packages.sh
scripts/fetch-test-models.sh smollm2-135m qwen2.5-coder-1.5b
# The vLLM backend is also tested against a real OpenAI-compatible server: llama.cpp's
# llama-server, built once from source and cached in target/llama-server.
CARO_LLAMA_SERVER="$(scripts/build-llama-server.sh)"
export CARO_LLAMA_SERVER
# The tray app needs WebKitGTK to build on Linux; without it, everything else is still tested.
exclude=()
if [[ "$(uname -s)" == Linux ]] && ! pkg-config --exists webkit2gtk-4.1 2>/dev/null; then
  echo "test.sh: webkit2gtk-4.1 not installed; skipping the tray app (see scripts/test-tray.sh)" >&2
  exclude=(--exclude caro-tray)
fi
# Release: the tests run real models, which are ~20x slower unoptimised. Without the release
# profile's cross-crate ThinLTO, though: under it every test binary (a dozen of them) optimises
# candle, tokio and the rest again at link time, which took most of a 38-minute build on two
# cores. Shipped binaries keep it (scripts/package-release.sh and the release workflow do not
# set this). Set CARGO_PROFILE_RELEASE_LTO=thin to test exactly what ships.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-false}"
cargo test --release --locked --workspace "${exclude[@]}" "$@"
