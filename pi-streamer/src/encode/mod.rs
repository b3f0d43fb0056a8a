//! Stage 2: H.264 encoders, one per eye, behind [`VideoEncoder`].
//!
//! Encoders stay reconfigurable at runtime (bitrate, IDR on demand) so that loss recovery and,
//! later, bandwidth estimation can drive them.

pub mod openh264;

use anyhow::Result;

use crate::config::{EncoderKind, EncoderSettings, EyeConfig};
use crate::source::RawFrame;

/// One encoded access unit (Annex-B, SPS/PPS in front of every IDR).
pub struct EncodedPicture {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub trait VideoEncoder: Send {
    /// Encodes one frame; with `force_idr` the output is an IDR with SPS/PPS.
    fn encode(&mut self, frame: &RawFrame, force_idr: bool) -> Result<EncodedPicture>;
    /// Changes the target bitrate from the next frame on.
    fn set_bitrate(&mut self, bps: u32) -> Result<()>;
    fn name(&self) -> &'static str;
}

pub fn open(settings: &EncoderSettings, eye: &EyeConfig) -> Result<Box<dyn VideoEncoder>> {
    match settings.kind {
        EncoderKind::Openh264 => Ok(Box::new(openh264::OpenH264Encoder::new(settings, eye)?)),
    }
}
