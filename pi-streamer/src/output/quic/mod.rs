//! The headset over QUIC (quinn): both eyes on one connection, video fragments as unreliable
//! datagrams, control on one reliable bidirectional stream.
//!
//! [`QuicOutput`] owns one connection at a time: the handshake and the control tasks
//! ([`Connection`]), and the sender thread ([`sender`]). When the headset goes away it reports
//! that connection and, if asked to, dials again every second while the rest of the session
//! (the pipeline, other outputs) goes on; the new connection starts with a keyframe.

mod link;
pub mod pairing;
pub mod sender;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use binoc_net::os_clock::{machine_cpu, monotonic_ns, process_cpu_ns, MachineCpu};
use binoc_net::HeadsetTrust;
use binoc_net::{ControlReader, ControlWriter};
use bytes::Bytes;
use shared_proto::clock::{ClockSync, ClockSyncConfig};
use shared_proto::rules::fec::FecPolicy;
use shared_proto::rules::handshake;
use shared_proto::rules::ledger::FrameKey;
use shared_proto::rules::ping::PingSchedule;
use shared_proto::rules::retransmit::SentFrames;
use shared_proto::wire::{mark_retransmitted, ToHeadset, ToStreamer};
use shared_proto::Eye;
use tokio::sync::mpsc;

use crate::config::StreamerConfig;
use crate::output::{Feedback, FrameQueue, Output, OutputReport, OutputState};
use crate::pipeline::EncodedFrame;
use crate::report::Report;
use link::LinkFeed;
use sender::SenderEnd;

/// Pictures waiting for the sender (both eyes; in slices, this many times the slices per
/// picture); more means the link is behind, and the oldest is dropped.
const QUEUE_FRAMES: usize = 4;

/// How long one redial attempt waits for the headset, and the least time between attempts.
const REDIAL_ATTEMPT: Duration = Duration::from_millis(1000);
const REDIAL_MIN: Duration = Duration::from_millis(100);

/// Resolves `HOST:PORT`.
pub async fn resolve(peer: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(peer)
        .await
        .with_context(|| format!("resolving {peer}"))?
        .next()
        .with_context(|| format!("{peer} resolves to no address"))
}

/// An established connection to a headset: handshake done, clock sync and the control
/// reader running, markers going into `state`.
pub struct Connection {
    pub conn: quinn::Connection,
    pub state: Arc<OutputState>,
    /// The last frames' data fragments, for selective retransmission.
    pub sent: Arc<Mutex<SentFrames<Bytes>>>,
    control_tx: mpsc::Sender<ToHeadset>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held once frames go to this headset ([`Connection::go_live`]): the encoders work for
    /// it from then on.
    receiver: Option<crate::pipeline::Receiver>,
}

impl Connection {
    /// Dials the headset, says hello, starts clock sync and the control reader, and waits
    /// (≤ 2 s) for a first clock estimate.
    pub async fn open(
        cfg: &StreamerConfig,
        peer: SocketAddr,
        feedback: Arc<Feedback>,
    ) -> Result<Self> {
        Self::open_within(cfg, peer, feedback, Duration::from_secs(5)).await
    }

