# Shared by the measuring scripts (sourced, not run).

# The Wi-Fi table's links, one `row NAME RELAY_ARGS...` each; the sourcing script defines `row`
# (scripts/impair-table.sh: the headset over QUIC; scripts/webrtc-impair-table.sh: a browser).
# ROWS=1 skips the clean row.
impair_rows() {
  [ -n "${ROWS:-}" ] || row "clean"
  row "20 ms delay" --delay-ms 20
  row "2 % loss" --loss-pct 2
  row "20±5 ms jitter, reordered" --delay-ms 20 --jitter-ms 5 --reorder
  row "2 % loss + 20±5 ms jitter" --loss-pct 2 --delay-ms 20 --jitter-ms 5
  row "bursty 2 % (mean burst 5)" --loss-pct 2 --burst 5
  row "6 Mbit/s cap" --rate-mbps 6
  row "500 ms blackout at 5 s" --blackout 5,500
}

# The viewer URL a streamer with the WebRTC output logs to LOG ("serving https://…"), waiting up
# to 10 s for it; prints nothing if it never came.
serving_url() {
  for _ in $(seq 100); do
    url=$(grep -o 'serving https://[^ ]*' "$1" 2>/dev/null | head -n1 | cut -d' ' -f2) || true
    [ -n "$url" ] && { echo "$url"; return; }
    sleep 0.1
  done
}
