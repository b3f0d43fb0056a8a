//! Where the planes of a hardware decoder's output buffer are, from the values its output
//! format announces (Android MediaCodec: `color-format`, `stride`, `slice-height`, crop).
//! Pure and platform-free, so the arithmetic is tested on every machine; the MediaCodec
//! decoder (`mediacodec.rs`, Android only) reads the values and calls [`YuvLayout::view`].

use super::{Chroma, DecodedView};

/// `MediaCodecInfo.CodecCapabilities` colour formats binoc reads.
pub const COLOR_YUV420_PLANAR: i32 = 19;
pub const COLOR_YUV420_SEMIPLANAR: i32 = 21;
/// Qualcomm's (the Quest's) 4:2:0 semi-planar layout with aligned stride and slice height.
pub const COLOR_QCOM_YUV420_PACKED_SEMIPLANAR32M: i32 = 0x7FA3_0C04;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    pub semi_planar: bool,
    /// Visible size (after crop).
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    /// Rows allocated per luma plane (≥ the coded height).
    pub slice_height: usize,
    pub crop_left: usize,
    pub crop_top: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("colour format {0:#x} is not a 4:2:0 layout binoc reads")]
    ColorFormat(i32),
    #[error("output format has nonsensical geometry: {0}")]
    Geometry(String),
    #[error("output buffer of {have} bytes is smaller than its layout needs ({need})")]
    ShortBuffer { have: usize, need: usize },
}

/// The output format's values (`None` = key absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatValues {
    pub color_format: Option<i32>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub stride: Option<i32>,
    pub slice_height: Option<i32>,
    /// `crop-left`, `crop-top`, `crop-right`, `crop-bottom` (inclusive, as Android has them).
    pub crop: Option<(i32, i32, i32, i32)>,
}

fn positive(what: &str, v: i32) -> Result<usize, LayoutError> {
    if v <= 0 || v > 16384 {
        return Err(LayoutError::Geometry(format!("{what} {v}")));
    }
    Ok(v as usize)
}

impl YuvLayout {
    pub fn from_format(f: &FormatValues) -> Result<Self, LayoutError> {
        let semi_planar = match f.color_format.unwrap_or(COLOR_YUV420_SEMIPLANAR) {
            COLOR_YUV420_PLANAR => false,
            COLOR_YUV420_SEMIPLANAR | COLOR_QCOM_YUV420_PACKED_SEMIPLANAR32M => true,
            other => return Err(LayoutError::ColorFormat(other)),
        };
        let coded_w = positive("width", f.width.unwrap_or(0))?;
        let coded_h = positive("height", f.height.unwrap_or(0))?;
        let stride = positive("stride", f.stride.unwrap_or(coded_w as i32))?;
        let slice_height = positive("slice-height", f.slice_height.unwrap_or(coded_h as i32))?;
        let (l, t, r, b) = f
            .crop
            .unwrap_or((0, 0, coded_w as i32 - 1, coded_h as i32 - 1));
        if l < 0 || t < 0 || r < l || b < t {
            return Err(LayoutError::Geometry(format!("crop {l},{t},{r},{b}")));
        }
        let (width, height) = ((r - l + 1) as usize, (b - t + 1) as usize);
        // Even crop origin: chroma is subsampled by two.
        let (crop_left, crop_top) = (l as usize & !1, t as usize & !1);
        if crop_left + width > stride || crop_top + height > slice_height {
            return Err(LayoutError::Geometry(format!(
                "{width}x{height}+{crop_left}+{crop_top} outside a {stride}x{slice_height} plane"
            )));
        }
        Ok(YuvLayout {
            semi_planar,
            width,
            height,
            stride,
            slice_height,
            crop_left,
            crop_top,
        })
    }

    /// Bytes the buffer must hold.
    pub fn needed(&self) -> usize {
        let luma = self.stride * self.slice_height;
        let last_chroma_row = (self.crop_top + self.height).div_ceil(2);
        if self.semi_planar {
            luma + (last_chroma_row - 1) * self.stride + self.crop_left + self.width.div_ceil(2) * 2
        } else {
            let c_stride = self.stride / 2;
            let c_plane = c_stride * self.slice_height / 2;
            luma + c_plane
                + (last_chroma_row - 1) * c_stride
                + self.crop_left / 2
                + self.width.div_ceil(2)
        }
    }

