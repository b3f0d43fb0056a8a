//! x264 (software; Debian `libx264-dev`) through the C shim in `csrc/x264_shim.c`.
//!
//! Configured the way rpicam-apps runs it on a Pi 5: `ultrafast` + `zerolatency` (no
//! lookahead, no B-frames, sliced threads), one reference frame, ABR with a VBV buffer of about
//! one frame so no frame takes several frame-times to send.

use std::ffi::{c_char, c_int, CString};

use anyhow::{bail, Context, Result};

use super::{EncodedPicture, VideoEncoder};
use crate::config::{EncoderSettings, EyeConfig, SpsPpsMode};
use crate::source::RawFrame;

#[repr(C)]
struct ShimConfig {
    width: c_int,
    height: c_int,
    fps_num: c_int,
    fps_den: c_int,
    bitrate_kbps: c_int,
    keyint: c_int,
    threads: c_int,
    qp_min: c_int,
    qp_max: c_int,
    slice_max_size: c_int,
    repeat_headers: c_int,
    preset: *const c_char,
}

#[repr(C)]
struct Shim {
    _opaque: [u8; 0],
}

extern "C" {
    fn binoc_x264_open(
        cfg: *const ShimConfig,
        out: *mut *mut Shim,
        err: *mut c_char,
        errlen: c_int,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn binoc_x264_encode(
        e: *mut Shim,
        y: *const u8,
        u: *const u8,
        v: *const u8,
        stride_y: c_int,
        stride_c: c_int,
        force_idr: c_int,
        data: *mut *const u8,
        len: *mut c_int,
        keyframe: *mut c_int,
    ) -> c_int;
    fn binoc_x264_set_bitrate(e: *mut Shim, kbps: c_int) -> c_int;
    fn binoc_x264_close(e: *mut Shim);
    fn binoc_x264_build() -> c_int;
}

/// The libx264 API version (`X264_BUILD`) this binary was built against.
pub fn build() -> i32 {
    // SAFETY: returns a compile-time constant.
    unsafe { binoc_x264_build() }
}

pub struct X264Encoder {
    raw: *mut Shim,
    width: usize,
    height: usize,
}

// SAFETY: the x264 handle is owned exclusively by this value and only used through &mut self.
unsafe impl Send for X264Encoder {}

impl X264Encoder {
    pub fn new(settings: &EncoderSettings, eye: &EyeConfig) -> Result<Self> {
        let preset = CString::new(settings.preset.as_str()).context("x264 preset")?;
        // Frame rates such as 59.94 become 60000/1001.
        let (fps_num, fps_den) = if eye.fps.fract() == 0.0 {
            (eye.fps as c_int, 1)
        } else {
            ((eye.fps * 1001.0).round() as c_int, 1001)
        };
        let cfg = ShimConfig {
            width: eye.size.width as c_int,
            height: eye.size.height as c_int,
            fps_num,
            fps_den,
            bitrate_kbps: (eye.bitrate_mbps * 1000.0).round().max(1.0) as c_int,
            keyint: eye.idr_interval_frames as c_int,
            threads: settings.threads as c_int,
            qp_min: settings.qp_min as c_int,
            qp_max: settings.qp_max as c_int,
            slice_max_size: settings.slice_bytes.unwrap_or(0) as c_int,
            repeat_headers: (settings.sps_pps == SpsPpsMode::EveryIdr) as c_int,
            preset: preset.as_ptr(),
        };
        let mut raw = std::ptr::null_mut();
        let mut err = [0 as c_char; 256];
        // SAFETY: cfg and err outlive the call; err's length is passed.
        let rc = unsafe { binoc_x264_open(&cfg, &mut raw, err.as_mut_ptr(), err.len() as c_int) };
        if rc != 0 || raw.is_null() {
            // SAFETY: the shim NUL-terminates what it writes (snprintf); err starts zeroed.
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
            bail!("x264: {}", msg.to_string_lossy());
        }
        Ok(X264Encoder {
            raw,
            width: eye.size.width as usize,
            height: eye.size.height as usize,
        })
    }
}

impl Drop for X264Encoder {
    fn drop(&mut self) {
        // SAFETY: raw came from binoc_x264_open and is closed once.
        unsafe { binoc_x264_close(self.raw) }
    }
}

impl VideoEncoder for X264Encoder {
    fn encode(&mut self, frame: &RawFrame, force_idr: bool) -> Result<EncodedPicture> {
        if frame.width != self.width || frame.height != self.height {
            bail!(
                "x264: frame is {}x{}, encoder opened for {}x{}",
                frame.width,
                frame.height,
                self.width,
                self.height
            );
        }
        let (y, u, v) = (frame.y(), frame.u(), frame.v());
        let (mut data, mut len, mut key) = (std::ptr::null(), 0, 0);
        // SAFETY: the planes are complete I420 planes of the size the encoder was opened with
        // (checked above); x264 only reads them during the call. The output points into x264's
        // buffer, valid until the next call on this handle, and is copied out at once.
        let rc = unsafe {
            binoc_x264_encode(
                self.raw,
                y.as_ptr(),
                u.as_ptr(),
                v.as_ptr(),
                self.width as c_int,
                (self.width / 2) as c_int,
                force_idr as c_int,
                &mut data,
                &mut len,
                &mut key,
            )
        };
        if rc != 0 {
            bail!("x264_encoder_encode failed");
        }
        let data = if len > 0 && !data.is_null() {
            // SAFETY: see above: `len` bytes at `data` are x264's output for this frame.
            unsafe { std::slice::from_raw_parts(data, len as usize) }.to_vec()
        } else {
            Vec::new()
        };
        Ok(EncodedPicture {
            data,
            keyframe: key != 0,
        })
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        let kbps = (bps / 1000).max(1) as c_int;
        // SAFETY: raw is a live handle.
        if unsafe { binoc_x264_set_bitrate(self.raw, kbps) } != 0 {
            bail!("x264 refused bitrate {kbps} kbit/s");
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "x264"
    }
}
