//! What one output (one headset connection, one browser viewer) counted: frames sent and
//! dropped, its marker ledger, and the latency its markers give, stage by stage.

use std::sync::{Mutex, MutexGuard};

use shared_proto::clock::ClockEstimate;
use shared_proto::latency::{frame_latency, Series, Stage};
use shared_proto::rules::fec::FecPolicy;
use shared_proto::rules::ledger::{self, FrameKey, Ledger};
use shared_proto::rules::rate::LinkEstimator;
use shared_proto::wire::{ClientStats, FrameMarker, FrameTiming};
use shared_proto::{Eye, Nanos};

use crate::pipeline::{EncoderCounters, PipelineState};

/// One eye, as one output saw it.
#[derive(Default)]
pub struct OutputCounters {
    /// Frames dropped from this output's own queue to make room (it was behind).
    pub dropped_queue: u64,
    /// Frames not sent while this receiver waited for an IDR (its reference chain broke).
    pub dropped_waiting_idr: u64,
    /// Frames the receiver's link could not take in time (a WebRTC viewer's send budget or
    /// str0m's send queue).
    pub dropped_link: u64,
    pub sent: u64,
    /// Encoded frames dropped because they could not be on the wire before their deadline.
    pub dropped_deadline: u64,
    pub bytes_sent: u64,
    pub first_send_ns: Option<Nanos>,
    pub last_send_ns: Option<Nanos>,
    pub markers: u64,
    /// Markers for frames this output has no record of (too old, or bogus).
    pub unmatched_markers: u64,
    /// The frames carry the pixel code: markers are checked against it. Without it (a real
    /// camera's picture), no code is expected and none is counted unreadable.
    pub pixel_code: bool,
    pub wrong_eye: u64,
    pub code_mismatch: u64,
    pub unreadable_code: u64,
    /// When the first frame was decoded, on the streamer's clock.
    pub first_decoded_ns: Option<Nanos>,
    pub total: Series,
    pub stages: [Series; 5],
    pub marker_return: Series,
    pub glass_to_glass: Series,
    /// Displayed frames only: the five stages, then upload and display; per frame they add up
    /// to its glass-to-glass time.
    pub displayed_stages: [Series; 7],
    /// Per frame: capture→decoded minus encode and decode (what the pipeline itself adds).
    pub overhead: Series,
    pub client: Option<ClientStats>,
    /// Sent frames awaiting their marker.
    pub ledger: Ledger,
    /// Forward error correction (QUIC): the parity rule fed by the receiver's stats, and the
    /// parity datagrams and bytes sent.
    pub fec: FecPolicy,
    pub parity_sent: u64,
    pub parity_bytes: u64,
    pub data_datagrams: u64,
    /// Selective retransmission (QUIC): requests received, datagrams sent again, and
    /// requests not answered (the frame could not be in time any more, or was not kept).
    pub nacks: u64,
    pub resent: u64,
    pub nacks_refused: u64,
    /// `--timeline`: where this output's decoded frames go, under its receiver number.
    pub timeline: Option<(std::sync::Arc<crate::timeline::Timeline>, u64)>,
}

impl OutputCounters {
    /// Books a frame the sender is about to put on the wire under the key its marker will
    /// name. Booked before the first byte leaves, so a fast marker cannot overtake it.
    pub fn book_sending(&mut self, key: FrameKey, timing: FrameTiming) {
        self.ledger.book(key, timing);
    }

    /// The receiver's periodic counters: kept for the report, and fed to the parity rule
    /// (`congested`: see [`FecPolicy::on_receiver_stats`]).
    pub fn on_client_stats(&mut self, stats: ClientStats, congested: bool) {
        self.fec.on_receiver_stats(&stats, congested);
        self.client = Some(stats);
    }

    /// A unit (a whole picture, or one slice) went out; a picture counts once, at its last.
    pub fn record_sent(&mut self, timing: &FrameTiming, bytes: usize, done_ns: Nanos) {
        self.sent += u64::from(timing.slice.is_last());
        self.bytes_sent += bytes as u64;
        self.first_send_ns.get_or_insert(timing.send_ns);
        self.last_send_ns = Some(done_ns);
    }

