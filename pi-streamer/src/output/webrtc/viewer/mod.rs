//! One browser viewer: a str0m [`Rtc`] (sans-IO WebRTC) driven by its own thread with its own
//! UDP socket. Both eyes go out as two H.264 video tracks of one peer connection (first video
//! m-line of the offer = left eye, second = right), markers and clock sync come back on the
//! DataChannel `binoc` ([`shared_proto::browser`]).
//!
//! What comes from the viewer drives the shared encoders through [`Feedback`]: PLI/FIR → a
//! keyframe for that eye, the TWCC bandwidth estimate → the encoders' bitrate. NACKs are
//! answered by str0m from its send buffer (RTX when the browser offered it).
//!
//! Files: this one (the IO loop and str0m's events), `sdp.rs` (the answer, payload types),
//! `channel.rs` (the data channel: clock sync, markers, HUD), `send.rs` (the send policy).

mod channel;
mod sdp;
mod send;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use binoc_net::os_clock::monotonic_ns;
use shared_proto::clock::{ClockSync, ClockSyncConfig};
use shared_proto::rules::budget::Budget;
use shared_proto::rules::ping::PingSchedule;
use shared_proto::rules::refchain::ReferenceChain;
use shared_proto::Eye;
use str0m::bwe::BweKind;
use str0m::channel::ChannelId;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

pub use sdp::{accept_offer, MediaAddr, Pending};

use super::wake::Wake;
use crate::output::{Feedback, OutputState};
use crate::pipeline::EncodedFrame;

/// Frames waiting for one viewer (both eyes; about 67 ms at 2 × 60 fps, and stale frames are
/// dropped by the deadline anyway); more means the viewer is behind and loses frames (the
/// others are not held up). 4 overflowed on a busy 2-core machine with the browser on it.
pub const QUEUE_FRAMES: usize = 8;

/// Per-eye sending state.
struct Track {
    mid: Option<Mid>,
    pt: Option<Pt>,
    chain: ReferenceChain,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            mid: None,
            pt: None,
            chain: ReferenceChain::new(send::OWN_IDR_INTERVAL_NS),
        }
    }
}

/// What one viewer's session counted, besides the latency (in its [`OutputState`]).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ViewerCounters {
    pub keyframe_requests: [u64; 2],
    pub nacks: [u64; 2],
    /// Frames the fan-out could not queue for this viewer (it was behind).
    pub queue_overflows: u64,
    /// Frames not sent while waiting for an IDR (start, after an overflow).
    pub skipped_waiting_idr: [u64; 2],
    /// Frames dropped because the viewer's link could not take them (its own send budget).
    pub over_budget: [u64; 2],
    /// Frames not handed to str0m because its send queue could not get them out before their
    /// deadline (the estimate fell with data queued: a blackout, a cap).
    pub over_queue: [u64; 2],
    pub malformed_messages: u64,
    /// Pixel codes the page read from the frame next to the marker's (see `on_message`).
    pub code_read_race: [u64; 2],
    /// Bandwidth estimates: the last and the lowest (bit/s).
    pub last_estimate_bps: Option<u64>,
    pub min_estimate_bps: Option<u64>,
    pub loss: [Option<f32>; 2],
    pub rtt_ms: Option<f64>,
}

pub struct Viewer {
    pub id: String,
    rtc: Rtc,
    socket: UdpSocket,
    /// The address the viewer sends to (the announced candidate; the socket's own by default).
    candidate: std::net::SocketAddr,
    frames: crossbeam_channel::Receiver<Arc<EncodedFrame>>,
    wake: Arc<Wake>,
    feedback: Arc<Feedback>,
    pub state: Arc<OutputState>,
    pub counters: ViewerCounters,
    tracks: [Track; 2],
    video_mids: Vec<Mid>,
    channel: Option<ChannelId>,
    sync: ClockSync,
    pings: PingSchedule,
    budget: Budget,
    connected: bool,
    /// Held from the moment the viewer is connected (the encoders work for it from then on).
    receiver: Option<crate::pipeline::Receiver>,
    start_bps: u64,
    deadline_ns: u64,
    next_stats: Instant,
}

impl Viewer {
    pub fn new(
        id: String,
        pending: Pending,
        frames: crossbeam_channel::Receiver<Arc<EncodedFrame>>,
        wake: Arc<Wake>,
        feedback: Arc<Feedback>,
        deadline_ns: u64,
    ) -> Result<Self> {
        pending.socket.set_nonblocking(true)?;
        let state = Arc::new(OutputState::new(&feedback.pipeline));
        Ok(Viewer {
            id,
            rtc: pending.rtc,
            socket: pending.socket,
            candidate: pending.candidate,
            frames,
            wake,
            feedback,
            state,
            counters: Default::default(),
            tracks: Default::default(),
            video_mids: Vec::new(),
            channel: None,
            sync: ClockSync::new(ClockSyncConfig::default()),
            pings: PingSchedule::new(),
            budget: {
                let now = monotonic_ns();
                let mut b = Budget::new(now);
                b.set_rate(now, pending.start_bps);
                b
            },
            connected: false,
            receiver: None,
            start_bps: pending.start_bps,
            deadline_ns,
            next_stats: Instant::now(),
        })
    }

