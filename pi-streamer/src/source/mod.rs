//! Stage 1 of the pipeline: sources of raw stereo frames.
//!
//! Every source implements [`StereoSource`] and delivers both eyes of one capture instant as a
//! pair, stamped with the capture time (start of exposure) on the streamer's monotonic clock.
//! The per-eye frame bookkeeping shared by all sources (crop, scale, flip, pixel code) lives in
//! [`EyeTransform`], so it is tested once without hardware.

pub mod camera;
pub mod convert;
#[cfg(feature = "libcamera")]
pub mod libcamera;
#[cfg(target_os = "linux")]
pub mod list;
pub mod test_pattern;
#[cfg(target_os = "linux")]
pub mod v4l2;
pub mod y4m;

use anyhow::Result;
use shared_proto::{pixel_code, Eye, Nanos};

use crate::config::{Crop, EyeConfig, Flip, Size, SourceSpec, StreamerConfig};

/// One raw frame in I420 (planar 4:2:0), planes packed without padding.
#[derive(Clone)]
pub struct RawFrame {
    pub eye: Eye,
    /// Capture frame number (both eyes of a pair share it).
    pub frame_no: u64,
    /// Start of exposure on the streamer's monotonic clock.
    pub capture_ns: Nanos,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RawFrame {
    pub fn new(eye: Eye, width: usize, height: usize) -> Self {
        RawFrame {
            eye,
            frame_no: 0,
            capture_ns: 0,
            width,
            height,
            data: vec![0; width * height * 3 / 2],
        }
    }
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }
    pub fn u(&self) -> &[u8] {
        let y = self.width * self.height;
        &self.data[y..y + y / 4]
    }
    pub fn v(&self) -> &[u8] {
        let y = self.width * self.height;
        &self.data[y + y / 4..]
    }
    /// Mutable (y, u, v) planes.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let ylen = self.width * self.height;
        let (y, uv) = self.data.split_at_mut(ylen);
        let (u, v) = uv.split_at_mut(ylen / 4);
        (y, u, v)
    }
}

/// A source of stereo pairs. `next_pair` blocks until the next pair is captured and returns
/// `Ok(None)` when the source has ended.
pub trait StereoSource: Send {
    fn next_pair(&mut self) -> Result<Option<[RawFrame; 2]>>;
    fn describe(&self) -> String;
    /// Live rigs (two free-running cameras): the right − left capture time of the pair just
    /// returned (ns), and the frames dropped so far for want of a partner (left, right).
    /// Synthetic and file sources capture both eyes at one instant and return `None`.
    fn pair_info(&self) -> Option<(i64, [u64; 2])> {
        None
    }
}

/// A single-eye source (what each eye's half of a stereo source is made of).
pub trait EyeSource: Send {
    /// Produces the next frame (size is the source's own); `Ok(None)` at the end.
    fn next_frame(&mut self, frame_no: u64) -> Result<Option<RawFrame>>;
    fn describe(&self) -> String;
}

/// Crop, scale to the configured size, flip, and stamp the pixel code.
pub struct EyeTransform {
    pub eye: Eye,
    pub crop: Option<Crop>,
    pub size: Size,
    pub flip: Flip,
    pub pixel_code: bool,
}

impl EyeTransform {
    pub fn from_config(eye: Eye, c: &EyeConfig) -> Self {
        EyeTransform {
            eye,
            crop: c.effective_crop(),
            size: c.size,
            flip: c.flip,
            pixel_code: c.pixel_code(),
        }
    }

    pub fn apply(&self, mut f: RawFrame) -> Result<RawFrame> {
        if let Some(c) = self.crop {
            f = crop(&f, c)?;
        }
        let (w, h) = (self.size.width as usize, self.size.height as usize);
        if (f.width, f.height) != (w, h) {
            f = scale_nearest(&f, w, h);
        }
        flip(&mut f, self.flip);
        if self.pixel_code {
            let (width, height, n) = (f.width, f.height, f.frame_no as u32);
            let (y, u, v) = f.planes_mut();
            pixel_code::write(y, width, u, v, width / 2, width, height, self.eye, n);
        }
        f.eye = self.eye;
        Ok(f)
    }
}

fn copy_plane(src: &[u8], sw: usize, dst: &mut [u8], dw: usize, dh: usize, x0: usize, y0: usize) {
    for row in 0..dh {
        let s = (y0 + row) * sw + x0;
        dst[row * dw..(row + 1) * dw].copy_from_slice(&src[s..s + dw]);
    }
}

