//! What the headset counts and measures, per eye, and the report it prints. Each counter is
//! declared once ([`EyeCounts`]): the live statistics and the report share it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shared_proto::clock::ClockEstimate;
use shared_proto::latency::{LatencyHistogram, Series, Summary};
use shared_proto::wire::{ClientStats, LinkStatus};
use shared_proto::Eye;
use tokio::sync::watch;

/// Per-eye counters, as the client sees them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EyeCounts {
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
    pub keyframes: u64,
    pub keyframe_requests: u64,
    /// Decoded pictures a newer one replaced before the display took them (never shown).
    pub superseded: u64,
    /// Pictures displayed (their marker carries a display time).
    pub shown: u64,
    /// Pictures decoded but not shown: damaged (a loss before them) while an intra-refresh
    /// sweep repairs the picture, or held while the other eye's is repaired.
    pub hidden: u64,
    /// Bitstream bytes of the frames received.
    pub bytes: u64,
    /// Frames rebuilt from parity fragments (forward error correction).
    pub repaired: u64,
    /// Frames whose missing fragments were asked for again (more lost than parity made up).
    pub nacks: u64,
    /// Fragment datagrams announced by the headers of the frames seen, and those that came:
    /// the link's datagram loss.
    pub datagrams_expected: u64,
    pub datagrams_received: u64,
}

impl EyeCounts {
    /// Frames that reached no picture: lost, skipped while waiting for an IDR, or undecodable.
    pub fn dropped(&self) -> u64 {
        self.lost + self.skipped_until_idr + self.decode_errors
    }

    /// The counters the streamer is told about (`ToStreamer::Stats`).
    pub fn wire(&self, malformed_datagrams: u64) -> ClientStats {
        ClientStats {
            received: self.received,
            decoded: self.decoded,
            lost: self.lost,
            decode_errors: self.decode_errors,
            wrong_eye: self.wrong_eye,
            malformed_datagrams,
            datagrams_expected: self.datagrams_expected,
            datagrams_received: self.datagrams_received,
            repaired: self.repaired,
        }
    }
}

/// The longest time between two decoded pictures of an eye, and how often it exceeded
/// [`FREEZE_NS`]: what a user sees as a freeze (after a blackout: the blackout plus the time to
/// the first good picture).
#[derive(Debug, Default, Clone, Copy)]
pub struct Freezes {
    last_ns: Option<u64>,
    pub longest_ns: u64,
    pub over: u64,
}

/// A gap between pictures longer than this is a freeze.
pub const FREEZE_NS: u64 = 200_000_000;

impl Freezes {
    /// A picture decoded at `now_ns`.
    pub fn on_picture(&mut self, now_ns: u64) {
        if let Some(last) = self.last_ns {
            let gap = now_ns.saturating_sub(last);
            self.longest_ns = self.longest_ns.max(gap);
            self.over += u64::from(gap > FREEZE_NS);
        }
        self.last_ns = Some(now_ns);
    }
}

/// Per-eye counters and latency series.
#[derive(Debug, Default)]
pub struct EyeStats {
    pub counts: EyeCounts,
    pub freezes: Freezes,
    /// capture → decoded on the streamer clock (via the announced clock estimate).
    pub latency: Series,
    /// last byte received → decoded.
    pub decode: Series,
    /// decoded → handed to the display (conversion, wait for the frame loop, upload).
    pub upload: Series,
    /// handed to the display → displayed (render, present; XR: the predicted display time).
    pub display: Series,
    /// capture → displayed, on the streamer clock.
    pub glass_to_glass: Series,
}

impl EyeStats {
    pub fn dropped(&self) -> u64 {
        self.counts.dropped()
    }

    fn report(&self) -> EyeReport {
        EyeReport {
            counts: self.counts,
            dropped: self.dropped(),
            latency_ms: self.latency.summary(),
            decode_ms: self.decode.summary(),
            upload_ms: self.upload.summary(),
            display_ms: self.display.summary(),
            glass_to_glass_ms: self.glass_to_glass.summary(),
            longest_freeze_ms: self.freezes.longest_ns as f64 / 1e6,
            freezes_over_200ms: self.freezes.over,
            latency_histogram_ms: [
                ("capture_to_decoded", &self.latency),
                ("decode", &self.decode),
                ("upload", &self.upload),
                ("display", &self.display),
                ("glass_to_glass", &self.glass_to_glass),
            ]
            .into_iter()
            .filter(|(_, s)| s.histogram().count > 0)
            .map(|(name, s)| (name, s.histogram().clone()))
            .collect(),
        }
    }
}

