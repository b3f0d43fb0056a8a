//! Decoded YUV → the eye textures' layout: three tightly packed 8-bit planes (I420), whatever
//! the decoder wrote (I420 with row padding from openh264, NV12 from hardware decoders). The
//! YUV → RGB conversion (BT.601, limited range, as the encoders write) runs in the eye quads'
//! fragment shader (`picture.wgsl`): the CPU only copies 1.5 bytes per pixel, and the upload
//! moves 1.5 instead of 4 bytes per pixel.
//!
//! On the Quest the copy would disappear too: MediaCodec renders into a surface the compositor
//! samples (see `decode/mediacodec.rs`; not wired yet).

use headset_core::decode::{Chroma, DecodedView};

/// A picture as three planes: Y (`width` x `height`), U and V (`chroma_size()` each).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Planes {
    /// Size of each chroma plane (4:2:0: half, rounded up).
    pub fn chroma_size(&self) -> (u32, u32) {
        chroma_size(self.width, self.height)
    }
}

pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Copies `view` into `out` (its buffers are reused: no allocation once they have grown).
pub fn to_planes(view: &DecodedView<'_>, out: &mut Planes) {
    let (w, h) = (view.width, view.height);
    out.width = w as u32;
    out.height = h as u32;
    let (cw, ch) = chroma_size(w as u32, h as u32);
    let (cw, ch) = (cw as usize, ch as usize);
    out.y.clear();
    for row in 0..h {
        out.y.extend_from_slice(&view.y[row * view.y_stride..][..w]);
    }
    out.u.clear();
    out.v.clear();
    match view.chroma {
        Chroma::Planar { u, v, stride } => {
            for row in 0..ch {
                out.u.extend_from_slice(&u[row * stride..][..cw]);
                out.v.extend_from_slice(&v[row * stride..][..cw]);
            }
        }
        Chroma::SemiPlanar { uv, stride } => {
            for row in 0..ch {
                let pairs = &uv[row * stride..][..2 * cw];
                out.u.extend(pairs.iter().step_by(2));
                out.v.extend(pairs.iter().skip(1).step_by(2));
            }
        }
    }
}

/// Luma (limited range, as the encoder wrote it) of RGBA8 pixels: the inverse of the shader's
/// conversion for grey, so a rendered eye view's pixel code reads like the decoded picture's.
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

/// The picture's typical chroma: the median U and V (BT.601, limited range) over every 4th
/// pixel of every 4th row of RGBA8 pixels. A flat-tinted test picture reads back as its tint,
/// so a swapped or lost chroma plane shows, where the (grey) pixel code cannot tell.
pub fn median_chroma_of_rgba(rgba: &[u8], width: usize, height: usize, stride: usize) -> (u8, u8) {
    let (mut hu, mut hv) = ([0u32; 256], [0u32; 256]);
    for row in (0..height).step_by(4) {
        for px in rgba[row * stride..][..width * 4].chunks_exact(16) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            let u = 128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8);
            let v = 128 + ((112 * r - 94 * g - 18 * b + 128) >> 8);
            hu[u.clamp(0, 255) as usize] += 1;
            hv[v.clamp(0, 255) as usize] += 1;
        }
    }
    (median(&hu), median(&hv))
}

fn median(histogram: &[u32; 256]) -> u8 {
    let half = histogram.iter().sum::<u32>().div_ceil(2);
    let mut seen = 0;
    for (value, &n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= half && n > 0 {
            return value as u8;
        }
    }
    128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_with_padded_rows_is_packed_tightly() {
        // 3x3 (odd: chroma 2x2), Y rows padded to 5, chroma rows to 4.
        let y = [1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 7, 8, 9, 0, 0];
        let u = [10, 11, 0, 0, 12, 13, 0, 0];
        let v = [20, 21, 0, 0, 22, 23, 0, 0];
        let view = DecodedView {
            width: 3,
            height: 3,
            y: &y,
            y_stride: 5,
            chroma: Chroma::Planar {
                u: &u,
                v: &v,
                stride: 4,
            },
        };
        let mut p = Planes::default();
        to_planes(&view, &mut p);
        assert_eq!((p.width, p.height, p.chroma_size()), (3, 3, (2, 2)));
        assert_eq!(p.y, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(p.u, [10, 11, 12, 13]);
        assert_eq!(p.v, [20, 21, 22, 23]);
    }

    #[test]
    fn nv12_and_i420_give_the_same_planes_and_buffers_are_reused() {
        let (w, h) = (4, 2);
        let y: Vec<u8> = (0..8).collect();
        let u = [60u8, 200];
        let v = [180u8, 30];
        let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
        let i420 = DecodedView {
            width: w,
            height: h,
            y: &y,
            y_stride: w,
            chroma: Chroma::Planar {
                u: &u,
                v: &v,
                stride: 2,
            },
        };
        let nv12 = DecodedView {
            width: w,
            height: h,
            y: &y,
            y_stride: w,
            chroma: Chroma::SemiPlanar { uv: &uv, stride: w },
        };
        let (mut a, mut b) = (Planes::default(), Planes::default());
        to_planes(&i420, &mut a);
        to_planes(&nv12, &mut b);
        assert_eq!(a, b);
        // A second picture into the same buffers: same contents, no growth.
        let cap = a.y.capacity();
        to_planes(&nv12, &mut a);
        assert_eq!(a, b);
        assert_eq!(a.y.capacity(), cap);
    }

    #[test]
    fn luma_of_grey_with_padded_rows() {
        // Limited-range Y 16, 60, 126, 235 shown as full-range grey 0, 51, 128, 255.
        let grey = [0u8, 51, 128, 255];
        let rgba: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g, 255]).collect();
        // Pad each 8-byte row to 12 bytes, as a read-back would.
        let padded: Vec<u8> = rgba
            .chunks(8)
            .flat_map(|r| r.iter().copied().chain([9; 4]))
            .collect();
        let back = luma_of_rgba(&padded, 2, 2, 12);
        for (want, got) in [16u8, 60, 126, 235].iter().zip(&back) {
            assert!(want.abs_diff(*got) <= 1, "{back:?}");
        }
    }

    #[test]
    fn the_median_chroma_of_a_tinted_picture_is_its_tint() {
        // 16x8 pixels of a blue-ish tint (BT.601 limited: Y 120, U 150, V 110 → R 92, G 127,
        // B 165) with two sampled outliers (black, white), rows padded to 72 bytes.
        let mut rgba = Vec::new();
        for row in 0..8 {
            for x in 0..16 {
                let px = match (row, x) {
                    (0, 0) => [0, 0, 0, 255],
                    (4, 4) => [255, 255, 255, 255],
                    _ => [92, 127, 165, 255],
                };
                rgba.extend_from_slice(&px);
            }
            rgba.extend_from_slice(&[7; 8]);
        }
        let (u, v) = median_chroma_of_rgba(&rgba, 16, 8, 72);
        assert_eq!((u, v), (150, 110));
        // Empty input: neutral.
        assert_eq!(median_chroma_of_rgba(&[], 0, 0, 0), (128, 128));
    }
}
