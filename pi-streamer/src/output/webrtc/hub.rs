//! The registry of browser viewers: WHEP creates and deletes their sessions, the encoder
//! threads hand each its frames (bounded, its own oldest dropped when behind), and each
//! viewer's end leaves its report.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use binoc_net::os_clock::monotonic_ns;
use shared_proto::Eye;

use super::viewer::{self, Viewer, ViewerCounters};
use super::wake::Wake;
use super::whep::{self, CreateError};
use crate::config::StreamerConfig;
use crate::output::{Feedback, FrameQueue};
use crate::pipeline::EncodedFrame;
use crate::report::Report;

/// The report of one viewer's session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewerReport {
    pub viewer: String,
    /// Why the session ended.
    pub ended: String,
    pub report: Report,
    pub webrtc: ViewerCounters,
}

struct Entry {
    frames: FrameQueue,
    /// The viewer's counters (its thread owns the rest of it).
    state: Arc<crate::output::OutputState>,
    wake: Arc<Wake>,
    /// Frames dropped from this viewer's queue (it was behind).
    overflows: Arc<AtomicU64>,
    /// Where its WHEP request came from.
    source: IpAddr,
    /// The token that created the session (empty when none is needed): DELETE needs it.
    owner: String,
}

/// The viewer registry, shared by the HTTPS server, the encoder threads (through the output's
/// `offer`) and the viewer threads.
/// Viewer sessions one address may hold at once: one client cannot take every slot (more from
/// it are refused with 503 while the others stay open).
pub const MAX_VIEWERS_PER_ADDRESS: usize = 2;

/// Ended viewers' reports kept for the end of the session (the oldest go first).
pub const MAX_FINISHED_REPORTS: usize = 256;

