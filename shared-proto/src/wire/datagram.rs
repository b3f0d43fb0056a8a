//! Video fragment datagrams: the fixed header and the timing block at the start of every
//! frame blob (layout in the module doc of [`crate::wire`]).

use super::{
    Reader, WireError, FLAG_KEYFRAME, FLAG_RETRANSMIT, MAGIC, MAX_FRAGMENTS, MAX_FRAME_LEN,
    MAX_PARITY, TYPE_PARITY_FRAGMENT, TYPE_VIDEO_FRAGMENT, VERSION,
};
use crate::{Eye, Nanos};

/// What a fragment datagram carries: a chunk of the frame blob, or one Reed–Solomon parity
/// shard computed over the frame's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    Data,
    Parity,
}

/// The fixed header of a video fragment datagram (data or parity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub eye: Eye,
    pub keyframe: bool,
    pub kind: ShardKind,
    /// Data: the chunk's index (`< count`); parity: the shard's index (`< parity`).
    pub index: u16,
    /// Data fragments of the frame.
    pub count: u16,
    /// Parity fragments of the frame (0: no forward error correction).
    pub parity: u16,
    pub seq: u32,
    pub frame_len: u32,
    /// Sent again on the receiver's request (not counted as the link's delivery).
    pub retransmit: bool,
}

impl FragmentHeader {
    /// A data fragment's header (no parity).
    pub fn data(
        eye: Eye,
        keyframe: bool,
        index: u16,
        count: u16,
        seq: u32,
        frame_len: u32,
    ) -> Self {
        FragmentHeader {
            eye,
            keyframe,
            kind: ShardKind::Data,
            index,
            count,
            parity: 0,
            seq,
            frame_len,
            retransmit: false,
        }
    }

    /// Size of each chunk but the last.
    pub fn chunk_len(&self) -> u32 {
        self.frame_len.div_ceil(u32::from(self.count))
    }

    /// Size of a Reed–Solomon shard: the chunk size rounded up to even (the code works on
    /// 16-bit symbols); data chunks are zero-padded to it when parity is computed.
    pub fn shard_len(&self) -> usize {
        (self.chunk_len() as usize).next_multiple_of(2)
    }

    /// Byte range of a data fragment inside the frame blob (`index` as a chunk index).
    pub fn range(&self) -> std::ops::Range<usize> {
        Self::chunk_range(
            self.chunk_len() as usize,
            self.frame_len as usize,
            self.index,
        )
    }

    /// Byte range of data chunk `index` of a frame of `frame_len` bytes cut in `chunk`s.
    pub fn chunk_range(chunk: usize, frame_len: usize, index: u16) -> std::ops::Range<usize> {
        let start = chunk * index as usize;
        start.min(frame_len)..(start + chunk).min(frame_len)
    }

    /// The payload size this header implies.
    pub fn payload_len(&self) -> usize {
        match self.kind {
            ShardKind::Data => self.range().len(),
            ShardKind::Parity => self.shard_len(),
        }
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
        if self.parity > MAX_PARITY || self.parity > self.count.max(4) {
            return Err(WireError::Invalid {
                field: "parity count",
                why: "above the limit (or more than the data fragments)",
            });
        }
        let limit = match self.kind {
            ShardKind::Data => self.count,
            ShardKind::Parity => self.parity,
        };
        if self.index >= limit {
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
        // With ceil-sized chunks, every data fragment must hold at least one byte.
        if Self::chunk_range(
            self.chunk_len() as usize,
            self.frame_len as usize,
            self.count - 1,
        )
        .is_empty()
        {
            return Err(WireError::Invalid {
                field: "fragment count",
                why: "a chunk would be empty",
            });
        }
        Ok(())
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self.kind {
            ShardKind::Data => TYPE_VIDEO_FRAGMENT,
            ShardKind::Parity => TYPE_PARITY_FRAGMENT,
        });
        out.push(self.eye as u8);
        out.push(
            if self.keyframe { FLAG_KEYFRAME } else { 0 }
                | if self.retransmit { FLAG_RETRANSMIT } else { 0 },
        );
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.parity.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.frame_len.to_be_bytes());
    }
}

/// Parses one fragment datagram (data or parity) into its header and payload, checking that
/// the payload has exactly the size the header implies.
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
    let kind = match r.u8()? {
        TYPE_VIDEO_FRAGMENT => ShardKind::Data,
        TYPE_PARITY_FRAGMENT => ShardKind::Parity,
        ty => return Err(WireError::UnknownType(ty)),
    };
    let eye = r.eye()?;
    let flags = r.u8()?;
    if flags & !(FLAG_KEYFRAME | FLAG_RETRANSMIT) != 0 {
        return Err(WireError::Invalid {
            field: "flags",
            why: "unknown bits set",
        });
    }
    let h = FragmentHeader {
        eye,
        keyframe: flags & FLAG_KEYFRAME != 0,
        kind,
        index: r.u16()?,
        count: r.u16()?,
        parity: r.u16()?,
        seq: r.u32()?,
        frame_len: r.u32()?,
        retransmit: flags & FLAG_RETRANSMIT != 0,
    };
    h.validate()?;
    let payload = r.rest();
    if payload.len() != h.payload_len() {
        return Err(WireError::Invalid {
            field: "fragment payload",
            why: "size does not match header",
        });
    }
    Ok((h, payload))
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
    /// Which slice of its picture this blob carries (whole pictures: slice 0 of 1).
    pub slice: SliceOf,
}

