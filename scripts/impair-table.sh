#!/bin/sh
# The Wi-Fi table: streamer and headless client as two processes (release builds), through the
# impairment relay (`pi-streamer impair`), 2×1280x720@60 for SECONDS per row, one row per link.
# Prints per row: frames decoded per eye (of those captured), capture→decoded p50/p99, keyframe
# requests, frames dropped at the deadline, the longest gap between decoded pictures (the
# headset's), parity overhead and frames repaired, and what the relay did.
# Usage: scripts/impair-table.sh [SECONDS]; STREAMER_ARGS="--fec off" (say) is passed to every
# streamer run, ROWS=1 skips the clean row, PLOTS=DIR writes each row's latency-over-time PNG
# there (scripts/plot-timeline.sh, from the streamer's --timeline).
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
secs="${1:-20}"
cargo build --release --locked -q -p pi-streamer -p quest-client
bin=target/release
frames=$((secs * 60))
out=$(mktemp -d)
row() {
  name="$1"; shift
  port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ))
  $bin/quest-client --headless --unpaired --listen 127.0.0.1:$port --sessions 1 --report json \
    >"$out/client.json" 2>"$out/client.log" &
  client=$!
  $bin/pi-streamer impair --listen 127.0.0.1:$((port + 1)) --forward 127.0.0.1:$port "$@" \
    >"$out/relay.json" 2>"$out/relay.log" &
  relay=$!
  sleep 0.5
  $bin/pi-streamer --unpaired --peer 127.0.0.1:$((port + 1)) --size 1280x720 --fps 60 --frames "$frames" \
    --timeline "$out/timeline.csv" ${STREAMER_ARGS:-} --report json \
    >"$out/streamer.json" 2>"$out/streamer.log" || true
  kill -INT $relay 2>/dev/null || true; wait $relay || true
  wait $client || true
  # Each row's logs stay for a look (KEEP_LOGS=1 keeps the directory).
  mkdir -p "$out/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')"
  slug=$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')
  cp "$out"/*.log "$out"/*.json "$out"/timeline.csv "$out/$slug/" 2>/dev/null || true
  if [ -n "${PLOTS:-}" ]; then
    mkdir -p "$PLOTS"
    scripts/plot-timeline.sh "$out/timeline.csv" "$PLOTS/quic-$slug.png" "headset (QUIC), $name" >/dev/null || true
  fi
  python3 - "$name" "$out" <<'PY'
import json, sys
name, out = sys.argv[1], sys.argv[2]
def load(f):
    try:
        # The streamer prints one JSON document per connection; take the last.
        text = open(f"{out}/{f}").read().strip()
        dec = json.JSONDecoder(); docs = []; i = 0
        while i < len(text):
            d, j = dec.raw_decode(text, i); docs.append(d); i = j
            while i < len(text) and text[i].isspace(): i += 1
        return docs[-1]
    except Exception as e:
        return {"error": str(e)}
s, c, r = load("streamer.json"), load("client.json"), load("relay.json")
if "eyes" not in s:
    print(f"{name:<34} streamer report missing: {s}"); sys.exit()
e = s["eyes"]
l = s["latency_ms"]
kr = [c.get("eyes", {}).get(x, {}).get("keyframe_requests", "?") for x in ("left", "right")]
fz = [c.get("eyes", {}).get(x, {}).get("longest_freeze_ms", 0) for x in ("left", "right")]
th = r.get("to_headset", {})
fec = [e[x].get("fec") or {} for x in ("left", "right")]
fec_text = (f"  fec +{fec[0].get('overhead_percent', 0):.0f}%/+{fec[1].get('overhead_percent', 0):.0f}%"
            f" repaired {fec[0].get('repaired', 0)}/{fec[1].get('repaired', 0)}")
print(f"{name:<34} decoded {e['left']['decoded']}/{e['left']['captured']} {e['right']['decoded']}/{e['right']['captured']}"
      f"  p50 {l['p50']:.1f} p99 {l['p99']:.1f} ms  keyframe req {kr[0]}/{kr[1]}"
      f"  deadline drops {e['left']['dropped_deadline']}/{e['right']['dropped_deadline']}"
      f"  longest freeze {fz[0]:.0f}/{fz[1]:.0f} ms"
      f"{fec_text}"
      f"  relay lost {th.get('lost_random', 0)}+{th.get('lost_blackout', 0)}+{th.get('lost_queue', 0)} of {th.get('entered', 0)}")
PY
}
impair_rows
if [ -n "${KEEP_LOGS:-}" ]; then echo "logs: $out"; else rm -rf "$out"; fi
