#!/bin/sh
# Where the time goes, over time: from a `pi-streamer --timeline FILE`, each stage of capture→
# decoded (capture→encode, encode, send queue, network, decode) stacked, as the median of every
# 100 ms of frames (both eyes), so their sum is the latency and a spike shows its stage.
# Usage: scripts/plot-stages.sh TIMELINE.csv OUT.png [TITLE]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 TIMELINE.csv OUT.png [TITLE]" >&2; exit 2; }
here="$(dirname "$0")"
"$here/setup.sh" --plots
csv="$1"; png="$2"; title="${3:-binoc: where the time goes (stage medians per 100 ms, stacked)}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$csv" "$tmp/stages.dat" <<'PY'
import csv, sys, collections, statistics
src, out = sys.argv[1], sys.argv[2]
stages = ["capture_to_encode_ms", "encode_ms", "send_queue_ms", "network_ms", "decode_ms"]
bins = collections.defaultdict(lambda: [[] for _ in stages])
for r in csv.DictReader(open(src)):
    b = int(float(r["capture_s"]) * 10)
    for i, s in enumerate(stages):
        bins[b][i].append(max(float(r[s]), 0.0))
if not bins:
    sys.exit(f"{src}: no frames")
with open(out, "w") as f:
    for b in sorted(bins):
        meds = [statistics.median(v) for v in bins[b]]
        # cumulative sums, bottom up: what each filled band's top is
        acc, tops = 0.0, []
        for m in meds:
            acc += m
            tops.append(acc)
        f.write(f"{b / 10 + 0.05} " + " ".join(f"{t:.3f}" for t in tops) + "\n")
PY
gnuplot <<GP
set terminal pngcairo size 1100,420 font 'sans,10'
set output '$png'
set title '$title' font ',12'
set grid lc rgb '#dddddd'
set key outside right top
set ylabel 'ms'
set xlabel 'seconds since start (capture time)'
set yrange [0:*]
set autoscale xfix
set termoption noenhanced
plot '$tmp/stages.dat' using 1:6 with filledcurves x1 lc rgb '#ffbf3c' title 'decode', \
     '' using 1:5 with filledcurves x1 lc rgb '#9ecae1' title 'network', \
     '' using 1:4 with filledcurves x1 lc rgb '#c6dbef' title 'send queue', \
     '' using 1:3 with filledcurves x1 lc rgb '#5a96ff' title 'encode', \
     '' using 1:2 with filledcurves x1 lc rgb '#2b4d8c' title 'capture→encode'
GP
echo "wrote $png"
