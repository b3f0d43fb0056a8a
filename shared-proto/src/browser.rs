//! The messages a browser viewer and the streamer exchange on the WebRTC DataChannel
//! `binoc`: JSON text, one message per DataChannel message.
//!
//! Browser times are `performance.now()` milliseconds (the same clock as the timestamps of
//! `requestVideoFrameCallback` and of WebXR frames). They become the "client clock" of
//! [`crate::clock`] as nanoseconds, so clock sync and the latency arithmetic are the native
//! client's. A browser cannot name a frame by the streamer's sequence number; it names it by
//! the RTP timestamp the frame arrived with, which the streamer sets from the capture time.
//!
//! Streamer → browser: `{"t":"ping","id":N,"t0":NS}` and `{"t":"stats",…}` (free-form JSON for
//! the page's HUD). Browser → streamer:
//! * `{"t":"pong","id":N,"t0":NS,"t1":MS,"t2":MS}`: `t0` echoed, `t1`/`t2` when the ping
//!   arrived / the pong left, in browser milliseconds;
//! * `{"t":"m","eye":0|1,"rtp":U32,"code":[EYE,FRAME]|null,"recv":MS,"pres":MS,"disp":MS|null}`:
//!   a frame marker (last packet received, decoded frame handed to the compositor, predicted
//!   display time), with the pixel code read from the frame if the page could read it.

use serde::Deserialize;

use crate::clock::ClockSample;
use crate::wire::FrameMarker;
use crate::{Eye, Nanos};

/// Longest message accepted from a browser; anything longer is malformed.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Latest browser time accepted (about 31 years of `performance.now()`), so that converting to
/// nanoseconds cannot overflow.
const MAX_BROWSER_MS: f64 = 1e12;

/// The RTP clock of video: 90 kHz.
pub const RTP_HZ: u64 = 90_000;

/// The 32-bit RTP timestamp the streamer gives a frame captured at `capture_ns`.
pub fn rtp_timestamp(capture_ns: Nanos) -> u32 {
    ((capture_ns as u128 * RTP_HZ as u128 / 1_000_000_000) & 0xFFFF_FFFF) as u32
}

/// A message from a browser viewer.
#[derive(Debug, Clone, PartialEq)]
pub enum BrowserMessage {
    /// The answer to ping `id`.
    Pong {
        id: u32,
        sample: ClockSample,
    },
    Marker(BrowserMarker),
}

/// A frame marker, times already on the client clock (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrowserMarker {
    pub eye: Eye,
    pub rtp: u32,
    pub pixel_code: Option<(Eye, u32)>,
    pub received_ns: Nanos,
    pub presented_ns: Nanos,
    pub display_ns: Option<Nanos>,
}

impl BrowserMarker {
    /// The marker in the native client's form, for the frame the streamer booked as
    /// (`seq`, `frame_no`). The browser's "received" is the arrival of the frame's last packet;
    /// "presented" (the decoded frame handed to the compositor) closes the decode stage.
    ///
    /// The browser's times are taken as they are but for order: a frame is not handed over
    /// before it arrived, nor displayed before it was handed over. Chromium's
    /// `expectedDisplayTime` is the vsync a frame was meant for, and a frame handed over after
    /// it (seen: up to 10.5 ms after) is shown a vsync or more later; its display time is
    /// raised to the hand-over, a lower bound.
    pub fn to_frame_marker(&self, seq: u32, frame_no: u64) -> FrameMarker {
        let presented = self.presented_ns.max(self.received_ns);
        FrameMarker {
            eye: self.eye,
            seq,
            frame_no,
            pixel_code: self.pixel_code,
            first_byte_ns: self.received_ns,
            last_byte_ns: self.received_ns,
            decoded_ns: presented,
            presented_ns: Some(presented),
            display_ns: self.display_ns.map(|d| d.max(presented)),
        }
    }
}

/// Why a browser message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrowserError {
    #[error("message of {0} bytes is longer than {MAX_MESSAGE_BYTES}")]
    TooLong(usize),
    #[error("not a binoc message: {0}")]
    Syntax(String),
    #[error("bad `{0}`: {1}")]
    Field(&'static str, String),
}

#[derive(Deserialize)]
#[serde(tag = "t", deny_unknown_fields)]
enum Raw {
    #[serde(rename = "pong")]
    Pong { id: u32, t0: u64, t1: f64, t2: f64 },
    #[serde(rename = "m")]
    Marker {
        eye: u8,
        rtp: u32,
        code: Option<(u8, u32)>,
        recv: f64,
        pres: f64,
        disp: Option<f64>,
    },
}

fn browser_ns(field: &'static str, ms: f64) -> Result<Nanos, BrowserError> {
    if !(ms.is_finite() && (0.0..=MAX_BROWSER_MS).contains(&ms)) {
        return Err(BrowserError::Field(
            field,
            format!("{ms} is not a browser time"),
        ));
    }
    Ok((ms * 1e6).round() as Nanos)
}

fn eye(field: &'static str, v: u8) -> Result<Eye, BrowserError> {
    Eye::from_u8(v).ok_or_else(|| BrowserError::Field(field, format!("{v} is not an eye (0 or 1)")))
}

