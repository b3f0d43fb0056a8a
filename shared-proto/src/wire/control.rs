//! The control stream: framing (`u32` length + body), the message parts both directions share
//! (stream info, markers, counters), the type-byte table and version negotiation.

use super::{Reader, WireError, MAX_CONTROL_LEN, VERSION};
use crate::{Eye, Nanos};

/// A stream the streamer offers, announced in [`super::ToHeadset::Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub eye: Eye,
    pub width: u16,
    pub height: u16,
    /// Frames per second times 1000.
    pub fps_milli: u32,
    /// The frames carry the pixel code (eye and frame number in the top band), so the
    /// receiver reads it back; without it the receiver does not try (version 4).
    pub pixel_code: bool,
}

impl StreamInfo {
    /// The time between two frames of the stream.
    pub fn frame_ns(&self) -> crate::Nanos {
        frame_ns(self.fps_milli)
    }
}

/// The time between two frames at `fps_milli` (frames per second times 1000; 0 is taken as 1).
pub fn frame_ns(fps_milli: u32) -> crate::Nanos {
    1_000_000_000_000 / u64::from(fps_milli.max(1))
}

/// [`StreamInfo`]'s flags byte: bit 0, the frames carry the pixel code; other bits 0.
const STREAM_FLAG_PIXEL_CODE: u8 = 1;

/// What the client measured for one frame, on the client's clock. Sent back for every frame it
/// decoded, so the streamer can split glass-to-glass latency into stages.
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
    /// Fragment datagrams (data and parity) of the frames seen, as their headers announce
    /// them, and how many of those arrived: the link's datagram loss, which sizes the
    /// streamer's forward error correction.
    pub datagrams_expected: u64,
    pub datagrams_received: u64,
    /// Frames rebuilt from parity fragments.
    pub repaired: u64,
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

/// One direction's control messages.
pub trait Message: Sized {
    /// Encodes the message body (type byte + fields), without the length prefix.
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Decodes one message body (as framed by [`ControlDecoder`]); a type byte of the other
    /// direction is [`WireError::Misdirected`].
    fn decode_body(body: &[u8]) -> Result<Self, WireError>;

    /// Encodes the message with its `u32` length prefix, ready for the control stream.
    fn encode_framed(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        self.encode_body(out);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// The type bytes, one table for both directions (a byte names one message, whichever way).
pub(super) mod tag {
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
    pub const NACK: u8 = 11;
    pub const LINK_STATUS: u8 = 12;
    /// The largest type byte in use: anything above is unknown in both directions.
    pub const LAST: u8 = LINK_STATUS;
}

/// A type byte this direction does not decode: misdirected if the other direction uses it.
pub(super) fn not_ours(tag: u8) -> WireError {
    if (1..=tag::LAST).contains(&tag) {
        WireError::Misdirected(tag)
    } else {
        WireError::UnknownType(tag)
    }
}

pub(super) const MAX_STREAMS: u8 = 8;
pub(super) const MAX_REASON: usize = 1024;

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(MAX_REASON)];
    // Cut at a char boundary so the receiver always sees valid UTF-8.
    let mut n = b.len();
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

pub(super) fn get_str(r: &mut Reader<'_>) -> Result<String, WireError> {
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

pub(super) fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

const NONE_U64: u64 = u64::MAX;

fn opt_u64(v: Option<u64>) -> u64 {
    v.unwrap_or(NONE_U64)
}

fn get_opt_u64(r: &mut Reader<'_>) -> Result<Option<u64>, WireError> {
    let v = r.u64()?;
    Ok((v != NONE_U64).then_some(v))
}

impl StreamInfo {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.eye as u8);
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.fps_milli.to_be_bytes());
        out.push(if self.pixel_code {
            STREAM_FLAG_PIXEL_CODE
        } else {
            0
        });
    }

    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (eye, width, height, fps_milli) = (r.eye()?, r.u16()?, r.u16()?, r.u32()?);
        let flags = r.u8()?;
        if flags & !STREAM_FLAG_PIXEL_CODE != 0 {
            return Err(WireError::Invalid {
                field: "stream.flags",
                why: "unknown flag bits",
            });
        }
        Ok(StreamInfo {
            eye,
            width,
            height,
            fps_milli,
            pixel_code: flags & STREAM_FLAG_PIXEL_CODE != 0,
        })
    }
}

