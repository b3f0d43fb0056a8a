//! The receive/decode core, free of Bevy: listen, reassemble, decode both eyes, read each
//! picture's pixel code, and send per-frame timestamp markers back to the streamer.
//!
//! Threads: the tokio runtime runs the QUIC endpoint, the control stream and the datagram
//! loop (which owns the [`Reassembler`]); each eye has its own decoder thread fed through a
//! bounded channel. A decoder that falls behind loses frames at that channel (and then asks
//! for an IDR) instead of building a queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use shared_proto::clock::ClockEstimate;
use shared_proto::fragment::{CompletedFrame, Reassembler, ReassemblyLimits};
use shared_proto::latency::{Series, Summary};
use shared_proto::wire::{negotiate_version, ClientStats, Control, FrameMarker, KeyframeReason};
use shared_proto::{pixel_code, Eye};
use tokio::sync::{mpsc, watch};

use crate::clock::monotonic_ns;
use crate::decode::{self, DecodedView};
use crate::net::{self, ControlReader, ControlWriter, Identity};

/// Frames waiting for a decoder, per eye. The queue is empty while the decoder keeps up; it
/// absorbs a scheduling hiccup of a few frames, because dropping one P-frame costs every frame
/// until the next IDR (measured: with 2, one hiccup in three 600-frame runs cost 4-5 frames
/// per eye).
const DECODE_QUEUE: usize = 4;
/// Keyframe requests are repeated at most this often while the decoder waits for one.
const KEYFRAME_RETRY_NS: u64 = 100_000_000;

/// What the client displays a decoded picture with. The headless core only reads the pixel
/// code; the XR and desktop shells hand the picture to their eye layer here.
pub trait PictureSink: Send + Sync {
    /// Called on the eye's decoder thread for every decoded picture. The sink completes the
    /// frame's `marker` once it knows when the picture went to the display and when it was (or
    /// will be) displayed; a marker dropped uncompleted reports the picture as never shown
    /// (a newer one replaced it first).
    fn present(&self, eye: Eye, picture: &DecodedView<'_>, marker: PendingMarker);

    /// Called on the eye's decoder thread when a stream of `width`x`height` starts: a surface
    /// to decode into instead of handing pictures to [`PictureSink::present`] (zero copy: the
    /// Quest's OpenXR Android-surface swapchains). `None` (the default): pictures come through
    /// `present`.
    fn surface(&self, _eye: Eye, _width: u16, _height: u16) -> Option<decode::Surface> {
        None
    }

    /// Changes whenever the surfaces [`PictureSink::surface`] would give change (the Quest: an
    /// XR session began or ended). A decoder opened under another generation is reopened, so a
    /// stream that started before the session renders into its surface from the next IDR, and
    /// none keeps rendering into a surface whose session is gone.
    fn surface_generation(&self) -> u64 {
        0
    }

    /// With a surface: the picture of `marker` was rendered into it at `rendered_ns`. The sink
    /// completes the marker once it knows the display time.
    fn rendered(&self, _eye: Eye, rendered_ns: u64, marker: PendingMarker) {
        marker.complete(Some(rendered_ns), None);
    }
}

/// The headless sink: nothing is displayed; markers go back at once.
pub struct Headless;

impl PictureSink for Headless {
    fn present(&self, _eye: Eye, _picture: &DecodedView<'_>, marker: PendingMarker) {
        marker.complete(None, None);
    }
}

/// A decoded frame's timestamp marker, waiting for the display path to fill in when the picture
/// was uploaded and displayed. Completing it (or dropping it) sends it to the streamer and
/// records the client's own display-side statistics.
pub struct PendingMarker {
    marker: Option<FrameMarker>,
    capture_ns: u64,
    out: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

impl PendingMarker {
    pub fn eye(&self) -> Eye {
        self.marker.as_ref().map_or(Eye::Left, |m| m.eye)
    }

    /// The frame number the streamer announced for this picture.
    pub fn frame_no(&self) -> u64 {
        self.marker.as_ref().map_or(0, |m| m.frame_no)
    }

