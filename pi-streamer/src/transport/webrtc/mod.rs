//! WebRTC transport for browsers and WebXR: `pi-streamer --transport webrtc --listen ADDR`.
//!
//! ```text
//! pipeline ──► fan-out thread ──► one bounded queue per viewer ──► viewer task (str0m + UDP)
//!   (the same encoded frames as QUIC: no re-encode)        ▲                 │
//!                                                          │   PLI/FIR → IDR, TWCC estimate → bitrate
//! HTTPS (hyper + rustls) ── WHEP POST/DELETE ── Hub ───────┘ ◄───────────────┘
//! ```
//!
//! * [`whep`]: the WHEP requests (sans-IO), [`https`]: the TLS/HTTP server, [`viewer`]: one
//!   peer connection.
//! * One viewer that falls behind loses frames from its own queue (and then waits for an IDR);
//!   the fan-out never blocks, so the others are not slowed.
//! * The encoders are shared: their bitrate follows the lowest bandwidth estimate among the
//!   viewers (both eyes share it), within `transport.webrtc.min_bitrate_mbps` and the eyes'
//!   `bitrate_mbps`. A viewer whose link is below the floor does not count: it loses frames
//!   from its own send budget ([`viewer::Budget`]) rather than dragging every viewer's
//!   picture down to the floor.

pub mod https;
pub mod viewer;
pub mod wake;
pub mod whep;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use quest_client::clock::{monotonic_ns, process_cpu_ns};
use shared_proto::Eye;

use crate::config::StreamerConfig;
use crate::pipeline::{EncodedFrame, Pipeline, PipelineState};
use crate::report::Report;
use crate::source;
use viewer::{Viewer, ViewerCounters};
use whep::CreateError;

/// The report of one viewer's session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewerReport {
    pub viewer: String,
    /// Why the session ended.
    pub ended: String,
    pub report: Report,
    pub webrtc: ViewerCounters,
}

/// The end of a `serve` run: every viewer's report, and the encoder side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServeReport {
    pub viewers: Vec<ViewerReport>,
    /// Frames captured per eye, and raw frames the encoder had no time for.
    pub captured: [u64; 2],
    pub dropped_source: [u64; 2],
    /// Process CPU time per captured frame (both eyes count; the viewers' sessions included),
    /// and the encoder threads' CPU time per encoded frame. The viewers' own reports have no
    /// CPU figures: the process and the encoders are shared.
    pub cpu_ms_per_frame: f64,
    pub encode_cpu_ms_per_frame: f64,
    /// Encoder bitrate per eye at the end (bit/s; 0 = as configured: no viewer had an estimate).
    pub final_target_bps: [u32; 2],
    pub duration_s: f64,
}

struct Entry {
    frames: crossbeam_channel::Sender<Arc<EncodedFrame>>,
    wake: Arc<wake::Wake>,
    estimate_bps: Option<u64>,
    overflows: Arc<AtomicU64>,
}

/// The viewer registry, shared by the HTTPS server, the fan-out thread and the viewer tasks.
pub struct Hub {
    pub pipeline: Arc<PipelineState>,
    cfg: StreamerConfig,
    deadline_ns: u64,
    viewers: Mutex<BTreeMap<String, Entry>>,
    finished: Mutex<Vec<ViewerReport>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Hub {
    pub fn new(cfg: &StreamerConfig, pipeline: Arc<PipelineState>) -> Arc<Self> {
        Arc::new(Hub {
            pipeline,
            cfg: cfg.clone(),
            deadline_ns: (cfg.deadlines.max_latency_ms * 1e6) as u64,
            viewers: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        })
    }

    fn viewers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.viewers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers().len()
    }

