//! The Quest's hardware H.264 decoder through Android's NDK MediaCodec (`ndk` crate), set up
//! for latency the way ALVR's client does: the low-latency keys (AOSP `low-latency`, and
//! Qualcomm's vendor key the Quest's decoder reads), realtime priority, decode-order output,
//! and one access unit in, one picture out (binoc streams have no B-frames).
//!
//! Two outputs:
//! * [`VideoDecoder`] (byte buffers): the picture is read in place from the codec's output
//!   buffer (NV12, Qualcomm's aligned NV12, or I420; layout from [`super::yuv_layout`]) for the
//!   pixel-code check and the markers. No copy beyond the decoder's own write.
//! * [`MediaCodecDecoder::new_to_surface`]: the decoder renders into a `NativeWindow` — on the
//!   Quest the `Surface` of the eye's OpenXR swapchain (XR_KHR_android_surface_swapchain),
//!   which that eye's quad layer shows — so the picture never touches the CPU and the app never
//!   converts it (`app/quad_layers.rs`).
//!
//! Compiled only for `target_os = "android"`; CI type-checks and lints it for
//! `aarch64-linux-android` (scripts/android-check.sh). It has not run on a headset yet.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ndk::media::media_codec::{
    DequeuedInputBufferResult, DequeuedOutputBufferInfoResult, MediaCodec, MediaCodecDirection,
    MediaFormat,
};
use ndk::native_window::NativeWindow;

use super::yuv_layout::{FormatValues, YuvLayout, COLOR_YUV420_SEMIPLANAR};
use super::{DecodedView, VideoDecoder};

const MIME: &str = "video/avc";
/// How long one access unit may take to come out before it is given up (the next IDR or
/// frame continues; a late picture is dropped rather than shown after a newer one).
const OUTPUT_WAIT: Duration = Duration::from_millis(50);

/// `MediaCodec` is not `Send` in the `ndk` crate, but an `AMediaCodec` may be driven from any
/// thread as long as calls do not overlap; the decoder owns it alone and every call goes
/// through `&mut self` (one decoder thread per eye).
struct Codec(MediaCodec);

// SAFETY: see above; no call to the codec can happen from two threads at once.
unsafe impl Send for Codec {}

impl std::ops::Deref for Codec {
    type Target = MediaCodec;
    fn deref(&self) -> &MediaCodec {
        &self.0
    }
}

pub struct MediaCodecDecoder {
    codec: Codec,
    layout: Option<YuvLayout>,
    /// The surface pictures are rendered into (kept alive as long as the codec renders there).
    surface: Option<NativeWindow>,
    /// Presentation time (µs) given to the next access unit: a counter, matched on output.
    next_pts: u64,
}

fn format(width: i32, height: i32) -> MediaFormat {
    let mut f = MediaFormat::new();
    f.set_str("mime", MIME);
    f.set_i32("width", width);
    f.set_i32("height", height);
    f.set_i32("max-width", width);
    f.set_i32("max-height", height);
    f.set_i32("color-format", COLOR_YUV420_SEMIPLANAR);
    // Latency: AOSP's key (API 30+), Qualcomm's (the Quest), realtime priority, as fast as
    // it can go, and decode order (no reorder buffer).
    f.set_i32("low-latency", 1);
    f.set_i32("vendor.qti-ext-dec-low-latency.enable", 1);
    f.set_i32("vendor.qti-ext-dec-picture-order.enable", 1);
    f.set_i32("priority", 0);
    f.set_i32("operating-rate", i16::MAX as i32);
    f
}

/// The output buffers' layout, from the codec's current output format.
fn output_layout(codec: &MediaCodec) -> Result<YuvLayout> {
    let f = codec.output_format();
    let crop = match (
        f.i32("crop-left"),
        f.i32("crop-top"),
        f.i32("crop-right"),
        f.i32("crop-bottom"),
    ) {
        (Some(l), Some(t), Some(r), Some(b)) => Some((l, t, r, b)),
        _ => None,
    };
    let values = FormatValues {
        color_format: f.i32("color-format"),
        width: f.i32("width"),
        height: f.i32("height"),
        stride: f.i32("stride"),
        slice_height: f.i32("slice-height"),
        crop,
    };
    tracing::info!(?values, "decoder output format");
    Ok(YuvLayout::from_format(&values)?)
}

