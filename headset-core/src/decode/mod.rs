//! H.264 decoders behind [`VideoDecoder`]: libavcodec (software, FFmpeg's decoder; with the
//! `libavcodec` feature, then the default), openh264 (software; desktops and the Pi) and
//! MediaCodec (the Quest's hardware decoder, `target_os = "android"` only — every Quest has
//! one, so the APK carries no software decoder).

#[cfg(all(feature = "libavcodec", not(target_os = "android")))]
pub mod libavcodec;
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

/// What a decoder can render into instead of handing its pictures over, so a picture never
/// touches the CPU: on the Quest an Android `NativeWindow` (the producer end of an OpenXR
/// Android-surface swapchain, shown by the eye's quad layer). Other platforms have none: there
/// the type has no values.
#[cfg(target_os = "android")]
pub type Surface = ndk::native_window::NativeWindow;
#[cfg(not(target_os = "android"))]
pub enum Surface {}

pub trait VideoDecoder: Send {
    /// Decodes one access unit and shows the picture it produced (if any) to `on_picture`,
    /// which may read it in place (no copy). Returns whether a picture came out.
    fn decode(
        &mut self,
        access_unit: &[u8],
        on_picture: &mut dyn FnMut(&DecodedView<'_>),
    ) -> Result<bool>;
    fn name(&self) -> &'static str;
    /// Prepares the decoder for pictures of `width`×`height` before the stream's first one
    /// arrives, so that picture does not pay for the decoder's set-up (its buffers, their first
    /// touch). Nothing decoded here is ever shown: the decoder thread takes nothing but a
    /// keyframe first, and a keyframe resets every reference. The default does nothing.
    fn warm_up(&mut self, _width: u16, _height: u16) -> Result<()> {
        Ok(())
    }
    /// Whether `decode` takes a picture slice by slice (each slice decoded as it arrives; the
    /// picture comes out with its last slice) rather than whole access units only.
    fn takes_slices(&self) -> bool {
        false
    }
    /// Whether the decoder goes on putting out pictures after a lost reference (concealing
    /// what it lacks), so an intra-refresh sweep can repair the stream without an IDR.
    fn conceals(&self) -> bool {
        false
    }
    /// Whether the last picture put out had concealed parts (never to be shown as good).
    fn last_concealed(&self) -> bool {
        false
    }
    /// Whether this decoder renders into a [`Surface`] (use [`VideoDecoder::decode_to_surface`])
    /// rather than handing pictures to `decode`'s callback.
    fn renders_to_surface(&self) -> bool {
        false
    }
    /// Decodes one access unit into the decoder's surface; true if its picture was rendered
    /// there (and older ones still inside the decoder were dropped unrendered).
    fn decode_to_surface(&mut self, _access_unit: &[u8]) -> Result<bool> {
        anyhow::bail!(
            "the {} decoder hands pictures over; it has no surface",
            self.name()
        )
    }
}

/// Which software decoder decodes where there is no hardware one (everywhere but the Quest).
/// The default is libavcodec in builds that have it (faster: docs/decisions.md), openh264
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftwareDecoder {
    /// Cisco's openh264, built from source with the workspace: always there.
    Openh264,
    /// FFmpeg's libavcodec (Debian `libavcodec-dev`), in builds with the `libavcodec` feature.
    Libavcodec,
}

impl Default for SoftwareDecoder {
    fn default() -> Self {
        if cfg!(feature = "libavcodec") {
            SoftwareDecoder::Libavcodec
        } else {
            SoftwareDecoder::Openh264
        }
    }
}

impl SoftwareDecoder {
    pub const NAMES: [&'static str; 2] = ["openh264", "libavcodec"];

    pub fn name(self) -> &'static str {
        match self {
            SoftwareDecoder::Openh264 => "openh264",
            SoftwareDecoder::Libavcodec => "libavcodec",
        }
    }

    /// A clear error when this build cannot decode with it (so a run refuses it at the start,
    /// not when the first picture arrives).
    pub fn check_available(self) -> Result<()> {
        match self {
            SoftwareDecoder::Openh264 => Ok(()),
            SoftwareDecoder::Libavcodec if cfg!(feature = "libavcodec") => Ok(()),
            SoftwareDecoder::Libavcodec => anyhow::bail!(
                "this build has no libavcodec decoder: build with `--features libavcodec` \
                 (Debian libavcodec-dev, installed by scripts/setup.sh --libav)"
            ),
        }
    }
}

impl std::str::FromStr for SoftwareDecoder {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "openh264" => Ok(SoftwareDecoder::Openh264),
            "libavcodec" => Ok(SoftwareDecoder::Libavcodec),
            _ => anyhow::bail!(
                "unknown decoder {s:?}: expected one of {}",
                Self::NAMES.join(", ")
            ),
        }
    }
}

#[cfg(not(target_os = "android"))]
pub fn open_software() -> Result<Box<dyn VideoDecoder>> {
    open_software_kind(SoftwareDecoder::default())
}

