#!/bin/sh
# Installs the system packages binoc builds and tests with, on Debian/Ubuntu. Idempotent:
# does nothing when everything is present. Called by the build (through scripts/nasm and
# pi-streamer's build.rs) and by scripts/test.sh, so a fresh machine with only Rust needs no
# manual step. With --browser it also installs what the WebRTC browser test drives: Debian's
# chromium and the test's npm packages (playwright-core, from package-lock.json); and what the
# headset app's offscreen test renders with: Mesa's lavapipe (a CPU Vulkan driver) and the
# Vulkan loader.
set -e
cd "$(dirname "$0")/.."
browser=""
plots=""
libav=""
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    # --plots: gnuplot and python3 for the benchmark plots (scripts/plot-timeline.sh).
    --plots) plots=1 ;;
    # --libav: libavcodec's headers and library, for the `libavcodec` decoder feature.
    --libav) libav=1 ;;
    *) echo "binoc setup: unknown option $arg (expected --browser, --plots or --libav)" >&2; exit 2 ;;
  esac
done
need=""
command -v nasm >/dev/null 2>&1 || need="$need nasm"
command -v flock >/dev/null 2>&1 || need="$need util-linux"
[ -e /usr/include/x264.h ] || need="$need libx264-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
if [ -n "$browser" ]; then
  [ -x /usr/bin/chromium ] || need="$need chromium"
  command -v node >/dev/null 2>&1 || need="$need nodejs npm"
  ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need="$need mesa-vulkan-drivers"
  ls /usr/lib/*/libvulkan.so.1 >/dev/null 2>&1 || need="$need libvulkan1"
fi
if [ -n "$libav" ]; then
  [ -e /usr/include/x86_64-linux-gnu/libavcodec/avcodec.h ] || [ -e /usr/include/libavcodec/avcodec.h ] \
    || [ -e "/usr/include/$(uname -m)-linux-gnu/libavcodec/avcodec.h" ] || need="$need libavcodec-dev"
fi
if [ -n "$plots" ]; then
  command -v gnuplot >/dev/null 2>&1 || need="$need gnuplot-nox"
  command -v python3 >/dev/null 2>&1 || need="$need python3"
fi
npm_ci() {
  if [ -n "$browser" ] && [ ! -d pi-streamer/tests/browser/node_modules/playwright-core ]; then
    echo "binoc setup: npm ci in pi-streamer/tests/browser" >&2
    (cd pi-streamer/tests/browser && npm ci --no-audit --no-fund >&2)
  fi
}
if [ -z "$need" ]; then npm_ci; exit 0; fi
echo "binoc setup: installing$need" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "binoc setup: need root (or sudo) to install:$need" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $need >&2
npm_ci
