#!/bin/sh
# Type-checks and lints the Quest APK's native library for aarch64-linux-android with
# -D warnings: android/ (binoc-quest, the NativeActivity entry point) and everything it runs —
# quest-client's headset app (Bevy + bevy_mod_openxr, feature `app`), its quad layers and its
# MediaCodec path. No Android NDK here, so nothing links or runs; the Linux cross gcc stands in
# for the NDK's compilers so build scripts of C dependencies can run.
#
# The compiler: rustup's toolchain with its prebuilt Android std (`rustup target add`), the
# same rustc and clippy as the rest of CI. Where rustup cannot download it (offline), Debian's
# Rust builds the Android std from source instead (-Zbuild-std, rust-web-src) — measured cold
# on 2 cores: 6 min with rustup's std, 12.6 min with -Zbuild-std (docs/performance.md).
# Usage: scripts/android-check.sh
set -eu
cd "$(dirname "$0")/.."
[ $# -eq 0 ] || { echo "android-check.sh takes no arguments (got: $*)" >&2; exit 2; }
target=aarch64-linux-android

scripts/apt-install.sh gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross

export CC_aarch64_linux_android=aarch64-linux-gnu-gcc CXX_aarch64_linux_android=aarch64-linux-gnu-g++
export AR_aarch64_linux_android=aarch64-linux-gnu-ar
export CARGO_TARGET_DIR="$PWD/target/android"
if rustup target list --installed 2>/dev/null | grep -qx $target || rustup target add $target; then
  compiler="rustup's $(rustc --version | cut -d' ' -f2)"
  cargo clippy --locked --target $target -p binoc-quest --lib -- -D warnings
else
  echo "android check: rustup cannot add $target here; building its std with Debian's Rust" >&2
  scripts/apt-install.sh rustc-web cargo-web rust-web-src rust-web-clippy
  compiler="Debian's $(/usr/bin/rustc --version | cut -d' ' -f2), -Zbuild-std"
  RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc PATH="/usr/bin:$PATH" CARGO_TARGET_DIR="$PWD/target/android-build-std" \
    /usr/bin/cargo-clippy clippy --locked -Zbuild-std=std,panic_abort --target $target \
    -p binoc-quest --lib -- -D warnings
fi
echo "android check ($compiler): the APK's library (binoc-quest: quest-client's app, Bevy, OpenXR, quad layers, MediaCodec) type-checks and lints clean for $target"