    /// The visible picture in `buf`, or why `buf` cannot hold it.
    pub fn view<'a>(&self, buf: &'a [u8]) -> Result<DecodedView<'a>, LayoutError> {
        let need = self.needed();
        if buf.len() < need {
            return Err(LayoutError::ShortBuffer {
                have: buf.len(),
                need,
            });
        }
        let luma = self.stride * self.slice_height;
        let y = &buf[self.crop_top * self.stride + self.crop_left..luma];
        let chroma = if self.semi_planar {
            Chroma::SemiPlanar {
                uv: &buf[luma + self.crop_top / 2 * self.stride + self.crop_left..],
                stride: self.stride,
            }
        } else {
            let c_stride = self.stride / 2;
            let c_plane = c_stride * self.slice_height / 2;
            let off = self.crop_top / 2 * c_stride + self.crop_left / 2;
            Chroma::Planar {
                u: &buf[luma + off..luma + c_plane],
                v: &buf[luma + c_plane + off..],
                stride: c_stride,
            }
        };
        Ok(DecodedView {
            width: self.width,
            height: self.height,
            y,
            y_stride: self.stride,
            chroma,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(cf: i32, w: i32, h: i32, stride: i32, sh: i32) -> FormatValues {
        FormatValues {
            color_format: Some(cf),
            width: Some(w),
            height: Some(h),
            stride: Some(stride),
            slice_height: Some(sh),
            crop: None,
        }
    }

    #[test]
    fn qualcomm_aligned_nv12_with_crop() {
        // 1280x720 coded as 1280x736 with a 1280 stride and 768-row slices, cropped to 720.
        let mut f = values(COLOR_QCOM_YUV420_PACKED_SEMIPLANAR32M, 1280, 736, 1280, 768);
        f.crop = Some((0, 0, 1279, 719));
        let l = YuvLayout::from_format(&f).unwrap();
        assert_eq!((l.width, l.height, l.semi_planar), (1280, 720, true));
        let mut buf = vec![0u8; 1280 * 768 * 3 / 2];
        // Mark the first chroma byte.
        buf[1280 * 768] = 77;
        let v = l.view(&buf).unwrap();
        assert_eq!(v.y.len(), 1280 * 768);
        let Chroma::SemiPlanar { uv, stride } = v.chroma else {
            panic!("NV12")
        };
        assert_eq!((uv[0], stride), (77, 1280));
    }

    #[test]
    fn planar_offsets_follow_the_crop() {
        let mut f = values(COLOR_YUV420_PLANAR, 64, 64, 64, 64);
        f.crop = Some((2, 4, 33, 35)); // 32x32 at (2, 4)
        let l = YuvLayout::from_format(&f).unwrap();
        let mut buf: Vec<u8> = (0..64 * 64 * 3 / 2).map(|i| (i % 251) as u8).collect();
        buf[4 * 64 + 2] = 200; // first visible luma sample
        let u_first = 64 * 64 + 2 * 32 + 1;
        buf[u_first] = 201;
        let v_first = 64 * 64 + 32 * 32 + 2 * 32 + 1;
        buf[v_first] = 202;
        let v = l.view(&buf).unwrap();
        assert_eq!((v.width, v.height, v.y[0]), (32, 32, 200));
        let Chroma::Planar { u, v: vv, stride } = v.chroma else {
            panic!("I420")
        };
        assert_eq!((u[0], vv[0], stride), (201, 202, 32));
    }

    #[test]
    fn refuses_what_it_cannot_read_without_panicking() {
        assert_eq!(
            YuvLayout::from_format(&values(0x7F00_0789, 64, 64, 64, 64)),
            Err(LayoutError::ColorFormat(0x7F00_0789))
        );
        for bad in [
            values(21, 0, 64, 64, 64),
            values(21, 64, 64, 32, 64),
            values(21, 64, -1, 64, 64),
            values(21, 64, 64, 64, 32),
        ] {
            assert!(YuvLayout::from_format(&bad).is_err(), "{bad:?}");
        }
        let mut f = values(21, 64, 64, 64, 64);
        f.crop = Some((10, 0, 5, 63));
        assert!(YuvLayout::from_format(&f).is_err());
        let l = YuvLayout::from_format(&values(21, 64, 64, 64, 64)).unwrap();
        assert!(matches!(
            l.view(&[0u8; 100]),
            Err(LayoutError::ShortBuffer { have: 100, .. })
        ));
        // Exactly the needed size is enough.
        assert!(l.view(&vec![0u8; l.needed()]).is_ok());
    }
}
