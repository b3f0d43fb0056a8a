#!/bin/sh
# The Wi-Fi table for the browser path: the release streamer serves WebRTC with each viewer's
# media behind the impairment relay (`transport.webrtc.udp_ports` one port, `announce_ip`
# 127.0.0.2, where `pi-streamer impair` listens and forwards to 127.0.0.1), and headless
# Chromium watches for SECONDS per row, 2×1280x720@60 as the QUIC table. Prints per row: frames
# the browser decoded of those sent to it per eye (getStats), glass-to-glass p50/p99 from the
# page's markers, NACKs and PLIs the browser sent, the lowest TWCC estimate, and what the relay
# did. Usage: scripts/webrtc-impair-table.sh [SECONDS]; ROWS=1 skips the clean row;
# PLOTS=DIR writes each row's latency-over-time PNG there.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
secs="${1:-20}"
scripts/setup.sh --browser
cargo build --release --locked -q -p pi-streamer
bin=target/release
out=$(mktemp -d)
row() {
  name="$1"; shift
  slug=$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')
  udp=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ))
  cat >"$out/cfg.yaml" <<YAML
transport:
  webrtc:
    udp_ports: "$udp-$udp"
    announce_ip: 127.0.0.2
YAML
  $bin/pi-streamer impair --listen 127.0.0.2:$udp --forward 127.0.0.1:$udp "$@" \
    >"$out/relay.json" 2>"$out/relay.log" &
  relay=$!
  $bin/pi-streamer --config "$out/cfg.yaml" --transport webrtc --listen 127.0.0.1:0 \
    --size 1280x720 --fps 60 --timeline "$out/timeline.csv" --report json \
    >"$out/streamer.json" 2>"$out/streamer.log" &
  pid=$!
  url=$(serving_url "$out/streamer.log")
  [ -n "$url" ] || { cat "$out/streamer.log"; kill $pid $relay; exit 1; }
  (cd pi-streamer/tests/browser && node view.mjs "$url" --min-decoded 1 --hold-s "$secs" \
    --timeout-s 30 >"$out/view.json" 2>"$out/view.log") || true
  kill -INT $pid; wait $pid || true
  kill -INT $relay 2>/dev/null || true; wait $relay || true
  mkdir -p "$out/$slug"
  cp "$out"/*.log "$out"/*.json "$out"/timeline.csv "$out/$slug/" 2>/dev/null || true
  if [ -n "${PLOTS:-}" ]; then
    mkdir -p "$PLOTS"
    scripts/plot-timeline.sh "$out/timeline.csv" "$PLOTS/webrtc-$slug.png" "browser (WebRTC), $name" >/dev/null || true
  fi
  python3 - "$name" "$out" <<'PY'
import json, sys
name, out = sys.argv[1], sys.argv[2]
def load(f):
    try:
        return json.load(open(f"{out}/{f}"))
    except Exception as e:
        return {"error": str(e)}
s, v, r = load("streamer.json"), load("view.json"), load("relay.json")
viewers = s.get("viewers") or []
if not viewers or "viewers" not in v:
    print(f"{name:<34} no viewer report: {str(s)[:200]} {str(v)[:200]}"); sys.exit()
rep = viewers[-1]["report"]; w = viewers[-1]["webrtc"]; page = v["viewers"][0]
sent = [rep["eyes"][e]["sent"] for e in ("left", "right")]
dec = page["decoded"]
g = rep.get("glass_to_glass_ms") or rep["latency_ms"]
back = r.get("to_streamer", {})
print(f"{name:<34} decoded {dec[0]}/{sent[0]} {dec[1]}/{sent[1]}"
      f" ({100 * sum(dec) / max(1, sum(sent)):.1f} %)"
      f"  g2g p50 {g['p50']:.1f} p99 {g['p99']:.1f} ms ({g['count']} markers)"
      f"  browser dropped {page['dropped'][0]}/{page['dropped'][1]}"
      f"  nack {page['nacks'][0]}/{page['nacks'][1]} pli {page['plis'][0]}/{page['plis'][1]}"
      f"  keyframes {page['keyframes'][0]}/{page['keyframes'][1]}"
      f"  twcc min {(w.get('min_estimate_bps') or 0) / 1e6:.1f} Mbit/s"
      f"  relay lost {back.get('lost_random', 0)}+{back.get('lost_blackout', 0)}+{back.get('lost_queue', 0)} of {back.get('entered', 0)}")
PY
}
impair_rows
if [ -n "${KEEP_LOGS:-}" ]; then echo "logs: $out"; else rm -rf "$out"; fi
