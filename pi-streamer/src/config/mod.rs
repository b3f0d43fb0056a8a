//! The streamer's YAML configuration: one *profile* (both eyes' cameras, the encoder, the
//! transport, the deadlines), as in `config/streamer.yaml`, or a file of named profiles, as in
//! `config/camera_profiles.yaml`.
//!
//! Every key has a default, so an empty file is valid. Loading walks the whole document and
//! reports every problem at once — unknown keys, wrong types, out-of-range values, crops
//! outside the frame — each with its key and line.

pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use shared_proto::Eye;

use yaml::{Checker, MapReader, Node, Problem, Value};

/// The configuration embedded in the binary: the synthetic stereo source at 720p60.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/streamer.yaml");
/// The shipped camera profiles (Pi 5 with two IMX708s, USB cameras, ...).
pub const SHIPPED_PROFILES: &str = include_str!("../../../config/camera_profiles.yaml");

/// One complete streamer setup.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamerConfig {
    pub eyes: Eyes,
    pub encoder: EncoderSettings,
    pub transport: TransportConfig,
    pub deadlines: Deadlines,
    /// Lines of keys, for errors found after loading (cross-field checks, CLI overrides).
    #[serde(skip)]
    pub lines: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Eyes {
    pub left: EyeConfig,
    pub right: EyeConfig,
}

impl Eyes {
    pub fn get(&self, eye: Eye) -> &EyeConfig {
        match eye {
            Eye::Left => &self.left,
            Eye::Right => &self.right,
        }
    }
    pub fn get_mut(&mut self, eye: Eye) -> &mut EyeConfig {
        match eye {
            Eye::Left => &mut self.left,
            Eye::Right => &mut self.right,
        }
    }
}

/// One camera / eye.
#[derive(Debug, Clone, Serialize)]
pub struct EyeConfig {
    /// `test`, `y4m:PATH[#left|#right]`, `libcamera:N` (N-th camera, or its id) or
    /// `v4l2:/dev/videoN`.
    pub source: SourceSpec,
    /// Size sent to the encoder (after crop), `WIDTHxHEIGHT`, both even.
    pub size: Size,
    pub fps: f64,
    pub bitrate_mbps: f64,
    /// Periodic IDR every this many frames (the GOP); 0 = IDR only at start and on request.
    pub idr_interval_frames: u32,
    /// Region of the source frame to keep, in source pixels; must lie inside the frame.
    pub crop: Option<Crop>,
    /// Alignment between the eyes: shifts the crop window by this many source pixels.
    pub offset: Offset,
    pub flip: Flip,
    /// Draw the eye/frame pixel code into the top band of every frame.
    pub pixel_code: bool,
    /// Capture settings for real cameras (ignored by `test` and `y4m`).
    pub camera: CameraSettings,
}

impl Default for EyeConfig {
    fn default() -> Self {
        EyeConfig {
            source: SourceSpec::Test,
            size: Size {
                width: 1280,
                height: 720,
            },
            fps: 60.0,
            bitrate_mbps: 8.0,
            idr_interval_frames: 0,
            crop: None,
            offset: Offset::default(),
            flip: Flip::None,
            pixel_code: true,
            camera: CameraSettings::default(),
        }
    }
}

impl EyeConfig {
    /// The crop window after the alignment offset.
    pub fn effective_crop(&self) -> Option<Crop> {
        self.crop.map(|c| Crop {
            x: (c.x as i64 + self.offset.x as i64).max(0) as u32,
            y: (c.y as i64 + self.offset.y as i64).max(0) as u32,
            ..c
        })
    }