    /// The picture went to the display path at `presented_ns` and is displayed at
    /// `display_ns` (both on this client's monotonic clock).
    pub fn complete(mut self, presented_ns: Option<u64>, display_ns: Option<u64>) {
        self.send(presented_ns, display_ns);
    }

    fn send(&mut self, presented_ns: Option<u64>, display_ns: Option<u64>) {
        let Some(mut m) = self.marker.take() else {
            return;
        };
        m.presented_ns = presented_ns;
        m.display_ns = display_ns;
        {
            let clock = *self.shared.clock.lock().unwrap_or_else(|p| p.into_inner());
            let mut s = self.shared.eye(m.eye);
            if let Some(p) = presented_ns {
                s.upload.push(p as i64 - m.decoded_ns as i64);
                if let Some(d) = display_ns {
                    s.shown += 1;
                    s.display.push(d as i64 - p as i64);
                    if let Some(c) = clock {
                        s.glass_to_glass
                            .push(c.client_to_streamer(d) as i64 - self.capture_ns as i64);
                    }
                }
            }
        }
        let _ = self.out.try_send(Outgoing::Msg(Control::Marker(m)));
    }
}

/// Markers made by [`PendingMarker::for_test`], as they were sent back.
#[cfg(all(test, feature = "app"))]
pub(crate) struct SentMarkers(mpsc::Receiver<Outgoing>);

#[cfg(all(test, feature = "app"))]
impl SentMarkers {
    /// The markers sent so far, in order.
    pub(crate) fn drain(&mut self) -> Vec<FrameMarker> {
        std::iter::from_fn(|| self.0.try_recv().ok())
            .filter_map(|o| match o {
                Outgoing::Msg(Control::Marker(m)) => Some(m),
                _ => None,
            })
            .collect()
    }
}

#[cfg(all(test, feature = "app"))]
impl PendingMarker {
    /// A marker for frame `frame_no` of `eye`, recorded in `shared` once completed (tests of
    /// display paths).
    pub(crate) fn for_test(eye: Eye, frame_no: u64, shared: &Arc<Shared>) -> (Self, SentMarkers) {
        let (out, rx) = mpsc::channel(16);
        let marker = PendingMarker {
            marker: Some(FrameMarker {
                eye,
                seq: frame_no as u32,
                frame_no,
                pixel_code: None,
                first_byte_ns: 1,
                last_byte_ns: 2,
                decoded_ns: 3,
                presented_ns: None,
                display_ns: None,
            }),
            capture_ns: 0,
            out,
            shared: shared.clone(),
        };
        (marker, SentMarkers(rx))
    }
}

impl Drop for PendingMarker {
    fn drop(&mut self) {
        if let Some(m) = &self.marker {
            self.shared.eye(m.eye).superseded += 1;
            self.send(None, None);
        }
    }
}

/// Per-eye counters and latency series, as the client sees them.
#[derive(Debug, Default)]
pub struct EyeStats {
    /// Complete frames out of reassembly.
    pub received: u64,
    pub decoded: u64,
    /// Frames that never arrived whole (reassembly loss, sequence gaps, full decode queue).
    pub lost: u64,
    /// Frames received while waiting for an IDR after a loss (undecodable).
    pub skipped_until_idr: u64,
    pub decode_errors: u64,
    /// Decoded pictures whose pixel code names the other eye.
    pub wrong_eye: u64,
    /// Pixel code readable but not the frame number the metadata announced.
    pub code_mismatch: u64,
    /// Pixel code frame number not newer than the previous picture's (stale or repeated).
    pub repeated: u64,
    pub unreadable_code: u64,
    pub keyframe_requests: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// capture → decoded on the streamer clock (via the announced clock estimate).
    pub latency: Series,
    /// last byte received → decoded.
    pub decode: Series,
    /// Decoded pictures a newer one replaced before the display took them (never shown).
    pub superseded: u64,
    /// Pictures displayed (their marker carries a display time).
    pub shown: u64,
    /// decoded → handed to the display (conversion, wait for the frame loop, upload).
    pub upload: Series,
    /// handed to the display → displayed (render, present; XR: the predicted display time).
    pub display: Series,
    /// capture → displayed, on the streamer clock.
    pub glass_to_glass: Series,
}

impl EyeStats {
    pub fn dropped(&self) -> u64 {
        self.lost + self.skipped_until_idr + self.decode_errors
    }
    fn wire(&self, malformed: u64) -> ClientStats {
        ClientStats {
            received: self.received,
            decoded: self.decoded,
            lost: self.lost,
            decode_errors: self.decode_errors,
            wrong_eye: self.wrong_eye,
            malformed_datagrams: malformed,
        }
    }
}

/// State shared between the runtime, the decoder threads and whoever reports.
pub struct Shared {
    pub eyes: [Mutex<EyeStats>; 2],
    pub clock: Mutex<Option<ClockEstimate>>,
    pub malformed_datagrams: AtomicU64,
    pub sessions: AtomicU64,
    /// Stop after this many streamer sessions have ended.
    pub session_limit: Option<u64>,
    sessions_ended: AtomicU64,
    /// Stop after this many frames per eye are accounted for (decoded or dropped).
    pub frame_target: Option<u64>,
    done: watch::Sender<bool>,
}

impl Shared {
    /// `frame_target`: stop after that many frames per eye; `session_limit`: stop after that
    /// many streamer sessions have ended.
    pub fn new(frame_target: Option<u64>, session_limit: Option<u64>) -> Arc<Self> {
        Arc::new(Shared {
            eyes: Default::default(),
            clock: Mutex::new(None),
            malformed_datagrams: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            session_limit,
            sessions_ended: AtomicU64::new(0),
            frame_target,
            done: watch::Sender::new(false),
        })
    }

