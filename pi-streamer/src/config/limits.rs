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

pub use binoc_schema::{IntLimit, RealLimit};

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
pub const SLICES: IntLimit = IntLimit::new("slices", 1, 32).with_flag("slices");

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