    /// The size of the frames the source delivers, when known before opening it.
    pub fn source_size(&self) -> Option<Size> {
        match self.source {
            SourceSpec::Test => Some(self.size),
            // The ISP scales the sensor mode to `size`: crops are in delivered pixels.
            SourceSpec::Libcamera { .. } => Some(self.size),
            SourceSpec::V4l2 { .. } => Some(self.camera.capture_size.unwrap_or(self.size)),
            SourceSpec::Y4m { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The synthetic moving stereo pattern.
    Test,
    /// Raw video from a Y4M file; with `half`, one half of a side-by-side file.
    Y4m { path: PathBuf, half: Option<Eye> },
    /// A libcamera camera (Raspberry Pi CSI cameras): its index or its id.
    Libcamera { camera: String },
    /// A V4L2 capture device (USB cameras).
    V4l2 { device: PathBuf },
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "test" {
            return Ok(SourceSpec::Test);
        }
        if let Some(cam) = s.strip_prefix("libcamera:") {
            if cam.is_empty() {
                return Err("libcamera source needs a camera index or id".into());
            }
            return Ok(SourceSpec::Libcamera {
                camera: cam.to_string(),
            });
        }
        if let Some(dev) = s.strip_prefix("v4l2:") {
            if dev.is_empty() {
                return Err("v4l2 source needs a device, e.g. v4l2:/dev/video0".into());
            }
            return Ok(SourceSpec::V4l2 {
                device: PathBuf::from(dev),
            });
        }
        let Some(rest) = s.strip_prefix("y4m:") else {
            return Err(format!(
                "unknown source `{s}` (expected test, y4m:PATH[#left|#right], libcamera:N or v4l2:/dev/videoN)"
            ));
        };
        let (path, half) = match rest.rsplit_once('#') {
            Some((p, "left")) => (p, Some(Eye::Left)),
            Some((p, "right")) => (p, Some(Eye::Right)),
            Some((_, other)) => {
                return Err(format!(
                    "unknown half `#{other}` (expected #left or #right)"
                ))
            }
            None => (rest, None),
        };
        if path.is_empty() {
            return Err("y4m source needs a path".into());
        }
        Ok(SourceSpec::Y4m {
            path: PathBuf::from(path),
            half,
        })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test => f.write_str("test"),
            SourceSpec::Y4m { path, half: None } => write!(f, "y4m:{}", path.display()),
            SourceSpec::Y4m {
                path,
                half: Some(e),
            } => write!(f, "y4m:{}#{e}", path.display()),
            SourceSpec::Libcamera { camera } => write!(f, "libcamera:{camera}"),
            SourceSpec::V4l2 { device } => write!(f, "v4l2:{}", device.display()),
        }
    }
}

impl Serialize for SourceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad size `{s}` (expected WIDTHxHEIGHT, e.g. 1280x720)");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (width, height): (u32, u32) = (
            w.trim().parse().map_err(|_| bad())?,
            h.trim().parse().map_err(|_| bad())?,
        );
        if !(16..=4096).contains(&width) || !(16..=2304).contains(&height) {
            return Err(format!("size {width}x{height} outside 16x16..4096x2304"));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "size {width}x{height} must have even width and height (4:2:0)"
            ));
        }
        Ok(Size { width, height })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Offset {
    pub x: i32,
    pub y: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Flip {
    #[default]
    None,
    Horizontal,
    Vertical,
    /// Both axes (a 180° rotation).
    Both,
}

impl Flip {
    fn then(self, other: Flip) -> Flip {
        let (h1, v1) = self.axes();
        let (h2, v2) = other.axes();
        match (h1 ^ h2, v1 ^ v2) {
            (false, false) => Flip::None,
            (true, false) => Flip::Horizontal,
            (false, true) => Flip::Vertical,
            (true, true) => Flip::Both,
        }
    }
    pub fn axes(self) -> (bool, bool) {
        match self {
            Flip::None => (false, false),
            Flip::Horizontal => (true, false),
            Flip::Vertical => (false, true),
            Flip::Both => (true, true),
        }
    }
}

/// What a real camera is asked for. `None` leaves the camera's automatic control on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraSettings {
    /// libcamera sensor mode to request (IMX708: 1536x864 up to 120 fps, 2304x1296 up to 56).
    pub sensor_mode: Option<Size>,
    /// V4L2: the size to capture at (default: `size`).
    pub capture_size: Option<Size>,
    /// V4L2 pixel format.
    pub format: CaptureFormat,
    /// Buffers in flight between camera and encoder (2 = lowest latency).
    pub buffers: u32,
    /// Fixed exposure time in µs (turns auto-exposure off: the low-latency choice).
    pub exposure_us: Option<u32>,
    /// Fixed analogue gain (1.0 = none).
    pub analogue_gain: Option<f64>,
    pub awb: AwbMode,
    /// Fixed red/blue colour gains, used when `awb: off`.
    pub colour_gains: Option<[f64; 2]>,
}

