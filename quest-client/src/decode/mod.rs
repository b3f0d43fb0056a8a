//! H.264 decoders behind [`VideoDecoder`]: openh264 here; MediaCodec on the Quest (another
//! issue) plugs in behind the same trait.

pub mod openh264;

use anyhow::Result;

/// A decoded picture's planes, borrowed from the decoder until the next call.
pub struct DecodedView<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub y_stride: usize,
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub uv_stride: usize,
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
