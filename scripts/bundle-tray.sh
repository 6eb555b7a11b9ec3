#!/usr/bin/env bash
# Bundle the tray app with the caro CLI beside it, using Tauri's own bundler (the npm
# @tauri-apps/cli, which ships a prebuilt binary): .deb and .rpm on Linux, .dmg on macOS, .msi on
# Windows. The CLI goes in as an external binary, so the .deb/.rpm install /usr/bin/caro next to
# /usr/bin/caro-tray. Binaries are stripped before bundling (release builds keep line tables).
#
# Usage: scripts/bundle-tray.sh [BUNDLES]   (default: deb,rpm on Linux, dmg on macOS, msi on Windows)
# Output: the bundle paths, one per line, under target/release/bundle/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
log() { printf 'bundle-tray: %s\n' "$*" >&2; }
cli_version=2.12.5
case "$(uname -s)" in
  Linux) default=deb,rpm ;;
  Darwin) default=dmg ;;
  *) default=msi ;;
esac
bundles="${1:-$default}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
exe=""; [[ "$triple" == *windows* ]] && exe=.exe

tools=target/tools/npm
tauri="$here/$tools/node_modules/.bin/tauri"
if [[ ! -x "$tauri" ]] || [[ "$("$tauri" --version 2>/dev/null)" != "tauri-cli $cli_version" ]]; then
  log "installing @tauri-apps/cli $cli_version into $tools"
  mkdir -p "$tools"
  (cd "$tools" && npm install --no-audit --no-fund --silent "@tauri-apps/cli@$cli_version" >&2)
fi

cargo build --release --locked -p caro-cli >&2
mkdir -p target/bundle-bin
cp "target/release/caro$exe" "target/bundle-bin/caro-$triple$exe"
strip_bin() { command -v strip >/dev/null || return 0; case "$(uname -s)" in Darwin) strip -x "$1" ;; *) strip "$1" ;; esac; }
strip_bin "target/bundle-bin/caro-$triple$exe"

cd src-tauri
# Build, strip the app, then bundle what was built.
"$tauri" build --ci --no-bundle --config tauri.bundle.json >&2
strip_bin "../target/release/caro-tray$exe"
"$tauri" bundle --ci --bundles "$bundles" --config tauri.bundle.json >&2
cd ..
find target/release/bundle -maxdepth 2 -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.dmg' -o -name '*.msi' \) \
  -newer "target/bundle-bin/caro-$triple$exe" | sort
