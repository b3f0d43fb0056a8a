//! QUIC transport (quinn): both eyes on one connection, video fragments as unreliable
//! datagrams, control on one reliable bidirectional stream.
//!
//! The sender runs on its own thread so it can pace datagrams with sub-millisecond precision
//! (tokio timers tick in milliseconds) and check every frame's deadline before and while it
//! goes out.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use quest_client::clock::monotonic_ns;
use quest_client::net::{self, ControlReader, ControlWriter};
use shared_proto::clock::{ClockSample, ClockSync, ClockSyncConfig};
use shared_proto::fragment::{fragment_frame, OutgoingFrame};
use shared_proto::wire::{Control, StreamInfo, VERSION};
use shared_proto::Eye;
use tokio::sync::mpsc;

use crate::config::StreamerConfig;
use crate::pipeline::{EncodedFrame, PipelineState};

/// An established session with a headset.
pub struct QuicSession {
    pub conn: quinn::Connection,
    control_tx: mpsc::Sender<Control>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Resolves `HOST:PORT`.
pub async fn resolve(peer: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(peer)
        .await
        .with_context(|| format!("resolving {peer}"))?
        .next()
        .with_context(|| format!("{peer} resolves to no address"))
}

impl QuicSession {
    /// Dials the headset, says hello, and starts clock sync and the control reader.
    pub async fn connect(
        cfg: &StreamerConfig,
        peer: SocketAddr,
        state: Arc<PipelineState>,
    ) -> Result<Self> {
        let endpoint = net::client_endpoint(cfg.transport.peer_fingerprint.clone())?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            endpoint.connect(peer, net::SERVER_NAME)?,
        )
        .await
        .with_context(|| format!("no answer from {peer} within 5 s (is quest-client listening?)"))?
        .with_context(|| format!("connecting to {peer}"))?;
        let (send, recv) = conn.open_bi().await?;
        let mut writer = ControlWriter::new(send);
        let mut reader = ControlReader::new(recv);
        let streams = Eye::BOTH
            .map(|e| {
                let c = cfg.eyes.get(e);
                StreamInfo {
                    eye: e,
                    width: c.size.width as u16,
                    height: c.size.height as u16,
                    fps_milli: (c.fps * 1000.0) as u32,
                }
            })
            .to_vec();
        writer
            .send(&Control::Hello {
                min_version: VERSION,
                max_version: VERSION,
                streams,
            })
            .await?;
        match tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .context("no hello answer within 5 s")??
        {
            Some(Control::HelloAck { version }) => tracing::info!(%peer, version, "connected"),
            Some(Control::Reject { reason }) => bail!("headset refused the session: {reason}"),
            other => bail!("unexpected answer to hello: {other:?}"),
        }

