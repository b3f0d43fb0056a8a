//! # pi-streamer
//!
//! The pipeline, stage by stage (each folder one stage, each backend one file):
//!
//! ```text
//! source/ (test, y4m) ──► encode/ (openh264) ──► transport/ (quic) ──► headset
//!      capture thread      one thread per eye      sender thread + tokio control task
//! ```
//!
//! [`pipeline`] wires the stages with bounded, newest-wins hand-offs so latency never builds
//! up in a queue; [`report`] turns the headset's markers into the latency table.

pub mod config;
pub mod encode;
pub mod loopback;
pub mod pipeline;
pub mod report;
pub mod source;
pub mod stream;
pub mod transport;
#[cfg(target_os = "linux")]
pub mod v4l2;