pub fn crop(f: &RawFrame, c: Crop) -> Result<RawFrame> {
    let (x, y, w, h) = (
        c.x as usize,
        c.y as usize,
        c.width as usize,
        c.height as usize,
    );
    anyhow::ensure!(
        x + w <= f.width && y + h <= f.height && w > 0 && h > 0 && (x | y | w | h) % 2 == 0,
        "crop {w}x{h}+{x}+{y} does not fit the {}x{} source frame",
        f.width,
        f.height
    );
    let mut out = f.blank_like(w, h);
    let (oy, ou, ov) = out.planes_mut();
    copy_plane(f.y(), f.width, oy, w, h, x, y);
    copy_plane(f.u(), f.width / 2, ou, w / 2, h / 2, x / 2, y / 2);
    copy_plane(f.v(), f.width / 2, ov, w / 2, h / 2, x / 2, y / 2);
    Ok(out)
}

impl RawFrame {
    /// A black `w`x`h` frame with this frame's eye, number and capture time.
    fn blank_like(&self, w: usize, h: usize) -> RawFrame {
        RawFrame {
            eye: self.eye,
            frame_no: self.frame_no,
            capture_ns: self.capture_ns,
            width: w,
            height: h,
            data: vec![0; w * h * 3 / 2],
        }
    }
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    for row in 0..dh {
        let sy = row * sh / dh;
        let srow = &src[sy * sw..(sy + 1) * sw];
        for (col, d) in dst[row * dw..(row + 1) * dw].iter_mut().enumerate() {
            *d = srow[col * sw / dw];
        }
    }
}

/// Nearest-neighbour scaling (cheap; a filtered scaler belongs on the ISP when there is one).
pub fn scale_nearest(f: &RawFrame, w: usize, h: usize) -> RawFrame {
    let mut out = f.blank_like(w, h);
    let (oy, ou, ov) = out.planes_mut();
    scale_plane(f.y(), f.width, f.height, oy, w, h);
    scale_plane(f.u(), f.width / 2, f.height / 2, ou, w / 2, h / 2);
    scale_plane(f.v(), f.width / 2, f.height / 2, ov, w / 2, h / 2);
    out
}

fn flip_plane(p: &mut [u8], w: usize, h: usize, horizontal: bool, vertical: bool) {
    if horizontal {
        for row in p.chunks_exact_mut(w).take(h) {
            row.reverse();
        }
    }
    if vertical {
        for r in 0..h / 2 {
            let (a, b) = p.split_at_mut((h - 1 - r) * w);
            a[r * w..(r + 1) * w].swap_with_slice(&mut b[..w]);
        }
    }
}

pub fn flip(f: &mut RawFrame, how: Flip) {
    let (hz, vt) = match how {
        Flip::None => return,
        Flip::Horizontal => (true, false),
        Flip::Vertical => (false, true),
        Flip::Both => (true, true),
    };
    let (w, h) = (f.width, f.height);
    let (y, u, v) = f.planes_mut();
    flip_plane(y, w, h, hz, vt);
    flip_plane(u, w / 2, h / 2, hz, vt);
    flip_plane(v, w / 2, h / 2, hz, vt);
}

/// Paces a live-like source: the n-th frame is due at `start + n / fps`. Returns the due time
/// (the capture instant) after sleeping until it.
pub struct FramePacer {
    start: Option<Nanos>,
    interval_ns: f64,
}

impl FramePacer {
    pub fn new(fps: f64) -> Self {
        FramePacer {
            start: None,
            interval_ns: 1e9 / fps,
        }
    }

    pub fn wait(&mut self, frame_no: u64) -> Nanos {
        let now = binoc_net::os_clock::monotonic_ns();
        let start = *self.start.get_or_insert(now);
        let due = start + (frame_no as f64 * self.interval_ns) as u64;
        if due > now {
            std::thread::sleep(std::time::Duration::from_nanos(due - now));
            due
        } else {
            // Late (the machine was busy): the frame is captured now, not in the past.
            now
        }
    }
}

/// Two eye sources run as one stereo camera: both are captured at the same instant.
pub struct PairedSource {
    eyes: [Box<dyn EyeSource>; 2],
    transforms: [EyeTransform; 2],
    pacer: FramePacer,
    frame_no: u64,
    limit: Option<u64>,
    /// The eyes streamed (`only_eye`): an eye not streamed is neither made nor transformed,
    /// so a one-eye run costs one eye's source (its place in the pair is an empty frame the
    /// pipeline drops unread).
    streamed: [bool; 2],
}

impl PairedSource {
    pub fn new(
        eyes: [Box<dyn EyeSource>; 2],
        transforms: [EyeTransform; 2],
        fps: f64,
        limit: Option<u64>,
    ) -> Self {
        PairedSource {
            eyes,
            transforms,
            pacer: FramePacer::new(fps),
            frame_no: 0,
            limit,
            streamed: [true; 2],
        }
    }

