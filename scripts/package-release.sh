#!/usr/bin/env bash
# Pack a built caro (target/release/caro) with what it needs after install: the model manifests
# and the model download scripts. The model itself is never packed; caro fetches it on first use.
#
# Usage: scripts/package-release.sh TARGET tar.gz|zip|dmg|deb [VERSION]
# Output: dist/caro-VERSION-TARGET.EXT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
target="${1:?target triple}" pack="${2:?tar.gz, zip, dmg or deb}"
version="${3:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}"
version="${version#v}"
exe=target/release/caro
[[ -f "$exe" ]] || exe=target/release/caro.exe
[[ -f "$exe" ]] || { echo "package-release: build caro first (cargo build --release -p caro-cli)" >&2; exit 1; }
name="caro-$version-$target"
rm -rf "dist/$name" && mkdir -p "dist/$name"
stage="dist/$name"
# Release builds keep line tables for backtraces; shipped binaries drop them (87 MB -> 19 MB).
bin="dist/.caro-stripped${exe##*/caro}"
cp "$exe" "$bin"
if command -v strip >/dev/null; then
  case "$(uname -s)" in Darwin) strip -x "$bin" ;; *) strip "$bin" ;; esac
fi
exe="$bin"

if [[ "$pack" == deb ]]; then
  # A Debian package of the CLI: /usr/bin/caro plus /usr/share/caro/{models,installers} and
  # the shells' completion scripts.
  arch="$(dpkg --print-architecture)"
  install -Dm0755 "$exe" "$stage/usr/bin/caro"
  # Tab completion where each shell's Debian package looks (bash-completion, zsh, fish).
  comp="$stage/usr/share"
  mkdir -p "$comp/bash-completion/completions" "$comp/zsh/vendor-completions" "$comp/fish/vendor_completions.d"
  "$exe" completions bash >"$comp/bash-completion/completions/caro"
  "$exe" completions zsh >"$comp/zsh/vendor-completions/_caro"
  "$exe" completions fish >"$comp/fish/vendor_completions.d/caro.fish"
  rm -f "$exe"
  install -Dm0644 -t "$stage/usr/share/caro/models" models/*.toml models/README.md
  install -Dm0755 -t "$stage/usr/share/caro/installers" installers/download-model.sh
  install -Dm0644 -t "$stage/usr/share/doc/caro" README.md docs/USER_GUIDE.md docs/RELEASE.md
  mkdir -p "$stage/DEBIAN"
  cat >"$stage/DEBIAN/control" <<CONTROL
Package: caro
Version: $version
Architecture: $arch
Maintainer: caro developers <caro@users.noreply.github.com>
Section: utils
Priority: optional
Depends: libc6
Recommends: python3-pip, curl
Homepage: https://github.com/caro-sh/caro
Description: plain English to shell commands, rated for safety, on your own machine
 caro turns a request in plain words into one shell command with a small coding model that
 runs locally (Qwen2.5-Coder-1.5B, downloaded once on first use), and rates how dangerous the
 command is before you copy or run it.
CONTROL
  cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
echo "caro installed. Its model (1.1 GB) downloads on first use, or now with: caro model pull"
POSTINST
  chmod 0755 "$stage/DEBIAN/postinst"
  dpkg-deb --root-owner-group --build "$stage" "dist/$name.deb" >/dev/null
  rm -rf "$stage"
  echo "dist/$name.deb"
  exit 0
fi

cp "$exe" "$stage/caro${exe##*/.caro-stripped}"
rm -f "$exe"
mkdir -p "$stage/models" "$stage/installers" "$stage/docs"
cp models/*.toml models/README.md "$stage/models/"
cp installers/download-model.sh installers/download-model.ps1 "$stage/installers/"
cp README.md "$stage/"
cp docs/USER_GUIDE.md docs/RELEASE.md "$stage/docs/"
case "$pack" in
  tar.gz) tar -C dist -czf "dist/$name.tar.gz" "$name" ;;
  zip) (cd dist && 7z a -tzip "$name.zip" "$name" >/dev/null) ;;
  dmg) hdiutil create -volname "caro $version" -srcfolder "$stage" -ov -format UDZO "dist/$name.dmg" >/dev/null ;;
  *) echo "package-release: unknown pack '$pack'" >&2; exit 1 ;;
esac
rm -rf "$stage"
echo "dist/$name.$pack"
