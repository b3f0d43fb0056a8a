//! The encoders' contract, checked by decoding what they make with the headset's software
//! decoder (real openh264 and x264, no network): IDR with SPS/PPS first and on request,
//! P-frames between, the pixel code intact, constrained baseline at every x264 preset.

use pi_streamer::config::{EncoderKind, EncoderSettings, EyeConfig, Size};
use pi_streamer::encode::{kind_name, open_kind, software_encoders};
use pi_streamer::source::test_pattern::TestPattern;
use pi_streamer::source::EyeSource;
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
        let mut dec = headset_core::decode::open_software().unwrap();
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
        let mut dec = headset_core::decode::open_software().unwrap();
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