    /// Hands one encoded frame to every viewer without waiting for any.
    pub fn fan_out(&self, f: EncodedFrame) {
        let f = Arc::new(f);
        for e in self.viewers().values() {
            match e.frames.try_send(f.clone()) {
                Ok(()) => e.wake.wake(),
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    e.overflows.fetch_add(1, Ordering::Relaxed);
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Records a viewer's bandwidth estimate and sets the encoders' bitrate from the lowest.
    fn set_estimate(&self, id: &str, bps: Option<u64>) {
        let mut v = self.viewers();
        if let Some(e) = v.get_mut(id) {
            e.estimate_bps = bps;
        }
        let estimates: Vec<u64> = v.values().filter_map(|e| e.estimate_bps).collect();
        drop(v);
        for eye in Eye::BOTH {
            let target = self.target_for(eye, &estimates);
            self.pipeline.target_bps[eye.index()].store(target, Ordering::Relaxed);
        }
    }

    /// One eye's bitrate: the lowest viewer decides, except viewers whose link is below the
    /// floor (they lose frames from their own budget instead of dragging every viewer's
    /// picture down to it). No estimate yet: 0, the configured bitrate.
    fn target_for(&self, eye: Eye, estimates: &[u64]) -> u32 {
        let floor = self.eye_target(eye, 0);
        let targets = estimates.iter().map(|&e| self.eye_target(eye, e));
        let above: Option<u32> = targets.clone().filter(|&t| t > floor).min();
        match above {
            Some(t) => t,
            None if estimates.is_empty() => 0,
            None => floor,
        }
    }

    /// The bitrate for one eye given a link estimate shared by both eyes: 85 % of the estimate
    /// (headroom for retransmissions, RTP overhead and the estimate's own error), split in two,
    /// within the configured bounds.
    fn eye_target(&self, eye: Eye, estimate_bps: u64) -> u32 {
        let max = self.cfg.eyes.get(eye).bitrate_mbps * 1e6;
        let min = (self.cfg.transport.webrtc.min_bitrate_mbps * 1e6).min(max);
        (estimate_bps as f64 * 0.85 / 2.0).clamp(min, max) as u32
    }

    fn finish_viewer(&self, v: Viewer, ended: String) {
        let overflows = self
            .viewers()
            .remove(&v.id)
            .map_or(0, |e| e.overflows.load(Ordering::Relaxed));
        self.set_estimate(&v.id, None);
        let mut counters = v.counters.clone();
        counters.queue_overflows = overflows;
        let duration = v
            .state
            .eye(Eye::Left)
            .first_send_ns
            .map_or(0.0, |t| (monotonic_ns() - t) as f64 / 1e9);
        let report = Report::build(&v.state, duration, 0);
        tracing::info!(viewer = %v.id, "viewer left: {ended}");
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ViewerReport {
                viewer: v.id.clone(),
                ended,
                report,
                webrtc: counters,
            });
    }

    /// Ends every session (the stream is over) and waits for their reports.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for e in self.viewers().values() {
            e.wake.cancel();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    fn reports(&self) -> Vec<ViewerReport> {
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// WHEP's view of the hub: creating a session spawns its viewer task.
pub struct HubSessions(pub Arc<Hub>);

impl whep::Sessions for HubSessions {
    fn create(&mut self, offer: &str, local_ip: IpAddr) -> Result<(String, String), CreateError> {
        let hub = &self.0;
        if hub.closed.load(Ordering::Relaxed) {
            return Err(CreateError::Internal("the stream has ended".into()));
        }
        let max = hub.cfg.transport.webrtc.max_viewers;
        if hub.viewer_count() >= max as usize {
            return Err(CreateError::Full(max));
        }
        // Start the estimator where the configured bitrate is its target (see `eye_target`).
        let initial = (Eye::BOTH
            .iter()
            .map(|&e| hub.cfg.eyes.get(e).bitrate_mbps * 1e6)
            .sum::<f64>()
            / 0.85) as u64;
        let (pending, answer) = viewer::accept_offer(offer, local_ip, initial)
            .map_err(|e| CreateError::BadOffer(format!("{e:#}")))?;
        let n = hub.next_id.fetch_add(1, Ordering::Relaxed);
        // Unguessable, so that only the viewer that made the session can DELETE it.
        let id = format!("{n}-{:016x}", rand_u64());
        let internal = |e: std::io::Error| CreateError::Internal(e.to_string());
        let (tx, rx) = crossbeam_channel::bounded(viewer::QUEUE_FRAMES);
        let wake = Arc::new(wake::Wake::new().map_err(internal)?);
        let state = PipelineState::new(&hub.cfg);
        let v = Viewer::new(id.clone(), pending, rx, wake.clone(), hub.clone(), state)
            .map_err(|e| CreateError::Internal(format!("{e:#}")))?;
        hub.viewers().insert(
            id.clone(),
            Entry {
                frames: tx,
                wake,
                estimate_bps: None,
                overflows: Arc::new(AtomicU64::new(0)),
            },
        );
        let h = hub.clone();
        let thread = std::thread::Builder::new()
            .name(format!("viewer-{n}"))
            .spawn(move || {
                let (v, why) = v.run();
                h.finish_viewer(v, why);
            })
            .map_err(internal)?;
        hub.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread);
        tracing::info!(viewer = %id, %local_ip, "new viewer");
        Ok((id, answer))
    }

    fn delete(&mut self, id: &str) -> bool {
        match self.0.viewers().get(id) {
            Some(e) => {
                e.wake.cancel();
                true
            }
            None => false,
        }
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // ring's system RNG; on failure (no entropy source) fall back to the clock.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return monotonic_ns().rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
    }
    u64::from_le_bytes(b)
}

/// Serves browsers until the source ends (after `frames` pairs, if given) or `stop` is set.
/// `on_listen` gets the bound address once the server accepts connections.
pub async fn serve(
    cfg: &StreamerConfig,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> Result<ServeReport> {
    let state = PipelineState::new(cfg);
    let hub = Hub::new(cfg, state.clone());
    let server = https::Server::bind(&cfg.transport.webrtc, hub.clone()).await?;
    on_listen(server.local_addr()?);
    let server_task = tokio::spawn(server.run());

    let source = source::open(cfg, frames)?;
    let (tx, rx) = crossbeam_channel::bounded::<EncodedFrame>(4);
    let t0 = monotonic_ns();
    let cpu0 = process_cpu_ns();
    let pipeline = Pipeline::start(cfg, source, state.clone(), tx)?;
    let fan_hub = hub.clone();
    let fan_out = std::thread::Builder::new()
        .name("fan-out".into())
        .spawn(move || {
            for f in rx {
                fan_hub.fan_out(f);
            }
        })?;
    let stopper = {
        let (stop, state) = (stop.clone(), state.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            state.stop.store(true, Ordering::Relaxed);
        })
    };
    let joined = tokio::task::spawn_blocking(move || {
        let r = pipeline.join();
        let _ = fan_out.join();
        r
    })
    .await?;
    stopper.abort();
    // Let the last frames reach the viewers and their markers come back.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hub.close().await;
    server_task.abort();
    joined?;
    let cpu_ns = process_cpu_ns() - cpu0;
    let (captured, encoded, encode_cpu_ns) = Eye::BOTH.iter().fold((0, 0, 0), |(c, e, n), &eye| {
        let x = state.eye(eye);
        (c + x.captured, e + x.encoded, n + x.encode_cpu_ns)
    });
    let per_frame = |ns: u64, frames: u64| ns as f64 / 1e6 / frames.max(1) as f64;
    Ok(ServeReport {
        cpu_ms_per_frame: per_frame(cpu_ns, captured),
        encode_cpu_ms_per_frame: per_frame(encode_cpu_ns, encoded),
        viewers: hub.reports(),
        captured: Eye::BOTH.map(|e| state.eye(e).captured),
        dropped_source: Eye::BOTH.map(|e| state.eye(e).dropped_source),
        final_target_bps: Eye::BOTH.map(|e| state.target_bps[e.index()].load(Ordering::Relaxed)),
        duration_s: (monotonic_ns() - t0) as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers a viewer with no session behind it; returns its frame queue.
    fn add_viewer(hub: &Hub, id: &str) -> crossbeam_channel::Receiver<Arc<EncodedFrame>> {
        let (tx, rx) = crossbeam_channel::bounded(viewer::QUEUE_FRAMES);
        hub.viewers().insert(
            id.into(),
            Entry {
                frames: tx,
                wake: Arc::new(wake::Wake::new().unwrap()),
                estimate_bps: None,
                overflows: Default::default(),
            },
        );
        rx
    }

    #[test]
    fn bitrate_follows_the_lowest_estimate_within_bounds() {
        let cfg = StreamerConfig::embedded(); // 8 Mbit/s per eye, floor 1
        let hub = Hub::new(&cfg, PipelineState::new(&cfg));
        let _queues = [add_viewer(&hub, "a"), add_viewer(&hub, "b")];
        let target = |h: &Hub| h.pipeline.target_bps[0].load(Ordering::Relaxed);
        assert_eq!(target(&hub), 0, "no estimate: as configured");
        hub.set_estimate("a", Some(10_000_000));
        assert_eq!(
            target(&hub),
            4_250_000,
            "85 % of the link, split between the eyes"
        );
        hub.set_estimate("b", Some(100_000_000));
        assert_eq!(target(&hub), 4_250_000, "the lowest viewer decides");
        hub.set_estimate("a", Some(1_000_000));
        assert_eq!(
            target(&hub),
            8_000_000,
            "a viewer below the floor does not decide (it loses frames instead)"
        );
        hub.set_estimate("b", Some(500_000));
        assert_eq!(
            target(&hub),
            1_000_000,
            "everyone below the floor: the floor"
        );
        hub.set_estimate("b", Some(100_000_000));
        hub.set_estimate("a", None);
        assert_eq!(target(&hub), 8_000_000, "never above the eye's bitrate");
    }

    #[test]
    fn a_full_viewer_queue_drops_for_that_viewer_only() {
        let cfg = StreamerConfig::embedded();
        let hub = Hub::new(&cfg, PipelineState::new(&cfg));
        let rxs = [add_viewer(&hub, "slow"), add_viewer(&hub, "fast")];
        let frame = |seq| EncodedFrame {
            eye: Eye::Left,
            seq,
            keyframe: false,
            timing: Default::default(),
            data: vec![0; 10],
        };
        for seq in 0..10 {
            hub.fan_out(frame(seq));
            // The fast viewer keeps up.
            assert_eq!(rxs[1].try_recv().unwrap().seq, seq);
        }
        let v = hub.viewers();
        assert_eq!(v["fast"].overflows.load(Ordering::Relaxed), 0);
        assert_eq!(
            v["slow"].overflows.load(Ordering::Relaxed),
            10 - viewer::QUEUE_FRAMES as u64
        );
    }
}
