#!/usr/bin/env bash
# need-packages.sh [PACKAGE...] — makes sure these Debian packages are installed: missing ones
# are installed with apt-get (through sudo when not root); where that cannot be done, it stops
# and prints the exact command to run. Without arguments: the tools the tests run, for
# scripts/test.sh and .ci/run, so a fresh Debian with only rustup and a C compiler needs no
# step the README does not name:
#   bubblewrap is the accuracy harness's sandbox; git ... procps and python3 are what its
#   references and fixture setup run (python3 from /usr: the sandbox sees only /usr, so a
#   pyenv python3 on PATH does not count); zsh and fish run the CLI's completion scripts, and
#   tmux drives bash, zsh and fish through `caro shell-init`'s key binding and the CLI's loop;
#   xvfb and xclip give the loop's Copy a real X clipboard to put the command on.
set -euo pipefail
test_tools=(bubblewrap git zip unzip jq bzip2 xz-utils bc file util-linux procps python3 zsh fish tmux xvfb xclip)
[[ $# -gt 0 ]] || set -- "${test_tools[@]}"
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
cmd="${sudo[*]}${sudo:+ }apt-get install -y ${missing[*]}"
if command -v apt-get >/dev/null && { [[ ${#sudo[@]} -eq 0 ]] || sudo -n true 2>/dev/null; }; then
  echo "installing ${missing[*]} (needed by the tests) …" >&2
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null && exit 0
fi
echo "the tests need: ${missing[*]}. Install them and rerun:" >&2
echo "  $cmd" >&2
exit 1
