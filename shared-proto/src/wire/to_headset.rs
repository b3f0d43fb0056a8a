//! Control messages the streamer sends to the headset.

use super::control::{get_str, not_ours, put_str, put_u64s, tag, Message, StreamInfo, MAX_STREAMS};
use super::{Reader, WireError};
use crate::clock::AnnouncedClock;
use crate::Nanos;

#[derive(Debug, Clone, PartialEq)]
pub enum ToHeadset {
    /// The streamer's first message: the versions it speaks and the streams it offers.
    Hello {
        min_version: u8,
        max_version: u8,
        streams: Vec<StreamInfo>,
    },
    /// Clock-sync probe (`t0` on the streamer clock), answered by [`super::ToStreamer::Pong`].
    Ping { id: u32, t0: Nanos },
    /// The streamer's current clock estimate, so the headset can show latency on its own.
    ClockEstimate(AnnouncedClock),
    /// The session ends (the source ended, the streamer stops).
    Bye { reason: String },
}

impl Message for ToHeadset {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            ToHeadset::Hello {
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
                    s.write(out);
                }
            }
            ToHeadset::Ping { id, t0 } => {
                out.push(tag::PING);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&t0.to_be_bytes());
            }
            ToHeadset::ClockEstimate(c) => {
                out.push(tag::CLOCK_ESTIMATE);
                out.extend_from_slice(&c.offset_ns.to_be_bytes());
                out.extend_from_slice(&c.skew_ppb.to_be_bytes());
                put_u64s(out, &[c.at_streamer_ns, c.rtt_ns]);
            }
            ToHeadset::Bye { reason } => {
                out.push(tag::BYE);
                put_str(out, reason);
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Self, WireError> {
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
                let streams = (0..n)
                    .map(|_| StreamInfo::parse(&mut r))
                    .collect::<Result<_, _>>()?;
                ToHeadset::Hello {
                    min_version,
                    max_version,
                    streams,
                }
            }
            tag::PING => ToHeadset::Ping {
                id: r.u32()?,
                t0: r.u64()?,
            },
            tag::CLOCK_ESTIMATE => ToHeadset::ClockEstimate(AnnouncedClock {
                offset_ns: r.i64()?,
                skew_ppb: r.i64()?,
                at_streamer_ns: r.u64()?,
                rtt_ns: r.u64()?,
            }),
            tag::BYE => ToHeadset::Bye {
                reason: get_str(&mut r)?,
            },
            other => return Err(not_ours(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::ControlDecoder;
    use super::*;
    use crate::Eye;

    /// Encodes framed, decodes byte by byte (partial reads).
    pub(crate) fn roundtrip<M: Message + PartialEq + std::fmt::Debug>(msg: M) {
        let mut buf = Vec::new();
        msg.encode_framed(&mut buf);
        let mut d = ControlDecoder::<M>::new();
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
    fn to_headset_roundtrips() {
        roundtrip(ToHeadset::Hello {
            min_version: 1,
            max_version: 3,
            streams: vec![StreamInfo {
                eye: Eye::Right,
                width: 1280,
                height: 720,
                fps_milli: 60_000,
            }],
        });
        roundtrip(ToHeadset::Ping { id: 7, t0: 99 });
        roundtrip(ToHeadset::ClockEstimate(AnnouncedClock {
            offset_ns: -5,
            skew_ppb: 12,
            at_streamer_ns: 4,
            rtt_ns: 8,
        }));
        roundtrip(ToHeadset::Bye {
            reason: String::new(),
        });
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut buf = Vec::new();
        ToHeadset::Ping { id: 1, t0: 1 }.encode_body(&mut buf);
        buf.push(0);
        assert_eq!(ToHeadset::decode_body(&buf), Err(WireError::Trailing(1)));
    }
}