/// State shared between the runtime, the decoder threads and whoever reports.
pub struct Shared {
    pub eyes: [Mutex<EyeStats>; 2],
    pub clock: Mutex<Option<ClockEstimate>>,
    /// The streamer's view of the link (its estimate, the encoders' bitrate, the parity), as
    /// last announced.
    pub link: Mutex<Option<LinkStatus>>,
    pub malformed_datagrams: AtomicU64,
    pub sessions: AtomicU64,
    /// Stop after this many streamer sessions have ended.
    pub session_limit: Option<u64>,
    pub(crate) sessions_ended: AtomicU64,
    /// Stop after this many frames per eye are accounted for (decoded or dropped).
    pub frame_target: Option<u64>,
    /// The pairing code shown while the headset is pairing (`None`: not pairing); the HUD
    /// shows it and `quest-client` prints each new one.
    pub pairing_code: watch::Sender<Option<String>>,
    /// Streamers turned away (not paired, or another streamer is streaming).
    pub streamers_refused: AtomicU64,
    /// Per eye: its pictures are damaged and being repaired by intra refresh (both eyes hold
    /// their last good picture meanwhile, so the two never disagree).
    repairing: [std::sync::atomic::AtomicBool; 2],
    done: watch::Sender<bool>,
    /// The software decoder both eyes open (where there is no hardware one).
    software_decoder: Mutex<crate::decode::SoftwareDecoder>,
}

impl Shared {
    /// `frame_target`: stop after that many frames per eye; `session_limit`: stop after that
    /// many streamer sessions have ended.
    pub fn new(frame_target: Option<u64>, session_limit: Option<u64>) -> Arc<Self> {
        Arc::new(Shared {
            eyes: Default::default(),
            clock: Mutex::new(None),
            link: Mutex::new(None),
            malformed_datagrams: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            session_limit,
            sessions_ended: AtomicU64::new(0),
            frame_target,
            pairing_code: watch::Sender::new(None),
            streamers_refused: AtomicU64::new(0),
            repairing: Default::default(),
            done: watch::Sender::new(false),
            software_decoder: Mutex::new(Default::default()),
        })
    }

    /// Decode with `kind` (where there is no hardware decoder) from the next stream on; an
    /// error if this build cannot.
    pub fn set_software_decoder(&self, kind: crate::decode::SoftwareDecoder) -> anyhow::Result<()> {
        kind.check_available()?;
        *self
            .software_decoder
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = kind;
        Ok(())
    }

