//! Control messages the headset sends to the streamer.

use super::control::{get_str, not_ours, put_str, put_u64s, tag, Message};
use super::{ClientStats, FrameMarker, KeyframeReason, Reader, WireError};
use crate::{Eye, Nanos};

#[derive(Debug, Clone, PartialEq)]
pub enum ToStreamer {
    /// The answer to `Hello`: the version the headset picked.
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
    /// Answer to a ping: `t1` when it arrived and `t2` when the pong left, on the client clock.
    Pong {
        id: u32,
        t0: Nanos,
        t1: Nanos,
        t2: Nanos,
    },
    Marker(FrameMarker),
    Stats {
        eye: Eye,
        stats: ClientStats,
    },
    Bye {
        reason: String,
    },
    /// Data fragments of frame `seq` that did not arrive, as many as its parity cannot make up
    /// (at most [`MAX_NACK`]): the streamer sends them again if the frame can still be in time.
    Nack {
        eye: Eye,
        seq: u32,
        missing: Vec<u16>,
    },
}

/// Fragments one `Nack` may ask for.
pub const MAX_NACK: usize = 256;

impl Message for ToStreamer {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            ToStreamer::HelloAck { version } => {
                out.push(tag::HELLO_ACK);
                out.push(*version);
            }
            ToStreamer::Reject { reason } => {
                out.push(tag::REJECT);
                put_str(out, reason);
            }
            ToStreamer::KeyframeRequest { eye, reason } => {
                out.push(tag::KEYFRAME_REQUEST);
                out.push(*eye as u8);
                out.push(*reason as u8);
            }
            ToStreamer::Pong { id, t0, t1, t2 } => {
                out.push(tag::PONG);
                out.extend_from_slice(&id.to_be_bytes());
                put_u64s(out, &[*t0, *t1, *t2]);
            }
            ToStreamer::Marker(m) => {
                out.push(tag::MARKER);
                m.write(out);
            }
            ToStreamer::Stats { eye, stats } => {
                out.push(tag::STATS);
                out.push(*eye as u8);
                stats.write(out);
            }
            ToStreamer::Bye { reason } => {
                out.push(tag::BYE);
                put_str(out, reason);
            }
            ToStreamer::Nack { eye, seq, missing } => {
                out.push(tag::NACK);
                out.push(*eye as u8);
                out.extend_from_slice(&seq.to_be_bytes());
                let missing = &missing[..missing.len().min(MAX_NACK)];
                out.extend_from_slice(&(missing.len() as u16).to_be_bytes());
                for i in missing {
                    out.extend_from_slice(&i.to_be_bytes());
                }
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let msg = match r.u8()? {
            tag::HELLO_ACK => ToStreamer::HelloAck { version: r.u8()? },
            tag::REJECT => ToStreamer::Reject {
                reason: get_str(&mut r)?,
            },
            tag::KEYFRAME_REQUEST => ToStreamer::KeyframeRequest {
                eye: r.eye()?,
                reason: KeyframeReason::from_u8(r.u8()?)?,
            },
            tag::PONG => ToStreamer::Pong {
                id: r.u32()?,
                t0: r.u64()?,
                t1: r.u64()?,
                t2: r.u64()?,
            },
            tag::MARKER => ToStreamer::Marker(FrameMarker::parse(&mut r)?),
            tag::STATS => ToStreamer::Stats {
                eye: r.eye()?,
                stats: ClientStats::parse(&mut r)?,
            },
            tag::BYE => ToStreamer::Bye {
                reason: get_str(&mut r)?,
            },
            tag::NACK => {
                let eye = r.eye()?;
                let seq = r.u32()?;
                let n = usize::from(r.u16()?);
                if n == 0 || n > MAX_NACK {
                    return Err(WireError::Invalid {
                        field: "nack count",
                        why: "zero or above the limit",
                    });
                }
                let missing = (0..n).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
                ToStreamer::Nack { eye, seq, missing }
            }
            other => return Err(not_ours(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::control::MAX_REASON;
    use super::super::to_headset::tests::roundtrip;
    use super::*;

    #[test]
    fn to_streamer_roundtrips() {
        roundtrip(ToStreamer::HelloAck { version: 1 });
        roundtrip(ToStreamer::Reject {
            reason: "nope ✓".into(),
        });
        roundtrip(ToStreamer::KeyframeRequest {
            eye: Eye::Left,
            reason: KeyframeReason::ReferenceLost,
        });
        roundtrip(ToStreamer::Pong {
            id: 7,
            t0: 99,
            t1: 100,
            t2: 101,
        });
        roundtrip(ToStreamer::Marker(FrameMarker {
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
        roundtrip(ToStreamer::Stats {
            eye: Eye::Left,
            stats: ClientStats {
                received: 1,
                decoded: 2,
                lost: 3,
                decode_errors: 4,
                wrong_eye: 5,
                malformed_datagrams: 6,
                datagrams_expected: 7,
                datagrams_received: 8,
                repaired: 9,
            },
        });
        roundtrip(ToStreamer::Bye {
            reason: String::new(),
        });
        roundtrip(ToStreamer::Nack {
            eye: Eye::Right,
            seq: 77,
            missing: vec![0, 3, 9],
        });
    }

    #[test]
    fn nacks_are_bounded() {
        let mut body = Vec::new();
        ToStreamer::Nack {
            eye: Eye::Left,
            seq: 1,
            missing: (0..1000).collect(),
        }
        .encode_body(&mut body);
        // Encoding caps the list; a decoder refuses more than the cap, or none.
        match ToStreamer::decode_body(&body) {
            Ok(ToStreamer::Nack { missing, .. }) => assert_eq!(missing.len(), MAX_NACK),
            other => panic!("{other:?}"),
        }
        let mut bad = vec![tag::NACK, 0, 0, 0, 0, 1];
        bad.extend_from_slice(&((MAX_NACK + 1) as u16).to_be_bytes());
        bad.extend(std::iter::repeat_n(0u8, 2 * (MAX_NACK + 1)));
        assert!(ToStreamer::decode_body(&bad).is_err());
        assert!(ToStreamer::decode_body(&[tag::NACK, 0, 0, 0, 0, 1, 0, 0]).is_err());
    }

    #[test]
    fn long_reason_is_cut_at_char_boundary() {
        let reason: String = "é".repeat(2000);
        let mut buf = Vec::new();
        ToStreamer::Reject { reason }.encode_body(&mut buf);
        match ToStreamer::decode_body(&buf).unwrap() {
            ToStreamer::Reject { reason } => {
                assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'))
            }
            other => panic!("{other:?}"),
        }
    }
}
