#!/bin/sh
# Runs every check binoc has: formatting, lints, all tests, and a short fuzzing smoke run.
# Installs what it needs first (scripts/setup.sh). Usage: scripts/test.sh
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --browser --libav

echo "== cargo fmt --check"
cargo fmt --all -- --check

# Lints and tests in one build. clippy-driver compiles the workspace's own crates (what
# `cargo clippy` does, here with real code generation; -D warnings through CLIPPY_ARGS, cargo
# clippy's own channel), so every target — the headset app (Bevy, feature quest-client/app) and the
# benches included — is linted and built once instead of checked and then built again: that
# second pass over Bevy would cost ~8 min of CI on 2 cores.
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
lint_build() {
  RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo "$@"
}
echo "== build and clippy -D warnings: every target, every crate, with the headset app"
lint_build test --workspace --all-targets --locked --features quest-client/app --no-run

echo "== cargo test"
# The end-to-end tests run the quest-client this command builds (it selects quest-client too)
# instead of building it again for that one package (other features, ~60 crates recompiled).
BINOC_QUEST_CLIENT="${CARGO_TARGET_DIR:-$PWD/target}/debug/quest-client"
export BINOC_QUEST_CLIENT
lint_build test --workspace --locked --features quest-client/app

echo "== fuzz smoke (parse ${FUZZ_SECONDS:-60} s, control/pairing/browser ${FUZZ_SHORT_SECONDS:-20} s each; the long runs: docs/security.md)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# fuzz TARGET SECONDS: from the committed seeds (if any) and the corpus kept under target/.
fuzz() {
  corpus=target/fuzz-corpus-$1
  [ "$1" = parse ] && corpus=target/fuzz-corpus
  mkdir -p "$corpus"
  seeds=""
  [ -d "shared-proto/fuzz/seeds/$1" ] && seeds="seeds/$1"
  # $seeds unquoted on purpose: absent, it is no argument at all.
  if ! (cd shared-proto/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . "$1" "../../$corpus" $seeds -- \
    -max_total_time="$2" -rss_limit_mb=2048 -print_final_stats=1 >"../../target/fuzz-smoke-$1.log" 2>&1); then
    tail -n 60 "target/fuzz-smoke-$1.log"
    echo "fuzz smoke $1: FAILED (crash input under shared-proto/fuzz/artifacts/$1/)"
    exit 1
  fi
  grep -E "^Done|stat::(number_of_executed_units|peak_rss_mb)" "target/fuzz-smoke-$1.log"
  echo "fuzz smoke $1: clean"
}
fuzz parse "${FUZZ_SECONDS:-60}"
for t in control pairing browser; do
  fuzz "$t" "${FUZZ_SHORT_SECONDS:-20}"
done

echo "== Android (the Quest): type-check and lint the APK library (headset app, Bevy, OpenXR, MediaCodec)"
scripts/android-check.sh

echo "== aarch64 (the Pi): cross-build and run the tests under qemu"
scripts/cross-aarch64.sh test