impl MediaCodecDecoder {
    fn open(width: u16, height: u16, surface: Option<NativeWindow>) -> Result<Self> {
        let codec = MediaCodec::from_decoder_type(MIME).context("no H.264 decoder")?;
        codec
            .configure(
                &format(width.into(), height.into()),
                surface.as_ref(),
                MediaCodecDirection::Decoder,
            )
            .context("configuring the H.264 decoder")?;
        codec.start().context("starting the H.264 decoder")?;
        if let Ok(name) = codec.name() {
            tracing::info!(decoder = %name, width, height, "MediaCodec decoder started");
        }
        Ok(MediaCodecDecoder {
            codec: Codec(codec),
            layout: None,
            surface,
            next_pts: 0,
        })
    }

    /// Decodes into byte buffers, read in place through [`VideoDecoder::decode`].
    pub fn new(width: u16, height: u16) -> Result<Self> {
        Self::open(width, height, None)
    }

    /// Decodes into `surface` (zero copy); use [`VideoDecoder::decode_to_surface`].
    pub fn new_to_surface(width: u16, height: u16, surface: NativeWindow) -> Result<Self> {
        Self::open(width, height, Some(surface))
    }

    fn queue(&mut self, au: &[u8]) -> Result<u64> {
        let deadline = Instant::now() + OUTPUT_WAIT;
        let mut input = loop {
            match self.codec.dequeue_input_buffer(Duration::from_millis(2))? {
                DequeuedInputBufferResult::Buffer(b) => break b,
                DequeuedInputBufferResult::TryAgainLater if Instant::now() < deadline => {}
                DequeuedInputBufferResult::TryAgainLater => {
                    bail!("the decoder took no input for {OUTPUT_WAIT:?}")
                }
            }
        };
        let buf = input.buffer_mut();
        if au.len() > buf.len() {
            bail!(
                "access unit of {} bytes does not fit the decoder's {}-byte input buffer",
                au.len(),
                buf.len()
            );
        }
        for (dst, &src) in buf.iter_mut().zip(au) {
            *dst = MaybeUninit::new(src);
        }
        let pts = self.next_pts;
        self.next_pts += 1;
        self.codec.queue_input_buffer(input, 0, au.len(), pts, 0)?;
        Ok(pts)
    }

    /// Waits for the picture of access unit `pts`; older pictures still in the codec are
    /// dropped unshown. `with` sees the output buffer (byte-buffer mode).
    fn drain(
        &mut self,
        pts: u64,
        render: bool,
        with: &mut dyn FnMut(&[u8], &YuvLayout) -> Result<()>,
    ) -> Result<bool> {
        let deadline = Instant::now() + OUTPUT_WAIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self
                .codec
                .dequeue_output_buffer(wait.min(Duration::from_millis(5)))?
            {
                DequeuedOutputBufferInfoResult::Buffer(out) => {
                    let this = out.info().presentation_time_us() as u64 == pts;
                    if this && self.surface.is_none() {
                        if self.layout.is_none() {
                            self.layout = Some(output_layout(&self.codec)?);
                        }
                        let layout = self.layout.context("no output format")?;
                        let result = with(out.buffer(), &layout);
                        self.codec.release_output_buffer(out, false)?;
                        result?;
                    } else {
                        self.codec.release_output_buffer(out, this && render)?;
                    }
                    if this {
                        return Ok(true);
                    }
                }
                DequeuedOutputBufferInfoResult::OutputFormatChanged => {
                    if self.surface.is_none() {
                        self.layout = Some(output_layout(&self.codec)?);
                    }
                }
                DequeuedOutputBufferInfoResult::OutputBuffersChanged => {}
                DequeuedOutputBufferInfoResult::TryAgainLater => {
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

impl VideoDecoder for MediaCodecDecoder {
    fn decode(&mut self, au: &[u8], on_picture: &mut dyn FnMut(&DecodedView<'_>)) -> Result<bool> {
        if self.surface.is_some() {
            bail!("this decoder renders to a surface: use decode_to_surface");
        }
        let pts = self.queue(au)?;
        self.drain(pts, false, &mut |buf, layout| {
            on_picture(&layout.view(buf)?);
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "mediacodec"
    }

    fn renders_to_surface(&self) -> bool {
        self.surface.is_some()
    }

    fn decode_to_surface(&mut self, au: &[u8]) -> Result<bool> {
        if self.surface.is_none() {
            bail!("this decoder hands pictures over: use decode");
        }
        let pts = self.queue(au)?;
        self.drain(pts, true, &mut |_, _| Ok(()))
    }
}

impl Drop for MediaCodecDecoder {
    fn drop(&mut self) {
        let _ = self.codec.stop();
    }
}
