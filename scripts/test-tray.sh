#!/usr/bin/env bash
# The tray app in a real webview: build it, start Xvfb, D-Bus and tauri-driver, run the
# WebDriver end-to-end test, fire the global hotkey with xdotool, and take a screenshot of the
# popup with a generated command (target/e2e/popup.png).
#
# Needs (Debian): libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
#                 xvfb dbus-x11 xdotool xclip webkit2gtk-driver imagemagick
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
log() { printf 'test-tray: %s\n' "$*" >&2; }
out="$here/target/e2e"
mkdir -p "$out"

scripts/fetch-test-models.sh qwen2.5-coder-1.5b
scripts/fetch-test-models.sh smollm2-135m   # served by the first-launch download test
# The same build as scripts/test.sh (it makes release/caro-tray and caro under the target
# folder): building only these two packages resolves dependency features differently and
# rebuilds caro-core and everything under it, minutes on two cores.
# Without cross-crate LTO, as scripts/test.sh builds (see there).
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-false}"
cargo test --release --locked --workspace --no-run
# Where that build put its binaries: CARGO_TARGET_DIR moves them out of target/.
bin="$(cd "${CARGO_TARGET_DIR:-$here/target}" && pwd)/release"
export CARO_E2E_APP="${CARO_E2E_APP:-$bin/caro-tray}"

driver_version=2.1.0
driver="target/tools/bin/tauri-driver"
if [[ ! -x "$driver" ]] || ! grep -qs "tauri-driver $driver_version" target/tools/.crates.toml; then
  log "installing tauri-driver $driver_version into target/tools"
  cargo install --locked --quiet --root target/tools tauri-driver --version "$driver_version"
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "${DBUS_SESSION_BUS_PID:-}" ]] && kill "$DBUS_SESSION_BUS_PID" 2>/dev/null || true
}
trap cleanup EXIT

display=":${CARO_E2E_DISPLAY:-97}"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY="$display"
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
eval "$(dbus-launch --sh-syntax)"

# The app under test: its own config, socket, history and model path, never the user's.
work="$(mktemp -d)"
export CARO_CONFIG="$work/config.toml" CARO_SOCKET="$work/caro.sock" XDG_DATA_HOME="$work/data"
printf 'version = 1\n[embedded]\nmodel_path = "%s"\ntemperature = 0.0\n[tray]\nhotkey = "Control+Shift+Space"\n' \
  "$here/target/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" >"$CARO_CONFIG"

# The app starts with its popup hidden; under WebDriver it must show it at once.
# The app runs with a scratch home: Run starts there, and the popup's safety test checks that
# its files survive. Only the app sees it; cargo keeps the real HOME.
export CARO_E2E_HOME="$work/home"
mkdir -p "$CARO_E2E_HOME/proj"
printf mine >"$CARO_E2E_HOME/notes.txt"
HOME="$CARO_E2E_HOME" CARO_TRAY_SHOW=1 "$driver" --port 4444 --native-port 4445 >"$out/tauri-driver.log" 2>&1 &
driver_pid=$!
pids+=($driver_pid)
for _ in $(seq 100); do curl -s localhost:4444/status >/dev/null 2>&1 && break; sleep 0.1; done

# Screenshot once the test says the popup shows a generated command. WebDriver's own
# screenshot can hang under Xvfb, so ImageMagick grabs the whole screen instead.
ready="$out/ready"
rm -f "$ready" "$out/popup.png"
(
  for _ in $(seq 1800); do [[ -f "$ready" ]] && break; sleep 0.2; done
  [[ -f "$ready" ]] && import -window root "$out/popup.png"
) &
shot=$!

log "end-to-end test (WebDriver)"
CARO_E2E_WEBDRIVER=http://localhost:4444 CARO_E2E_READY="$ready" \
  timeout 900 cargo test --release --locked -p caro-tray --test e2e -- --ignored --nocapture \
  --skip first_launch --test-threads=1
wait "$shot" || true
[[ -s "$out/popup.png" ]] || { log "no screenshot was taken"; exit 1; }
log "screenshot: $out/popup.png"

# The WebDriver session's app must be gone before a fresh one starts hidden.
kill "$driver_pid" 2>/dev/null || true
pkill -x WebKitWebDriver 2>/dev/null || true
pkill -x caro-tray 2>/dev/null || true
for _ in $(seq 50); do pgrep -x caro-tray >/dev/null || break; sleep 0.1; done

log "global hotkey: start the app, press Ctrl+Shift+Space, expect the popup"
"$bin/caro-tray" >"$out/app.log" 2>&1 &
app=$!
pids+=($app)
for _ in $(seq 100); do [[ -S "$CARO_SOCKET" ]] && break; sleep 0.1; done
[[ -S "$CARO_SOCKET" ]] || { log "the app never opened its socket"; cat "$out/app.log" >&2; exit 1; }
visible() { xdotool search --onlyvisible --name '^caro$' >/dev/null 2>&1; }
if visible; then log "the popup was visible before the hotkey"; exit 1; fi
# The hotkey is registered on the app's own X11 thread just after start-up; retry the press
# a few times rather than guess how long that takes.
for _ in 1 2 3 4 5; do
  sleep 1
  xdotool key ctrl+shift+space
  for _ in $(seq 20); do visible && break 2; sleep 0.1; done
done
visible || { log "the hotkey did not open the popup"; cat "$out/app.log" >&2; exit 1; }
log "popup visible after the hotkey"

log "the CLI answers through the app's socket"
served="$("$bin/caro" --json "show disk usage of this folder" | sed -n 's/.*"served_by": "\(.*\)".*/\1/p')"
[[ "$served" == daemon ]] || { log "served_by=$served, expected daemon"; exit 1; }
kill "$app" 2>/dev/null || true
for _ in $(seq 50); do pgrep -x caro-tray >/dev/null || break; sleep 0.1; done

log "first launch: an empty cache, the download window, Cancel, Retry"
first="$(mktemp -d)"
hub_port=$((4460 + RANDOM % 400))
first_env=(CARO_CACHE_DIR="$first/cache" CARO_MODEL=smollm2-135m HF_ENDPOINT="http://127.0.0.1:$hub_port"
  CARO_CONFIG="$first/config.toml" CARO_SOCKET="$first/caro.sock" XDG_DATA_HOME="$first/data")
env -u CARO_TRAY_SHOW "${first_env[@]}" "$driver" --port 4446 --native-port 4447 \
  >"$out/tauri-driver-first.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s localhost:4446/status >/dev/null 2>&1 && break; sleep 0.1; done
env "${first_env[@]}" CARO_E2E_HUB="127.0.0.1:$hub_port" CARO_E2E_WEBDRIVER=http://localhost:4446 \
  timeout 600 cargo test --release --locked -p caro-tray --test e2e -- --ignored --nocapture \
  --exact first_launch_downloads_the_model_with_progress_and_cancel
pkill -x WebKitWebDriver 2>/dev/null || true
pkill -x caro-tray 2>/dev/null || true
rm -rf "$first"
log "ok"
