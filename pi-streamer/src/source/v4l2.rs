//! USB (UVC) cameras through V4L2 capture: YUYV, NV12 or MJPEG, mmap'ed buffers, the driver's
//! monotonic timestamps. The device layer only; conversion and pairing are shared and tested
//! in `convert` and `camera`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared_proto::Eye;

use super::camera::{CameraDevice, CapturedFrame};
use super::convert;
use crate::config::{CaptureFormat, EyeConfig};
use crate::v4l2::{self, Buffer, Device, Format, Mapping};

pub struct V4l2Camera {
    eye: Eye,
    dev: Device,
    maps: Vec<Mapping>,
    width: usize,
    height: usize,
    stride: usize,
    pixfmt: u32,
    /// A camera that delivers nothing for this long has stopped.
    timeout: Duration,
}

fn fourcc_name(f: u32) -> String {
    f.to_le_bytes().iter().map(|&b| b as char).collect()
}

/// Which of the offered formats to use.
pub fn choose_format(wanted: CaptureFormat, offered: &[u32]) -> Result<u32, String> {
    let order: &[u32] = match wanted {
        CaptureFormat::Auto => &[v4l2::PIX_NV12, v4l2::PIX_YUYV, v4l2::PIX_MJPEG],
        CaptureFormat::Nv12 => &[v4l2::PIX_NV12],
        CaptureFormat::Yuyv => &[v4l2::PIX_YUYV],
        CaptureFormat::Mjpeg => &[v4l2::PIX_MJPEG],
    };
    order
        .iter()
        .copied()
        .find(|f| offered.contains(f))
        .ok_or_else(|| {
            format!(
                "the camera offers {} but not {}",
                offered
                    .iter()
                    .map(|f| fourcc_name(*f))
                    .collect::<Vec<_>>()
                    .join(", "),
                order
                    .iter()
                    .map(|f| fourcc_name(*f))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

impl V4l2Camera {
    pub fn open(eye: Eye, path: &Path, c: &EyeConfig) -> Result<Self> {
        let dev = Device::open(path).with_context(|| format!("opening {}", path.display()))?;
        let cap = dev
            .query_cap()
            .with_context(|| format!("{} is not a V4L2 device", path.display()))?;
        let need = v4l2::CAP_VIDEO_CAPTURE | v4l2::CAP_STREAMING;
        if cap.caps() & need != need {
            bail!(
                "{} ({}) is not a streaming capture device",
                path.display(),
                cap.card()
            );
        }
        let offered = dev.formats(v4l2::BUF_TYPE_VIDEO_CAPTURE);
        let pixfmt = choose_format(c.camera.format, &offered)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let size = c.camera.capture_size.unwrap_or(c.size);
        let mut f = Format::zeroed(v4l2::BUF_TYPE_VIDEO_CAPTURE);
        // Writing a union member is safe; reading one back is not.
        f.fmt.pix.width = size.width;
        f.fmt.pix.height = size.height;
        f.fmt.pix.pixelformat = pixfmt;
        f.fmt.pix.field = v4l2::FIELD_NONE;
        dev.set_format(&mut f).context("S_FMT")?;
        // SAFETY: the driver filled `pix`.
        let (w, h, stride, got) = unsafe {
            (
                f.fmt.pix.width as usize,
                f.fmt.pix.height as usize,
                f.fmt.pix.bytesperline as usize,
                f.fmt.pix.pixelformat,
            )
        };
        if got != pixfmt {
            bail!(
                "{}: asked for {}, the driver chose {}",
                path.display(),
                fourcc_name(pixfmt),
                fourcc_name(got)
            );
        }
        if (w as u32, h as u32) != (size.width, size.height) {
            tracing::warn!(
                "{}: {}x{} not offered, capturing at {w}x{h}",
                path.display(),
                size.width,
                size.height
            );
        }
        if let Err(e) = dev.set_frame_rate(v4l2::BUF_TYPE_VIDEO_CAPTURE, c.fps) {
            tracing::warn!("{}: cannot set {} fps ({e})", path.display(), c.fps);
        }
        let n = dev
            .request_buffers(v4l2::BUF_TYPE_VIDEO_CAPTURE, c.camera.buffers)
            .context("REQBUFS")?;
        let mut maps = Vec::new();
        for i in 0..n {
            let mut b = Buffer::new(v4l2::BUF_TYPE_VIDEO_CAPTURE, i);
            // SAFETY: VIDIOC_QUERYBUF takes one Buffer.
            unsafe { dev.ioctl(v4l2::VIDIOC_QUERYBUF, &mut b) }.context("QUERYBUF")?;
            // SAFETY: for MMAP buffers the driver filled m.offset.
            maps.push(dev.map(unsafe { b.m.offset }, b.length).context("mmap")?);
            // SAFETY: VIDIOC_QBUF takes one Buffer.
            unsafe { dev.ioctl(v4l2::VIDIOC_QBUF, &mut b) }.context("QBUF")?;
        }
        dev.stream(v4l2::BUF_TYPE_VIDEO_CAPTURE, true)
            .context("STREAMON")?;
        tracing::info!(
            "{eye} camera {} ({}): {w}x{h} {} {} buffers",
            path.display(),
            cap.card(),
            fourcc_name(pixfmt),
            n
        );
        Ok(V4l2Camera {
            eye,
            dev,
            maps,
            width: w,
            height: h,
            stride,
            pixfmt,
            timeout: Duration::from_secs(2).max(Duration::from_secs_f64(10.0 / c.fps)),
        })
    }
}

impl CameraDevice for V4l2Camera {
    fn capture(&mut self) -> Result<Option<CapturedFrame>> {
        // A single bad frame (a truncated MJPEG from a USB hiccup) is skipped, not fatal; a
        // camera that delivers nothing else is.
        for _ in 0..MAX_BAD_FRAMES {
            match self.dequeue_one()? {
                Ok(f) => return Ok(Some(f)),
                Err((seq, e)) => {
                    tracing::warn!("{}: frame {seq} skipped: {e:#}", self.dev.path.display());
                }
            }
        }
        bail!(
            "{}: {MAX_BAD_FRAMES} corrupt frames in a row",
            self.dev.path.display()
        )
    }

    fn describe(&self) -> String {
        format!(
            "v4l2 {} {}x{} {}",
            self.dev.path.display(),
            self.width,
            self.height,
            fourcc_name(self.pixfmt)
        )
    }
}

/// Consecutive undecodable frames after which the camera counts as failed.
const MAX_BAD_FRAMES: usize = 30;

impl V4l2Camera {
    /// Dequeues one buffer, converts it and gives the buffer back. The outer error is the
    /// device's (fatal); the inner one a bad frame (skippable).
    #[allow(clippy::type_complexity)]
    fn dequeue_one(&mut self) -> Result<Result<CapturedFrame, (u64, anyhow::Error)>> {
        let deadline = Instant::now() + self.timeout;
        let mut b = loop {
            let mut b = Buffer::new(v4l2::BUF_TYPE_VIDEO_CAPTURE, 0);
            // SAFETY: VIDIOC_DQBUF takes one Buffer.
            match unsafe { self.dev.ioctl(v4l2::VIDIOC_DQBUF, &mut b) } {
                Ok(()) => break b,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        bail!(
                            "{}: no frame for {:.1} s (camera unplugged or stalled)",
                            self.dev.path.display(),
                            self.timeout.as_secs_f64()
                        );
                    }
                    self.dev.wait_readable(left.as_millis().max(1) as i32)?;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: DQBUF", self.dev.path.display()))
                }
            }
        };
        let now = binoc_net::os_clock::monotonic_ns();
        let ts = b
            .timestamp_ns()
            .filter(|&t| t > 0 && t <= now)
            .unwrap_or(now);
        let Some(map) = self.maps.get(b.index as usize) else {
            bail!(
                "{}: the driver returned buffer {} of {}",
                self.dev.path.display(),
                b.index,
                self.maps.len()
            );
        };
        let data = map.as_slice();
        let data = &data[..(b.bytesused as usize).min(data.len())];
        let (w, h, stride) = (self.width, self.height, self.stride);
        let frame = if b.flags & v4l2::BUF_FLAG_ERROR != 0 {
            Err(anyhow::anyhow!("the driver flagged the frame as corrupt"))
        } else {
            match self.pixfmt {
                v4l2::PIX_YUYV => convert::yuyv_to_i420(data, w, h, stride, self.eye),
                v4l2::PIX_NV12 => convert::nv12_to_i420(data, w, h, stride, stride * h, self.eye),
                _ => convert::mjpeg_to_i420(data, (w, h), self.eye),
            }
        };
        let seq = b.sequence as u64;
        // SAFETY: VIDIOC_QBUF takes one Buffer (the one just dequeued).
        unsafe { self.dev.ioctl(v4l2::VIDIOC_QBUF, &mut b) }.context("QBUF")?;
        Ok(frame
            .map(|frame| CapturedFrame {
                timestamp_ns: ts,
                sequence: seq,
                frame,
            })
            .map_err(|e| (seq, e)))
    }
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        let _ = self.dev.stream(v4l2::BUF_TYPE_VIDEO_CAPTURE, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_choice_prefers_no_decode_and_explains_refusals() {
        let all = [v4l2::PIX_MJPEG, v4l2::PIX_YUYV];
        assert_eq!(choose_format(CaptureFormat::Auto, &all), Ok(v4l2::PIX_YUYV));
        assert_eq!(
            choose_format(CaptureFormat::Mjpeg, &all),
            Ok(v4l2::PIX_MJPEG)
        );
        let e = choose_format(CaptureFormat::Nv12, &all).unwrap_err();
        assert!(e.contains("MJPG, YUYV") && e.contains("NV12"), "{e}");
    }

    #[test]
    fn a_missing_camera_is_a_clear_error() {
        let e = V4l2Camera::open(
            Eye::Left,
            Path::new("/dev/video-missing"),
            &EyeConfig::default(),
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("/dev/video-missing"), "{e:#}");
        let e = V4l2Camera::open(Eye::Left, Path::new("/dev/null"), &EyeConfig::default())
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("not a V4L2 device"), "{e:#}");
    }
}