impl Default for CameraSettings {
    fn default() -> Self {
        CameraSettings {
            sensor_mode: None,
            capture_size: None,
            format: CaptureFormat::Auto,
            buffers: 2,
            exposure_us: None,
            analogue_gain: None,
            awb: AwbMode::Auto,
            colour_gains: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// The first of NV12, YUYV, MJPEG the device offers at the size.
    Auto,
    Yuyv,
    Mjpeg,
    Nv12,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AwbMode {
    Auto,
    Incandescent,
    Tungsten,
    Fluorescent,
    Indoor,
    Daylight,
    Cloudy,
    /// Fixed `colour_gains`.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Hardware (V4L2 M2M) when the board has it, else the fastest software encoder built in.
    #[default]
    Auto,
    Openh264,
    X264,
    V4l2m2m,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    #[default]
    Low,
    Medium,
    High,
}

/// Where SPS/PPS go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpsPpsMode {
    /// In front of every IDR: any IDR is a clean entry point (needed for loss recovery).
    #[default]
    EveryIdr,
    /// Only in front of the first IDR.
    FirstOnly,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncoderSettings {
    pub kind: EncoderKind,
    /// Encoder threads per eye (x264: slice threads; 0 = let the encoder decide).
    pub threads: u16,
    /// openh264 complexity.
    pub complexity: Complexity,
    /// x264 preset.
    pub preset: String,
    pub qp_min: u8,
    pub qp_max: u8,
    /// Cut each frame into slices of at most this many bytes (None: one slice per frame).
    pub slice_bytes: Option<u32>,
    pub sps_pps: SpsPpsMode,
    /// V4L2 M2M encoder device (`auto`: probe /dev/video*).
    pub device: String,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            kind: EncoderKind::Auto,
            threads: 1,
            complexity: Complexity::Low,
            preset: "ultrafast".into(),
            qp_min: 0,
            qp_max: 51,
            slice_bytes: None,
            sps_pps: SpsPpsMode::EveryIdr,
            device: "auto".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TransportConfig {
    /// `HOST:PORT` of a listening quest-client; `--peer` overrides it.
    pub peer: Option<String>,
    /// Pace datagrams at this rate (Mbit/s) so bursts do not overflow receive buffers.
    pub pacing_mbps: f64,
    /// Largest datagram to send (bytes); the path's own limit, if lower, wins.
    pub max_datagram_bytes: u16,
    /// SHA-256 fingerprint (hex) of the headset's certificate to pin. Without it the streamer
    /// accepts any certificate and logs its fingerprint (trust on first use).
    pub peer_fingerprint: Option<String>,
    /// QUIC to the native headset app, or WebRTC for browsers (WHEP).
    pub kind: TransportKind,
    pub webrtc: WebrtcConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            peer: None,
            pacing_mbps: 1000.0,
            max_datagram_bytes: 1200,
            peer_fingerprint: None,
            kind: TransportKind::Quic,
            webrtc: WebrtcConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Quic,
    Webrtc,
}

/// `transport.webrtc`: the WHEP server for browsers and WebXR.
#[derive(Debug, Clone, Serialize)]
pub struct WebrtcConfig {
    /// `ADDR:PORT` of the HTTPS server (WHEP at `/whep`, the viewer page at `/`); `--listen`
    /// overrides it.
    pub listen: String,
    /// Lower bound of the congestion controller's bitrate per eye; the upper bound is the eye's
    /// `bitrate_mbps`.
    pub min_bitrate_mbps: f64,
    /// PEM certificate chain and key for HTTPS; without them a self-signed certificate is made
    /// at start (its fingerprint is logged).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// When set, `POST /whep` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Viewers at once; more are refused with 503.
    pub max_viewers: u32,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            listen: "0.0.0.0:8443".into(),
            min_bitrate_mbps: 1.0,
            tls_cert: None,
            tls_key: None,
            token: None,
            max_viewers: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Deadlines {
    /// A frame not on the wire this long after capture is dropped (and the next frame of that
    /// eye becomes an IDR): latency never accumulates in queues.
    pub max_latency_ms: f64,
    /// Keyframe requests closer together than this are merged into one IDR.
    pub min_idr_interval_ms: f64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            max_latency_ms: 50.0,
            min_idr_interval_ms: 50.0,
        }
    }
}

/// Every problem found in one configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line > 0 {
                write!(f, "{}:{}: ", self.origin, p.line)?;
            } else {
                write!(f, "{}: ", self.origin)?;
            }
            if p.key.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "`{}`: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    fn single(origin: &str, line: u64, key: &str, message: impl fmt::Display) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems: vec![Problem {
                line,
                key: key.to_string(),
                message: message.to_string(),
            }],
        }
    }
}

