//! The session handshake, both sides: the streamer opens with `Hello` (the versions it speaks,
//! the streams it offers); the headset answers `HelloAck` with the version it picked, or
//! `Reject` with a reason the streamer shows to its user.

use crate::wire::{negotiate_version, StreamInfo, ToHeadset, ToStreamer, VERSION};
use crate::Eye;

/// The streamer's opening message.
pub fn hello(streams: Vec<StreamInfo>) -> ToHeadset {
    ToHeadset::Hello {
        min_version: VERSION,
        max_version: VERSION,
        streams,
    }
}

/// The streamer's reading of the headset's answer: the version agreed, or why not.
pub fn on_answer(answer: ToStreamer) -> Result<u8, String> {
    match answer {
        ToStreamer::HelloAck { version } if version == VERSION => Ok(version),
        ToStreamer::HelloAck { version } => Err(format!(
            "the headset picked protocol version {version}, this streamer speaks {VERSION}"
        )),
        ToStreamer::Reject { reason } => Err(format!("the headset refused the session: {reason}")),
        other => Err(format!("unexpected answer to hello: {other:?}")),
    }
}

/// What the headset makes of the streamer's first message.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Go ahead with `version`; each eye's announced stream (`None`: not offered).
    Accept {
        version: u8,
        streams: [Option<StreamInfo>; 2],
        reply: ToStreamer,
    },
    /// Send `reply` (a `Reject`), close the stream, and end the session with `reason`.
    Refuse { reason: String, reply: ToStreamer },
}

/// The headset's side: answers the streamer's first message.
pub fn answer(first: ToHeadset) -> Answer {
    let refuse = |reason: String| Answer::Refuse {
        reply: ToStreamer::Reject {
            reason: reason.clone(),
        },
        reason,
    };
    match first {
        ToHeadset::Hello {
            min_version,
            max_version,
            streams,
        } => match negotiate_version(min_version, max_version) {
            Some(version) => {
                let mut offered = [None; 2];
                for s in streams {
                    offered[s.eye.index()] = Some(s);
                }
                Answer::Accept {
                    version,
                    streams: offered,
                    reply: ToStreamer::HelloAck { version },
                }
            }
            None => refuse(format!(
                "no common protocol version (peer {min_version}..={max_version}, this headset {VERSION})"
            )),
        },
        other => refuse(format!("expected Hello first, got {other:?}")),
    }
}

/// One eye's stream as the streamer announces it: size, rate, and whether its frames carry
/// the pixel code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer {
    pub width: u16,
    pub height: u16,
    pub fps: f64,
    pub pixel_code: bool,
}

/// The streams a streamer announces for its two eyes.
pub fn streams(eyes: [Offer; 2]) -> Vec<StreamInfo> {
    Eye::BOTH
        .iter()
        .zip(eyes)
        .map(|(&eye, o)| StreamInfo {
            eye,
            width: o.width,
            height: o.height,
            fps_milli: (o.fps * 1000.0) as u32,
            pixel_code: o.pixel_code,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_accepted_with_the_sizes_of_both_eyes() {
        let offer = |width, height, fps, pixel_code| Offer {
            width,
            height,
            fps,
            pixel_code,
        };
        let h = hello(streams([
            offer(640, 360, 30.0, true),
            offer(320, 240, 60.0, false),
        ]));
        match answer(h) {
            Answer::Accept {
                version,
                streams,
                reply,
            } => {
                assert_eq!(version, VERSION);
                let [l, r] = streams.map(|s| s.map(|s| (s.width, s.height, s.pixel_code)));
                assert_eq!((l, r), (Some((640, 360, true)), Some((320, 240, false))));
                assert_eq!(on_answer(reply), Ok(VERSION));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_version_the_headset_does_not_speak_is_refused_with_a_reason() {
        let h = ToHeadset::Hello {
            min_version: VERSION + 1,
            max_version: VERSION + 3,
            streams: vec![],
        };
        let Answer::Refuse { reason, reply } = answer(h) else {
            panic!("accepted")
        };
        assert!(reason.contains("no common protocol version"), "{reason}");
        let shown = on_answer(reply).unwrap_err();
        assert!(
            shown.contains("refused") && shown.contains("no common"),
            "{shown}"
        );
    }

    #[test]
    fn anything_but_hello_first_is_refused() {
        let Answer::Refuse { reason, .. } = answer(ToHeadset::Ping { id: 0, t0: 0 }) else {
            panic!("accepted")
        };
        assert!(reason.contains("expected Hello"), "{reason}");
        assert!(on_answer(ToStreamer::Pong {
            id: 0,
            t0: 0,
            t1: 0,
            t2: 0
        })
        .is_err());
        assert!(on_answer(ToStreamer::HelloAck { version: 9 }).is_err());
    }
}
