//! H.264 decoders behind [`VideoDecoder`]: openh264 (software; desktops and the Pi) and
//! MediaCodec (the Quest's hardware decoder, `target_os = "android"` only — every Quest has
//! one, so the APK carries no software decoder).

#[cfg(target_os = "android")]
pub mod mediacodec;
#[cfg(not(target_os = "android"))]
pub mod openh264;
pub mod yuv_layout;

use anyhow::Result;

/// A decoded picture's planes, borrowed from the decoder until the next call.
pub struct DecodedView<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub y_stride: usize,
    pub chroma: Chroma<'a>,
}

/// The chroma planes: separate U and V (I420, openh264) or interleaved UV (NV12, what most
/// hardware decoders write).
pub enum Chroma<'a> {
    Planar {
        u: &'a [u8],
        v: &'a [u8],
        stride: usize,
    },
    SemiPlanar {
        uv: &'a [u8],
        stride: usize,
    },
}

pub trait VideoDecoder: Send {
    /// Decodes one access unit and shows the picture it produced (if any) to `on_picture`,
    /// which may read it in place (no copy). Returns whether a picture came out.
    fn decode(
        &mut self,
        access_unit: &[u8],
        on_picture: &mut dyn FnMut(&DecodedView<'_>),
    ) -> Result<bool>;
    fn name(&self) -> &'static str;
}

#[cfg(not(target_os = "android"))]
pub fn open_software() -> Result<Box<dyn VideoDecoder>> {
    Ok(Box::new(openh264::OpenH264Decoder::new()?))
}

#[cfg(target_os = "android")]
pub fn open_software() -> Result<Box<dyn VideoDecoder>> {
    anyhow::bail!("no software H.264 decoder on Android (MediaCodec is the decoder there)")
}

/// The decoder for a stream of the announced size: MediaCodec on the Quest, openh264 elsewhere.
pub fn open_for_stream(size: Option<(u16, u16)>) -> Result<Box<dyn VideoDecoder>> {
    #[cfg(target_os = "android")]
    if let Some((w, h)) = size {
        return Ok(Box::new(mediacodec::MediaCodecDecoder::new(w, h)?));
    }
    #[cfg(not(target_os = "android"))]
    let _ = size;
    open_software()
}
