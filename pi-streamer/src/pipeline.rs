//! The media pipeline up to the encoded frames: a capture thread and one encoder thread per
//! eye. What consumes the frames (the outputs) is [`crate::output`]; [`crate::session`] wires
//! the two.
//!
//! Hand-offs are newest-wins: a capture slot holds at most one raw frame per eye (a busy
//! encoder loses the older frame, which breaks no reference), and each encoder thread hands its
//! slices straight to the outputs ([`Deliver`]: each output's own bounded queue, never
//! blocking; an encoded frame dropped anywhere forces the next frame of that eye to be an IDR).
//! So latency cannot build up in a queue anywhere, and no thread between the encoder and an
//! output's sender has to be woken.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use binoc_net::os_clock::{monotonic_ns, thread_cpu_ns};
use shared_proto::latency::Series;
use shared_proto::rules::keyframe;
use shared_proto::wire::{FrameTiming, SliceOf};
use shared_proto::{Eye, Nanos};

use crate::config::StreamerConfig;
use crate::encode;
use crate::source::{RawFrame, StereoSource};

/// An encoded frame on its way to the outputs.
#[derive(Debug)]
pub struct EncodedFrame {
    pub eye: Eye,
    pub seq: u32,
    pub keyframe: bool,
    /// `send_ns` is filled in by each output's sender (a copy per output).
    pub timing: FrameTiming,
    pub data: Vec<u8>,
}

/// The capture → encoders hand-off: one newest-wins place per eye, filled for both eyes under
/// one lock and woken with one call after the lock is released. Waking the eyes one at a time
/// let the first encoder, woken onto the capture thread's own core, preempt the capture thread
/// before it had handed over the second eye: measured here at 2×1280x720@60, the right eye's
/// encoder started 2.5–4.5 ms late in one frame of eight (docs/performance.md).
struct Slots {
    state: Mutex<SlotState>,
    cv: Condvar,
}

#[derive(Default)]
struct SlotState {
    frames: [Option<RawFrame>; 2],
    closed: bool,
}

impl Slots {
    fn new() -> Self {
        Slots {
            state: Mutex::new(SlotState::default()),
            cv: Condvar::new(),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Puts each frame in its eye's place and wakes the encoders together; per eye, true if
    /// the frame replaced one that encoder never took.
    fn put(&self, frames: impl IntoIterator<Item = RawFrame>) -> [bool; 2] {
        let mut replaced = [false; 2];
        {
            let mut s = self.lock();
            for f in frames {
                let i = f.eye.index();
                replaced[i] = s.frames[i].replace(f).is_some();
            }
        }
        self.cv.notify_all();
        replaced
    }
    fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
    /// Takes the newest frame of `eye`; `None` once closed and empty.
    fn take(&self, eye: Eye) -> Option<RawFrame> {
        let mut s = self.lock();
        loop {
            if let Some(f) = s.frames[eye.index()].take() {
                return Some(f);
            }
            if s.closed {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// IDR requests per eye (from any output), merged within the minimum IDR interval
/// ([`keyframe::honour_request`]).
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
        if !keyframe::honour_request(now, last_idr, self.min_interval_ns) {
            return false; // stays requested until the interval has passed
        }
        r.swap(false, Ordering::AcqRel)
    }
}

/// What the encoder side counted for one eye (each output counts its own sending and
/// markers: [`crate::output::OutputCounters`]).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct EncoderCounters {
    pub captured: u64,
    /// Raw frames replaced in the capture slot because the encoder was still busy.
    pub dropped_source: u64,
    /// Raw frames the encoder failed on.
    pub encode_errors: u64,
    /// Raw frames not encoded because nobody was receiving (see [`PipelineState::receiver`]).
    pub idle: u64,
    pub encoded: u64,
    pub keyframes: u64,
    /// Intra-refresh sweeps started (non-IDR pictures that begin a refresh).
    pub refresh_starts: u64,
    pub idr_requests: u64,
    /// The encoder thread's CPU time (set when it ends).
    pub encode_cpu_ns: u64,
}

/// Shared state of the pipeline: its counters, and what the outputs feed back (keyframe
/// requests, the bitrate they can take: [`crate::output::Feedback`]).
pub struct PipelineState {
    pub eyes: [Mutex<EncoderCounters>; 2],
    pub idr: IdrControl,
    /// Per eye: the bitrate (bit/s) the outputs' estimates ask for; 0 = the configured one.
    pub target_bps: [AtomicU32; 2],
    /// Live rigs: the pair skew (right − left capture time) and unpaired frames.
    pub stereo: Mutex<Option<StereoCounters>>,
    pub stop: AtomicBool,
    /// `--timeline FILE`: every decoded frame's row, written by the outputs.
    pub timeline: Option<Arc<crate::timeline::Timeline>>,
    /// Per eye: the frames carry the pixel code (the outputs check it in the markers).
    pub pixel_code: [bool; 2],
    /// Receivers now (headsets connected, browser viewers), each held by a [`Receiver`].
    receivers: AtomicUsize,
    /// Set by a session: with no receiver the encoders idle (skip their frames), and the first
    /// frame after is an IDR. Unset, they always encode (tests of the pipeline alone).
    idle_without_receivers: AtomicBool,
}

/// One receiver of the encoded frames, for as long as it is held: while a session has none,
/// its encoders do not spend the CPU (a WebRTC server with no viewer, a headset away).
pub struct Receiver(Arc<PipelineState>);

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.receivers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default, Clone)]
pub struct StereoCounters {
    pub skew: Series,
    pub unpaired: [u64; 2],
}

impl PipelineState {
    pub fn new(cfg: &StreamerConfig) -> Arc<Self> {
        Self::with_timeline(cfg, None)
    }

