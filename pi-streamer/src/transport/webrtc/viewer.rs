//! One browser viewer: a str0m [`Rtc`] (sans-IO WebRTC) driven by its own thread with its own
//! UDP socket. Both eyes go out as two H.264 video tracks of one peer connection (first video
//! m-line of the offer = left eye, second = right), markers and clock sync come back on the
//! DataChannel `binoc` ([`shared_proto::browser`]).
//!
//! What comes from the viewer drives the shared encoders through the hub: PLI/FIR → an IDR for
//! that eye, the TWCC bandwidth estimate → the encoders' bitrate. NACKs are answered by str0m
//! from its send buffer (RTX when the browser offered it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quest_client::clock::monotonic_ns;
use shared_proto::browser::{self, BrowserMessage};
use shared_proto::clock::{ClockSync, ClockSyncConfig};
use shared_proto::{pixel_code, Eye};
use std::net::UdpSocket;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::wake::Wake;
use super::Hub;
use crate::pipeline::{EncodedFrame, PipelineState};

/// Frames waiting for one viewer (both eyes; about 67 ms at 2 × 60 fps, and stale frames are
/// dropped by the deadline anyway); more means the viewer is behind and loses frames (the
/// others are not held up). 4 overflowed on a busy 2-core machine with the browser on it.
pub const QUEUE_FRAMES: usize = 8;

/// Shortest interval between IDRs one viewer asks for on its own.
const OWN_IDR_INTERVAL: Duration = Duration::from_millis(200);

/// A session accepted by WHEP, not yet running.
pub struct Pending {
    pub rtc: Rtc,
    pub socket: UdpSocket,
}

/// Builds the peer connection for an offer: ICE lite with one host candidate on `local_ip`,
/// H.264 only, TWCC bandwidth estimation, Chrome's playout-delay extension (asked to be 0, so
/// the browser renders frames as soon as they are decoded).
pub fn accept_offer(offer: &str, local_ip: IpAddr, initial_bps: u64) -> Result<(Pending, String)> {
    let offer = SdpOffer::from_sdp_string(offer).context("unparsable SDP")?;
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_bwe(Some(Bitrate::bps(initial_bps)))
        .set_stats_interval(Some(Duration::from_secs(1)))
        .set_extension(6, Extension::PlayoutDelay)
        .build(Instant::now());
    let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
        .with_context(|| format!("binding a UDP port on {local_ip}"))?;
    let addr = socket.local_addr()?;
    rtc.add_local_candidate(Candidate::host(addr, "udp").context("host candidate")?);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .context("offer not acceptable")?;
    let sdp = answer.to_sdp_string();
    if sdp.matches("m=video").count() == 0 {
        bail!("the offer has no video m-line to receive");
    }
    Ok((Pending { rtc, socket }, sdp))
}

/// A viewer's own send budget: bytes handed to str0m drain at the viewer's bandwidth estimate.
/// A viewer whose link is slower than the stream (below the encoders' floor) would otherwise
/// queue without bound in its pacer; instead it loses whole frames (and then waits for an IDR),
/// keeping its own latency bounded without slowing the other viewers.
#[derive(Debug)]
pub struct Budget {
    rate_bps: Option<u64>,
    debt_bytes: f64,
    last: Instant,
}

/// The most a viewer's queue may hold, in time at its estimated rate.
const BUDGET_QUEUE: Duration = Duration::from_millis(100);

impl Budget {
    pub fn new(now: Instant) -> Self {
        Budget {
            rate_bps: None,
            debt_bytes: 0.0,
            last: now,
        }
    }

    pub fn set_rate(&mut self, now: Instant, bps: u64) {
        self.drain(now);
        self.rate_bps = Some(bps);
    }

    fn drain(&mut self, now: Instant) {
        if let Some(r) = self.rate_bps {
            let secs = now.saturating_duration_since(self.last).as_secs_f64();
            self.debt_bytes = (self.debt_bytes - secs * r as f64 / 8.0).max(0.0);
        }
        self.last = self.last.max(now);
    }

    /// Whether a frame of `bytes` may go now; if so it is charged.
    pub fn admit(&mut self, now: Instant, bytes: usize) -> bool {
        self.drain(now);
        if let Some(r) = self.rate_bps {
            if self.debt_bytes > r as f64 / 8.0 * BUDGET_QUEUE.as_secs_f64() {
                return false;
            }
        }
        self.debt_bytes += bytes as f64;
        true
    }
}

/// Per-eye sending state.
#[derive(Default)]
struct Track {
    mid: Option<Mid>,
    pt: Option<Pt>,
    /// Until an IDR: frames are not sent (the decoder could not use them).
    waiting_idr: bool,
    last_seq: Option<u32>,
}

