//! Pixel format conversion into the pipeline's packed I420: what cameras deliver (YUYV, NV12,
//! strided YUV420, MJPEG) becomes a [`RawFrame`]. Pure functions, tested without hardware.

use anyhow::{bail, Context, Result};
use shared_proto::Eye;

use super::RawFrame;

fn check(len: usize, need: usize, what: &str) -> Result<()> {
    if len < need {
        bail!("{what}: buffer holds {len} bytes, the frame needs {need}");
    }
    Ok(())
}

/// Packed YUYV 4:2:2 (`stride` bytes per row) → I420 (chroma rows averaged in pairs).
pub fn yuyv_to_i420(src: &[u8], w: usize, h: usize, stride: usize, eye: Eye) -> Result<RawFrame> {
    if w % 2 != 0 || h % 2 != 0 || stride < w * 2 {
        bail!("YUYV: bad geometry {w}x{h} stride {stride}");
    }
    check(src.len(), stride * (h - 1) + w * 2, "YUYV")?;
    let mut f = RawFrame::new(eye, w, h);
    let (y, u, v) = f.planes_mut();
    for row in 0..h {
        let s = &src[row * stride..row * stride + w * 2];
        for (x, px) in s.chunks_exact(2).enumerate() {
            y[row * w + x] = px[0];
        }
    }
    for crow in 0..h / 2 {
        let a = &src[2 * crow * stride..2 * crow * stride + w * 2];
        let b = &src[(2 * crow + 1) * stride..(2 * crow + 1) * stride + w * 2];
        for cx in 0..w / 2 {
            let i = cx * 4;
            u[crow * (w / 2) + cx] = (a[i + 1] as u16 + b[i + 1] as u16).div_ceil(2) as u8;
            v[crow * (w / 2) + cx] = (a[i + 3] as u16 + b[i + 3] as u16).div_ceil(2) as u8;
        }
    }
    Ok(f)
}

