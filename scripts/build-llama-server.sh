#!/usr/bin/env bash
# Builds llama.cpp's llama-server (an OpenAI-compatible server) for the vLLM backend's
# real-server test. llama.cpp's source ships inside the llama-cpp-python sdist on PyPI, the
# one package index these machines reach. The binary is cached: reruns cost nothing.
#
#   scripts/build-llama-server.sh            # prints the path of the binary
#
# Needs cmake and a C++ compiler (.ci/run installs cmake).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
OUT=target/llama-server
BIN="$OUT/llama-server-$VERSION"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
command -v cmake >/dev/null || { echo "cmake is required (apt-get install cmake)" >&2; exit 1; }
PY=${PY:-python3}
mkdir -p "$OUT"
SDIST="$OUT/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]] || ! echo "$SHA256  $SDIST" | sha256sum -c --quiet 2>/dev/null; then
  echo "downloading llama-cpp-python $VERSION sdist (76 MB) …" >&2
  # The sdist's link comes from the same simple index pip uses (PIP_INDEX_URL if set), so
  # the user's pip configuration and proxy apply. `pip download --no-binary` would build the
  # package's metadata, and its build tools from source, just to fetch the file.
  "$PY" - "$VERSION" "$SDIST" <<'PYEOF'
import os, re, sys, urllib.parse, urllib.request
version, dest = sys.argv[1], sys.argv[2]
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/"
page_url = urllib.parse.urljoin(index, "llama-cpp-python/")
html = urllib.request.urlopen(page_url, timeout=60).read().decode()
name = f"llama_cpp_python-{version}.tar.gz"
links = [h for h in re.findall(r'href="([^"]+)"', html) if name in h]
if not links:
    sys.exit(f"{name} is not on {page_url}")
url = urllib.parse.urljoin(page_url, links[0].replace("&amp;", "&")).split("#")[0]
with urllib.request.urlopen(url, timeout=600) as r, open(dest + ".part", "wb") as f:
    while chunk := r.read(1 << 20):
        f.write(chunk)
os.replace(dest + ".part", dest)
PYEOF
  echo "$SHA256  $SDIST" | sha256sum -c --quiet || { echo "checksum mismatch for $SDIST" >&2; rm -f "$SDIST"; exit 1; }
fi
SRC="$OUT/src-$VERSION"
if [[ ! -d "$SRC" ]]; then
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  tar -xzf "$SDIST" -C "$SRC.tmp" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  mv "$SRC.tmp/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC" && rm -rf "$SRC.tmp"
fi
echo "building llama-server (a few minutes on 2 cores) …" >&2
cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$OUT/build" --target llama-server -j "$(nproc)" >&2
cp "$OUT/build/bin/llama-server" "$BIN"
echo "$BIN"