    fn eye(&self, eye: Eye) -> std::sync::MutexGuard<'_, EyeStats> {
        self.eyes[eye.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn check_target(&self) {
        let Some(n) = self.frame_target else { return };
        let reached = Eye::BOTH.iter().all(|&e| {
            let s = self.eye(e);
            s.decoded + s.dropped() >= n
        });
        if reached {
            self.finish();
        }
    }

    /// Ends the run: the listener stops accepting and the session winds down.
    pub fn finish(&self) {
        self.done.send_replace(true);
    }

    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }

    /// Resolves once [`Shared::finish`] was called (or the frame target reached).
    pub fn finished(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.done.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    pub fn report(&self) -> ClientReport {
        let eyes = Eye::BOTH.map(|e| {
            let s = self.eye(e);
            EyeReport {
                received: s.received,
                decoded: s.decoded,
                dropped: s.dropped(),
                lost: s.lost,
                skipped_until_idr: s.skipped_until_idr,
                decode_errors: s.decode_errors,
                wrong_eye: s.wrong_eye,
                code_mismatch: s.code_mismatch,
                repeated: s.repeated,
                unreadable_code: s.unreadable_code,
                keyframes: s.keyframes,
                keyframe_requests: s.keyframe_requests,
                latency_ms: s.latency.summary(),
                decode_ms: s.decode.summary(),
                superseded: s.superseded,
                shown: s.shown,
                upload_ms: s.upload.summary(),
                display_ms: s.display.summary(),
                glass_to_glass_ms: s.glass_to_glass.summary(),
            }
        });
        let clock = *self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let [left, right] = eyes;
        ClientReport {
            eyes: EyesReport { left, right },
            malformed_datagrams: self.malformed_datagrams.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            clock_offset_ns: clock.map(|c| c.offset_ns as i64),
            clock_uncertainty_ns: clock.map(|c| c.uncertainty_ns()),
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct EyeReport {
    pub received: u64,
    pub decoded: u64,
    pub dropped: u64,
    pub lost: u64,
    pub skipped_until_idr: u64,
    pub decode_errors: u64,
    pub wrong_eye: u64,
    pub code_mismatch: u64,
    pub repeated: u64,
    pub unreadable_code: u64,
    pub keyframes: u64,
    pub keyframe_requests: u64,
    /// capture → decoded, milliseconds, on the streamer clock.
    pub latency_ms: Summary,
    /// last byte received → decoded, milliseconds.
    pub decode_ms: Summary,
    /// Decoded but replaced by a newer picture before the display took it.
    pub superseded: u64,
    pub shown: u64,
    /// decoded → handed to the display, milliseconds.
    pub upload_ms: Summary,
    /// handed to the display → displayed, milliseconds.
    pub display_ms: Summary,
    /// capture → displayed on the streamer clock, milliseconds (empty when headless).
    pub glass_to_glass_ms: Summary,
}

#[derive(Debug, serde::Serialize)]
pub struct EyesReport {
    pub left: EyeReport,
    pub right: EyeReport,
}

#[derive(Debug, serde::Serialize)]
pub struct ClientReport {
    pub eyes: EyesReport,
    pub malformed_datagrams: u64,
    pub sessions: u64,
    pub clock_offset_ns: Option<i64>,
    pub clock_uncertainty_ns: Option<u64>,
}

impl ClientReport {
    pub fn to_text(&self) -> String {
        let mut out = String::from("eye    received  decoded  dropped  wrong_eye  capture→decoded ms p50/p95/p99/max   decode ms p50\n");
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            let l = &e.latency_ms;
            out += &format!(
                "{name:<6} {:>8} {:>8} {:>8} {:>10}  {:>7.2} {:>7.2} {:>7.2} {:>7.2}          {:>6.2}\n",
                e.received, e.decoded, e.dropped, e.wrong_eye, l.p50, l.p95, l.p99, l.max, e.decode_ms.p50
            );
        }
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            if e.shown > 0 {
                out += &format!(
                    "{name:<6} shown {} superseded {}: upload p50 {:.2} ms, display p50 {:.2} ms, glass-to-glass p50 {:.2} p99 {:.2} ms\n",
                    e.shown, e.superseded, e.upload_ms.p50, e.display_ms.p50, e.glass_to_glass_ms.p50, e.glass_to_glass_ms.p99
                );
            }
        }
        out += &format!(
            "malformed datagrams: {}, sessions: {}, clock offset: {} (± {} ns)\n",
            self.malformed_datagrams,
            self.sessions,
            self.clock_offset_ns
                .map_or("unknown".into(), |o| format!("{o} ns")),
            self.clock_uncertainty_ns.unwrap_or(0)
        );
        out
    }
}

/// Messages for the control-stream writer task.
enum Outgoing {
    Msg(Control),
    /// A pong, stamped `t2` by the writer right before it is written.
    Pong {
        id: u32,
        t0: u64,
        t1: u64,
    },
}

/// The listening client.
pub struct Client {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
}

impl Client {
    pub fn bind(
        listen: SocketAddr,
        identity: &Identity,
        shared: Arc<Shared>,
        sink: Arc<dyn PictureSink>,
    ) -> Result<Self> {
        let endpoint = net::server_endpoint(listen, identity)?;
        Ok(Client {
            endpoint,
            shared,
            sink,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts streamers one session at a time (a new streamer replaces the old one) until the
    /// frame target is reached or [`Shared::finish`] is called.
    pub async fn run(self) -> Result<()> {
        let shared = self.shared.clone();
        let mut current: Option<tokio::task::JoinHandle<()>> = None;
        let finished = shared.finished();
        tokio::pin!(finished);
        loop {
            let incoming = tokio::select! {
                i = self.endpoint.accept() => i,
                _ = &mut finished => break,
            };
            let Some(incoming) = incoming else { break };
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%remote, "handshake failed: {e}");
                    continue;
                }
            };
            if let Some(old) = current.take() {
                tracing::info!(%remote, "a new streamer connected: replacing the previous session");
                old.abort();
            }
            let (session_shared, sink) = (self.shared.clone(), self.sink.clone());
            current = Some(tokio::spawn(async move {
                let shared = session_shared;
                shared.sessions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%remote, "streamer connected");
                match run_session(conn.clone(), shared.clone(), sink).await {
                    Ok(reason) => tracing::info!(%remote, "session ended: {reason}"),
                    Err(e) => tracing::warn!(%remote, "session ended: {e:#}"),
                }
                conn.close(0u32.into(), b"bye");
                let ended = shared.sessions_ended.fetch_add(1, Ordering::Relaxed) + 1;
                if shared.session_limit.is_some_and(|n| ended >= n) {
                    shared.finish();
                }
            }));
            if shared.is_finished() {
                break;
            }
        }
        if let Some(s) = current {
            // Let the session flush its last markers, then close.
            let _ = tokio::time::timeout(Duration::from_millis(500), s).await;
        }
        self.endpoint.close(0u32.into(), b"done");
        Ok(())
    }
}

async fn run_session(
    conn: quinn::Connection,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
) -> Result<String> {
    let (send, recv) = tokio::time::timeout(Duration::from_secs(5), conn.accept_bi())
        .await
        .context("no control stream within 5 s")??;
    let mut writer = ControlWriter::new(send);
    let mut reader = ControlReader::new(recv);
    let mut sizes: [Option<(u16, u16)>; 2] = [None; 2];
    match reader.next().await? {
        Some(Control::Hello {
            min_version,
            max_version,
            streams,
        }) => match negotiate_version(min_version, max_version) {
            Some(version) => {
                tracing::info!(version, ?streams, "hello");
                for s in &streams {
                    sizes[s.eye.index()] = Some((s.width, s.height));
                }
                writer.send(&Control::HelloAck { version }).await?;
            }
            None => {
                let reason =
                    format!("no common protocol version (peer {min_version}..={max_version})");
                writer
                    .send(&Control::Reject {
                        reason: reason.clone(),
                    })
                    .await?;
                writer.finish().await;
                bail!(reason);
            }
        },
        other => bail!("expected Hello, got {other:?}"),
    }

    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(4096);
    let writer_task = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let msg = match m {
                Outgoing::Msg(c) => c,
                Outgoing::Pong { id, t0, t1 } => Control::Pong {
                    id,
                    t0,
                    t1,
                    t2: monotonic_ns(),
                },
            };
            if let Err(e) = writer.send(&msg).await {
                tracing::debug!("control writer: {e:#}");
                break;
            }
        }
        writer.finish().await;
    });

