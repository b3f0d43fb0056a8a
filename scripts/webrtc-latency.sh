#!/bin/sh
# Measures the WebRTC path in Debian's chromium on this machine: the release streamer serves
# the viewer page on 127.0.0.1, headless chromium watches it for HOLD seconds after it has
# decoded 100 frames per eye, and the streamer prints each viewer's latency table
# (glass-to-glass = expected display − capture, from the page's markers).
# Usage: scripts/webrtc-latency.sh [HOLD_SECONDS] [pi-streamer args...]
#   e.g. scripts/webrtc-latency.sh 20 --size 1280x720 --fps 60
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
hold="${1:-20}"
[ $# -gt 0 ] && shift
scripts/setup.sh --browser
cargo build --release --locked -q -p pi-streamer
log=$(mktemp)
target/release/pi-streamer --transport webrtc --listen 127.0.0.1:0 "$@" 2>"$log" &
pid=$!
url=$(serving_url "$log")
[ -n "$url" ] || { cat "$log"; kill $pid; exit 1; }
(cd pi-streamer/tests/browser && node view.mjs "$url" --hold-s "$hold" --timeout-s 60 >/dev/null)
kill -INT $pid
wait $pid
rm -f "$log"