    /// A pipeline whose outputs write each decoded frame to `timeline`.
    pub fn with_timeline(
        cfg: &StreamerConfig,
        timeline: Option<Arc<crate::timeline::Timeline>>,
    ) -> Arc<Self> {
        Arc::new(PipelineState {
            eyes: Default::default(),
            idr: IdrControl::new((cfg.deadlines.min_idr_interval_ms * 1e6) as u64),
            target_bps: Default::default(),
            stereo: Mutex::new(None),
            stop: AtomicBool::new(false),
            timeline,
            pixel_code: Eye::BOTH.map(|e| cfg.eyes.get(e).pixel_code()),
            receivers: AtomicUsize::new(0),
            idle_without_receivers: AtomicBool::new(false),
        })
    }

    /// A receiver joins; the encoders work while one is held.
    pub fn receiver(self: &Arc<Self>) -> Receiver {
        self.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver(self.clone())
    }

    /// From now on the encoders idle while no [`Receiver`] is held.
    pub fn idle_without_receivers(&self) {
        self.idle_without_receivers.store(true, Ordering::Relaxed);
    }

    /// Whether the encoders should encode now.
    pub fn wanted(&self) -> bool {
        !self.idle_without_receivers.load(Ordering::Relaxed)
            || self.receivers.load(Ordering::Relaxed) > 0
    }

