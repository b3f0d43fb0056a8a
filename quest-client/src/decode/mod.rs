//! H.264 decoders behind [`VideoDecoder`]: openh264 (software, everywhere) and MediaCodec
//! (the Quest's hardware decoder, `target_os = "android"` only).

#[cfg(target_os = "android")]
pub mod mediacodec;
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

pub fn open_software() -> Result<Box<dyn VideoDecoder>> {
    Ok(Box::new(openh264::OpenH264Decoder::new()?))
}
