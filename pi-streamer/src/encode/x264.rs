//! x264 (software; Debian `libx264-dev`) through the C shim in `csrc/x264_shim.c`.
//!
//! Configured the way rpicam-apps runs it on a Pi 5: `ultrafast` + `zerolatency` (no
//! lookahead, no B-frames, sliced threads), one reference frame, ABR with a VBV buffer of about
//! one frame so no frame takes several frame-times to send.
//!
//! With `encoder.slices` > 1 the shim sets x264's per-NAL callback (`nalu_process`): each row
//! slice is handed over (in picture order) the moment it is written, so the first slice is on
//! the wire while the rest of the picture is encoded. With `encoder.refresh: intra`, periodic
//! intra refresh replaces periodic IDRs (an IDR only when one is forced).

use std::ffi::{c_char, c_int, c_void, CString};

use anyhow::{bail, Context, Result};

use super::{whole_as_one_slice, EncodedPicture, EncodedSlice, SlicedPicture, VideoEncoder};
use crate::config::{EncoderSettings, EyeConfig, RefreshMode, SpsPpsMode};
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
    slices: c_int,
    intra_refresh: c_int,
}

/// The shim's slice sink: `ctx` is the `&mut SliceSink` of the running `encode_sliced`.
type SliceSinkFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    data: *const u8,
    len: c_int,
    index: c_int,
    count: c_int,
    idr: c_int,
    recovery: c_int,
);

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
        recovery: *mut c_int,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn binoc_x264_encode_sliced(
        e: *mut Shim,
        y: *const u8,
        u: *const u8,
        v: *const u8,
        stride_y: c_int,
        stride_c: c_int,
        force_idr: c_int,
        sink: SliceSinkFn,
        ctx: *mut c_void,
        keyframe: *mut c_int,
        refresh: *mut c_int,
    ) -> c_int;
    fn binoc_x264_slice_count(e: *const Shim) -> c_int;
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
    /// Slices per frame in sliced mode (0: whole frames).
    slices: u8,
}

/// What the trampoline reaches through the shim's `ctx`.
struct SliceSink<'a, 'b> {
    emit: &'a mut (dyn FnMut(EncodedSlice<'_>) + Send + 'b),
    panicked: bool,
}

/// Called by the shim (under its mutex, so never concurrently) for each finished slice.
unsafe extern "C" fn slice_trampoline(
    ctx: *mut c_void,
    data: *const u8,
    len: c_int,
    index: c_int,
    count: c_int,
    idr: c_int,
    recovery: c_int,
) {
    // SAFETY: ctx is the &mut SliceSink that encode_sliced() passed for this very call of
    // binoc_x264_encode_sliced, alive until it returns; the shim serialises the calls.
    let sink = unsafe { &mut *(ctx as *mut SliceSink<'_, '_>) };
    if sink.panicked || data.is_null() || len <= 0 {
        return;
    }
    // SAFETY: the shim hands `len` bytes of its unit buffer, valid during this call.
    let data = unsafe { std::slice::from_raw_parts(data, len as usize) };
    let slice = EncodedSlice {
        data,
        index: index.clamp(0, 255) as u8,
        count: count.clamp(1, 255) as u8,
        keyframe: idr != 0,
        recovery_frames: recovery.clamp(0, u16::MAX.into()) as u16,
    };
    // No unwinding into C: a panic is remembered and reported after the call.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (sink.emit)(slice))).is_err() {
        sink.panicked = true;
    }
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
            slices: c_int::from(settings.slices),
            intra_refresh: (settings.refresh == RefreshMode::Intra) as c_int,
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
        // SAFETY: raw is a live handle.
        let slices = unsafe { binoc_x264_slice_count(raw) }.clamp(0, 255) as u8;
        Ok(X264Encoder {
            raw,
            width: eye.size.width as usize,
            height: eye.size.height as usize,
            slices,
        })
    }
}

impl X264Encoder {
    fn check_size(&self, frame: &RawFrame) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            bail!(
                "x264: frame is {}x{}, encoder opened for {}x{}",
                frame.width,
                frame.height,
                self.width,
                self.height
            );
        }
        Ok(())
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
        if self.slices > 0 {
            // Sliced mode: the slices, joined.
            let (mut data, mut recovery_frames) = (Vec::new(), 0);
            let pic = self.encode_sliced(frame, force_idr, &mut |s| {
                data.extend_from_slice(s.data);
                recovery_frames = s.recovery_frames;
            })?;
            return Ok(EncodedPicture {
                data,
                keyframe: pic.keyframe,
                recovery_frames,
            });
        }
        self.check_size(frame)?;
        let (y, u, v) = (frame.y(), frame.u(), frame.v());
        let (mut data, mut len, mut key, mut recovery) = (std::ptr::null(), 0, 0, 0);
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
                &mut recovery,
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
            recovery_frames: recovery.clamp(0, u16::MAX.into()) as u16,
        })
    }

    fn slices(&self) -> u8 {
        self.slices.max(1)
    }

    fn encode_sliced(
        &mut self,
        frame: &RawFrame,
        force_idr: bool,
        emit: &mut (dyn FnMut(EncodedSlice<'_>) + Send),
    ) -> Result<SlicedPicture> {
        if self.slices == 0 {
            return whole_as_one_slice(self, frame, force_idr, emit);
        }
        self.check_size(frame)?;
        let (y, u, v) = (frame.y(), frame.u(), frame.v());
        let mut sink = SliceSink {
            emit,
            panicked: false,
        };
        let (mut key, mut refresh) = (0, 0);
        // SAFETY: as in encode(); `sink` outlives the call and is only reached through the
        // trampoline during it.
        let rc = unsafe {
            binoc_x264_encode_sliced(
                self.raw,
                y.as_ptr(),
                u.as_ptr(),
                v.as_ptr(),
                self.width as c_int,
                (self.width / 2) as c_int,
                force_idr as c_int,
                slice_trampoline,
                &mut sink as *mut SliceSink<'_, '_> as *mut c_void,
                &mut key,
                &mut refresh,
            )
        };
        if sink.panicked {
            bail!("x264: the slice sink panicked");
        }
        match rc {
            0 => Ok(SlicedPicture {
                keyframe: key != 0,
                refresh_start: refresh != 0,
            }),
            -3 => bail!("x264 left part of the picture without a slice"),
            -4 => bail!("x264 started an intra-refresh sweep without its recovery point"),
            _ => bail!("x264_encoder_encode failed (sliced)"),
        }
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
