//! Live cameras (libcamera, V4L2) as one stereo source.
//!
//! Each camera is a [`CameraDevice`] (the thin device layer: only it needs hardware) that
//! delivers I420 frames stamped with the driver's capture time. [`LiveStereo`] runs one thread
//! per camera, pairs left and right frames by timestamp ([`Pairer`]), reports the pair skew,
//! and applies each eye's crop/scale/flip/pixel code. Everything here except the devices is
//! tested without hardware through [`CameraDevice`].

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use shared_proto::latency::Series;
use shared_proto::{Eye, Nanos};

use super::{EyeTransform, RawFrame, StereoSource};

/// One frame from a camera: I420 at the camera's size, captured at `timestamp_ns` (start of
/// exposure where the device reports it, on the streamer's monotonic clock).
pub struct CapturedFrame {
    pub timestamp_ns: Nanos,
    /// The device's own frame counter (gaps mean the device dropped frames).
    pub sequence: u64,
    pub frame: RawFrame,
}

/// The device layer of one camera.
pub trait CameraDevice: Send {
    /// Blocks until the next frame; `Ok(None)` when the camera has ended.
    fn capture(&mut self) -> Result<Option<CapturedFrame>>;
    fn describe(&self) -> String;
}

/// Pairs left and right frames whose capture times are within `tolerance_ns` (half a frame
/// interval): a frame with no partner is dropped, never paired with a frame from another
/// instant.
pub struct Pairer {
    tolerance_ns: u64,
    pending: [VecDeque<CapturedFrame>; 2],
    /// Frames dropped because their partner never came (per eye).
    pub unpaired: [u64; 2],
    /// right − left capture time of every pair (ns; summaries in ms).
    pub skew_ns: Series,
}

/// Frames waiting for a partner, per eye: more means one camera is far behind the other.
const MAX_PENDING: usize = 4;

impl Pairer {
    pub fn new(fps: f64) -> Self {
        Pairer {
            tolerance_ns: (0.5e9 / fps) as u64,
            pending: [VecDeque::new(), VecDeque::new()],
            unpaired: [0; 2],
            skew_ns: Series::default(),
        }
    }

    /// Adds one eye's frame; returns a pair when one is complete.
    pub fn push(&mut self, eye: Eye, f: CapturedFrame) -> Option<[CapturedFrame; 2]> {
        let q = &mut self.pending[eye.index()];
        q.push_back(f);
        if q.len() > MAX_PENDING {
            q.pop_front();
            self.unpaired[eye.index()] += 1;
        }
        loop {
            let (l, r) = (self.pending[0].front()?, self.pending[1].front()?);
            let skew = r.timestamp_ns as i64 - l.timestamp_ns as i64;
            if skew.unsigned_abs() <= self.tolerance_ns {
                let l = self.pending[0].pop_front()?;
                let r = self.pending[1].pop_front()?;
                self.skew_ns.push(skew);
                return Some([l, r]);
            }
            // The older frame's partner has passed: it will never pair.
            let older = if skew > 0 { 0 } else { 1 };
            self.pending[older].pop_front();
            self.unpaired[older] += 1;
        }
    }
}

enum Event {
    Frame(Eye, CapturedFrame),
    Failed(Eye, String),
    Ended(Eye),
}

/// Two cameras as one stereo source.
pub struct LiveStereo {
    rx: Receiver<Event>,
    pairer: Pairer,
    transforms: [EyeTransform; 2],
    describe: String,
    pair_no: u64,
    last_skew_ns: i64,
    limit: Option<u64>,
    /// A camera silent this long has stopped.
    stall: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LiveStereo {
    pub fn new(
        cameras: [Box<dyn CameraDevice>; 2],
        transforms: [EyeTransform; 2],
        fps: f64,
        limit: Option<u64>,
    ) -> Result<Self> {
        let describe = format!(
            "left: {}, right: {}",
            cameras[0].describe(),
            cameras[1].describe()
        );
        // Small: a consumer that falls behind must see fresh frames, not a backlog.
        let (tx, rx) = crossbeam_channel::bounded(2 * MAX_PENDING);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for (eye, mut cam) in Eye::BOTH.into_iter().zip(cameras) {
            let (tx, stop) = (tx.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("camera-{eye}"))
                    .spawn(move || {
                        binoc_net::sched::short_slice();
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let ev = match cam.capture() {
                                Ok(Some(f)) => Event::Frame(eye, f),
                                Ok(None) => Event::Ended(eye),
                                Err(e) => Event::Failed(eye, format!("{e:#}")),
                            };
                            let last = !matches!(ev, Event::Frame(..));
                            match tx.try_send(ev) {
                                Ok(()) => {}
                                Err(crossbeam_channel::TrySendError::Full(ev)) => {
                                    if last {
                                        let _ = tx.send(ev);
                                    } else {
                                        tracing::debug!(%eye, "consumer behind: camera frame dropped");
                                    }
                                }
                                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
                            }
                            if last {
                                return;
                            }
                        }
                    })?,
            );
        }
        Ok(LiveStereo {
            rx,
            pairer: Pairer::new(fps),
            transforms,
            describe,
            pair_no: 0,
            last_skew_ns: 0,
            limit,
            stall: Duration::from_millis(2000).max(Duration::from_secs_f64(10.0 / fps)),
            stop,
            threads,
        })
    }

    pub fn pairer(&self) -> &Pairer {
        &self.pairer
    }
}

