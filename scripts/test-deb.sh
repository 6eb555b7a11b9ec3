#!/usr/bin/env bash
# Install a caro .deb with dpkg, use it, and remove it again.
#   scripts/test-deb.sh       the CLI package (scripts/package-release.sh ... deb)
#   scripts/test-deb.sh app   the tray app's bundle with the CLI beside it (scripts/bundle-tray.sh)
# Needs root (or sudo); skipped with a note otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
what="${1:-cli}"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if sudo -n true 2>/dev/null; then sudo="sudo"; else echo "test-deb: skipped (needs root or passwordless sudo)"; exit 0; fi
fi
if dpkg -s caro >/dev/null 2>&1; then
  echo "test-deb: skipped (a caro package is already installed here; not touching it)"
  exit 0
fi
if [[ "$what" == app ]]; then
  bundles="$(scripts/bundle-tray.sh deb,rpm)"
  deb="$(grep '\.deb$' <<<"$bundles")"
  rpm="$(grep '\.rpm$' <<<"$bundles")"
  # An RPM starts with its lead magic; rpm(8) is not on Debian, so check the bytes.
  [[ "$(head -c4 "$rpm" | od -An -tx1 | tr -d ' \n')" == edabeedb ]] || { echo "test-deb: $rpm is not an RPM" >&2; exit 1; }
else
  deb="$(scripts/package-release.sh "$(uname -m)-unknown-linux-gnu" deb)"
fi
trap '$sudo dpkg -r caro >/dev/null 2>&1 || true' EXIT
$sudo dpkg -i "$deb"
test "$(command -v caro)" = /usr/bin/caro
caro --version | grep -q '^caro '
caro model list | grep -q qwen2.5-coder-1.5b
# Blocked commands exit 8.
if caro check -- 'rm -rf /' >/dev/null; then echo "test-deb: check did not block" >&2; exit 1; else test $? -eq 8; fi
/usr/share/caro/installers/download-model.sh --list | grep -q smollm2-135m
if [[ "$what" != app ]]; then
  # Tab completion: bash-completion's loader finds the script, and it registers `caro`.
  bash -c 'source /usr/share/bash-completion/completions/caro && complete -p caro' | grep -q caro
  test -s /usr/share/zsh/vendor-completions/_caro
  test -s /usr/share/fish/vendor_completions.d/caro.fish
fi
if [[ "$what" == app ]]; then
  test -x /usr/bin/caro-tray
  test -f /usr/share/applications/caro.desktop
  test -f /usr/share/caro/models/qwen2.5-coder-1.5b.toml
  # Every library the app links is there (dpkg installed its Depends).
  if ldd /usr/bin/caro-tray | grep -q 'not found'; then ldd /usr/bin/caro-tray >&2; exit 1; fi
fi
$sudo dpkg -r caro
test ! -e /usr/bin/caro
trap - EXIT
echo "test-deb: $deb installs, runs and uninstalls"