fn is_fingerprint(fp: &str) -> bool {
    fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit())
}

const PROFILE_KEYS: &[&str] = &["eyes", "encoder", "transport", "deadlines"];
const EYE_KEYS: &[&str] = &[
    "source",
    "size",
    "fps",
    "bitrate_mbps",
    "idr_interval_frames",
    "gop_frames",
    "crop",
    "offset",
    "flip",
    "rotation",
    "pixel_code",
    "camera",
];

fn read_size(c: &mut Checker, n: &Node, k: &str) -> Option<Size> {
    c.parsed(n, k)
}

fn read_eye(
    c: &mut Checker,
    node: &Node,
    path: &str,
    lines: &mut BTreeMap<String, u64>,
) -> EyeConfig {
    let mut e = EyeConfig::default();
    let Some(mut m) = c.map(node, path) else {
        return e;
    };
    lines.insert(path.to_string(), node.line);
    for k in EYE_KEYS {
        lines.insert(m.key(k), m.line_of(k));
    }
    m.set(c, "source", &mut e.source, |c, n, k| c.parsed(n, k));
    m.set(c, "size", &mut e.size, read_size);
    m.set(c, "fps", &mut e.fps, |c, n, k| {
        c.number_in(n, k, 1.0, false, 240.0)
    });
    m.set(c, "bitrate_mbps", &mut e.bitrate_mbps, |c, n, k| {
        c.number_in(n, k, 0.0, true, 200.0)
    });
    // `gop_frames` is the same setting under the name many camera tools use.
    if m.get("gop_frames").is_some() && m.get("idr_interval_frames").is_some() {
        c.problem(
            m.line_of("gop_frames"),
            &m.key("gop_frames"),
            "gop_frames and idr_interval_frames are the same setting: give one",
        );
    }
    for key in ["idr_interval_frames", "gop_frames"] {
        m.set(c, key, &mut e.idr_interval_frames, |c, n, k| {
            c.integer(n, k, 0, 100_000).map(|v| v as u32)
        });
    }
    m.set_opt(c, "crop", &mut e.crop, |c, n, k| {
        let mut cm = c.map(n, k)?;
        let mut vals = [None::<u32>; 4];
        for (i, f) in ["x", "y", "width", "height"].iter().enumerate() {
            match cm.get(f) {
                Some(v) => {
                    let key = cm.key(f);
                    vals[i] = c.integer(v, &key, 0, 8192).map(|v| v as u32);
                    if let Some(x) = vals[i] {
                        if x % 2 != 0 || (i >= 2 && x == 0) {
                            c.problem(
                                v.line,
                                &key,
                                format!(
                                    "{x} must be even{}",
                                    if i >= 2 { " and non-zero" } else { "" }
                                ),
                            );
                            vals[i] = None;
                        }
                    }
                }
                None => c.problem(
                    n.line,
                    k,
                    format!("missing `{f}` (a crop needs x, y, width, height)"),
                ),
            }
        }
        cm.finish(c, &["x", "y", "width", "height"]);
        let [Some(x), Some(y), Some(width), Some(height)] = vals else {
            return None;
        };
        Some(Crop {
            x,
            y,
            width,
            height,
        })
    });
    m.set(c, "offset", &mut e.offset, |c, n, k| {
        let mut om = c.map(n, k)?;
        let mut o = Offset::default();
        for (f, slot) in [("x", &mut o.x), ("y", &mut o.y)] {
            om.set(c, f, slot, |c, n, k| {
                let v = c.integer(n, k, -4096, 4096)?;
                if v % 2 != 0 {
                    c.problem(n.line, k, format!("{v} must be even (4:2:0 chroma)"));
                    return None;
                }
                Some(v as i32)
            });
        }
        om.finish(c, &["x", "y"]);
        Some(o)
    });
    m.set(c, "flip", &mut e.flip, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("none", Flip::None),
                ("horizontal", Flip::Horizontal),
                ("vertical", Flip::Vertical),
                ("both", Flip::Both),
            ],
        )
    });
    let mut rotation = Flip::None;
    m.set(c, "rotation", &mut rotation, |c, n, k| {
        c.choice(n, k, &[("0", Flip::None), ("180", Flip::Both)])
    });
    e.flip = e.flip.then(rotation);
    m.set(c, "pixel_code", &mut e.pixel_code, |c, n, k| {
        c.boolean(n, k)
    });
    m.set(c, "camera", &mut e.camera, read_camera);
    m.finish(c, EYE_KEYS);
    e
}

