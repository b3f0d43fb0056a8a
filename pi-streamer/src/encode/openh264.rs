//! Cisco's openh264 (software; built from source with its NASM assembly).

use anyhow::{Context, Result};
use openh264::encoder::{
    BitRate, Complexity as OhComplexity, Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, QpRange, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::{EncodedPicture, VideoEncoder};
use crate::config::{Complexity, EncoderSettings, EyeConfig};
use crate::source::RawFrame;

struct Planes<'a>(&'a RawFrame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.width, self.0.width / 2, self.0.width / 2)
    }
    fn y(&self) -> &[u8] {
        self.0.y()
    }
    fn u(&self) -> &[u8] {
        self.0.u()
    }
    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

pub struct OpenH264Encoder {
    enc: Encoder,
    config: EncoderConfig,
    frames: u64,
}

fn config(settings: &EncoderSettings, eye: &EyeConfig, bps: u32) -> EncoderConfig {
    EncoderConfig::new()
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(eye.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        // Never skip a frame to meet the rate: a skipped frame is latency and a stutter.
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        // SPS/PPS with every IDR, same ids, so any IDR is a clean entry point.
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .num_threads(settings.threads)
        .complexity(match settings.complexity {
            Complexity::Low => OhComplexity::Low,
            Complexity::Medium => OhComplexity::Medium,
            Complexity::High => OhComplexity::High,
        })
        .qp(QpRange::new(settings.qp_min, settings.qp_max))
        .intra_frame_period(IntraFramePeriod::from_num_frames(eye.idr_interval_frames))
        .scene_change_detect(false)
        .background_detection(false)
        .long_term_reference(false)
}

impl OpenH264Encoder {
    pub fn new(settings: &EncoderSettings, eye: &EyeConfig) -> Result<Self> {
        let bps = (eye.bitrate_mbps * 1e6) as u32;
        if settings.sps_pps == crate::config::SpsPpsMode::FirstOnly {
            tracing::warn!(
                "openh264 always repeats SPS/PPS with every IDR (sps_pps: first_only ignored)"
            );
        }
        let mut cfg = config(settings, eye, bps);
        if let Some(slice) = settings.slice_bytes {
            cfg = cfg.max_slice_len(slice);
        }
        let enc = Encoder::with_api_config(OpenH264API::from_source(), cfg)
            .context("creating openh264 encoder")?;
        Ok(OpenH264Encoder {
            enc,
            config: cfg,
            frames: 0,
        })
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn encode(&mut self, frame: &RawFrame, force_idr: bool) -> Result<EncodedPicture> {
        if force_idr && self.frames > 0 {
            self.enc.force_intra_frame();
        }
        self.frames += 1;
        let ts = openh264::Timestamp::from_millis(frame.capture_ns / 1_000_000);
        let bs = self
            .enc
            .encode_at(&Planes(frame), ts)
            .context("openh264 encode")?;
        let keyframe = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
        let mut data = Vec::with_capacity(64 * 1024);
        bs.write_vec(&mut data);
        Ok(EncodedPicture {
            data,
            keyframe,
            recovery_frames: 0,
        })
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        // openh264 applies a new bitrate on re-initialisation; the crate re-initialises when the
        // configuration changes, so rebuild with the new rate (the next frame is an IDR).
        self.config = self.config.bitrate(BitRate::from_bps(bps));
        self.enc = Encoder::with_api_config(OpenH264API::from_source(), self.config)?;
        self.frames = 0;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "openh264"
    }
}
