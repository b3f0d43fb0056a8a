//! Software decode with Cisco's openh264 (no reorder delay: binoc streams have no B-frames),
//! slice by slice: each slice is decoded the moment it arrives.

use anyhow::{Context, Result};
use openh264::decoder::{DecodeOptions, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::{Chroma, DecodedView, VideoDecoder};

pub struct OpenH264Decoder {
    dec: Decoder,
}

impl OpenH264Decoder {
    pub fn new() -> Result<Self> {
        let cfg = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        Ok(OpenH264Decoder {
            dec: Decoder::with_api_config(OpenH264API::from_source(), cfg)
                .context("openh264 decoder")?,
        })
    }
}

impl VideoDecoder for OpenH264Decoder {
    fn decode(&mut self, au: &[u8], on_picture: &mut dyn FnMut(&DecodedView<'_>)) -> Result<bool> {
        let Some(p) = self
            .dec
            .decode_with_options(au, DecodeOptions::new().flush_after_decode(Flush::NoFlush))?
        else {
            return Ok(false);
        };
        let (width, height) = p.dimensions();
        let (ys, us, _) = p.strides();
        on_picture(&DecodedView {
            width,
            height,
            y: p.y(),
            y_stride: ys,
            chroma: Chroma::Planar {
                u: p.u(),
                v: p.v(),
                stride: us,
            },
        });
        Ok(true)
    }

    fn name(&self) -> &'static str {
        "openh264"
    }

    /// openh264's no-delay decode takes slices one by one and puts out the picture with the
    /// slice that completes it (docs/slices-research.md §3a).
    fn takes_slices(&self) -> bool {
        true
    }
}
