//! The binoc wire format, version 1.
//!
//! Two kinds of payload travel between streamer and headset:
//!
//! * **Video fragments**, one per unreliable datagram (QUIC DATAGRAM frames). All integers are
//!   big-endian.
//!
//!   ```text
//!   offset size field
//!   0      2    magic 0xB1 0x0C
//!   2      1    version (1)
//!   3      1    type (1 = video fragment)
//!   4      1    eye (0 left, 1 right)
//!   5      1    flags (bit 0: keyframe)
//!   6      2    fragment index
//!   8      2    fragment count
//!   10     2    reserved (must be 0)
//!   12     4    seq: per-eye sequence number of the encoded frame (gaps = lost references)
//!   16     4    frame length: bytes of the reassembled frame blob (timing block + bitstream)
//!   20     ..   this fragment's chunk of the frame blob
//!   ```
//!
//!   The frame blob starts with a [`FrameTiming`] block (48 bytes) followed by the H.264
//!   Annex-B bitstream. It is cut into `count` chunks of `ceil(len / count)` bytes (the last
//!   one shorter), so every fragment's offset and size follow from its header alone.
//!
//! * **Control messages** on one reliable bidirectional QUIC stream, each framed as a
//!   `u32` length followed by a one-byte type and the fields (see [`Control`]).
//!
//! Every decoder here returns a [`WireError`] for any malformed input and never panics.

use crate::{Eye, Nanos};

pub const MAGIC: [u8; 2] = [0xB1, 0x0C];
/// The one protocol version this build speaks. Peers negotiate in [`Control::Hello`].
pub const VERSION: u8 = 1;
pub const TYPE_VIDEO_FRAGMENT: u8 = 1;
pub const FRAGMENT_HEADER_LEN: usize = 20;
pub const FLAG_KEYFRAME: u8 = 1;

/// Upper bound on one reassembled frame (timing block + bitstream). A 1080p IDR at 50 Mbit/s
/// is well below 1 MiB; anything larger is hostile or broken.
pub const MAX_FRAME_LEN: u32 = 4 * 1024 * 1024;
/// Upper bound on fragments per frame.
pub const MAX_FRAGMENTS: u16 = 8192;
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
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
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

/// A stream the streamer offers, announced in [`Control::Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub eye: Eye,
    pub width: u16,
    pub height: u16,
    /// Frames per second times 1000.
    pub fps_milli: u32,
}

/// What the client measured for one frame, on the client's clock. Sent back for every frame it
/// decoded (or failed to), so the streamer can split glass-to-glass latency into stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMarker {
    pub eye: Eye,
    pub seq: u32,
    pub frame_no: u64,
    /// The (eye, frame number) read back from the decoded pixels, if the code was readable.
    pub pixel_code: Option<(Eye, u32)>,
    pub first_byte_ns: Nanos,
    pub last_byte_ns: Nanos,
    pub decoded_ns: Nanos,
    /// When the frame was uploaded to / presented on the display path; `None` when headless.
    pub presented_ns: Option<Nanos>,
    /// Predicted display time of the frame it was shown in; `None` when headless.
    pub display_ns: Option<Nanos>,
}

/// Counters the client reports periodically for one eye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ClientStats {
    pub received: u64,
    pub decoded: u64,
    pub lost: u64,
    pub decode_errors: u64,
    pub wrong_eye: u64,
    pub malformed_datagrams: u64,
}

/// Reason carried by a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeReason {
    /// The client has no decoder state yet (start, reconnect).
    Start = 0,
    /// A frame the decoder needed as a reference was lost.
    ReferenceLost = 1,
    /// The decoder reported an error.
    DecodeError = 2,
}