    /// [`Connection::open`], giving up if the headset has not answered within `answer`.
    pub async fn open_within(
        cfg: &StreamerConfig,
        peer: SocketAddr,
        feedback: Arc<Feedback>,
        answer: Duration,
    ) -> Result<Self> {
        let trust = pairing::headset_trust(cfg)?;
        let me = pairing::identity(cfg.state_dir.as_deref())?;
        let endpoint =
            binoc_net::client_endpoint(trust.clone(), Some(&me), cfg.transport.congestion)?;
        let conn = tokio::time::timeout(answer, endpoint.connect(peer, binoc_net::SERVER_NAME)?)
            .await
            .with_context(|| {
                format!(
                    "no answer from {peer} within {:.1} s (is quest-client listening?)",
                    answer.as_secs_f64()
                )
            })?
            .with_context(|| format!("connecting to {peer}"))?;
        let mut streams = handshake::streams(Eye::BOTH.map(|e| {
            let c = cfg.eyes.get(e);
            handshake::Offer {
                width: c.size.width as u16,
                height: c.size.height as u16,
                fps: c.fps,
                pixel_code: c.pixel_code(),
            }
        }));
        streams.retain(|s| cfg.streams_eye(s.eye));
        let hello = async {
            let (send, recv) = conn.open_bi().await?;
            let mut writer = ControlWriter::<ToHeadset>::new(send);
            let mut reader = ControlReader::<ToStreamer>::new(recv);
            writer.send(&handshake::hello(streams)).await?;
            let answer = tokio::time::timeout(Duration::from_secs(5), reader.next())
                .await
                .context("no hello answer within 5 s")??
                .context("the headset closed the control stream")?;
            anyhow::Ok((writer, reader, answer))
        }
        .await;
        // A headset that does not admit this streamer closes the connection with a reason
        // (before any video byte).
        if let Some((why, fatal)) = pairing::refusal(&conn) {
            if fatal {
                return Err(pairing::NotPaired(format!("{why}; {}", pairing::HOW_TO_PAIR)).into());
            }
            bail!("{why}");
        }
        let (mut writer, mut reader, answer) = hello?;
        if matches!(trust, HeadsetTrust::Any) {
            tracing::warn!(
                fingerprint = binoc_net::peer_fingerprint(&conn).unwrap_or_default(),
                "pairing off (--unpaired): sending to a headset whose certificate is not checked"
            );
        }
        let version = handshake::on_answer(answer).map_err(anyhow::Error::msg)?;
        tracing::info!(%peer, version, "connected");

        let state = Arc::new(OutputState::new(&feedback.pipeline));
        for eye in Eye::BOTH {
            state.eye(eye).fec = FecPolicy::new(cfg.transport.fec);
        }
        let (control_tx, mut control_rx) = mpsc::channel::<ToHeadset>(256);
        let pings = Arc::new(Mutex::new(PingSchedule::new()));
        let mut tasks = Vec::new();
        // Writer task: pings, clock estimates, link status, bye.
        tasks.push(tokio::spawn(async move {
            while let Some(m) = control_rx.recv().await {
                let bye = matches!(m, ToHeadset::Bye { .. });
                if writer.send(&m).await.is_err() || bye {
                    break;
                }
            }
            writer.finish().await;
        }));
        // Ping task: as the schedule says (quickly at first, for an estimate before capture).
        let (ping_tx, ping_schedule) = (control_tx.clone(), pings.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let now = monotonic_ns();
                let (due, next) = {
                    let mut s = ping_schedule.lock().unwrap_or_else(|p| p.into_inner());
                    (s.poll(now), s.next_at().unwrap_or(now))
                };
                if let Some((id, t0)) = due {
                    if ping_tx.send(ToHeadset::Ping { id, t0 }).await.is_err() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_nanos(next.saturating_sub(monotonic_ns()))).await;
            }
        }));
        // Reader task: pongs → clock sync, markers → latency and the link estimate, keyframe
        // requests → encoder.
        let (est_tx, reader_state) = (control_tx.clone(), state.clone());
        let mut link = LinkFeed::new(peer, &state, feedback.clone());
        let sent = Arc::new(Mutex::new(SentFrames::default()));
        let (resend_conn, resend_from) = (conn.clone(), sent.clone());
        let deadline_ns = (cfg.deadlines.max_latency_ms * 1e6) as u64;
        tasks.push(tokio::spawn(async move {
            let state = reader_state;
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
                    ToStreamer::Pong { id, t0, t1, t2 } => {
                        let sample = shared_proto::clock::ClockSample {
                            t0,
                            t1,
                            t2,
                            t3: now,
                        };
                        let sample = pings
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .on_pong(id, sample);
                        match sample {
                            Some(s) if sync.add(s) => {
                                if let Some(e) = sync.estimate() {
                                    state.set_clock(Some(e));
                                    let _ = est_tx.try_send(ToHeadset::ClockEstimate(e.announce()));
                                }
                            }
                            Some(_) => {}
                            None => tracing::debug!(id, "pong for no ping sent: ignored"),
                        }
                    }
                    ToStreamer::Marker(m) => {
                        if let Some(clock) = state.clock() {
                            let timing = state.eye(m.eye).on_marker(
                                FrameKey::Seq(m.seq),
                                Some(m.frame_no),
                                &m,
                                &clock,
                                now,
                            );
                            if let Some(t) = timing {
                                link.on_frame(now, &state, &t, &m);
                            }
                        }
                    }
                    ToStreamer::KeyframeRequest { eye, reason } => {
                        tracing::debug!(%eye, ?reason, "keyframe requested");
                        feedback.request_keyframe(eye);
                    }
                    ToStreamer::Stats { eye, stats } => {
                        state.rtt_ns.store(
                            resend_conn.rtt().as_nanos().min(u64::MAX as u128) as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        let congested = link.on_stats(now, eye, &stats, &state);
                        state.eye(eye).on_client_stats(stats, congested);
                        if let Some(s) = link.status(now, &state) {
                            let _ = est_tx.try_send(ToHeadset::LinkStatus(s));
                        }
                    }
                    ToStreamer::Nack { eye, seq, missing } => {
                        let rtt = resend_conn.rtt().as_nanos() as u64;
                        let again: Result<Vec<Bytes>, _> = resend_from
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .resend(eye, seq, &missing, now, rtt, deadline_ns);
                        let mut c = state.eye(eye);
                        c.nacks += 1;
                        match again {
                            Ok(datagrams) => {
                                for d in datagrams {
                                    // Marked, so that the headset's loss count (which
                                    // sizes the parity) still sees the link's loss.
                                    let d = Bytes::from(mark_retransmitted(&d));
                                    if resend_conn.send_datagram(d).is_ok() {
                                        c.resent += 1;
                                    }
                                }
                            }
                            Err(why) => {
                                c.nacks_refused += 1;
                                tracing::debug!(%eye, seq, ?why, "fragments asked for again: not sent");
                            }
                        }
                    }
                    ToStreamer::Bye { reason } => {
                        tracing::info!("headset said bye: {reason}");
                        break;
                    }
                    ToStreamer::HelloAck { .. } | ToStreamer::Reject { .. } => {
                        tracing::warn!("handshake answer in the middle of a session: ignored");
                    }
                }
            }
        }));
        let c = Connection {
            conn,
            state,
            sent,
            control_tx,
            tasks,
            receiver: None,
        };
        if !c.wait_for_clock(Duration::from_secs(2)).await {
            c.close("no clock sync").await;
            anyhow::bail!("no clock-sync answer from the headset within 2 s");
        }
        Ok(c)
    }

    /// Frames go to this headset from now on: its report counts the captures from here (not
    /// those of its handshake and clock sync), and idle encoders start for it, with an IDR.
    pub fn go_live(&mut self, pipeline: &Arc<crate::pipeline::PipelineState>) {
        self.state.start_counting(pipeline);
        self.receiver = Some(pipeline.receiver());
    }

    /// Waits until the clock estimate has settled a little (or the timeout passes).
    async fn wait_for_clock(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            // Eight exchanges (160 ms of pings): enough for the lowest-RTT filter to find good
            // ones; the estimate keeps improving while streaming.
            if self.state.clock().is_some_and(|c| c.samples_seen >= 8) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state.clock().is_some()
    }

    /// Says goodbye and closes the connection.
    pub async fn close(self, reason: &str) {
        let _ = self
            .control_tx
            .send(ToHeadset::Bye {
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

/// The headset output's report: one [`Report`] per connection, in order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuicReport {
    pub peer: String,
    pub connections: Vec<Report>,
    /// Why the last connection ended early (lost before the stream ended), if it did.
    pub connection_lost: Option<String>,
}

impl QuicReport {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        for (i, r) in self.connections.iter().enumerate() {
            if self.connections.len() > 1 {
                o += &format!("\n== headset {} connection {}\n", self.peer, i + 1);
            }
            o += &r.to_text();
        }
        o
    }
}

/// A connection's report is handed here when it is lost while the session goes on.
pub type OnConnectionReport = Box<dyn Fn(&Report) + Send + Sync>;

struct Live {
    connection: Connection,
    t0: u64,
    cpu0: u64,
    machine0: Option<MachineCpu>,
}

struct Inner {
    cfg: StreamerConfig,
    peer: SocketAddr,
    feedback: Arc<Feedback>,
    runtime: tokio::runtime::Handle,
    reconnect: bool,
    closing: AtomicBool,
    /// The live connection's counters; `None` while no connection is up (frames are then not
    /// queued).
    current: Mutex<Option<Arc<OutputState>>>,
    ended: Mutex<Option<String>>,
    reports: Mutex<Vec<Report>>,
    on_report: Option<OnConnectionReport>,
}

/// The headset output.
pub struct QuicOutput {
    name: String,
    inner: Arc<Inner>,
    queue: FrameQueue,
    sender: Mutex<Option<std::thread::JoinHandle<Option<String>>>>,
}

impl QuicOutput {
    /// Connects to the headset at `peer` (an error if it does not answer: the caller decides
    /// whether to retry). With `reconnect`, a lost headset is dialled again every second while
    /// the session goes on, each lost connection's report handed to `on_report`.
    pub async fn connect(
        cfg: &StreamerConfig,
        peer: SocketAddr,
        feedback: Arc<Feedback>,
        reconnect: bool,
        on_report: Option<OnConnectionReport>,
    ) -> Result<Self> {
        let mut connection = Connection::open(cfg, peer, feedback.clone()).await?;
        connection.go_live(&feedback.pipeline);
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            peer,
            feedback,
            runtime: tokio::runtime::Handle::current(),
            reconnect,
            closing: AtomicBool::new(false),
            current: Mutex::new(Some(connection.state.clone())),
            ended: Mutex::new(None),
            reports: Mutex::new(Vec::new()),
            on_report,
        });
        let (queue, rx) = FrameQueue::new(QUEUE_FRAMES * usize::from(cfg.encoder.slices.max(1)));
        let first = Live {
            connection,
            t0: monotonic_ns(),
            cpu0: process_cpu_ns(),
            machine0: machine_cpu(),
        };
        let thread_inner = inner.clone();
        let sender = std::thread::Builder::new()
            .name("sender".into())
            .spawn(move || {
                binoc_net::sched::short_slice();
                thread_inner.send_loop(first, rx)
            })?;
        Ok(QuicOutput {
            name: format!("quic {peer}"),
            inner,
            queue,
            sender: Mutex::new(Some(sender)),
        })
    }
}