/// A transport unit's place in its picture: slice `index` of `count`. A picture's slices go
/// out as consecutive sequence numbers, in picture order, each as soon as it is encoded, so
/// the first leaves before the picture's length is known; the picture is complete when all
/// `count` arrived. `recovery` > 0 marks a picture that starts an intra-refresh sweep: the
/// picture `recovery` frames later is exact again, whatever was lost before the sweep. On the
/// wire: a u32 `recovery << 16 | index << 8 | count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceOf {
    pub index: u8,
    pub count: u8,
    pub recovery: u16,
}

impl SliceOf {
    /// A whole picture in one unit.
    pub const WHOLE: SliceOf = SliceOf {
        index: 0,
        count: 1,
        recovery: 0,
    };

    /// Slice `index` of `count` of a picture that starts no sweep.
    pub const fn of(index: u8, count: u8) -> Self {
        SliceOf {
            index,
            count,
            recovery: 0,
        }
    }

    pub fn is_first(self) -> bool {
        self.index == 0
    }

    pub fn is_last(self) -> bool {
        self.index + 1 == self.count
    }

    fn to_wire(self) -> u32 {
        u32::from(self.recovery) << 16 | u32::from(self.index) << 8 | u32::from(self.count)
    }

    fn from_wire(v: u32) -> Result<Self, WireError> {
        let s = SliceOf {
            index: (v >> 8) as u8,
            count: v as u8,
            recovery: (v >> 16) as u16,
        };
        if s.count == 0 || s.index >= s.count {
            return Err(WireError::Invalid {
                field: "timing.slice",
                why: "not slice index < count",
            });
        }
        Ok(s)
    }
}

impl Default for SliceOf {
    fn default() -> Self {
        SliceOf::WHOLE
    }
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
        out.extend_from_slice(&self.slice.to_wire().to_be_bytes());
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let t = FrameTiming {
            frame_no: r.u64()?,
            capture_ns: r.u64()?,
            encode_start_ns: r.u64()?,
            encode_end_ns: r.u64()?,
            send_ns: r.u64()?,
            encoded_len: r.u32()?,
            slice: SliceOf::from_wire(r.u32()?)?,
        };
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
        let good = FragmentHeader::data(Eye::Left, true, 0, 1, 0, 60);
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
            // Parity: the index counts parity shards; never more parity than data (but 4).
            FragmentHeader {
                kind: ShardKind::Parity,
                index: 0,
                parity: 0,
                ..good
            },
            FragmentHeader {
                kind: ShardKind::Parity,
                index: 2,
                parity: 2,
                ..good
            },
            FragmentHeader {
                count: 2,
                parity: 5,
                ..good
            },
            FragmentHeader {
                parity: MAX_PARITY + 1,
                count: MAX_FRAGMENTS,
                frame_len: MAX_FRAME_LEN,
                ..good
            },
        ] {
            assert!(h.validate().is_err(), "{h:?}");
        }

        // A parity datagram: type 2, its payload one even-sized shard.
        let parity = FragmentHeader {
            kind: ShardKind::Parity,
            count: 3,
            parity: 2,
            index: 1,
            frame_len: 61, // chunks of 21: shards of 22
            ..good
        };
        let mut d = Vec::new();
        parity.write(&mut d);
        assert_eq!(d[3], TYPE_PARITY_FRAGMENT);
        d.extend_from_slice(&[7; 22]);
        assert_eq!(parse_fragment(&d), Ok((parity, &[7u8; 22][..])));
        assert!(parse_fragment(&d[..d.len() - 1]).is_err());
        d[3] = 3;
        assert_eq!(parse_fragment(&d), Err(WireError::UnknownType(3)));
    }

    proptest! {
        #[test]
        fn fragment_parse_never_panics(d in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok((h, payload)) = parse_fragment(&d) {
                prop_assert_eq!(payload.len(), h.payload_len());
                prop_assert!(h.range().end <= h.frame_len as usize);
            }
        }

        #[test]
        fn fragment_header_mutations_never_panic(idx in 0u16..20, count in 0u16..20, len in 0u32..2000, flip in 0usize..20, val in any::<u8>()) {
            let h = FragmentHeader::data(Eye::Left, false, idx, count, 1, len);
            let mut d = Vec::new();
            h.write(&mut d);
            d.extend(std::iter::repeat_n(0u8, 100));
            d[flip] = val;
            let _ = parse_fragment(&d);
        }
    }
}
