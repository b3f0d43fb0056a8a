//! `--timeline FILE`: every frame a receiver decoded, one CSV row as its marker arrives (its
//! capture time, size and latency stage by stage), so that latency over time can be plotted and
//! a spike traced to its stage (`scripts/plot-timeline.sh`). Several outputs write to the same
//! file, told apart by `receiver` (one number per output connection or viewer, in order).

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use shared_proto::latency::FrameLatency;
use shared_proto::wire::FrameTiming;
use shared_proto::{Eye, Nanos};

pub const HEADER: &str = "receiver,eye,frame_no,capture_s,encoded_bytes,capture_to_encode_ms,encode_ms,send_queue_ms,network_ms,decode_ms,capture_to_decoded_ms,glass_to_glass_ms";

pub struct Timeline {
    out: Mutex<Option<LineWriter<File>>>,
    /// Capture times are written relative to this (the streamer's monotonic clock).
    t0_ns: Nanos,
    receivers: AtomicU64,
}

impl Timeline {
    /// Creates (or truncates) `path` and writes the header; capture times count from `t0_ns`.
    pub fn create(path: &Path, t0_ns: Nanos) -> Result<Self> {
        let mut out = LineWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(out, "{HEADER}").with_context(|| format!("writing {}", path.display()))?;
        Ok(Timeline {
            out: Mutex::new(Some(out)),
            t0_ns,
            receivers: AtomicU64::new(0),
        })
    }

    /// A number for a new receiver's rows.
    pub fn new_receiver(&self) -> u64 {
        self.receivers.fetch_add(1, Ordering::Relaxed)
    }

    /// One decoded frame. A write error (disk full) is logged once and ends the timeline, never
    /// the stream.
    pub fn record(&self, receiver: u64, eye: Eye, timing: &FrameTiming, l: &FrameLatency) {
        let ms = |ns: i64| ns as f64 / 1e6;
        let s = &l.stages_ns;
        let row = format!(
            "{receiver},{eye},{},{:.6},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{}\n",
            timing.frame_no,
            (timing.capture_ns as i64).wrapping_sub(self.t0_ns as i64) as f64 / 1e9,
            timing.encoded_len,
            ms(s[0]),
            ms(s[1]),
            ms(s[2]),
            ms(s[3]),
            ms(s[4]),
            ms(l.total_ns),
            l.glass_to_glass_ns
                .map_or(String::new(), |g| format!("{:.3}", ms(g))),
        );
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = out.as_mut() {
            if let Err(e) = w.write_all(row.as_bytes()) {
                tracing::warn!("timeline: {e}; no more rows are written");
                *out = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_frame_under_the_header() {
        let path = std::env::temp_dir().join(format!("binoc-timeline-{}.csv", std::process::id()));
        let t = Timeline::create(&path, 1_000_000_000).unwrap();
        let r = t.new_receiver();
        let timing = FrameTiming {
            frame_no: 42,
            capture_ns: 1_500_000_000,
            encode_start_ns: 0,
            encode_end_ns: 0,
            send_ns: 0,
            encoded_len: 9000,
            slice: Default::default(),
        };
        let l = FrameLatency {
            stages_ns: [1_000_000, 5_000_000, 0, 2_000_000, 3_000_000],
            total_ns: 11_000_000,
            marker_return_ns: None,
            glass_to_glass_ns: Some(25_500_000),
            display_stages_ns: None,
        };
        t.record(r, Eye::Right, &timing, &l);
        drop(t);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "0,right,42,0.500000,9000,1.000,5.000,0.000,2.000,3.000,11.000,25.500"
        );
        assert_eq!(
            lines[1].split(',').count(),
            HEADER.split(',').count(),
            "every column filled"
        );
    }
}
