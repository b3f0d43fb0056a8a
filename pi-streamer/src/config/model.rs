//! The configuration model: what one streamer setup holds, and every default.
//!
//! These are plain values; [`super::schema`] fills them from YAML and checks them,
//! [`super::limits`] holds the ranges they must lie in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use shared_proto::Eye;

use super::limits::{HEIGHT, WIDTH};

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
    /// Where what must survive a restart is kept (`--state-dir`; by default
    /// [`binoc_net::identity::default_state_dir`]); `None`: nothing is kept, identities are
    /// made afresh for each run.
    #[serde(skip)]
    pub state_dir: Option<PathBuf>,
    /// Stream this eye alone (`--only-eye`: one-eye measurements); `None`: both.
    #[serde(skip)]
    pub only_eye: Option<Eye>,
}

impl StreamerConfig {
    /// Whether `eye` is captured, encoded and sent.
    pub fn streams_eye(&self, eye: Eye) -> bool {
        self.only_eye.is_none_or(|o| o == eye)
    }
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
    /// Draw the eye/frame pixel code into the top band of every frame: a measuring instrument
    /// that overwrites the top rows of the picture. `None` (the default) draws it only on the
    /// synthetic and file sources, never over a real camera's picture; see [`Self::pixel_code`].
    #[serde(serialize_with = "auto_or_bool")]
    pub pixel_code: Option<bool>,
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
            pixel_code: None,
            camera: CameraSettings::default(),
        }
    }
}

/// `None` written as the YAML word users write for it: `auto`.
fn auto_or_bool<S: serde::Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_bool(*b),
        None => s.serialize_str("auto"),
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

    /// Whether this eye's frames carry the pixel code: as configured, or by default on the
    /// synthetic and file sources (made for measuring) and off on real cameras (it would
    /// hide the top band of the picture).
    pub fn pixel_code(&self) -> bool {
        self.pixel_code.unwrap_or(matches!(
            self.source,
            SourceSpec::Test | SourceSpec::Y4m { .. }
        ))
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
        if !WIDTH.contains(width.into()) || !HEIGHT.contains(height.into()) {
            return Err(format!(
                "size {width}x{height} outside {}x{}..{}x{}",
                WIDTH.min, HEIGHT.min, WIDTH.max, HEIGHT.max
            ));
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
    /// This flip followed by `other`.
    pub(super) fn then(self, other: Flip) -> Flip {
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

/// How the encoder refreshes the picture so a receiver can (re)start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RefreshMode {
    /// x264's periodic intra refresh: a column of intra macroblocks sweeps the picture every
    /// `idr_interval_frames`, so no frame is several times its neighbours' size; an IDR comes
    /// only when a receiver asks. Encoders without it (openh264, V4L2) use keyframes.
    #[default]
    Intra,
    /// An IDR every `idr_interval_frames` (and on request).
    Keyframe,
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
    /// Row slices per frame, each sent the moment it is encoded and decoded the moment it
    /// arrives (x264; 1: whole frames). With x264 `threads` > 1, x264 cuts one slice per
    /// thread instead.
    pub slices: u8,
    pub refresh: RefreshMode,
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
            slices: 1,
            refresh: RefreshMode::Intra,
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
    /// What limits the QUIC datagrams in flight: `media` (a fixed window that loss and
    /// reordering do not shrink; the default), or quinn's `cubic` / `bbr` (docs/decisions.md).
    pub congestion: binoc_net::congestion::Congestion,
    /// Forward error correction of the QUIC video datagrams: `adaptive` (parity sized to the
    /// loss the headset measures, none on a clean link; the default), `off`, or a fixed
    /// overhead in percent of each frame's fragments.
    pub fec: shared_proto::rules::fec::FecMode,
    /// SHA-256 fingerprint (hex) of the headset's certificate to pin. Without it the streamer
    /// sends only to the headsets it paired with (`pi-streamer pair`, kept in the state
    /// directory's `paired-headsets`).
    pub peer_fingerprint: Option<String>,
    /// Pairing off (`--unpaired`): send to any headset, its certificate unchecked (a network
    /// you trust, a test). Not a YAML key: a choice made on the command line each time.
    #[serde(skip)]
    pub unpaired: bool,
    /// The outputs to run at once, in the order given: QUIC to the native headset app, WebRTC
    /// for browsers (WHEP). YAML `transport.kind`: one name or a list (`[quic, webrtc]`);
    /// `--transport quic,webrtc` overrides it. Never empty, no kind twice.
    #[serde(rename = "kind")]
    pub kinds: Vec<TransportKind>,
    pub webrtc: WebrtcConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            peer: None,
            pacing_mbps: 1000.0,
            max_datagram_bytes: 1200,
            congestion: Default::default(),
            fec: Default::default(),
            peer_fingerprint: None,
            unpaired: false,
            kinds: vec![TransportKind::Quic],
            webrtc: WebrtcConfig::default(),
        }
    }
}

impl TransportConfig {
    /// Whether `kind` is one of the outputs to run.
    pub fn has(&self, kind: TransportKind) -> bool {
        self.kinds.contains(&kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Quic,
    Webrtc,
}

impl TransportKind {
    pub const ALL: [TransportKind; 2] = [TransportKind::Quic, TransportKind::Webrtc];
    /// The names of [`TransportKind::ALL`], as written in YAML and on the command line.
    pub const NAMES: [&'static str; 2] = [Self::ALL[0].name(), Self::ALL[1].name()];

    pub const fn name(self) -> &'static str {
        match self {
            TransportKind::Quic => "quic",
            TransportKind::Webrtc => "webrtc",
        }
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown transport `{s}` (expected one of: {})",
                    Self::NAMES.join(", ")
                )
            })
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TransportKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
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
    /// PEM certificate chain and key for HTTPS; without them a self-signed certificate is
    /// made once and kept in the state directory (`webrtc-identity.pem`, see `state_dir`), so
    /// a browser that trusted it is not asked again; its fingerprint is logged.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// When set, `POST /whep` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Viewers at once; more are refused with 503.
    pub max_viewers: u32,
    /// Each viewer's media (ICE, DTLS, RTP) on the first free UDP port of `FIRST-LAST`, for a
    /// firewall or a port forward (`None`: any free port).
    pub udp_ports: Option<UdpPorts>,
    /// The address viewers are told to send media to, when it is not the one they reached the
    /// HTTPS server on: a 1:1 NAT, or `pi-streamer impair` in front (the port stays the same).
    pub announce_ip: Option<std::net::IpAddr>,
}

/// A range of UDP ports, `FIRST-LAST` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UdpPorts {
    pub first: u16,
    pub last: u16,
}

impl std::str::FromStr for UdpPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("`{p}` is not a UDP port (1–65535)"))
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(s)?, port(s)?),
        };
        if first > last {
            return Err(format!("`{s}`: the first port is above the last"));
        }
        Ok(UdpPorts { first, last })
    }
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
            udp_ports: None,
            announce_ip: None,
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
