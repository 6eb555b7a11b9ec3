#!/usr/bin/env bash
# Builds llama.cpp's llama-server (an OpenAI-compatible server) for the vLLM backend's
# real-server test, and llama-bench and llama-batched-bench beside it (caro-bench's speed
# references: one sequence, and several decoded together). llama.cpp's
# source ships inside the llama-cpp-python sdist on PyPI, the one package index these
# machines reach. The binaries are cached and reused while this CPU's probed instruction sets
# (scripts/cpu-features.sh) are the ones they were built for: reruns cost nothing, and a
# build tree carried to another CPU is rebuilt instead of dying with SIGILL.
#
#   scripts/build-llama-server.sh            # prints the absolute path of llama-server
#   scripts/build-llama-server.sh --bench    # prints the absolute path of llama-bench
#   scripts/build-llama-server.sh --batched-bench   # … of llama-batched-bench
#
# Needs cmake and a C++ compiler (.ci/run installs cmake).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
OUT=target/llama-server
BIN="$OUT/llama-server-$VERSION"
BENCH="$OUT/llama-bench-$VERSION"
BATCHED="$OUT/llama-batched-bench-$VERSION"
want="$BIN"
[[ "${1:-}" == --bench ]] && want="$BENCH"
[[ "${1:-}" == --batched-bench ]] && want="$BATCHED"

STAMP="$OUT/cpu-flags-$VERSION"
CPU_FLAGS="$(scripts/cpu-features.sh)"
if [[ -x "$BIN" && -x "$BENCH" && -x "$BATCHED" && -f "$STAMP" && "$(cat "$STAMP")" == "$CPU_FLAGS" ]]; then
  echo "$PWD/$want"
  exit 0
fi
# The README's test command must work on a fresh Debian machine with only rustup and a C
# compiler, so what the build needs is installed here (with sudo when not root).
need() { # need COMMAND-CHECK PACKAGE
  eval "$1" >/dev/null 2>&1 && return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  if command -v apt-get >/dev/null; then
    echo "installing $2 (needed to build llama-server) …" >&2
    "${sudo[@]}" apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$2" >&2
  fi
  eval "$1" >/dev/null 2>&1 || { echo "$2 is required to build llama-server: install it and rerun" >&2; exit 1; }
}
need "command -v cmake" cmake
need "command -v c++" g++
need "${PY:-python3} -c 'import ensurepip, venv'" python3-venv
PY=${PY:-python3}
mkdir -p "$OUT"
SDIST="$OUT/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]] || ! echo "$SHA256  $SDIST" | sha256sum -c --quiet 2>/dev/null; then
  echo "downloading llama-cpp-python $VERSION sdist (76 MB) …" >&2
  # pip fetches it, so the user's index and proxy settings apply. `--no-binary :all:` with build
  # isolation would build the sdist's build tools (cmake!) from source just to read its
  # metadata, so a small venv provides scikit-build-core and isolation is off.
  venv="$OUT/venv"
  [[ -x "$venv/bin/python" || -x "$venv/Scripts/python.exe" ]] || "$PY" -m venv "$venv"
  vpy="$venv/bin/python"; [[ -x "$vpy" ]] || vpy="$venv/Scripts/python.exe"
  "$vpy" -m pip install --quiet --disable-pip-version-check scikit-build-core >&2
  rm -rf "$OUT/dl" && "$vpy" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: --no-build-isolation "llama-cpp-python==$VERSION" -d "$OUT/dl" >&2
  mv "$OUT/dl/llama_cpp_python-$VERSION.tar.gz" "$SDIST"
  echo "$SHA256  $SDIST" | sha256sum -c --quiet || { echo "checksum mismatch for $SDIST" >&2; rm -f "$SDIST"; exit 1; }
fi
SRC="$OUT/src-$VERSION"
if [[ ! -d "$SRC" ]]; then
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  tar -xzf "$SDIST" -C "$SRC.tmp" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  mv "$SRC.tmp/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC" && rm -rf "$SRC.tmp"
fi
echo "building llama-server, llama-bench and llama-batched-bench (a few minutes on 2 cores) with: $CPU_FLAGS" >&2
rm -f "$STAMP"
# shellcheck disable=SC2086 # CPU_FLAGS is a list of -D options
cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON $CPU_FLAGS -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$OUT/build" --config Release --target llama-server llama-bench llama-batched-bench \
  -j "$(nproc 2>/dev/null || echo 2)" >&2
# Single-config generators put them in bin/, Visual Studio's in bin/Release/ (with .exe).
for name in llama-server llama-bench llama-batched-bench; do
  built="$(find "$OUT/build/bin" -maxdepth 2 -type f \( -name "$name" -o -name "$name.exe" \) | head -n 1)"
  [[ -n "$built" ]] || { echo "$name was not built" >&2; exit 1; }
  cp "$built" "$OUT/$name-$VERSION"
done
echo "$CPU_FLAGS" >"$STAMP"
echo "$PWD/$want"
