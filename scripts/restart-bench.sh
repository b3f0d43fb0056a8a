#!/bin/sh
# Headset restarts against one running streamer: N times, a fresh headless quest-client is
# started (after the previous one was killed), and the time from its start to its first decoded
# frame of both eyes is printed (it exits then: --frames 1). Release builds, 2×1280x720@60.
# Usage: scripts/restart-bench.sh [N]
set -eu
cd "$(dirname "$0")/.."
n="${1:-20}"
cargo build --release --locked -q -p pi-streamer -p quest-client
bin=target/release
port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ))
log=$(mktemp)
$bin/pi-streamer --unpaired --peer 127.0.0.1:$port --size 1280x720 --fps 60 2>"$log" >/dev/null &
streamer=$!
times=""
for i in $(seq "$n"); do
  t0=$(date +%s%N)
  if timeout 30 $bin/quest-client --headless --unpaired --listen 127.0.0.1:$port --frames 1 >/dev/null 2>&1; then
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
  else
    ms=timeout
  fi
  echo "restart $i: first frame of both eyes after $ms ms"
  times="$times $ms"
  sleep 0.3 # the headset is away for a moment
done
kill -INT $streamer; wait $streamer || true
echo "all:$times"
grep -c "reconnecting" "$log" | sed 's/^/streamer noticed the loss: /'
rm -f "$log"