impl FrameMarker {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.eye as u8);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.frame_no.to_be_bytes());
        let (present, code_eye, code) = match self.pixel_code {
            Some((eye, n)) => (1, eye as u8, n),
            None => (0, 0, 0),
        };
        out.push(present);
        out.push(code_eye);
        out.extend_from_slice(&code.to_be_bytes());
        put_u64s(
            out,
            &[
                self.first_byte_ns,
                self.last_byte_ns,
                self.decoded_ns,
                opt_u64(self.presented_ns),
                opt_u64(self.display_ns),
            ],
        );
    }

    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
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
        let presented_ns = get_opt_u64(r)?;
        let display_ns = get_opt_u64(r)?;
        if !(first_byte_ns <= last_byte_ns && last_byte_ns <= decoded_ns) {
            return Err(WireError::Invalid {
                field: "marker",
                why: "timestamps out of order",
            });
        }
        Ok(FrameMarker {
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
}

impl ClientStats {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        put_u64s(
            out,
            &[
                self.received,
                self.decoded,
                self.lost,
                self.decode_errors,
                self.wrong_eye,
                self.malformed_datagrams,
                self.datagrams_expected,
                self.datagrams_received,
                self.repaired,
            ],
        );
    }

    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(ClientStats {
            received: r.u64()?,
            decoded: r.u64()?,
            lost: r.u64()?,
            decode_errors: r.u64()?,
            wrong_eye: r.u64()?,
            malformed_datagrams: r.u64()?,
            datagrams_expected: r.u64()?,
            datagrams_received: r.u64()?,
            repaired: r.u64()?,
        })
    }
}

impl KeyframeReason {
    pub(super) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(KeyframeReason::Start),
            1 => Ok(KeyframeReason::ReferenceLost),
            2 => Ok(KeyframeReason::DecodeError),
            _ => Err(WireError::Invalid {
                field: "keyframe.reason",
                why: "unknown",
            }),
        }
    }
}

/// Incremental de-framer for one direction of the control stream: feed it bytes as they
/// arrive, take messages out. Its buffer never holds more than one maximal message plus one
/// read.
pub struct ControlDecoder<M> {
    buf: Vec<u8>,
    _direction: std::marker::PhantomData<fn() -> M>,
}

impl<M: Message> Default for ControlDecoder<M> {
    fn default() -> Self {
        ControlDecoder {
            buf: Vec::new(),
            _direction: std::marker::PhantomData,
        }
    }
}

impl<M: Message> ControlDecoder<M> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed. An error is fatal
    /// for the stream (framing is lost), so the caller should close the connection.
    pub fn next_message(&mut self) -> Result<Option<M>, WireError> {
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
        let msg = M::decode_body(&self.buf[4..total]);
        self.buf.drain(..total);
        msg.map(Some)
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Picks the highest version both sides speak (this build: [`VERSION`] only).
pub fn negotiate_version(peer_min: u8, peer_max: u8) -> Option<u8> {
    let v = peer_max.min(VERSION);
    (v >= peer_min && v >= VERSION).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::super::{ToHeadset, ToStreamer};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn absurd_control_length_is_rejected_before_buffering() {
        let mut d = ControlDecoder::<ToStreamer>::new();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(d.next_message(), Err(WireError::TooLong { .. })));
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version(VERSION, VERSION), Some(VERSION));
        assert_eq!(negotiate_version(1, 9), Some(VERSION));
        // Version 1 (no parity fragments) is not spoken any more.
        assert_eq!(negotiate_version(1, 1), None);
        assert_eq!(negotiate_version(VERSION + 1, 9), None);
        assert_eq!(negotiate_version(0, 0), None);
    }

    #[test]
    fn each_direction_refuses_the_others_messages() {
        let mut ping = Vec::new();
        ToHeadset::Ping { id: 1, t0: 2 }.encode_body(&mut ping);
        assert_eq!(
            ToStreamer::decode_body(&ping),
            Err(WireError::Misdirected(tag::PING))
        );
        let mut ack = Vec::new();
        ToStreamer::HelloAck { version: 1 }.encode_body(&mut ack);
        assert_eq!(
            ToHeadset::decode_body(&ack),
            Err(WireError::Misdirected(tag::HELLO_ACK))
        );
        assert_eq!(
            ToHeadset::decode_body(&[99]),
            Err(WireError::UnknownType(99))
        );
        // Bye is the one message both sides send.
        let mut bye = Vec::new();
        ToHeadset::Bye { reason: "x".into() }.encode_body(&mut bye);
        assert!(ToStreamer::decode_body(&bye).is_ok());
    }

    proptest! {
        #[test]
        fn control_decoder_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut to_headset = ControlDecoder::<ToHeadset>::new();
            let mut to_streamer = ControlDecoder::<ToStreamer>::new();
            for c in chunks {
                to_headset.push(&c);
                to_streamer.push(&c);
                while let Ok(Some(_)) = to_headset.next_message() {}
                while let Ok(Some(_)) = to_streamer.next_message() {}
                prop_assert!(to_headset.buffered() <= MAX_CONTROL_LEN as usize + 4 + 64);
                prop_assert!(to_streamer.buffered() <= MAX_CONTROL_LEN as usize + 4 + 64);
            }
        }

        #[test]
        fn control_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = ToHeadset::decode_body(&body);
            let _ = ToStreamer::decode_body(&body);
        }
    }
}