    // One decoder thread per eye.
    let mut decoders = Vec::new();
    let mut frame_tx = Vec::new();
    for eye in Eye::BOTH {
        let (tx, rx) = crossbeam_channel::bounded::<CompletedFrame>(DECODE_QUEUE);
        let (shared, out, sink) = (shared.clone(), out_tx.clone(), sink.clone());
        let size = sizes[eye.index()];
        decoders.push(
            std::thread::Builder::new()
                .name(format!("decode-{eye}"))
                .spawn(move || decoder_thread(eye, size, rx, out, shared, sink))?,
        );
        frame_tx.push(tx);
    }

    let control_out = out_tx.clone();
    let control_shared = shared.clone();
    let mut control_task = tokio::spawn(async move {
        loop {
            let msg = match reader.next().await {
                Ok(Some(m)) => m,
                Ok(None) => return "control stream closed".to_string(),
                Err(e) => return format!("control stream error: {e:#}"),
            };
            let t1 = monotonic_ns();
            match msg {
                Control::Ping { id, t0 } => {
                    let _ = control_out.try_send(Outgoing::Pong { id, t0, t1 });
                }
                Control::ClockEstimate {
                    offset_ns,
                    skew_ppb,
                    at_streamer_ns,
                    rtt_ns,
                } => {
                    *control_shared
                        .clock
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(ClockEstimate::from_announced(
                        offset_ns,
                        skew_ppb,
                        at_streamer_ns,
                        rtt_ns,
                    ));
                }
                Control::Bye { reason } => return format!("streamer said bye: {reason}"),
                other => tracing::debug!(?other, "ignoring unexpected control message"),
            }
        }
    });

    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut stats_tick = tokio::time::interval(Duration::from_millis(500));
    let finished = shared.finished();
    tokio::pin!(finished);
    let reason = loop {
        tokio::select! {
            d = conn.read_datagram() => {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => break format!("connection: {e}"),
                };
                let now = monotonic_ns();
                match reassembler.insert_datagram(&d, now) {
                    Ok(ins) => {
                        for &seq in &ins.lost {
                            tracing::debug!(seq, "frame lost in reassembly");
                        }
                        if let Some(frame) = ins.completed {
                            let eye = frame.eye;
                            {
                                let mut s = shared.eye(eye);
                                s.received += 1;
                                s.bytes += frame.bitstream.len() as u64;
                            }
                            // A full queue means the decoder is behind: drop here; the decoder
                            // sees the sequence gap and asks for an IDR.
                            if frame_tx[eye.index()].try_send(frame).is_err() {
                                tracing::debug!(%eye, "decoder behind: frame dropped at its queue");
                            }
                        }
                    }
                    Err(e) => {
                        shared.malformed_datagrams.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("malformed datagram: {e}");
                    }
                }
            }
            _ = tick.tick() => {
                for (eye, seq) in reassembler.expire(monotonic_ns()) {
                    tracing::debug!(%eye, seq, "frame expired incomplete");
                }
            }
            _ = stats_tick.tick() => {
                let malformed = shared.malformed_datagrams.load(Ordering::Relaxed);
                for eye in Eye::BOTH {
                    let stats = shared.eye(eye).wire(malformed);
                    let _ = out_tx.try_send(Outgoing::Msg(Control::Stats { eye, stats }));
                }
            }
            r = &mut control_task => break r.unwrap_or_else(|e| format!("control task: {e}")),
            _ = &mut finished => break "frame target reached".to_string(),
        }
    };
    control_task.abort();
    drop(frame_tx);
    // The decoders drain what they hold and exit; their last markers go out before the writer
    // finishes the stream.
    let _ = tokio::task::spawn_blocking(move || {
        for d in decoders {
            let _ = d.join();
        }
    })
    .await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer_task).await;
    Ok(reason)
}

