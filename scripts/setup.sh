#!/usr/bin/env bash
# Build caro, put the default model in caro's cache, install the binary, and answer a request.
#
# Usage: scripts/setup.sh ["what you want, in plain words"]
# Env:   CARO_INSTALL_DIR  where the `caro` binary goes (default: ~/.local/bin)
#        CARO_CACHE_DIR    model cache (default: ~/.cache/caro/models, XDG aware)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "error: Rust is needed: install it from rustup, then run this again"; exit 1; }

log "building caro (release; the first build takes a few minutes)"
cargo build --release --locked -p caro-cli

model_file=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
if [[ -n "${CARO_CACHE_DIR:-}" ]]; then
  cache="$CARO_CACHE_DIR"
else
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/caro/models"
  [[ "$(uname -s)" == Darwin ]] && cache="$HOME/Library/Caches/caro/models"
fi
mkdir -p "$cache"
# A checkout that already fetched the test models shares the file instead of downloading it again.
if [[ ! -f "$cache/$model_file.sha256" && -f "target/models/$model_file.sha256" ]]; then
  ln -f "target/models/$model_file" "$cache/$model_file" 2>/dev/null || cp "target/models/$model_file" "$cache/$model_file"
  cp "target/models/$model_file.sha256" "$cache/$model_file.sha256"
fi
CARO_TEST_MODELS_DIR="$cache" scripts/fetch-test-models.sh qwen2.5-coder-1.5b

bin_dir="${CARO_INSTALL_DIR:-$HOME/.local/bin}"
mkdir -p "$bin_dir"
install -m 0755 target/release/caro "$bin_dir/caro"
log "installed $bin_dir/caro"
case ":$PATH:" in *":$bin_dir:"*) ;; *) log "add $bin_dir to your PATH to run caro from anywhere" ;; esac

prompt="${*:-list all files larger than 100MB}"
log "caro \"$prompt\""
exec "$bin_dir/caro" "$prompt"
