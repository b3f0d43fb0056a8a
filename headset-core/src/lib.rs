//! # headset-core
//!
//! The headset's receive/decode core, free of Bevy (ALVR's `client_core`): listen for a
//! streamer, reassemble both eyes, decode them, read each picture's pixel code, and send
//! per-frame timestamp markers back. The headset app (`quest-client`, Bevy/OpenXR) presents
//! the pictures through [`PictureSink`]; the streamer's `loopback` self-test runs this core
//! headless in its own process.
//!
//! * [`listener`]: the QUIC server accepting streamers, one session at a time: only paired
//!   ones when pairing is on, and pairing new ones by a short code.
//! * [`session`]: one streamer's session (handshake, control stream, datagram loop).
//! * [`decoder`]: one eye's decoder thread (reference chain, pixel code, markers).
//! * [`sink`]: [`PictureSink`], [`PendingMarker`].
//! * [`stats`]: counters and latency series per eye, the client report.
//! * [`decode`]: decoders behind one trait (openh264; MediaCodec on the Quest).
//!
//! Threads: the tokio runtime runs the QUIC endpoint, the control stream and the datagram loop
//! (which owns the reassembler); each eye has its own decoder thread fed through a channel
//! bounded by `shared_proto::rules::backlog`. A decoder that falls behind for a moment decodes
//! its backlog faster than real time (the display shows the newest decoded picture); past half
//! a second of pictures or 8 MiB it loses units there, and then asks for an IDR.

pub mod decode;
mod decoder;
pub mod listener;
mod session;
pub mod sink;
pub mod stats;
#[cfg(test)]
mod testing;

pub use listener::{Access, Client};
pub use sink::{Headless, PendingMarker, PictureSink, SentMarkers};
pub use stats::{ClientReport, EyeCounts, EyeReport, EyeStats, Shared};