#[cfg(not(target_os = "android"))]
pub fn open_software_kind(kind: SoftwareDecoder) -> Result<Box<dyn VideoDecoder>> {
    kind.check_available()?;
    match kind {
        SoftwareDecoder::Openh264 => Ok(Box::new(openh264::OpenH264Decoder::new()?)),
        #[cfg(feature = "libavcodec")]
        SoftwareDecoder::Libavcodec => Ok(Box::new(libavcodec::LibavcodecDecoder::new()?)),
        #[cfg(not(feature = "libavcodec"))]
        SoftwareDecoder::Libavcodec => unreachable!("check_available refused it"),
    }
}

#[cfg(target_os = "android")]
pub fn open_software() -> Result<Box<dyn VideoDecoder>> {
    open_software_kind(SoftwareDecoder::default())
}

#[cfg(target_os = "android")]
pub fn open_software_kind(_kind: SoftwareDecoder) -> Result<Box<dyn VideoDecoder>> {
    anyhow::bail!("no software H.264 decoder on Android (MediaCodec is the decoder there)")
}

/// One mid-grey IDR of `width`×`height`, encoded by openh264's encoder: what a software
/// decoder's warm-up decodes to set up its buffers for the stream's size.
#[cfg(not(target_os = "android"))]
pub(crate) fn grey_idr(width: u16, height: u16) -> Result<Vec<u8>> {
    use anyhow::Context;
    let (w, h) = (usize::from(width), usize::from(height));
    if w == 0 || h == 0 || w % 2 == 1 || h % 2 == 1 {
        anyhow::bail!("no warm-up picture for {w}x{h}");
    }
    let mut enc = ::openh264::encoder::Encoder::new().context("openh264 encoder")?;
    let grey = ::openh264::formats::YUVBuffer::from_vec(vec![128; w * h * 3 / 2], w, h);
    Ok(enc
        .encode(&grey)
        .context("encoding the warm-up picture")?
        .to_vec())
}

/// A software decoder's I420 picture, from the planes and strides it reports (signed, as the C
/// libraries give them), checked: a picture without planes, with no size, or with a stride
/// shorter than its row is an error naming `decoder`.
///
/// # Safety
/// Each non-null plane must be valid for reads of `stride * rows` bytes (luma: `height` rows;
/// chroma: half as many, rounded up) for `'a`, which the caller ties to the decoder's next call.
#[cfg(not(target_os = "android"))]
pub(crate) unsafe fn i420_view<'a>(
    decoder: &str,
    planes: [*const u8; 3],
    (width, height): (i32, i32),
    (y_stride, c_stride): (i32, i32),
) -> Result<DecodedView<'a>> {
    let (width, height) = (width.max(0) as usize, height.max(0) as usize);
    let (ys, cs) = (y_stride.max(0) as usize, c_stride.max(0) as usize);
    if planes.iter().any(|p| p.is_null())
        || width == 0
        || height == 0
        || ys < width
        || cs < width.div_ceil(2)
    {
        anyhow::bail!("{decoder}: a picture without planes");
    }
    let ch = height.div_ceil(2);
    // SAFETY: the caller's contract; every pointer is non-null (checked above).
    let (y, u, v) = unsafe {
        (
            std::slice::from_raw_parts(planes[0], ys * height),
            std::slice::from_raw_parts(planes[1], cs * ch),
            std::slice::from_raw_parts(planes[2], cs * ch),
        )
    };
    Ok(DecodedView {
        width,
        height,
        y,
        y_stride: ys,
        chroma: Chroma::Planar { u, v, stride: cs },
    })
}

/// A software decoder's warm-up: decodes [`grey_idr`] of the stream's size, so the decoder
/// sets up its buffers for that size and keeps them for the stream's first IDR of the same size
/// (2×1280x720 with openh264: that first IDR decoded in 1.5 ms instead of 6–8 ms, and in the
/// loopback, where both eyes start at once, 9–29 ms). The picture is never shown.
#[cfg(not(target_os = "android"))]
pub(crate) fn warm_up_by_decoding(
    dec: &mut dyn VideoDecoder,
    width: u16,
    height: u16,
) -> Result<()> {
    let idr = grey_idr(width, height)?;
    let mut got = false;
    dec.decode(&idr, &mut |_| got = true)?;
    if !got {
        anyhow::bail!("the warm-up picture did not decode");
    }
    Ok(())
}

/// The decoder for a stream of the announced size: MediaCodec on the Quest (rendering into
/// `surface` if one is given), the `software` decoder elsewhere.
pub fn open_for_stream(
    size: Option<(u16, u16)>,
    surface: Option<Surface>,
    software: SoftwareDecoder,
) -> Result<Box<dyn VideoDecoder>> {
    #[cfg(target_os = "android")]
    if let Some((w, h)) = size {
        return Ok(Box::new(match surface {
            Some(s) => mediacodec::MediaCodecDecoder::new_to_surface(w, h, s)?,
            None => mediacodec::MediaCodecDecoder::new(w, h)?,
        }));
    }
    #[cfg(not(target_os = "android"))]
    {
        let _ = size;
        if let Some(s) = surface {
            match s {}
        }
    }
    open_software_kind(software)
}