    pub fn software_decoder(&self) -> crate::decode::SoftwareDecoder {
        *self
            .software_decoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Says whether `eye`'s pictures are being repaired (not to be shown).
    pub fn set_repairing(&self, eye: Eye, repairing: bool) {
        self.repairing[eye.index()].store(repairing, Ordering::Relaxed);
    }

    /// Whether either eye's pictures are being repaired: then neither eye shows a new one.
    pub fn any_repairing(&self) -> bool {
        self.repairing.iter().any(|r| r.load(Ordering::Relaxed))
    }

    pub fn eye(&self, eye: Eye) -> MutexGuard<'_, EyeStats> {
        self.eyes[eye.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The streamer's clock estimate, as last announced.
    pub fn clock(&self) -> Option<ClockEstimate> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_clock(&self, c: ClockEstimate) {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// The streamer's view of the link, as last announced.
    pub fn link(&self) -> Option<LinkStatus> {
        *self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_link(&self, l: LinkStatus) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }

    pub(crate) fn check_target(&self) {
        let Some(n) = self.frame_target else { return };
        let reached = Eye::BOTH.iter().all(|&e| {
            let s = self.eye(e);
            s.counts.decoded + s.dropped() >= n
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
        let [left, right] = Eye::BOTH.map(|e| self.eye(e).report());
        let clock = self.clock();
        ClientReport {
            eyes: EyesReport { left, right },
            malformed_datagrams: self.malformed_datagrams.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            clock_offset_ns: clock.map(|c| c.offset_ns as i64),
            clock_uncertainty_ns: clock.map(|c| c.uncertainty_ns()),
            link: self.link(),
        }
    }
}

/// One eye in the report: the counters, and the latency series summarised.
#[derive(Debug, serde::Serialize)]
pub struct EyeReport {
    #[serde(flatten)]
    pub counts: EyeCounts,
    /// [`EyeCounts::dropped`].
    pub dropped: u64,
    /// capture → decoded, milliseconds, on the streamer clock.
    pub latency_ms: Summary,
    /// last byte received → decoded, milliseconds.
    pub decode_ms: Summary,
    /// decoded → handed to the display, milliseconds.
    pub upload_ms: Summary,
    /// handed to the display → displayed, milliseconds.
    pub display_ms: Summary,
    /// capture → displayed on the streamer clock, milliseconds (empty when headless).
    pub glass_to_glass_ms: Summary,
    /// The longest time between two decoded pictures, and the gaps over 200 ms.
    pub longest_freeze_ms: f64,
    pub freezes_over_200ms: u64,
    /// Every frame of the run, bucketed: the Prometheus histograms of `--metrics`.
    pub latency_histogram_ms: BTreeMap<&'static str, LatencyHistogram>,
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
    /// The streamer's view of the link when it last said (QUIC).
    pub link: Option<LinkStatus>,
}

impl ClientReport {
    pub fn to_text(&self) -> String {
        let mut out = String::from("eye    received  decoded  dropped  wrong_eye  capture→decoded ms p50/p95/p99/max   decode ms p50\n");
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            let l = &e.latency_ms;
            out += &format!(
                "{name:<6} {:>8} {:>8} {:>8} {:>10}  {:>7.2} {:>7.2} {:>7.2} {:>7.2}          {:>6.2}\n",
                e.counts.received, e.counts.decoded, e.dropped, e.counts.wrong_eye, l.p50, l.p95, l.p99, l.max, e.decode_ms.p50
            );
        }
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            if e.counts.shown > 0 {
                out += &format!(
                    "{name:<6} shown {} superseded {}: upload p50 {:.2} ms, display p50 {:.2} ms, glass-to-glass p50 {:.2} p99 {:.2} ms\n",
                    e.counts.shown, e.counts.superseded, e.upload_ms.p50, e.display_ms.p50, e.glass_to_glass_ms.p50, e.glass_to_glass_ms.p99
                );
            }
        }
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            let c = &e.counts;
            if c.datagrams_expected > 0 {
                out += &format!(
                    "{name:<6} longest freeze {:.0} ms ({} over 200 ms); datagrams {} of {} announced ({:.2} % lost), frames repaired from parity {}, fragments asked for again in {} frames\n",
                    e.longest_freeze_ms,
                    e.freezes_over_200ms,
                    c.datagrams_received,
                    c.datagrams_expected,
                    100.0 * (1.0 - c.datagrams_received as f64 / c.datagrams_expected as f64),
                    c.repaired,
                    c.nacks
                );
            }
        }
        if let Some(l) = &self.link {
            out += &format!(
                "streamer's link estimate {:.1} Mbit/s (cut {} times, queueing delay {:.1} ms), encoders at {:.1} + {:.1} Mbit/s, parity {:.1} % + {:.1} %\n",
                l.estimate_bps as f64 / 1e6,
                l.decreases,
                l.queue_us as f64 / 1e3,
                l.target_bps[0] as f64 / 1e6,
                l.target_bps[1] as f64 / 1e6,
                l.parity_permille[0] as f64 / 10.0,
                l.parity_permille[1] as f64 / 10.0
            );
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

#[cfg(test)]
mod freeze_tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_pictures_is_the_freeze() {
        let mut f = Freezes::default();
        for t in [0, 16, 33, 533, 550, 800] {
            f.on_picture(t * 1_000_000);
        }
        assert_eq!(f.longest_ns, 500_000_000);
        assert_eq!(f.over, 2, "500 ms and 250 ms");
    }
}
