//! Stage 3: outputs. Each consumes the encoded frames of both eyes (the same frames: nothing is
//! encoded twice), sends them its own way, and feeds back keyframe requests, the bitrate its
//! receivers can take, and the markers that give its own latency table.
//!
//! * [`quic`]: the native headset app (quinn; datagrams for video, a stream for control).
//! * [`webrtc`]: browsers and WebXR (str0m; WHEP over HTTPS, two H.264 tracks, DataChannel).
//!
//! One session runs any number of them at once ([`crate::session`]); each has its own bounded
//! queue ([`FrameQueue`], dropping its own oldest frame), so a slow output loses frames and
//! never slows another. Coming outputs (an SFU publisher, a recorder) are one more
//! implementation of [`Output`].

mod counters;
mod feedback;
pub mod join;
mod queue;
pub mod quic;
pub mod webrtc;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use counters::{OutputCounters, OutputState};
pub use feedback::Feedback;
pub use queue::FrameQueue;

use crate::pipeline::EncodedFrame;
use crate::report::Report;

/// One consumer of the encoded frames of both eyes.
pub trait Output: Send + Sync {
    /// A short name for logs and reports (`quic 127.0.0.1:7878`, `webrtc`).
    fn name(&self) -> &str;
    /// Hands one encoded frame over. Never blocks: the output queues it (bounded, dropping its
    /// own oldest frame) or drops it (no receiver yet).
    fn offer(&self, frame: &Arc<EncodedFrame>);
    /// Whether [`Output::offer`] takes slices (each the moment it is encoded; consecutive
    /// sequence numbers per picture) rather than whole pictures ([`join::SliceJoiner`]).
    fn takes_slices(&self) -> bool {
        false
    }
    /// `Some(why)` once the output has ended on its own (its headset went away, and it does
    /// not reconnect): the session need not feed it any more.
    fn ended(&self) -> Option<String>;
    /// A one-line status for the periodic log of a long session.
    fn status(&self) -> String;
    /// Each live receiver's report so far (its name, the report), for `--metrics`.
    fn live(&self) -> Vec<(String, Report)>;
    /// The stream is over (no more frames will be offered): finish sending, wait for the last
    /// markers, and report.
    fn finish(&self) -> Pin<Box<dyn Future<Output = OutputReport> + Send + '_>>;
}

/// What an output reports at the end of a session.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "output", rename_all = "lowercase")]
pub enum OutputReport {
    /// The headset: one report per connection (more than one after reconnects).
    Quic(quic::QuicReport),
    /// Browsers: one report per viewer.
    Webrtc(webrtc::ServeReport),
}

impl OutputReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        match self {
            OutputReport::Quic(q) => q.to_text(),
            OutputReport::Webrtc(w) => w.to_text(),
        }
    }

    /// The QUIC output's report of its last connection, if this is one.
    pub fn last_quic(&self) -> Option<&Report> {
        match self {
            OutputReport::Quic(q) => q.connections.last(),
            OutputReport::Webrtc(_) => None,
        }
    }
}
