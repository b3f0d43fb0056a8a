#!/bin/sh
# The plots of docs/performance.md's "binoc against GStreamer", from bench-vs-gstreamer's
# output (gnuplot; scripts/setup.sh --plots installs it):
#   scripts/plot-bench.sh cdf DIR OUT.png          latency CDF of every system (DIR from --out)
#   scripts/plot-bench.sh stages DIR OUT.png       binoc's median stages per variant, stacked bars
#   scripts/plot-bench.sh time DIR OUT.png         capture→decoded over a run, every system
#   scripts/plot-bench.sh cost JSONL OUT.png       CPU per frame and p50 against pixels, log-log
#                                                  (JSONL: --json of runs at several sizes)
set -eu
[ $# -eq 3 ] || { echo "usage: $0 cdf|stages|time|cost INPUT OUT.png" >&2; exit 2; }
here="$(dirname "$0")"
"$here/setup.sh" --plots
kind="$1"; in="$2"; png="$3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$kind" "$in" "$tmp" <<'PY'
import csv, glob, json, os, statistics, sys, collections
kind, src, tmp = sys.argv[1:4]
systems = []
def keep(s):
    if s not in systems:
        systems.append(s)
if kind in ("cdf", "time"):
    by = collections.defaultdict(list)
    for r in csv.DictReader(open(os.path.join(src, "samples.csv"))):
        keep(r["system"])
        by[(r["system"], int(r["round"]))].append(float(r["latency_ms"]))
    for i, s in enumerate(systems):
        with open(f"{tmp}/{i}.dat", "w") as f:
            if kind == "cdf":
                v = sorted(x for (sy, _), l in by.items() if sy == s for x in l)
                for j, x in enumerate(v):
                    f.write(f"{x:.3f} {(j + 1) / len(v):.5f}\n")
            else:
                # The first round of each system, in arrival order (both eyes).
                rnd = min(r for (sy, r) in by if sy == s)
                for j, x in enumerate(by[(s, rnd)]):
                    f.write(f"{j} {x:.3f}\n")
elif kind == "stages":
    names = ["capture_to_encode_ms", "encode_ms", "send_queue_ms", "network_ms", "decode_ms"]
    rows = collections.defaultdict(lambda: [[] for _ in names])
    for path in sorted(glob.glob(os.path.join(src, "timeline-*-r*.csv"))):
        system = os.path.basename(path)[len("timeline-"):].rsplit("-r", 1)[0].replace("-", " ")
        keep(system)
        for r in csv.DictReader(open(path)):
            for i, n in enumerate(names):
                rows[system][i].append(max(float(r[n]), 0.0))
    with open(f"{tmp}/stages.dat", "w") as f:
        for s in systems:
            meds = [statistics.median(v) for v in rows[s]]
            f.write(f'"{s}" ' + " ".join(f"{m:.3f}" for m in meds) + "\n")
elif kind == "cost":
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in open(src):
        r = json.loads(line)
        if r["system"] == "x264 alone":  # the bench's control: encode times, not a system
            continue
        sysname = "gstreamer" if r["system"] == "gstreamer" else "binoc"
        keep(sysname)
        by[sysname][r["width"] * r["height"] / 1e6].append((r["cpu_ms_per_frame"], r["p50"]))
    for i, s in enumerate(systems):
        with open(f"{tmp}/{i}.dat", "w") as f:
            for mpix in sorted(by[s]):
                v = by[s][mpix]
                f.write(f"{mpix:.4f} {statistics.median(c for c, _ in v):.3f} {statistics.median(p for _, p in v):.3f}\n")
if kind == "time":
    # The last system (GStreamer) first, so binoc's line is drawn over it.
    order = list(reversed(range(len(systems))))
    for new, old in enumerate(order):
        os.rename(f"{tmp}/{old}.dat", f"{tmp}/t{new}.dat")
    for new in range(len(systems)):
        os.rename(f"{tmp}/t{new}.dat", f"{tmp}/{new}.dat")
    systems = [systems[i] for i in order]
with open(f"{tmp}/systems", "w") as f:
    f.write("\n".join(systems))
PY
n=$(wc -l < "$tmp/systems"); n=$((n + 1))
plots=""
i=0
while IFS= read -r s || [ -n "$s" ]; do
  case "$kind" in
    cdf) plots="$plots '$tmp/$i.dat' using 1:2 with lines lw 2 title '$s'," ;;
    time) plots="$plots '$tmp/$i.dat' using 1:2 with lines lw 1 title '$s'," ;;
    cost) plots="$plots '$tmp/$i.dat' using 1:2 with linespoints lw 2 pt 7 title '$s CPU ms/frame', '$tmp/$i.dat' using 1:3 with linespoints lw 2 dt 2 pt 5 title '$s p50 ms'," ;;
  esac
  i=$((i + 1))
done < "$tmp/systems"
case "$kind" in
  cdf) setup="set xlabel 'capture→decoded, ms'; set ylabel 'fraction of frames'; set key right bottom; set logscale x; set xrange [1:*]; set title 'Latency CDF (every frame of every round, both eyes)'" ;;
  time) setup="set xlabel 'frame (both eyes, in arrival order)'; set ylabel 'capture→decoded, ms'; set key left top; set yrange [0:*]; set title 'Latency over a run'" ;;
  cost) setup="set xlabel 'megapixels per eye'; set ylabel 'ms'; set logscale xy; set key left top; set title 'Cost against resolution (log-log; medians of the rounds)'" ;;
  stages) setup="set style data histograms; set style histogram rowstacked; set style fill solid 0.9 border -1; set boxwidth 0.6; set ylabel 'ms (median per stage)'; set key outside right top; set yrange [0:*]; set title 'binoc: median capture→decoded by stage'"
          plots="'$tmp/stages.dat' using 2:xtic(1) title 'capture→encode' lc rgb '#2b4d8c', '' using 3 title 'encode' lc rgb '#5a96ff', '' using 4 title 'send queue' lc rgb '#c6dbef', '' using 5 title 'network' lc rgb '#9ecae1', '' using 6 title 'decode' lc rgb '#ffbf3c'," ;;
esac
gnuplot <<GP
set terminal pngcairo size 1000,480 font 'sans,10'
set output '$png'
set grid lc rgb '#dddddd'
set termoption noenhanced
$setup
plot ${plots%,}
GP
echo "wrote $png"