    /// A marker for the frame booked under `key` (`frame_no`: what the marker says the frame
    /// was, when it says), received at `received_ns`. The frame's timing if it was booked.
    pub fn on_marker(
        &mut self,
        key: FrameKey,
        frame_no: Option<u64>,
        m: &FrameMarker,
        clock: &ClockEstimate,
        received_ns: Nanos,
    ) -> Option<FrameTiming> {
        let Ok(timing) = self.ledger.take(key, frame_no) else {
            self.unmatched_markers += 1;
            return None;
        };
        self.markers += 1;
        let code = if self.pixel_code {
            ledger::check_code(m.eye, m.pixel_code, timing.frame_no)
        } else {
            ledger::CodeCheck::default()
        };
        self.unreadable_code += u64::from(code.unreadable);
        self.wrong_eye += u64::from(code.wrong_eye);
        self.code_mismatch += u64::from(code.mismatch);
        let l = frame_latency(&timing, m, clock, Some(received_ns));
        self.first_decoded_ns
            .get_or_insert(timing.capture_ns.saturating_add_signed(l.total_ns));
        if let Some((t, receiver)) = &self.timeline {
            t.record(*receiver, m.eye, &timing, &l);
        }
        self.total.push(l.total_ns);
        self.overhead.push(
            l.total_ns - l.stages_ns[Stage::Encode as usize] - l.stages_ns[Stage::Decode as usize],
        );
        for (series, v) in self.stages.iter_mut().zip(l.stages_ns) {
            series.push(v);
        }
        if let Some(r) = l.marker_return_ns {
            self.marker_return.push(r);
        }
        if let (Some(g), Some(d)) = (l.glass_to_glass_ns, l.display_stages_ns) {
            self.glass_to_glass.push(g);
            for (series, v) in self
                .displayed_stages
                .iter_mut()
                .zip(l.stages_ns.iter().chain(&d))
            {
                series.push(*v);
            }
        }
        Some(timing)
    }

    /// Parity datagrams per data datagram sent so far (0 without forward error correction).
    pub fn parity_overhead(&self) -> f64 {
        if self.data_datagrams == 0 {
            0.0
        } else {
            self.parity_sent as f64 / self.data_datagrams as f64
        }
    }
}

/// One output's state: per-eye counters, its clock estimate of its receiver, and the pipeline's
/// counters when it started (its report counts the captures of its own lifetime).
pub struct OutputState {
    pub eyes: [Mutex<OutputCounters>; 2],
    pub clock: Mutex<Option<ClockEstimate>>,
    /// The pipeline's counters when this receiver started receiving (see
    /// [`OutputState::start_counting`]).
    since: Mutex<[EncoderCounters; 2]>,
    /// The output's own link estimate (the QUIC path's [`LinkEstimator`]), when it has one.
    pub link: Mutex<Option<LinkEstimator>>,
    /// The path's round-trip time, nanoseconds (0: not known).
    pub rtt_ns: std::sync::atomic::AtomicU64,
}

impl OutputState {
    /// A new output's state, counting the pipeline's frames from now on.
    pub fn new(pipeline: &PipelineState) -> Self {
        let eyes: [Mutex<OutputCounters>; 2] = Default::default();
        for (e, &coded) in eyes.iter().zip(&pipeline.pixel_code) {
            e.lock().unwrap_or_else(|p| p.into_inner()).pixel_code = coded;
        }
        if let Some(t) = &pipeline.timeline {
            let receiver = t.new_receiver();
            for e in &eyes {
                e.lock().unwrap_or_else(|p| p.into_inner()).timeline = Some((t.clone(), receiver));
            }
        }
        OutputState {
            eyes,
            clock: Mutex::new(None),
            since: Mutex::new(pipeline.snapshot()),
            link: Mutex::new(None),
            rtt_ns: Default::default(),
        }
    }

    /// The pipeline's counters of `eye` when this receiver started receiving.
    pub fn since(&self, eye: Eye) -> EncoderCounters {
        self.since.lock().unwrap_or_else(|p| p.into_inner())[eye.index()]
    }