pub struct Hub {
    pub feedback: Arc<Feedback>,
    cfg: StreamerConfig,
    deadline_ns: u64,
    viewers: Mutex<BTreeMap<String, Entry>>,
    finished: Mutex<Vec<ViewerReport>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Hub {
    pub fn new(cfg: &StreamerConfig, feedback: Arc<Feedback>) -> Arc<Self> {
        Arc::new(Hub {
            feedback,
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

    /// Hands one encoded frame to every viewer without waiting for any: a viewer that is
    /// behind loses its own oldest queued frame.
    pub fn fan_out(&self, f: &Arc<EncodedFrame>) {
        for e in self.viewers().values() {
            if let Some(old) = e.frames.push(f.clone()) {
                e.overflows.fetch_add(1, Ordering::Relaxed);
                e.state.eye(old.eye).dropped_queue += 1;
            }
            e.wake.wake();
        }
    }

    /// Joins the threads of viewers that have ended: a finished thread keeps its stack until
    /// joined.
    fn reap_threads(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|t| t.is_finished());
        *threads = live;
        drop(threads);
        for t in done {
            let _ = t.join();
        }
    }

    fn finish_viewer(&self, v: Viewer, ended: String) {
        let overflows = self
            .viewers()
            .remove(&v.id)
            .map_or(0, |e| e.overflows.load(Ordering::Relaxed));
        self.feedback.estimate(&v.id, None);
        let mut counters = v.counters.clone();
        counters.queue_overflows = overflows;
        let duration = v
            .state
            .eye(Eye::Left)
            .first_send_ns
            .map_or(0.0, |t| (monotonic_ns() - t) as f64 / 1e9);
        let report = Report::build(&self.feedback.pipeline, &v.state, duration, 0);
        tracing::info!(viewer = %v.id, "viewer left: {ended}");
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        if finished.len() >= MAX_FINISHED_REPORTS {
            // A long run with many short sessions keeps the latest reports, not all of them.
            finished.remove(0);
        }
        finished.push(ViewerReport {
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

    /// Each live viewer's report so far.
    pub fn live(&self) -> Vec<(String, Report)> {
        self.viewers()
            .iter()
            .map(|(id, e)| {
                let r = Report::build(&self.feedback.pipeline, &e.state, 0.0, 0);
                (format!("webrtc {id}"), r)
            })
            .collect()
    }

    pub fn reports(&self) -> Vec<ViewerReport> {
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// WHEP's view of the hub: creating a session spawns its viewer thread.
pub struct HubSessions(pub Arc<Hub>);

impl whep::Sessions for HubSessions {
    fn create(
        &mut self,
        offer: &str,
        local_ip: IpAddr,
        peer_ip: IpAddr,
        owner: &str,
    ) -> Result<(String, String), CreateError> {
        let hub = &self.0;
        if hub.closed.load(Ordering::Relaxed) {
            return Err(CreateError::Internal("the stream has ended".into()));
        }
        let max = hub.cfg.transport.webrtc.max_viewers;
        let (all, mine) = {
            let v = hub.viewers();
            (v.len(), v.values().filter(|e| e.source == peer_ip).count())
        };
        if all >= max as usize {
            return Err(CreateError::Full(max));
        }
        if mine >= MAX_VIEWERS_PER_ADDRESS {
            return Err(CreateError::Full(MAX_VIEWERS_PER_ADDRESS as u32));
        }
        // Start the estimator where the configured bitrate is its target.
        let initial = hub.feedback.initial_estimate();
        let w = &hub.cfg.transport.webrtc;
        let media = viewer::MediaAddr {
            udp_ports: w.udp_ports,
            announce_ip: w.announce_ip,
        };
        // The viewer is told what was wrong in our words; the SDP stack's own error (which can
        // name internals) goes to the log only.
        let (pending, answer) =
            viewer::accept_offer(offer, local_ip, media, initial).map_err(|e| {
                tracing::debug!("offer refused: {e:#}");
                CreateError::BadOffer(e.to_string())
            })?;
        hub.reap_threads();
        let n = hub.next_id.fetch_add(1, Ordering::Relaxed);
        // Unguessable, so that only the viewer that made the session can DELETE it.
        let id = format!(
            "{n}-{:016x}",
            rand_u64().ok_or(CreateError::Internal("no system randomness".into()))?
        );
        let internal = |e: std::io::Error| CreateError::Internal(e.to_string());
        let (queue, rx) = FrameQueue::new(viewer::QUEUE_FRAMES);
        let wake = Arc::new(Wake::new().map_err(internal)?);
        let v = Viewer::new(
            id.clone(),
            pending,
            rx,
            wake.clone(),
            hub.feedback.clone(),
            hub.deadline_ns,
        )
        .map_err(|e| CreateError::Internal(format!("{e:#}")))?;
        hub.viewers().insert(
            id.clone(),
            Entry {
                frames: queue,
                state: v.state.clone(),
                wake,
                overflows: Arc::new(AtomicU64::new(0)),
                source: peer_ip,
                owner: owner.to_string(),
            },
        );
        let h = hub.clone();
        let thread = std::thread::Builder::new()
            .name(format!("viewer-{n}"))
            .spawn(move || {
                binoc_net::sched::short_slice();
                let (v, why) = v.run();
                h.finish_viewer(v, why);
            })
            .map_err(|e| {
                hub.viewers().remove(&id); // no thread: no viewer holding a slot
                internal(e)
            })?;
        hub.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread);
        tracing::info!(viewer = %id, %local_ip, "new viewer");
        Ok((id, answer))
    }

    fn delete(&mut self, id: &str, owner: &str) -> bool {
        // Only with the token that made the session (the id alone is not enough).
        match self.0.viewers().get(id).filter(|e| e.owner == owner) {
            Some(e) => {
                e.wake.cancel();
                true
            }
            None => false,
        }
    }
}

/// 64 bits from the system's RNG (ring); `None` without an entropy source (the session is
/// then refused: a guessable id would let anyone DELETE it).
fn rand_u64() -> Option<u64> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineState;

    /// Registers a viewer with no session behind it; returns its frame queue.
    fn add_viewer(hub: &Hub, id: &str) -> crossbeam_channel::Receiver<Arc<EncodedFrame>> {
        let (queue, rx) = FrameQueue::new(viewer::QUEUE_FRAMES);
        hub.viewers().insert(
            id.into(),
            Entry {
                frames: queue,
                state: Arc::new(crate::output::OutputState::new(&hub.feedback.pipeline)),
                wake: Arc::new(Wake::new().unwrap()),
                overflows: Default::default(),
                source: std::net::IpAddr::from([127, 0, 0, 1]),
                owner: String::new(),
            },
        );
        rx
    }

    fn hub() -> Arc<Hub> {
        let cfg = StreamerConfig::embedded();
        Hub::new(&cfg, Feedback::new(&cfg, PipelineState::new(&cfg)))
    }

    #[test]
    fn a_full_viewer_queue_drops_for_that_viewer_only() {
        let hub = hub();
        let rxs = [add_viewer(&hub, "slow"), add_viewer(&hub, "fast")];
        let frame = |seq| {
            Arc::new(EncodedFrame {
                eye: Eye::Left,
                seq,
                keyframe: false,
                timing: Default::default(),
                data: vec![0; 10],
            })
        };
        for seq in 0..10 {
            hub.fan_out(&frame(seq));
            // The fast viewer keeps up.
            assert_eq!(rxs[1].try_recv().unwrap().seq, seq);
        }
        let v = hub.viewers();
        assert_eq!(v["fast"].overflows.load(Ordering::Relaxed), 0);
        assert_eq!(
            v["slow"].overflows.load(Ordering::Relaxed),
            10 - viewer::QUEUE_FRAMES as u64
        );
        drop(v);
        // The slow viewer's queue holds the newest frames: its oldest were dropped.
        let kept: Vec<u32> = rxs[0].try_iter().map(|f| f.seq).collect();
        assert_eq!(
            kept,
            (10 - viewer::QUEUE_FRAMES as u32..10).collect::<Vec<_>>()
        );
    }
}