fn decoder_thread(
    eye: Eye,
    size: Option<(u16, u16)>,
    rx: crossbeam_channel::Receiver<CompletedFrame>,
    out: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    sink: Arc<dyn PictureSink>,
) {
    // The decoder, opened for the sink's current surface generation.
    let open = || -> Option<(Box<dyn decode::VideoDecoder>, u64)> {
        let generation = sink.surface_generation();
        let decoder = match size.and_then(|(w, h)| sink.surface(eye, w, h)) {
            Some(surface) => decode::open_for_stream(size, Some(surface)).or_else(|e| {
                tracing::warn!(%eye, "cannot decode into the surface, copying instead: {e:#}");
                decode::open_for_stream(size, None)
            }),
            None => decode::open_for_stream(size, None),
        };
        match decoder {
            Ok(d) => Some((d, generation)),
            Err(e) => {
                tracing::error!(%eye, "cannot create decoder: {e:#}");
                None
            }
        }
    };
    let Some((mut dec, mut generation)) = open() else {
        return;
    };
    // Into a surface the picture is never on the CPU: its pixel code cannot be read (the
    // streamer counts those markers as unreadable; the code path is checked on the other path).
    let mut to_surface = dec.renders_to_surface();
    let mut expected: Option<u32> = None;
    let mut need_idr = true;
    let mut last_request: Option<u64> = None;
    let mut last_code: Option<u32> = None;
    let mut decoded_any = false;
    let request = |reason: KeyframeReason, last: &mut Option<u64>, shared: &Shared| {
        let now = monotonic_ns();
        if last.is_none_or(|t| now.saturating_sub(t) >= KEYFRAME_RETRY_NS) {
            *last = Some(now);
            shared.eye(eye).keyframe_requests += 1;
            let _ = out.try_send(Outgoing::Msg(Control::KeyframeRequest { eye, reason }));
        }
    };
    for frame in rx {
        if sink.surface_generation() != generation {
            // The display's surfaces changed: start a decoder on the new one (the old one goes
            // first, releasing its surface). It needs an IDR, like any decoder that starts.
            drop(dec);
            tracing::info!(%eye, "the display's surfaces changed: reopening the decoder");
            let Some(reopened) = open() else {
                return;
            };
            (dec, generation) = reopened;
            to_surface = dec.renders_to_surface();
            need_idr = true;
            decoded_any = false;
            last_code = None;
        }
        if let Some(e) = expected {
            let gap = frame.seq.wrapping_sub(e);
            if gap != 0 && gap < 1 << 31 {
                shared.eye(eye).lost += u64::from(gap);
                need_idr = true;
                tracing::debug!(%eye, from = e, to = frame.seq, "sequence gap: reference lost");
            }
        }
        expected = Some(frame.seq.wrapping_add(1));
        if need_idr && !frame.keyframe {
            shared.eye(eye).skipped_until_idr += 1;
            let reason = if decoded_any {
                KeyframeReason::ReferenceLost
            } else {
                KeyframeReason::Start
            };
            request(reason, &mut last_request, &shared);
            shared.check_target();
            continue;
        }
        // (pixel code, decoded at) of the picture, if one came out. The marker goes to the
        // sink, which completes it when the picture is uploaded and displayed.
        let mut picture: Option<(Option<(Eye, u32)>, u64)> = None;
        let new_marker = |code: Option<(Eye, u32)>, decoded_ns: u64| PendingMarker {
            marker: Some(FrameMarker {
                eye,
                seq: frame.seq,
                frame_no: frame.timing.frame_no,
                pixel_code: code,
                first_byte_ns: frame.first_byte_ns,
                last_byte_ns: frame.last_byte_ns,
                decoded_ns,
                presented_ns: None,
                display_ns: None,
            }),
            capture_ns: frame.timing.capture_ns,
            out: out.clone(),
            shared: shared.clone(),
        };
        let result = if to_surface {
            // The picture is rendered into the surface when decoding returns: decoded and
            // handed to the display at the same moment.
            dec.decode_to_surface(&frame.bitstream)
                .inspect(|&rendered| {
                    if rendered {
                        let now = monotonic_ns();
                        sink.rendered(eye, now, new_marker(None, now));
                        picture = Some((None, now));
                    }
                })
        } else {
            dec.decode(&frame.bitstream, &mut |p| {
                let decoded_ns = monotonic_ns();
                let code = pixel_code::read(p.y, p.y_stride, p.width, p.height);
                sink.present(eye, p, new_marker(code, decoded_ns));
                picture = Some((code, decoded_ns));
            })
        };
        let (code, decoded_ns) = match (result, picture) {
            (Ok(_), Some(p)) => p,
            (Ok(_), None) => {
                // No picture for a complete access unit: the stream is broken for us.
                shared.eye(eye).decode_errors += 1;
                need_idr = true;
                request(KeyframeReason::DecodeError, &mut last_request, &shared);
                shared.check_target();
                continue;
            }
            (Err(e), _) => {
                tracing::debug!(%eye, seq = frame.seq, "decode error: {e}");
                shared.eye(eye).decode_errors += 1;
                need_idr = true;
                request(KeyframeReason::DecodeError, &mut last_request, &shared);
                shared.check_target();
                continue;
            }
        };
        need_idr = false;
        decoded_any = true;
        {
            let clock = *shared.clock.lock().unwrap_or_else(|p| p.into_inner());
            let mut s = shared.eye(eye);
            s.decoded += 1;
            if frame.keyframe {
                s.keyframes += 1;
            }
            match code {
                None if to_surface => {}
                None => s.unreadable_code += 1,
                Some((code_eye, n)) => {
                    if code_eye != eye {
                        s.wrong_eye += 1;
                    }
                    if n != (frame.timing.frame_no as u32) & pixel_code::FRAME_MASK {
                        s.code_mismatch += 1;
                    }
                    // Not newer than the previous picture (24-bit wrapping comparison).
                    let step = n.wrapping_sub(last_code.unwrap_or(n.wrapping_sub(1)))
                        & pixel_code::FRAME_MASK;
                    if step == 0 || step > pixel_code::FRAME_MASK / 2 {
                        s.repeated += 1;
                    }
                    last_code = Some(n);
                }
            }
            s.decode.push(decoded_ns as i64 - frame.last_byte_ns as i64);
            if let Some(c) = clock {
                let decoded_streamer = c.client_to_streamer(decoded_ns);
                s.latency
                    .push(decoded_streamer as i64 - frame.timing.capture_ns as i64);
            }
        }
        shared.check_target();
    }
}