    /// Only `eye` is made; the other's place in each pair is an empty frame.
    pub fn only(mut self, eye: Eye) -> Self {
        self.streamed = Eye::BOTH.map(|e| e == eye);
        self
    }

    fn make(&mut self, eye: Eye, n: u64) -> Result<Option<RawFrame>> {
        if self.streamed[eye.index()] {
            self.eyes[eye.index()].next_frame(n)
        } else {
            Ok(Some(RawFrame::new(eye, 0, 0)))
        }
    }

    fn transform(&self, eye: Eye, f: RawFrame) -> Result<RawFrame> {
        if self.streamed[eye.index()] {
            self.transforms[eye.index()].apply(f)
        } else {
            Ok(f)
        }
    }
}

impl StereoSource for PairedSource {
    fn next_pair(&mut self) -> Result<Option<[RawFrame; 2]>> {
        if self.limit.is_some_and(|l| self.frame_no >= l) {
            return Ok(None);
        }
        let n = self.frame_no;
        // A camera hands over a finished picture at its capture instant. So does this source:
        // both pictures are made (drawn, or read from their files) before the instant, and
        // the time spent making them is not counted as the pipeline's (the GStreamer bench
        // stamps its frames the same way). What follows the instant (the per-eye transform)
        // is the pipeline's, as it is after a camera.
        let (Some(mut l), Some(mut r)) = (self.make(Eye::Left, n)?, self.make(Eye::Right, n)?)
        else {
            return Ok(None);
        };
        let capture_ns = self.pacer.wait(n);
        for f in [&mut l, &mut r] {
            f.frame_no = n;
            f.capture_ns = capture_ns;
        }
        self.frame_no += 1;
        Ok(Some([
            self.transform(Eye::Left, l)?,
            self.transform(Eye::Right, r)?,
        ]))
    }

    fn describe(&self) -> String {
        format!(
            "left: {}, right: {}",
            self.eyes[0].describe(),
            self.eyes[1].describe()
        )
    }
}

/// Builds the stereo source the configuration asks for. `limit` stops it after that many pairs.
pub fn open(cfg: &StreamerConfig, limit: Option<u64>) -> Result<Box<dyn StereoSource>> {
    let transforms = Eye::BOTH.map(|e| EyeTransform::from_config(e, cfg.eyes.get(e)));
    let live = |s: &SourceSpec| matches!(s, SourceSpec::Libcamera { .. } | SourceSpec::V4l2 { .. });
    let (l, r) = (&cfg.eyes.left, &cfg.eyes.right);
    if live(&l.source) || live(&r.source) {
        return Ok(Box::new(camera::LiveStereo::new(
            open_cameras(cfg)?,
            transforms,
            l.fps,
            limit,
        )?));
    }
    let mut eyes: Vec<Box<dyn EyeSource>> = Vec::new();
    for eye in Eye::BOTH {
        let c = cfg.eyes.get(eye);
        eyes.push(match &c.source {
            SourceSpec::Test => Box::new(test_pattern::TestPattern::new(
                eye,
                c.size.width as usize,
                c.size.height as usize,
            )),
            SourceSpec::Y4m { path, half } => Box::new(y4m::Y4mSource::open(path, *half, true)?),
            SourceSpec::Libcamera { .. } | SourceSpec::V4l2 { .. } => {
                unreachable!("live sources are handled above")
            }
        });
    }
    let [l, r]: [Box<dyn EyeSource>; 2] =
        eyes.try_into().map_err(|_| anyhow::anyhow!("two eyes"))?;
    let paired = PairedSource::new([l, r], transforms, cfg.eyes.left.fps, limit);
    Ok(Box::new(match cfg.only_eye {
        Some(eye) => paired.only(eye),
        None => paired,
    }))
}