        let (control_tx, mut control_rx) = mpsc::channel::<Control>(256);
        let mut tasks = Vec::new();
        // Writer task: pings, clock estimates, bye.
        tasks.push(tokio::spawn(async move {
            while let Some(m) = control_rx.recv().await {
                let bye = matches!(m, Control::Bye { .. });
                if writer.send(&m).await.is_err() {
                    break;
                }
                if bye {
                    break;
                }
            }
            writer.finish().await;
        }));
        // Ping task: quickly at first (to have an estimate before capture starts), then slowly.
        let ping_tx = control_tx.clone();
        tasks.push(tokio::spawn(async move {
            for id in 0u32.. {
                let gap = if id < 25 { 20 } else { 200 };
                if ping_tx
                    .send(Control::Ping {
                        id,
                        t0: monotonic_ns(),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(gap)).await;
            }
        }));
        // Reader task: pongs → clock sync, markers → latency, keyframe requests → encoder.
        let est_tx = control_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut sync = ClockSync::new(ClockSyncConfig::default());
            loop {
                let msg = match reader.next().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("control stream: {e:#}");
                        break;
                    }
                };
                let now = monotonic_ns();
                match msg {
                    Control::Pong { t0, t1, t2, .. } => {
                        if sync.add(ClockSample {
                            t0,
                            t1,
                            t2,
                            t3: now,
                        }) {
                            if let Some(e) = sync.estimate() {
                                *state.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                let _ = est_tx.try_send(Control::ClockEstimate {
                                    offset_ns: e.offset_ns.round() as i64,
                                    skew_ppb: (e.skew * 1e9).round() as i64,
                                    at_streamer_ns: e.reference_ns,
                                    rtt_ns: e.min_rtt_ns,
                                });
                            }
                        }
                    }
                    Control::Marker(m) => {
                        if let Some(clock) = state.clock() {
                            state.eye(m.eye).on_marker(&m, &clock, now);
                        }
                    }
                    Control::KeyframeRequest { eye, reason } => {
                        tracing::debug!(%eye, ?reason, "keyframe requested");
                        state.idr.request(eye);
                    }
                    Control::Stats { eye, stats } => state.eye(eye).client = Some(stats),
                    Control::Bye { reason } => {
                        tracing::info!("headset said bye: {reason}");
                        break;
                    }
                    other => tracing::debug!(?other, "ignoring unexpected control message"),
                }
            }
        }));
        Ok(QuicSession {
            conn,
            control_tx,
            tasks,
        })
    }

    /// Waits until the clock estimate has settled a little (or the timeout passes).
    pub async fn wait_for_clock(&self, state: &PipelineState, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            // Eight exchanges (160 ms of pings): enough for the lowest-RTT filter to find good
            // ones; the estimate keeps improving while streaming.
            if state.clock().is_some_and(|c| c.samples_seen >= 8) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        state.clock().is_some()
    }

    /// Says goodbye and closes the connection.
    pub async fn close(self, reason: &str) {
        let _ = self
            .control_tx
            .send(Control::Bye {
                reason: reason.into(),
            })
            .await;
        // The writer task finishes the stream after the bye.
        if let Some(w) = self.tasks.first() {
            for _ in 0..50 {
                if w.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        self.conn.close(0u32.into(), b"bye");
    }
}

/// Paces datagrams: a token bucket at `rate` bits/s with a small burst allowance.
pub struct Pacer {
    ns_per_byte: f64,
    burst_ns: f64,
    next_ns: f64,
}

impl Pacer {
    pub fn new(rate_mbps: f64, burst_bytes: usize) -> Self {
        let ns_per_byte = 8e3 / rate_mbps;
        Pacer {
            ns_per_byte,
            burst_ns: burst_bytes as f64 * ns_per_byte,
            next_ns: 0.0,
        }
    }

    /// How long to wait before sending `len` bytes at `now`; charges the bytes.
    pub fn delay(&mut self, now: u64, len: usize) -> u64 {
        let now = now as f64;
        // Unused credit accumulates only up to the burst allowance.
        let start = self.next_ns.max(now - self.burst_ns);
        self.next_ns = start + len as f64 * self.ns_per_byte;
        let ready_at = start;
        (ready_at - now).max(0.0) as u64
    }
}

fn sleep_precise(ns: u64) {
    if ns == 0 {
        return;
    }
    let until = monotonic_ns() + ns;
    if ns > 200_000 {
        std::thread::sleep(Duration::from_nanos(ns - 100_000));
    }
    while monotonic_ns() < until {
        std::thread::yield_now();
    }
}

/// Why the sender stopped.
#[derive(Debug)]
pub enum SenderEnd {
    /// The pipeline ended (source finished).
    Drained,
    /// The connection is gone.
    ConnectionLost(String),
}

/// The sender loop: takes encoded frames, drops those past their deadline, fragments, paces
/// and sends. Runs until the pipeline's channel closes or the connection is lost.
pub fn run_sender(
    cfg: &StreamerConfig,
    conn: quinn::Connection,
    rx: crossbeam_channel::Receiver<EncodedFrame>,
    state: Arc<PipelineState>,
) -> SenderEnd {
    let deadline_ns = (cfg.deadlines.max_latency_ms * 1e6) as u64;
    let mut pacer = Pacer::new(cfg.transport.pacing_mbps, 16 * 1024);
    let mut datagrams: Vec<Vec<u8>> = Vec::with_capacity(256);
    for mut f in rx {
        if state.stop.load(Ordering::Relaxed) {
            return SenderEnd::Drained;
        }
        if let Some(why) = conn.close_reason() {
            return SenderEnd::ConnectionLost(why.to_string());
        }
        let max_datagram = match conn.max_datagram_size() {
            Some(m) => m.min(cfg.transport.max_datagram_bytes as usize),
            None => return SenderEnd::ConnectionLost("peer does not accept datagrams".into()),
        };
        let now = monotonic_ns();
        if now.saturating_sub(f.timing.capture_ns) > deadline_ns {
            state.eye(f.eye).dropped_deadline += 1;
            state.idr.request(f.eye);
            tracing::debug!(eye = %f.eye, seq = f.seq, "frame past its deadline before sending: dropped");
            continue;
        }
        f.timing.send_ns = now;
        datagrams.clear();
        let out = OutgoingFrame {
            eye: f.eye,
            seq: f.seq,
            keyframe: f.keyframe,
            timing: f.timing,
            bitstream: &f.data,
        };
        if let Err(e) = fragment_frame(&out, max_datagram, |d| datagrams.push(d)) {
            tracing::error!(eye = %f.eye, "cannot fragment frame of {} bytes: {e}", f.data.len());
            state.idr.request(f.eye);
            continue;
        }
        state.eye(f.eye).book_sending(f.seq, f.timing);
        let mut abandoned = false;
        for d in datagrams.drain(..) {
            let t = monotonic_ns();
            if t.saturating_sub(f.timing.capture_ns) > deadline_ns {
                abandoned = true;
                break;
            }
            sleep_precise(pacer.delay(t, d.len()));
            // Wait for room in quinn's datagram queue rather than let it drop older datagrams
            // (which may belong to this very frame).
            while conn.datagram_send_buffer_space() < d.len() {
                if let Some(why) = conn.close_reason() {
                    return SenderEnd::ConnectionLost(why.to_string());
                }
                if monotonic_ns().saturating_sub(f.timing.capture_ns) > deadline_ns {
                    abandoned = true;
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            if abandoned {
                break;
            }
            if let Err(e) = conn.send_datagram(Bytes::from(d)) {
                return SenderEnd::ConnectionLost(e.to_string());
            }
        }
        if abandoned {
            // The rest of the frame would arrive too late: the client loses it and the next
            // frame of this eye is an IDR.
            let mut c = state.eye(f.eye);
            c.unbook(f.seq);
            c.dropped_deadline += 1;
            drop(c);
            state.idr.request(f.eye);
            continue;
        }
        state
            .eye(f.eye)
            .record_sent(&f.timing, f.data.len(), monotonic_ns());
    }
    SenderEnd::Drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spreads_bytes_at_the_rate_after_the_burst() {
        // 8 Mbit/s = 1 byte per µs; 1000-byte burst allowance on top of the datagram at hand.
        let mut p = Pacer::new(8.0, 1000);
        let t0 = 1_000_000_000;
        assert_eq!(p.delay(t0, 1000), 0, "the burst goes at once");
        assert_eq!(p.delay(t0, 1000), 0, "...within the allowance");
        assert_eq!(
            p.delay(t0, 1000),
            1_000_000,
            "then one byte per microsecond"
        );
        assert_eq!(p.delay(t0, 1000), 2_000_000);
        // Idle time refills the allowance, but only up to the burst.
        let later = t0 + 1_000_000_000;
        for _ in 0..3 {
            assert_eq!(p.delay(later, 500), 0);
        }
        assert_eq!(p.delay(later, 500), 500_000);
    }
}