fn read_camera(c: &mut Checker, n: &Node, k: &str) -> Option<CameraSettings> {
    let mut m = c.map(n, k)?;
    let mut s = CameraSettings::default();
    m.set_opt(c, "sensor_mode", &mut s.sensor_mode, read_size);
    m.set_opt(c, "capture_size", &mut s.capture_size, read_size);
    m.set(c, "format", &mut s.format, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", CaptureFormat::Auto),
                ("yuyv", CaptureFormat::Yuyv),
                ("mjpeg", CaptureFormat::Mjpeg),
                ("nv12", CaptureFormat::Nv12),
            ],
        )
    });
    m.set(c, "buffers", &mut s.buffers, |c, n, k| {
        c.integer(n, k, 1, 8).map(|v| v as u32)
    });
    m.set_opt(c, "exposure_us", &mut s.exposure_us, |c, n, k| {
        c.integer(n, k, 1, 1_000_000).map(|v| v as u32)
    });
    m.set_opt(c, "analogue_gain", &mut s.analogue_gain, |c, n, k| {
        c.number_in(n, k, 1.0, false, 64.0)
    });
    m.set(c, "awb", &mut s.awb, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", AwbMode::Auto),
                ("incandescent", AwbMode::Incandescent),
                ("tungsten", AwbMode::Tungsten),
                ("fluorescent", AwbMode::Fluorescent),
                ("indoor", AwbMode::Indoor),
                ("daylight", AwbMode::Daylight),
                ("cloudy", AwbMode::Cloudy),
                ("off", AwbMode::Off),
            ],
        )
    });
    m.set_opt(c, "colour_gains", &mut s.colour_gains, |c, n, k| {
        let Value::Seq(items) = &n.value else {
            c.problem(
                n.line,
                k,
                format!("expected [red, blue], found {}", n.value.kind()),
            );
            return None;
        };
        if items.len() != 2 {
            c.problem(
                n.line,
                k,
                format!("expected two gains [red, blue], found {}", items.len()),
            );
            return None;
        }
        let r = c.number_in(&items[0], k, 0.0, true, 32.0);
        let b = c.number_in(&items[1], k, 0.0, true, 32.0);
        Some([r?, b?])
    });
    if s.awb == AwbMode::Off && s.colour_gains.is_none() {
        c.problem(
            m.line_of("awb"),
            &m.key("awb"),
            "`off` needs colour_gains: [red, blue]",
        );
    }
    m.finish(
        c,
        &[
            "sensor_mode",
            "capture_size",
            "format",
            "buffers",
            "exposure_us",
            "analogue_gain",
            "awb",
            "colour_gains",
        ],
    );
    Some(s)
}

fn read_encoder(c: &mut Checker, n: &Node, k: &str) -> Option<EncoderSettings> {
    let mut m = c.map(n, k)?;
    let mut s = EncoderSettings::default();
    m.set(c, "kind", &mut s.kind, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("auto", EncoderKind::Auto),
                ("openh264", EncoderKind::Openh264),
                ("x264", EncoderKind::X264),
                ("v4l2m2m", EncoderKind::V4l2m2m),
            ],
        )
    });
    m.set(c, "threads", &mut s.threads, |c, n, k| {
        c.integer(n, k, 0, 64).map(|v| v as u16)
    });
    m.set(c, "complexity", &mut s.complexity, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("low", Complexity::Low),
                ("medium", Complexity::Medium),
                ("high", Complexity::High),
            ],
        )
    });
    m.set(c, "preset", &mut s.preset, |c, n, k| {
        const PRESETS: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
        ];
        let p = c.string(n, k)?;
        if !PRESETS.contains(&p) {
            c.problem(
                n.line,
                k,
                format!(
                    "unknown x264 preset `{p}` (expected one of: {})",
                    PRESETS.join(", ")
                ),
            );
            return None;
        }
        Some(p.to_string())
    });
    m.set(c, "qp_min", &mut s.qp_min, |c, n, k| {
        c.integer(n, k, 0, 51).map(|v| v as u8)
    });
    m.set(c, "qp_max", &mut s.qp_max, |c, n, k| {
        c.integer(n, k, 0, 51).map(|v| v as u8)
    });
    m.set_opt(c, "slice_bytes", &mut s.slice_bytes, |c, n, k| {
        c.integer(n, k, 200, 1_000_000).map(|v| v as u32)
    });
    m.set(c, "sps_pps", &mut s.sps_pps, |c, n, k| {
        c.choice(
            n,
            k,
            &[
                ("every_idr", SpsPpsMode::EveryIdr),
                ("first_only", SpsPpsMode::FirstOnly),
            ],
        )
    });
    m.set(c, "device", &mut s.device, |c, n, k| {
        c.string(n, k).map(str::to_string)
    });
    if s.qp_min > s.qp_max {
        c.problem(
            m.line_of("qp_min"),
            &m.key("qp_min"),
            format!("{} is above qp_max {}", s.qp_min, s.qp_max),
        );
    }
    m.finish(
        c,
        &[
            "kind",
            "threads",
            "complexity",
            "preset",
            "qp_min",
            "qp_max",
            "slice_bytes",
            "sps_pps",
            "device",
        ],
    );
    Some(s)
}