impl Inner {
    /// The live connection's counters, if one is up. The lock is held only for the copy: the
    /// encoder threads take it for every slice they offer, so a status line or a metrics
    /// scrape must not hold it while it builds its report.
    fn current(&self) -> Option<Arc<OutputState>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sender thread: sends on the live connection; when it is lost, reports it and (with
    /// `reconnect`) dials again. Returns why the output ended early, if it did.
    fn send_loop(
        self: Arc<Self>,
        mut live: Live,
        rx: crossbeam_channel::Receiver<Arc<EncodedFrame>>,
    ) -> Option<String> {
        loop {
            let end = sender::run(
                &self.cfg,
                &live.connection.conn,
                &rx,
                &self.closing,
                &live.connection.state,
                &self.feedback,
                &live.connection.sent,
            );
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let lost = match end {
                SenderEnd::Drained => None,
                SenderEnd::ConnectionLost(why) => Some(why),
            };
            let report = self.runtime.block_on(self.close(live, lost.is_some()));
            let Some(why) = lost else {
                self.push_report(report);
                return None;
            };
            if !self.reconnect || self.closing.load(Ordering::Relaxed) {
                self.push_report(report);
                *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                return Some(why);
            }
            tracing::warn!("connection lost ({why}): reconnecting");
            if let Some(f) = &self.on_report {
                f(&report);
            }
            self.push_report(report);
            live = loop {
                if self.closing.load(Ordering::Relaxed) {
                    return Some(why);
                }
                // Short attempts, one after the other: a headset that comes back is answered
                // within one attempt's handshake retransmissions (well under a second), not
                // after a long timeout.
                let attempt = monotonic_ns();
                let opened = self.runtime.block_on(Connection::open_within(
                    &self.cfg,
                    self.peer,
                    self.feedback.clone(),
                    REDIAL_ATTEMPT,
                ));
                match opened {
                    Ok(connection) => {
                        break Live {
                            connection,
                            t0: monotonic_ns(),
                            cpu0: process_cpu_ns(),
                            machine0: machine_cpu(),
                        }
                    }
                    Err(e) => {
                        tracing::debug!("{e:#}; dialling again");
                        // An attempt that failed at once (no route) waits a little.
                        let spent = Duration::from_nanos(monotonic_ns() - attempt);
                        std::thread::sleep(REDIAL_MIN.saturating_sub(spent));
                    }
                }
            };
            // Frames queued while nobody listened are stale; the new headset's decoders start
            // at a keyframe.
            while rx.try_recv().is_ok() {}
            for eye in Eye::BOTH {
                self.feedback.request_keyframe(eye);
            }
            live.connection.go_live(&self.feedback.pipeline);
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(live.connection.state.clone());
        }
    }

    /// Ends a connection: waits for the last markers unless it was lost, and reports it.
    async fn close(&self, live: Live, lost: bool) -> Report {
        let state = live.connection.state.clone();
        if !lost {
            // The markers of the last frames (until none is missing, or none has come for
            // 300 ms).
            state.wait_for_markers(300_000_000).await;
        }
        let cpu = process_cpu_ns() - live.cpu0;
        let duration = (monotonic_ns() - live.t0) as f64 / 1e9;
        let mut report = Report::build(&self.feedback.pipeline, &state, duration, cpu);
        report.steal_percent = live.machine0.and_then(|m| m.steal_percent_to_now());
        live.connection
            .close(if lost {
                "connection lost"
            } else {
                "source ended"
            })
            .await;
        report
    }

    fn push_report(&self, r: Report) {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }
}

impl Output for QuicOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn takes_slices(&self) -> bool {
        true
    }

