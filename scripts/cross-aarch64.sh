#!/bin/sh
# Cross-builds binoc for the Pi's architecture (aarch64-unknown-linux-gnu) and runs the
# streamer's and the protocol's tests under qemu user emulation.
# The compiler: rustup's toolchain with its prebuilt aarch64 std (`rustup target add`), the same
# rustc as the rest of CI; where rustup cannot download it (offline), Debian's Rust (rustc-web,
# with an arm64 std) next to rustup's. Linking uses the cross gcc and Debian's arm64 libraries.
# Usage: scripts/cross-aarch64.sh [test|build]   (default: test)
#   test   build the tests and run them under qemu
#   build  release binaries of pi-streamer and quest-client
set -eu
cd "$(dirname "$0")/.."
mode="${1:-test}"
case "$mode" in
  test|build) ;;
  *) echo "cross-aarch64.sh: unknown mode '$mode' (expected test or build)" >&2; exit 2 ;;
esac
target=aarch64-unknown-linux-gnu

scripts/apt-install.sh libc6:arm64 libstdc++6:arm64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross \
  qemu-user-static libx264-dev:arm64

if rustup target list --installed 2>/dev/null | grep -qx $target || rustup target add $target; then
  echo "aarch64: rustup's $(rustc --version | cut -d' ' -f2)"
else
  echo "aarch64: rustup cannot add $target here; using Debian's Rust and its arm64 std" >&2
  scripts/apt-install.sh rustc-web cargo-web libstd-rust-web-dev:arm64
  # In the environment: a nested cargo (the end-to-end tests' fallback build) uses the same compiler.
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Plain qemu-aarch64-static: with -L /usr/aarch64-linux-gnu the first thread start hangs.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Absolute, and in the environment: BINOC_QUEST_CLIENT below is built from it, and a nested cargo
# (the end-to-end tests' fallback) builds into the same directory.
export CARGO_TARGET_DIR="$PWD/target/cross"
# Without the libavcodec feature (the loopback's faster decoder): that would need Debian's
# libavcodec-dev:arm64 and its ~40 arm64 libraries; the headset decodes with openh264 here. A
# build on the Pi itself has it (scripts/setup.sh installs libavcodec-dev there).
features="--no-default-features --features pi-streamer/x264"
if [ "$mode" = build ]; then
  cargo build --release --locked --target $target $features -p pi-streamer -p quest-client
  file target/cross/$target/release/pi-streamer
else
  # The browser test drives the host's chromium: it ran natively already, and the WebRTC path
  # itself is covered on aarch64 by the str0m-peer tests (tests/webrtc.rs).
  # quest-client is selected for its binary, which the end-to-end tests run as the headset
  # (BINOC_QUEST_CLIENT: built here with the same features as everything else, instead of by
  # the tests for that one package); its CLI tests (tests/cli.rs) come along.
  BINOC_QUEST_CLIENT="$CARGO_TARGET_DIR/$target/debug/quest-client" \
    cargo test --locked --target $target $features -p shared-proto -p pi-streamer -p quest-client -- --skip browser_
fi
