//! Stage 2: H.264 encoders, one per eye, behind [`VideoEncoder`].
//!
//! Encoders stay reconfigurable at runtime (bitrate, IDR on demand) so that loss recovery and,
//! later, bandwidth estimation can drive them. `encoder.kind: auto` picks the V4L2 hardware
//! encoder when the board has one (Pi 4: `/dev/video11`), else the fastest software encoder
//! built in (x264, measured faster than openh264 at equal quality: docs/performance.md).

pub mod openh264;
pub mod v4l2m2m;
#[cfg(feature = "x264")]
pub mod x264;

use anyhow::{bail, Result};

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

/// The software encoders this binary was built with, fastest first.
pub fn software_encoders() -> Vec<EncoderKind> {
    let mut v = Vec::new();
    if cfg!(feature = "x264") {
        v.push(EncoderKind::X264);
    }
    v.push(EncoderKind::Openh264);
    v
}

/// Resolves `auto` to a concrete encoder, with the reason (logged at start).
pub fn resolve(settings: &EncoderSettings) -> (EncoderKind, String) {
    match settings.kind {
        EncoderKind::Auto => {
            let probe = v4l2m2m::find_encoder(&settings.device);
            match probe {
                Ok(dev) => (
                    EncoderKind::V4l2m2m,
                    format!("hardware H.264 encoder found at {}", dev.display()),
                ),
                Err(why) => {
                    let sw = software_encoders()[0];
                    (
                        sw,
                        format!(
                            "no hardware encoder ({why}); fastest software encoder built in: {}",
                            kind_name(sw)
                        ),
                    )
                }
            }
        }
        k => (k, "set in the configuration".into()),
    }
}

pub fn kind_name(k: EncoderKind) -> &'static str {
    match k {
        EncoderKind::Auto => "auto",
        EncoderKind::Openh264 => "openh264",
        EncoderKind::X264 => "x264",
        EncoderKind::V4l2m2m => "v4l2m2m",
    }
}

pub fn open(settings: &EncoderSettings, eye: &EyeConfig) -> Result<Box<dyn VideoEncoder>> {
    let (kind, _) = resolve(settings);
    open_kind(kind, settings, eye)
}

pub fn open_kind(
    kind: EncoderKind,
    settings: &EncoderSettings,
    eye: &EyeConfig,
) -> Result<Box<dyn VideoEncoder>> {
    match kind {
        EncoderKind::Openh264 => Ok(Box::new(openh264::OpenH264Encoder::new(settings, eye)?)),
        #[cfg(feature = "x264")]
        EncoderKind::X264 => Ok(Box::new(x264::X264Encoder::new(settings, eye)?)),
        #[cfg(not(feature = "x264"))]
        EncoderKind::X264 => {
            bail!("this pi-streamer was built without x264 (cargo feature `x264`)")
        }
        EncoderKind::V4l2m2m => Ok(Box::new(v4l2m2m::V4l2Encoder::new(settings, eye)?)),
        EncoderKind::Auto => bail!("encoder kind `auto` must be resolved first"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_software_when_no_hardware_is_present() {
        let (kind, why) = resolve(&EncoderSettings::default());
        if v4l2m2m::find_encoder("auto").is_err() {
            assert_eq!(kind, software_encoders()[0], "{why}");
            assert!(why.contains("no hardware encoder"), "{why}");
        }
        let explicit = EncoderSettings {
            kind: EncoderKind::Openh264,
            ..Default::default()
        };
        assert_eq!(resolve(&explicit).0, EncoderKind::Openh264);
    }
}
