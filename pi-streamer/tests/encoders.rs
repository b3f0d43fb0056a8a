//! The encoders' contract, checked by decoding what they make with the headset's software
//! decoder (real openh264 and x264, no network): IDR with SPS/PPS first and on request,
//! P-frames between, the pixel code intact, constrained baseline at every x264 preset.

#[cfg(feature = "x264")]
use headset_core::decode::{open_software_kind, SoftwareDecoder};
#[cfg(feature = "x264")]
use pi_streamer::config::EncoderKind;
use pi_streamer::config::{EncoderSettings, EyeConfig, Size};
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

/// x264 at `w`x`h` in 4 slices per frame, with an intra-refresh sweep every 8 frames.
#[cfg(feature = "x264")]
fn x264_in_slices_with_sweeps(w: usize, h: usize) -> Box<dyn pi_streamer::encode::VideoEncoder> {
    let eye = EyeConfig {
        size: Size {
            width: w as u32,
            height: h as u32,
        },
        idr_interval_frames: 8,
        ..Default::default()
    };
    let settings = EncoderSettings {
        kind: EncoderKind::X264,
        slices: 4,
        refresh: pi_streamer::config::RefreshMode::Intra,
        ..Default::default()
    };
    open_kind(EncoderKind::X264, &settings, &eye).unwrap()
}

/// Every software decoder this build has.
#[cfg(feature = "x264")]
fn software_decoders() -> Vec<SoftwareDecoder> {
    SoftwareDecoder::NAMES
        .iter()
        .map(|n| n.parse::<SoftwareDecoder>().unwrap())
        .filter(|d| d.check_available().is_ok())
        .collect()
}

/// x264 in slices: each slice is handed over before `encode_sliced` returns, in picture
/// order (header NALs in front of the first); fed to the decoder slice by slice, the picture
/// comes out with the last slice, and it is the same picture, pixel for pixel, as a whole-
/// frame encoder's of the same settings decodes to (and as openh264 decodes it). Intra
/// refresh: no IDR after the first unless one is forced, and a sweep starts every
/// `idr_interval_frames`. For every software decoder this build has (openh264, and libavcodec
/// with its feature).
#[cfg(feature = "x264")]
#[test]
fn x264_slices_decode_as_they_come_to_the_same_pixels() {
    for kind in software_decoders() {
        slices_decode_as_they_come(kind);
    }
}

#[cfg(feature = "x264")]
fn slices_decode_as_they_come(kind: SoftwareDecoder) {
    use pi_streamer::encode::EncodedSlice;

    let (w, h) = (320usize, 240usize);
    let mut enc = x264_in_slices_with_sweeps(w, h);
    assert_eq!(enc.slices(), 4);
    // The same stream joined and decoded whole, beside the slice-by-slice decode (and, as
    // the reference, openh264's whole-picture decode).
    let mut by_slice = open_software_kind(kind).unwrap();
    let mut whole = open_software_kind(kind).unwrap();
    let mut reference = open_software_kind(SoftwareDecoder::Openh264).unwrap();
    assert!(by_slice.takes_slices());
    let mut src = TestPattern::new(Eye::Left, w, h);
    let mut refresh_starts = Vec::new();
    for i in 0..20u64 {
        let mut frame = src.next_frame(i).unwrap().unwrap();
        let (y, u, v) = frame.planes_mut();
        shared_proto::pixel_code::write(y, w, u, v, w / 2, w, h, Eye::Left, i as u32);
        let force = i == 13;
        let mut slices: Vec<(Vec<u8>, u8, u8, bool)> = Vec::new();
        let pic = enc
            .encode_sliced(&frame, force, &mut |s: EncodedSlice<'_>| {
                slices.push((s.data.to_vec(), s.index, s.count, s.keyframe))
            })
            .unwrap();
        assert_eq!(
            pic.keyframe,
            i == 0 || force,
            "frame {i}: IDR only first and forced"
        );
        if pic.refresh_start {
            refresh_starts.push(i);
        }
        assert_eq!(slices.len(), 4, "frame {i}");
        let mut joined = Vec::new();
        let mut picture_at = None;
        let mut by_slice_pixels = Vec::new();
        let mut by_slice_stride = w;
        for (k, (data, index, count, key)) in slices.iter().enumerate() {
            assert_eq!(
                (*index as usize, *count),
                (k, 4),
                "frame {i}: in picture order"
            );
            assert_eq!(*key, pic.keyframe);
            let t = nal_types(data);
            if k == 0 && pic.keyframe {
                assert!(t.starts_with(&[7, 8]), "frame {i}: SPS/PPS first: {t:?}");
            }
            assert!(t.contains(&if pic.keyframe { 5 } else { 1 }), "{t:?}");
            joined.extend_from_slice(data);
            let got = by_slice
                .decode(data, &mut |p| {
                    by_slice_pixels = p.y[..p.y_stride * p.height].to_vec();
                    by_slice_stride = p.y_stride;
                    assert_eq!(
                        shared_proto::pixel_code::read(p.y, p.y_stride, p.width, p.height),
                        Some((Eye::Left, i as u32))
                    );
                })
                .unwrap();
            if got {
                picture_at.get_or_insert(k);
            }
        }
        assert_eq!(
            picture_at,
            Some(3),
            "{kind:?} frame {i}: the picture comes with its last slice"
        );
        assert!(
            !by_slice.last_concealed(),
            "{kind:?} frame {i}: nothing lost, nothing concealed"
        );
        let luma = |p: &headset_core::decode::DecodedView<'_>| -> Vec<u8> {
            p.y.chunks(p.y_stride)
                .take(p.height)
                .flat_map(|row| &row[..p.width])
                .copied()
                .collect()
        };
        let (mut whole_pixels, mut reference_pixels) = (Vec::new(), Vec::new());
        assert!(whole
            .decode(&joined, &mut |p| whole_pixels = luma(p))
            .unwrap());
        assert!(reference
            .decode(&joined, &mut |p| reference_pixels = luma(p))
            .unwrap());
        let by_slice_rows: Vec<u8> = by_slice_pixels
            .chunks(by_slice_stride)
            .flat_map(|row| &row[..w])
            .copied()
            .collect();
        assert!(
            by_slice_rows == whole_pixels,
            "{kind:?} frame {i}: same pixels"
        );
        assert!(
            whole_pixels == reference_pixels,
            "{kind:?} frame {i}: the same pixels as openh264 decodes"
        );
    }
    // Sweeps every 8 frames after the IDR; the forced IDR (13) restarts the count.
    assert!(
        !refresh_starts.is_empty(),
        "intra refresh sweeps: {refresh_starts:?}"
    );
    assert!(!refresh_starts.contains(&0) && !refresh_starts.contains(&13));
}

