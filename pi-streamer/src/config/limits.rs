//! Every range a configuration value must lie in, declared once.
//!
//! The schema walk checks YAML values against these limits as it reads them, and
//! [`StreamerConfig::validate`](super::StreamerConfig::validate) re-checks a loaded
//! configuration against the same limits after the command-line overrides, so `fps: 500` in a
//! file and `--fps 500` are refused with the same message. A limit with a [`flag`] names the
//! command-line flag that overrides its key; `pi-streamer` declares the flag by that name.
//!
//! [`flag`]: IntLimit::flag

use super::TransportKind;

/// The range of a whole-number setting: `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntLimit {
    /// The key in its mapping (for crop, offset: the setting whose parts it bounds).
    pub key: &'static str,
    pub min: i64,
    pub max: i64,
    /// The long command-line flag that overrides this key, without the dashes.
    pub flag: Option<&'static str>,
}

impl IntLimit {
    pub const fn new(key: &'static str, min: i64, max: i64) -> Self {
        IntLimit {
            key,
            min,
            max,
            flag: None,
        }
    }

    /// The same limit, overridden by `--flag`.
    pub const fn with_flag(self, flag: &'static str) -> Self {
        IntLimit {
            flag: Some(flag),
            ..self
        }
    }

    /// The flag's name, for declaring it (panics for a limit without one: a programming error).
    pub const fn long(&self) -> &'static str {
        flag_name(self.flag)
    }

    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }

    /// `v`, or why it is out of range.
    pub fn check(&self, v: i64) -> Result<i64, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(format!("{v} outside {}..{}", self.min, self.max))
        }
    }
}

/// A limit's flag for clap (`#[arg(long = …)]`, evaluated at compile time).
const fn flag_name(flag: Option<&'static str>) -> &'static str {
    match flag {
        Some(f) => f,
        None => panic!("this limit has no command-line flag"),
    }
}

/// The range of a real-number setting: `min..=max`, or above `min` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RealLimit {
    /// The key in its mapping (for colour_gains: the setting whose parts it bounds).
    pub key: &'static str,
    pub min: f64,
    /// Strictly above `min` (`min` itself is refused).
    pub above_min: bool,
    pub max: f64,
    /// The long command-line flag that overrides this key, without the dashes.
    pub flag: Option<&'static str>,
}

impl RealLimit {
    /// `min ≤ v ≤ max`.
    pub const fn closed(key: &'static str, min: f64, max: f64) -> Self {
        RealLimit {
            key,
            min,
            above_min: false,
            max,
            flag: None,
        }
    }

    /// `min < v ≤ max`.
    pub const fn above(key: &'static str, min: f64, max: f64) -> Self {
        RealLimit {
            above_min: true,
            ..Self::closed(key, min, max)
        }
    }

    /// The same limit, overridden by `--flag`.
    pub const fn with_flag(self, flag: &'static str) -> Self {
        RealLimit {
            flag: Some(flag),
            ..self
        }
    }

    /// The flag's name, for declaring it (panics for a limit without one: a programming error).
    pub const fn long(&self) -> &'static str {
        flag_name(self.flag)
    }

    pub fn contains(&self, v: f64) -> bool {
        let above = if self.above_min {
            v > self.min
        } else {
            v >= self.min
        };
        above && v <= self.max
    }

    /// `v`, or why it is out of range (NaN never is in range).
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            let lo = if self.above_min { ">" } else { "≥" };
            Err(format!("{v} must be {lo} {} and ≤ {}", self.min, self.max))
        }
    }
}

// Frame sizes (`size`, `camera.sensor_mode`, `camera.capture_size`).
pub const WIDTH: IntLimit = IntLimit::new("width", 16, 4096);
pub const HEIGHT: IntLimit = IntLimit::new("height", 16, 2304);

// `eyes.left` / `eyes.right`.
pub const FPS: RealLimit = RealLimit::closed("fps", 1.0, 240.0).with_flag("fps");
pub const BITRATE_MBPS: RealLimit =
    RealLimit::above("bitrate_mbps", 0.0, 200.0).with_flag("bitrate-mbps");
/// Also bounds `gop_frames`, the same setting under another name.
pub const IDR_INTERVAL_FRAMES: IntLimit = IntLimit::new("idr_interval_frames", 0, 100_000);
/// Each of `crop.x`, `crop.y`, `crop.width`, `crop.height`.
pub const CROP: IntLimit = IntLimit::new("crop", 0, 8192);
/// Each of `offset.x`, `offset.y`.
pub const OFFSET: IntLimit = IntLimit::new("offset", -4096, 4096);

// `eyes.*.camera`.
pub const BUFFERS: IntLimit = IntLimit::new("buffers", 1, 8);
pub const EXPOSURE_US: IntLimit = IntLimit::new("exposure_us", 1, 1_000_000);
pub const ANALOGUE_GAIN: RealLimit = RealLimit::closed("analogue_gain", 1.0, 64.0);
/// Each of the two `colour_gains`.
pub const COLOUR_GAIN: RealLimit = RealLimit::above("colour_gains", 0.0, 32.0);

// `encoder`.
pub const THREADS: IntLimit = IntLimit::new("threads", 0, 64);
/// The H.264 quantiser range.
pub const QP_MIN: IntLimit = IntLimit::new("qp_min", 0, 51).with_flag("qp-min");
pub const QP_MAX: IntLimit = IntLimit::new("qp_max", 0, 51).with_flag("qp-max");
pub const SLICE_BYTES: IntLimit =
    IntLimit::new("slice_bytes", 200, 1_000_000).with_flag("slice-bytes");

// `transport`.
pub const PACING_MBPS: RealLimit = RealLimit::above("pacing_mbps", 0.0, 100_000.0);
pub const MAX_DATAGRAM_BYTES: IntLimit = IntLimit::new("max_datagram_bytes", 200, 65_000);
/// The long flag that overrides `transport.kind` (`--transport quic,webrtc`).
pub const TRANSPORT_KIND_FLAG: &str = "transport";

// `transport.webrtc`.
pub const MIN_BITRATE_MBPS: RealLimit = RealLimit::above("min_bitrate_mbps", 0.0, 200.0);
pub const MAX_VIEWERS: IntLimit = IntLimit::new("max_viewers", 1, 64);

// `deadlines`.
pub const MAX_LATENCY_MS: RealLimit =
    RealLimit::above("max_latency_ms", 0.0, 10_000.0).with_flag("max-latency-ms");
pub const MIN_IDR_INTERVAL_MS: RealLimit = RealLimit::closed("min_idr_interval_ms", 0.0, 10_000.0);

/// The rule for `transport.kind`: at least one output, none twice. Returns every problem, each
/// with the index of the entry at fault (`None`: the list as a whole).
pub fn transport_kinds(kinds: &[TransportKind]) -> Vec<(Option<usize>, String)> {
    if kinds.is_empty() {
        return vec![(
            None,
            format!(
                "no transport: give one or more of {}",
                TransportKind::NAMES.join(", ")
            ),
        )];
    }
    kinds
        .iter()
        .enumerate()
        .filter(|(i, k)| kinds[..*i].contains(k))
        .map(|(i, k)| (Some(i), format!("`{k}` is listed twice")))
        .collect()
}
