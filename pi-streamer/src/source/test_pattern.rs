//! The synthetic stereo source: a moving pattern, visibly different per eye (left: a cool
//! checkerboard scrolling right with a bright box; right: a warm diagonal grating scrolling
//! down with a dark disc), so a swapped eye is obvious to a person as well as to the pixel
//! code. The whole picture moves every frame, like a camera on a moving robot.

use anyhow::Result;
use shared_proto::Eye;

use super::{EyeSource, RawFrame};

/// Each eye's flat chroma (U, V): left a cool blue, right a warm red. A display that swaps or
/// drops a chroma plane shows the wrong tint (the eye-layer test reads it back).
pub const TINT: [(u8, u8); 2] = [(150, 110), (100, 170)];

pub struct TestPattern {
    eye: Eye,
    width: usize,
    height: usize,
    /// Precomputed luma lines: the picture is periodic along x, so each row is one copy out
    /// of these (a few hundred microseconds per 720p frame instead of per-pixel arithmetic).
    lines: Vec<Vec<u8>>,
    period: usize,
    cell: usize,
    /// Temporal sensor noise: a fixed random field read at a different offset every frame,
    /// so the encoder has to spend bits the way it does on a real sensor's output.
    noise: Vec<i8>,
}

/// Peak amplitude of the synthetic sensor noise, in luma levels.
const NOISE: i32 = 6;
const NOISE_SLACK: usize = 8192;

/// Rows of texture the left pattern cycles through.
const TEXTURE_ROWS: usize = 16;

impl TestPattern {
    pub fn new(eye: Eye, width: usize, height: usize) -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ eye as u64;
        let noise = (0..width * height + NOISE_SLACK)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state % (2 * NOISE as u64 + 1)) as i32 - NOISE) as i8
            })
            .collect();
        let mut t = TestPattern {
            noise,
            eye,
            width,
            height,
            lines: Vec::new(),
            period: 1,
            cell: 8,
        };
        match eye {
            Eye::Left => {
                // A checkerboard of `cell`-sized squares with a fine diagonal texture that
                // moves with it; `cell` is a multiple of 8, so the period is a multiple of 16.
                t.cell = (width / 20).max(8) / 8 * 8;
                t.period = 2 * t.cell;
                for band in 0..2 {
                    for tex in 0..TEXTURE_ROWS {
                        t.lines.push(
                            (0..width + t.period)
                                .map(|xs| {
                                    let checker = (xs / t.cell + band) % 2;
                                    (if checker == 0 { 70 } else { 170 }) + ((xs + tex) % 16) as u8
                                })
                                .collect(),
                        );
                    }
                }
            }
            Eye::Right => {
                // A diagonal sawtooth grating.
                t.period = (width / 16).max(8);
                t.lines.push(
                    (0..width + t.period)
                        .map(|i| 40 + ((i % t.period) * 180 / t.period) as u8)
                        .collect(),
                );
            }
        }
        t
    }
}

impl EyeSource for TestPattern {
    fn next_frame(&mut self, n: u64) -> Result<Option<RawFrame>> {
        let (w, h) = (self.width, self.height);
        let mut f = RawFrame::new(self.eye, w, h);
        let t = n as usize;
        let (y, u, v) = f.planes_mut();
        match self.eye {
            Eye::Left => {
                let shift = (t * 3) % self.period;
                for (row, line) in y.chunks_exact_mut(w).enumerate() {
                    let band = (row / self.cell) % 2;
                    let src = &self.lines[band * TEXTURE_ROWS + row % TEXTURE_ROWS];
                    line.copy_from_slice(&src[shift..shift + w]);
                }
                // A bright box moving along a Lissajous path.
                let bx = (w / 2 - w / 8) as f64 + (t as f64 * 0.05).sin() * (w / 3) as f64;
                let by = (h / 2 - h / 8) as f64 + (t as f64 * 0.037).cos() * (h / 3) as f64;
                let (bx, by, bs) = ((bx.max(0.0) as usize).min(w), by.max(0.0) as usize, w / 8);
                for row in by..(by + bs).min(h) {
                    y[row * w + bx..row * w + (bx + bs).min(w)].fill(230);
                }
                u.fill(TINT[0].0);
                v.fill(TINT[0].1);
            }
            Eye::Right => {
                let src = &self.lines[0];
                for (row, line) in y.chunks_exact_mut(w).enumerate() {
                    let start = (row + t * 2) % self.period;
                    line.copy_from_slice(&src[start..start + w]);
                }
                // A dark disc circling the centre.
                let a = t as f64 * 0.045;
                let (cx, cy) = (
                    w as f64 / 2.0 + a.cos() * w as f64 / 4.0,
                    h as f64 / 2.0 + a.sin() * h as f64 / 4.0,
                );
                let r = (h / 6) as f64;
                let (y0, y1) = ((cy - r).max(0.0) as usize, ((cy + r) as usize).min(h));
                for row in y0..y1 {
                    let dy = row as f64 - cy;
                    let half = (r * r - dy * dy).max(0.0).sqrt();
                    let (x0, x1) = ((cx - half).max(0.0) as usize, ((cx + half) as usize).min(w));
                    if x0 < x1 {
                        y[row * w + x0..row * w + x1].fill(20);
                    }
                }
                u.fill(TINT[1].0);
                v.fill(TINT[1].1);
            }
        }
        let off = (t * 1237) % NOISE_SLACK;
        for (p, &n) in y.iter_mut().zip(&self.noise[off..]) {
            *p = (*p as i16 + n as i16).clamp(0, 255) as u8;
        }
        Ok(Some(f))
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {}x{} (noise ±{NOISE})",
            self.width, self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eyes_differ_and_frames_move() {
        let mut l = TestPattern::new(Eye::Left, 320, 240);
        let mut r = TestPattern::new(Eye::Right, 320, 240);
        let (l0, l1, r0) = (
            l.next_frame(0).unwrap().unwrap(),
            l.next_frame(1).unwrap().unwrap(),
            r.next_frame(0).unwrap().unwrap(),
        );
        assert_ne!(l0.data, r0.data);
        assert_ne!(l0.data, l1.data);
        assert_ne!(l0.u()[0], r0.u()[0], "the eyes have different tints");
    }
}