/// Intra refresh repairs a loss without a keyframe: x264 sweeps every 8 frames; one slice of
/// frame 12 never reaches the decoder (openh264, concealing). The headset's gate
/// (`rules::refresh`) hides every picture from the loss until the recovery point of the first
/// sweep that starts after it, and from there on every picture is exactly what a decoder that
/// lost nothing shows; no IDR is ever made after the first frame.
#[cfg(feature = "x264")]
#[test]
fn intra_refresh_repairs_a_lost_slice_without_a_keyframe() {
    for kind in software_decoders() {
        intra_refresh_repairs_a_lost_slice(kind);
    }
}

#[cfg(feature = "x264")]
fn intra_refresh_repairs_a_lost_slice(kind: SoftwareDecoder) {
    use shared_proto::rules::refresh::RefreshGate;

    let (w, h) = (320usize, 240usize);
    let mut enc = x264_in_slices_with_sweeps(w, h);
    let mut lossy = open_software_kind(kind).unwrap();
    let mut clean = open_software_kind(kind).unwrap();
    assert!(lossy.conceals());
    let mut gate = RefreshGate::new(16_666_667);
    let mut src = TestPattern::new(Eye::Right, w, h);
    let (lost_frame, lost_slice) = (12u64, 2usize);
    let mut sweeps = Vec::new();
    let mut first_shown_after_loss = None;
    let (mut hidden, mut damaged_hidden) = (0, false);
    for i in 0..40u64 {
        let mut frame = src.next_frame(i).unwrap().unwrap();
        let (y, u, v) = frame.planes_mut();
        shared_proto::pixel_code::write(y, w, u, v, w / 2, w, h, Eye::Right, i as u32);
        let mut slices = Vec::new();
        let pic = enc
            .encode_sliced(&frame, false, &mut |s| {
                slices.push((s.data.to_vec(), s.recovery_frames))
            })
            .unwrap();
        assert_eq!(pic.keyframe, i == 0, "frame {i}: no IDR after the first");
        let recovery = slices[0].1;
        assert_eq!(pic.refresh_start, recovery > 0);
        if recovery > 0 {
            sweeps.push(i);
        }
        let mut want = Vec::new();
        for (d, _) in &slices {
            clean
                .decode(d, &mut |p| want = p.y[..p.y_stride * p.height].to_vec())
                .unwrap();
        }
        assert!(
            !want.is_empty(),
            "frame {i}: the lossless decoder has its picture"
        );
        // The lossy side: the gate sees the loss when the next slice arrives after the gap.
        gate.on_picture(pic.keyframe, recovery);
        let mut got = None;
        for (k, (d, _)) in slices.iter().enumerate() {
            if i == lost_frame && k == lost_slice {
                continue;
            }
            if i == lost_frame && k == lost_slice + 1 {
                gate.on_loss(0);
            }
            // With a slice missing, openh264 conceals; a picture that comes out before a
            // frame's last slice is the damaged one finishing late (the decoder thread shows
            // only pictures that come with a frame's last slice).
            let last = k + 1 == slices.len();
            let _ = lossy.decode(d, &mut |p| {
                if last {
                    got = Some(p.y[..p.y_stride * p.height].to_vec())
                }
            });
        }
        if i == lost_frame {
            // The damaged picture comes out with the next frame's first slice, or not at all.
            continue;
        }
        let Some(got) = got else { continue };
        let shown = gate.on_decoded();
        if i < lost_frame {
            assert!(shown, "frame {i}: before the loss, every picture is shown");
        } else if shown {
            first_shown_after_loss.get_or_insert(i);
            assert!(
                got == want,
                "frame {i}: shown, so exactly the lossless picture"
            );
        } else {
            hidden += 1;
            damaged_hidden |= got != want;
        }
    }
    assert!(sweeps.len() >= 4, "a sweep every 8 frames: {sweeps:?}");
    let next_sweep = *sweeps.iter().find(|&&s| s > lost_frame).unwrap();
    let first = first_shown_after_loss.expect("the picture recovered without an IDR");
    assert!(
        first > lost_frame && first <= next_sweep + 8,
        "shown again at {first}; loss at {lost_frame}, next sweep at {next_sweep}"
    );
    // The loss did damage the pictures the gate hid (concealment is not a repair).
    assert!(
        hidden > 0 && damaged_hidden,
        "{hidden} hidden, damaged: {damaged_hidden}"
    );
}
