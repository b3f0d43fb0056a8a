//! # shared-proto
//!
//! Everything the streamer and the headset must agree on, as pure code: no sockets, no async
//! runtime and no clock reads. Every function takes the time it needs as an argument, so the
//! whole protocol is deterministic and unit-testable (the same split as `quinn-proto` / `quinn`).
//!
//! * [`wire`]: the versioned datagram format for video fragments and the control messages,
//!   split by direction ([`wire::ToHeadset`], [`wire::ToStreamer`]).
//! * [`fragment`]: splitting an encoded frame into datagrams and reassembling it, with loss
//!   detection and bounded memory.
//! * [`browser`]: the JSON messages of browser viewers (WebRTC DataChannel), mapped onto the same
//!   clock sync and markers.
//! * [`clock`]: the NTP-style estimator that maps headset time onto the streamer's clock.
//! * [`latency`]: per-frame stage arithmetic and percentile summaries.
//! * [`pixel_code`]: the eye/frame-number code drawn into (and read back from) the pixels.
//! * [`rules`]: the protocol's rules as state machines with time passed in: handshake, ping
//!   schedule, pacer, send budget, bitrate wishes, reference chain, keyframe policy, marker
//!   ledger.
//!
//! A frame's round trip, as the streamer and the headset see it (no sockets involved):
//!
//! ```
//! use shared_proto::fragment::{fragment_frame, OutgoingFrame, Reassembler, ReassemblyLimits};
//! use shared_proto::wire::FrameTiming;
//! use shared_proto::Eye;
//!
//! let bitstream = vec![0x65u8; 5000];
//! let timing = FrameTiming { frame_no: 42, capture_ns: 1_000, encode_start_ns: 2_000,
//!                            encode_end_ns: 6_000, send_ns: 6_500, ..Default::default() };
//! let frame = OutgoingFrame { eye: Eye::Right, seq: 7, keyframe: true, timing, bitstream: &bitstream };
//! let mut datagrams = Vec::new();
//! fragment_frame(&frame, 1200, |d| datagrams.push(d)).unwrap();
//! assert_eq!(datagrams.len(), 5);
//!
//! let mut reassembler = Reassembler::new(ReassemblyLimits::default());
//! let mut done = None;
//! for (i, d) in datagrams.iter().enumerate() {
//!     done = reassembler.insert_datagram(d, 10_000 + i as u64).unwrap().completed.pop();
//! }
//! let done = done.expect("all fragments arrived");
//! assert_eq!((done.eye, done.seq, done.timing.frame_no), (Eye::Right, 7, 42));
//! assert_eq!(done.bitstream, bitstream);
//! ```

pub mod browser;
pub mod clock;
pub mod fragment;
pub mod latency;
pub mod pixel_code;
pub mod rules;
pub mod wire;

/// Which eye a stream belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Eye {
    Left = 0,
    Right = 1,
}

impl Eye {
    pub const BOTH: [Eye; 2] = [Eye::Left, Eye::Right];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_u8(v: u8) -> Option<Eye> {
        match v {
            0 => Some(Eye::Left),
            1 => Some(Eye::Right),
            _ => None,
        }
    }

    /// The other eye.
    pub fn other(self) -> Eye {
        match self {
            Eye::Left => Eye::Right,
            Eye::Right => Eye::Left,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Eye::Left => "left",
            Eye::Right => "right",
        }
    }
}

impl std::fmt::Display for Eye {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Nanoseconds on some monotonic clock. Which clock is always said by the name of the field
/// (streamer clock or client clock); [`clock::ClockEstimate`] converts between the two.
pub type Nanos = u64;
