#!/usr/bin/env bash
# Build the .deb from target/release/caro, install it with dpkg, use it, and remove it again.
# Needs root (or sudo); skipped with a note otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if sudo -n true 2>/dev/null; then sudo="sudo"; else echo "test-deb: skipped (needs root or passwordless sudo)"; exit 0; fi
fi
if dpkg -s caro >/dev/null 2>&1; then
  echo "test-deb: skipped (a caro package is already installed here; not touching it)"
  exit 0
fi
deb="$(scripts/package-release.sh "$(uname -m)-unknown-linux-gnu" deb)"
trap '$sudo dpkg -r caro >/dev/null 2>&1 || true' EXIT
$sudo dpkg -i "$deb"
test "$(command -v caro)" = /usr/bin/caro
caro --version | grep -q '^caro '
caro model list | grep -q qwen2.5-coder-1.5b
# Blocked commands exit 8.
if caro check -- 'rm -rf /' >/dev/null; then echo "test-deb: check did not block" >&2; exit 1; else test $? -eq 8; fi
/usr/share/caro/installers/download-model.sh --list | grep -q smollm2-135m
$sudo dpkg -r caro
test ! -e /usr/bin/caro
trap - EXIT
echo "test-deb: $deb installs, runs and uninstalls"
