#!/bin/sh
# Measures glass-to-glass through the headset app's desktop window on this machine: the
# release quest-client --desktop runs under Xvfb (Mesa's lavapipe renders), the release
# streamer sends it FRAMES frames per eye, and the streamer prints its table, whose last block
# is glass-to-glass over the displayed frames with its stage breakdown. Also saves a
# screenshot of the window (docs/img/desktop.png by default).
# Usage: scripts/desktop-latency.sh [FRAMES] [SCREENSHOT] [pi-streamer args...]
#   e.g. scripts/desktop-latency.sh 1200 docs/img/desktop.png --size 1280x720 --fps 60
set -eu
cd "$(dirname "$0")/.."
frames="${1:-1200}"
[ $# -gt 0 ] && shift
shot="${1:-docs/img/desktop.png}"
[ $# -gt 0 ] && shift
scripts/setup.sh --browser
command -v xvfb-run >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends xvfb xauth
}
cargo build --release --locked -q -p pi-streamer
cargo build --release --locked -q -p quest-client --features app
port=$((20000 + $$ % 20000))
xvfb-run -a -s "-screen 0 1920x540x24" target/release/quest-client --desktop --unpaired \
  --listen "127.0.0.1:$port" --sessions 1 --view-size 960x540 --screenshot "$shot" &
pid=$!
target/release/pi-streamer --unpaired --peer "127.0.0.1:$port" --frames "$frames" "$@"
wait $pid
