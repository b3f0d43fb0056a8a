//! Hardware H.264 through the V4L2 stateful memory-to-memory encoder interface (Pi 4's
//! `/dev/video11`, and other SoCs' encoders). Raw I420 frames go into the OUTPUT queue, the
//! bitstream comes out of the CAPTURE queue; both queues are multi-planar with mmap'ed buffers.
//!
//! This machine has no such device, so what runs here is the probe (which must find nothing
//! and say so) and the struct layouts (checked against the kernel header in `crate::v4l2`);
//! the encode path itself runs on boards that have the hardware.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{EncodedPicture, VideoEncoder};
use crate::config::{EncoderSettings, EyeConfig, SpsPpsMode};
use crate::source::RawFrame;
#[cfg(target_os = "linux")]
use crate::v4l2::{self, Buffer, Device, Format, Mapping, Plane};

/// Finds an M2M H.264 encoder: `device` names one, or `auto` probes every `/dev/video*`.
pub fn find_encoder(device: &str) -> Result<PathBuf, String> {
    #[cfg(target_os = "linux")]
    {
        let candidates = if device == "auto" {
            v4l2::video_nodes()
        } else {
            vec![PathBuf::from(device)]
        };
        if candidates.is_empty() {
            return Err("no /dev/video* devices".into());
        }
        let mut why = Vec::new();
        for p in candidates {
            match is_h264_encoder(&p) {
                Ok(()) => return Ok(p),
                Err(e) => why.push(format!("{}: {e}", p.display())),
            }
        }
        Err(why.join("; "))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = device;
        Err("V4L2 is Linux-only".into())
    }
}

