//! The streamer's YAML configuration (see `config/streamer.yaml`).
//!
//! Every section has defaults, so an empty file is valid. Unknown keys and bad values are
//! errors that name the key and the line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use shared_proto::Eye;

/// The configuration embedded in the binary: the synthetic stereo source at 720p60.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/streamer.yaml");

fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamerConfig {
    pub eyes: Eyes,
    pub encoder: Spanned<EncoderSettings>,
    pub transport: TransportConfig,
    pub deadlines: Deadlines,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        StreamerConfig {
            eyes: Eyes::default(),
            encoder: unspanned(EncoderSettings::default()),
            transport: TransportConfig::default(),
            deadlines: Deadlines::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Eyes {
    pub left: Spanned<EyeConfig>,
    pub right: Spanned<EyeConfig>,
}

impl Default for Eyes {
    fn default() -> Self {
        Eyes {
            left: unspanned(EyeConfig::default()),
            right: unspanned(EyeConfig::default()),
        }
    }
}

impl Eyes {
    pub fn get(&self, eye: Eye) -> &EyeConfig {
        match eye {
            Eye::Left => &self.left.value,
            Eye::Right => &self.right.value,
        }
    }
    pub fn get_mut(&mut self, eye: Eye) -> &mut EyeConfig {
        match eye {
            Eye::Left => &mut self.left.value,
            Eye::Right => &mut self.right.value,
        }
    }
}

/// One camera / eye.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EyeConfig {
    /// `test`, `y4m:PATH`, or `y4m:PATH#left` / `y4m:PATH#right` for one half of a
    /// side-by-side file.
    pub source: SourceSpec,
    /// Size sent to the encoder (after crop), `WIDTHxHEIGHT`, both even.
    pub size: Size,
    #[serde(deserialize_with = "fps")]
    pub fps: f64,
    #[serde(deserialize_with = "bitrate")]
    pub bitrate_mbps: f64,
    /// Periodic IDR every this many frames; 0 = IDR only at start and on request.
    pub idr_interval_frames: u32,
    /// Region of the source frame to keep, in source pixels; must lie inside the frame.
    pub crop: Option<Spanned<Crop>>,
    pub flip: Flip,
    /// Draw the eye/frame pixel code into the top band of every frame.
    pub pixel_code: bool,
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
            flip: Flip::None,
            pixel_code: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The synthetic moving stereo pattern.
    Test,
    /// Raw video from a Y4M file; with `half`, one half of a side-by-side file.
    Y4m { path: PathBuf, half: Option<Eye> },
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "test" {
            return Ok(SourceSpec::Test);
        }
        let Some(rest) = s.strip_prefix("y4m:") else {
            return Err(format!(
                "unknown source `{s}` (expected `test` or `y4m:PATH[#left|#right]`)"
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
        }
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
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
        if !(16..=3840).contains(&width) || !(16..=2160).contains(&height) {
            return Err(format!("size {width}x{height} outside 16x16..3840x2160"));
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

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Flip {
    #[default]
    None,
    Horizontal,
    Vertical,
    /// Both axes (a 180° rotation).
    Both,
}

fn fps<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(1.0..=240.0).contains(&v) {
        return Err(D::Error::custom(format!("fps {v} outside 1..240")));
    }
    Ok(v)
}

fn bitrate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v > 0.0 && v <= 200.0) {
        return Err(D::Error::custom(format!(
            "bitrate_mbps {v} must be > 0 and ≤ 200"
        )));
    }
    Ok(v)
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(D::Error::custom(format!("{v} must be a finite number > 0")));
    }
    Ok(v)
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(D::Error::custom(format!("{v} must be a finite number ≥ 0")));
    }
    Ok(v)
}

fn qp<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if v > 51 {
        return Err(D::Error::custom(format!("QP {v} above 51")));
    }
    Ok(v)
}

