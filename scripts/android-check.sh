#!/bin/sh
# Type-checks and lints the Quest APK's native library for aarch64-linux-android with
# -D warnings: android/ (binoc-quest, the NativeActivity entry point) and everything it runs —
# quest-client's headset app (Bevy + bevy_mod_openxr, feature `app`) and its MediaCodec path. No Android NDK here, so nothing links or runs: Debian's Rust
# builds the Android std from source (-Zbuild-std, rust-web-src), and the Linux cross gcc
# stands in for the NDK's compilers so build scripts of C dependencies can run.
# Usage: scripts/android-check.sh [--install-only]
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
  ""|--install-only) ;;
  *) echo "android-check.sh: unknown argument '$1' (expected nothing or --install-only)" >&2; exit 2 ;;
esac

need=""
for p in rustc-web cargo-web rust-web-src rust-web-clippy gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
         libc6-dev-arm64-cross; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need
fi
[ "${1:-}" = --install-only ] && exit 0

export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc PATH="/usr/bin:$PATH"
export CC_aarch64_linux_android=aarch64-linux-gnu-gcc CXX_aarch64_linux_android=aarch64-linux-gnu-g++
export AR_aarch64_linux_android=aarch64-linux-gnu-ar
export CARGO_TARGET_DIR="$PWD/target/android"
/usr/bin/cargo-clippy clippy --locked -Zbuild-std=std,panic_abort --target aarch64-linux-android \
  -p binoc-quest --lib -- -D warnings
echo "android check: the APK's library (binoc-quest: quest-client's app, Bevy, OpenXR, MediaCodec) type-checks and lints clean for aarch64-linux-android"