/// Control messages, carried on the reliable control stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// First message from the streamer: the versions it speaks and the streams it offers.
    Hello {
        min_version: u8,
        max_version: u8,
        streams: Vec<StreamInfo>,
    },
    /// The client's answer: the version it picked and the datagram size it can take.
    HelloAck {
        version: u8,
    },
    /// Refusal, with a human-readable reason; the connection closes after it.
    Reject {
        reason: String,
    },
    KeyframeRequest {
        eye: Eye,
        reason: KeyframeReason,
    },
    /// Clock-sync probe from the streamer (`t0` on the streamer clock).
    Ping {
        id: u32,
        t0: Nanos,
    },
    /// Answer: `t1` when the ping arrived and `t2` when the pong left, on the client clock.
    Pong {
        id: u32,
        t0: Nanos,
        t1: Nanos,
        t2: Nanos,
    },
    /// The streamer's current clock estimate, so the client can show latency on its own.
    /// `offset_ns` = client clock − streamer clock at `at_streamer_ns`; `skew_ppb` its drift.
    ClockEstimate {
        offset_ns: i64,
        skew_ppb: i64,
        at_streamer_ns: Nanos,
        rtt_ns: u64,
    },
    Marker(FrameMarker),
    Stats {
        eye: Eye,
        stats: ClientStats,
    },
    Bye {
        reason: String,
    },
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const HELLO_ACK: u8 = 2;
    pub const REJECT: u8 = 3;
    pub const KEYFRAME_REQUEST: u8 = 4;
    pub const PING: u8 = 5;
    pub const PONG: u8 = 6;
    pub const CLOCK_ESTIMATE: u8 = 7;
    pub const MARKER: u8 = 8;
    pub const STATS: u8 = 9;
    pub const BYE: u8 = 10;
}

const MAX_STREAMS: u8 = 8;
const MAX_REASON: usize = 1024;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(MAX_REASON)];
    // Cut at a char boundary so the receiver always sees valid UTF-8.
    let mut n = b.len();
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

fn get_str(r: &mut Reader<'_>) -> Result<String, WireError> {
    let n = r.u16()? as usize;
    if n > MAX_REASON {
        return Err(WireError::TooLong {
            what: "string",
            len: n as u64,
            limit: MAX_REASON as u64,
        });
    }
    let b = r.bytes(n)?;
    String::from_utf8(b.to_vec()).map_err(|_| WireError::Invalid {
        field: "string",
        why: "not UTF-8",
    })
}

const NONE_U64: u64 = u64::MAX;

fn opt_u64(v: Option<u64>) -> u64 {
    v.unwrap_or(NONE_U64)
}

fn get_opt_u64(r: &mut Reader<'_>) -> Result<Option<u64>, WireError> {
    let v = r.u64()?;
    Ok((v != NONE_U64).then_some(v))
}