impl StereoSource for LiveStereo {
    fn next_pair(&mut self) -> Result<Option<[RawFrame; 2]>> {
        if self.limit.is_some_and(|l| self.pair_no >= l) {
            return Ok(None);
        }
        loop {
            let ev = match self.rx.recv_timeout(self.stall) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(anyhow!(
                        "no frame from either camera for {:.1} s: the cameras stopped",
                        self.stall.as_secs_f64()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            };
            let (eye, f) = match ev {
                Event::Frame(eye, f) => (eye, f),
                Event::Failed(eye, e) => return Err(anyhow!("{eye} camera failed: {e}")),
                Event::Ended(eye) => {
                    tracing::info!(%eye, "camera ended");
                    return Ok(None);
                }
            };
            let Some([l, r]) = self.pairer.push(eye, f) else {
                continue;
            };
            let n = self.pair_no;
            self.pair_no += 1;
            self.last_skew_ns = r.timestamp_ns as i64 - l.timestamp_ns as i64;
            if n > 0 && n % 600 == 0 {
                let s = self.pairer.skew_ns.summary();
                tracing::info!(
                    "stereo pair skew (right − left): mean {:.2} ms, max |skew| {:.2} ms; unpaired frames L {} R {}",
                    s.mean,
                    s.max.abs().max(s.min.abs()),
                    self.pairer.unpaired[0],
                    self.pairer.unpaired[1]
                );
            }
            let mut out = Vec::with_capacity(2);
            for (i, c) in [l, r].into_iter().enumerate() {
                let mut frame = c.frame;
                frame.frame_no = n;
                // Each eye keeps its own capture time: glass-to-glass is per eye.
                frame.capture_ns = c.timestamp_ns;
                out.push(self.transforms[i].apply(frame)?);
            }
            let r = out.pop().expect("two frames");
            let l = out.pop().expect("two frames");
            return Ok(Some([l, r]));
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn pair_info(&self) -> Option<(i64, [u64; 2])> {
        Some((self.last_skew_ns, self.pairer.unpaired))
    }
}

impl Drop for LiveStereo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Unblock senders; camera threads end after their current capture.
        while self.rx.try_recv().is_ok() {}
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flip, Size};

    fn frame(eye: Eye, ts: u64, seq: u64) -> CapturedFrame {
        let mut f = RawFrame::new(eye, 64, 48);
        f.data.fill(seq as u8);
        CapturedFrame {
            timestamp_ns: ts,
            sequence: seq,
            frame: f,
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn pairs_by_timestamp_and_drops_frames_without_partner() {
        let mut p = Pairer::new(100.0); // 10 ms frames, 5 ms tolerance
        assert!(p.push(Eye::Left, frame(Eye::Left, 100 * MS, 0)).is_none());
        let [l, r] = p.push(Eye::Right, frame(Eye::Right, 101 * MS, 0)).unwrap();
        assert_eq!((l.timestamp_ns, r.timestamp_ns), (100 * MS, 101 * MS));
        // The right camera drops a frame: left 110 has no partner and is dropped when right 120
        // arrives; left 120 pairs with it.
        assert!(p.push(Eye::Left, frame(Eye::Left, 110 * MS, 1)).is_none());
        assert!(p
            .push(Eye::Right, frame(Eye::Right, 120 * MS + 500_000, 2))
            .is_none());
        assert_eq!(p.unpaired, [1, 0]);
        let [l, r] = p.push(Eye::Left, frame(Eye::Left, 120 * MS, 2)).unwrap();
        assert_eq!((l.sequence, r.sequence), (2, 2));
        let s = p.skew_ns.summary();
        assert_eq!(s.count, 2);
        assert!((s.mean - 0.75).abs() < 1e-9, "{} ms", s.mean);
    }

    #[test]
    fn a_camera_far_ahead_never_grows_the_backlog() {
        let mut p = Pairer::new(60.0);
        for i in 0..100 {
            assert!(p
                .push(Eye::Left, frame(Eye::Left, i * 16 * MS, i))
                .is_none());
        }
        assert!(p.pending[0].len() <= MAX_PENDING);
        assert_eq!(p.unpaired[0], 100 - MAX_PENDING as u64);
        // The right camera catches up near the newest left frame: they pair.
        assert!(p
            .push(Eye::Right, frame(Eye::Right, 99 * 16 * MS + MS, 0))
            .is_some());
    }

    /// A fake camera behind the device trait: frames stamped every `period` from `t0`, delivered
    /// in real time (one every 2 ms, like a live camera, so both run in step), optionally
    /// dropping every `drop_every`-th frame, and failing after `fail_after` frames.
    struct FakeCamera {
        eye: Eye,
        t0: u64,
        n: u64,
        period: u64,
        fail_after: Option<u64>,
        drop_every: Option<u64>,
        start: std::time::Instant,
    }

    impl CameraDevice for FakeCamera {
        fn capture(&mut self) -> Result<Option<CapturedFrame>> {
            if self.fail_after == Some(self.n) {
                anyhow::bail!("sensor timeout (fake)");
            }
            let n = self.n;
            self.n += 1;
            if self.drop_every.is_some_and(|d| n > 0 && n % d == 0) {
                return self.capture();
            }
            let due = self.start + Duration::from_millis(2 * n);
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            Ok(Some(frame(self.eye, self.t0 + n * self.period, n)))
        }
        fn describe(&self) -> String {
            format!("fake {}", self.eye)
        }
    }

    fn transforms() -> [EyeTransform; 2] {
        Eye::BOTH.map(|eye| EyeTransform {
            eye,
            crop: None,
            size: Size {
                width: 64,
                height: 48,
            },
            flip: Flip::None,
            pixel_code: false,
        })
    }

    #[test]
    fn live_stereo_pairs_two_cameras_and_keeps_each_eyes_capture_time() {
        let cams: [Box<dyn CameraDevice>; 2] = [
            Box::new(FakeCamera {
                eye: Eye::Left,
                t0: 1_000 * MS,
                n: 0,
                period: 16 * MS,
                fail_after: None,
                drop_every: Some(7),
                start: std::time::Instant::now(),
            }),
            Box::new(FakeCamera {
                eye: Eye::Right,
                t0: 1_000 * MS + 300_000,
                n: 0,
                period: 16 * MS,
                fail_after: None,
                drop_every: None,
                start: std::time::Instant::now(),
            }),
        ];
        let mut s = LiveStereo::new(cams, transforms(), 60.0, Some(20)).unwrap();
        let mut last = None;
        for n in 0..20 {
            let [l, r] = s.next_pair().unwrap().expect("a pair");
            assert_eq!((l.eye, r.eye), (Eye::Left, Eye::Right));
            assert_eq!((l.frame_no, r.frame_no), (n, n));
            assert_eq!(
                r.capture_ns - l.capture_ns,
                300_000,
                "pairs are same-instant"
            );
            assert!(last.is_none_or(|t| l.capture_ns > t), "time moves forward");
            let (skew, _) = s.pair_info().unwrap();
            assert_eq!(skew, 300_000);
            last = Some(l.capture_ns);
        }
        assert!(s.next_pair().unwrap().is_none(), "limit reached");
        assert!(
            s.pairer().unpaired[1] > 0,
            "right frames whose left partner was dropped"
        );
    }

    #[test]
    fn a_failing_camera_is_a_clear_error() {
        let cams: [Box<dyn CameraDevice>; 2] = [
            Box::new(FakeCamera {
                eye: Eye::Left,
                t0: 0,
                n: 0,
                period: 16 * MS,
                fail_after: None,
                drop_every: None,
                start: std::time::Instant::now(),
            }),
            Box::new(FakeCamera {
                eye: Eye::Right,
                t0: 0,
                n: 0,
                period: 16 * MS,
                fail_after: Some(3),
                drop_every: None,
                start: std::time::Instant::now(),
            }),
        ];
        let mut s = LiveStereo::new(cams, transforms(), 60.0, None).unwrap();
        let err = loop {
            match s.next_pair() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the source must fail, not end"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(
            err.contains("right camera failed") && err.contains("sensor timeout"),
            "{err}"
        );
    }
}