fn read_profile(c: &mut Checker, node: &Node, path: &str) -> StreamerConfig {
    let mut cfg = StreamerConfig::default();
    let Some(mut m) = c.map(node, path) else {
        return cfg;
    };
    let mut lines = BTreeMap::new();
    if let Some(eyes) = m.get("eyes") {
        let epath = m.key("eyes");
        if let Some(mut em) = c.map(eyes, &epath) {
            for eye in Eye::BOTH {
                if let Some(n) = em.get(&eye.to_string()) {
                    *cfg.eyes.get_mut(eye) = read_eye(c, n, &em.key(&eye.to_string()), &mut lines);
                }
            }
            em.finish(c, &["left", "right"]);
        }
    }
    let ekey = m.key("encoder");
    lines.insert(ekey, m.line_of("encoder"));
    m.set(c, "encoder", &mut cfg.encoder, read_encoder);
    m.set(c, "transport", &mut cfg.transport, |c, n, k| {
        let mut t = TransportConfig::default();
        let mut tm = c.map(n, k)?;
        tm.set_opt(c, "peer", &mut t.peer, |c, n, k| {
            c.string(n, k).map(str::to_string)
        });
        tm.set(c, "pacing_mbps", &mut t.pacing_mbps, |c, n, k| {
            c.number_in(n, k, 0.0, true, 100_000.0)
        });
        tm.set(
            c,
            "max_datagram_bytes",
            &mut t.max_datagram_bytes,
            |c, n, k| c.integer(n, k, 200, 65_000).map(|v| v as u16),
        );
        tm.set_opt(c, "peer_fingerprint", &mut t.peer_fingerprint, |c, n, k| {
            let fp = c.string(n, k)?;
            if !is_fingerprint(fp) {
                c.problem(
                    n.line,
                    k,
                    format!("`{fp}` is not a SHA-256 fingerprint (64 hex digits)"),
                );
                return None;
            }
            Some(fp.to_string())
        });
        tm.set(c, "kind", &mut t.kind, |c, n, k| {
            c.choice(
                n,
                k,
                &[
                    ("quic", TransportKind::Quic),
                    ("webrtc", TransportKind::Webrtc),
                ],
            )
        });
        tm.set(c, "webrtc", &mut t.webrtc, read_webrtc);
        tm.finish(
            c,
            &[
                "peer",
                "pacing_mbps",
                "max_datagram_bytes",
                "peer_fingerprint",
                "kind",
                "webrtc",
            ],
        );
        Some(t)
    });
    m.set(c, "deadlines", &mut cfg.deadlines, |c, n, k| {
        let mut d = Deadlines::default();
        let mut dm = c.map(n, k)?;
        dm.set(c, "max_latency_ms", &mut d.max_latency_ms, |c, n, k| {
            c.number_in(n, k, 0.0, true, 10_000.0)
        });
        dm.set(
            c,
            "min_idr_interval_ms",
            &mut d.min_idr_interval_ms,
            |c, n, k| c.number_in(n, k, 0.0, false, 10_000.0),
        );
        dm.finish(c, &["max_latency_ms", "min_idr_interval_ms"]);
        Some(d)
    });
    m.finish(c, PROFILE_KEYS);
    cfg.lines = lines;
    cross_checks(c, &cfg, path);
    cfg
}