impl Control {
    /// Encodes the message body (type byte + fields), without the length prefix.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Control::Hello {
                min_version,
                max_version,
                streams,
            } => {
                out.push(tag::HELLO);
                out.push(*min_version);
                out.push(*max_version);
                let n = streams.len().min(MAX_STREAMS as usize);
                out.push(n as u8);
                for s in &streams[..n] {
                    out.push(s.eye as u8);
                    out.extend_from_slice(&s.width.to_be_bytes());
                    out.extend_from_slice(&s.height.to_be_bytes());
                    out.extend_from_slice(&s.fps_milli.to_be_bytes());
                }
            }
            Control::HelloAck { version } => {
                out.push(tag::HELLO_ACK);
                out.push(*version);
            }
            Control::Reject { reason } => {
                out.push(tag::REJECT);
                put_str(out, reason);
            }
            Control::KeyframeRequest { eye, reason } => {
                out.push(tag::KEYFRAME_REQUEST);
                out.push(*eye as u8);
                out.push(*reason as u8);
            }
            Control::Ping { id, t0 } => {
                out.push(tag::PING);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&t0.to_be_bytes());
            }
            Control::Pong { id, t0, t1, t2 } => {
                out.push(tag::PONG);
                out.extend_from_slice(&id.to_be_bytes());
                for v in [t0, t1, t2] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Control::ClockEstimate {
                offset_ns,
                skew_ppb,
                at_streamer_ns,
                rtt_ns,
            } => {
                out.push(tag::CLOCK_ESTIMATE);
                out.extend_from_slice(&offset_ns.to_be_bytes());
                out.extend_from_slice(&skew_ppb.to_be_bytes());
                out.extend_from_slice(&at_streamer_ns.to_be_bytes());
                out.extend_from_slice(&rtt_ns.to_be_bytes());
            }
            Control::Marker(m) => {
                out.push(tag::MARKER);
                out.push(m.eye as u8);
                out.extend_from_slice(&m.seq.to_be_bytes());
                out.extend_from_slice(&m.frame_no.to_be_bytes());
                match m.pixel_code {
                    Some((eye, n)) => {
                        out.push(1);
                        out.push(eye as u8);
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                    None => {
                        out.push(0);
                        out.push(0);
                        out.extend_from_slice(&0u32.to_be_bytes());
                    }
                }
                for v in [
                    m.first_byte_ns,
                    m.last_byte_ns,
                    m.decoded_ns,
                    opt_u64(m.presented_ns),
                    opt_u64(m.display_ns),
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Control::Stats { eye, stats } => {
                out.push(tag::STATS);
                out.push(*eye as u8);
                for v in [
                    stats.received,
                    stats.decoded,
                    stats.lost,
                    stats.decode_errors,
                    stats.wrong_eye,
                    stats.malformed_datagrams,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Control::Bye { reason } => {
                out.push(tag::BYE);
                put_str(out, reason);
            }
        }
    }

    /// Encodes the message with its `u32` length prefix, ready for the control stream.
    pub fn encode_framed(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        self.encode_body(out);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Decodes one message body (as framed by [`ControlDecoder`]).
    pub fn decode_body(body: &[u8]) -> Result<Control, WireError> {
        let mut r = Reader::new(body);
        let msg = match r.u8()? {
            tag::HELLO => {
                let min_version = r.u8()?;
                let max_version = r.u8()?;
                if min_version > max_version {
                    return Err(WireError::Invalid {
                        field: "hello.version",
                        why: "min above max",
                    });
                }
                let n = r.u8()?;
                if n > MAX_STREAMS {
                    return Err(WireError::TooLong {
                        what: "streams",
                        len: n.into(),
                        limit: MAX_STREAMS.into(),
                    });
                }
                let mut streams = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    streams.push(StreamInfo {
                        eye: r.eye()?,
                        width: r.u16()?,
                        height: r.u16()?,
                        fps_milli: r.u32()?,
                    });
                }
                Control::Hello {
                    min_version,
                    max_version,
                    streams,
                }
            }
            tag::HELLO_ACK => Control::HelloAck { version: r.u8()? },
            tag::REJECT => Control::Reject {
                reason: get_str(&mut r)?,
            },
            tag::KEYFRAME_REQUEST => {
                let eye = r.eye()?;
                let reason = match r.u8()? {
                    0 => KeyframeReason::Start,
                    1 => KeyframeReason::ReferenceLost,
                    2 => KeyframeReason::DecodeError,
                    _ => {
                        return Err(WireError::Invalid {
                            field: "keyframe.reason",
                            why: "unknown",
                        })
                    }
                };
                Control::KeyframeRequest { eye, reason }
            }
            tag::PING => Control::Ping {
                id: r.u32()?,
                t0: r.u64()?,
            },
            tag::PONG => Control::Pong {
                id: r.u32()?,
                t0: r.u64()?,
                t1: r.u64()?,
                t2: r.u64()?,
            },
            tag::CLOCK_ESTIMATE => Control::ClockEstimate {
                offset_ns: r.i64()?,
                skew_ppb: r.i64()?,
                at_streamer_ns: r.u64()?,
                rtt_ns: r.u64()?,
            },
            tag::MARKER => {
                let eye = r.eye()?;
                let seq = r.u32()?;
                let frame_no = r.u64()?;
                let has_code = r.u8()?;
                let code_eye = r.u8()?;
                let code_frame = r.u32()?;
                let pixel_code = match has_code {
                    0 => None,
                    1 => Some((
                        Eye::from_u8(code_eye).ok_or(WireError::BadEye(code_eye))?,
                        code_frame,
                    )),
                    _ => {
                        return Err(WireError::Invalid {
                            field: "marker.pixel_code",
                            why: "bad presence byte",
                        })
                    }
                };
                let first_byte_ns = r.u64()?;
                let last_byte_ns = r.u64()?;
                let decoded_ns = r.u64()?;
                let presented_ns = get_opt_u64(&mut r)?;
                let display_ns = get_opt_u64(&mut r)?;
                if !(first_byte_ns <= last_byte_ns && last_byte_ns <= decoded_ns) {
                    return Err(WireError::Invalid {
                        field: "marker",
                        why: "timestamps out of order",
                    });
                }
                Control::Marker(FrameMarker {
                    eye,
                    seq,
                    frame_no,
                    pixel_code,
                    first_byte_ns,
                    last_byte_ns,
                    decoded_ns,
                    presented_ns,
                    display_ns,
                })
            }
            tag::STATS => Control::Stats {
                eye: r.eye()?,
                stats: ClientStats {
                    received: r.u64()?,
                    decoded: r.u64()?,
                    lost: r.u64()?,
                    decode_errors: r.u64()?,
                    wrong_eye: r.u64()?,
                    malformed_datagrams: r.u64()?,
                },
            },
            tag::BYE => Control::Bye {
                reason: get_str(&mut r)?,
            },
            other => return Err(WireError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Incremental de-framer for the control stream: feed it bytes as they arrive, take messages
/// out. Its buffer never holds more than one maximal message plus one read.
#[derive(Default)]
pub struct ControlDecoder {
    buf: Vec<u8>,
}

impl ControlDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed. An error is fatal
    /// for the stream (framing is lost), so the caller should close the connection.
    pub fn next_message(&mut self) -> Result<Option<Control>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len > MAX_CONTROL_LEN {
            return Err(WireError::TooLong {
                what: "control message",
                len: len.into(),
                limit: MAX_CONTROL_LEN.into(),
            });
        }
        let total = 4 + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg = Control::decode_body(&self.buf[4..total]);
        self.buf.drain(..total);
        msg.map(Some)
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Picks the highest version both sides speak.
pub fn negotiate_version(peer_min: u8, peer_max: u8) -> Option<u8> {
    let v = peer_max.min(VERSION);
    (v >= peer_min && v >= 1).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(msg: Control) {
        let mut buf = Vec::new();
        msg.encode_framed(&mut buf);
        let mut d = ControlDecoder::new();
        // Feed byte by byte to exercise partial reads.
        let mut got = None;
        for b in &buf {
            d.push(std::slice::from_ref(b));
            if let Some(m) = d.next_message().unwrap() {
                got = Some(m);
            }
        }
        assert_eq!(got, Some(msg));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn control_roundtrips() {
        roundtrip(Control::Hello {
            min_version: 1,
            max_version: 3,
            streams: vec![StreamInfo {
                eye: Eye::Right,
                width: 1280,
                height: 720,
                fps_milli: 60_000,
            }],
        });
        roundtrip(Control::HelloAck { version: 1 });
        roundtrip(Control::Reject {
            reason: "nope ✓".into(),
        });
        roundtrip(Control::KeyframeRequest {
            eye: Eye::Left,
            reason: KeyframeReason::ReferenceLost,
        });
        roundtrip(Control::Ping { id: 7, t0: 99 });
        roundtrip(Control::Pong {
            id: 7,
            t0: 99,
            t1: 100,
            t2: 101,
        });
        roundtrip(Control::ClockEstimate {
            offset_ns: -5,
            skew_ppb: 12,
            at_streamer_ns: 4,
            rtt_ns: 8,
        });
        roundtrip(Control::Marker(FrameMarker {
            eye: Eye::Right,
            seq: 3,
            frame_no: 4,
            pixel_code: Some((Eye::Left, 4)),
            first_byte_ns: 1,
            last_byte_ns: 2,
            decoded_ns: 3,
            presented_ns: None,
            display_ns: Some(9),
        }));
        roundtrip(Control::Stats {
            eye: Eye::Left,
            stats: ClientStats {
                received: 1,
                decoded: 2,
                lost: 3,
                decode_errors: 4,
                wrong_eye: 5,
                malformed_datagrams: 6,
            },
        });
        roundtrip(Control::Bye {
            reason: String::new(),
        });
    }

    #[test]
    fn long_reason_is_cut_at_char_boundary() {
        let reason: String = "é".repeat(2000);
        let mut buf = Vec::new();
        Control::Reject { reason }.encode_body(&mut buf);
        match Control::decode_body(&buf).unwrap() {
            Control::Reject { reason } => {
                assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn absurd_control_length_is_rejected_before_buffering() {
        let mut d = ControlDecoder::new();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(d.next_message(), Err(WireError::TooLong { .. })));
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut buf = Vec::new();
        Control::HelloAck { version: 1 }.encode_body(&mut buf);
        buf.push(0);
        assert_eq!(Control::decode_body(&buf), Err(WireError::Trailing(1)));
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version(1, 1), Some(1));
        assert_eq!(negotiate_version(1, 9), Some(1));
        assert_eq!(negotiate_version(2, 9), None);
        assert_eq!(negotiate_version(0, 0), None);
    }

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
        fn control_decoder_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = ControlDecoder::new();
            for c in chunks {
                d.push(&c);
                while let Ok(Some(_)) = d.next_message() {}
                prop_assert!(d.buffered() <= MAX_CONTROL_LEN as usize + 4 + 64);
            }
        }

        #[test]
        fn control_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Control::decode_body(&body);
        }

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
