#!/usr/bin/env bash
# End-to-end time of `caro "…"` through a warm `caro serve` daemon against a cold in-process
# run (a new process that loads the model), on the same prompts, in one run. Prints a table.
# Needs the default model in caro's cache (`caro model pull`) and a release build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$here/target/release/caro"
[[ -x "$bin" ]] || { echo "build first: cargo build --release -p caro-cli" >&2; exit 1; }
sock_dir="$(mktemp -d)"
export CARO_SOCKET="$sock_dir/caro.sock"
"$bin" serve --idle-unload 0 >/dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$sock_dir"' EXIT
for _ in $(seq 100); do [[ -S "$CARO_SOCKET" ]] && break; sleep 0.1; done
"$bin" "list files" >/dev/null 2>&1 || true   # load the model once
now() { date +%s.%N; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
echo
echo "| prompt | warm daemon (s) | cold in-process (s) | cold / warm |"
echo "|---|---|---|---|"
for p in "list all files larger than 100MB" "show disk usage of this folder" \
         "count lines in every python file" "find files modified today" \
         "show the 10 biggest directories"; do
  s=$(now); "$bin" "$p" >/dev/null 2>&1 || true; w=$(echo "$(now) - $s" | bc)
  s=$(now); "$bin" --no-daemon "$p" >/dev/null 2>&1 || true; c=$(echo "$(now) - $s" | bc)
  printf '| %s | %.2f | %.2f | %.1fx |\n' "$p" "$w" "$c" "$(echo "$c / $w" | bc -l)"
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
