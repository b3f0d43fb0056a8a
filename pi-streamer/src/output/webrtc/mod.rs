//! Browsers and WebXR over WebRTC: `pi-streamer --transport webrtc --listen ADDR`.
//!
//! ```text
//! encoder threads ──► Hub ──► one bounded queue per viewer ──► viewer thread (str0m + UDP)
//!   (the same encoded frames as every output: no re-encode)  ▲              │
//!                                                            │   PLI/FIR → keyframe, TWCC → bitrate
//! HTTPS (hyper + rustls) ── WHEP POST/DELETE ── Hub ─────────┘ ◄────────────┘ (through Feedback)
//! ```
//!
//! * [`whep`]: the WHEP requests (sans-IO), [`invite`]: who may open a session (invitations),
//!   [`https`]: the TLS/HTTP server, [`hub`]: the viewer registry, [`viewer`]: one peer connection, [`wake`]: its thread's wake-up.
//! * One viewer that falls behind loses frames from its own queue (and then waits for an IDR);
//!   the fan-out never blocks, so the others are not slowed.
//! * The encoders are shared: their bitrate follows the lowest bandwidth estimate among all
//!   receivers (both eyes share it), within `transport.webrtc.min_bitrate_mbps` and the eyes'
//!   `bitrate_mbps` ([`shared_proto::rules::bitrate`]). A viewer whose link is below the floor
//!   does not count: it loses frames from its own send budget
//!   ([`shared_proto::rules::budget`]) rather than dragging every viewer's picture down.

pub mod https;
pub mod hub;
pub mod invite;
pub mod viewer;
pub mod wake;
pub mod whep;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use binoc_net::os_clock::{monotonic_ns, process_cpu_ns};
use shared_proto::Eye;

pub use https::IDENTITY_FILE;
pub use hub::{Hub, ViewerReport};

use crate::config::StreamerConfig;
use crate::output::{Feedback, Output, OutputReport};
use crate::pipeline::{EncodedFrame, EncoderCounters};

/// The end of a WebRTC output: every viewer's report, and the encoder side over its lifetime.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServeReport {
    pub viewers: Vec<ViewerReport>,
    /// Frames captured per eye, raw frames the encoder had no time for, frames encoded, and
    /// frames not encoded because no viewer was there (the encoders idle without one).
    pub captured: [u64; 2],
    pub dropped_source: [u64; 2],
    pub encoded: [u64; 2],
    pub idle: [u64; 2],
    /// Process CPU time per captured frame (both eyes count; the viewers' sessions included),
    /// and the encoder threads' CPU time per encoded frame. The viewers' own reports have no
    /// CPU figures: the process and the encoders are shared.
    pub cpu_ms_per_frame: f64,
    pub encode_cpu_ms_per_frame: f64,
    /// Encoder bitrate per eye at the end (bit/s; 0 = as configured: no viewer had an estimate).
    pub final_target_bps: [u32; 2],
    pub duration_s: f64,
}

impl ServeReport {
    pub fn to_text(&self) -> String {
        let mut o = format!(
            "{} viewer(s) in {:.1} s; captured L {} R {} (encoded {} {}, idle with no viewer {} {}); CPU {:.2} ms/frame (encode {:.2} ms/frame)\n",
            self.viewers.len(),
            self.duration_s,
            self.captured[0],
            self.captured[1],
            self.encoded[0],
            self.encoded[1],
            self.idle[0],
            self.idle[1],
            self.cpu_ms_per_frame,
            self.encode_cpu_ms_per_frame
        );
        for v in &self.viewers {
            o += &format!("\n== viewer {} ({})\n", v.viewer, v.ended);
            o += &v.report.to_text();
        }
        o
    }
}

/// The browsers' output: the HTTPS server and its viewers.
pub struct WebrtcOutput {
    name: String,
    hub: Arc<Hub>,
    server: tokio::task::JoinHandle<()>,
    addr: std::net::SocketAddr,
    since: [EncoderCounters; 2],
    t0: u64,
    cpu0: u64,
    finished: AtomicBool,
}

impl WebrtcOutput {
    /// Binds the HTTPS server (`transport.webrtc.listen`) and starts serving the page and WHEP.
    pub async fn start(cfg: &StreamerConfig, feedback: Arc<Feedback>) -> Result<Self> {
        let since = feedback.pipeline.snapshot();
        let hub = Hub::new(cfg, feedback);
        let server = https::Server::bind(cfg, hub.clone()).await?;
        let addr = server.local_addr()?;
        tracing::info!("serving https://{addr}/ (WHEP endpoint https://{addr}/whep)");
        let server = tokio::spawn(server.run());
        Ok(WebrtcOutput {
            name: format!("webrtc {addr}"),
            hub,
            server,
            addr,
            since,
            t0: monotonic_ns(),
            cpu0: process_cpu_ns(),
            finished: AtomicBool::new(false),
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Output for WebrtcOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn offer(&self, frame: &Arc<EncodedFrame>) {
        self.hub.fan_out(frame);
    }

    fn ended(&self) -> Option<String> {
        None // serves until the stream ends
    }

    fn status(&self) -> String {
        format!("{}: {} viewer(s)", self.name, self.hub.viewer_count())
    }

    fn live(&self) -> Vec<(String, crate::report::Report)> {
        self.hub.live()
    }

    fn finish(&self) -> Pin<Box<dyn Future<Output = OutputReport> + Send + '_>> {
        Box::pin(async move {
            if !self.finished.swap(true, Ordering::Relaxed) {
                // Let the last frames reach the viewers and their markers come back.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                self.hub.close().await;
                self.server.abort();
            }
            let cpu_ns = process_cpu_ns() - self.cpu0;
            let pipeline = &self.hub.feedback.pipeline;
            let now = pipeline.snapshot();
            let delta = |f: fn(&EncoderCounters) -> u64| {
                Eye::BOTH.map(|e| f(&now[e.index()]) - f(&self.since[e.index()]))
            };
            let captured = delta(|c| c.captured);
            let encoded = delta(|c| c.encoded);
            let encode_cpu_ns: u64 = now.iter().map(|c| c.encode_cpu_ns).sum();
            let per_frame = |ns: u64, frames: u64| ns as f64 / 1e6 / frames.max(1) as f64;
            OutputReport::Webrtc(ServeReport {
                cpu_ms_per_frame: per_frame(cpu_ns, captured.iter().sum()),
                encode_cpu_ms_per_frame: per_frame(encode_cpu_ns, encoded.iter().sum()),
                viewers: self.hub.reports(),
                captured,
                dropped_source: delta(|c| c.dropped_source),
                encoded,
                idle: delta(|c| c.idle),
                final_target_bps: Eye::BOTH.map(|e| self.hub.feedback.target_bps(e)),
                duration_s: (monotonic_ns() - self.t0) as f64 / 1e9,
            })
        })
    }
}