fn datagram_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = u16::deserialize(d)?;
    if !(200..=65_000).contains(&v) {
        return Err(D::Error::custom(format!("{v} outside 200..65000")));
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    #[default]
    Openh264,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    #[default]
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderSettings {
    pub kind: EncoderKind,
    /// Encoder threads per eye (0 = let the encoder decide).
    pub threads: u16,
    pub complexity: Complexity,
    #[serde(deserialize_with = "qp")]
    pub qp_min: u8,
    #[serde(deserialize_with = "qp")]
    pub qp_max: u8,
    /// Cut each frame into slices of at most this many bytes (None: one slice per frame).
    pub slice_bytes: Option<u32>,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            kind: EncoderKind::Openh264,
            threads: 1,
            complexity: Complexity::Low,
            qp_min: 0,
            qp_max: 51,
            slice_bytes: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// `HOST:PORT` of a listening quest-client; `--peer` overrides it.
    pub peer: Option<String>,
    /// Pace datagrams at this rate (Mbit/s) so bursts do not overflow receive buffers.
    #[serde(deserialize_with = "positive")]
    pub pacing_mbps: f64,
    /// Largest datagram to send (bytes); the path's own limit, if lower, wins.
    #[serde(deserialize_with = "datagram_bytes")]
    pub max_datagram_bytes: u16,
    /// SHA-256 fingerprint (hex) of the headset's certificate to pin. Without it the streamer
    /// accepts any certificate and logs its fingerprint (trust on first use).
    #[serde(deserialize_with = "fingerprint")]
    pub peer_fingerprint: Option<String>,
}

fn is_fingerprint(fp: &str) -> bool {
    fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit())
}

fn fingerprint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(fp) = &v {
        if !is_fingerprint(fp) {
            return Err(D::Error::custom(format!(
                "`{fp}` is not a SHA-256 fingerprint (64 hex digits)"
            )));
        }
    }
    Ok(v)
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            peer: None,
            pacing_mbps: 1000.0,
            max_datagram_bytes: 1200,
            peer_fingerprint: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    /// A frame not on the wire this long after capture is dropped (and the next frame of that
    /// eye becomes an IDR): latency never accumulates in queues.
    #[serde(deserialize_with = "positive")]
    pub max_latency_ms: f64,
    /// Keyframe requests closer together than this are merged into one IDR.
    #[serde(deserialize_with = "non_negative")]
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

/// A configuration error, with the YAML location when known.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

fn at(origin: &str, line: u64, key: &str, msg: impl fmt::Display) -> ConfigError {
    let origin = if line > 0 {
        format!("{origin}:{line}")
    } else {
        origin.to_string()
    };
    ConfigError {
        origin,
        message: format!("`{key}`: {msg}"),
    }
}

impl StreamerConfig {
    /// Parses and validates YAML. `origin` names the file in error messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: StreamerConfig = serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            // saphyr's own rendering names the key; keep it on one line without the snippet.
            let mut msg = e.without_snippet().to_string();
            // Errors raised by value checks know the line but not the key: take the key from
            // the YAML line itself, so every message names it.
            let key = text
                .lines()
                .nth((line as usize).saturating_sub(1))
                .and_then(|l| l.split_once(':'))
                .map(|(k, _)| k.trim().trim_start_matches("- ").trim_matches(['"', '\'']))
                .filter(|k| !k.is_empty() && !k.contains(' '));
            if let Some(key) = key {
                if !msg.contains(key) {
                    msg = format!("`{key}`: {msg}");
                }
            }
            ConfigError {
                origin: format!("{origin}:{line}"),
                message: msg,
            }
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    pub fn embedded() -> Self {
        Self::from_yaml(EMBEDDED_DEFAULT, "embedded config/streamer.yaml")
            .expect("the embedded config is valid")
    }

