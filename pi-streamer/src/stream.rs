//! One streaming session end to end: dial, sync clocks, run the pipeline into the transport,
//! collect the markers, report.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use quest_client::clock::{monotonic_ns, process_cpu_ns};
use shared_proto::Eye;

use crate::config::StreamerConfig;
use crate::pipeline::{Pipeline, PipelineState};
use crate::report::Report;
use crate::source;
use crate::transport::quic::{run_sender, QuicSession, SenderEnd};

/// How a session ended.
pub struct SessionOutcome {
    pub report: Report,
    /// `Some` if the connection was lost before the source ended.
    pub connection_lost: Option<String>,
}

/// Streams to the headset at `peer` until the source ends (after `frames` pairs, if given)
/// or `stop` is set. The stop flag is checked by the capture thread.
pub async fn stream_to(
    cfg: &StreamerConfig,
    peer: SocketAddr,
    frames: Option<u64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<SessionOutcome> {
    let state = PipelineState::new(cfg);
    let session = QuicSession::connect(cfg, peer, state.clone()).await?;
    if !session.wait_for_clock(&state, Duration::from_secs(2)).await {
        session.close("no clock sync").await;
        bail!("no clock-sync answer from the headset within 2 s");
    }
    let source = source::open(cfg, frames)?;
    let (tx, rx) = crossbeam_channel::bounded(4);
    let cpu0 = process_cpu_ns();
    let t0 = monotonic_ns();
    let pipeline = Pipeline::start(cfg, source, state.clone(), tx)?;
    let (scfg, conn, sstate) = (cfg.clone(), session.conn.clone(), state.clone());
    let mut sender = tokio::task::spawn_blocking(move || run_sender(&scfg, conn, rx, sstate));
    let mut last_log = monotonic_ns();
    let mut last_decoded = [0u64; 2];
    let end = loop {
        tokio::select! {
            r = &mut sender => break r?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if stop.load(Ordering::Relaxed) {
                    state.stop.store(true, Ordering::Relaxed);
                }
                // A one-line status every 5 s for long-running sessions.
                let now = monotonic_ns();
                if now - last_log >= 5_000_000_000 {
                    let secs = (now - last_log) as f64 / 1e9;
                    last_log = now;
                    let line: Vec<String> = Eye::BOTH
                        .iter()
                        .map(|&e| {
                            let c = state.eye(e);
                            let fps = (c.markers - last_decoded[e.index()]) as f64 / secs;
                            last_decoded[e.index()] = c.markers;
                            let l = c.total.summary();
                            format!(
                                "{e}: {fps:.1} fps decoded, capture→decoded p50 {:.1} ms p99 {:.1} ms, undecoded {}",
                                l.p50,
                                l.p99,
                                c.captured.saturating_sub(c.markers)
                            )
                        })
                        .collect();
                    tracing::info!("{}", line.join(" | "));
                }
            }
        }
    };
    state.stop.store(true, Ordering::Relaxed);
    let joined = tokio::task::spawn_blocking(move || pipeline.join()).await?;
    let connection_lost = match end {
        SenderEnd::Drained => None,
        SenderEnd::ConnectionLost(why) => Some(why),
    };
    if connection_lost.is_none() {
        // Wait for the markers of the last frames (until none is missing, or none has come
        // for 300 ms).
        let mut last_count = 0;
        let mut last_progress = monotonic_ns();
        loop {
            let (waiting, got) = Eye::BOTH.iter().fold((0, 0), |(w, g), &e| {
                let c = state.eye(e);
                (w + c.awaiting_markers(), g + c.markers)
            });
            if waiting == 0 {
                break;
            }
            if got != last_count {
                last_count = got;
                last_progress = monotonic_ns();
            } else if monotonic_ns() - last_progress > 300_000_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let cpu = process_cpu_ns() - cpu0;
    let duration = (monotonic_ns() - t0) as f64 / 1e9;
    let report = Report::build(&state, duration, cpu);
    session
        .close(if connection_lost.is_some() {
            "connection lost"
        } else {
            "source ended"
        })
        .await;
    joined?;
    Ok(SessionOutcome {
        report,
        connection_lost,
    })
}