fn read_webrtc(c: &mut Checker, n: &Node, k: &str) -> Option<WebrtcConfig> {
    let mut w = WebrtcConfig::default();
    let mut m = c.map(n, k)?;
    m.set(c, "listen", &mut w.listen, |c, n, k| {
        let s = c.string(n, k)?;
        if s.parse::<std::net::SocketAddr>().is_err() {
            c.problem(
                n.line,
                k,
                format!("`{s}` is not ADDR:PORT (e.g. 0.0.0.0:8443)"),
            );
            return None;
        }
        Some(s.to_string())
    });
    m.set(c, "min_bitrate_mbps", &mut w.min_bitrate_mbps, |c, n, k| {
        c.number_in(n, k, 0.0, true, 200.0)
    });
    m.set_opt(c, "tls_cert", &mut w.tls_cert, |c, n, k| {
        c.string(n, k).map(PathBuf::from)
    });
    m.set_opt(c, "tls_key", &mut w.tls_key, |c, n, k| {
        c.string(n, k).map(PathBuf::from)
    });
    m.set_opt(c, "token", &mut w.token, |c, n, k| {
        let t = c.string(n, k)?;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            c.problem(n.line, k, "a token is printable ASCII without spaces");
            return None;
        }
        Some(t.to_string())
    });
    m.set(c, "max_viewers", &mut w.max_viewers, |c, n, k| {
        c.integer(n, k, 1, 64).map(|v| v as u32)
    });
    let line = m.line_of("tls_key").max(m.line_of("tls_cert"));
    m.finish(
        c,
        &[
            "listen",
            "min_bitrate_mbps",
            "tls_cert",
            "tls_key",
            "token",
            "max_viewers",
        ],
    );
    if w.tls_cert.is_some() != w.tls_key.is_some() {
        c.problem(
            line,
            k,
            "tls_cert and tls_key go together (or neither, for a self-signed certificate)",
        );
    }
    Some(w)
}

/// Checks across keys (crop against the frame, the eyes as one stereo pair).
fn cross_checks(c: &mut Checker, cfg: &StreamerConfig, path: &str) {
    let line = |k: &str| cfg.lines.get(k).copied().unwrap_or(0);
    let prefix = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    for eye in Eye::BOTH {
        let e = cfg.eyes.get(eye);
        let ek = prefix(&format!("eyes.{eye}"));
        if let (Some(crop), Some(frame)) = (e.effective_crop(), e.source_size()) {
            let shifted = e.offset != Offset::default();
            let raw = e.crop.expect("effective crop comes from crop");
            let bad_offset =
                (raw.x as i64 + e.offset.x as i64) < 0 || (raw.y as i64 + e.offset.y as i64) < 0;
            if bad_offset
                || crop.x + crop.width > frame.width
                || crop.y + crop.height > frame.height
            {
                c.problem(
                    line(&format!("{ek}.crop")),
                    &format!("{ek}.crop"),
                    format!(
                        "{}x{}+{}+{}{} lies outside the {} source frame",
                        raw.width,
                        raw.height,
                        raw.x,
                        raw.y,
                        if shifted {
                            format!(" shifted by offset ({}, {})", e.offset.x, e.offset.y)
                        } else {
                            String::new()
                        },
                        frame
                    ),
                );
            }
        }
        if e.crop.is_none() && e.offset != Offset::default() {
            c.problem(
                line(&format!("{ek}.offset")),
                &format!("{ek}.offset"),
                "an offset shifts the crop window: give a crop too",
            );
        }
    }
    let (l, r) = (&cfg.eyes.left, &cfg.eyes.right);
    if l.fps != r.fps {
        let k = prefix("eyes.right.fps");
        c.problem(
            line(&k).max(line(&prefix("eyes.right"))),
            &k,
            format!(
                "{} differs from eyes.left.fps {}: both cameras run as one stereo pair",
                r.fps, l.fps
            ),
        );
    }
}

/// A file of named profiles (`config/camera_profiles.yaml`).
#[derive(Debug, Clone)]
pub struct Profiles {
    /// The profile used when none is named.
    pub default: String,
    pub profiles: BTreeMap<String, StreamerConfig>,
}