#[cfg(target_os = "linux")]
fn is_h264_encoder(p: &Path) -> Result<(), String> {
    let dev = Device::open(p).map_err(|e| e.to_string())?;
    let cap = dev
        .query_cap()
        .map_err(|e| format!("not a V4L2 device ({e})"))?;
    if cap.caps() & v4l2::CAP_VIDEO_M2M_MPLANE == 0 {
        return Err(format!("{} is not a multi-planar M2M device", cap.card()));
    }
    if !dev
        .formats(v4l2::BUF_TYPE_VIDEO_CAPTURE_MPLANE)
        .contains(&v4l2::PIX_H264)
    {
        return Err(format!("{} does not produce H.264", cap.card()));
    }
    if !dev
        .formats(v4l2::BUF_TYPE_VIDEO_OUTPUT_MPLANE)
        .contains(&v4l2::PIX_YUV420)
    {
        return Err(format!("{} does not take I420 input", cap.card()));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
struct Queue {
    typ: u32,
    maps: Vec<Mapping>,
    /// Per buffer: queued to the driver?
    queued: Vec<bool>,
}

pub struct V4l2Encoder {
    #[cfg(target_os = "linux")]
    dev: Device,
    #[cfg(target_os = "linux")]
    output: Queue,
    #[cfg(target_os = "linux")]
    capture: Queue,
    width: usize,
    height: usize,
    /// Line stride of the luma plane the driver asked for (≥ width).
    stride: usize,
    /// Rows of the luma plane in the buffer (≥ height; the driver may align it).
    rows: usize,
    frames: u64,
}

#[cfg(target_os = "linux")]
impl V4l2Encoder {
    pub fn new(settings: &EncoderSettings, eye: &EyeConfig) -> Result<Self> {
        let path = find_encoder(&settings.device)
            .map_err(|e| anyhow::anyhow!("no V4L2 H.264 encoder: {e}"))?;
        let dev = Device::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let (w, h) = (eye.size.width, eye.size.height);

        // Bitstream side first (the stateful encoder interface's order).
        let mut cf = Format::mplane(
            v4l2::BUF_TYPE_VIDEO_CAPTURE_MPLANE,
            w,
            h,
            v4l2::PIX_H264,
            (w * h).max(512 * 1024),
            0,
        );
        dev.set_format(&mut cf)
            .context("S_FMT (H.264 capture queue)")?;

        let mut of = Format::mplane(
            v4l2::BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            w,
            h,
            v4l2::PIX_YUV420,
            0,
            w,
        );
        dev.set_format(&mut of)
            .context("S_FMT (I420 output queue)")?;
        // SAFETY: the driver filled in pix_mp.
        let (got, stride, size) = unsafe {
            (
                of.fmt.pix_mp.pixelformat,
                of.fmt.pix_mp.plane_fmt[0].bytesperline as usize,
                of.fmt.pix_mp.plane_fmt[0].sizeimage as usize,
            )
        };
        if got != v4l2::PIX_YUV420 || stride < w as usize {
            bail!(
                "{}: the encoder does not accept {w}x{h} I420",
                path.display()
            );
        }
        let rows = (size * 2 / 3 / stride).max(h as usize);

        // Controls: low latency. Drivers that lack one keep going (logged), except bitrate.
        let kbps = (eye.bitrate_mbps * 1e6) as i32;
        dev.set_control(v4l2::CID_BITRATE, kbps)
            .context("setting the bitrate")?;
        let optional = [
            (v4l2::CID_BITRATE_MODE, 1, "CBR"),
            (
                v4l2::CID_H264_I_PERIOD,
                if eye.idr_interval_frames == 0 {
                    i32::MAX
                } else {
                    eye.idr_interval_frames as i32
                },
                "IDR period",
            ),
            (
                v4l2::CID_REPEAT_SEQ_HEADER,
                (settings.sps_pps == SpsPpsMode::EveryIdr) as i32,
                "SPS/PPS with every IDR",
            ),
            (v4l2::CID_H264_MIN_QP, settings.qp_min as i32, "QP min"),
            (v4l2::CID_H264_MAX_QP, settings.qp_max as i32, "QP max"),
        ];
        for (id, v, what) in optional {
            if let Err(e) = dev.set_control(id, v) {
                tracing::warn!("{}: {what} not supported ({e})", path.display());
            }
        }

        let output = Self::setup_queue(&dev, v4l2::BUF_TYPE_VIDEO_OUTPUT_MPLANE, 2)?;
        let mut capture = Self::setup_queue(&dev, v4l2::BUF_TYPE_VIDEO_CAPTURE_MPLANE, 2)?;
        for i in 0..capture.maps.len() {
            Self::queue(&dev, &mut capture, i, 0)?;
        }
        dev.stream(v4l2::BUF_TYPE_VIDEO_OUTPUT_MPLANE, true)
            .context("STREAMON output")?;
        dev.stream(v4l2::BUF_TYPE_VIDEO_CAPTURE_MPLANE, true)
            .context("STREAMON capture")?;
        tracing::info!(
            "{}: hardware H.264 encoder {w}x{h}, stride {stride}",
            path.display()
        );
        Ok(V4l2Encoder {
            dev,
            output,
            capture,
            width: w as usize,
            height: h as usize,
            stride,
            rows,
            frames: 0,
        })
    }

    fn setup_queue(dev: &Device, typ: u32, count: u32) -> Result<Queue> {
        let n = dev.request_buffers(typ, count).context("REQBUFS")?;
        let mut maps = Vec::new();
        for i in 0..n {
            let mut plane = Plane::default();
            let mut b = Buffer::new(typ, i);
            b.m.planes = &mut plane;
            b.length = 1;
            // SAFETY: VIDIOC_QUERYBUF takes one Buffer whose m.planes points at `length`
            // Planes (one, alive for the call).
            unsafe { dev.ioctl(v4l2::VIDIOC_QUERYBUF, &mut b) }.context("QUERYBUF")?;
            // SAFETY: the driver filled the plane's mmap offset.
            let offset = unsafe { plane.m.mem_offset };
            maps.push(dev.map(offset, plane.length).context("mmap")?);
        }
        Ok(Queue {
            typ,
            queued: vec![false; maps.len()],
            maps,
        })
    }

    fn queue(dev: &Device, q: &mut Queue, index: usize, bytesused: u32) -> Result<()> {
        let mut plane = Plane {
            bytesused,
            length: q.maps[index].as_slice().len() as u32,
            ..Default::default()
        };
        let mut b = Buffer::new(q.typ, index as u32);
        b.m.planes = &mut plane;
        b.length = 1;
        // SAFETY: VIDIOC_QBUF with one plane, alive for the call.
        unsafe { dev.ioctl(v4l2::VIDIOC_QBUF, &mut b) }.context("QBUF")?;
        q.queued[index] = true;
        Ok(())
    }

    /// Dequeues one buffer of `q`, waiting up to `timeout_ms`; returns (index, bytes, flags).
    fn dequeue(
        dev: &Device,
        q: &mut Queue,
        timeout_ms: i32,
    ) -> Result<Option<(usize, usize, u32)>> {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
        loop {
            let mut plane = Plane::default();
            let mut b = Buffer::new(q.typ, 0);
            b.m.planes = &mut plane;
            b.length = 1;
            // SAFETY: VIDIOC_DQBUF with one plane, alive for the call.
            match unsafe { dev.ioctl(v4l2::VIDIOC_DQBUF, &mut b) } {
                Ok(()) => {
                    q.queued[b.index as usize] = false;
                    return Ok(Some((b.index as usize, plane.bytesused as usize, b.flags)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    dev.wait_readable(left.as_millis().max(1) as i32)?;
                }
                Err(e) => return Err(e).context("DQBUF"),
            }
        }
    }
}

#[cfg(target_os = "linux")]
impl VideoEncoder for V4l2Encoder {
    fn encode(&mut self, frame: &RawFrame, force_idr: bool) -> Result<EncodedPicture> {
        if frame.width != self.width || frame.height != self.height {
            bail!(
                "v4l2m2m: frame is {}x{}, encoder opened for {}x{}",
                frame.width,
                frame.height,
                self.width,
                self.height
            );
        }
        // A free input buffer: one the driver has given back.
        let idx = match self.output.queued.iter().position(|q| !q) {
            Some(i) => i,
            None => match Self::dequeue(&self.dev, &mut self.output, 1000)? {
                Some((i, _, _)) => i,
                None => bail!("v4l2m2m: the encoder kept every input buffer for 1 s"),
            },
        };
        let (w, h, stride, rows) = (self.width, self.height, self.stride, self.rows);
        let dst = self.output.maps[idx].as_mut_slice();
        let cstride = stride / 2;
        let (y_dst, uv_dst) = dst.split_at_mut(stride * rows);
        for r in 0..h {
            y_dst[r * stride..r * stride + w].copy_from_slice(&frame.y()[r * w..(r + 1) * w]);
        }
        let (u_dst, v_dst) = uv_dst.split_at_mut(cstride * rows / 2);
        for r in 0..h / 2 {
            let cw = w / 2;
            u_dst[r * cstride..r * cstride + cw].copy_from_slice(&frame.u()[r * cw..(r + 1) * cw]);
            v_dst[r * cstride..r * cstride + cw].copy_from_slice(&frame.v()[r * cw..(r + 1) * cw]);
        }
        if force_idr && self.frames > 0 {
            self.dev
                .set_control(v4l2::CID_FORCE_KEY_FRAME, 1)
                .context("forcing an IDR")?;
        }
        self.frames += 1;
        let used = (stride * rows * 3 / 2) as u32;
        Self::queue(&self.dev, &mut self.output, idx, used)?;
        let Some((ci, len, flags)) = Self::dequeue(&self.dev, &mut self.capture, 1000)? else {
            bail!("v4l2m2m: no bitstream within 1 s");
        };
        let data = self.capture.maps[ci].as_slice()[..len].to_vec();
        Self::queue(&self.dev, &mut self.capture, ci, 0)?;
        if flags & v4l2::BUF_FLAG_ERROR != 0 {
            bail!("v4l2m2m: the encoder flagged an error");
        }
        Ok(EncodedPicture {
            data,
            keyframe: flags & v4l2::BUF_FLAG_KEYFRAME != 0,
            recovery_frames: 0,
        })
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        self.dev
            .set_control(v4l2::CID_BITRATE, bps as i32)
            .context("setting the bitrate")
    }

    fn name(&self) -> &'static str {
        "v4l2m2m"
    }
}

#[cfg(target_os = "linux")]
impl Drop for V4l2Encoder {
    fn drop(&mut self) {
        let _ = self.dev.stream(self.output.typ, false);
        let _ = self.dev.stream(self.capture.typ, false);
    }
}

#[cfg(not(target_os = "linux"))]
impl V4l2Encoder {
    pub fn new(_: &EncoderSettings, _: &EyeConfig) -> Result<Self> {
        bail!("the V4L2 encoder is Linux-only")
    }
}

#[cfg(not(target_os = "linux"))]
impl VideoEncoder for V4l2Encoder {
    fn encode(&mut self, _: &RawFrame, _: bool) -> Result<EncodedPicture> {
        bail!("the V4L2 encoder is Linux-only")
    }
    fn set_bitrate(&mut self, _: u32) -> Result<()> {
        bail!("the V4L2 encoder is Linux-only")
    }
    fn name(&self) -> &'static str {
        "v4l2m2m"
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn probing_names_what_is_wrong_with_each_candidate() {
        let e = find_encoder("/dev/null").unwrap_err();
        assert!(
            e.contains("/dev/null") && e.contains("not a V4L2 device"),
            "{e}"
        );
        let e = find_encoder("/nonexistent/video11").unwrap_err();
        assert!(e.contains("/nonexistent/video11"), "{e}");
    }

    #[test]
    fn opening_without_hardware_is_a_clear_error() {
        let s = EncoderSettings {
            device: "/dev/null".into(),
            ..Default::default()
        };
        let e = V4l2Encoder::new(&s, &EyeConfig::default()).err().unwrap();
        assert!(format!("{e:#}").contains("no V4L2 H.264 encoder"), "{e:#}");
    }
}
