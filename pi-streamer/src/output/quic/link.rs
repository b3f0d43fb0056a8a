//! The headset's link estimate ([`LinkEstimator`], a pure rule) fed from this connection's
//! markers and stats, and published to the encoders through [`Feedback`] as the bitrate the
//! video may take once parity is paid for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shared_proto::rules::rate::LinkEstimator;
use shared_proto::wire::{ClientStats, FrameMarker, FrameTiming, LinkStatus};
use shared_proto::{Eye, Nanos};

use crate::output::{Feedback, OutputState};

/// Headroom over the configured bitrate that the estimate may reach, so that parity on a fast
/// but lossy link does not lower the picture's bitrate (the encoders never exceed their
/// configured bitrate anyway).
const PARITY_HEADROOM: f64 = 1.5;
/// Publish at least this often, and at once when the estimate moved by more than 2 %.
const REPUBLISH_NS: Nanos = 1_000_000_000;
/// How often the headset is told the streamer's view of its link ([`LinkStatus`]).
const STATUS_EVERY_NS: Nanos = 500_000_000;

/// Each connection's estimate has its own name: a lost connection's feed, dropped late, never
/// clears its successor's estimate.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// One connection's feed; dropping it (the reader task ends or is aborted) withdraws its
/// estimate.
pub(super) struct LinkFeed {
    name: String,
    feedback: Arc<Feedback>,
    /// Each eye's last stats, when they came, and the rate its datagrams arrived at since.
    last_stats: [Option<(Nanos, ClientStats)>; 2],
    arrived_bps: [Option<f64>; 2],
    published: Option<(Nanos, u64)>,
    status_sent: Option<Nanos>,
}

impl Drop for LinkFeed {
    fn drop(&mut self) {
        self.feedback.estimate(&self.name, None);
    }
}

impl LinkFeed {
    /// Starts `state`'s estimator at the top of its range.
    pub fn new(peer: std::net::SocketAddr, state: &OutputState, feedback: Arc<Feedback>) -> Self {
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let name = format!("quic {peer} #{n}");
        let (min, max) = feedback.estimate_range();
        let top = (max as f64 * PARITY_HEADROOM) as u64;
        *state.link.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LinkEstimator::new(top, min, top));
        LinkFeed {
            name,
            feedback,
            last_stats: [None; 2],
            arrived_bps: [None; 2],
            published: None,
            status_sent: None,
        }
    }

    fn with_link(state: &OutputState, f: impl FnOnce(&mut LinkEstimator)) {
        if let Some(l) = state
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            f(l);
        }
    }

    /// A matched marker of a frame sent with `timing`.
    pub fn on_frame(
        &mut self,
        now: Nanos,
        state: &OutputState,
        timing: &FrameTiming,
        m: &FrameMarker,
    ) {
        let overhead = state.eye(m.eye).parity_overhead();
        let bytes = ((u64::from(timing.encoded_len) + FrameTiming::LEN as u64) as f64
            * (1.0 + overhead)) as u64;
        Self::with_link(state, |l| {
            l.on_frame(now, timing.send_ns, m.first_byte_ns, bytes)
        });
        self.publish(now, state);
    }

    /// The headset's periodic counters for `eye`: their datagram loss since the last ones.
    /// Whether the link is congested now (its loss is then not parity's to answer).
    pub fn on_stats(
        &mut self,
        now: Nanos,
        eye: Eye,
        stats: &ClientStats,
        state: &OutputState,
    ) -> bool {
        if let Some((at, last)) = self.last_stats[eye.index()].replace((now, *stats)) {
            if let (Some(e), Some(r)) = (
                stats
                    .datagrams_expected
                    .checked_sub(last.datagrams_expected),
                stats
                    .datagrams_received
                    .checked_sub(last.datagrams_received),
            ) {
                // The datagrams that arrived, at this eye's mean data datagram size.
                let dt = now.saturating_sub(at) as f64 / 1e9;
                let size = {
                    let c = state.eye(eye);
                    c.bytes_sent as f64 / c.data_datagrams.max(1) as f64
                };
                self.arrived_bps[eye.index()] = (dt > 0.05).then(|| r as f64 * size * 8.0 / dt);
                let both = match self.arrived_bps {
                    [Some(a), Some(b)] => Some(a + b),
                    [Some(a), None] | [None, Some(a)] => Some(2.0 * a),
                    [None, None] => None,
                };
                Self::with_link(state, |l| l.on_loss(now, e, r, both));
            }
        }
        self.publish(now, state);
        state
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.congested(now))
    }

    /// The streamer's view of the link, for the headset's HUD, when one is due (twice a second).
    pub fn status(&mut self, now: Nanos, state: &OutputState) -> Option<LinkStatus> {
        if self
            .status_sent
            .is_some_and(|at| now.saturating_sub(at) < STATUS_EVERY_NS)
        {
            return None;
        }
        let (estimate_bps, queue_ns, decreases) = state
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|l| (l.estimate_bps(), l.queue_ns(), l.decreases()))?;
        self.status_sent = Some(now);
        Some(LinkStatus {
            estimate_bps,
            queue_us: (queue_ns.max(0) / 1000).min(u32::MAX as i64) as u32,
            decreases: decreases.min(u32::MAX as u64) as u32,
            target_bps: Eye::BOTH.map(|e| self.feedback.current_bps(e)),
            parity_permille: Eye::BOTH.map(|e| {
                (state.eye(e).parity_overhead() * 1000.0)
                    .round()
                    .min(65535.0) as u16
            }),
        })
    }

    fn publish(&mut self, now: Nanos, state: &OutputState) {
        // The two figures, not a copy of the estimator's windows (this runs on every marker).
        let Some((estimate_bps, queue_ns)) = state
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|l| (l.estimate_bps(), l.queue_ns()))
        else {
            return;
        };
        let overhead = Eye::BOTH
            .iter()
            .map(|&e| state.eye(e).parity_overhead())
            .fold(0.0, f64::max);
        let video = (estimate_bps as f64 / (1.0 + overhead)) as u64;
        let due = match self.published {
            None => true,
            Some((at, bps)) => {
                now.saturating_sub(at) >= REPUBLISH_NS
                    || (video as f64 - bps as f64).abs() > 0.02 * bps as f64
            }
        };
        if due {
            if self.published.is_some_and(|(_, bps)| video < bps * 9 / 10) {
                tracing::info!(
                    estimate_mbps = estimate_bps as f64 / 1e6,
                    queue_ms = queue_ns as f64 / 1e6,
                    parity_overhead = overhead,
                    "headset link: bitrate lowered"
                );
            }
            self.feedback.estimate(&self.name, Some(video));
            self.published = Some((now, video));
        }
    }
}
