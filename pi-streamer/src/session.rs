//! One streaming session over many outputs: the source and the encoders run once, and every
//! encoded frame is handed to each output ([`Output::offer`], never blocking), so the headset,
//! browsers and whatever comes next consume the same frames, each at its own pace.
//!
//! ```text
//! source ─► pipeline (capture, encode-left, encode-right) ─► fan-out thread ─┬─► QUIC output
//!                 ▲ keyframe requests, bitrate (Feedback) ◄── markers ───────┴─► WebRTC output
//! ```
//!
//! The outputs are made (connected, listening) before the session starts, so that no frame is
//! captured before someone can receive it; the session ends when the source ends, when `stop`
//! is set, or when every output has ended on its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use binoc_net::os_clock::monotonic_ns;

use crate::config::StreamerConfig;
use crate::output::quic::QuicOutput;
use crate::output::webrtc::{ServeReport, WebrtcOutput};
use crate::output::{Feedback, Output, OutputReport};
use crate::pipeline::{EncodedFrame, Pipeline, PipelineState};
use crate::report::Report;
use crate::source;

/// The pipeline's state and the feedback path every output of one session shares.
pub struct Shared {
    pub pipeline: Arc<PipelineState>,
    pub feedback: Arc<Feedback>,
}

impl Shared {
    pub fn new(cfg: &StreamerConfig) -> Self {
        let pipeline = PipelineState::new(cfg);
        let feedback = Feedback::new(cfg, pipeline.clone());
        Shared { pipeline, feedback }
    }
}

/// Every output's report, in the order the outputs were given.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionReport {
    pub outputs: Vec<OutputReport>,
    pub duration_s: f64,
}

impl SessionReport {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        for r in &self.outputs {
            if self.outputs.len() > 1 {
                o += &format!(
                    "\n==== output: {}\n",
                    match r {
                        OutputReport::Quic(q) => format!("headset {}", q.peer),
                        OutputReport::Webrtc(_) => "browsers (WebRTC)".into(),
                    }
                );
            }
            o += &r.to_text();
        }
        o
    }
}

/// Runs the source and the encoders into `outputs` until the source ends (after `frames`
/// pairs, if given), `stop` is set, or every output has ended.
pub async fn run(
    cfg: &StreamerConfig,
    shared: &Shared,
    outputs: Vec<Box<dyn Output>>,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Result<SessionReport> {
    if outputs.is_empty() {
        bail!("a session needs at least one output");
    }
    let outputs: Arc<[Box<dyn Output>]> = outputs.into();
    let state = shared.pipeline.clone();
    let source = source::open(cfg, frames)?;
    let (tx, rx) = crossbeam_channel::bounded::<EncodedFrame>(4);
    let t0 = monotonic_ns();
    let pipeline = Pipeline::start(cfg, source, state.clone(), tx)?;
    let fan_outputs = outputs.clone();
    let fan_out = std::thread::Builder::new()
        .name("fan-out".into())
        .spawn(move || {
            for f in rx {
                let f = Arc::new(f);
                for o in fan_outputs.iter() {
                    o.offer(&f);
                }
            }
        })?;
    let mut joined = tokio::task::spawn_blocking(move || {
        let r = pipeline.join();
        let _ = fan_out.join();
        r
    });
    let mut last_log = monotonic_ns();
    let joined = loop {
        tokio::select! {
            r = &mut joined => break r?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if stop.load(Ordering::Relaxed) {
                    state.stop.store(true, Ordering::Relaxed);
                }
                let ended: Vec<String> = outputs.iter().filter_map(|o| o.ended()).collect();
                if ended.len() == outputs.len() {
                    tracing::info!("every output ended ({}): stopping", ended.join("; "));
                    state.stop.store(true, Ordering::Relaxed);
                }
                // A one-line status every 5 s for long-running sessions.
                let now = monotonic_ns();
                if now - last_log >= 5_000_000_000 {
                    last_log = now;
                    let c = state.snapshot();
                    let outs: Vec<String> = outputs.iter().map(|o| o.status()).collect();
                    tracing::info!(
                        "encoded {} + {} frames; {}",
                        c[0].encoded,
                        c[1].encoded,
                        outs.join("; ")
                    );
                }
            }
        }
    };
    let mut reports = Vec::new();
    for o in outputs.iter() {
        reports.push(o.finish().await);
    }
    joined?;
    Ok(SessionReport {
        outputs: reports,
        duration_s: (monotonic_ns() - t0) as f64 / 1e9,
    })
}

/// How a headset session ended.
pub struct SessionOutcome {
    pub report: Report,
    /// `Some` if the connection was lost before the source ended.
    pub connection_lost: Option<String>,
}

/// Streams to the headset at `peer` alone (no reconnect) until the source ends (after
/// `frames` pairs, if given) or `stop` is set: the self-tests' and benchmarks' session.
pub async fn stream_to(
    cfg: &StreamerConfig,
    peer: SocketAddr,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Result<SessionOutcome> {
    let shared = Shared::new(cfg);
    let quic = QuicOutput::connect(cfg, peer, shared.feedback.clone(), false, None).await?;
    let mut r = run(cfg, &shared, vec![Box::new(quic)], frames, stop).await?;
    match r.outputs.pop() {
        Some(OutputReport::Quic(mut q)) => Ok(SessionOutcome {
            report: q
                .connections
                .pop()
                .ok_or_else(|| anyhow::anyhow!("the headset output made no report"))?,
            connection_lost: q.connection_lost,
        }),
        _ => bail!("the headset output made no report"),
    }
}

/// Serves browsers alone until the source ends (after `frames` pairs, if given) or `stop` is
/// set. `on_listen` gets the bound address once the server accepts connections.
pub async fn serve(
    cfg: &StreamerConfig,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<ServeReport> {
    let shared = Shared::new(cfg);
    let webrtc = WebrtcOutput::start(cfg, shared.feedback.clone()).await?;
    on_listen(webrtc.local_addr());
    let mut r = run(cfg, &shared, vec![Box::new(webrtc)], frames, stop).await?;
    match r.outputs.pop() {
        Some(OutputReport::Webrtc(w)) => Ok(w),
        _ => bail!("the WebRTC output made no report"),
    }
}
