#!/usr/bin/env bash
# check-windows.sh — clippy (-D warnings) on every target of caro-safety, caro-engine, caro-core, caro-cli
# and caro-bench for x86_64-pc-windows-gnu, from Linux: proves the code and its tests compile
# for Windows (cfg guards, unused imports) without a Windows machine. It runs nothing there;
# the tray app is left out (its webview stack does not cross-compile from here).
# Needs the target's std (rustup target add) and mingw-w64 for the C parts of dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
bash scripts/need-packages.sh gcc-mingw-w64-x86-64
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/windows-check" \
  cargo clippy --locked --target x86_64-pc-windows-gnu \
  -p caro-safety -p caro-engine -p caro-core -p caro-cli -p caro-bench --all-targets -- -D warnings
echo "windows (x86_64-pc-windows-gnu): clippy clean on all targets" >&2
