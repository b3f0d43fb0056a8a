//! A frame's own identity, drawn into its pixels: a band of 40 black/white cells across the top
//! of the luma plane that carries the eye and the low 24 bits of the frame number, protected by
//! sync bits and a CRC-8. The cells are large (1/40 of the width, at least 16 rows high), so the
//! code survives H.264 at any sane bitrate and scaling; reading it back from decoded pixels
//! catches wrong-eye mapping and stale or repeated frames independently of any metadata.
//!
//! Layout, left to right: `1 0` sync, eye bit, 24 frame bits (MSB first), CRC-8 of the eye and
//! frame bits, `0 1 1 0 1` sync.

use crate::Eye;

pub const CELLS: usize = 40;
pub const FRAME_MASK: u32 = 0x00FF_FFFF;
const WHITE: u8 = 235;
const BLACK: u8 = 16;
const SYNC_HEAD: [bool; 2] = [true, false];
const SYNC_TAIL: [bool; 5] = [false, true, true, false, true];

/// Height in rows of the code band for a frame of the given height (even, ≥ 16).
pub fn band_height(height: usize) -> usize {
    (16 * (height / 360).max(1)).min(height & !1)
}

fn cell_span(i: usize, width: usize) -> (usize, usize) {
    (i * width / CELLS, (i + 1) * width / CELLS)
}

fn crc8(data: u32) -> u8 {
    // CRC-8/ATM (polynomial 0x07) over the 25 payload bits, MSB first.
    let mut crc: u8 = 0;
    for i in (0..25).rev() {
        let bit = (data >> i) & 1 == 1;
        let top = crc & 0x80 != 0;
        crc <<= 1;
        if top ^ bit {
            crc ^= 0x07;
        }
    }
    crc
}

fn bits(eye: Eye, frame: u32) -> [bool; CELLS] {
    let payload = ((eye as u32) << 24) | (frame & FRAME_MASK);
    let crc = crc8(payload);
    let mut out = [false; CELLS];
    out[..2].copy_from_slice(&SYNC_HEAD);
    for i in 0..25 {
        out[2 + i] = (payload >> (24 - i)) & 1 == 1;
    }
    for i in 0..8 {
        out[27 + i] = (crc >> (7 - i)) & 1 == 1;
    }
    out[35..].copy_from_slice(&SYNC_TAIL);
    out
}

/// Draws the code into an I420 frame's planes (luma cells, neutral chroma under the band).
#[allow(clippy::too_many_arguments)]
pub fn write(
    y: &mut [u8],
    y_stride: usize,
    u: &mut [u8],
    v: &mut [u8],
    uv_stride: usize,
    width: usize,
    height: usize,
    eye: Eye,
    frame: u32,
) {
    let band = band_height(height);
    let b = bits(eye, frame);
    for row in 0..band {
        let line = &mut y[row * y_stride..row * y_stride + width];
        for (i, &bit) in b.iter().enumerate() {
            let (x0, x1) = cell_span(i, width);
            line[x0..x1].fill(if bit { WHITE } else { BLACK });
        }
    }
    for row in 0..band / 2 {
        u[row * uv_stride..row * uv_stride + width / 2].fill(128);
        v[row * uv_stride..row * uv_stride + width / 2].fill(128);
    }
}

/// Reads the code back from a luma plane. Returns `None` if there is no valid code (sync or
/// CRC mismatch, or a frame too small to carry one).
pub fn read(y: &[u8], stride: usize, width: usize, height: usize) -> Option<(Eye, u32)> {
    let band = band_height(height);
    if width < CELLS * 2 || band < 4 || stride < width || y.len() < stride * (band - 1) + width {
        return None;
    }
    let (r0, r1) = (band / 4, band - band / 4);
    let mut got = [false; CELLS];
    for (i, g) in got.iter_mut().enumerate() {
        let (x0, x1) = cell_span(i, width);
        let q = (x1 - x0) / 4;
        let (c0, c1) = (x0 + q, (x1 - q).max(x0 + q + 1));
        let mut sum = 0u64;
        let mut n = 0u64;
        for row in r0..r1 {
            for &px in &y[row * stride + c0..row * stride + c1] {
                sum += u64::from(px);
                n += 1;
            }
        }
        *g = sum / n.max(1) >= 128;
    }
    if got[..2] != SYNC_HEAD || got[35..] != SYNC_TAIL {
        return None;
    }
    let mut payload = 0u32;
    for &bit in &got[2..27] {
        payload = (payload << 1) | u32::from(bit);
    }
    let mut crc = 0u8;
    for &bit in &got[27..35] {
        crc = (crc << 1) | u8::from(bit);
    }
    if crc != crc8(payload) {
        return None;
    }
    let eye = if payload >> 24 == 1 {
        Eye::Right
    } else {
        Eye::Left
    };
    Some((eye, payload & FRAME_MASK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(w: usize, h: usize, eye: Eye, n: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut y = vec![100u8; w * h];
        let mut u = vec![60u8; w * h / 4];
        let mut v = vec![200u8; w * h / 4];
        write(&mut y, w, &mut u, &mut v, w / 2, w, h, eye, n);
        (y, u, v)
    }

    #[test]
    fn roundtrip_at_common_sizes() {
        for (w, h) in [
            (320, 240),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (1536, 864),
        ] {
            for (eye, n) in [
                (Eye::Left, 0),
                (Eye::Right, 1),
                (Eye::Left, FRAME_MASK),
                (Eye::Right, 123_456),
            ] {
                let (y, _, _) = frame(w, h, eye, n);
                assert_eq!(read(&y, w, w, h), Some((eye, n)), "{w}x{h}");
            }
        }
    }

    #[test]
    fn survives_noise_and_blur() {
        let (w, h) = (640, 480);
        let (mut y, _, _) = frame(w, h, Eye::Right, 77);
        // Horizontal box blur over 5 pixels and ±40 of deterministic noise.
        let orig = y.clone();
        for row in 0..h {
            for x in 2..w - 2 {
                let s: u32 = (0..5).map(|d| u32::from(orig[row * w + x + d - 2])).sum();
                let noise = ((row * 31 + x * 17) % 81) as i32 - 40;
                y[row * w + x] = ((s / 5) as i32 + noise).clamp(0, 255) as u8;
            }
        }
        assert_eq!(read(&y, w, w, h), Some((Eye::Right, 77)));
    }

    #[test]
    fn uncoded_frames_read_as_none() {
        let (w, h) = (640, 480);
        assert_eq!(read(&vec![0u8; w * h], w, w, h), None);
        assert_eq!(read(&vec![255u8; w * h], w, w, h), None);
        assert_eq!(read(&[0u8; 10], 10, 10, 1), None);
    }

    proptest! {
        #[test]
        fn any_single_flipped_cell_is_detected(n in 0u32..=FRAME_MASK, cell in 0usize..CELLS) {
            let (w, h) = (320, 240);
            let (mut y, _, _) = frame(w, h, Eye::Left, n);
            let (x0, x1) = cell_span(cell, w);
            for row in 0..band_height(h) {
                for px in &mut y[row * w + x0..row * w + x1] {
                    *px = 255 - *px;
                }
            }
            prop_assert_eq!(read(&y, w, w, h), None);
        }

        #[test]
        fn read_never_panics(w in 0usize..200, h in 0usize..100, stride_extra in 0usize..8, fill in any::<u8>()) {
            let y = vec![fill; (w + stride_extra) * h];
            let _ = read(&y, w + stride_extra, w, h);
        }
    }
}
