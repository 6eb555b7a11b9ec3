#!/usr/bin/env bash
# The README's model comparison and speed tables, from one command:
#   1. fetches the three models caro can load (cached after the first run) and builds
#      llama.cpp's llama-server and llama-bench (the same-run speed references);
#   2. caro-accuracy: both splits (dev: tuning; test: frozen) through every model at greedy
#      and at caro's default temperature, one table (accuracy with 95% Wilson intervals, per
#      category, load, p50/p90 latency, peak RSS);
#   3. caro-bench on each model, with llama.cpp measured in the same run.
# Extra arguments go to caro-accuracy (for example --limit 20 or --split test for a quick look).
# Takes a few hours on 2 cores (the 0.5B and SmolLM2 answer slowly). Prints Markdown; the load
# average is in each table.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
models=(qwen2.5-coder-1.5b qwen2.5-coder-0.5b smollm2-135m)
scripts/fetch-test-models.sh "${models[@]}" >&2
server="$(scripts/build-llama-server.sh)"
llama_bench="$(scripts/build-llama-server.sh --bench)"
cargo build --release --locked -p caro-bench >&2
dir="${CARO_TEST_MODELS_DIR:-$here/target/models}"
files=()
for m in "${models[@]}"; do
  files+=("$dir/$(sed -n 's/^file = "\(.*\)"$/\1/p' "models/$m.toml")")
done
args=()
for f in "${files[@]}"; do args+=(--model "$f"); done

echo "## Accuracy: dev split ($(wc -l < bench/accuracy/dev.jsonl) items, tuning), test split ($(wc -l < bench/accuracy/test.jsonl) items, frozen)"
echo
echo "\`scripts/model-report.sh\` → \`caro-accuracy ${args[*]##*/} --temperature 0 --temperature 0.7\`"
echo
target/release/caro-accuracy "${args[@]}" --temperature 0 --temperature 0.7 "$@"
for f in "${files[@]}"; do
  echo
  echo "## Speed: ${f##*/}"
  echo
  target/release/caro-bench --model "$f" --llama-server "$server" --llama-bench "$llama_bench"
done