/// Opens the two cameras of a live rig (both eyes must be cameras of the same kind).
fn open_cameras(cfg: &StreamerConfig) -> Result<[Box<dyn camera::CameraDevice>; 2]> {
    let (l, r) = (&cfg.eyes.left, &cfg.eyes.right);
    match (&l.source, &r.source) {
        (SourceSpec::Libcamera { camera: a }, SourceSpec::Libcamera { camera: b }) => {
            #[cfg(feature = "libcamera")]
            {
                libcamera::open_pair([l, r], [a.clone(), b.clone()])
            }
            #[cfg(not(feature = "libcamera"))]
            {
                let _ = (a, b);
                anyhow::bail!(
                    "this pi-streamer was built without libcamera: rebuild on the Pi with `cargo build --release -p pi-streamer --features libcamera`"
                )
            }
        }
        #[cfg(target_os = "linux")]
        (SourceSpec::V4l2 { device: a }, SourceSpec::V4l2 { device: b }) => Ok([
            Box::new(v4l2::V4l2Camera::open(Eye::Left, a, l)?),
            Box::new(v4l2::V4l2Camera::open(Eye::Right, b, r)?),
        ]),
        (a, b) => anyhow::bail!(
            "both eyes must be cameras of one kind (libcamera or v4l2) to run as a stereo pair; got left `{a}`, right `{b}`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: usize, h: usize) -> RawFrame {
        let mut f = RawFrame::new(Eye::Left, w, h);
        for (i, p) in f.data.iter_mut().enumerate() {
            *p = (i % 251) as u8;
        }
        f
    }

    #[test]
    fn crop_takes_the_right_pixels_and_rejects_outside() {
        let f = numbered(8, 4);
        let c = crop(
            &f,
            Crop {
                x: 2,
                y: 2,
                width: 4,
                height: 2,
            },
        )
        .unwrap();
        assert_eq!(&c.y()[..4], &f.y()[2 * 8 + 2..2 * 8 + 6]);
        assert_eq!(c.u(), &f.u()[4 + 1..4 + 3]);
        assert!(crop(
            &f,
            Crop {
                x: 6,
                y: 0,
                width: 4,
                height: 2
            }
        )
        .is_err());
        assert!(crop(
            &f,
            Crop {
                x: 1,
                y: 0,
                width: 4,
                height: 2
            }
        )
        .is_err());
    }

    #[test]
    fn flips_are_involutions_and_move_pixels() {
        let f = numbered(8, 4);
        for how in [Flip::Horizontal, Flip::Vertical, Flip::Both] {
            let mut g = f.clone();
            flip(&mut g, how);
            assert!(g.data != f.data);
            flip(&mut g, how);
            assert!(g.data == f.data);
        }
        let mut g = f.clone();
        flip(&mut g, Flip::Horizontal);
        assert_eq!(g.y()[0], f.y()[7]);
        let mut g = f.clone();
        flip(&mut g, Flip::Vertical);
        assert_eq!(g.y()[0], f.y()[3 * 8]);
    }

    #[test]
    fn transform_stamps_readable_code_after_scaling() {
        let mut f = numbered(1280, 720);
        f.frame_no = 4242;
        let t = EyeTransform {
            eye: Eye::Right,
            crop: None,
            size: Size {
                width: 640,
                height: 360,
            },
            flip: Flip::Both,
            pixel_code: true,
        };
        let out = t.apply(f).unwrap();
        assert_eq!((out.width, out.height, out.eye), (640, 360, Eye::Right));
        assert_eq!(
            pixel_code::read(out.y(), 640, 640, 360),
            Some((Eye::Right, 4242))
        );
    }

    struct Counting(u64);
    impl EyeSource for Counting {
        fn next_frame(&mut self, _n: u64) -> Result<Option<RawFrame>> {
            self.0 += 1;
            Ok((self.0 <= 3).then(|| RawFrame::new(Eye::Left, 64, 32)))
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    /// Two [`Counting`] eyes (starting at `left` and `right`: each ends after its count
    /// reaches 3) as one 64x32 stereo source at 1000 fps.
    fn counting_pair(left: u64, right: u64) -> PairedSource {
        let t = |e| EyeTransform {
            eye: e,
            crop: None,
            size: Size {
                width: 64,
                height: 32,
            },
            flip: Flip::None,
            pixel_code: false,
        };
        PairedSource::new(
            [Box::new(Counting(left)), Box::new(Counting(right))],
            [t(Eye::Left), t(Eye::Right)],
            1000.0,
            None,
        )
    }

    #[test]
    fn paired_source_pairs_timestamps_and_stops_at_the_end_of_either_eye() {
        let mut s = counting_pair(0, 1);
        let mut n = 0;
        while let Some([l, r]) = s.next_pair().unwrap() {
            assert_eq!((l.eye, r.eye), (Eye::Left, Eye::Right));
            assert_eq!((l.frame_no, l.capture_ns), (r.frame_no, r.capture_ns));
            n += 1;
        }
        assert_eq!(n, 2, "the right eye ends after two frames");
    }

    #[test]
    fn a_paired_source_makes_only_the_streamed_eye() {
        // The right eye's source has ended before its first frame: not made, it ends nothing.
        let mut s = counting_pair(0, 3).only(Eye::Left);
        let mut n = 0;
        while let Some([l, r]) = s.next_pair().unwrap() {
            assert_eq!(
                (l.eye, l.width, l.height, l.frame_no),
                (Eye::Left, 64, 32, n)
            );
            assert_eq!(
                (r.eye, r.width, r.height, r.data.len()),
                (Eye::Right, 0, 0, 0)
            );
            n += 1;
        }
        assert_eq!(n, 3, "the left eye ends after three frames");
    }
}
