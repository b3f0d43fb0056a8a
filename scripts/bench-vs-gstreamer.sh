#!/bin/sh
# binoc against GStreamer's low-latency pipeline (x264enc tune=zerolatency speed-preset=ultrafast
# ! rtph264pay ! udpsink → udpsrc ! rtpjitterbuffer latency=0 ! rtph264depay ! avdec_h264), side
# by side on the same pixel-coded frames, in alternated rounds: capture→decoded p50/p95/p99/max,
# frames decoded, CPU per frame, and binoc/GStreamer. Installs Debian's GStreamer first.
# Usage: scripts/bench-vs-gstreamer.sh [--size WxH] [--fps F] [--bitrate-mbps B] [--seconds S]
#        [--rounds N] [--one-eye] [--json FILE] [--no-control]
#        (default: 1280x720, 60 fps, 8 Mbit/s, 10 s, 3 rounds; each round also times x264 alone,
#        the machine's own spread for the costliest stage)
set -eu
cd "$(dirname "$0")/.."
if ! command -v gst-launch-1.0 >/dev/null 2>&1 || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 \
   || ! gst-inspect-1.0 avdec_h264 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "bench: installing GStreamer (tools, base, good, ugly, libav)" >&2
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav >&2
fi
cargo build --release --locked -q -p pi-streamer --bin bench-vs-gstreamer
exec target/release/bench-vs-gstreamer "$@"