    pub fn eye(&self, eye: Eye) -> std::sync::MutexGuard<'_, EncoderCounters> {
        self.eyes[eye.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Both eyes' counters as they are now.
    pub fn snapshot(&self) -> [EncoderCounters; 2] {
        Eye::BOTH.map(|e| *self.eye(e))
    }
}

/// The running capture and encoder threads.
pub struct Pipeline {
    threads: Vec<JoinHandle<Result<()>>>,
    slots: Arc<Slots>,
}

/// Where one eye's encoder thread hands each encoded slice, on that thread, the moment the
/// encoder wrote it. It must not block ([`crate::output::Output::offer`]).
pub type Deliver = Box<dyn FnMut(EncodedFrame) + Send>;

impl Pipeline {
    /// Starts capture and encoding; each eye's encoded slices go to its `deliver(eye)`.
    pub fn start(
        cfg: &StreamerConfig,
        mut source: Box<dyn StereoSource>,
        state: Arc<PipelineState>,
        deliver: impl Fn(Eye) -> Deliver,
    ) -> Result<Self> {
        let slots = Arc::new(Slots::new());
        let mut threads = Vec::new();
        // Capture starts once both encoders are warm: an encoder's first frame pays for its
        // initialisation, which would otherwise make the first real frames miss their deadline.
        // The eyes streamed (both, unless `--only-eye`).
        let eyes: Vec<Eye> = Eye::BOTH
            .into_iter()
            .filter(|&e| cfg.streams_eye(e))
            .collect();
        let warm = Arc::new(std::sync::Barrier::new(eyes.len() + 1));
        // Both encoders exist before any thread starts, so a failure cannot leave one thread
        // waiting at the barrier for a sibling that never comes.
        let (kind, why) = encode::resolve(&cfg.encoder);
        tracing::info!("encoder: {} ({why})", encode::kind_name(kind));
        let mut encoders = Vec::new();
        for &eye in &eyes {
            encoders.push(encode::open_kind(kind, &cfg.encoder, cfg.eyes.get(eye))?);
        }
        for (&eye, mut encoder) in eyes.iter().zip(encoders) {
            let size = cfg.eyes.get(eye).size;
            let (slots, state, warm) = (slots.clone(), state.clone(), warm.clone());
            let mut deliver = deliver(eye);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("encode-{eye}"))
                    .spawn(move || {
                        // A codec thread: the default slice, whatever its creator's.
                        binoc_net::sched::default_slice();
                        let blank = RawFrame::new(eye, size.width as usize, size.height as usize);
                        let warmed = encoder.encode(&blank, true);
                        warm.wait();
                        warmed?;
                        let mut seq: u32 = 0;
                        let mut last_idr: Option<Nanos> = None;
                        let mut bps = 0u32;
                        while let Some(frame) = slots.take(eye) {
                            if !state.wanted() {
                                // Nobody receives: no CPU on frames nobody sees; the first
                                // frame for a receiver is an IDR.
                                state.eye(eye).idle += 1;
                                last_idr = None;
                                continue;
                            }
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
                            // A request is taken (cleared) even when this frame is an IDR
                            // anyway (the first, or the first after idling): it is answered.
                            let force = state.idr.take(eye, start, last_idr) || last_idr.is_none();
                            // Each slice goes to the outputs the moment the encoder wrote
                            // it (a whole picture is one slice of 1), with its own sequence
                            // number: a picture's slices are consecutive units.
                            let result = encoder.encode_sliced(&frame, force, &mut |s| {
                                let now = monotonic_ns();
                                let f = EncodedFrame {
                                    eye,
                                    seq,
                                    keyframe: s.keyframe,
                                    timing: FrameTiming {
                                        frame_no: frame.frame_no,
                                        capture_ns: frame.capture_ns,
                                        encode_start_ns: start,
                                        encode_end_ns: now,
                                        send_ns: now,
                                        encoded_len: s.data.len() as u32,
                                        slice: SliceOf {
                                            index: s.index,
                                            count: s.count,
                                            recovery: s.recovery_frames,
                                        },
                                    },
                                    data: s.data.to_vec(),
                                };
                                seq = seq.wrapping_add(1);
                                deliver(f);
                            });
                            let pic = match result {
                                Ok(p) => p,
                                Err(e) => {
                                    tracing::error!(%eye, "encode failed: {e:#}");
                                    state.eye(eye).encode_errors += 1;
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
                                c.refresh_starts += u64::from(pic.refresh_start);
                                c.idr_requests += u64::from(force);
                            }
                        }
                        state.eye(eye).encode_cpu_ns = thread_cpu_ns();
                        Ok(())
                    })?,
            );
        }
        let (cap_slots, cap_state) = (slots.clone(), state.clone());
        let streamed = Eye::BOTH.map(|e| cfg.streams_eye(e));
        threads.push(
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || {
                    // The hand-over at each capture instant must not wait for an encoder's
                    // time slice (binoc_net::sched).
                    binoc_net::sched::short_slice();
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
                            let replaced =
                                cap_slots.put(pair.into_iter().filter(|f| streamed[f.eye.index()]));
                            for eye in Eye::BOTH.into_iter().filter(|e| streamed[e.index()]) {
                                let mut c = cap_state.eye(eye);
                                c.captured += 1;
                                c.dropped_source += u64::from(replaced[eye.index()]);
                            }
                        }
                        Ok(())
                    })();
                    if let Err(e) = &result {
                        tracing::error!("capture stopped: {e:#}");
                    }
                    cap_slots.close();
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
        self.slots.close();
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_newest_wins_per_eye_and_close() {
        let s = Slots::new();
        let frame = |eye, n| {
            let mut f = RawFrame::new(eye, 16, 16);
            f.frame_no = n;
            f
        };
        assert_eq!(
            s.put([frame(Eye::Left, 1), frame(Eye::Right, 1)]),
            [false, false]
        );
        assert_eq!(s.take(Eye::Right).unwrap().frame_no, 1);
        assert_eq!(
            s.put([frame(Eye::Left, 2), frame(Eye::Right, 2)]),
            [true, false],
            "only the left eye's frame 1 was never taken"
        );
        assert_eq!(s.take(Eye::Left).unwrap().frame_no, 2);
        s.put([frame(Eye::Right, 3)]);
        s.close();
        assert_eq!(
            s.take(Eye::Right).unwrap().frame_no,
            3,
            "a closed slot is emptied first"
        );
        assert!(s.take(Eye::Right).is_none());
        assert!(s.take(Eye::Left).is_none());
    }

    #[test]
    fn both_eyes_are_woken_by_one_hand_over() {
        let s = Arc::new(Slots::new());
        let waiters: Vec<_> = Eye::BOTH
            .map(|eye| {
                let s = s.clone();
                std::thread::spawn(move || s.take(eye).map(|f| (f.eye, f.frame_no)))
            })
            .into_iter()
            .collect();
        let frame = |eye| {
            let mut f = RawFrame::new(eye, 16, 16);
            f.frame_no = 7;
            f
        };
        s.put([frame(Eye::Left), frame(Eye::Right)]);
        let got: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(got, [Some((Eye::Left, 7)), Some((Eye::Right, 7))]);
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
}
