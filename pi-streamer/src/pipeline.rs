//! Wires the stages together: a capture thread, one encoder thread per eye, and the transport.
//!
//! Hand-offs are newest-wins: a capture slot holds at most one raw frame per eye (a busy
//! encoder loses the older frame, which breaks no reference), and the encoded queue is short
//! and deadline-checked by the sender (an encoded frame that is dropped forces the next frame
//! of that eye to be an IDR). So latency cannot build up in a queue anywhere.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use quest_client::clock::{monotonic_ns, thread_cpu_ns};
use shared_proto::clock::ClockEstimate;
use shared_proto::latency::{frame_latency, Series, Stage};
use shared_proto::wire::{ClientStats, FrameMarker, FrameTiming};
use shared_proto::{pixel_code, Eye, Nanos};

use crate::config::StreamerConfig;
use crate::encode;
use crate::source::{RawFrame, StereoSource};

/// An encoded frame on its way to the transport.
pub struct EncodedFrame {
    pub eye: Eye,
    pub seq: u32,
    pub keyframe: bool,
    /// `send_ns` is filled in by the sender.
    pub timing: FrameTiming,
    pub data: Vec<u8>,
}

/// A one-frame, newest-wins hand-off.
struct Slot {
    state: Mutex<(Option<RawFrame>, bool)>,
    cv: Condvar,
}

impl Slot {
    fn new() -> Self {
        Slot {
            state: Mutex::new((None, false)),
            cv: Condvar::new(),
        }
    }
    /// Puts a frame; returns true if it replaced one the consumer never took.
    fn put(&self, f: RawFrame) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = s.0.replace(f).is_some();
        self.cv.notify_one();
        replaced
    }
    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.cv.notify_all();
    }
    /// Takes the newest frame; `None` once closed and empty.
    fn take(&self) -> Option<RawFrame> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(f) = s.0.take() {
                return Some(f);
            }
            if s.1 {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// IDR requests per eye, merged within the minimum IDR interval.
pub struct IdrControl {
    requested: [AtomicBool; 2],
    min_interval_ns: u64,
}

impl IdrControl {
    pub fn new(min_interval_ns: u64) -> Self {
        IdrControl {
            requested: Default::default(),
            min_interval_ns,
        }
    }
    pub fn request(&self, eye: Eye) {
        self.requested[eye.index()].store(true, Ordering::Release);
    }
    /// Whether the encoder should make the next frame an IDR, given when it last made one.
    fn take(&self, eye: Eye, now: Nanos, last_idr: Option<Nanos>) -> bool {
        let r = &self.requested[eye.index()];
        if !r.load(Ordering::Acquire) {
            return false;
        }
        if last_idr.is_some_and(|t| now.saturating_sub(t) < self.min_interval_ns) {
            return false; // stays requested until the interval has passed
        }
        r.swap(false, Ordering::AcqRel)
    }
}

/// What the streamer knows about one eye.
#[derive(Default)]
pub struct EyeCounters {
    pub captured: u64,
    /// Raw frames replaced in the capture slot because the encoder was still busy.
    pub dropped_source: u64,
    pub encoded: u64,
    pub keyframes: u64,
    pub idr_requests: u64,
    pub sent: u64,
    /// Encoded frames dropped because they could not be on the wire before their deadline.
    pub dropped_deadline: u64,
    pub bytes_sent: u64,
    pub first_send_ns: Option<Nanos>,
    pub last_send_ns: Option<Nanos>,
    pub encode_cpu_ns: u64,
    pub markers: u64,
    /// Markers for frames the streamer has no record of (too old, or bogus).
    pub unmatched_markers: u64,
    pub wrong_eye: u64,
    pub code_mismatch: u64,
    pub unreadable_code: u64,
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
    /// Sent frames awaiting their marker (bounded).
    book: VecDeque<(u32, FrameTiming)>,
    /// (sequence, frame number) of the frames booked recently, in order, markers or not.
    recent: VecDeque<(u32, u64)>,
}

const BOOK_LEN: usize = 1024;
const RECENT_LEN: usize = 64;

impl EyeCounters {
    /// Books a frame the sender is about to put on the wire. Booked before the first datagram
    /// leaves, so a fast marker can never overtake its own booking.
    pub fn book_sending(&mut self, seq: u32, timing: FrameTiming) {
        if self.book.len() == BOOK_LEN {
            self.book.pop_front();
        }
        self.book.push_back((seq, timing));
        if self.recent.len() == RECENT_LEN {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, timing.frame_no));
    }

    /// The sender gave up on a booked frame (deadline): no marker will come for it.
    pub fn unbook(&mut self, seq: u32) {
        self.book.retain(|(s, _)| *s != seq);
    }

    pub fn record_sent(&mut self, timing: &FrameTiming, bytes: usize, done_ns: Nanos) {
        self.sent += 1;
        self.bytes_sent += bytes as u64;
        self.first_send_ns.get_or_insert(timing.send_ns);
        self.last_send_ns = Some(done_ns);
    }

    pub fn on_marker(&mut self, m: &FrameMarker, clock: &ClockEstimate, received_ns: Nanos) {
        let Some(i) = self.book.iter().position(|(s, _)| *s == m.seq) else {
            self.unmatched_markers += 1;
            return;
        };
        let (_, timing) = self.book.remove(i).expect("index from position");
        if timing.frame_no != m.frame_no {
            self.unmatched_markers += 1;
            return;
        }
        self.markers += 1;
        match m.pixel_code {
            None => self.unreadable_code += 1,
            Some((eye, n)) => {
                if eye != m.eye {
                    self.wrong_eye += 1;
                }
                if n != (timing.frame_no as u32) & pixel_code::FRAME_MASK {
                    self.code_mismatch += 1;
                }
            }
        }
        let l = frame_latency(&timing, m, clock, Some(received_ns));
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
    }

    /// The frame number of a booked frame.
    pub fn booked_frame_no(&self, seq: u32) -> Option<u64> {
        self.book
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, t)| t.frame_no)
    }

    /// Frame numbers of the frames booked just before and just after `seq` (the neighbours in
    /// the order sent; with frames dropped before sending they are more than one apart).
    pub fn booked_neighbours(&self, seq: u32) -> [Option<u64>; 2] {
        let Some(i) = self.recent.iter().rposition(|(s, _)| *s == seq) else {
            return [None, None];
        };
        [
            i.checked_sub(1)
                .and_then(|j| self.recent.get(j))
                .map(|r| r.1),
            self.recent.get(i + 1).map(|r| r.1),
        ]
    }

    /// Sent frames whose marker has not arrived yet.
    pub fn awaiting_markers(&self) -> usize {
        self.book.len()
    }
}

