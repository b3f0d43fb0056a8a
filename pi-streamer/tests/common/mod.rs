//! What the integration tests share.

use pi_streamer::config::{Size, StreamerConfig};
use shared_proto::Eye;

/// The embedded configuration at 320x240, 30 fps, `bitrate_mbps` per eye, with a generous
/// deadline: the tests are about correctness, on a machine that may be busy.
pub fn small_config(bitrate_mbps: f64) -> StreamerConfig {
    let mut cfg = StreamerConfig::embedded();
    for eye in Eye::BOTH {
        let e = cfg.eyes.get_mut(eye);
        e.size = Size {
            width: 320,
            height: 240,
        };
        e.fps = 30.0;
        e.bitrate_mbps = bitrate_mbps;
    }
    cfg.deadlines.max_latency_ms = 2000.0;
    cfg
}
