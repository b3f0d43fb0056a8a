//! Software decode with Cisco's openh264 (no reorder delay: binoc streams have no B-frames),
//! slice by slice: each slice is decoded the moment it arrives, and the picture comes out with
//! the slice that completes it (docs/slices-research.md §3a).
//!
//! Error concealment is on (`ERROR_CON_SLICE_MV_COPY_CROSS_IDR`): after a lost reference the
//! decoder still puts out pictures, with what it lacks copied from its last picture, instead of
//! refusing every frame until an IDR. Those pictures are damaged; the decoder thread shows none
//! of them ([`shared_proto::rules::refresh`]) until an intra-refresh sweep has repaired the
//! picture. The `openh264` crate's own `decode` turns the non-zero state of such a picture into
//! an error and drops it, so this decoder calls openh264's `DecodeFrameNoDelay` itself.

use std::ffi::c_void;
use std::ptr::null_mut;

use anyhow::{bail, Context, Result};
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::OpenH264API;
use openh264_sys2::{
    dsBitstreamError, dsDataErrorConcealed, dsRefLost, SBufferInfo, DECODER_OPTION,
    DECODER_OPTION_ERROR_CON_IDC, ERROR_CON_SLICE_MV_COPY_CROSS_IDR,
};

use super::{DecodedView, VideoDecoder};

pub struct OpenH264Decoder {
    dec: Decoder,
    /// The last picture put out had concealed parts (its decoding state was not error-free).
    concealed: bool,
}

impl OpenH264Decoder {
    pub fn new() -> Result<Self> {
        let cfg = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let mut dec = Decoder::with_api_config(OpenH264API::from_source(), cfg)
            .context("openh264 decoder")?;
        let mut idc: DECODER_OPTION = ERROR_CON_SLICE_MV_COPY_CROSS_IDR as DECODER_OPTION;
        // SAFETY: a live decoder; the option takes a pointer to an int that outlives the call.
        let rc = unsafe {
            dec.raw_api().set_option(
                DECODER_OPTION_ERROR_CON_IDC,
                (&mut idc as *mut DECODER_OPTION).cast::<c_void>(),
            )
        };
        if rc != 0 {
            bail!("openh264 refused error concealment (state {rc})");
        }
        Ok(OpenH264Decoder {
            dec,
            concealed: false,
        })
    }
}

impl VideoDecoder for OpenH264Decoder {
    fn decode(&mut self, au: &[u8], on_picture: &mut dyn FnMut(&DecodedView<'_>)) -> Result<bool> {
        let len = i32::try_from(au.len()).context("access unit too long")?;
        let mut dst = [null_mut::<u8>(); 3];
        let mut info = SBufferInfo::default();
        // SAFETY: `au` is valid for `len` bytes during the call; dst and info are the out
        // parameters DecodeFrameNoDelay fills.
        let state = unsafe {
            self.dec
                .raw_api()
                .decode_frame_no_delay(au.as_ptr(), len, dst.as_mut_ptr(), &mut info)
        };
        if info.iBufferStatus != 1 {
            // No picture yet (a slice before the last), or none at all: the caller decides.
            // A non-zero state here is about an earlier picture (one that broke off, finished
            // with concealment as this access unit began), never shown.
            if state != 0 {
                tracing::trace!("openh264: decoding state {state:#x} without a picture");
            }
            return Ok(false);
        }
        // SAFETY: iBufferStatus 1: the union holds the system buffer's geometry.
        let sb = unsafe { info.UsrData.sSystemBuffer };
        // SAFETY: openh264 owns the planes until the next call on this decoder; each is
        // `stride * rows` long (I420).
        let view = unsafe {
            super::i420_view(
                "openh264",
                dst.map(|p| p.cast_const()),
                (sb.iWidth, sb.iHeight),
                (sb.iStride[0], sb.iStride[1]),
            )
        }?;
        // Reference lost, bitstream error, data concealed: the picture is not what was sent.
        self.concealed = state & (dsRefLost | dsBitstreamError | dsDataErrorConcealed) != 0;
        on_picture(&view);
        Ok(true)
    }

    fn name(&self) -> &'static str {
        "openh264"
    }

    /// [`super::warm_up_by_decoding`].
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

#[cfg(test)]
mod tests {
    use openh264::encoder::Encoder;
    use openh264::formats::YUVBuffer;

    use super::*;

    /// Every picture a decoder puts out for `stream`, as its luma rows.
    fn lumas(dec: &mut OpenH264Decoder, stream: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for au in stream {
            dec.decode(au, &mut |p| {
                out.push(
                    p.y.chunks(p.y_stride)
                        .take(p.height)
                        .flat_map(|row| &row[..p.width])
                        .copied()
                        .collect(),
                )
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn a_warmed_up_decoder_puts_out_the_same_pictures_as_a_cold_one() {
        let (w, h) = (96, 64);
        let mut enc = Encoder::new().unwrap();
        let stream: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let pixels = (0..w * h * 3 / 2).map(|p| (p * 7 + i * 31) as u8).collect();
                enc.encode(&YUVBuffer::from_vec(pixels, w, h))
                    .unwrap()
                    .to_vec()
            })
            .collect();
        let cold = lumas(&mut OpenH264Decoder::new().unwrap(), &stream);
        let mut warm = OpenH264Decoder::new().unwrap();
        warm.warm_up(w as u16, h as u16).unwrap();
        assert!(!warm.last_concealed());
        assert_eq!(cold.len(), 4);
        assert_eq!(lumas(&mut warm, &stream), cold);
        assert!(
            OpenH264Decoder::new().unwrap().warm_up(95, 64).is_err(),
            "an odd size has no warm-up picture: a clear error, not a panic"
        );
    }
}