/// Shared state of one streaming session.
pub struct PipelineState {
    pub eyes: [Mutex<EyeCounters>; 2],
    pub idr: IdrControl,
    /// Per eye: the bitrate (bit/s) a congestion controller asks for; 0 = the configured one.
    pub target_bps: [AtomicU32; 2],
    pub clock: Mutex<Option<ClockEstimate>>,
    /// Live rigs: the pair skew (right − left capture time) and unpaired frames.
    pub stereo: Mutex<Option<StereoCounters>>,
    pub stop: AtomicBool,
}

#[derive(Debug, Default, Clone)]
pub struct StereoCounters {
    pub skew: Series,
    pub unpaired: [u64; 2],
}

impl PipelineState {
    pub fn new(cfg: &StreamerConfig) -> Arc<Self> {
        Arc::new(PipelineState {
            eyes: Default::default(),
            idr: IdrControl::new((cfg.deadlines.min_idr_interval_ms * 1e6) as u64),
            target_bps: Default::default(),
            clock: Mutex::new(None),
            stereo: Mutex::new(None),
            stop: AtomicBool::new(false),
        })
    }

    pub fn eye(&self, eye: Eye) -> std::sync::MutexGuard<'_, EyeCounters> {
        self.eyes[eye.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn clock(&self) -> Option<ClockEstimate> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running capture and encoder threads.
pub struct Pipeline {
    threads: Vec<JoinHandle<Result<()>>>,
    slots: Arc<[Slot; 2]>,
}

impl Pipeline {
    /// Starts capture and encoding; encoded frames go to `out`.
    pub fn start(
        cfg: &StreamerConfig,
        mut source: Box<dyn StereoSource>,
        state: Arc<PipelineState>,
        out: crossbeam_channel::Sender<EncodedFrame>,
    ) -> Result<Self> {
        let slots: Arc<[Slot; 2]> = Arc::new([Slot::new(), Slot::new()]);
        let mut threads = Vec::new();
        // Capture starts once both encoders are warm: an encoder's first frame pays for its
        // initialisation, which would otherwise make the first real frames miss their deadline.
        let warm = Arc::new(std::sync::Barrier::new(3));
        // Both encoders exist before any thread starts, so a failure cannot leave one thread
        // waiting at the barrier for a sibling that never comes.
        let (kind, why) = encode::resolve(&cfg.encoder);
        tracing::info!("encoder: {} ({why})", encode::kind_name(kind));
        let mut encoders = Vec::new();
        for eye in Eye::BOTH {
            encoders.push(encode::open_kind(kind, &cfg.encoder, cfg.eyes.get(eye))?);
        }
        for (eye, mut encoder) in Eye::BOTH.into_iter().zip(encoders) {
            let size = cfg.eyes.get(eye).size;
            let (slots, state, out, warm) =
                (slots.clone(), state.clone(), out.clone(), warm.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("encode-{eye}"))
                    .spawn(move || {
                        let blank = RawFrame::new(eye, size.width as usize, size.height as usize);
                        let warmed = encoder.encode(&blank, true);
                        warm.wait();
                        warmed?;
                        let mut seq: u32 = 0;
                        let mut last_idr: Option<Nanos> = None;
                        let mut bps = 0u32;
                        while let Some(frame) = slots[eye.index()].take() {
                            let want = state.target_bps[eye.index()].load(Ordering::Relaxed);
                            if want != 0 && want.abs_diff(bps) > bps / 32 {
                                // Changes under 3 % are noise of the estimator: not worth a
                                // reconfiguration.
                                match encoder.set_bitrate(want) {
                                    Ok(()) => bps = want,
                                    Err(e) => {
                                        tracing::warn!(%eye, "bitrate change to {want}: {e:#}");
                                        bps = want; // not retried every frame
                                    }
                                }
                            }
                            let start = monotonic_ns();
                            let force = last_idr.is_none() || state.idr.take(eye, start, last_idr);
                            let pic = match encoder.encode(&frame, force) {
                                Ok(p) => p,
                                Err(e) => {
                                    tracing::error!(%eye, "encode failed: {e:#}");
                                    state.idr.request(eye);
                                    continue;
                                }
                            };
                            let end = monotonic_ns();
                            if pic.keyframe {
                                last_idr = Some(end);
                            }
                            {
                                let mut c = state.eye(eye);
                                c.encoded += 1;
                                c.keyframes += u64::from(pic.keyframe);
                                c.idr_requests += u64::from(force);
                            }
                            let timing = FrameTiming {
                                frame_no: frame.frame_no,
                                capture_ns: frame.capture_ns,
                                encode_start_ns: start,
                                encode_end_ns: end,
                                send_ns: end,
                                encoded_len: pic.data.len() as u32,
                                reserved: 0,
                            };
                            let f = EncodedFrame {
                                eye,
                                seq,
                                keyframe: pic.keyframe,
                                timing,
                                data: pic.data,
                            };
                            seq = seq.wrapping_add(1);
                            match out.try_send(f) {
                                Ok(()) => {}
                                Err(crossbeam_channel::TrySendError::Full(_)) => {
                                    // The transport is behind: this frame would only add latency.
                                    state.eye(eye).dropped_deadline += 1;
                                    state.idr.request(eye);
                                }
                                Err(crossbeam_channel::TrySendError::Disconnected(_)) => break,
                            }
                        }
                        state.eye(eye).encode_cpu_ns = thread_cpu_ns();
                        Ok(())
                    })?,
            );
        }
        let (cap_slots, cap_state) = (slots.clone(), state.clone());
        threads.push(
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || {
                    warm.wait();
                    tracing::info!(source = %source.describe(), "capture started");
                    let result = (|| {
                        while !cap_state.stop.load(Ordering::Relaxed) {
                            let Some(pair) = source.next_pair()? else {
                                break;
                            };
                            if let Some((skew, unpaired)) = source.pair_info() {
                                let mut st =
                                    cap_state.stereo.lock().unwrap_or_else(|p| p.into_inner());
                                let st = st.get_or_insert_with(Default::default);
                                st.skew.push(skew);
                                st.unpaired = unpaired;
                            }
                            for f in pair {
                                let eye = f.eye;
                                let replaced = cap_slots[eye.index()].put(f);
                                let mut c = cap_state.eye(eye);
                                c.captured += 1;
                                c.dropped_source += u64::from(replaced);
                            }
                        }
                        Ok(())
                    })();
                    if let Err(e) = &result {
                        tracing::error!("capture stopped: {e:#}");
                    }
                    for s in cap_slots.iter() {
                        s.close();
                    }
                    result
                })?,
        );
        Ok(Pipeline { threads, slots })
    }

