//! The viewer's send policy, per frame: nothing until ICE connects; the eye's reference chain
//! ([`ReferenceChain`]: after a gap — this viewer's queue overflowed, or the pipeline dropped
//! a frame — only a keyframe goes, and one is asked for, at most every 200 ms per eye, so a
//! struggling viewer cannot fill every viewer's stream with IDRs); the frame deadline; the
//! viewer's own [`shared_proto::rules::budget::Budget`]; str0m's real send queue (a frame
//! joins it only if it can leave before its deadline: [`budget::queue_admits`]); then str0m's
//! writer.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use binoc_net::os_clock::monotonic_ns;
use shared_proto::browser;
use shared_proto::rules::budget::{self, QueueState};
use shared_proto::rules::ledger::FrameKey;
use shared_proto::wire::KeyframeReason;
use shared_proto::Eye;
use str0m::media::{Frequency, MediaTime};

use super::{sdp, Viewer};
use crate::pipeline::EncodedFrame;

/// Shortest interval between keyframe requests one viewer makes for one eye on its own.
pub(super) const OWN_IDR_INTERVAL_NS: u64 = 200_000_000;

impl Viewer {
    fn request(&self, eye: Eye, request: Option<KeyframeReason>) {
        if request.is_some() {
            self.feedback.request_keyframe(eye);
        }
    }

    /// This eye's next frames are not sent until a keyframe (asked for) restarts the chain.
    fn wait_for_idr(&mut self, eye: Eye, now: u64) {
        let r = self.tracks[eye.index()]
            .chain
            .on_unusable(KeyframeReason::ReferenceLost, now);
        self.request(eye, r);
    }

    /// str0m's send queue now (both eyes' streams share its pacer), draining at its pacing
    /// rate: the estimate × 1.1.
    fn send_queue(&mut self) -> QueueState {
        let now = Instant::now();
        let mut q = QueueState {
            bytes: 0,
            oldest_wait_ns: 0,
            drain_bps: (self.counters.last_estimate_bps.unwrap_or(u64::MAX / 2) as f64 * 1.1)
                as u64,
        };
        let mids: Vec<_> = self.tracks.iter().filter_map(|t| t.mid).collect();
        let mut api = self.rtc.direct_api();
        for mid in mids {
            let Some(info) = api.stream_tx_by_mid(mid, None).and_then(|s| s.queue_info()) else {
                continue;
            };
            q.bytes += info.byte_size() as u64;
            if let Some(first) = info.first_unsent() {
                let wait = now.saturating_duration_since(first).as_nanos() as u64;
                q.oldest_wait_ns = q.oldest_wait_ns.max(wait);
            }
        }
        q
    }

    pub(super) fn send_frame(&mut self, f: &EncodedFrame) -> Result<()> {
        let i = f.eye.index();
        if !self.connected {
            return Ok(());
        }
        let Some(mid) = self.tracks[i].mid else {
            return Ok(()); // the viewer did not ask for this eye
        };
        let now_ns = monotonic_ns();
        let verdict = self.tracks[i].chain.on_frame(f.seq, f.keyframe, now_ns);
        self.request(f.eye, verdict.request);
        if !verdict.usable {
            self.counters.skipped_waiting_idr[i] += 1;
            self.state.eye(f.eye).dropped_waiting_idr += 1;
            return Ok(());
        }
        if now_ns.saturating_sub(f.timing.capture_ns) > self.deadline_ns {
            self.state.eye(f.eye).dropped_deadline += 1;
            self.wait_for_idr(f.eye, now_ns);
            return Ok(());
        }
        let queue = self.send_queue();
        // A keyframe into an empty queue always goes: it is the only way back to a picture,
        // and refusing it because the estimate is low (a blackout, a cap) only asks for the next
        // keyframe, which is as big (measured: 285 frames skipped, 27 keyframes, none shown for
        // seconds). It is charged to the budget, so the frames after it wait their turn.
        if f.keyframe && queue.bytes == 0 {
            self.budget.charge(now_ns, f.data.len());
        } else if !self.budget.admit(now_ns, f.data.len()) {
            self.counters.over_budget[i] += 1;
            self.state.eye(f.eye).dropped_link += 1;
            self.wait_for_idr(f.eye, now_ns);
            return Ok(());
        }
        let age = now_ns.saturating_sub(f.timing.capture_ns);
        if !budget::queue_admits(queue, age, self.deadline_ns) {
            self.counters.over_queue[i] += 1;
            self.state.eye(f.eye).dropped_link += 1;
            self.wait_for_idr(f.eye, now_ns);
            return Ok(());
        }
        if self.tracks[i].pt.is_none() {
            self.tracks[i].pt = sdp::pick_pt(&mut self.rtc, mid);
        }
        let Some(pt) = self.tracks[i].pt else {
            bail!(
                "the viewer offered no H.264 (packetization-mode 1) for the {} eye",
                f.eye
            );
        };
        let rtp = browser::rtp_timestamp(f.timing.capture_ns);
        let mut timing = f.timing;
        timing.send_ns = now_ns;
        self.state
            .eye(f.eye)
            .book_sending(FrameKey::Rtp(rtp), timing);
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(());
        };
        writer
            .playout_delay(MediaTime::ZERO, MediaTime::ZERO)
            .write(
                pt,
                Instant::now(),
                MediaTime::new(rtp as u64, Frequency::NINETY_KHZ),
                f.data.clone(),
            )
            .context("writing a frame")?;
        self.tracks[i].chain.on_decoded();
        self.state
            .eye(f.eye)
            .record_sent(&timing, f.data.len(), monotonic_ns());
        Ok(())
    }
}