    fn offer(&self, frame: &Arc<EncodedFrame>) {
        let Some(state) = self.inner.current() else {
            return; // no headset now
        };
        if let Some(old) = self.queue.push(frame.clone()) {
            // The link is behind: the frame dropped breaks its eye's reference chain. Counted
            // on the live connection (it is the one behind).
            self.inner.feedback.request_keyframe(old.eye);
            state.eye(old.eye).dropped_queue += 1;
        }
    }

    fn ended(&self) -> Option<String> {
        self.inner
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn status(&self) -> String {
        let Some(state) = self.inner.current() else {
            return format!("{}: not connected", self.name);
        };
        let eyes: Vec<String> = Eye::BOTH
            .iter()
            .map(|&e| {
                let c = state.eye(e);
                let l = c.total.summary_recent(300);
                format!(
                    "{e} {} decoded, capture→decoded p50 {:.1} ms p99 {:.1} ms",
                    c.markers, l.p50, l.p99
                )
            })
            .collect();
        format!("{}: {}", self.name, eyes.join(" | "))
    }

    fn live(&self) -> Vec<(String, Report)> {
        self.inner
            .current()
            .iter()
            .map(|state| {
                let r = Report::build(&self.inner.feedback.pipeline, state, 0.0, 0);
                (self.name.clone(), r)
            })
            .collect()
    }

    fn finish(&self) -> Pin<Box<dyn Future<Output = OutputReport> + Send + '_>> {
        Box::pin(async move {
            self.inner.closing.store(true, Ordering::Relaxed);
            let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
            let lost = match sender {
                Some(t) => tokio::task::spawn_blocking(move || t.join())
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten(),
                None => None,
            };
            OutputReport::Quic(QuicReport {
                peer: self.inner.peer.to_string(),
                connections: std::mem::take(
                    &mut *self.inner.reports.lock().unwrap_or_else(|p| p.into_inner()),
                ),
                connection_lost: lost,
            })
        })
    }
}
