//! Software decode with libavcodec's H.264 decoder (FFmpeg; the one GStreamer's `avdec_h264`
//! uses), through a small C shim (`csrc/avdec_shim.c`; Debian `libavcodec-dev`), built with the
//! `libavcodec` feature. Slice by slice like openh264: libavcodec takes chunked input
//! (`AV_CODEC_FLAG2_CHUNKS`) and finishes a picture when its last macroblock row is decoded, so
//! the picture comes out with the slice that completes it. One thread, low delay.
//!
//! After a lost reference libavcodec goes on decoding (what it lacks stays as it was in the
//! picture buffer: its own concealment is off, see the shim), so the decoder thread hides
//! pictures from a loss until an intra-refresh sweep or an IDR has repaired the picture, as
//! with openh264. A slice that fails to decode is an error of the call (`AV_EF_EXPLODE`), so a
//! damaged bitstream is never put out as a good picture.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use anyhow::{bail, Result};

use super::{DecodedView, VideoDecoder};

#[repr(C)]
struct Picture {
    plane: [*const u8; 3],
    stride: [i32; 3],
    width: i32,
    height: i32,
    corrupt: i32,
}

#[repr(C)]
struct Raw {
    _opaque: [u8; 0],
}

extern "C" {
    fn binoc_avdec_new(err: *mut c_char, err_len: usize) -> *mut Raw;
    fn binoc_avdec_free(d: *mut Raw);
    fn binoc_avdec_decode(
        d: *mut Raw,
        data: *const u8,
        len: usize,
        out: *mut Picture,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// libavcodec's log lines (the shim's `av_log` callback): at debug level, errors and warnings
/// alike (a lost slice makes many; binoc counts and reports the losses itself).
#[no_mangle]
extern "C" fn binoc_avdec_log(level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: the shim passes a NUL-terminated line that lives for the call.
    let line = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    tracing::debug!(target: "libavcodec", level, "{}", line.trim_end());
}

fn message(buf: &[c_char]) -> String {
    // SAFETY: the shim writes a NUL-terminated string (snprintf) into the zeroed buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

pub struct LibavcodecDecoder {
    raw: NonNull<Raw>,
    concealed: bool,
}

// SAFETY: the decoder context is used from one thread at a time (`&mut self`), and libavcodec
// contexts are not tied to the thread that made them.
unsafe impl Send for LibavcodecDecoder {}

impl LibavcodecDecoder {
    pub fn new() -> Result<Self> {
        let mut err = [0 as c_char; 256];
        // SAFETY: `err` is writable for its length.
        let raw = unsafe { binoc_avdec_new(err.as_mut_ptr(), err.len()) };
        match NonNull::new(raw) {
            Some(raw) => Ok(LibavcodecDecoder {
                raw,
                concealed: false,
            }),
            None => bail!("libavcodec decoder: {}", message(&err)),
        }
    }
}

impl Drop for LibavcodecDecoder {
    fn drop(&mut self) {
        // SAFETY: made by binoc_avdec_new, freed once.
        unsafe { binoc_avdec_free(self.raw.as_ptr()) }
    }
}

impl VideoDecoder for LibavcodecDecoder {
    fn decode(&mut self, au: &[u8], on_picture: &mut dyn FnMut(&DecodedView<'_>)) -> Result<bool> {
        let mut pic = Picture {
            plane: [std::ptr::null(); 3],
            stride: [0; 3],
            width: 0,
            height: 0,
            corrupt: 0,
        };
        let mut err = [0 as c_char; 256];
        // SAFETY: a live decoder; `au` is valid for its length during the call; `pic` and `err`
        // are writable.
        let rc = unsafe {
            binoc_avdec_decode(
                self.raw.as_ptr(),
                au.as_ptr(),
                au.len(),
                &mut pic,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc < 0 {
            bail!("libavcodec: {}", message(&err));
        }
        if rc == 0 {
            return Ok(false);
        }
        if pic.stride[2] != pic.stride[1] {
            bail!("libavcodec: chroma planes of different strides");
        }
        // SAFETY: libavcodec keeps the picture (the shim holds its reference) until the next
        // call on this decoder; each 4:2:0 plane is `stride * rows` long.
        let view = unsafe {
            super::i420_view(
                "libavcodec",
                pic.plane,
                (pic.width, pic.height),
                (pic.stride[0], pic.stride[1]),
            )
        }?;
        self.concealed = pic.corrupt != 0;
        on_picture(&view);
        Ok(true)
    }

    fn name(&self) -> &'static str {
        "libavcodec"
    }

    fn warm_up(&mut self, width: u16, height: u16) -> Result<()> {
        super::warm_up_by_decoding(self, width, height)?;
        self.concealed = false;
        Ok(())
    }

    fn takes_slices(&self) -> bool {
        true
    }

    fn conceals(&self) -> bool {
        true
    }

    fn last_concealed(&self) -> bool {
        self.concealed
    }
}
