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
    /// Above 0: the picture starts an intra-refresh sweep; the picture this many frames later
    /// is exact again whatever was lost before the sweep (x264's recovery point).
    pub recovery_frames: u16,
}

/// One slice of a picture (Annex-B NAL units: the picture's header NALs ride in front of its
/// first slice), handed over as soon as the encoder has written it.
pub struct EncodedSlice<'a> {
    pub data: &'a [u8],
    /// The slice's place in its picture (`index < count`); whole pictures are slice 0 of 1.
    pub index: u8,
    pub count: u8,
    /// The slice belongs to an IDR picture.
    pub keyframe: bool,
    /// As [`EncodedPicture::recovery_frames`], on every slice of the picture.
    pub recovery_frames: u16,
}

/// What [`VideoEncoder::encode_sliced`] says of the picture once all its slices are out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlicedPicture {
    pub keyframe: bool,
    /// An intra-refresh sweep starts with this (non-IDR) picture.
    pub refresh_start: bool,
}

impl SlicedPicture {
    fn of(pic: &EncodedPicture) -> Self {
        SlicedPicture {
            keyframe: pic.keyframe,
            refresh_start: pic.recovery_frames > 0,
        }
    }
}

pub trait VideoEncoder: Send {
    /// Encodes one frame; with `force_idr` the output is an IDR with SPS/PPS.
    fn encode(&mut self, frame: &RawFrame, force_idr: bool) -> Result<EncodedPicture>;
    /// Slices per picture that [`VideoEncoder::encode_sliced`] hands over (1: whole pictures).
    fn slices(&self) -> u8 {
        1
    }
    /// Encodes one frame and hands each slice to `emit` as soon as it is written, in picture
    /// order. Encoders that only give whole pictures hand over one slice of 1.
    fn encode_sliced(
        &mut self,
        frame: &RawFrame,
        force_idr: bool,
        emit: &mut (dyn FnMut(EncodedSlice<'_>) + Send),
    ) -> Result<SlicedPicture> {
        whole_as_one_slice(self, frame, force_idr, emit)
    }
    /// Changes the target bitrate from the next frame on.
    fn set_bitrate(&mut self, bps: u32) -> Result<()>;
    fn name(&self) -> &'static str;
}

/// A whole picture from [`VideoEncoder::encode`] handed over as slice 0 of 1.
pub fn whole_as_one_slice<E: VideoEncoder + ?Sized>(
    enc: &mut E,
    frame: &RawFrame,
    force_idr: bool,
    emit: &mut (dyn FnMut(EncodedSlice<'_>) + Send),
) -> Result<SlicedPicture> {
    let pic = enc.encode(frame, force_idr)?;
    if !pic.data.is_empty() {
        emit(EncodedSlice {
            data: &pic.data,
            index: 0,
            count: 1,
            keyframe: pic.keyframe,
            recovery_frames: pic.recovery_frames,
        });
    }
    Ok(SlicedPicture::of(&pic))
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