    /// The receiver starts receiving now (its connection is up, frames go to it): its report
    /// counts the captures from here, not those of its handshake.
    pub fn start_counting(&self, pipeline: &PipelineState) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = pipeline.snapshot();
    }

    /// The path's round-trip time as last seen, milliseconds.
    pub fn rtt_ms(&self) -> Option<f64> {
        match self.rtt_ns.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ns => Some(ns as f64 / 1e6),
        }
    }

    pub fn eye(&self, eye: Eye) -> MutexGuard<'_, OutputCounters> {
        self.eyes[eye.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn clock(&self) -> Option<ClockEstimate> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_clock(&self, c: Option<ClockEstimate>) {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Sent frames whose marker has not arrived yet, both eyes.
    pub fn awaiting_markers(&self) -> usize {
        Eye::BOTH
            .iter()
            .map(|&e| self.eye(e).ledger.awaiting())
            .sum()
    }

    /// Markers received, both eyes.
    pub fn markers(&self) -> u64 {
        Eye::BOTH.iter().map(|&e| self.eye(e).markers).sum()
    }

    /// Waits (polling, as markers come from another task) until every sent frame's marker is
    /// in, or none has come for `quiet_ns`.
    pub async fn wait_for_markers(&self, quiet_ns: Nanos) {
        let mut last_count = 0;
        let mut last_progress = binoc_net::os_clock::monotonic_ns();
        while self.awaiting_markers() > 0 {
            let got = self.markers();
            let now = binoc_net::os_clock::monotonic_ns();
            if got != last_count {
                last_count = got;
                last_progress = now;
            } else if now - last_progress > quiet_ns {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_match_sent_frames_and_stages_add_up() {
        let mut c = OutputCounters {
            pixel_code: true,
            ..Default::default()
        };
        let t = FrameTiming {
            frame_no: 7,
            capture_ns: 100,
            encode_start_ns: 200,
            encode_end_ns: 500,
            send_ns: 600,
            encoded_len: 0,
            slice: Default::default(),
        };
        c.book_sending(FrameKey::Seq(3), t);
        c.record_sent(&t, 1000, 650);
        let m = FrameMarker {
            eye: Eye::Left,
            seq: 3,
            frame_no: 7,
            pixel_code: Some((Eye::Right, 7)),
            first_byte_ns: 700,
            last_byte_ns: 800,
            decoded_ns: 1000,
            presented_ns: None,
            display_ns: None,
        };
        let id = ClockEstimate::identity();
        c.on_marker(FrameKey::Seq(3), Some(7), &m, &id, 1100);
        assert_eq!((c.markers, c.wrong_eye, c.code_mismatch), (1, 1, 0));
        let stage_sum: f64 = c.stages.iter().map(|s| s.summary().mean).sum();
        assert!((stage_sum - c.total.summary().mean).abs() < 1e-9);
        assert_eq!(c.total.summary().mean, 900e-6);
        // A second marker for the same frame, or for an unknown one, is not counted twice.
        c.on_marker(FrameKey::Seq(3), Some(7), &m, &id, 1100);
        assert_eq!((c.markers, c.unmatched_markers), (1, 1));
    }

    #[test]
    fn frames_without_the_pixel_code_expect_none_and_count_none_unreadable() {
        let t = FrameTiming {
            frame_no: 1,
            capture_ns: 100,
            encode_start_ns: 200,
            encode_end_ns: 300,
            send_ns: 400,
            encoded_len: 0,
            slice: Default::default(),
        };
        let m = FrameMarker {
            eye: Eye::Left,
            seq: 0,
            frame_no: 1,
            pixel_code: None,
            first_byte_ns: 500,
            last_byte_ns: 600,
            decoded_ns: 700,
            presented_ns: None,
            display_ns: None,
        };
        let id = ClockEstimate::identity();
        for coded in [true, false] {
            let mut c = OutputCounters {
                pixel_code: coded,
                ..Default::default()
            };
            c.book_sending(FrameKey::Seq(0), t);
            c.on_marker(FrameKey::Seq(0), Some(1), &m, &id, 800);
            assert_eq!(c.markers, 1);
            assert_eq!(c.unreadable_code, u64::from(coded), "pixel code {coded}");
        }
    }
}