    /// Stops capture and waits for the threads; the encoders finish the frames they hold.
    pub fn join(self) -> Result<()> {
        let mut first_err = None;
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow::anyhow!("a pipeline thread panicked"));
                }
            }
        }
        for s in self.slots.iter() {
            s.close();
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_newest_wins_and_closes() {
        let s = Slot::new();
        let mut f = RawFrame::new(Eye::Left, 16, 16);
        f.frame_no = 1;
        assert!(!s.put(f.clone()));
        f.frame_no = 2;
        assert!(s.put(f));
        assert_eq!(s.take().unwrap().frame_no, 2);
        s.close();
        assert!(s.take().is_none());
    }

    #[test]
    fn idr_requests_merge_within_min_interval() {
        let c = IdrControl::new(100);
        assert!(!c.take(Eye::Left, 1000, None));
        c.request(Eye::Left);
        assert!(!c.take(Eye::Right, 1000, None), "per eye");
        assert!(
            !c.take(Eye::Left, 1000, Some(950)),
            "too soon after the last IDR"
        );
        assert!(
            c.take(Eye::Left, 1050, Some(950)),
            "still requested once the interval passed"
        );
        assert!(!c.take(Eye::Left, 1060, Some(950)), "consumed");
    }

    #[test]
    fn neighbours_are_the_frames_sent_before_and_after_even_after_their_markers() {
        let mut c = EyeCounters::default();
        let t = |frame_no| FrameTiming {
            frame_no,
            capture_ns: 0,
            encode_start_ns: 0,
            encode_end_ns: 0,
            send_ns: 0,
            encoded_len: 0,
            reserved: 0,
        };
        // Frame 11 was dropped before sending: 10's and 12's neighbours skip it.
        for (seq, f) in [(100, 9), (200, 10), (300, 12), (400, 13)] {
            c.book_sending(seq, t(f));
        }
        c.unbook(200);
        assert_eq!(c.booked_neighbours(300), [Some(10), Some(13)]);
        assert_eq!(c.booked_neighbours(100), [None, Some(10)]);
        assert_eq!(c.booked_neighbours(400), [Some(12), None]);
        assert_eq!(c.booked_neighbours(999), [None, None]);
    }

    #[test]
    fn markers_match_sent_frames_and_stages_add_up() {
        let mut c = EyeCounters::default();
        let t = FrameTiming {
            frame_no: 7,
            capture_ns: 100,
            encode_start_ns: 200,
            encode_end_ns: 500,
            send_ns: 600,
            encoded_len: 0,
            reserved: 0,
        };
        c.book_sending(3, t);
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
        c.on_marker(&m, &ClockEstimate::identity(), 1100);
        assert_eq!((c.markers, c.wrong_eye, c.code_mismatch), (1, 1, 0));
        let stage_sum: f64 = c.stages.iter().map(|s| s.summary().mean).sum();
        assert!((stage_sum - c.total.summary().mean).abs() < 1e-9);
        assert_eq!(c.total.summary().mean, 900e-6);
        // A second marker for the same frame, or for an unknown one, is not counted twice.
        c.on_marker(&m, &ClockEstimate::identity(), 1100);
        assert_eq!((c.markers, c.unmatched_markers), (1, 1));
    }
}
