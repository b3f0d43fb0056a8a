//! The viewer's data channel `binoc` ([`shared_proto::browser`]): pings out and pongs back
//! (clock sync, [`PingSchedule`]), markers back, and the page's HUD once a second.

use std::time::{Duration, Instant};

use binoc_net::os_clock::monotonic_ns;
use shared_proto::browser::{self, BrowserMessage};
use shared_proto::rules::ledger::{self, FrameKey};
use shared_proto::Eye;

use super::Viewer;

/// Until the channel opens, the next ping waits this long.
const CHANNEL_WAIT_NS: u64 = 50_000_000;

impl Viewer {
    pub(super) fn on_message(&mut self, data: &[u8]) {
        let now = monotonic_ns();
        match browser::parse(data, now) {
            Ok(BrowserMessage::Pong { id, sample }) => match self.pings.on_pong(id, sample) {
                Some(s) if self.sync.add(s) => self.state.set_clock(self.sync.estimate()),
                Some(_) => {}
                None => tracing::debug!(viewer = %self.id, id, "pong for no ping sent: ignored"),
            },
            Ok(BrowserMessage::Marker(m)) => {
                let Some(clock) = self.state.clock() else {
                    return; // markers before the first clock estimate cannot be placed
                };
                let key = FrameKey::Rtp(m.rtp);
                let mut c = self.state.eye(m.eye);
                let Some(frame_no) = c.ledger.frame_no(key) else {
                    c.unmatched_markers += 1;
                    return;
                };
                let mut marker = m.to_frame_marker(m.rtp, frame_no);
                // A code read from one of the two frames sent before, or from any frame sent
                // after, belongs to no marker (Chrome's read race, 0.3–1 % of frames here; nine
                // frames late once on a loaded machine): unreadable, not a mismatch.
                // Any other code is a real mismatch (and a constant offset would make most
                // codes unreadable, which the browser test rejects).
                let neighbours = c.ledger.neighbours(key);
                if ledger::is_read_race(m.eye, marker.pixel_code, &neighbours) {
                    self.counters.code_read_race[m.eye.index()] += 1;
                    marker.pixel_code = None;
                } else if let Some((code_eye, n)) = marker.pixel_code {
                    let expected = frame_no as u32 & shared_proto::pixel_code::FRAME_MASK;
                    if code_eye != m.eye || n != expected {
                        // Said once per mismatch, with what the ledger knew: the evidence
                        // for telling a real wrong frame from a late read.
                        tracing::warn!(
                            viewer = %self.id, eye = %m.eye, rtp = m.rtp, frame_no,
                            code_eye = %code_eye, code_frame = n, ?neighbours,
                            "a marker's pixel code names another frame"
                        );
                    }
                }
                let _ = c.on_marker(key, None, &marker, &clock, now);
            }
            Err(e) => {
                self.counters.malformed_messages += 1;
                if self.counters.malformed_messages <= 3 {
                    tracing::warn!(viewer = %self.id, "malformed data channel message: {e}");
                }
            }
        }
    }

    fn write_channel(&mut self, text: &str) {
        if let Some(mut ch) = self.channel.and_then(|id| self.rtc.channel(id)) {
            let _ = ch.write(false, text.as_bytes());
        }
    }

    /// Whether a ping is due now.
    pub(super) fn ping_due(&self) -> bool {
        self.pings.next_at().is_none_or(|t| monotonic_ns() >= t)
    }

    /// The next ping's due time as an `Instant` (the drive loop's clock).
    pub(super) fn next_ping(&self) -> Instant {
        let now = monotonic_ns();
        let due = self.pings.next_at().unwrap_or(now);
        Instant::now() + Duration::from_nanos(due.saturating_sub(now))
    }

    pub(super) fn ping(&mut self) {
        let now = monotonic_ns();
        if self.channel.is_none() {
            self.pings.defer(now + CHANNEL_WAIT_NS);
            return;
        }
        if let Some((id, t0)) = self.pings.poll(now) {
            let msg = browser::ping(id, t0);
            self.write_channel(&msg);
        }
    }

    /// The page's HUD: what the streamer measured for this viewer, once a second.
    pub(super) fn send_stats(&mut self) {
        self.next_stats = Instant::now() + Duration::from_secs(1);
        if self.channel.is_none() {
            return;
        }
        let eyes: Vec<serde_json::Value> = Eye::BOTH
            .iter()
            .map(|&e| {
                let c = self.state.eye(e);
                let stage = |i: usize| c.stages[i].summary_recent(120).p50;
                serde_json::json!({
                    "decoded": c.markers,
                    "sent": c.sent,
                    "dropped": c.dropped_deadline + c.dropped_waiting_idr + c.dropped_link + c.dropped_queue,
                    // Whether this eye's frames carry the pixel code: the page reads it only then.
                    "pixel_code": c.pixel_code,
                    "latency_p50": c.total.summary_recent(120).p50,
                    "g2g_p50": c.glass_to_glass.summary_recent(120).p50,
                    "g2g_p99": c.glass_to_glass.summary_recent(120).p99,
                    "stages_p50": [stage(0), stage(1), stage(2), stage(3), stage(4)],
                    "keyframe_requests": self.counters.keyframe_requests[e.index()],
                    "nacks": self.counters.nacks[e.index()],
                    "target_mbps": self.feedback.target_bps(e) as f64 / 1e6,
                })
            })
            .collect();
        let clock = self.state.clock();
        let msg = serde_json::json!({
            "t": "stats",
            "eyes": eyes,
            "estimate_mbps": self.counters.last_estimate_bps.map(|b| b as f64 / 1e6),
            "clock_uncertainty_ms": clock.map(|c| c.uncertainty_ns() as f64 / 1e6),
        });
        self.write_channel(&msg.to_string());
    }
}