impl Profiles {
    pub fn get(&self, name: Option<&str>) -> Result<&StreamerConfig, String> {
        let name = name.unwrap_or(&self.default);
        self.profiles.get(name).ok_or_else(|| {
            format!(
                "no profile `{name}` (profiles: {})",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// What a configuration file holds: one profile, or named profiles.
#[derive(Debug, Clone)]
pub enum ConfigFile {
    Single(Box<StreamerConfig>),
    Profiles(Profiles),
}

impl ConfigFile {
    /// Parses and checks YAML, reporting every problem. `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root =
            yaml::parse(text).map_err(|(line, msg)| ConfigError::single(origin, line, "", msg))?;
        let mut c = Checker::default();
        let is_profiles = matches!(&root.value, Value::Map(m)
            if m.iter().any(|(k, _)| matches!(&k.value, Value::Str(s) if s == "profiles")));
        let file = if is_profiles {
            let mut m: MapReader = c.map(&root, "").expect("root is a mapping");
            let mut profiles = BTreeMap::new();
            let pnode = m.get("profiles").expect("checked above");
            if let Some(mut pm) = c.map(pnode, "profiles") {
                let Value::Map(entries) = &pnode.value else {
                    unreachable!()
                };
                for (k, _) in entries {
                    let Value::Str(name) = &k.value else {
                        c.problem(k.line, "profiles", "profile names must be strings");
                        continue;
                    };
                    let node = pm.get(name).expect("key from this map");
                    let cfg = read_profile(&mut c, node, &format!("profiles.{name}"));
                    profiles.insert(name.clone(), cfg);
                }
                pm.finish(&mut c, &[]);
            }
            let mut default = String::new();
            m.set(&mut c, "default", &mut default, |c, n, k| {
                c.string(n, k).map(str::to_string)
            });
            if default.is_empty() {
                default = profiles.keys().next().cloned().unwrap_or_default();
            }
            if !profiles.contains_key(&default) {
                c.problem(
                    m.line_of("default"),
                    "default",
                    format!("no profile named `{default}`"),
                );
            }
            if profiles.is_empty() {
                c.problem(m.line_of("profiles"), "profiles", "no profiles defined");
            }
            m.finish(&mut c, &["profiles", "default"]);
            ConfigFile::Profiles(Profiles { default, profiles })
        } else {
            ConfigFile::Single(Box::new(read_profile(&mut c, &root, "")))
        };
        if c.problems.is_empty() {
            Ok(file)
        } else {
            c.problems.sort_by_key(|p| p.line);
            Err(ConfigError {
                origin: origin.to_string(),
                problems: c.problems,
            })
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single(&path.display().to_string(), 0, "", e))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// The profile to run: the single one, or `name` (default: the file's `default`).
    pub fn select(self, name: Option<&str>, origin: &str) -> Result<StreamerConfig, ConfigError> {
        match self {
            ConfigFile::Single(cfg) => match name {
                Some(n) => Err(ConfigError::single(
                    origin,
                    0,
                    "",
                    format!("--profile {n}: this file holds one profile, not named profiles"),
                )),
                None => Ok(*cfg),
            },
            ConfigFile::Profiles(p) => p
                .get(name)
                .cloned()
                .map_err(|e| ConfigError::single(origin, 0, "", e)),
        }
    }
}

impl StreamerConfig {
    /// Parses and checks one profile (a file of named profiles selects its default).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        ConfigFile::from_yaml(text, origin)?.select(None, origin)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        ConfigFile::load(path)?.select(None, &path.display().to_string())
    }

    pub fn embedded() -> Self {
        Self::from_yaml(EMBEDDED_DEFAULT, "embedded config/streamer.yaml")
            .expect("the embedded config is valid")
    }

    /// Re-checks values that may have been changed after loading (command-line overrides).
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut c = Checker::default();
        let e = &self.encoder;
        if e.qp_min > e.qp_max {
            c.problem(
                0,
                "encoder.qp_min",
                format!("{} is above qp_max {}", e.qp_min, e.qp_max),
            );
        }
        if let Some(s) = e.slice_bytes {
            if !(200..=1_000_000).contains(&s) {
                c.problem(
                    0,
                    "encoder.slice_bytes",
                    format!("{s} outside 200..1000000"),
                );
            }
        }
        if let Some(fp) = &self.transport.peer_fingerprint {
            if !is_fingerprint(fp) {
                c.problem(
                    0,
                    "transport.peer_fingerprint",
                    format!("`{fp}` is not a SHA-256 fingerprint (64 hex digits)"),
                );
            }
        }
        cross_checks(&mut c, self, "");
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                origin: origin.to_string(),
                problems: c.problems,
            })
        }
    }

    /// The resolved configuration as YAML (what `check-config` prints).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
