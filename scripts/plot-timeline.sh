#!/bin/sh
# Latency over time from a `pi-streamer --timeline FILE` (one row per decoded frame): capture→
# decoded per frame and eye (points), its network stage, and the decoded video's bitrate per
# half second below, as a PNG. Optional vertical marks at given seconds (a cap that starts, a
# blackout, ...).
# Usage: scripts/plot-timeline.sh TIMELINE.csv OUT.png [TITLE] [MARK_S[:LABEL] ...]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 TIMELINE.csv OUT.png [TITLE] [MARK_S[:LABEL] ...]" >&2; exit 2; }
here="$(dirname "$0")"
"$here/setup.sh" --plots
csv="$1"; png="$2"; title="${3:-binoc latency over time}"
[ $# -ge 3 ] && shift 3 || shift $#
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Per eye: capture_s, capture→decoded, network; and the decoded bitrate per 0.5 s.
python3 - "$csv" "$tmp" <<'PY'
import csv, sys, collections
src, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(src)))
if not rows:
    sys.exit(f"{src}: no frames")
for eye in ("left", "right"):
    with open(f"{out}/{eye}.dat", "w") as f:
        for r in rows:
            if r["eye"] == eye:
                f.write(f'{r["capture_s"]} {r["capture_to_decoded_ms"]} {r["network_ms"]}\n')
bits = collections.Counter()
for r in rows:
    bits[int(float(r["capture_s"]) * 2)] += int(r["encoded_bytes"]) * 8
with open(f"{out}/rate.dat", "w") as f:
    for k in sorted(bits):
        f.write(f"{k / 2 + 0.25} {bits[k] * 2 / 1e6}\n")
PY
marks=""
for m in "$@"; do
  at="${m%%:*}"; label=""; [ "$at" != "$m" ] && label="${m#*:}"
  marks="$marks
set arrow from $at, graph 0 to $at, graph 1 nohead lc rgb '#888888' dt 2
set label '$label' at $at, graph 0.95 offset 0.5,0 tc rgb '#555555' font ',9'"
done
gnuplot <<GP
set terminal pngcairo size 1100,640 font 'sans,10'
set output '$png'
set multiplot layout 2,1 title '$title' font ',12'
set lmargin 10
set grid lc rgb '#dddddd'
set key top right opaque
set ylabel 'ms'
set xlabel ''
set size 1,0.62
set origin 0,0.36
$marks
plot '$tmp/left.dat' using 1:2 with points pt 7 ps 0.25 lc rgb '#1f77b4' title 'capture→decoded, left', \
     '$tmp/right.dat' using 1:2 with points pt 7 ps 0.25 lc rgb '#d62728' title 'capture→decoded, right', \
     '$tmp/left.dat' using 1:3 with points pt 7 ps 0.15 lc rgb '#9ecae1' title 'network stage, left'
set size 1,0.34
set origin 0,0
set ylabel 'Mbit/s'
set xlabel 'seconds since start (capture time)'
unset key
set yrange [0:*]
plot '$tmp/rate.dat' using 1:2 with steps lw 2 lc rgb '#2ca02c' title 'decoded video, both eyes'
unset multiplot
GP
echo "$png"