    /// Cross-field checks that serde cannot do on its own.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        for (eye, spanned) in [(Eye::Left, &self.eyes.left), (Eye::Right, &self.eyes.right)] {
            let e = &spanned.value;
            if let Some(crop) = &e.crop {
                let c = crop.value;
                let line = crop.referenced.line();
                if c.width == 0
                    || c.height == 0
                    || c.x % 2 != 0
                    || c.y % 2 != 0
                    || c.width % 2 != 0
                    || c.height % 2 != 0
                {
                    return Err(at(
                        origin,
                        line,
                        &format!("eyes.{eye}.crop"),
                        "x, y, width and height must be even and non-zero",
                    ));
                }
                if matches!(e.source, SourceSpec::Test)
                    && (c.x + c.width > e.size.width || c.y + c.height > e.size.height)
                {
                    return Err(at(
                        origin,
                        line,
                        &format!("eyes.{eye}.crop"),
                        format!(
                            "{}x{}+{}+{} lies outside the {} test frame",
                            c.width, c.height, c.x, c.y, e.size
                        ),
                    ));
                }
            }
        }
        let (l, r) = (&self.eyes.left.value, &self.eyes.right.value);
        if l.fps != r.fps {
            return Err(at(
                origin,
                self.eyes.right.referenced.line(),
                "eyes.right.fps",
                format!(
                    "{} differs from eyes.left.fps {}: both cameras run as one stereo pair",
                    r.fps, l.fps
                ),
            ));
        }
        if let Some(fp) = &self.transport.peer_fingerprint {
            if !is_fingerprint(fp) {
                return Err(at(
                    origin,
                    0,
                    "transport.peer_fingerprint",
                    format!("`{fp}` is not a SHA-256 fingerprint (64 hex digits)"),
                ));
            }
        }
        let enc = &self.encoder.value;
        if enc.qp_min > enc.qp_max {
            return Err(at(
                origin,
                self.encoder.referenced.line(),
                "encoder.qp_min",
                format!("{} is above encoder.qp_max {}", enc.qp_min, enc.qp_max),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        StreamerConfig::from_yaml(yaml, "t.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = StreamerConfig::embedded();
        assert_eq!(c.eyes.left.value.source, SourceSpec::Test);
        assert_eq!(
            c.eyes.right.value.size,
            Size {
                width: 1280,
                height: 720
            }
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = StreamerConfig::from_yaml("{}", "t").unwrap();
        assert_eq!(c.eyes.left.value.fps, 60.0);
        assert_eq!(c.deadlines.max_latency_ms, 50.0);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err("eyes:\n  left:\n    fps: 60\n    bitrate_mbs: 4\n");
        assert!(e.starts_with("t.yaml:4"), "{e}");
        assert!(e.contains("bitrate_mbs"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err("eyes:\n  right:\n    bitrate_mbps: -3\n");
        assert!(
            e.starts_with("t.yaml:3") && e.contains("bitrate_mbps"),
            "{e}"
        );
        let e = err("eyes:\n  left:\n    size: 1280by720\n");
        assert!(e.starts_with("t.yaml:3") && e.contains("1280by720"), "{e}");
        let e = err("eyes:\n  left:\n    fps: fast\n");
        assert!(e.starts_with("t.yaml:3"), "{e}");
        let e = err("eyes:\n  left:\n    source: camera0\n");
        assert!(e.starts_with("t.yaml:3") && e.contains("camera0"), "{e}");
        let e = err("transport:\n  peer: null\n  pacing_mbps: 0\n");
        assert!(
            e.starts_with("t.yaml:3") && e.contains("pacing_mbps"),
            "{e}"
        );
        let e = err("transport:\n  peer_fingerprint: abc\n");
        assert!(
            e.starts_with("t.yaml:2") && e.contains("peer_fingerprint"),
            "{e}"
        );
        let e = err("encoder:\n  qp_min: 40\n  qp_max: 20\n");
        assert!(e.contains("encoder.qp_min"), "{e}");
    }

    #[test]
    fn crop_outside_frame_is_an_error_with_line() {
        let e = err("eyes:\n  left:\n    size: 640x480\n    crop: {x: 600, y: 0, width: 100, height: 100}\n");
        assert!(
            e.starts_with("t.yaml:4") && e.contains("eyes.left.crop") && e.contains("outside"),
            "{e}"
        );
    }

    #[test]
    fn mismatched_fps_is_an_error() {
        let e = err("eyes:\n  left:\n    fps: 60\n  right:\n    fps: 30\n");
        assert!(e.contains("eyes.right.fps"), "{e}");
    }

    #[test]
    fn source_specs_parse() {
        assert_eq!("test".parse::<SourceSpec>().unwrap(), SourceSpec::Test);
        assert_eq!(
            "y4m:/a/b.y4m#right".parse::<SourceSpec>().unwrap(),
            SourceSpec::Y4m {
                path: "/a/b.y4m".into(),
                half: Some(Eye::Right)
            }
        );
        assert!("y4m:".parse::<SourceSpec>().is_err());
        assert!("y4m:x#middle".parse::<SourceSpec>().is_err());
        assert!("webcam".parse::<SourceSpec>().is_err());
    }
}