/// Parses one DataChannel message; `received_ns` (streamer clock) stamps a pong's arrival.
pub fn parse(text: &[u8], received_ns: Nanos) -> Result<BrowserMessage, BrowserError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(BrowserError::TooLong(text.len()));
    }
    let raw: Raw = serde_json::from_slice(text).map_err(|e| BrowserError::Syntax(e.to_string()))?;
    Ok(match raw {
        Raw::Pong { id, t0, t1, t2 } => {
            let (t1, t2) = (browser_ns("t1", t1)?, browser_ns("t2", t2)?);
            if t2 < t1 {
                return Err(BrowserError::Field("t2", "earlier than t1".into()));
            }
            BrowserMessage::Pong {
                id,
                sample: ClockSample {
                    t0,
                    t1,
                    t2,
                    t3: received_ns,
                },
            }
        }
        Raw::Marker {
            eye: e,
            rtp,
            code,
            recv,
            pres,
            disp,
        } => BrowserMessage::Marker(BrowserMarker {
            eye: eye("eye", e)?,
            rtp,
            pixel_code: code
                .map(|(ce, n)| Ok::<_, BrowserError>((eye("code", ce)?, n)))
                .transpose()?,
            received_ns: browser_ns("recv", recv)?,
            presented_ns: browser_ns("pres", pres)?,
            display_ns: disp.map(|d| browser_ns("disp", d)).transpose()?,
        }),
    })
}

/// The streamer's clock-sync ping.
pub fn ping(id: u32, t0: Nanos) -> String {
    format!(r#"{{"t":"ping","id":{id},"t0":{t0}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pong_and_marker() {
        let p = parse(br#"{"t":"pong","id":3,"t0":123,"t1":10.5,"t2":10.75}"#, 999).unwrap();
        assert_eq!(
            p,
            BrowserMessage::Pong {
                id: 3,
                sample: ClockSample {
                    t0: 123,
                    t1: 10_500_000,
                    t2: 10_750_000,
                    t3: 999
                }
            }
        );
        let m = parse(
            br#"{"t":"m","eye":1,"rtp":4294967295,"code":[1,77],"recv":5,"pres":6.5,"disp":20}"#,
            0,
        )
        .unwrap();
        let BrowserMessage::Marker(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m.eye, Eye::Right);
        assert_eq!(m.rtp, u32::MAX);
        assert_eq!(m.pixel_code, Some((Eye::Right, 77)));
        let f = m.to_frame_marker(9, 77);
        assert_eq!((f.last_byte_ns, f.decoded_ns), (5_000_000, 6_500_000));
        assert_eq!(f.display_ns, Some(20_000_000));
        let m = parse(
            br#"{"t":"m","eye":0,"rtp":1,"code":null,"recv":5,"pres":4,"disp":null}"#,
            0,
        )
        .unwrap();
        let BrowserMessage::Marker(m) = m else {
            panic!()
        };
        // A presentation stamped before the receive cannot make a negative decode stage.
        assert_eq!(m.to_frame_marker(0, 0).decoded_ns, 5_000_000);
        assert_eq!(m.to_frame_marker(0, 0).presented_ns, Some(5_000_000));
        // A display time before the hand-over (a frame that missed the vsync it was meant
        // for) is raised to the hand-over: no negative display stage.
        let m = parse(
            br#"{"t":"m","eye":0,"rtp":1,"code":null,"recv":5,"pres":16,"disp":6}"#,
            0,
        )
        .unwrap();
        let BrowserMessage::Marker(m) = m else {
            panic!()
        };
        let f = m.to_frame_marker(0, 0);
        assert_eq!((f.decoded_ns, f.display_ns), (16_000_000, Some(16_000_000)));
    }

    #[test]
    fn refuses_bad_messages_with_the_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not a binoc message"),
            (b"{}", "not a binoc message"),
            (br#"{"t":"hello"}"#, "not a binoc message"),
            (
                br#"{"t":"pong","id":1,"t0":1,"t1":1,"t2":1,"x":1}"#,
                "not a binoc",
            ),
            (
                br#"{"t":"pong","id":1,"t0":-1,"t1":1,"t2":1}"#,
                "not a binoc",
            ),
            (br#"{"t":"pong","id":1,"t0":1,"t1":2,"t2":1}"#, "bad `t2`"),
            (br#"{"t":"pong","id":1,"t0":1,"t1":-2,"t2":1}"#, "bad `t1`"),
            (
                br#"{"t":"pong","id":1,"t0":1,"t1":1e300,"t2":1e300}"#,
                "bad `t1`",
            ),
            (
                br#"{"t":"m","eye":2,"rtp":1,"code":null,"recv":1,"pres":1,"disp":null}"#,
                "bad `eye`",
            ),
            (
                br#"{"t":"m","eye":0,"rtp":1,"code":[5,1],"recv":1,"pres":1,"disp":null}"#,
                "bad `code`",
            ),
            (
                br#"{"t":"m","eye":0,"rtp":4294967296,"code":null,"recv":1,"pres":1,"disp":null}"#,
                "not a binoc",
            ),
            (
                br#"{"t":"m","eye":0,"rtp":1,"code":null,"recv":1,"pres":1,"disp":-5}"#,
                "bad `disp`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, 0).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(text));
        }
        let long = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            parse(&long, 0),
            Err(BrowserError::TooLong(MAX_MESSAGE_BYTES + 1))
        );
    }

    #[test]
    fn rtp_timestamps_follow_capture_time_and_wrap() {
        assert_eq!(rtp_timestamp(0), 0);
        assert_eq!(rtp_timestamp(1_000_000_000), 90_000);
        let wrap_ns = (1u128 << 32) * 1_000_000_000 / 90_000;
        assert!(rtp_timestamp(wrap_ns as u64 + 1_000_000_000) < 100_000);
        assert_eq!(ping(3, 42), r#"{"t":"ping","id":3,"t0":42}"#);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = parse(&bytes, 1);
        }
    }
}