#[cfg(all(test, not(target_os = "android")))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use openh264::encoder::{Encoder, FrameType};
    use openh264::formats::YUVBuffer;
    use shared_proto::wire::FrameTiming;

    use super::*;

    /// A sink whose surfaces change when the test says so; it has none to give (desktops), so
    /// it counts how often a decoder asked for one.
    #[derive(Default)]
    struct ChangingSurfaces {
        generation: AtomicU64,
        asked: AtomicUsize,
        presented: AtomicUsize,
    }

    impl PictureSink for ChangingSurfaces {
        fn present(&self, _: Eye, _: &DecodedView<'_>, marker: PendingMarker) {
            self.presented.fetch_add(1, Ordering::Relaxed);
            marker.complete(None, None);
        }
        fn surface(&self, _: Eye, _: u16, _: u16) -> Option<decode::Surface> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            None
        }
        fn surface_generation(&self) -> u64 {
            self.generation.load(Ordering::Relaxed)
        }
    }

    fn encoded(n: usize) -> Vec<(Vec<u8>, bool)> {
        let mut enc = Encoder::new().unwrap();
        (0..n)
            .map(|i| {
                // Something that changes, so P-frames carry data.
                let yuv = YUVBuffer::from_vec(vec![(i * 20) as u8; 64 * 64 * 3 / 2], 64, 64);
                let bs = enc.encode(&yuv).unwrap();
                let key = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
                (bs.to_vec(), key)
            })
            .collect()
    }

    fn completed(seq: u32, (bitstream, keyframe): &(Vec<u8>, bool)) -> CompletedFrame {
        CompletedFrame {
            eye: Eye::Left,
            seq,
            keyframe: *keyframe,
            timing: FrameTiming {
                frame_no: u64::from(seq),
                capture_ns: 0,
                encode_start_ns: 0,
                encode_end_ns: 0,
                send_ns: 0,
                encoded_len: bitstream.len() as u32,
                reserved: 0,
            },
            bitstream: bitstream.clone(),
            first_byte_ns: 0,
            last_byte_ns: 0,
            fragments: 1,
        }
    }

    fn keyframe_requests(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<KeyframeReason> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|o| match o {
                Outgoing::Msg(Control::KeyframeRequest { reason, .. }) => Some(reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_decoder_reopens_when_the_surfaces_change_and_resumes_at_the_next_idr() {
        let frames = encoded(3);
        assert!(frames[0].1 && !frames[1].1 && !frames[2].1, "IDR, P, P");
        let sink = Arc::new(ChangingSurfaces::default());
        let shared = Shared::new(None, None);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (out, mut out_rx) = mpsc::channel(64);
        let thread = {
            let (sink, shared) = (sink.clone(), shared.clone());
            std::thread::spawn(move || {
                decoder_thread(Eye::Left, Some((64, 64)), rx, out, shared, sink)
            })
        };
        let feed = |seq: u32, frame: &(Vec<u8>, bool)| {
            tx.send(completed(seq, frame)).unwrap();
            // One at a time: the generation must change between two given frames. (The
            // deadline only keeps a broken decoder from hanging the test.)
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let handled = {
                    let s = shared.eye(Eye::Left);
                    s.decoded + s.skipped_until_idr + s.decode_errors
                };
                if handled > u64::from(seq) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "frame {seq} never handled"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        feed(0, &frames[0]);
        feed(1, &frames[1]);
        assert_eq!(sink.asked.load(Ordering::Relaxed), 1);
        // An XR session began: the decoder asks for the new surface before the next frame and
        // cannot use that P-frame (a new decoder has no reference): it asks for an IDR.
        sink.generation.store(1, Ordering::Relaxed);
        feed(2, &frames[2]);
        assert_eq!(sink.asked.load(Ordering::Relaxed), 2);
        feed(3, &frames[0]);
        drop(tx);
        thread.join().unwrap();

        let s = shared.eye(Eye::Left);
        assert_eq!(
            (s.decoded, s.skipped_until_idr, s.lost, s.decode_errors),
            (3, 1, 0, 0)
        );
        drop(s);
        assert_eq!(sink.presented.load(Ordering::Relaxed), 3);
        assert_eq!(keyframe_requests(&mut out_rx), vec![KeyframeReason::Start]);
    }
}
