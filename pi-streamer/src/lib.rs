//! # pi-streamer
//!
//! The pipeline, stage by stage (each folder one stage, each backend one file):
//!
//! ```text
//! source/ (test, y4m, v4l2, libcamera) ──► encode/ (x264, openh264, v4l2m2m) ──► output/ (quic, webrtc)
//!      capture thread                       one thread per eye                  each with its own queue
//! ```
//!
//! [`pipeline`] runs capture and the encoders with bounded, newest-wins hand-offs so latency
//! never builds up in a queue; [`session`] hands every encoded frame to each output (the
//! headset over QUIC, browsers over WebRTC) and takes their feedback; [`report`] turns an
//! output's markers into its latency table. The protocol's rules (pacing, budgets, handshake,
//! reference chain, marker ledger) are `shared_proto::rules`; the QUIC plumbing is `binoc-net`.
//! Only [`loopback`] (the self-test) runs the headset's receive core (`headset-core`).

/// When this process started (`main`'s first line, [`mark_launch`]): reports give the time
/// from it to the first decoded frame of both eyes ("fast start").
static LAUNCHED_NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Marks now as the process's launch (call first thing in `main`).
pub fn mark_launch() {
    let _ = LAUNCHED_NS.set(binoc_net::os_clock::monotonic_ns());
}

/// The launch time marked by [`mark_launch`], if any.
pub fn launched_ns() -> Option<u64> {
    LAUNCHED_NS.get().copied()
}

pub mod config;
pub mod encode;
pub mod impair;
pub mod loopback;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod session;
pub mod source;
pub mod timeline;
#[cfg(target_os = "linux")]
pub mod v4l2;