/// What one viewer's session counted, besides the latency (in its [`PipelineState`]).
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
    frames: crossbeam_channel::Receiver<Arc<EncodedFrame>>,
    wake: Arc<Wake>,
    hub: Arc<Hub>,
    pub state: Arc<PipelineState>,
    pub counters: ViewerCounters,
    tracks: [Track; 2],
    video_mids: Vec<Mid>,
    channel: Option<ChannelId>,
    sync: ClockSync,
    budget: Budget,
    /// IDRs this viewer asked the shared encoders for on its own (gaps, budget), rate-limited.
    last_own_idr: Option<Instant>,
    connected: bool,
    deadline_ns: u64,
    ping_id: u32,
    next_ping: Instant,
    next_stats: Instant,
}

impl Viewer {
    pub fn new(
        id: String,
        pending: Pending,
        frames: crossbeam_channel::Receiver<Arc<EncodedFrame>>,
        wake: Arc<Wake>,
        hub: Arc<Hub>,
        state: Arc<PipelineState>,
    ) -> Result<Self> {
        pending.socket.set_nonblocking(true)?;
        let socket = pending.socket;
        let deadline_ns = hub.deadline_ns;
        Ok(Viewer {
            id,
            rtc: pending.rtc,
            socket,
            frames,
            wake,
            hub,
            state,
            counters: Default::default(),
            tracks: Default::default(),
            video_mids: Vec::new(),
            channel: None,
            sync: ClockSync::new(ClockSyncConfig::default()),
            budget: Budget::new(Instant::now()),
            last_own_idr: None,
            connected: false,
            deadline_ns,
            ping_id: 0,
            next_ping: Instant::now(),
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
        let local = self.socket.local_addr()?;
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
            if now >= self.next_ping {
                self.ping();
            }
            if now >= self.next_stats {
                self.send_stats();
            }
            if now >= timeout {
                self.rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            let wake = timeout.min(self.next_ping).min(self.next_stats);
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
                for (eye, t) in Eye::BOTH.iter().zip(&mut self.tracks) {
                    t.waiting_idr = true;
                    self.hub.pipeline.idr.request(*eye);
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
                self.next_ping = Instant::now();
            }
            Event::ChannelData(d) => self.on_message(&d.data),
            Event::KeyframeRequest(r) => {
                if let Some(eye) = self.eye_of(r.mid) {
                    self.counters.keyframe_requests[eye.index()] += 1;
                    self.hub.pipeline.idr.request(eye);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let bps = estimate.as_u64();
                self.counters.last_estimate_bps = Some(bps);
                let low = self.counters.min_estimate_bps.get_or_insert(bps);
                *low = (*low).min(bps);
                self.budget.set_rate(Instant::now(), bps);
                self.hub.set_estimate(&self.id, Some(bps));
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

    fn on_message(&mut self, data: &[u8]) {
        let now = monotonic_ns();
        match browser::parse(data, now) {
            Ok(BrowserMessage::Pong(sample)) => {
                if self.sync.add(sample) {
                    *self.state.clock.lock().unwrap_or_else(|p| p.into_inner()) =
                        self.sync.estimate();
                }
            }
            Ok(BrowserMessage::Marker(m)) => {
                let Some(clock) = self.state.clock() else {
                    return; // markers before the first clock estimate cannot be placed
                };
                let mut c = self.state.eye(m.eye);
                let Some(frame_no) = c.booked_frame_no(m.rtp) else {
                    c.unmatched_markers += 1;
                    return;
                };
                let neighbours = c.booked_neighbours(m.rtp);
                let mut marker = m.to_frame_marker(m.rtp, frame_no);
                // The page reads the code with drawImage inside requestVideoFrameCallback, where
                // Chrome may already hold the next frame sent, or still the previous one
                // (0.3–1 % of frames here): such a read belongs to no marker, so it counts as
                // unreadable, not as a mismatch. Neighbours are the frames sent just before
                // and after (more than one frame number apart when the source dropped one in
                // between). Any other code is a real mismatch (and a constant offset would
                // make most codes unreadable, which the browser test rejects).
                let own = frame_no as u32 & pixel_code::FRAME_MASK;
                if let Some((eye, n)) = marker.pixel_code {
                    let neighbour = neighbours
                        .iter()
                        .flatten()
                        .any(|&f| f as u32 & pixel_code::FRAME_MASK == n);
                    if eye == m.eye && neighbour {
                        self.counters.code_read_race[m.eye.index()] += 1;
                        marker.pixel_code = None;
                    } else if n != own {
                        tracing::debug!(viewer = %self.id, eye = %m.eye, "marker for frame {frame_no} (RTP {}) shows pixel code {n}", m.rtp);
                    }
                }
                c.on_marker(&marker, &clock, now);
            }
            Err(e) => {
                self.counters.malformed_messages += 1;
                if self.counters.malformed_messages <= 3 {
                    tracing::warn!(viewer = %self.id, "malformed data channel message: {e}");
                }
            }
        }
    }

    fn write_channel(&mut self, text: &str) {
        if let Some(mut ch) = self.channel.and_then(|id| self.rtc.channel(id)) {
            let _ = ch.write(false, text.as_bytes());
        }
    }

    fn ping(&mut self) {
        if self.channel.is_none() {
            self.next_ping = Instant::now() + Duration::from_millis(50);
            return;
        }
        let msg = browser::ping(self.ping_id, monotonic_ns());
        self.write_channel(&msg);
        // Quickly at first (an estimate before the first frames), then every 200 ms.
        let gap = if self.ping_id < 25 { 20 } else { 200 };
        self.ping_id += 1;
        self.next_ping = Instant::now() + Duration::from_millis(gap);
    }

    /// The page's HUD: what the streamer measured for this viewer, once a second.
    fn send_stats(&mut self) {
        self.next_stats = Instant::now() + Duration::from_secs(1);
        if self.channel.is_none() {
            return;
        }
        let eyes: Vec<serde_json::Value> = Eye::BOTH
            .iter()
            .map(|&e| {
                let c = self.state.eye(e);
                let stage = |i: usize| c.stages[i].summary_recent(120).p50;
                serde_json::json!({
                    "decoded": c.markers,
                    "sent": c.sent,
                    "dropped": c.dropped_deadline + self.counters.skipped_waiting_idr[e.index()],
                    "latency_p50": c.total.summary_recent(120).p50,
                    "g2g_p50": c.glass_to_glass.summary_recent(120).p50,
                    "g2g_p99": c.glass_to_glass.summary_recent(120).p99,
                    "stages_p50": [stage(0), stage(1), stage(2), stage(3), stage(4)],
                    "keyframe_requests": self.counters.keyframe_requests[e.index()],
                    "nacks": self.counters.nacks[e.index()],
                    "target_mbps": self.hub.pipeline.target_bps[e.index()]
                        .load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
                })
            })
            .collect();
        let clock = self.state.clock();
        let msg = serde_json::json!({
            "t": "stats",
            "eyes": eyes,
            "estimate_mbps": self.counters.last_estimate_bps.map(|b| b as f64 / 1e6),
            "clock_uncertainty_ms": clock.map(|c| c.uncertainty_ns() as f64 / 1e6),
        });
        self.write_channel(&msg.to_string());
    }

    fn pick_pt(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let h264: Vec<_> = writer
            .payload_params()
            .filter(|p| {
                let s = p.spec();
                s.codec == Codec::H264 && s.format.packetization_mode == Some(1)
            })
            .map(|p| (p.pt(), p.spec().format.profile_level_id))
            .collect();
        // Constrained baseline is what the encoders make; any packetization-mode-1 H.264 will
        // decode it.
        h264.iter()
            .find(|(_, pl)| matches!(pl, Some(0x42e01f) | Some(0x42001f)))
            .or(h264.first())
            .map(|(pt, _)| *pt)
    }

    /// Asks the shared encoders for an IDR this viewer needs; at most one every 200 ms per
    /// viewer, so a struggling viewer cannot fill every viewer's stream with IDRs.
    fn request_own_idr(&mut self, eye: Eye) {
        let now = Instant::now();
        if self
            .last_own_idr
            .is_some_and(|t| now.duration_since(t) < OWN_IDR_INTERVAL)
        {
            return; // the next frame while waiting asks again
        }
        self.last_own_idr = Some(now);
        self.hub.pipeline.idr.request(eye);
    }

    /// This eye's next frames are not sent until an IDR (asked for) restarts the chain.
    fn wait_for_idr(&mut self, eye: Eye) {
        self.tracks[eye.index()].waiting_idr = true;
        self.request_own_idr(eye);
    }

    fn send_frame(&mut self, f: &EncodedFrame) -> Result<()> {
        let i = f.eye.index();
        {
            let mut c = self.state.eye(f.eye);
            c.captured += 1;
            c.encoded += 1;
        }
        if !self.connected {
            return Ok(());
        }
        let Some(mid) = self.tracks[i].mid else {
            return Ok(()); // the viewer did not ask for this eye
        };
        // A gap in the eye's sequence (this viewer's queue overflowed, or the pipeline dropped a
        // frame) breaks the reference chain: wait for the IDR the gap triggered.
        let gap = self.tracks[i]
            .last_seq
            .is_some_and(|s| s.wrapping_add(1) != f.seq);
        self.tracks[i].last_seq = Some(f.seq);
        if gap && !f.keyframe {
            self.wait_for_idr(f.eye);
        }
        if self.tracks[i].waiting_idr {
            if !f.keyframe {
                self.counters.skipped_waiting_idr[i] += 1;
                // Asked again (within the rate limit) until the IDR comes: a request may have
                // been merged away or made too soon after the last one.
                self.request_own_idr(f.eye);
                return Ok(());
            }
            self.tracks[i].waiting_idr = false;
        }
        let now_ns = monotonic_ns();
        if now_ns.saturating_sub(f.timing.capture_ns) > self.deadline_ns {
            self.state.eye(f.eye).dropped_deadline += 1;
            self.wait_for_idr(f.eye);
            return Ok(());
        }
        if !self.budget.admit(Instant::now(), f.data.len()) {
            self.counters.over_budget[i] += 1;
            self.wait_for_idr(f.eye);
            return Ok(());
        }
        if self.tracks[i].pt.is_none() {
            self.tracks[i].pt = self.pick_pt(mid);
        }
        let Some(pt) = self.tracks[i].pt else {
            bail!(
                "the viewer offered no H.264 (packetization-mode 1) for the {} eye",
                f.eye
            );
        };
        let rtp = browser::rtp_timestamp(f.timing.capture_ns);
        let mut timing = f.timing;
        timing.send_ns = now_ns;
        self.state.eye(f.eye).book_sending(rtp, timing);
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(());
        };
        writer
            .playout_delay(MediaTime::ZERO, MediaTime::ZERO)
            .write(
                pt,
                Instant::now(),
                MediaTime::new(rtp as u64, Frequency::NINETY_KHZ),
                f.data.clone(),
            )
            .context("writing a frame")?;
        self.state
            .eye(f.eye)
            .record_sent(&timing, f.data.len(), monotonic_ns());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer Chromium 156 made (`node tests/browser/view.mjs --offer`): two recvonly video
    /// transceivers and the data channel, as the viewer page and WHEP players send.
    const CHROMIUM_OFFER: &str = include_str!("../../../tests/data/chromium-offer.sdp");

    #[test]
    fn answers_a_chromium_offer_with_two_sendonly_h264_tracks() {
        let (pending, answer) =
            accept_offer(CHROMIUM_OFFER, "127.0.0.1".parse().unwrap(), 16_000_000).unwrap();
        let port = pending.socket.local_addr().unwrap().port();
        let mlines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(mlines.len(), 3, "{answer}");
        assert!(mlines[0].starts_with("m=video") && mlines[1].starts_with("m=video"));
        assert!(mlines[2].starts_with("m=application"), "the data channel");
        assert_eq!(answer.matches("a=sendonly").count(), 2);
        assert!(answer.contains("a=ice-lite"));
        assert!(answer.contains(&format!("127.0.0.1 {port} typ host")));
        assert!(answer.contains("H264/90000"));
        assert!(answer.contains("packetization-mode=1"));
        assert!(answer.contains("playout-delay"), "asks for render-at-once");
        assert!(
            answer.contains("transport-cc"),
            "TWCC feedback for the estimate"
        );
        assert!(answer.contains("nack pli"), "NACK and PLI feedback");
        // The mids of the offer, in its order: left eye, right eye.
        let mids: Vec<&str> = answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=mid:"))
            .collect();
        assert_eq!(mids, ["0", "1", "2"]);
    }

    #[test]
    fn budget_drops_frames_only_when_the_viewer_is_behind() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        // No estimate yet: everything goes.
        assert!(b.admit(t0, 1_000_000));
        b.set_rate(t0, 8_000_000); // 1 MB/s: a 100 ms queue is 100 kB
        let ms = |n| t0 + Duration::from_millis(n);
        // The 1 MB above drains in 1 s; until it is down to 100 kB nothing goes.
        assert!(!b.admit(ms(800), 10));
        assert!(b.admit(ms(900), 50_000));
        // A stream at the link's rate (100 kB every 100 ms) always fits.
        for k in 0..50 {
            assert!(b.admit(ms(1000 + 100 * k), 100_000), "frame {k}");
        }
        // Twice the link's rate: about half the frames are refused.
        let mut sent = 0;
        for k in 0..100 {
            sent += u32::from(b.admit(ms(6000 + 50 * k), 100_000));
        }
        assert!((45..=55).contains(&sent), "{sent}");
    }

    #[test]
    fn refuses_offers_it_cannot_serve() {
        let ip = "127.0.0.1".parse().unwrap();
        let e = accept_offer("hello", ip, 1).err().unwrap();
        assert!(format!("{e:#}").contains("unparsable SDP"), "{e:#}");
        // Audio only: nothing to send.
        let audio: String = CHROMIUM_OFFER
            .split("m=")
            .enumerate()
            .filter(|(i, part)| *i == 0 || part.starts_with("application"))
            .map(|(i, p)| {
                if i == 0 {
                    p.to_string()
                } else {
                    format!("m={p}")
                }
            })
            .collect();
        let audio = audio.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 2");
        assert!(accept_offer(&audio, ip, 1).is_err());
    }
}
