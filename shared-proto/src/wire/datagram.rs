//! Video fragment datagrams: the fixed header and the timing block at the start of every
//! frame blob (layout in the module doc of [`crate::wire`]).

use super::{
    Reader, WireError, FLAG_KEYFRAME, MAGIC, MAX_FRAGMENTS, MAX_FRAME_LEN, TYPE_VIDEO_FRAGMENT,
    VERSION,
};
use crate::{Eye, Nanos};

/// The fixed header of a video fragment datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub eye: Eye,
    pub keyframe: bool,
    pub index: u16,
    pub count: u16,
    pub seq: u32,
    pub frame_len: u32,
}

impl FragmentHeader {
    /// Size of each chunk but the last.
    pub fn chunk_len(&self) -> u32 {
        self.frame_len.div_ceil(u32::from(self.count))
    }

    /// Byte range of this fragment inside the frame blob.
    pub fn range(&self) -> std::ops::Range<usize> {
        let chunk = self.chunk_len() as usize;
        let start = chunk * self.index as usize;
        let end = (start + chunk).min(self.frame_len as usize);
        start..end
    }

    /// Checks the header's internal consistency (bounds, counts).
    pub fn validate(&self) -> Result<(), WireError> {
        if self.frame_len > MAX_FRAME_LEN {
            return Err(WireError::TooLong {
                what: "frame",
                len: self.frame_len.into(),
                limit: MAX_FRAME_LEN.into(),
            });
        }
        if (self.frame_len as usize) < FrameTiming::LEN {
            return Err(WireError::Invalid {
                field: "frame_len",
                why: "shorter than the timing block",
            });
        }
        if self.count == 0 || self.count > MAX_FRAGMENTS {
            return Err(WireError::Invalid {
                field: "fragment count",
                why: "zero or above the limit",
            });
        }
        if self.index >= self.count {
            return Err(WireError::Invalid {
                field: "fragment index",
                why: "not below the count",
            });
        }
        if u32::from(self.count) > self.frame_len {
            return Err(WireError::Invalid {
                field: "fragment count",
                why: "more fragments than bytes",
            });
        }
        // With ceil-sized chunks, every fragment must hold at least one byte.
        if self.range().is_empty() {
            return Err(WireError::Invalid {
                field: "fragment index",
                why: "empty chunk",
            });
        }
        Ok(())
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(TYPE_VIDEO_FRAGMENT);
        out.push(self.eye as u8);
        out.push(if self.keyframe { FLAG_KEYFRAME } else { 0 });
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.frame_len.to_be_bytes());
    }
}

/// Parses one video fragment datagram into its header and chunk, checking that the chunk has
/// exactly the size the header implies.
pub fn parse_fragment(datagram: &[u8]) -> Result<(FragmentHeader, &[u8]), WireError> {
    let mut r = Reader::new(datagram);
    let magic = r.array::<2>()?;
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let ty = r.u8()?;
    if ty != TYPE_VIDEO_FRAGMENT {
        return Err(WireError::UnknownType(ty));
    }
    let eye = r.eye()?;
    let flags = r.u8()?;
    if flags & !FLAG_KEYFRAME != 0 {
        return Err(WireError::Invalid {
            field: "flags",
            why: "unknown bits set",
        });
    }
    let index = r.u16()?;
    let count = r.u16()?;
    if r.u16()? != 0 {
        return Err(WireError::Invalid {
            field: "reserved",
            why: "must be zero",
        });
    }
    let seq = r.u32()?;
    let frame_len = r.u32()?;
    let h = FragmentHeader {
        eye,
        keyframe: flags & FLAG_KEYFRAME != 0,
        index,
        count,
        seq,
        frame_len,
    };
    h.validate()?;
    let chunk = r.rest();
    if chunk.len() != h.range().len() {
        return Err(WireError::Invalid {
            field: "fragment payload",
            why: "size does not match header",
        });
    }
    Ok((h, chunk))
}

