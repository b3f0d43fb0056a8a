//! The binoc wire format, version 5.
//!
//! Two kinds of payload travel between streamer and headset:
//!
//! * **Video fragments**, one per unreliable datagram (QUIC DATAGRAM frames). All integers are
//!   big-endian.
//!
//!   ```text
//!   offset size field
//!   0      2    magic 0xB1 0x0C
//!   2      1    version (5)
//!   3      1    type (1 = data fragment, 2 = parity fragment)
//!   4      1    eye (0 left, 1 right)
//!   5      1    flags (bit 0: keyframe, bit 1: sent again on request)
//!   6      2    index: the data chunk's (type 1) or the parity shard's (type 2)
//!   8      2    count: data fragments of the frame
//!   10     2    parity: parity fragments of the frame (0 = no forward error correction)
//!   12     4    seq: per-eye sequence number of the transport unit (a whole picture, or one
//!               slice of it; a picture's slices have consecutive numbers; gaps = lost
//!               references)
//!   16     4    frame length: bytes of the reassembled unit's blob (timing block + bitstream)
//!   20     ..   type 1: this fragment's chunk of the frame blob
//!               type 2: one Reed–Solomon shard (GF(2^16), reed-solomon-simd) over the
//!               frame's chunks, each zero-padded to `ceil(len / count)` rounded up to even
//!   ```
//!
//!   The frame blob starts with a [`FrameTiming`] block (48 bytes; its last field says which
//!   slice of its picture the unit is, [`SliceOf`]) followed by the H.264 Annex-B bitstream:
//!   a whole picture, or one row slice sent the moment the encoder finished it (the picture's
//!   header NALs ride in front of its first slice). It is cut into `count` chunks of `ceil(len / count)` bytes (the last
//!   one shorter), so every fragment's offset and size follow from its header alone. Any
//!   `count` of the `count + parity` fragments rebuild the frame.
//!   Versions 1 (no parity, field 10 reserved), 2 (no `LinkStatus` message) and 3 (no stream
//!   flags in `Hello`: whether the frames carry the pixel code) are refused at the handshake
//!   with "no common protocol version": of a `Hello` outside this build's version only the
//!   version range is read. (A version-3 headset, older than that rule, cannot parse a
//!   version-4 `Hello` and closes the session with a parse error.) Version 4 had no slices
//!   (the timing block's last field was reserved, zero).
//!
//! * **Control messages** on one reliable bidirectional QUIC stream, each framed as a
//!   `u32` length followed by a one-byte type and the fields. They are split by direction
//!   (WiVRn's `to_headset` / `from_headset`): [`ToHeadset`] from the streamer, [`ToStreamer`]
//!   from the headset; each side decodes only what the other may send, so a message in the
//!   wrong direction is a decoding error ([`WireError::Misdirected`]), not a branch to ignore.
//!   The type bytes are shared by both directions (one table in `control.rs`).
//!
//! Files: `datagram.rs` (fragment header, timing block), `control.rs` (framing, the shared
//! message parts, version negotiation), `to_headset.rs`, `to_streamer.rs`.
//!
//! Every decoder here returns a [`WireError`] for any malformed input and never panics.

mod control;
mod datagram;
mod to_headset;
mod to_streamer;

pub use control::{
    frame_ns, negotiate_version, ClientStats, ControlDecoder, FrameMarker, KeyframeReason, Message,
    StreamInfo,
};
pub use datagram::{parse_fragment, FragmentHeader, FrameTiming, ShardKind, SliceOf};
pub use to_headset::{LinkStatus, ToHeadset};
pub use to_streamer::{ToStreamer, MAX_NACK};

use crate::Eye;

pub const MAGIC: [u8; 2] = [0xB1, 0x0C];
/// The one protocol version this build speaks. Peers negotiate in [`ToHeadset::Hello`].
pub const VERSION: u8 = 5;
pub const TYPE_VIDEO_FRAGMENT: u8 = 1;
pub const TYPE_PARITY_FRAGMENT: u8 = 2;
pub const FRAGMENT_HEADER_LEN: usize = 20;
pub const FLAG_KEYFRAME: u8 = 1;
/// A data fragment sent again on request: the receiver's loss count leaves it out.
pub const FLAG_RETRANSMIT: u8 = 2;

/// `datagram` (a serialized fragment) marked as sent again; its offset 5 is the flags byte.
pub fn mark_retransmitted(datagram: &[u8]) -> Vec<u8> {
    let mut d = datagram.to_vec();
    if let Some(f) = d.get_mut(5) {
        *f |= FLAG_RETRANSMIT;
    }
    d
}

/// Upper bound on one reassembled frame (timing block + bitstream). A 1080p IDR at 50 Mbit/s
/// is well below 1 MiB; anything larger is hostile or broken.
pub const MAX_FRAME_LEN: u32 = 4 * 1024 * 1024;
/// Upper bound on fragments per frame.
pub const MAX_FRAGMENTS: u16 = 8192;
/// Upper bound on parity fragments per frame (Reed–Solomon allows 32768 shards in all).
pub const MAX_PARITY: u16 = 2048;
/// Upper bound on one control message body.
pub const MAX_CONTROL_LEN: u32 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: needed {needed} bytes, had {had}")]
    Truncated { needed: usize, had: usize },
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A control message the peer in that direction never sends (e.g. a `Ping` from the
    /// headset).
    #[error("message type {0} is not sent in this direction")]
    Misdirected(u8),
    #[error("bad eye {0}")]
    BadEye(u8),
    #[error("invalid field {field}: {why}")]
    Invalid {
        field: &'static str,
        why: &'static str,
    },
    #[error("{what} length {len} exceeds limit {limit}")]
    TooLong {
        what: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// A bounds-checked big-endian reader: every read either succeeds or returns
/// [`WireError::Truncated`].
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                needed: self.pos + n,
                had: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn eye(&mut self) -> Result<Eye, WireError> {
        let v = self.u8()?;
        Eye::from_u8(v).ok_or(WireError::BadEye(v))
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}
