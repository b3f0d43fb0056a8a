#!/bin/sh
# Runs every check binoc has: formatting, lints, all tests, and a short fuzzing smoke run.
# Installs what it needs first (scripts/setup.sh). Usage: scripts/test.sh
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --browser

echo "== cargo fmt --check"
cargo fmt --all -- --check

# The Android type-check and the aarch64 test build run next to the native build, each with its
# own compiler (Debian's Rust) and target directory: one build on 2 cores leaves a core idle
# through long stretches (Bevy's big crates, linking), and the three builds one after another
# took ~46 of CI's ~53 minutes. Their packages are installed first, one apt at a time; their
# output goes to a log, shown when the leg ends (in full if it fails).
scripts/android-check.sh --install-only
scripts/cross-aarch64.sh install
mkdir -p target
legs=""
start_leg() { # name, log, command...
  name="$1" log="$2"
  shift 2
  echo "== $name: started in the background (log: $log)"
  setsid "$@" >"$log" 2>&1 &
  legs="$legs $!"
  eval "${name}_pid=$!"
}
finish_leg() { # name, log
  eval "pid=\$${1}_pid"
  if wait "$pid"; then
    echo "== $1: done"; tail -n 3 "$2"
  else
    cat "$2"; echo "== $1: FAILED"; exit 1
  fi
}
# A failure anywhere stops the background legs too (setsid: each leg is its own process group).
trap 'for p in $legs; do kill -- -"$p" 2>/dev/null || true; done' EXIT
start_leg android target/android-check.log scripts/android-check.sh
start_leg aarch64_build target/cross-build.log scripts/cross-aarch64.sh build-tests
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  start_leg fuzz_tool target/cargo-fuzz-install.log cargo install cargo-fuzz --locked --version 0.13.2
fi

# Lints and tests in one build. clippy-driver compiles the workspace's own crates (what
# `cargo clippy` does, here with real code generation; -D warnings through CLIPPY_ARGS, cargo
# clippy's own channel), so every target — the headset app (Bevy, feature client-app) and the
# benches included — is linted and built once instead of checked and then built again: that
# second pass over Bevy would cost ~8 min of CI on 2 cores.
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
lint_build() {
  RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo "$@"
}
echo "== build and clippy -D warnings: every target, every crate, with the headset app"
lint_build test --workspace --all-targets --locked --features pi-streamer/client-app --no-run

echo "== Android (the Quest): type-check and lint the APK library (headset app, Bevy, OpenXR, MediaCodec)"
finish_leg android target/android-check.log
echo "== aarch64 (the Pi): cross-build of the tests"
finish_leg aarch64_build target/cross-build.log

echo "== cargo test"
lint_build test --workspace --locked --features pi-streamer/client-app

echo "== fuzz smoke (${FUZZ_SECONDS:-60} s; the 10-minute run is in docs/performance.md)"
[ -z "${fuzz_tool_pid:-}" ] || finish_leg fuzz_tool target/cargo-fuzz-install.log
mkdir -p target/fuzz-corpus
if ! (cd shared-proto && RUSTC_BOOTSTRAP=1 cargo fuzz run parse ../target/fuzz-corpus -- \
  -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -print_final_stats=1 >../target/fuzz-smoke.log 2>&1); then
  tail -n 60 target/fuzz-smoke.log
  echo "fuzz smoke: FAILED (crash input under shared-proto/fuzz/artifacts/)"
  exit 1
fi
grep -E "^Done|stat::(number_of_executed_units|peak_rss_mb)" target/fuzz-smoke.log
echo "fuzz smoke: clean"

echo "== aarch64 (the Pi): the tests under qemu"
scripts/cross-aarch64.sh test