/// Per-frame timestamps on the streamer's clock, carried at the start of every frame blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTiming {
    /// Capture frame number from the source (the number drawn in the pixel code).
    pub frame_no: u64,
    /// Start of exposure (sensor timestamp) on the streamer clock.
    pub capture_ns: Nanos,
    pub encode_start_ns: Nanos,
    pub encode_end_ns: Nanos,
    /// When the sender took the frame to put it on the wire.
    pub send_ns: Nanos,
    /// Encoded bitstream bytes (without the timing block).
    pub encoded_len: u32,
    /// Reserved flags; must be 0 in version 1.
    pub reserved: u32,
}

impl FrameTiming {
    pub const LEN: usize = 48;

    pub fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.frame_no,
            self.capture_ns,
            self.encode_start_ns,
            self.encode_end_ns,
            self.send_ns,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.encoded_len.to_be_bytes());
        out.extend_from_slice(&self.reserved.to_be_bytes());
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let t = FrameTiming {
            frame_no: r.u64()?,
            capture_ns: r.u64()?,
            encode_start_ns: r.u64()?,
            encode_end_ns: r.u64()?,
            send_ns: r.u64()?,
            encoded_len: r.u32()?,
            reserved: r.u32()?,
        };
        if t.reserved != 0 {
            return Err(WireError::Invalid {
                field: "timing.reserved",
                why: "must be zero",
            });
        }
        if !(t.capture_ns <= t.encode_start_ns
            && t.encode_start_ns <= t.encode_end_ns
            && t.encode_end_ns <= t.send_ns)
        {
            return Err(WireError::Invalid {
                field: "timing",
                why: "timestamps out of order",
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fragment_header_rejects_bad_fields() {
        let good = FragmentHeader {
            eye: Eye::Left,
            keyframe: true,
            index: 0,
            count: 1,
            seq: 0,
            frame_len: 60,
        };
        let mut d = Vec::new();
        good.write(&mut d);
        d.extend_from_slice(&[0; 60]);
        assert!(parse_fragment(&d).is_ok());

        let mut wrong_version = d.clone();
        wrong_version[2] = 9;
        assert_eq!(
            parse_fragment(&wrong_version),
            Err(WireError::UnsupportedVersion(9))
        );
        let mut bad_magic = d.clone();
        bad_magic[0] = 0;
        assert!(matches!(
            parse_fragment(&bad_magic),
            Err(WireError::BadMagic(_))
        ));
        let mut bad_eye = d.clone();
        bad_eye[4] = 2;
        assert_eq!(parse_fragment(&bad_eye), Err(WireError::BadEye(2)));
        assert!(parse_fragment(&d[..d.len() - 1]).is_err());
        assert!(parse_fragment(&d[..10]).is_err());

        for h in [
            FragmentHeader {
                frame_len: MAX_FRAME_LEN + 1,
                ..good
            },
            FragmentHeader { count: 0, ..good },
            FragmentHeader { index: 1, ..good },
            FragmentHeader {
                count: 61,
                frame_len: 60,
                ..good
            },
            FragmentHeader {
                frame_len: 10,
                ..good
            },
            // A 49-byte frame in 8 chunks of 7: the 8th would be empty.
            FragmentHeader {
                count: 8,
                index: 7,
                frame_len: 49,
                ..good
            },
        ] {
            assert!(h.validate().is_err(), "{h:?}");
        }
    }

    proptest! {
        #[test]
        fn fragment_parse_never_panics(d in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok((h, chunk)) = parse_fragment(&d) {
                prop_assert_eq!(chunk.len(), h.range().len());
                prop_assert!(h.range().end <= h.frame_len as usize);
            }
        }

        #[test]
        fn fragment_header_mutations_never_panic(idx in 0u16..20, count in 0u16..20, len in 0u32..2000, flip in 0usize..20, val in any::<u8>()) {
            let h = FragmentHeader { eye: Eye::Left, keyframe: false, index: idx, count, seq: 1, frame_len: len };
            let mut d = Vec::new();
            h.write(&mut d);
            d.extend(std::iter::repeat_n(0u8, 100));
            d[flip] = val;
            let _ = parse_fragment(&d);
        }
    }
}
