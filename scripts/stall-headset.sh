#!/bin/sh
# Streams 240 frames per eye (320x240@30, two processes on loopback) and stops the headset
# process COUNT times for STALL_MS each (SIGSTOP/SIGCONT, 0.5 s apart), as a busy machine, an
# app paused by the OS or a Wi-Fi burst would; prints what each eye lost.
# Usage: scripts/stall-headset.sh STALL_MS COUNT [BIN_DIR]   (BIN_DIR: target/release)
set -eu
cd "$(dirname "$0")/.."
stall_ms=$1 count=$2 bin=${3:-target/release}
[ -x "$bin/quest-client" ] && [ -x "$bin/pi-streamer" ] || {
  echo "build first: cargo build --release -p quest-client -p pi-streamer" >&2
  exit 1
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
port=$((20000 + $$ % 20000))
"$bin/quest-client" --headless --unpaired --listen "127.0.0.1:$port" --sessions 1 \
  --report json >"$out/headset.json" 2>/dev/null &
headset=$!
"$bin/pi-streamer" --unpaired --peer "127.0.0.1:$port" --frames 240 --size 320x240 --fps 30 \
  --max-latency-ms 2000 --report json >"$out/streamer.json" 2>/dev/null &
streamer=$!
sleep 2
i=0
while [ "$i" -lt "$count" ]; do
  kill -STOP "$headset"
  sleep "$(awk "BEGIN { print $stall_ms / 1000 }")"
  kill -CONT "$headset"
  sleep 0.5
  i=$((i + 1))
done
wait "$streamer"
wait "$headset"
python3 - "$out/streamer.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for eye in ("left", "right"):
    e = r["eyes"][eye]
    print(f"{eye}: decoded {e['decoded']} of {e['captured']}, lost {e['lost']}, "
          f"keyframes {e['keyframes']}, latency p50 {e['latency_ms']['p50']:.1f} "
          f"p99 {e['latency_ms']['p99']:.1f} ms")
PY
