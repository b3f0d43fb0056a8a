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
    use crate::config::Size;
    use crate::source::test_pattern::TestPattern;
    use crate::source::EyeSource;
    use shared_proto::Eye;

    fn nal_types(d: &[u8]) -> Vec<u8> {
        d.windows(4)
            .filter(|w| w[..3] == [0, 0, 1])
            .map(|w| w[3] & 0x1f)
            .collect()
    }

    /// Every software encoder: first frame IDR with SPS/PPS, P-frames after, IDR (with
    /// SPS/PPS again) on request, and the output decodes back to the input's pixel code.
    #[test]
    fn software_encoders_honour_the_contract() {
        for kind in software_encoders() {
            let eye = EyeConfig {
                size: Size {
                    width: 320,
                    height: 240,
                },
                ..Default::default()
            };
            let name = kind_name(kind);
            let mut enc = open_kind(kind, &EncoderSettings::default(), &eye).unwrap();
            assert_eq!(enc.name(), name);
            let mut src = TestPattern::new(Eye::Left, 320, 240);
            let mut dec = quest_client::decode::open_software().unwrap();
            for i in 0..6u64 {
                let mut frame = src.next_frame(i).unwrap().unwrap();
                let (y, u, v) = frame.planes_mut();
                shared_proto::pixel_code::write(y, 320, u, v, 160, 320, 240, Eye::Left, i as u32);
                let force = i == 4;
                let out = enc.encode(&frame, force).unwrap();
                let t = nal_types(&out.data);
                if i == 0 || force {
                    assert!(out.keyframe, "{name} frame {i}");
                    assert!(
                        t.contains(&7) && t.contains(&8) && t.contains(&5),
                        "{name} frame {i}: SPS, PPS, IDR expected in {t:?}"
                    );
                } else {
                    assert!(!out.keyframe, "{name} frame {i}");
                    assert!(!t.contains(&5), "{name} frame {i}: {t:?}");
                }
                let mut code = None;
                let got = dec
                    .decode(&out.data, &mut |p| {
                        code = shared_proto::pixel_code::read(p.y, p.y_stride, p.width, p.height)
                    })
                    .unwrap();
                assert!(got, "{name} frame {i}: one picture per access unit");
                assert_eq!(code, Some((Eye::Left, i as u32)), "{name} frame {i}");
            }
            enc.set_bitrate(2_000_000).unwrap();
            let out = enc
                .encode(&src.next_frame(6).unwrap().unwrap(), false)
                .unwrap();
            assert!(!out.data.is_empty(), "{name} after a bitrate change");
        }
    }

    /// Whatever the preset, x264's output is constrained baseline: openh264's decoder (desktop
    /// client) cannot read CABAC or 8x8 transforms, which presets above `ultrafast` turn on.
    #[cfg(feature = "x264")]
    #[test]
    fn x264_output_decodes_with_openh264_at_every_preset() {
        let eye = EyeConfig {
            size: Size {
                width: 320,
                height: 240,
            },
            ..Default::default()
        };
        for preset in ["ultrafast", "superfast", "veryfast", "medium"] {
            let settings = EncoderSettings {
                kind: EncoderKind::X264,
                preset: preset.into(),
                ..Default::default()
            };
            let mut enc = open_kind(EncoderKind::X264, &settings, &eye).unwrap();
            let mut dec = quest_client::decode::open_software().unwrap();
            let mut src = TestPattern::new(Eye::Right, 320, 240);
            for i in 0..4 {
                let out = enc
                    .encode(&src.next_frame(i).unwrap().unwrap(), false)
                    .unwrap();
                let got = dec.decode(&out.data, &mut |_| {}).unwrap();
                assert!(got, "{preset}: frame {i} did not decode");
            }
        }
    }

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
