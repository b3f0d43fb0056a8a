//! One streaming session over many outputs: the source and the encoders run once, and every
//! encoded frame is handed to each output ([`Output::offer`], never blocking), so the headset,
//! browsers and whatever comes next consume the same frames, each at its own pace.
//!
//! ```text
//! source ─► pipeline (capture, encode-left, encode-right: each hands its slices over) ─┬─► QUIC output
//!                 ▲ keyframe requests, bitrate (Feedback) ◄── markers ─────────────────┴─► WebRTC output
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
use crate::pipeline::{Deliver, EncodedFrame, Pipeline, PipelineState};
use crate::report::Report;
use crate::source;

/// The pipeline's state and the feedback path every output of one session shares.
pub struct Shared {
    pub pipeline: Arc<PipelineState>,
    pub feedback: Arc<Feedback>,
    /// Where a metrics scrape finds this session while it runs.
    pub live: Arc<Live>,
}

impl Shared {
    pub fn new(cfg: &StreamerConfig) -> Self {
        Self::with_live(cfg, Arc::default())
    }

    /// A session that shows itself in `live` (one `Live` outlives the sessions of a long run).
    pub fn with_live(cfg: &StreamerConfig, live: Arc<Live>) -> Self {
        let pipeline = PipelineState::with_timeline(cfg, live.timeline.clone());
        let feedback = Feedback::new(cfg, pipeline.clone());
        Shared {
            pipeline,
            feedback,
            live,
        }
    }
}

/// What `--metrics` sees: the running session's pipeline and outputs (nothing between
/// sessions).
#[derive(Default)]
pub struct Live {
    running: std::sync::Mutex<Option<LiveSession>>,
    /// `--timeline FILE`, written by every session of the run.
    pub timeline: Option<Arc<crate::timeline::Timeline>>,
}

type LiveSession = (Arc<PipelineState>, Arc<[Box<dyn Output>]>);

impl Live {
    /// A run's live view whose sessions write every decoded frame to `timeline`.
    pub fn with_timeline(timeline: Option<Arc<crate::timeline::Timeline>>) -> Self {
        Live {
            running: Default::default(),
            timeline,
        }
    }

    fn set(&self, s: Option<LiveSession>) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The pipeline's counters and every live receiver's report, labelled (for
    /// [`binoc_net::metrics`]).
    pub fn collect(&self) -> Vec<binoc_net::metrics::Labelled> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((pipeline, outputs)) = running else {
            return vec![(Vec::new(), serde_json::json!({ "session_running": 0 }))];
        };
        let c = pipeline.snapshot();
        let target = |e: usize| pipeline.target_bps[e].load(Ordering::Relaxed);
        let mut out = vec![(
            Vec::new(),
            serde_json::json!({
                "session_running": 1,
                "pipeline": {
                    "left": { "counters": c[0], "target_bps": target(0) },
                    "right": { "counters": c[1], "target_bps": target(1) },
                },
            }),
        )];
        for o in outputs.iter() {
            for (receiver, report) in o.live() {
                let labels = vec![
                    ("output".to_string(), o.name().to_string()),
                    ("receiver".to_string(), receiver),
                ];
                if let Ok(v) = serde_json::to_value(&report) {
                    out.push((labels, serde_json::json!({ "receiver": v })));
                }
            }
        }
        out
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
    shared.live.set(Some((state.clone(), outputs.clone())));
    // However the session ends, a scrape stops seeing it.
    struct Unset<'a>(&'a Live);
    impl Drop for Unset<'_> {
        fn drop(&mut self) {
            self.0.set(None);
        }
    }
    let _unset = Unset(&shared.live);
    if frames.is_none() {
        // A live run idles its encoders while nobody receives; a bounded clip (`--frames`)
        // encodes every frame.
        state.idle_without_receivers();
    }
    let source = source::open(cfg, frames)?;
    let t0 = monotonic_ns();
    // Each encoder thread hands its slices to every output itself; outputs that take whole
    // pictures get them joined from the slices, once per eye.
    let whole_only = outputs.iter().any(|o| !o.takes_slices());
    let deliver = |_eye| -> Deliver {
        let outputs = outputs.clone();
        let mut joiner = crate::output::join::SliceJoiner::default();
        Box::new(move |f: EncodedFrame| {
            let whole = if whole_only {
                joiner.push(&f).map(Arc::new)
            } else {
                None
            };
            let f = Arc::new(f);
            for o in outputs.iter() {
                if o.takes_slices() {
                    o.offer(&f);
                } else if let Some(w) = &whole {
                    o.offer(w);
                }
            }
        })
    };
    let pipeline = Pipeline::start(cfg, source, state.clone(), deliver)?;
    let mut joined = tokio::task::spawn_blocking(move || pipeline.join());
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
    stream_to_with(cfg, &Shared::new(cfg), peer, frames, stop).await
}

/// [`stream_to`] in a given run's state (e.g. one that writes a `--timeline`).
pub async fn stream_to_with(
    cfg: &StreamerConfig,
    shared: &Shared,
    peer: SocketAddr,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Result<SessionOutcome> {
    let quic = QuicOutput::connect(cfg, peer, shared.feedback.clone(), false, None).await?;
    let mut r = run(cfg, shared, vec![Box::new(quic)], frames, stop).await?;
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
