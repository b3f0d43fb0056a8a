//! Control messages the streamer sends to the headset.

use super::control::{get_str, not_ours, put_str, put_u64s, tag, Message, StreamInfo, MAX_STREAMS};
use super::{Reader, WireError, VERSION};
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
    /// What the streamer makes of the headset's link, about twice a second, so the headset's
    /// HUD shows it next to its own counters.
    LinkStatus(LinkStatus),
}

/// The streamer's view of the link to this headset ([`ToHeadset::LinkStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct LinkStatus {
    /// The link estimate, bit/s (video and parity, both eyes).
    pub estimate_bps: u64,
    /// The queueing delay the estimate last saw, microseconds.
    pub queue_us: u32,
    /// How often the estimate was cut so far.
    pub decreases: u32,
    /// Each eye's encoder bitrate now, bit/s (left, right).
    pub target_bps: [u32; 2],
    /// Each eye's parity datagrams per 1000 data datagrams now (forward error correction).
    pub parity_permille: [u16; 2],
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
            ToHeadset::LinkStatus(l) => {
                out.push(tag::LINK_STATUS);
                out.extend_from_slice(&l.estimate_bps.to_be_bytes());
                out.extend_from_slice(&l.queue_us.to_be_bytes());
                out.extend_from_slice(&l.decreases.to_be_bytes());
                for t in l.target_bps {
                    out.extend_from_slice(&t.to_be_bytes());
                }
                for p in l.parity_permille {
                    out.extend_from_slice(&p.to_be_bytes());
                }
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
                if !(min_version..=max_version).contains(&VERSION) {
                    // Another version's stream list may have another layout: only its versions
                    // are read, and the handshake refuses it ("no common protocol version").
                    // (A version-3 headset predates this rule: it fails to parse a version-4
                    // Hello and closes the session.)
                    return Ok(ToHeadset::Hello {
                        min_version,
                        max_version,
                        streams: Vec::new(),
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
            tag::LINK_STATUS => ToHeadset::LinkStatus(LinkStatus {
                estimate_bps: r.u64()?,
                queue_us: r.u32()?,
                decreases: r.u32()?,
                target_bps: [r.u32()?, r.u32()?],
                parity_permille: [r.u16()?, r.u16()?],
            }),
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
    fn an_older_hello_is_read_up_to_its_versions_for_the_handshake_to_refuse() {
        // Version 3's Hello: one stream of 7 bytes (no flags byte).
        let mut body = vec![super::tag::HELLO, 3, 3, 1, 1];
        body.extend_from_slice(&[5, 0, 2, 208, 0, 0, 234, 96]);
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        let mut d = ControlDecoder::<ToHeadset>::default();
        d.push(&framed);
        let hello = d.next_message().unwrap().unwrap();
        assert_eq!(
            hello,
            ToHeadset::Hello {
                min_version: 3,
                max_version: 3,
                streams: vec![],
            }
        );
        let crate::rules::handshake::Answer::Refuse { reason, .. } =
            crate::rules::handshake::answer(hello)
        else {
            panic!("a version-3 streamer was accepted")
        };
        assert!(reason.contains("no common protocol version"), "{reason}");
    }

    #[test]
    fn to_headset_roundtrips() {
        roundtrip(ToHeadset::Hello {
            min_version: 1,
            max_version: VERSION,
            streams: vec![StreamInfo {
                eye: Eye::Right,
                width: 1280,
                height: 720,
                fps_milli: 60_000,
                pixel_code: true,
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
        roundtrip(ToHeadset::LinkStatus(LinkStatus {
            estimate_bps: 12_345_678,
            queue_us: 4_000,
            decreases: 3,
            target_bps: [6_000_000, 5_900_000],
            parity_permille: [260, 0],
        }));
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut buf = Vec::new();
        ToHeadset::Ping { id: 1, t0: 1 }.encode_body(&mut buf);
        buf.push(0);
        assert_eq!(ToHeadset::decode_body(&buf), Err(WireError::Trailing(1)));
    }
}