    /// Runs the session until the viewer leaves, is deleted, or the stream ends. Runs on its
    /// own thread: str0m's pacer releases a packet every ~0.5 ms at video rates, and tokio's
    /// 1 ms timer wheel would cap the send rate at one packet per tick (measured: 7 Mbit/s
    /// sent for 14 Mbit/s encoded, the queue growing by seconds); `ppoll` sleeps to the
    /// microsecond.
    pub fn run(mut self) -> (Self, String) {
        let why = match self.drive() {
            Ok(why) => why,
            Err(e) => format!("{e:#}"),
        };
        self.rtc.disconnect();
        (self, why)
    }

    fn drive(&mut self) -> Result<String> {
        // str0m matches a datagram to the candidate it was sent to: the announced address.
        let local = self.candidate;
        let mut buf = vec![0u8; 2048];
        // ICE must complete within 10 s of the answer, or the viewer never came.
        let ice_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let timeout = loop {
                match self.rtc.poll_output()? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        // A full socket buffer loses this datagram like the network would.
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Event(e) => {
                        if let Some(why) = self.on_event(e)? {
                            return Ok(why);
                        }
                    }
                }
            };
            if !self.rtc.is_alive() {
                return Ok("peer connection closed".into());
            }
            if self.wake.cancelled() {
                return Ok("ended by the viewer (DELETE)".into());
            }
            let now = Instant::now();
            if !self.connected && now > ice_deadline {
                return Ok("no ICE connection within 10 s".into());
            }
            // Work that is ready goes first: datagrams, then frames, then timers.
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    if let Ok(contents) = buf[..n].try_into() {
                        self.rtc.handle_input(Input::Receive(
                            Instant::now(),
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination: local,
                                contents,
                            },
                        ))?;
                    } // else: not STUN/DTLS/RTP, ignored
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("receiving"),
            }
            match self.frames.try_recv() {
                Ok(f) => {
                    self.send_frame(&f)?;
                    continue;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    return Ok("stream ended".into())
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if self.ping_due() {
                self.ping();
            }
            if now >= self.next_stats {
                self.send_stats();
            }
            if now >= timeout {
                self.rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            let wake = timeout.min(self.next_ping()).min(self.next_stats);
            self.wake
                .wait(&self.socket, wake.saturating_duration_since(now))?;
        }
    }

    fn eye_of(&self, mid: Mid) -> Option<Eye> {
        self.tracks
            .iter()
            .position(|t| t.mid == Some(mid))
            .and_then(|i| Eye::from_u8(i as u8))
    }

    fn on_event(&mut self, e: Event) -> Result<Option<String>> {
        match e {
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Ok(Some("ICE disconnected".into()));
            }
            Event::Connected => {
                self.connected = true;
                tracing::info!(viewer = %self.id, "connected");
                // Its report counts from here (frames before could not reach it), and idle
                // encoders start for it, with an IDR.
                self.state.start_counting(&self.feedback.pipeline);
                self.receiver = Some(self.feedback.pipeline.receiver());
                // The encoders start where the estimator does, until its first estimate.
                if self.counters.last_estimate_bps.is_none() {
                    self.feedback.estimate(&self.id, Some(self.start_bps));
                }
                for (eye, t) in Eye::BOTH.iter().zip(&mut self.tracks) {
                    t.chain.restart();
                    self.feedback.request_keyframe(*eye);
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video => {
                // Video m-lines in offer order: the first is the left eye, the second the right.
                self.video_mids.push(m.mid);
                if let Some(t) = self.tracks.get_mut(self.video_mids.len() - 1) {
                    t.mid = Some(m.mid);
                }
            }
            Event::ChannelOpen(id, label) => {
                tracing::debug!(viewer = %self.id, %label, "data channel open");
                self.channel = Some(id);
                self.pings.defer(monotonic_ns());
            }
            Event::ChannelData(d) => self.on_message(&d.data),
            Event::KeyframeRequest(r) => {
                if let Some(eye) = self.eye_of(r.mid) {
                    self.counters.keyframe_requests[eye.index()] += 1;
                    self.feedback.request_keyframe(eye);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let bps = estimate.as_u64();
                self.counters.last_estimate_bps = Some(bps);
                let low = self.counters.min_estimate_bps.get_or_insert(bps);
                *low = (*low).min(bps);
                self.budget.set_rate(monotonic_ns(), bps);
                self.feedback.estimate(&self.id, Some(bps));
            }
            Event::MediaEgressStats(s) => {
                if let Some(eye) = self.eye_of(s.mid) {
                    self.counters.nacks[eye.index()] = s.nacks;
                    self.counters.loss[eye.index()] = s.loss;
                    if let Some(rtt) = s.rtt {
                        self.counters.rtt_ms = Some(rtt.as_secs_f64() * 1e3);
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }
}
