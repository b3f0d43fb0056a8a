//! What outputs feed back to the shared encoders: keyframe requests (merged by the pipeline's
//! [`crate::pipeline::IdrControl`]) and bandwidth estimates, combined over every receiver of
//! every output into one bitrate per eye ([`shared_proto::rules::bitrate`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use shared_proto::rules::bitrate::{self, EyeBounds};
use shared_proto::Eye;

use crate::config::StreamerConfig;
use crate::pipeline::PipelineState;

pub struct Feedback {
    pub pipeline: Arc<PipelineState>,
    bounds: [EyeBounds; 2],
    /// The latest link estimate (bit/s) of each receiver that has one.
    estimates: Mutex<BTreeMap<String, u64>>,
}

impl Feedback {
    pub fn new(cfg: &StreamerConfig, pipeline: Arc<PipelineState>) -> Arc<Self> {
        let bounds = Eye::BOTH.map(|e| EyeBounds {
            min_bps: cfg.transport.webrtc.min_bitrate_mbps * 1e6,
            max_bps: cfg.eyes.get(e).bitrate_mbps * 1e6,
        });
        Arc::new(Feedback {
            pipeline,
            bounds,
            estimates: Mutex::new(BTreeMap::new()),
        })
    }

    /// A receiver needs `eye`'s next frame to be a keyframe.
    pub fn request_keyframe(&self, eye: Eye) {
        self.pipeline.idr.request(eye);
    }

    /// Receiver `who`'s link estimate (`None`: it has none any more, or left); the encoders
    /// follow the lowest that is above the floor.
    pub fn estimate(&self, who: &str, bps: Option<u64>) {
        let mut all = self.estimates.lock().unwrap_or_else(|p| p.into_inner());
        match bps {
            Some(b) => all.insert(who.to_string(), b),
            None => all.remove(who),
        };
        let estimates: Vec<u64> = all.values().copied().collect();
        drop(all);
        for eye in Eye::BOTH {
            let target = bitrate::target(self.bounds[eye.index()], &estimates).unwrap_or(0);
            self.pipeline.target_bps[eye.index()].store(target, Ordering::Relaxed);
        }
    }

    /// The encoders' bitrate for `eye` now (bit/s; 0 = as configured).
    pub fn target_bps(&self, eye: Eye) -> u32 {
        self.pipeline.target_bps[eye.index()].load(Ordering::Relaxed)
    }

    /// The bitrate `eye`'s encoder aims at now, bit/s (the configured one without estimates).
    pub fn current_bps(&self, eye: Eye) -> u32 {
        match self.target_bps(eye) {
            0 => self.bounds[eye.index()].max_bps as u32,
            t => t,
        }
    }

    /// The link estimates at which both eyes get their floor and their configured bitrate.
    pub fn estimate_range(&self) -> (u64, u64) {
        (
            bitrate::estimate_for(self.bounds.map(|b| b.min_bps.min(b.max_bps))),
            self.initial_estimate(),
        )
    }

    /// Where a receiver's estimator should start so that the configured bitrate is its first
    /// target.
    pub fn initial_estimate(&self) -> u64 {
        bitrate::estimate_for(self.bounds.map(|b| b.max_bps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoders_follow_the_lowest_receiver_across_outputs() {
        let cfg = StreamerConfig::embedded(); // 8 Mbit/s per eye, floor 1
        let f = Feedback::new(&cfg, PipelineState::new(&cfg));
        assert_eq!(f.target_bps(Eye::Left), 0, "no estimate: as configured");
        f.estimate("viewer-1", Some(10_000_000));
        f.estimate("headset", Some(100_000_000));
        assert_eq!(f.target_bps(Eye::Left), 4_250_000);
        assert_eq!(f.target_bps(Eye::Right), 4_250_000);
        f.estimate("viewer-1", None);
        assert_eq!(
            f.target_bps(Eye::Left),
            8_000_000,
            "never above the eye's bitrate"
        );
        f.estimate("headset", None);
        assert_eq!(f.target_bps(Eye::Left), 0, "nobody left: as configured");
    }
}
