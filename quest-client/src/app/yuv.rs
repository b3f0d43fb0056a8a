//! Decoded YUV (BT.601, limited range, as the encoders write) → RGBA8 for the eye textures.
//! Integer arithmetic, one pass, no allocation once the output buffer has grown.
//!
//! On the Quest this step disappears: MediaCodec renders into a surface the compositor
//! samples (see `decode/mediacodec.rs`); here it is the software path's upload cost.

use crate::decode::{Chroma, DecodedView};

/// Writes `view` as tightly packed RGBA8 (alpha 255) into `out`, resizing it.
pub fn to_rgba(view: &DecodedView<'_>, out: &mut Vec<u8>) {
    let (w, h) = (view.width, view.height);
    out.resize(w * h * 4, 0);
    for row in 0..h {
        let y_row = &view.y[row * view.y_stride..][..w];
        let dst = &mut out[row * w * 4..][..w * 4];
        match view.chroma {
            Chroma::Planar { u, v, stride } => {
                let u_row = &u[(row / 2) * stride..];
                let v_row = &v[(row / 2) * stride..];
                for (x, (px, &y)) in dst.chunks_exact_mut(4).zip(y_row).enumerate() {
                    write_px(px, y, u_row[x / 2], v_row[x / 2]);
                }
            }
            Chroma::SemiPlanar { uv, stride } => {
                let uv_row = &uv[(row / 2) * stride..];
                for (x, (px, &y)) in dst.chunks_exact_mut(4).zip(y_row).enumerate() {
                    let c = (x / 2) * 2;
                    write_px(px, y, uv_row[c], uv_row[c + 1]);
                }
            }
        }
    }
}

#[inline(always)]
fn write_px(px: &mut [u8], y: u8, u: u8, v: u8) {
    // BT.601 limited range, 8.8 fixed point: R = 1.164(Y−16) + 1.596(V−128), …
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    px[0] = clamp((c + 409 * e + 128) >> 8);
    px[1] = clamp((c - 100 * d - 208 * e + 128) >> 8);
    px[2] = clamp((c + 516 * d + 128) >> 8);
    px[3] = 255;
}

#[inline(always)]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Luma (limited range, as the encoder wrote it) of RGBA8 pixels: the inverse of [`to_rgba`]
/// for grey, so a rendered eye view's pixel code reads like the decoded picture's.
/// `stride` is the row pitch in bytes (GPU read-backs pad rows).
pub fn luma_of_rgba(rgba: &[u8], width: usize, height: usize, stride: usize) -> Vec<u8> {
    let mut y = Vec::with_capacity(width * height);
    for row in 0..height {
        for px in rgba[row * stride..][..width * 4].chunks_exact(4) {
            // Y' = 16 + (65.7 R + 129 G + 25 B) / 256
            let l = 16
                + ((66 * u32::from(px[0]) + 129 * u32::from(px[1]) + 25 * u32::from(px[2]) + 128)
                    >> 8);
            y.push(l.min(255) as u8);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(w: usize, h: usize, y: &'a [u8], u: &'a [u8], v: &'a [u8]) -> DecodedView<'a> {
        DecodedView {
            width: w,
            height: h,
            y,
            y_stride: w,
            chroma: Chroma::Planar {
                u,
                v,
                stride: w / 2,
            },
        }
    }

    #[test]
    fn limited_range_black_white_and_grey() {
        let (y, u, v) = ([16, 235, 126, 126], [128], [128]);
        let mut out = Vec::new();
        to_rgba(&view(2, 2, &y, &u, &v), &mut out);
        assert_eq!(&out[0..4], &[0, 0, 0, 255]);
        assert_eq!(&out[4..8], &[255, 255, 255, 255]);
        assert_eq!(&out[8..12], &[128, 128, 128, 255]);
    }

    #[test]
    fn colours_follow_bt601() {
        // Pure red in BT.601 limited range: Y 81, U 90, V 240.
        let (y, u, v) = ([81; 4], [90], [240]);
        let mut out = Vec::new();
        to_rgba(&view(2, 2, &y, &u, &v), &mut out);
        let px = &out[0..4];
        assert!(px[0] >= 250 && px[1] <= 5 && px[2] <= 5, "{px:?}");
    }

    #[test]
    fn nv12_and_i420_agree() {
        let (w, h) = (4, 4);
        let y: Vec<u8> = (0..16).map(|i| 16 + i * 13).collect();
        let u = [60u8, 200, 128, 90];
        let v = [180u8, 30, 128, 240];
        let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        to_rgba(&view(w, h, &y, &u, &v), &mut a);
        let nv12 = DecodedView {
            width: w,
            height: h,
            y: &y,
            y_stride: w,
            chroma: Chroma::SemiPlanar { uv: &uv, stride: w },
        };
        to_rgba(&nv12, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn grey_round_trips_through_luma_with_padded_rows() {
        let y: Vec<u8> = vec![16, 60, 126, 235];
        let (u, v) = ([128], [128]);
        let mut rgba = Vec::new();
        to_rgba(&view(2, 2, &y, &u, &v), &mut rgba);
        // Pad each 8-byte row to 12 bytes, as a read-back would.
        let padded: Vec<u8> = rgba
            .chunks(8)
            .flat_map(|r| r.iter().copied().chain([9; 4]))
            .collect();
        let back = luma_of_rgba(&padded, 2, 2, 12);
        for (a, b) in y.iter().zip(&back) {
            assert!(a.abs_diff(*b) <= 1, "{y:?} → {back:?}");
        }
    }
}