/// NV12 (Y plane, then interleaved UV at `uv_offset`, both with `stride`) → I420.
pub fn nv12_to_i420(
    src: &[u8],
    w: usize,
    h: usize,
    stride: usize,
    uv_offset: usize,
    eye: Eye,
) -> Result<RawFrame> {
    if w % 2 != 0 || h % 2 != 0 || stride < w || uv_offset < stride * h {
        bail!("NV12: bad geometry {w}x{h} stride {stride} uv offset {uv_offset}");
    }
    check(src.len(), uv_offset + stride * (h / 2 - 1) + w, "NV12")?;
    let mut f = RawFrame::new(eye, w, h);
    let (y, u, v) = f.planes_mut();
    for row in 0..h {
        y[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
    }
    for crow in 0..h / 2 {
        let s = &src[uv_offset + crow * stride..uv_offset + crow * stride + w];
        for (cx, uv) in s.chunks_exact(2).enumerate() {
            u[crow * (w / 2) + cx] = uv[0];
            v[crow * (w / 2) + cx] = uv[1];
        }
    }
    Ok(f)
}

/// Planar YUV420 with row padding (libcamera's YUV420: Y `stride`, U/V `stride / 2`, planes
/// at the given offsets) → packed I420.
pub fn yuv420_strided_to_i420(
    src: &[u8],
    w: usize,
    h: usize,
    stride: usize,
    offsets: [usize; 3],
    eye: Eye,
) -> Result<RawFrame> {
    let cs = stride / 2;
    if w % 2 != 0 || h % 2 != 0 || stride < w {
        bail!("YUV420: bad geometry {w}x{h} stride {stride}");
    }
    check(src.len(), offsets[0] + stride * (h - 1) + w, "YUV420 (Y)")?;
    check(
        src.len(),
        offsets[1] + cs * (h / 2 - 1) + w / 2,
        "YUV420 (U)",
    )?;
    check(
        src.len(),
        offsets[2] + cs * (h / 2 - 1) + w / 2,
        "YUV420 (V)",
    )?;
    let mut f = RawFrame::new(eye, w, h);
    let (y, u, v) = f.planes_mut();
    for row in 0..h {
        let s = offsets[0] + row * stride;
        y[row * w..(row + 1) * w].copy_from_slice(&src[s..s + w]);
    }
    let cw = w / 2;
    for crow in 0..h / 2 {
        let su = offsets[1] + crow * cs;
        let sv = offsets[2] + crow * cs;
        u[crow * cw..(crow + 1) * cw].copy_from_slice(&src[su..su + cw]);
        v[crow * cw..(crow + 1) * cw].copy_from_slice(&src[sv..sv + cw]);
    }
    Ok(f)
}

/// One MJPEG frame → I420 (decoded to YCbCr, chroma averaged over 2×2). Frames larger than
/// `max` (the size the camera was configured for) are refused before any pixel is decoded.
pub fn mjpeg_to_i420(src: &[u8], max: (usize, usize), eye: Eye) -> Result<RawFrame> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let opts = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(max.0)
        .set_max_height(max.1);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(src, opts);
    let pixels = dec.decode().context("MJPEG frame does not decode")?;
    let (w, h) = dec.dimensions().context("MJPEG frame without dimensions")?;
    if w % 2 != 0 || h % 2 != 0 || pixels.len() < w * h * 3 {
        bail!("MJPEG frame {w}x{h}: odd size or short output");
    }
    let mut f = RawFrame::new(eye, w, h);
    let (y, u, v) = f.planes_mut();
    for (i, px) in pixels.chunks_exact(3).take(w * h).enumerate() {
        y[i] = px[0];
    }
    for crow in 0..h / 2 {
        for cx in 0..w / 2 {
            let p = |r: usize, c: usize, k: usize| {
                pixels[((2 * crow + r) * w + 2 * cx + c) * 3 + k] as u16
            };
            let avg = |k| ((p(0, 0, k) + p(0, 1, k) + p(1, 0, k) + p(1, 1, k) + 2) / 4) as u8;
            u[crow * (w / 2) + cx] = avg(1);
            v[crow * (w / 2) + cx] = avg(2);
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_converts_luma_and_averages_chroma_rows() {
        let (w, h, stride) = (4, 2, 10); // 2 bytes of row padding
        let mut src = vec![0u8; stride * h];
        for row in 0..h {
            for x in 0..w / 2 {
                let i = row * stride + x * 4;
                src[i] = (row * 10 + 2 * x) as u8; // Y0
                src[i + 1] = 100 + row as u8 * 2; // U
                src[i + 2] = (row * 10 + 2 * x + 1) as u8; // Y1
                src[i + 3] = 200 + row as u8 * 4; // V
            }
            src[row * stride + 8] = 0xEE; // padding must be ignored
        }
        let f = yuyv_to_i420(&src, w, h, stride, Eye::Right).unwrap();
        assert_eq!(f.y(), &[0, 1, 2, 3, 10, 11, 12, 13]);
        assert_eq!(f.u(), &[101, 101]);
        assert_eq!(f.v(), &[202, 202]);
        assert_eq!(f.eye, Eye::Right);
        assert!(yuyv_to_i420(&src[..15], w, h, stride, Eye::Left).is_err());
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        let (w, h, stride) = (4, 2, 6);
        let uv_offset = stride * h;
        let mut src = vec![0u8; uv_offset + stride];
        for row in 0..h {
            for x in 0..w {
                src[row * stride + x] = (row * w + x) as u8;
            }
        }
        src[uv_offset..uv_offset + 4].copy_from_slice(&[1, 2, 3, 4]);
        let f = nv12_to_i420(&src, w, h, stride, uv_offset, Eye::Left).unwrap();
        assert_eq!(f.y(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.u(), &[1, 3]);
        assert_eq!(f.v(), &[2, 4]);
        assert!(nv12_to_i420(&src[..uv_offset + 2], w, h, stride, uv_offset, Eye::Left).is_err());
    }

    #[test]
    fn strided_yuv420_drops_padding() {
        let (w, h, stride) = (4, 2, 8);
        let offsets = [0, stride * h, stride * h + stride / 2];
        let mut src = vec![0xAAu8; offsets[2] + stride / 2];
        for row in 0..h {
            for x in 0..w {
                src[row * stride + x] = (row * w + x) as u8;
            }
        }
        src[offsets[1]..offsets[1] + 2].copy_from_slice(&[7, 8]);
        src[offsets[2]..offsets[2] + 2].copy_from_slice(&[9, 10]);
        let f = yuv420_strided_to_i420(&src, w, h, stride, offsets, Eye::Left).unwrap();
        assert_eq!(f.y(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.u(), &[7, 8]);
        assert_eq!(f.v(), &[9, 10]);
    }

    #[test]
    fn mjpeg_decodes_to_the_pictures_luma_and_chroma() {
        // A 64x32 picture: left half dark, right half bright, with a blue-ish chroma.
        let (w, h) = (64usize, 32usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for _y in 0..h {
            for x in 0..w {
                let v = if x < w / 2 { 40 } else { 210 };
                rgb.extend_from_slice(&[v / 2, v / 2, v]);
            }
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let f = mjpeg_to_i420(&jpeg, (w, h), Eye::Right).unwrap();
        assert!(
            mjpeg_to_i420(&jpeg, (w / 2, h), Eye::Right).is_err(),
            "larger than configured"
        );
        assert_eq!((f.width, f.height, f.eye), (w, h, Eye::Right));
        let (dark, bright) = (f.y()[w + 4], f.y()[w + w - 4]);
        // JFIF luma (full range BT.601) of (20,20,40) is 22.3 and of (105,105,210) 117.
        assert!(
            dark.abs_diff(22) <= 3 && bright.abs_diff(117) <= 3,
            "luma {dark} / {bright}"
        );
        // Blue dominates: Cb above neutral on both halves.
        assert!(
            f.u()[2] > 128 && f.u()[w / 2 - 2] > 128,
            "{:?}",
            &f.u()[..4]
        );
    }

    #[test]
    fn garbage_mjpeg_is_an_error_not_a_panic() {
        assert!(mjpeg_to_i420(&[], (64, 64), Eye::Left).is_err());
        assert!(mjpeg_to_i420(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3], (64, 64), Eye::Left).is_err());
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(mjpeg_to_i420(&noise, (64, 64), Eye::Left).is_err());
    }
}
